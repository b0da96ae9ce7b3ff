"""Clips for training, held on the training device as uint8, and batched augmentation on that device.

:class:`ClipBank` takes a protocol's clips from one or more aligned caches (``training.prepare``), resamples
each to the network's frame count (linear interpolation, first and last frames kept) and keeps them as one
uint8 tensor ``(N, T, S, S, 3)`` — SMIC at 34 frames of 128² is 0.3 GB, small next to a GPU's memory, so no
data loader, worker processes or host-to-device copies sit in the training loop.

The bank holds one input kind (``data.inputs``: rgb, flow_image, flow_clip, magnified, grey_flow_clip;
:mod:`training.cache`); a cache of another kind, or motion caches made with different methods, parameters or
scalings, are refused. For the flow kinds (channels u, v, strain) it also keeps, per clip and frame, the stored
value of zero motion (:meth:`inference.motion.FlowScaling.zero`: 128/128/0 for "fixed" caches, measured on the image
for "minmax" sets); for grey + flow clips (grey, u, v) it is 128 in every channel (the grey level centred on
mid-grey). Models with an AU head get multi-hot AU targets (``au``, ``au_mask``) from the manifests' AU codes.

:func:`augment` draws one random rotation, zoom and horizontal flip per clip (the same for all its frames,
applied before the Décalcomanie views are built) and resamples the whole batch with one ``grid_sample``
to the network's input size. On flow the vectors follow the picture: a mirror negates u about its zero value,
a rotation turns (u, v) by the same angle (magnitudes are kept: a zoom of a few per cent is not rescaled).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from inference.errors import InputError
from inference.inputs import Preprocessing, kind
from inference.temporal import resample

from .cache import Cache
from .labels import PROTOCOLS, protocol_entry

# what must agree between the caches of one bank (a model is served with one way of making its inputs)
_SAME_INPUTS = ("kind", "method", "params", "scaling", "reference", "tim", "magnify")


@dataclass
class ClipBank:
    clips: torch.Tensor  # (N, T, S, S, 3) uint8, on the training device
    labels: torch.Tensor  # (N,) int64 class indices into ``classes``
    subjects: np.ndarray  # (N,) int subject ids (unique across datasets in the composite protocol)
    ids: list[str]  # "dataset:clip"
    classes: tuple[str, ...]
    inputs: dict = field(default_factory=lambda: {"kind": "rgb"})  # what the clips hold (cache.json "inputs")
    zeros: torch.Tensor | None = None  # flow kinds: (N, T, 3) float32 stored value of zero motion per channel
    aus: tuple[int, ...] = ()  # the AU vocabulary of the targets below (models with an AU head; empty otherwise)
    au: torch.Tensor | None = None  # (N, len(aus)) float32 multi-hot AU targets from the manifests' action_units
    au_mask: torch.Tensor | None = None  # (N,) bool: the clip has AU codes (False: its AU loss is left out)

    @property
    def flow(self) -> bool:
        """Whether the clips hold motion vectors (flow kinds: u, v, strain; grey_flow_clip: grey, u, v), which
        mirrors and rotations must treat as vectors."""
        return kind(self.inputs["kind"]).vectors

    @property
    def uv(self) -> tuple[int, int]:
        """The channels of u and v (flow clips): the input kind's row says."""
        return kind(self.inputs["kind"]).uv

    @classmethod
    def from_caches(cls, caches: list[str], protocol: str, n_frames: int,
                    device: str | torch.device = "cpu", inputs: str = "rgb", aus=None) -> "ClipBank":
        """The clips of ``caches`` that ``protocol`` uses (:func:`training.labels.protocol_entry`: its classes,
        subject ids made unique across datasets in the composite protocol), resampled to ``n_frames``.
        Every cache must hold ``inputs`` (the config's ``data.inputs``). With ``aus`` (an AU vocabulary, e.g.
        ``[1, 2, 4, 12]``) the bank also carries multi-hot AU targets from each row's ``action_units`` cell
        (:func:`training.models.au_fusion.au_targets`); a clip without codes is masked out of the AU loss."""
        if protocol not in PROTOCOLS and protocol != "all":
            raise InputError(f"unknown protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)} or all")
        made_as = kind(inputs)  # the input kind's row
        opened = [Cache.open(c) for c in caches]
        made = check_inputs(opened, inputs)
        if made_as.single_frame and n_frames != 1:
            raise InputError(f"a {inputs} input is one frame per clip; set train.n_frames: 1 (got {n_frames})")
        datasets = {r.get("dataset") or c.settings["dataset"] for c in opened for r in c.rows}
        if protocol == "all":  # pre-training: every label the caches hold (CK+ and Oulu-CASIA share theirs)
            classes = tuple(sorted({r["label"] for c in opened for r in c.rows}))
        else:
            classes = PROTOCOLS[protocol]
            if len(opened) > 1 and protocol != "composite":
                raise InputError(f"protocol {protocol!r} uses one dataset, but {len(opened)} caches were given")
            if protocol != "composite" and datasets != {protocol}:
                raise InputError(f"protocol {protocol!r} needs a {protocol} cache, got {', '.join(sorted(datasets))}")
        clips, labels, subjects, ids, cells = [], [], [], [], []
        for cache in opened:
            for i, row in enumerate(cache.rows):
                name = row.get("dataset") or cache.settings["dataset"]  # a flow-image set mixes datasets
                entry = protocol_entry(protocol, name, row["label"], row["subject"], row.get("composite"))
                if entry is None or entry[0] not in classes:
                    continue
                label, subject = entry
                clips.append(resample(np.asarray(cache.clip(i)), n_frames))
                labels.append(classes.index(label))
                subjects.append(subject)
                ids.append(f"{name}:{row['clip']}")
                cells.append(row.get("action_units") or "")
        if not clips:
            raise InputError(f"no clips of the {protocol} protocol ({', '.join(classes)}) in "
                             f"{', '.join(map(str, caches))}")
        sizes = {c.shape[1:] for c in clips}
        if len(sizes) != 1:
            raise InputError(f"the caches hold crops of different sizes {sorted(sizes)}; prepare them with one --size")
        stacked = np.stack(clips)
        zeros = made_as.zeros(made, stacked)  # the row's zero-motion rule (None: no motion)
        if zeros is not None:
            zeros = torch.from_numpy(zeros).float().to(device)
        bank = cls(torch.from_numpy(stacked).to(device), torch.tensor(labels, dtype=torch.int64, device=device),
                   np.array(subjects), ids, tuple(classes), made, zeros)
        if aus:
            bank.set_aus(aus, cells, [str(c) for c in caches])
        return bank

    def set_aus(self, aus, cells: list[str], where: list[str]) -> None:
        """AU targets for the vocabulary ``aus`` from the clips' sheet cells (``where``: the caches, for the error)."""
        from .models.au_fusion import au_targets

        targets, mask = au_targets(cells, tuple(int(a) for a in aus))
        if not mask.any():
            raise InputError(f"this model learns action units, but no clip in {', '.join(where)} has AU codes (the "
                             f"manifests' action_units column is missing or empty): prepare CASME II / SAMM caches "
                             f"with this version of python -m training.prepare (into a new --out), or train a model "
                             f"without an AU head")
        device = self.clips.device
        self.aus = tuple(int(a) for a in aus)
        self.au = torch.from_numpy(targets).to(device)
        self.au_mask = torch.from_numpy(mask).to(device)

    def __len__(self) -> int:
        return len(self.ids)


