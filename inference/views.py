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
"""

from __future__ import annotations

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


def make_view(x, view: str, axis: int | None = None):
    """One Décalcomanie view of a numpy array or torch tensor."""
    view = parse_views(view)
    if len(view) != 1:
        raise InputError(f"make_view takes one view letter, got {view!r}; use make_views for a set")
    if view == "O":
        return x
    if isinstance(x, np.ndarray):
        axis = -2 if axis is None else axis
        return np.take(x, view_columns(x.shape[axis], view), axis=axis)
    import torch

    if isinstance(x, torch.Tensor):
        axis = -1 if axis is None else axis
        idx = torch.from_numpy(view_columns(x.shape[axis], view)).to(x.device)
        return x.index_select(axis, idx)
    raise TypeError(f"expected a numpy array or torch tensor, got {type(x).__name__}")


def make_views(x, views: str = "OLR", axis: int | None = None) -> list:
    """The views of ``x`` named by ``views``, in that order."""
    return [make_view(x, v, axis) for v in parse_views(views)]
