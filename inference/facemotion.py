"""The spotter's motion signals: facial regions of the aligned crop, the face's own block motion (head motion
removed) and the feature-difference signals of a recording, with the spotter's settings (:class:`SpotParams`).

The lowest of the spotter's three modules, imported by both others:

- :mod:`inference.facemotion` (this one): settings, regions, block motion, :class:`Signals` (:func:`motion_signals`);
- :mod:`inference.learned_spotter`: the optional learned spotter, a small classifier of every frame on these
  signals, and its file format;
- :mod:`inference.spotting`: peaks → intervals (training-free rules, or the learned spotter's peaks), ``spot``.

The orchestration (recording → intervals → the model) is :mod:`inference.recognise`. The method is described in
:mod:`inference.spotting`'s docstring.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .errors import InputError
from .face import CROP_CENTRE, CROP_EXTENT, CropSettings


@dataclass(frozen=True)
class SpotParams:
    """The spotter's settings; the defaults are the ones the evaluation reports."""

    window_s: float = 0.2  # k: about half a micro-expression (Li et al. use N = 2k + 1 ≈ the mean ME length)
    micro_max_s: float = 0.5  # intervals up to this long are micro-expressions (the MEGC definition)
    min_s: float = 0.1  # shorter movements are not reported (micro-expressions last 0.2 s and more)
    macro_max_s: float = 4.0  # longest interval grown around a peak
    reference_s: float = 3.0  # half-width of the local neutral reference used to grow an interval
    z: float = 3.0  # threshold: median + z robust standard deviations of the contrast
    extent: float = 0.2  # an interval spans the frames whose deviation exceeds this fraction of the apex's
    work_fps: float = 60.0  # recordings above this rate are spotted on every n-th frame
    work_size: int = 64  # the aligned face is spotted at this side (pixels); smaller crops are used as they are
    margin: float = CropSettings.margin  # the crop margin the frames were aligned with (places the regions)
    blink_max_s: float = 0.5  # a symmetric eye-only movement up to this long is a blink
    talk_repeats: int = 3  # mouth-only movements: this many within ± talk_span_s are talking
    talk_span_s: float = 1.0
    head_ratio: float = 5.0  # a movement during which the head moved more than this × the face's own is head motion
    spotter: str | None = None  # a learned spotter file (JSON, python -m training.spot_learn); None: training-free

    def __post_init__(self):
        checks = {"window_s": self.window_s > 0, "micro_max_s": self.micro_max_s > 0,
                  "macro_max_s": self.macro_max_s >= self.micro_max_s, "reference_s": self.reference_s > 0,
                  "z": self.z > 0, "extent": 0 < self.extent < 1, "work_fps": self.work_fps > 0,
                  "work_size": 24 <= self.work_size <= 512, "margin": -0.3 <= self.margin <= 1.0,
                  "min_s": 0 <= self.min_s < self.micro_max_s, "head_ratio": self.head_ratio > 0,
                  "talk_span_s": self.talk_span_s > 0, "talk_repeats": self.talk_repeats >= 1}
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise InputError(f"spotting settings out of range: {', '.join(f'{k}={getattr(self, k)}' for k in bad)}")
        if self.spotter is not None:
            object.__setattr__(self, "spotter", str(self.spotter))  # a path given as Path: plain text in reports


# ---------------------------------------------------------------- facial regions of the aligned crop

# Regions in face units (f ≈ inter-ocular distance ≈ eye-line-to-mouth drop, see inference.face): centre x from the
# midline (negative: the image's left), centre y below the eye line, half-side. Left/right as seen in the image.
_REGIONS = {
    "brow_left": (-0.5, -0.38, 0.3), "brow_right": (0.5, -0.38, 0.3),
    "eye_left": (-0.5, 0.0, 0.25), "eye_right": (0.5, 0.0, 0.25),
    "nose": (0.0, 0.45, 0.25),
    "cheek_left": (-0.58, 0.5, 0.25), "cheek_right": (0.58, 0.5, 0.25),
    "mouth_left": (-0.45, 0.98, 0.25), "mouth_right": (0.45, 0.98, 0.25),
    "chin": (0.0, 1.3, 0.28),
}
EYES = ("eye_left", "eye_right")
BROWS = ("brow_left", "brow_right")
MOUTH = ("mouth_left", "mouth_right", "chin")


