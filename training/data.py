"""Clips for training, held on the training device as uint8, and batched augmentation on that device.

:class:`ClipBank` takes a protocol's clips from one or more aligned caches (``training.prepare``), resamples
each to the network's frame count (linear interpolation, first and last frames kept) and keeps them as one
uint8 tensor ``(N, T, S, S, 3)`` — SMIC at 34 frames of 128² is 0.3 GB, small next to a GPU's memory, so no
data loader, worker processes or host-to-device copies sit in the training loop.

:func:`augment` draws one random rotation, zoom and horizontal flip per clip (the same for all its frames,
applied before the Décalcomanie views are built) and resamples the whole batch with one ``grid_sample``
to the network's input size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from inference.errors import InputError
from inference.temporal import resample

from .cache import Cache
from .labels import PROTOCOLS, protocol_entry


@dataclass
class ClipBank:
    clips: torch.Tensor  # (N, T, S, S, 3) uint8, on the training device
    labels: torch.Tensor  # (N,) int64 class indices into ``classes``
    subjects: np.ndarray  # (N,) int subject ids (unique across datasets in the composite protocol)
    ids: list[str]  # "dataset:clip"
    classes: tuple[str, ...]

    @classmethod
    def from_caches(cls, caches: list[str], protocol: str, n_frames: int,
                    device: str | torch.device = "cpu") -> "ClipBank":
        """The clips of ``caches`` that ``protocol`` uses (:func:`training.labels.protocol_entry`: its classes,
        subject ids made unique across datasets in the composite protocol), resampled to ``n_frames``."""
        if protocol not in PROTOCOLS and protocol != "all":
            raise InputError(f"unknown protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)} or all")
        opened = [Cache.open(c) for c in caches]
        datasets = {c.settings["dataset"] for c in opened}
        if protocol == "all":  # pre-training: every label the caches hold (CK+ and Oulu-CASIA share theirs)
            classes = tuple(sorted({r["label"] for c in opened for r in c.rows}))
        else:
            classes = PROTOCOLS[protocol]
            if len(opened) > 1 and protocol != "composite":
                raise InputError(f"protocol {protocol!r} uses one dataset, but {len(opened)} caches were given")
            if protocol != "composite" and datasets != {protocol}:
                raise InputError(f"protocol {protocol!r} needs a {protocol} cache, got {', '.join(sorted(datasets))}")
        clips, labels, subjects, ids = [], [], [], []
        for cache in opened:
            name = cache.settings["dataset"]
            for i, row in enumerate(cache.rows):
                entry = protocol_entry(protocol, name, row["label"], row["subject"], row.get("composite"))
                if entry is None or entry[0] not in classes:
                    continue
                label, subject = entry
                clips.append(resample(np.asarray(cache.clip(i)), n_frames))
                labels.append(classes.index(label))
                subjects.append(subject)
                ids.append(f"{name}:{row['clip']}")
        if not clips:
            raise InputError(f"no clips of the {protocol} protocol ({', '.join(classes)}) in "
                             f"{', '.join(map(str, caches))}")
        sizes = {c.shape[1:] for c in clips}
        if len(sizes) != 1:
            raise InputError(f"the caches hold crops of different sizes {sorted(sizes)}; prepare them with one --size")
        return cls(torch.from_numpy(np.stack(clips)).to(device), torch.tensor(labels, dtype=torch.int64, device=device),
                   np.array(subjects), ids, tuple(classes))

    def __len__(self) -> int:
        return len(self.ids)


def augment(batch: torch.Tensor, out_size: int, generator: torch.Generator | None = None, rotation: float = 0.0,
            scale: float = 1.0, flip: bool = False) -> torch.Tensor:
    """uint8 clips ``(B, T, S, S, 3)`` → float ``(B, 3, T, out, out)`` in [0, 1], randomly rotated (±``rotation``
    degrees), zoomed in (up to ``scale``) and mirrored per clip; with no augmentation, a plain resize.

    Random numbers come from ``generator`` (on the CPU), so a run is reproducible whatever the device.
    """
    b, t, s, _, c = batch.shape
    x = batch.permute(0, 4, 1, 2, 3).reshape(b, c * t, s, s).float().div_(255.0)
    if rotation or scale != 1.0 or flip:
        angle = (torch.rand(b, generator=generator) * 2 - 1) * math.radians(rotation)
        zoom = 1.0 + torch.rand(b, generator=generator) * (scale - 1.0)
        mirror = torch.where(torch.rand(b, generator=generator) < 0.5, -1.0, 1.0) if flip else torch.ones(b)
    else:
        angle, zoom, mirror = torch.zeros(b), torch.ones(b), torch.ones(b)
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    # output (x, y) samples input theta @ (x, y, 1) in normalised coordinates; the flip mirrors the x axis
    theta = torch.stack([torch.stack([cos * mirror, -sin, torch.zeros(b)], 1),
                         torch.stack([sin * mirror, cos, torch.zeros(b)], 1)], 1).to(x.device, x.dtype)
    if not (rotation or scale != 1.0 or flip):
        out = resize_frames(x, out_size)  # evaluation: exactly what an exported model package does
    else:
        grid = F.affine_grid(theta, (b, c * t, out_size, out_size), align_corners=False)
        # Shrinking 128 → 112 is mild; larger factors get an area pre-filter (normalised coordinates are size-free).
        if s > 1.5 * out_size:
            x = F.interpolate(x, size=(out_size, out_size), mode="area")
        out = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return out.reshape(b, c, t, out_size, out_size)


def resize_frames(x: torch.Tensor, out_size: int) -> torch.Tensor:
    """Square frames ``(B, K, S, S)`` → ``(B, K, out, out)``: bilinear with half-pixel centres (an area
    pre-filter first when shrinking by more than 1.5×). Evaluation and exported packages both use this."""
    s = x.shape[-1]
    if s == out_size:
        return x
    if s > 1.5 * out_size:
        return F.interpolate(x, size=(out_size, out_size), mode="area")
    return F.interpolate(x, size=(out_size, out_size), mode="bilinear", align_corners=False)


def normalise(x: torch.Tensor, mean, std, pixel_scale: float = 1.0) -> torch.Tensor:
    """Per-channel normalisation of ``(B, 3, T, H, W)`` in [0, 1], in the statistics a backbone was trained
    with (``pixel_scale`` 255 for checkpoints that expect 0–255 pixels)."""
    mean = torch.as_tensor(mean, dtype=x.dtype, device=x.device).view(1, 3, 1, 1, 1)
    std = torch.as_tensor(std, dtype=x.dtype, device=x.device).view(1, 3, 1, 1, 1)
    return (x * pixel_scale - mean) / std
