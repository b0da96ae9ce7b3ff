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

The spotter is three modules, each importing only the ones below it: :mod:`inference.facemotion` (the settings
:class:`SpotParams`, the facial regions, block motion and :class:`Signals`), :mod:`inference.learned_spotter` (the
learned spotter and its file format) and this one (peaks → intervals, :func:`spot`); their public names are read from
here too. Spot, then recognise — a recording → intervals (or the whole clip) → the model → one result — is
:mod:`inference.recognise`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from .facemotion import (  # noqa: F401 — the spotter's settings, regions and signals, read from here too
    BROWS,
    EYES,
    MOUTH,
    BlockMotion,
    Signals,
    SpotParams,
    block_layout,
    face_regions,
    flow,
    flows,
    motion_signals,
)
from .learned_spotter import LearnedSpotter, load_spotter, spotter_file  # noqa: F401 — the learned spotter, read here too

KINDS = ("micro", "macro")


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
    return spot_events(sig, n_frames, fps, params)[0]


EDGE_STRONG = 3.0  # a peak within 2k of either end is reported (left out: "edge") when this many times the threshold:
# the contrast there compares with frames clamped to the ends, and noise alone reaches about twice the threshold
REASONS = {  # why a motion peak was left out (:class:`Rejected`), in words
    "short": "shorter than any expression ({length})",
    "blink": "a blink (both eyes alike, {length})",
    "head": "head movement (the head moved more than the face)",
    "talking": "talking (the mouth moving several times a second)",
    "threshold": "below the threshold (motion {score:.2f} of the {threshold:.2f} needed)",
    "edge": "too near the start or the end of the recording to compare with the frames around it (the spotter "
            "needs {edge} on both sides)",
}


@dataclass(frozen=True)
class Rejected:
    """A motion peak the spotter grew into a movement and left out (or, when nothing was found, the strongest peak
    under the threshold): frame indices of the frames given to :func:`spot`, and why (a key of :data:`REASONS`)."""

    onset: int
    apex: int
    offset: int
    reason: str
    score: float  # the contrast at the peak (learned spotter: its probability)
    threshold: float  # what the score had to exceed
    edge: int = 0  # frames the spotter needs on both sides of a peak (2k)

    def words(self, fps: float | None = None) -> str:
        length = f"{(self.offset - self.onset + 1) / fps * 1000:.0f} ms" if fps else f"{self.length} frames"
        edge = f"{self.edge / fps:.2f} s" if fps else f"{self.edge} frames"
        return REASONS[self.reason].format(length=length, score=self.score, threshold=self.threshold, edge=edge)

    @property
    def length(self) -> int:
        return self.offset - self.onset + 1

    def describe(self, fps: float | None = None, first_frame: int = 0) -> str:
        """A note: where the peak was (seconds of the recording from ``first_frame``) and why it was left out."""
        where = (f"{(self.onset + first_frame) / fps:.2f}–{(self.offset + first_frame + 1) / fps:.2f} s" if fps
                 else f"frames {self.onset + first_frame}–{self.offset + first_frame}")
        return f"a motion peak at {where} was left out: {self.words(fps)}"

    def as_dict(self, fps: float | None = None, first_frame: int = 0) -> dict:
        row = {"onset": self.onset + first_frame, "apex": self.apex + first_frame, "offset": self.offset + first_frame,
               "reason": self.reason, "why": self.words(fps), "score": round(float(self.score), 3)}
        if fps:
            row.update(start_s=round((self.onset + first_frame) / fps, 2),
                       end_s=round((self.offset + first_frame + 1) / fps, 2))
        return row


def _frames_of(ev: _Event, sig: Signals, n_frames: int) -> tuple[int, int, int]:
    """An event's onset, apex and offset in frames of the given clip (the signals may skip frames: ``step``)."""
    onset, apex = min(ev.onset * sig.step, n_frames - 1), min(ev.apex * sig.step, n_frames - 1)
    return onset, apex, min(ev.offset * sig.step + sig.step - 1, n_frames - 1)


