"""Décalcomanie views (Lee, Hong, Jung, Sensors 2022, Figure 4), in image coordinates.

The aligned face's midline sits at the centre of the width axis. With ``W`` columns and ``c = W // 2``:

- ``O``: the original;
- ``L``: the left half followed by its mirror image — columns ``0 … c-1`` then ``c-1 … 0``;
- ``R``: the mirror of the right half followed by the right half — columns ``W-1 … c`` then ``c … W-1``.

For odd ``W`` the centre column ``c`` is the midline itself: it is kept once, in the middle
(``L`` = ``0 … c, c-1 … 0``; ``R`` = ``W-1 … c+1, c … W-1``), so both views stay symmetric about it.

Each view is one gather along the width axis (one allocation), ``O`` is returned as is (no copy).
Works on numpy clips ``(T, H, W, 3)`` (width axis -2) and on torch tensors ``(N, C, T, H, W)``
(width axis -1); other layouts pass ``axis``.

**Motion inputs.** A horizontal mirror reverses horizontal motion. For a flow input pass ``flow=``
:class:`FlowChannels` ``(u, axis, zero)``: the index of the ``u`` channel, the channel axis (default: -1 for numpy,
``(…, H, W, C)``; 1 for torch, ``(N, C, T, H, W)``) and the value of zero motion in ``u``. In the mirrored half of
``L`` (output columns ``W - c … W-1``) and of ``R`` (columns ``0 … c-1``) — and everywhere in :func:`mirror` — ``u``
becomes ``2·zero − u``: plain negation for float flow (``zero = 0``), the reflection about the recorded zero for
stored uint8 images (``zero = 128`` for ``inference.motion``'s "fixed" scaling, rounded and clipped to 0…255, so the
one value with no mirror image, 0, becomes 255; for min-max images the zero measured by
``FlowScaling.zero(img)``). ``zero`` is a number or an array that broadcasts against ``x`` with its channel and width
axes of length 1 (e.g. one zero per clip of a batch: ``(N, 1, 1, 1, 1)`` for torch). ``v`` and the strain are
mirrored as images, unchanged in sign. The kept half and ``O`` are left as they are; RGB inputs (``flow=None``)
behave as before.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .errors import InputError

VIEW_LETTERS = "OLR"
VIEW_INDEX = {v: i for i, v in enumerate(VIEW_LETTERS)}  # the graph input ``views`` of an SBML package: O=0, L=1, R=2


def parse_views(spec: str) -> str:
    """Validate a view set such as ``"OLR"`` or ``"lr"``; returns it upper-case, order kept."""
    views = str(spec).strip().upper()
    if not views or any(v not in VIEW_LETTERS for v in views) or len(set(views)) != len(views):
        raise InputError(f"invalid view set {spec!r}: use a combination of the letters O, L and R, each at most once "
                         f"(for example O, OL, OR, LR or OLR)")
    return views


def view_indices(views: str) -> np.ndarray:
    """A view set as the int64 indices an SBML package's ``views`` input takes (``"OLR"`` → ``[0, 1, 2]``)."""
    return np.array([VIEW_INDEX[v] for v in parse_views(views)], np.int64)


@lru_cache(maxsize=256)
def view_columns(width: int, view: str) -> np.ndarray:
    """Source column of each output column for ``view`` on an image ``width`` columns wide."""
    c = width // 2
    cols = np.arange(width)
    if view == "O":
        return cols
    if view == "L":
        left = cols[: c + width % 2]  # the odd centre column stays with the half it completes
        return np.concatenate([left, cols[:c][::-1]])
    if view == "R":
        right = cols[c:]
        return np.concatenate([cols[c + width % 2:][::-1], right])
    raise InputError(f"unknown view {view!r}: use O, L or R")


@dataclass(frozen=True)
class FlowChannels:
    """Where the horizontal motion ``u`` lies in a flow input, and its zero (see the module docstring)."""

    u: int = 0
    axis: int | None = None  # channel axis; None: -1 for numpy arrays, 1 for torch tensors
    zero: object = 0.0  # a number, or an array broadcasting against x with the channel and width axes of length 1


def mirrored_columns(width: int, view: str) -> slice:
    """The output columns of ``view`` that hold a mirror image (empty for ``O``)."""
    c = width // 2
    return {"O": slice(0, 0), "L": slice(width - c, width), "R": slice(0, c)}[view]


