"""Spotting: where in a recording a micro-expression (or a macro-expression) happens, without training.

The method is the **main-directional maximal difference (MDMD)** family of Wang, Wu, Qiu, Wang and Fu (*Main
directional maximal difference analysis for spotting facial movements from long-term videos*, Neurocomputing 230,
2017; the MEGC 2020 spotting baseline of He et al. on CAS(ME)² and SAMM Long Videos): optical flow on facial blocks,
compared over a window of about half a micro-expression, inside the feature-difference (FD) scheme of Moilanen, Zhao
and Pietikäinen (ICPR 2014) and Li et al. (*Towards reading hidden emotions*, IEEE TAC 2018):

1. the *current frame* CF at ``t`` is compared with the *tail* and *head* frames ``t - k`` and ``t + k`` (``k``:
   ``window_s``, about half a micro-expression): the optical flow TF → CF and HF → CF (Farnebäck), averaged into a
   mean vector per block — a movement that starts and ends within ``2k`` frames adds up, steady motion (a drift, a
   slow turn) cancels (MDMD keeps the mean magnitude in each block's main direction; the signed mean is what lets
   the two flows cancel);
2. per frame the mean of the strongest third of the blocks is the feature difference ``F(t)``; the contrast
   ``C(t) = F(t) - (F(t - k) + F(t + k)) / 2`` (negative values set to 0) keeps rapid movements;
3. peaks of ``C`` above a threshold are the spotted movements.

What this module adds, each piece its own function:

- the blocks are not a blind grid: they sit on the facial regions of the *aligned* crop, whose geometry is fixed
  by :mod:`inference.face` (eye line level, midline at ``x = S/2``, known face scale): brows, eyes, nose, cheeks,
  mouth corners and chin, each split 2×2 (:func:`face_regions`, :class:`BlockMotion`);
- global head motion is removed from every flow: an affine motion field (shift, roll, scale, the narrowing of a
  turn) fitted robustly to the block means is subtracted, so what is left is the face's own movement;
- the threshold is absolute in units of the recording's own noise (median + ``z`` robust standard deviations of the
  contrast), not relative to the recording's maximum as in the baselines, so a neutral recording gives nothing;
- an interval (onset, apex, offset) is grown around each peak by comparing the frames near it with the quietest
  frame before it (flow, head motion removed) in the blocks that moved most; it spans the frames that moved more
  than ``extent`` × the apex, and its length classes it *micro* (≤ ``micro_max_s``, 0.5 s) or *macro*;
- what is not a facial expression is not reported: a **blink** (short, in both eyes alike), **talking** (a mouth-only
  movement among others like it, several a second) and **head motion** (the head moved far more than the face).

``spot(frames, fps)`` returns :class:`Interval` s (frame indices of the given frames); :func:`motion_signals` gives
the signals behind them (for a timeline plot). Optionally (``SpotParams(spotter=PATH)``) a **learned spotter**
(:class:`LearnedSpotter`, a JSON file from ``python -m training.spot_learn``) takes the place of the threshold and the
rules: a small classifier of every frame on these signals, whose peaks are grown into intervals the same way.
:func:`choose_mode`, :func:`interval_clips` and
:func:`classify_intervals` are the recognition step: each spotted interval (with a margin) becomes a clip for the
package's model; a clip under about a second (a dataset's onset→offset clip) keeps the whole-clip mode.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from .errors import InputError
from .face import CROP_CENTRE, CROP_EXTENT, CropSettings

KINDS = ("micro", "macro")
MODES = ("auto", "spot", "whole")
WHOLE_CLIP_MAX_S = 1.0  # auto mode: a clip shorter than this is one expression (dataset clips: 0.2–0.5 s)


@dataclass(frozen=True)
class Interval:
    """A spotted movement: frame indices (0-based, inclusive) of the frames given to :func:`spot`."""

    onset: int
    apex: int
    offset: int
    kind: str  # "micro" or "macro"
    score: float  # the contrast peak in robust standard deviations of the recording's noise (learned: probability)

    def __post_init__(self):
        if not (0 <= self.onset <= self.apex <= self.offset):
            raise ValueError(f"an interval needs 0 <= onset <= apex <= offset, got {self.onset}, {self.apex}, "
                             f"{self.offset}")
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")

    @property
    def length(self) -> int:
        return self.offset - self.onset + 1

    def seconds(self, fps: float) -> tuple[float, float, float]:
        """(start, apex, end) in seconds: the start of the onset frame to the end of the offset frame."""
        return self.onset / fps, self.apex / fps, (self.offset + 1) / fps

    def iou(self, other: Interval) -> float:
        return interval_iou((self.onset, self.offset), (other.onset, other.offset))


def interval_iou(a: tuple[int, int], b: tuple[int, int]) -> float:
    """IoU of two inclusive frame intervals ``(first, last)``, as MEGC counts frames."""
    inter = min(a[1], b[1]) - max(a[0], b[0]) + 1
    if inter <= 0:
        return 0.0
    return inter / ((a[1] - a[0] + 1) + (b[1] - b[0] + 1) - inter)


def to_rows(intervals: Sequence[Interval], fps: float | None = None, **columns) -> list[dict]:
    """One plain dict per interval (frames, seconds when ``fps`` is known, kind, score), with ``columns`` first."""
    rows = []
    for i, iv in enumerate(intervals):
        row = {**columns, "interval": i, "onset": iv.onset, "apex": iv.apex, "offset": iv.offset, "kind": iv.kind,
               "score": round(float(iv.score), 3)}
        if fps:
            start, apex, end = iv.seconds(fps)
            row.update(start_s=round(start, 4), apex_s=round(apex, 4), end_s=round(end, 4))
        rows.append(row)
    return rows


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


# ---------------------------------------------------------------- peaks → intervals


def _peaks(contrast: np.ndarray, threshold: float, separation: int) -> list[int]:
    """Local maxima above ``threshold``, strongest first, at least ``separation`` (k) apart, and at least 2k from
    either end (the contrast there compares with frames clamped to the ends)."""
    order = np.argsort(-contrast, kind="stable")
    taken: list[int] = []
    for i in order:
        if contrast[i] <= threshold:
            break
        if 2 * separation <= i < len(contrast) - 2 * separation and all(abs(int(i) - j) >= separation
                                                                          for j in taken):
            taken.append(int(i))
    return taken


@dataclass
class _Event:
    onset: int
    apex: int
    offset: int
    score: float
    energy: dict[str, float] = field(default_factory=dict)  # region → share of the deviation at the apex
    head_moved: float = 0.0  # how far the head moved during the event, relative to the face's own movement


def _grow(sig: Signals, peak: int, blocks: BlockMotion, params: SpotParams) -> _Event:
    """The interval around a contrast peak: how far each frame near it is from a neutral reference frame (optical
    flow, head motion removed), in the blocks that moved most at the peak.

    The reference is the quietest frame (lowest F) of the reference window before the peak (after it when the
    recording starts with the movement); each block's own level is its median over the window (sampled every
    ``k / 2`` frames). The interval spans the frames, walking out from the apex, whose deviation stays above
    ``extent`` × the apex's."""
    t, k = len(sig.grey), sig.k
    half = max(2 * k, int(round(params.reference_s * sig.fps)))
    lo, hi = max(0, peak - half), min(t, peak + half + 1)
    before = np.arange(lo, max(lo, peak - k))
    after = np.arange(min(t, peak + k + 1), hi)
    pool = before if len(before) else after if len(after) else np.arange(lo, hi)
    ref = int(pool[np.argmin(sig.difference[pool])])
    cache: dict[int, tuple[np.ndarray, float]] = {}

    def fetch(frames: Iterable[int]) -> None:
        todo = sorted(set(frames) - set(cache))
        if todo:
            own, head = blocks.split_many(flows([(sig.grey[ref], sig.grey[i]) for i in todo]))
            for i, o, h in zip(todo, np.linalg.norm(own, axis=-1), np.linalg.norm(head, axis=-1).mean(-1)):
                cache[i] = o, float(h)

    def deviation(i: int) -> tuple[np.ndarray, float]:
        if i not in cache:
            fetch([i])
        return cache[i]

    near = range(max(0, peak - k), min(t, peak + k + 1))
    fetch([*range(lo, hi, max(1, k // 2)), *near])  # computed together (on several threads)
    level = np.median([deviation(i)[0] for i in range(lo, hi, max(1, k // 2))], axis=0)
    moved = np.argsort(-np.max([deviation(i)[0] - level for i in near], axis=0))[:max(1, len(level) // 6)]

    def strength(i: int) -> float:
        return float(np.maximum(deviation(i)[0] - level, 0.0)[moved].mean())

    apex = max(near, key=strength)
    limit = params.extent * strength(apex)
    longest = int(round(params.macro_max_s * sig.fps))
    onset = apex
    while onset > 0 and apex - onset < longest and strength(onset - 1) > limit:
        onset -= 1
    offset = apex
    while offset < t - 1 and offset - apex < longest and strength(offset + 1) > limit:
        offset += 1
    at_apex = np.maximum(deviation(apex)[0] - level, 0.0)
    total = float(at_apex.sum()) or 1.0
    energy: dict[str, float] = {}
    for b, name in enumerate(sig.blocks):
        energy[name] = energy.get(name, 0.0) + float(at_apex[b]) / total
    heads = [deviation(i)[1] for i in range(onset, offset + 1)]
    head_moved = max(max(heads) - min(heads), deviation(apex)[1] - float(np.median([c[1] for c in cache.values()])))
    return _Event(onset, apex, offset, 0.0, energy, head_moved=head_moved / max(strength(apex), 1e-6))


def _is_blink(ev: _Event, sig: Signals, params: SpotParams) -> bool:
    """Short, in the eyes (the lids drag the brows a little), more in the eyes than the brows, and both sides of the
    upper face (eye and brow together, so a region box that sits a little off one eye does not matter) alike."""
    eyes = [ev.energy.get(n, 0.0) for n in EYES]
    brows = [ev.energy.get(n, 0.0) for n in BROWS]
    sides = [e + b for e, b in zip(eyes, brows)]
    short = (ev.offset - ev.onset + 1) / sig.fps <= params.blink_max_s
    return short and sum(sides) >= 0.7 and sum(eyes) >= sum(brows) and min(sides) >= 0.6 * max(sides)


def _is_head(ev: _Event, params: SpotParams) -> bool:
    """The head moved more than the face did: what is left of a turn after the head's motion was removed."""
    return ev.head_moved > params.head_ratio


def _mouth_only(ev: _Event) -> bool:
    return sum(ev.energy.get(n, 0.0) for n in MOUTH) >= 0.6


def _is_talking(ev: _Event, sig: Signals, blocks: BlockMotion, params: SpotParams) -> bool:
    """A mouth-only movement that is one of many: speech moves the mouth several times a second, a micro- or
    macro-expression moves it out and back once. The mouth's speed (flow between consecutive frames, head motion
    removed) from ``talk_span_s`` before the movement to as long after it is counted in peaks of at least a third of
    its highest; two are an expression's way out and back, ``talk_repeats`` more make it talking."""
    if sum(ev.energy.get(n, 0.0) for n in MOUTH) < 0.6:
        return False
    mouth = np.array([n in MOUTH for n in sig.blocks])
    span, t = int(round(params.talk_span_s * sig.fps)), len(sig.grey)
    lo, hi = max(1, ev.onset - span), min(t, ev.offset + span + 1)
    own, _ = blocks.split_many(flows([(sig.grey[i - 1], sig.grey[i]) for i in range(lo, hi)]))
    speed = np.linalg.norm(own[:, mouth], axis=-1).mean(-1)
    floor = max(speed.max() / 3, 3 * np.percentile(speed, 10))
    peaks = [j for j in range(len(speed)) if speed[j] >= floor and speed[j] == speed[max(0, j - 2):j + 3].max()]
    return len(peaks) >= 2 + params.talk_repeats


def _merge(events: list[_Event], gap: int) -> list[_Event]:
    """Events that overlap or nearly touch (``gap`` frames) are one movement (a macro-expression's rise and fall
    make peaks of their own): the stronger one's apex, the union of the extents."""
    merged: list[_Event] = []
    for e in sorted(events, key=lambda e: -e.score):
        for m in merged:
            if e.onset <= m.offset + gap and m.onset <= e.offset + gap:
                m.onset, m.offset = min(m.onset, e.onset), max(m.offset, e.offset)
                break
        else:
            merged.append(e)
    return sorted(merged, key=lambda e: e.onset)


def spot(frames: np.ndarray, fps: float, params: SpotParams = SpotParams(),
         signals: Signals | None = None) -> list[Interval]:
    """Micro- and macro-expression intervals in an aligned face clip ``(T, S, S, 3)`` uint8 at ``fps``.

    Frame indices refer to ``frames``. Blinks and talking are left out. An empty list is a valid answer: nothing
    moved more than the recording's own noise allows. With ``params.spotter`` the learned spotter decides."""
    return spot_signals(signals or motion_signals(frames, fps, params), len(frames), fps, params)


def spot_signals(sig: Signals, n_frames: int, fps: float, params: SpotParams = SpotParams()) -> list[Interval]:
    """:func:`spot` on signals already computed from ``n_frames`` given frames at ``fps``.

    Training-free: peaks of the contrast above the threshold, grown into intervals, blinks, head motion and talking
    left out by their rules. Learned (``params.spotter``, :class:`LearnedSpotter`): peaks of the model's
    expression probability above the file's threshold, grown the same way; the model has learned what to leave out."""
    learned = load_spotter(params.spotter, params) if params.spotter else None
    blocks = BlockMotion(sig.grey.shape[1], params.margin)
    score, threshold = (learned.expression(sig), learned.threshold) if learned else (sig.contrast, sig.threshold)
    events = []
    grown: list[_Event] = []
    for peak in _peaks(score, threshold, sig.k):
        if any(e.onset <= peak <= e.offset for e in grown):
            continue  # a weaker peak of a movement already found (a macro-expression's rise or fall)
        ev = _grow(sig, peak, blocks, params)
        grown.append(ev)
        if (ev.offset - ev.onset + 1) / sig.fps < params.min_s:
            continue  # a flicker, shorter than any expression
        if learned:
            ev.score = float(score[peak])
            events.append(ev)
            continue
        ev.score = (float(sig.contrast[peak]) - (sig.threshold - params.z * sig.noise)) / sig.noise
        if not (_is_blink(ev, sig, params) or _is_head(ev, params)):
            events.append(ev)
    events = _merge(events, sig.k // 2 + 1)
    if not learned:
        events = [e for e in events if not _is_talking(e, sig, blocks, params)]
    out = []
    for ev in events:
        onset, apex = min(ev.onset * sig.step, n_frames - 1), min(ev.apex * sig.step, n_frames - 1)
        offset = min(ev.offset * sig.step + sig.step - 1, n_frames - 1)
        kind = "micro" if (offset - onset + 1) / fps <= params.micro_max_s else "macro"
        out.append(Interval(onset, apex, offset, kind, round(ev.score, 3)))
    return out


# ---------------------------------------------------------------- the learned spotter (optional)

LEARNED_FORMAT = "microexpr-learned-spotter"
LEARNED_VERSION = 1
LEARNED_CLASSES = ("none", "micro", "macro")  # what the model says of every working frame: inside which, if any
BASE_FEATURES = (*_REGIONS, "difference", "contrast", "head")
CONTEXT_K = (-3.0, -2.0, -1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 2.0, 3.0)  # the features at these offsets (× k)
SPAN_S = 1.0  # and their highest and mean value within ± this (talking repeats; a macro-expression's hold)
LEARNED_SETTINGS = ("window_s", "work_fps", "work_size")  # the signals' settings a learned spotter is tied to


def feature_names() -> list[str]:
    """The names of :func:`frame_features`' columns, in order (a learned spotter file lists them)."""
    return ([f"{n}@{o:+g}k" for o in CONTEXT_K for n in BASE_FEATURES]
            + [f"{n}:{what}{SPAN_S:g}s" for what in ("max", "mean", "swing") for n in BASE_FEATURES])


def frame_features(sig: Signals) -> np.ndarray:
    """``(T, D)`` features of every working frame, from what the training-free spotter computed: each facial region's
    feature difference (mean of its blocks), ``F(t)`` and the head's motion in units of the recording's median
    ``F``, the contrast in units of its noise (all ``log1p``-compressed); taken at :data:`CONTEXT_K` × k frames around
    the frame, plus their highest and mean value within ± :data:`SPAN_S` and their swing there (the sum of the
    frame-to-frame changes over the highest value: a movement out and back swings a few times its height, talking
    many times). Columns: :func:`feature_names`."""
    names = np.array(sig.blocks)
    scale = max(float(np.median(sig.difference)), 1e-6)
    base = np.stack([sig.blocks_difference[:, names == r].mean(1) for r in _REGIONS]
                    + [sig.difference, sig.contrast * scale / sig.noise, sig.head], -1)
    base = np.log1p(np.maximum(base, 0.0) / scale)
    span = max(1, int(round(SPAN_S * sig.fps)))
    windows = np.lib.stride_tricks.sliding_window_view(np.pad(base, ((span, span), (0, 0)), mode="edge"),
                                                       2 * span + 1, axis=0)
    shifted = [_shifted(base, int(round(o * sig.k))) for o in CONTEXT_K]
    high = windows.max(-1)
    swing = np.abs(np.diff(windows, axis=-1)).sum(-1) / (high + 0.05)
    return np.concatenate([*shifted, high, windows.mean(-1), swing], -1).astype(np.float32)


def mlp(x: np.ndarray, layers: Sequence[tuple[np.ndarray, np.ndarray]]) -> list[np.ndarray]:
    """Every layer's output for inputs ``x``: ``x @ w + b``, ReLU between layers, softmax at the end."""
    outs = []
    for i, (w, b) in enumerate(layers):
        x = x @ w + b
        if i < len(layers) - 1:
            x = np.maximum(x, 0.0)
        else:
            x = np.exp(x - x.max(-1, keepdims=True))
            x = x / x.sum(-1, keepdims=True)
        outs.append(x)
    return outs


@dataclass(frozen=True)
class LearnedSpotter:
    """A small classifier of every working frame (inside a micro-expression, a macro-expression, or neither) on
    :func:`frame_features`: standardised features, a ReLU layer, softmax. ``python -m training.spot_learn`` trains it
    and writes it as JSON (the runtime loads JSON and ONNX only, never pickles); :func:`spot_signals` takes the peaks
    of its expression probability above ``threshold`` and grows them into intervals as the training-free spotter
    does."""

    mean: np.ndarray  # (D,)
    std: np.ndarray  # (D,)
    layers: tuple[tuple[np.ndarray, np.ndarray], ...]  # (weight (in, out), bias (out,)) per layer
    threshold: float = 0.5
    settings: dict = field(default_factory=dict)  # LEARNED_SETTINGS the signals were computed with
    info: dict = field(default_factory=dict)  # how it was trained (dataset, subjects, videos, figures)

    def probabilities(self, sig: Signals) -> np.ndarray:
        """``(T, 3)`` probabilities of :data:`LEARNED_CLASSES` for every working frame."""
        return mlp((frame_features(sig) - self.mean) / self.std, self.layers)[-1]

    def expression(self, sig: Signals) -> np.ndarray:
        """``(T,)`` probability that the frame is inside an expression (micro or macro)."""
        return 1.0 - self.probabilities(sig)[:, 0]

    def to_json(self) -> dict:
        return {"format": LEARNED_FORMAT, "version": LEARNED_VERSION, "classes": list(LEARNED_CLASSES),
                "features": feature_names(), "settings": dict(self.settings), "threshold": float(self.threshold),
                "mean": [float(v) for v in self.mean], "std": [float(v) for v in self.std],
                "layers": [{"weight": np.asarray(w, np.float64).round(6).tolist(),
                            "bias": np.asarray(b, np.float64).round(6).tolist()} for w, b in self.layers],
                "info": self.info}

    @classmethod
    def from_json(cls, data, where: str = "the learned spotter") -> LearnedSpotter:
        """Checked: a file of another kind, another feature set or broken weights is an :class:`InputError`."""
        retrain = "train one with python -m training.spot_learn"
        if not isinstance(data, dict) or data.get("format") != LEARNED_FORMAT:
            raise InputError(f"{where} is not a learned spotter file (no \"format\": \"{LEARNED_FORMAT}\"); {retrain}")
        if data.get("version") != LEARNED_VERSION or data.get("classes") != list(LEARNED_CLASSES):
            raise InputError(f"{where} is a learned spotter of version {data.get('version')!r} with classes "
                             f"{data.get('classes')!r}; this code reads version {LEARNED_VERSION} "
                             f"({', '.join(LEARNED_CLASSES)}): {retrain}")
        if data.get("features") != feature_names():
            raise InputError(f"{where} was trained on other features than this code computes "
                             f"({len(data.get('features') or [])} against {len(feature_names())}); {retrain}")
        try:
            mean, std = (np.asarray(data[k], np.float32) for k in ("mean", "std"))
            layers = tuple((np.asarray(la["weight"], np.float32), np.asarray(la["bias"], np.float32))
                           for la in data["layers"])
            settings = {k: float(data["settings"][k]) for k in LEARNED_SETTINGS}
            threshold = float(data["threshold"])
        except (KeyError, TypeError, ValueError) as e:
            raise InputError(f"{where} is damaged: {type(e).__name__} {e}; {retrain}") from None
        width = len(feature_names())
        shapes_ok = bool(layers) and mean.shape == std.shape == (width,) and layers[-1][0].shape[-1:] == (3,)
        for w, b in layers:
            shapes_ok = shapes_ok and w.ndim == 2 and w.shape[0] == width and b.shape == (w.shape[1],)
            width = w.shape[1] if w.ndim == 2 else -1
        arrays = [mean, std, *(a for la in layers for a in la)]
        if not shapes_ok or not all(np.isfinite(a).all() for a in arrays) or not (std > 0).all():
            raise InputError(f"{where} is damaged: its weights do not fit {len(feature_names())} features → "
                             f"{len(LEARNED_CLASSES)} classes, or are not finite; {retrain}")
        if not 0 < threshold < 1:
            raise InputError(f"{where}: threshold {threshold} is not a probability between 0 and 1")
        return cls(mean, std, layers, threshold, settings, dict(data.get("info") or {}))

    def check(self, params: SpotParams, where: str = "the learned spotter") -> None:
        """The signals must be computed as they were for training: same window, working rate and size."""
        wrong = [k for k in LEARNED_SETTINGS if not math.isclose(getattr(params, k), self.settings[k])]
        if wrong:
            raise InputError(f"{where} was trained on signals with "
                             f"{', '.join(f'{k}={self.settings[k]:g}' for k in LEARNED_SETTINGS)}; these settings "
                             f"have {', '.join(f'{k}={getattr(params, k):g}' for k in wrong)}: spot with the "
                             f"file's settings (leave --window at its default) or retrain")


_LOADED: dict[tuple, LearnedSpotter] = {}


def load_spotter(path: str | Path, params: SpotParams | None = None) -> LearnedSpotter:
    """A learned spotter file (JSON), read once per version of the file and checked against ``params``."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such learned spotter file; python -m training.spot_learn writes one "
                         f"(OUT/spotter.json)")
    stat = path.stat()
    key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size)
    if key not in _LOADED:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise InputError(f"{path} is not a learned spotter file (not JSON: {e}); train one with "
                             f"python -m training.spot_learn") from None
        if len(_LOADED) >= 8:
            _LOADED.clear()
        _LOADED[key] = LearnedSpotter.from_json(data, str(path))
    spotter = _LOADED[key]
    if params is not None:
        spotter.check(params, str(path))
    return spotter


# ---------------------------------------------------------------- recognition of each interval


def choose_mode(n_frames: int, fps: float | None, mode: str = "auto") -> str:
    """"spot" or "whole" for a clip: ``auto`` spots recordings of a second or more and keeps whole-clip mode for
    shorter clips and for frame folders without a frame rate (the datasets' onset→offset clips)."""
    if mode not in MODES:
        raise InputError(f"unknown mode {mode!r}; use {', '.join(MODES)}")
    if mode == "spot" and not fps:
        raise InputError("--mode spot needs the frame rate; give --fps for a folder of frames")
    if mode != "auto":
        return mode
    return "spot" if fps and n_frames / fps >= WHOLE_CLIP_MAX_S else "whole"


@dataclass(frozen=True)
class IntervalClip:
    interval: Interval
    start: int  # first frame of the clip (the onset minus the margin, clamped)
    end: int  # last frame, inclusive
    frames: np.ndarray  # (end - start + 1, S, S, 3)


def interval_clips(frames: np.ndarray, intervals: Sequence[Interval], fps: float,
                   margin_s: float = 0.1) -> list[IntervalClip]:
    """Each interval's frames, onset → offset widened by ``margin_s`` on both sides (clamped to the clip)."""
    pad = int(round(margin_s * fps))
    out = []
    for iv in intervals:
        start, end = max(0, iv.onset - pad), min(len(frames) - 1, iv.offset + pad)
        out.append(IntervalClip(iv, start, end, frames[start:end + 1]))
    return out


@dataclass
class SpottedPrediction:
    """An interval and what the model says about it (``prediction`` is the runtime's Prediction)."""

    interval: Interval
    start: int
    end: int
    prediction: object

    def as_dict(self, fps: float | None, first_frame: int = 0) -> dict:
        """Frames and seconds counted from the recording's frame ``first_frame`` (:attr:`SpotResult.first_frame`:
        where the prepared face segment starts)."""
        iv = self.interval
        row = to_rows([replace(iv, onset=iv.onset + first_frame, apex=iv.apex + first_frame,
                               offset=iv.offset + first_frame)], fps)[0]
        row.pop("interval")
        row.update(clip_start=self.start + first_frame, clip_end=self.end + first_frame)
        if self.prediction is not None:
            row.update(self.prediction.as_dict())
        return row


def classify_intervals(predictor, prepared, params: SpotParams = SpotParams(), margin_s: float = 0.1,
                       kinds: Sequence[str] = ("micro",), on_stage: Callable[[str], None] | None = None,
                       views: str | None = None) -> tuple[list[SpottedPrediction], Signals]:
    """Spot, then recognise: ``prepared`` is a prepared clip with *every* frame kept (``PreparedClip`` with
    ``n_frames=None``, or any frozen dataclass with ``.frames`` and ``.fps``); ``predictor`` anything with
    ``n_frames`` and ``classify(list_of_prepared, views, apexes)`` (:class:`inference.runtime.Predictor`).

    Every spotted interval is returned; those of the asked ``kinds`` are classified: each becomes a copy of
    ``prepared`` holding its frames (with the margin) as they are — the package makes its input from them (an RGB
    package resamples them to its frame count; a flow-image package's image is the flow from the clip's first frame,
    the onset less the margin, to the spotted apex) — and all go
    through the model in one call. No micro-expression interval means "no micro-expression found", a valid answer."""
    if on_stage:
        on_stage("spot")
    sig = motion_signals(prepared.frames, prepared.fps, params)
    clips = interval_clips(prepared.frames, spot(prepared.frames, prepared.fps, params, sig), prepared.fps, margin_s)
    asked = [c for c in clips if c.interval.kind in kinds]
    predictions = {}
    if asked:
        if on_stage:
            on_stage("model")
        inputs = [replace(prepared, frames=c.frames) for c in asked]
        apexes = [c.interval.apex - c.start for c in asked]  # a flow-image package: clip's first frame → the apex
        predictions = {id(c): p for c, p in zip(asked, predictor.classify(inputs, views, apexes))}
    return [SpottedPrediction(c.interval, c.start, c.end, predictions.get(id(c))) for c in clips], sig


@dataclass
class SpotResult:
    """What :func:`spot_and_classify` found in a recording."""

    mode: str  # "spot" or "whole"
    prepared: object  # the PreparedClip holding every aligned frame
    intervals: list[SpottedPrediction]  # spot mode: every spotted interval (frames of ``prepared``; add first_frame)
    signals: Signals | None  # spot mode: the signals behind them (a timeline plot)
    whole: object | None = None  # whole mode: the clip's prediction

    @property
    def first_frame(self) -> int:
        """The decoded frame that the prepared (and spotted) frame 0 is: the face track may start later."""
        quality = getattr(self.prepared, "quality", None)
        return int(quality.frames_used[0]) if quality is not None else 0

    @property
    def micro(self) -> list[SpottedPrediction]:
        """The micro-expressions found; empty means "no micro-expression found"."""
        return [p for p in self.intervals if p.interval.kind == "micro"]


@dataclass(frozen=True)
class ModePreparer:
    """Decode, choose the mode (:func:`choose_mode`), then prepare: ``whole`` through ``preparer`` as the whole-clip
    path always did (e.g. only the frames the package's frame count reads), ``spot`` with every frame of the face
    segment kept. Returns ``(mode, PreparedClip)``; a small frozen object, so the batch command's worker processes
    get a copy (``inference.pipeline.prepared_clips``)."""

    preparer: object  # an inference.preprocess.Preparer
    mode: str = "auto"

    def __call__(self, clip, fps: float | None = None, on_stage: Callable[[str], None] | None = None):
        from .video import Clip, read_clip

        choose_mode(2, fps or 1.0, self.mode)  # an unknown mode is refused before anything is decoded
        decode = 0.0
        if not isinstance(clip, Clip):
            if on_stage:
                on_stage("decode")
            t0 = time.perf_counter()
            clip = read_clip(clip, self.preparer.limits, fps=fps)
            decode = time.perf_counter() - t0
        mode = choose_mode(clip.n_frames, clip.fps, self.mode)
        preparer = self.preparer if mode == "whole" else replace(self.preparer, n_frames=None)
        prepared = preparer(clip, fps, on_stage and (lambda stage: stage == "decode" or on_stage(stage)))
        return mode, replace(prepared, timings={**prepared.timings, "decode": prepared.timings["decode"] + decode})


def classify_prepared(predictor, mode: str, prepared, params: SpotParams = SpotParams(),
                      on_stage: Callable[[str], None] | None = None, views: str | None = None) -> SpotResult:
    """:class:`ModePreparer`'s result through ``predictor`` (with its test ``views`` unless given): whole, or
    spotted and each micro-expression classified."""
    if mode == "whole":
        if on_stage:
            on_stage("model")
        return SpotResult("whole", prepared, [], None, predictor.classify([prepared], views)[0])
    found, sig = classify_intervals(predictor, prepared, replace(params, margin=predictor.crop.margin),
                                    on_stage=on_stage, views=views)
    return SpotResult("spot", prepared, found, sig)


def spot_and_classify(predictor, clip, mode: str = "auto", params: SpotParams = SpotParams(),
                      fps: float | None = None, on_stage: Callable[[str], None] | None = None) -> SpotResult:
    """A recording (path or decoded clip) through ``predictor`` (:class:`inference.runtime.Predictor`): decoded and
    aligned with every frame kept, then spotted and each micro-expression classified, or — a clip under
    :data:`WHOLE_CLIP_MAX_S`, or ``mode="whole"`` — classified as one expression as ``predictor.predict`` does."""
    mode, prepared = ModePreparer(predictor.preparer, mode)(clip, fps, on_stage)
    return classify_prepared(predictor, mode, prepared, params, on_stage)


def describe(params: SpotParams) -> dict:
    """The settings as plain values (for reports and output files); a learned spotter file by its SHA-256 too."""
    out = {"method": "optical-flow feature difference on facial blocks (MDMD family: Wang et al. 2017; FD scheme: "
                     "Moilanen et al. 2014, Li et al. 2018)", **asdict(params)}
    if params.spotter:
        from .files import file_sha256

        out["method"] += "; peaks from a learned per-frame classifier (python -m training.spot_learn)"
        out["spotter_sha256"] = file_sha256(params.spotter)
    return out
