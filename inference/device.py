"""The one place a device name (``cpu``, ``cuda``, ``cuda:N``, ``auto``) becomes a device: the face aligner, the
runtime, training and the benches all ask here.

Serving asks ONNX Runtime, never PyTorch (the serving install has no torch): CUDA is there when ONNX Runtime has its
CUDA provider (``onnxruntime-gpu``) and the NVIDIA driver sees a GPU. Training asks PyTorch: when torch is already
imported in the process (training imports it before it picks a device), a GPU torch sees counts too."""

from __future__ import annotations

import os
import sys

from .errors import InputError

DEVICE_CHOICES = ("auto", "cpu", "cuda")  # cuda:N is accepted too


def onnxruntime_cuda() -> bool:
    """Whether the installed ONNX Runtime has its CUDA provider (``onnxruntime-gpu``; False without ONNX Runtime)."""
    try:
        import onnxruntime as ort
    except ImportError:
        return False
    return "CUDAExecutionProvider" in ort.get_available_providers()


def driver_gpus() -> int:
    """How many CUDA GPUs the NVIDIA driver sees (``cuDeviceGetCount``; 0 without a driver), asked without torch."""
    import ctypes

    for name in ("libcuda.so.1", "libcuda.so", "nvcuda.dll"):
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            continue
        count = ctypes.c_int(0)
        if lib.cuInit(0) != 0 or lib.cuDeviceGetCount(ctypes.byref(count)) != 0:
            return 0
        return int(count.value)
    return 0


def _torch_gpus() -> int:
    torch = sys.modules.get("torch")  # only when the process already runs PyTorch (training); serving never imports it
    if torch is None or not hasattr(torch, "cuda"):
        return 0
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def gpu_count(onnxruntime_only: bool = False) -> int:
    """CUDA GPUs usable here: those the driver shows to ONNX Runtime's CUDA provider, or (unless ``onnxruntime_only``)
    those PyTorch sees when it is already imported."""
    return max(driver_gpus() if onnxruntime_cuda() else 0, 0 if onnxruntime_only else _torch_gpus())


def cuda_available(onnxruntime_only: bool = False) -> bool:
    """Whether a CUDA GPU can be used (see :func:`gpu_count`); False when neither ONNX Runtime's CUDA provider with a
    GPU nor an imported PyTorch that sees one is there."""
    return gpu_count(onnxruntime_only) > 0


def resolve_device(device: str | None = "auto", onnxruntime_only: bool = False) -> str:
    """``cpu``, ``cuda`` or ``cuda:N``. ``auto`` picks CUDA when a GPU is usable (:func:`gpu_count`) — under
    ``torchrun`` the GPU of this process's ``LOCAL_RANK`` — else the CPU. Asking for CUDA without one is an
    :class:`InputError` that says what is missing. ``onnxruntime_only``: for work ONNX Runtime does (the face stage),
    where a GPU that only PyTorch can use does not count."""
    name = str(device or "auto").strip().lower()
    if name == "auto":
        count = gpu_count(onnxruntime_only)
        if not count:
            return "cpu"
        local = int(os.environ.get("LOCAL_RANK", 0))
        return f"cuda:{local % count}" if local else "cuda"
    if name == "cpu":
        return name
    if name == "cuda" or (name.startswith("cuda:") and name[5:].isdigit()):
        if not cuda_available(onnxruntime_only):
            if (onnxruntime_only or "torch" not in sys.modules) and not onnxruntime_cuda():
                raise InputError(f"device {device!r} asked for, but this ONNX Runtime has no CUDA provider: install "
                                 f"onnxruntime-gpu (requirements/serve-gpu.txt) instead of onnxruntime, or use cpu "
                                 f"(or auto)")
            raise InputError(f"device {device!r} asked for, but no CUDA GPU is visible (NVIDIA driver); use cpu "
                             f"(or auto)")
        return name
    raise InputError(f"unknown device {device!r}; use cpu, cuda, cuda:N or auto")