def spot_events(sig: Signals, n_frames: int, fps: float, params: SpotParams = SpotParams()
                ) -> tuple[list[Interval], list[Rejected]]:
    """:func:`spot_signals`, and the motion peaks it left out with the reason (:class:`Rejected`, in time order):
    too short, a blink, head movement, talking; when nothing was found, also the strongest peak under the threshold.
    The intervals are exactly :func:`spot_signals`' (the reasons are recorded, the decisions unchanged)."""
    learned = load_spotter(params.spotter, params) if params.spotter else None
    blocks = BlockMotion(sig.grey.shape[1], params.margin)
    score, threshold = (learned.expression(sig), learned.threshold) if learned else (sig.contrast, sig.threshold)
    events = []
    grown: list[_Event] = []
    left_out: list[tuple[_Event, str, float]] = []
    for peak in _peaks(score, threshold, sig.k):
        if any(e.onset <= peak <= e.offset for e in grown):
            continue  # a weaker peak of a movement already found (a macro-expression's rise or fall)
        ev = _grow(sig, peak, blocks, params)
        grown.append(ev)
        if (ev.offset - ev.onset + 1) / sig.fps < params.min_s:
            left_out.append((ev, "short", float(score[peak])))
            continue  # a flicker, shorter than any expression
        if learned:
            ev.score = float(score[peak])
            events.append(ev)
            continue
        ev.score = (float(sig.contrast[peak]) - (sig.threshold - params.z * sig.noise)) / sig.noise
        if _is_blink(ev, sig, params):
            left_out.append((ev, "blink", float(score[peak])))
        elif _is_head(ev, params):
            left_out.append((ev, "head", float(score[peak])))
        else:
            events.append(ev)
    events = _merge(events, sig.k // 2 + 1)
    if not learned:
        kept = []
        for e in events:
            if _is_talking(e, sig, blocks, params):
                left_out.append((e, "talking", float(score[e.apex])))
            else:
                kept.append(e)
        events = kept
    out = []
    for ev in events:
        onset, apex, offset = _frames_of(ev, sig, n_frames)
        kind = "micro" if (offset - onset + 1) / fps <= params.micro_max_s else "macro"
        out.append(Interval(onset, apex, offset, kind, round(ev.score, 3)))
    rejected = [Rejected(*_frames_of(ev, sig, n_frames), reason, value, float(threshold))
                for ev, reason, value in left_out]
    score = np.asarray(score)
    edge, t = 2 * sig.k, len(score)

    def window(peak: int) -> tuple[int, int, int]:
        return _frames_of(_Event(max(0, peak - sig.k), peak, min(t - 1, peak + sig.k), 0.0), sig, n_frames)

    for lo, hi in ((0, min(edge, t)), (max(edge, t - edge), t)):  # peaks over the threshold the spotter cannot judge
        if hi > lo and score[lo:hi].max() > EDGE_STRONG * threshold:
            peak = lo + int(np.argmax(score[lo:hi]))
            if score[peak] >= score[max(0, peak - 1):peak + 2].max() and not any(e.onset <= peak <= e.offset
                                                                                 for e in grown):
                rejected.append(Rejected(*window(peak), "edge", float(score[peak]), float(threshold),
                                         edge * sig.step))
    if not out and not rejected and t > 2 * edge:  # nothing at all: the strongest motion, and how far it fell short
        peak = edge + int(np.argmax(score[edge:t - edge]))
        if score[peak] >= 0.75 * threshold > 0:
            rejected.append(Rejected(*window(peak), "threshold", float(score[peak]), float(threshold)))
    return out, sorted(rejected, key=lambda r: r.onset)


def describe(params: SpotParams) -> dict:
    """The settings as plain values (for reports and output files); a learned spotter file by its SHA-256 too."""
    out = {"method": "optical-flow feature difference on facial blocks (MDMD family: Wang et al. 2017; FD scheme: "
                     "Moilanen et al. 2014, Li et al. 2018)", **asdict(params)}
    if params.spotter:
        from .files import file_sha256

        out["method"] += "; peaks from a learned per-frame classifier (python -m training.spot_learn)"
        out["spotter_sha256"] = file_sha256(spotter_file(params.spotter))  # a file, a package folder or hf://
    return out
