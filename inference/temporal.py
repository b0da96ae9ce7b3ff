"""Time resampling: a clip of any length → a fixed number of frames, by linear interpolation.

Output frame ``i`` samples the input at position ``i * (T - 1) / (n - 1)``, so the first and last frames
are kept exactly and the rest are blends of their two neighbours (the paper's choice; the networks
take SMIC 34, CASME II 66, SAMM 74 frames).
"""

from __future__ import annotations

import numpy as np


def sample_positions(n_in: int, n_out: int) -> np.ndarray:
    """Fractional input positions of the ``n_out`` output frames."""
    if n_in < 1 or n_out < 1:
        raise ValueError(f"frame counts must be positive, got {n_in} → {n_out}")
    if n_out == 1:
        return np.array([(n_in - 1) / 2.0])
    return np.linspace(0.0, n_in - 1, n_out)


def resample(frames: np.ndarray, n_out: int, axis: int = 0) -> np.ndarray:
    """Linearly interpolate ``frames`` along ``axis`` to ``n_out`` frames, keeping the dtype.

    Integer clips are rounded to the nearest value; the input is returned unchanged when the count
    already matches.
    """
    frames = np.asarray(frames)
    n_in = frames.shape[axis]
    if n_in == n_out:
        return frames
    pos = sample_positions(n_in, n_out)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, n_in - 1)
    w = (pos - lo).astype(np.float32)
    shape = [1] * frames.ndim
    shape[axis] = n_out
    w = w.reshape(shape)
    a = np.take(frames, lo, axis=axis).astype(np.float32)
    b = np.take(frames, hi, axis=axis).astype(np.float32)
    out = a + (b - a) * w
    if np.issubdtype(frames.dtype, np.integer):
        info = np.iinfo(frames.dtype)
        out = np.clip(np.rint(out), info.min, info.max)
    return out.astype(frames.dtype)