def face_regions(size: int, margin: float = CropSettings.margin) -> dict[str, tuple[int, int, int, int]]:
    """Boxes ``(x0, y0, x1, y1)`` (pixels, end exclusive) of the facial regions in an aligned ``size``² crop made
    with ``margin`` (:func:`inference.face.output_crop_matrix` puts the face there)."""
    unit = size / (CROP_EXTENT * (1 + 2 * margin))  # pixels per face unit
    cx, eye_y = size / 2, (size - 1) / 2 - CROP_CENTRE * unit
    boxes = {}
    for name, (x, y, half) in _REGIONS.items():
        px, py, h = cx + x * unit, eye_y + y * unit, half * unit
        x0, y0 = int(round(px - h)), int(round(py - h))
        x1, y1 = int(round(px + h)), int(round(py + h))
        boxes[name] = (max(2, x0), max(2, y0), min(size - 2, x1), min(size - 2, y1))
    return boxes


# ---------------------------------------------------------------- motion


def block_layout(size: int, margin: float) -> tuple[np.ndarray, list[str]]:
    """A ``size``² map of block ids (-1 outside every block): each region split into 2×2 blocks; and the region name
    of each block."""
    ids = np.full((size, size), -1, np.int64)
    names = []
    for name, (x0, y0, x1, y1) in face_regions(size, margin).items():
        xm, ym = (x0 + x1) // 2, (y0 + y1) // 2
        for bx0, bx1 in ((x0, xm), (xm, x1)):
            for by0, by1 in ((y0, ym), (ym, y1)):
                ids[by0:by1, bx0:bx1] = len(names)
                names.append(name)
    return ids, names