def _is_numpy(x) -> bool:
    if isinstance(x, np.ndarray):
        return True
    torch = sys.modules.get("torch")  # a tensor comes only from a process that imported torch (training)
    if torch is not None and isinstance(x, torch.Tensor):
        return False
    raise TypeError(f"expected a numpy array or torch tensor, got {type(x).__name__}")


def _negate_u(out, columns: slice, width_axis: int, flow: FlowChannels):
    """``u ← 2·zero − u`` in place over ``columns`` of ``out`` (a fresh array or tensor)."""
    nd = out.ndim
    channel_axis = (-1 if _is_numpy(out) else 1) if flow.axis is None else flow.axis
    ca, wa = channel_axis % nd, width_axis % nd
    if ca == wa:
        raise InputError(f"the flow channel axis ({channel_axis}) is the width axis ({width_axis}): name the channel "
                         f"axis in FlowChannels(axis=…)")
    if not 0 <= flow.u < out.shape[ca]:
        raise InputError(f"flow u channel {flow.u} is outside the {out.shape[ca]} channels of axis {channel_axis}")
    idx = [slice(None)] * nd
    idx[ca], idx[wa] = slice(flow.u, flow.u + 1), columns
    idx = tuple(idx)
    part = out[idx]
    if _is_numpy(out):
        new = 2.0 * np.asarray(flow.zero, np.float64) - part
        if np.issubdtype(out.dtype, np.integer):
            info = np.iinfo(out.dtype)
            new = np.clip(np.rint(new), info.min, info.max)
    else:
        import torch

        new = 2.0 * torch.as_tensor(flow.zero, dtype=torch.float64, device=out.device) - part.to(torch.float64)
        if not out.dtype.is_floating_point:
            info = torch.iinfo(out.dtype)
            new = new.round().clamp(info.min, info.max)
    out[idx] = new.astype(out.dtype) if _is_numpy(out) else new.to(out.dtype)
    return out


def _gather(x, cols, axis: int | None):
    """Columns ``cols(width)`` of ``x`` along its width axis (default: -2 for numpy, -1 for torch); returns
    (result, width axis)."""
    if _is_numpy(x):
        axis = -2 if axis is None else axis
        return np.take(x, cols(x.shape[axis]), axis=axis), axis
    import torch

    axis = -1 if axis is None else axis
    return x.index_select(axis, torch.from_numpy(cols(x.shape[axis])).to(x.device)), axis


def make_view(x, view: str, axis: int | None = None, flow: FlowChannels | None = None):
    """One Décalcomanie view of a numpy array or torch tensor; ``flow``: ``x`` is a flow input (module docstring)."""
    view = parse_views(view)
    if len(view) != 1:
        raise InputError(f"make_view takes one view letter, got {view!r}; use make_views for a set")
    if view == "O":
        return x
    out, axis = _gather(x, lambda w: view_columns(w, view), axis)
    if flow is not None:
        _negate_u(out, mirrored_columns(out.shape[axis], view), axis, flow)
    return out


def make_views(x, views: str = "OLR", axis: int | None = None, flow: FlowChannels | None = None) -> list:
    """The views of ``x`` named by ``views``, in that order."""
    return [make_view(x, v, axis, flow) for v in parse_views(views)]


def mirror(x, axis: int | None = None, flow: FlowChannels | None = None):
    """The horizontal mirror image of ``x`` (a flip augmentation); with ``flow``, ``u`` reflected about its zero."""
    out, axis = _gather(x, lambda w: np.arange(w)[::-1].copy(), axis)
    if flow is not None:
        _negate_u(out, slice(None), axis, flow)
    return out


def view_batch(clips: np.ndarray, views: str, u: int | None = None, zero=None) -> np.ndarray:
    """Test-time views of a numpy batch ``(N, T, H, W, C)`` stacked view-major: ``(V, N, T, H, W, C)``, in the
    order of ``views``. ``u``: the channel of horizontal motion (None: an RGB batch, mirrored as images); ``zero``:
    its zero motion per clip and frame ``(N, T)`` (or a number), about which ``u`` is reflected in the mirrored
    halves (:func:`make_view`)."""
    clips = np.asarray(clips)
    if clips.ndim != 5:
        raise InputError(f"test-time views take a batch (N, T, H, W, C), got shape {clips.shape}")
    flow = None
    if u is not None:
        z = np.asarray(0.0 if zero is None else zero, np.float64)
        flow = FlowChannels(u=int(u), axis=-1, zero=z.reshape(z.shape + (1,) * (5 - z.ndim)) if z.ndim else z)
    return np.stack(make_views(clips, views, axis=-2, flow=flow))
