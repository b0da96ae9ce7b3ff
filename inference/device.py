"""The one place a device name (``cpu``, ``cuda``, ``cuda:N``, ``auto``) becomes a device: the face aligner, the
runtime, training and the benches all ask here."""

from __future__ import annotations

import os

from .errors import InputError

DEVICE_CHOICES = ("auto", "cpu", "cuda")  # cuda:N is accepted too


def cuda_available() -> bool:
    """Whether PyTorch sees a CUDA GPU (False when torch is not installed)."""
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def resolve_device(device: str | None = "auto") -> str:
    """``cpu``, ``cuda`` or ``cuda:N``. ``auto`` picks CUDA when PyTorch sees a GPU — under ``torchrun`` the GPU of
    this process's ``LOCAL_RANK`` — else the CPU. Asking for CUDA without a GPU is an :class:`InputError`."""
    name = str(device or "auto").strip().lower()
    if name == "auto":
        if not cuda_available():
            return "cpu"
        import torch

        local = int(os.environ.get("LOCAL_RANK", 0))
        count = torch.cuda.device_count()
        return f"cuda:{local % count}" if local else "cuda"
    if name == "cpu":
        return name
    if name == "cuda" or (name.startswith("cuda:") and name[5:].isdigit()):
        if not cuda_available():
            raise InputError(f"device {device!r} asked for, but no CUDA GPU is visible to PyTorch; use cpu (or auto)")
        return name
    raise InputError(f"unknown device {device!r}; use cpu, cuda, cuda:N or auto")