def flow(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Dense optical flow (Farnebäck) from grey frame ``a`` to ``b``: ``(H, W, 2)`` pixels."""
    import cv2

    return cv2.calcOpticalFlowFarneback(a, b, None, 0.5, 2, 9, 3, 5, 1.1, 0)


class BlockMotion:
    """Mean flow of every block, with the head's motion removed: an affine motion field (shift, roll, scale, the
    narrowing of a turn) fitted to the block means, twice, the second time without the third of the blocks that
    fitted worst (an expression moves a few regions; the head moves them all)."""

    def __init__(self, size: int, margin: float):
        self.ids, self.names = block_layout(size, margin)
        inside = self.ids >= 0
        self._index, self._pixels = self.ids[inside], inside
        self._count = np.bincount(self._index, minlength=len(self.names)).astype(np.float32)
        ys, xs = np.nonzero(inside)
        centres = np.stack([np.bincount(self._index, xs, len(self.names)),
                            np.bincount(self._index, ys, len(self.names))], -1) / self._count[:, None]
        self._design = np.hstack([np.ones((len(self.names), 1)), (centres - size / 2) / size])  # (B, 3)
        self._member = np.zeros((len(self.names), len(self._index)))  # (B, P): a block's mean over its pixels
        self._member[self._index, np.arange(len(self._index))] = 1.0 / self._count[self._index]

    def __call__(self, f: np.ndarray) -> np.ndarray:
        """``(B, 2)`` head-motion-free block displacements of one flow field ``(H, W, 2)``."""
        return self.split(f)[0]

    def split(self, f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The block displacements of a flow field split into the face's own (``(B, 2)``) and the head's."""
        own, head = self.split_many(f[None])
        return own[0], head[0]

    def split_many(self, flows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`split` of every flow field in ``(T, H, W, 2)`` at once: ``(T, B, 2)`` twice. The affine fits are
        least squares on the (kept) blocks, solved for all fields together from their normal equations."""
        b = len(self.names)
        v = flows[:, self._pixels].astype(np.float64)  # (T, P, 2)
        means = np.einsum("bp,tpc->tbc", self._member, v)
        d = self._design
        weight = np.ones(means.shape[:2])
        for _ in range(2):
            normal = np.einsum("tb,bi,bj->tij", weight, d, d)
            coef = np.linalg.pinv(normal) @ np.einsum("tb,bi,tbc->tic", weight, d, means)
            residual = means - d @ coef
            keep = np.argsort(np.linalg.norm(residual, axis=-1), axis=-1)[:, :max(3, 2 * b // 3)]
            weight = np.zeros_like(weight)
            np.put_along_axis(weight, keep, 1.0, axis=-1)
        return residual, means - residual


def flows(pairs: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """:func:`flow` of every ``(a, b)`` pair, ``(N, H, W, 2)``, on as many threads as OpenCV may use (at most 4;
    a batch command's worker has one). OpenCV lets go of the GIL while it works, and each pair is computed
    alone, so the fields are the same as one after the other."""
    import cv2

    threads = min(4, max(1, cv2.getNumThreads()), len(pairs))
    if threads <= 1:
        return np.stack([flow(a, b) for a, b in pairs]) if pairs else np.zeros((0, 0, 0, 2), np.float32)
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(threads, "flow") as pool:
        return np.stack(list(pool.map(lambda ab: flow(*ab), pairs)))


def _top_third(values: np.ndarray) -> np.ndarray:
    m = max(1, values.shape[-1] // 3)
    return np.sort(values, axis=-1)[..., -m:].mean(-1)


# ---------------------------------------------------------------- signals


@dataclass
class Signals:
    """What the spotter computed, on its working frames (every ``step``-th given frame)."""

    step: int  # working frame i is given frame i * step
    fps: float  # the working frame rate
    k: int  # the FD window in working frames
    blocks: list[str]  # region name of each block
    grey: np.ndarray  # (T, W, W) uint8 working frames
    blocks_difference: np.ndarray  # (T, B): every block's difference
    difference: np.ndarray  # (T,) F(t): mean of the strongest third of the block differences
    contrast: np.ndarray  # (T,) C(t) (negative values set to 0)
    threshold: float
    noise: float  # robust standard deviation of the contrast
    head: np.ndarray | None = None  # (T,) the head's motion over the same k frames (mean block displacement)

    def at_given(self, values: np.ndarray, n_given: int) -> np.ndarray:
        """``values`` (one per working frame) on every given frame (linear interpolation)."""
        return np.interp(np.arange(n_given), np.arange(len(values)) * self.step, values)


def _grey_work(frames: np.ndarray, fps: float, params: SpotParams) -> tuple[np.ndarray, int, float]:
    import cv2

    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or frames.shape[1] != frames.shape[2]:
        raise ValueError(f"frames must be an aligned face clip, uint8 (T, S, S, 3); got {frames.dtype} "
                         f"{frames.shape}")
    if not fps or fps <= 0:
        raise InputError("spotting needs the recording's frame rate; give --fps for a folder of frames")
    step = max(1, int(math.floor(fps / params.work_fps + 1e-6)))
    picked = frames[::step]
    size = frames.shape[1]
    work = min(size, params.work_size)
    grey = np.empty((len(picked), work, work), np.uint8)
    for i, f in enumerate(picked):
        g = cv2.cvtColor(f, cv2.COLOR_RGB2GRAY)
        grey[i] = g if work == size else cv2.resize(g, (work, work), interpolation=cv2.INTER_AREA)
    return grey, step, fps / step


def _shifted(x: np.ndarray, d: int) -> np.ndarray:
    """``x[t + d]`` for every ``t``, indices clamped to the ends."""
    idx = np.clip(np.arange(len(x)) + d, 0, len(x) - 1)
    return x[idx]


def _noise(raw: np.ndarray, z: float, reach: int) -> tuple[float, float]:
    """Median and robust standard deviation (1.4826 × MAD) of the contrast where nothing happens: frames within
    ``reach`` of a value above median + ``z`` deviations are left out and the figures taken again (three rounds),
    so a busy recording does not raise its own threshold."""
    quiet = np.ones(len(raw), bool)
    for _ in range(3):
        centre = float(np.median(raw[quiet]))
        noise = float(1.4826 * np.median(np.abs(raw[quiet] - centre))) or 1e-6
        loud = np.convolve(raw > centre + z * noise, np.ones(2 * reach + 1), mode="same") > 0
        if loud.all() or (~loud == quiet).all():
            break
        quiet = ~loud
    return centre, noise


def motion_signals(frames: np.ndarray, fps: float, params: SpotParams = SpotParams()) -> Signals:
    """The FD signals of an aligned face clip ``(T, S, S, 3)`` (see the module docstring)."""
    grey, step, work_fps = _grey_work(frames, fps, params)
    t = len(grey)
    blocks = BlockMotion(grey.shape[1], params.margin)
    k = max(1, int(round(params.window_s * work_fps)))
    # g[i]: the face's own motion from frame i - k to frame i, per block. CF against TF and HF is then
    # (CF - TF + CF - HF) / 2 = (g[i] - g[i + k]) / 2 (the flow HF → CF taken as minus the flow CF → HF): one flow
    # per frame instead of two.
    g, heads = blocks.split_many(flows([(grey[max(0, i - k)], grey[i]) for i in range(t)]))
    head = np.linalg.norm(heads, axis=-1).mean(-1)
    diff = np.linalg.norm(g - _shifted(g, k), axis=-1) / 2
    difference = _top_third(diff)
    raw = difference - (_shifted(difference, -k) + _shifted(difference, k)) / 2
    centre, noise = _noise(raw, params.z, 2 * k)
    return Signals(step, work_fps, k, blocks.names, grey, diff, difference, np.maximum(raw, 0.0),
                   centre + params.z * noise, noise, head)