def check_inputs(caches: list[Cache], inputs: str) -> dict:
    """The caches' common input settings: each must hold ``inputs``, and motion caches must agree on how they were
    made (method, parameters, scaling); the apex source may differ (one dataset annotates it, another does not)."""
    for c in caches:
        kind = c.inputs["kind"]
        if kind != inputs:
            raise InputError(f"{c.folder} holds {kind} inputs, but this model trains on {inputs} (data.inputs); "
                             f"prepare a {inputs} cache (python -m training.prepare --inputs {inputs}) or set "
                             f"data.inputs: {kind}")
    first = caches[0].inputs
    for c in caches[1:]:
        diff = [k for k in _SAME_INPUTS if c.inputs.get(k) != first.get(k)]
        if diff:
            raise InputError(f"{caches[0].folder} and {c.folder} hold {inputs} inputs made differently "
                             f"({', '.join(f'{k}: {first.get(k)!r} vs {c.inputs.get(k)!r}' for k in diff)}); "
                             f"prepare them with the same motion settings")
    apex = sorted({str(c.inputs["apex"]) for c in caches if "apex" in c.inputs})
    return {**first, **({"apex": apex[0] if len(apex) == 1 else "mixed"} if apex else {})}


def augment(batch: torch.Tensor, out_size: int, generator: torch.Generator | None = None, rotation: float = 0.0,
            scale: float = 1.0, flip: bool = False, flow_zero: torch.Tensor | None = None,
            uv: tuple[int, int] = (0, 1)) -> torch.Tensor:
    """uint8 clips ``(B, T, S, S, 3)`` → float ``(B, 3, T, out, out)`` in [0, 1], randomly rotated (±``rotation``
    degrees), zoomed in (up to ``scale``) and mirrored per clip; with no augmentation, a plain resize.

    ``flow_zero`` ``(B, T, 3)`` (stored values of zero motion, 0–255) marks the clips as flow (u and v in channels
    ``uv``; the third channel is a scalar: strain or grey): a mirror then negates u about its zero, a rotation turns
    the (u, v) vectors with the picture.
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
    out = out.reshape(b, c, t, out_size, out_size)
    if flow_zero is not None and (rotation or flip):
        out = turn_vectors(out, flow_zero.to(out.device, out.dtype) / 255.0, angle.to(out.device, out.dtype),
                           mirror.to(out.device, out.dtype), uv)
    return out


def turn_vectors(x: torch.Tensor, zero: torch.Tensor, angle: torch.Tensor, mirror: torch.Tensor,
                 uv: tuple[int, int] = (0, 1)) -> torch.Tensor:
    """Flow clips ``(B, 3, T, H, W)`` (u, v in channels ``uv``, the other channel a scalar; zero motion at ``zero``
    ``(B, T, 3)``, same units) whose picture was resampled as ``out(p) = in(A p)`` with ``A`` the rotation by
    ``angle`` after the mirror ``x → m·x``: a displacement ``d`` becomes ``A⁻¹ d``, i.e. ``u' = m(cos·u + sin·v)``,
    ``v' = −sin·u + cos·v`` about the zero."""
    iu, iv = uv
    z = zero.permute(0, 2, 1)[..., None, None]  # (B, 3, T, 1, 1)
    du, dv = x[:, iu] - z[:, iu], x[:, iv] - z[:, iv]
    cos, sin, m = (a.view(-1, 1, 1, 1) for a in (torch.cos(angle), torch.sin(angle), mirror))
    channels = list(x.unbind(1))
    channels[iu] = m * (cos * du + sin * dv) + z[:, iu]
    channels[iv] = -sin * du + cos * dv + z[:, iv]
    return torch.stack(channels, dim=1)


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
    with (``pixel_scale`` 255 for checkpoints that expect 0–255 pixels). ``mean`` is ``(3,)``, or per clip and frame
    ``(B, T, 3)`` (flow centred on each clip's zero-motion values)."""
    mean = torch.as_tensor(mean, dtype=x.dtype, device=x.device)
    mean = mean.permute(0, 2, 1)[..., None, None] if mean.dim() == 3 else mean.view(1, 3, 1, 1, 1)
    std = torch.as_tensor(std, dtype=x.dtype, device=x.device).view(1, 3, 1, 1, 1)
    return (x * pixel_scale - mean) / std


def network_input(clips: torch.Tensor, pre: Preprocessing, zeros: torch.Tensor | None = None,
                  generator: torch.Generator | None = None, rotation: float = 0.0, scale: float = 1.0,
                  flip: bool = False) -> torch.Tensor:
    """uint8 clips ``(B, T, S, S, 3)`` → the network's float input ``(B, 3, T, size, size)`` as the model's
    :class:`inference.inputs.Preprocessing` says: augmented (training: rotation, zoom, mirror; with none, the plain
    resize an exported package does), then normalised — flow centred on ``zeros`` ``(B, T, 3)``, each clip's stored
    zero motion (``pre.zeros``). What training's steps and its evaluation feed the network."""
    x = augment(clips, pre.size, generator, rotation=rotation, scale=scale, flip=flip, flow_zero=zeros,
                uv=pre.uv or (0, 1))
    return normalise(x, pre.mean_for(zeros), pre.std, pre.pixel_scale)
