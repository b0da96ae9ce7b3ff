"""Spot, then recognise: one pipeline from a recording to one result (:class:`Recognition`).

    recording ─ decode (inference.video) ─ choose the mode (:func:`choose_mode`; auto: spot a recording of a
              second or more, classify a shorter clip whole)
              ─ prepare (inference.preprocess.Preparer: track, align; whole: the package's frame count; spot: every
                frame of the face segment)
              ─ spot (inference.spotting) ─ each interval ± :data:`CLIP_MARGIN_S` as a clip (:func:`interval_clips`)
              ─ the model (its input made from each clip, one batched call, the views fused) ─▶ :class:`Recognition`

:class:`Recogniser` is the pipeline: a model (anything with :class:`Model`'s members;
:class:`inference.runtime.Predictor` is one) with the spotter's settings and a mode. The demo (``demo.app.Analyser``),
the batch command (``python -m inference``), the Python API (``Predictor.analyse``; ``Predictor.predict`` is its
whole-clip mode) and the spotting evaluation (``training.spot_eval``, which also runs it without a model: spot only)
all go through it, with the same defaults: :data:`DEFAULT_MODE`, ``SpotParams()`` with the crop's margin
(:func:`spot_settings`, the one place that rule is applied), :data:`CLIP_MARGIN_S`, :data:`RECOGNISED_KINDS`. The
same clip and mode give the same answer through every entry point (``tests/test_recognise.py``).

Where it sits: above the model in the data flow, yet it imports no runtime module: the model is reached through the
:class:`Model` protocol, and ``inference.runtime`` imports this module for ``Predictor.analyse``. The imports run one
way, ``runtime → recognise → spotting → learned_spotter → facemotion``, with no circle and no lazy import.
The probabilities are the package graph's fused ones; a package's calibration (a temperature) belongs in
``Model.classify``, so every entry point gets it at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

import numpy as np

from .errors import InputError
from .face import CropSettings
from .preprocess import PreparedClip, Preparer
from .spotting import Interval, Signals, SpotParams, load_spotter, motion_signals, spot_events, to_rows

MODES = ("auto", "spot", "whole")
DEFAULT_MODE = "auto"  # every entry point's default
WHOLE_CLIP_MAX_S = 1.0  # auto mode: a clip shorter than this is one expression (dataset clips: 0.2–0.5 s)
ONE_EXPRESSION_MAX_S = 3.0  # auto mode: a clip up to this long is one expression when its motion says so
ONSET_NEAR_START = 0.4  # ... its movement starts within this fraction of the clip,
APEX_BEFORE_END = 0.9  # ... peaks before this fraction of it,
LASTS_PAST = 0.5  # ... lasts (over half its peak) past this fraction of it,
FALLS_TO = 0.7  # ... and falls back below this fraction of its peak by the end
MOVED = 3.5  # ... and moves at least this many times the flow's noise (frame-to-frame motion, its median)
AUTO_RULE = (f"Auto mode: a clip shorter than {WHOLE_CLIP_MAX_S:g} s, or a folder of frames without a frame rate, is "
             f"one expression and is classified whole; a clip up to {ONE_EXPRESSION_MAX_S:g} s is classified whole "
             f"when it holds one expression from onset to offset, as the datasets' clips do (the face's motion from "
             f"the first frame starts within the first {ONSET_NEAR_START:.0%} of the clip, rises once, peaks before "
             f"its last {1 - APEX_BEFORE_END:.0%}, lasts past its middle and falls back below {FALLS_TO:.0%} of its "
             f"peak); anything else — a longer "
             f"recording, a still face, a movement that does not rise and fall inside the clip — is searched for "
             f"micro-expressions (spotted).")
CLIP_MARGIN_S = 0.1  # a spotted interval goes to the model widened by this on both sides
RECOGNISED_KINDS = ("micro",)  # the spotted kinds the model classifies (macro-expressions are reported, not classified)
NO_MICRO = "no micro-expression found"
STILL = ("the face does not move at all in this clip (every aligned frame is the same): there is no expression to "
         "classify")


class Model(Protocol):
    """What the pipeline needs of a model (:class:`inference.runtime.Predictor` has it): its clip path, its labels
    and default test views, and ``classify``: prepared clips through the graph in one call, one prediction each (with
    ``.top``, ``.probs``, ``.labels``, ``.timings`` and ``.as_dict()``); ``apexes``: per clip, the frame a flow-image
    input takes as the apex."""

    labels: list[str]
    views: str

    @property
    def preparer(self) -> Preparer: ...

    def classify(self, prepared: list[PreparedClip], views: str | None = None,
                 apexes: list[int | None] | None = None) -> list: ...


def spot_settings(params: SpotParams, crop: CropSettings) -> SpotParams:
    """The spotter's settings for faces aligned with ``crop``: its facial regions sit where this crop's margin puts
    the face. The one place the rule is applied (the pipeline, ``training.spot_learn``)."""
    return replace(params, margin=crop.margin)


def choose_mode(n_frames: int, fps: float | None, mode: str = "auto") -> str:
    """"spot" or "whole" for a clip from its length alone: ``auto`` keeps whole-clip mode for clips under
    :data:`WHOLE_CLIP_MAX_S` and frame folders without a frame rate (the datasets' onset→offset clips), and spots
    the rest. The pipeline (:class:`ModePreparer`) then looks at a clip up to :data:`ONE_EXPRESSION_MAX_S` once its
    face is aligned (:func:`one_expression`): the full rule is :data:`AUTO_RULE`."""
    return _by_length(n_frames, fps, mode)[0]


def _by_length(n_frames: int, fps: float | None, mode: str) -> tuple[str, str]:
    if mode not in MODES:
        raise InputError(f"unknown mode {mode!r}; use {', '.join(MODES)}")
    if mode == "spot" and not fps:
        raise InputError("--mode spot needs the frame rate; give --fps for a folder of frames")
    if mode != "auto":
        return mode, f"{mode} mode was asked for"
    if not fps:
        return "whole", "a folder of frames without a frame rate is one expression (a dataset clip)"
    seconds = n_frames / fps
    if seconds < WHOLE_CLIP_MAX_S:
        return "whole", f"a {seconds:.2f} s clip (under {WHOLE_CLIP_MAX_S:g} s) is one expression"
    return "spot", f"a {seconds:.1f} s recording is searched for micro-expressions"


@dataclass(frozen=True)
class ModeChoice:
    """Which mode the pipeline applied to a recording, and why (in words, for the page and the batch rows)."""

    mode: str  # "spot" or "whole"
    reason: str
    asked: str = DEFAULT_MODE  # the mode asked for: auto, spot or whole


def still(frames: np.ndarray) -> bool:
    """Whether an aligned face clip ``(T, S, S, 3)`` never changes: every frame equal to the first (a photo, a frozen
    stream, one frame repeated). Its min-max flow image is all zeros, and a model's answer to it says nothing of the
    face, so whole mode classifies nothing (:data:`STILL`). A still with codec or sensor noise is not caught: measured
    on real clips, its onset → apex flow lies too close to the subtlest real micro-expression's to tell apart."""
    frames = np.asarray(frames)
    return len(frames) > 1 and bool((frames == frames[:1]).all())


def expression_course(frames: np.ndarray, fps: float, params: SpotParams = SpotParams()) -> tuple[np.ndarray, float]:
    """How far the face has moved from the clip's first frame, frame by frame (the spotter's working frames: every
    ``step``-th at ``work_fps``): optical flow first frame → frame on the facial blocks, the head's motion removed,
    the mean of the strongest third of the blocks, in pixels of the spotter's working size; and the flow's noise: the
    median of the same measure between consecutive frames."""
    from .facemotion import BlockMotion, _grey_work, _top_third, flows

    grey, _, _ = _grey_work(frames, fps, params)
    blocks = BlockMotion(grey.shape[1], params.margin)
    pairs = [(grey[0], g) for g in grey] + [(a, b) for a, b in zip(grey[:-1], grey[1:])]
    own, _ = blocks.split_many(flows(pairs))
    moved = _top_third(np.linalg.norm(own, axis=-1))
    return moved[:len(grey)], float(np.median(moved[len(grey):])) if len(grey) > 1 else 0.0


def one_expression(frames: np.ndarray, fps: float, params: SpotParams = SpotParams()) -> tuple[bool, str]:
    """Is an aligned face clip one expression from onset to offset (a dataset clip)? Its motion from the first frame
    (:func:`expression_course`) must reach :data:`MOVED` × its noise, start within the first
    :data:`ONSET_NEAR_START` of the clip (the frames before it exceeds half its peak), be one movement (the frames
    over half its peak in one run, short dips aside, lasting past :data:`LASTS_PAST` of the clip), peak before
    :data:`APEX_BEFORE_END` of it and fall back below :data:`FALLS_TO` × its peak by the end.
    Returns the answer and why, in words."""
    course, noise = expression_course(frames, fps, params)
    n = len(course)
    seconds = len(frames) / fps
    peak = float(course.max()) if n else 0.0
    if n < 3 or peak <= MOVED * noise:
        return False, f"the face barely moves in this {seconds:.1f} s clip"
    apex = int(np.argmax(course))
    high = course >= 0.5 * peak
    onset = int(np.argmax(high))
    fallen = float(course[apex:].min()) / peak
    at = lambda i: i / (n - 1) * seconds  # noqa: E731 — working frame → seconds
    rises = np.flatnonzero(high[1:] & ~high[:-1]) + 1  # where the motion climbs over half its peak again
    if len(rises) + (not high[0]) > 1 and np.diff(np.flatnonzero(high)).max() > max(2, n // 20):
        return False, f"it holds more than one movement ({seconds:.1f} s)"
    if onset > ONSET_NEAR_START * (n - 1):
        return False, f"its movement starts late ({at(onset):.2f} s into {seconds:.1f} s)"
    last = int(np.flatnonzero(high)[-1])
    if last < LASTS_PAST * (n - 1):
        return False, f"its movement is over early ({at(last):.2f} s into {seconds:.1f} s)"
    if apex > APEX_BEFORE_END * (n - 1) or fallen > FALLS_TO:
        return False, f"its movement does not fall back inside the clip (peak at {at(apex):.2f} s of {seconds:.1f} s)"
    return True, (f"one movement rises from the start and falls back inside this {seconds:.1f} s clip (peak at "
                  f"{at(apex):.2f} s): one expression, as a dataset clip")


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


@dataclass(repr=False)
class SpottedPrediction:
    """An interval and what the model says about it (``prediction`` is the runtime's Prediction)."""

    interval: Interval
    start: int
    end: int
    prediction: object

    def as_dict(self, fps: float | None, first_frame: int = 0) -> dict:
        """Frames and seconds counted from the recording's frame ``first_frame`` (:attr:`Recognition.first_frame`:
        where the prepared face segment starts)."""
        iv = self.interval
        row = to_rows([replace(iv, onset=iv.onset + first_frame, apex=iv.apex + first_frame,
                               offset=iv.offset + first_frame)], fps)[0]
        row.pop("interval")
        row.update(clip_start=self.start + first_frame, clip_end=self.end + first_frame)
        if self.prediction is not None:
            row.update(self.prediction.as_dict())
        return row

    def describe(self, fps: float | None = None, first_frame: int = 0) -> str:
        """A line: kind, frames (of the recording from ``first_frame``), seconds, score, and the model's verdict."""
        iv = self.interval
        text = f"{iv.kind} {iv.onset + first_frame}–{iv.offset + first_frame} (apex {iv.apex + first_frame}"
        if fps:
            start, _, end = iv.seconds(fps)
            text += f"; {start + first_frame / fps:.2f}–{end + first_frame / fps:.2f} s"
        text += f"; score {iv.score:.3g})"
        p = self.prediction
        if p is not None:
            text += f" → {getattr(p, 'verdict', p.top)} {float(np.max(p.probs)):.3f}"
        return text

    def __repr__(self) -> str:
        return f"SpottedPrediction({self.describe()})"


def classify_intervals(predictor, prepared, params: SpotParams = SpotParams(), margin_s: float = CLIP_MARGIN_S,
                       kinds: Sequence[str] = RECOGNISED_KINDS, on_stage: Callable[[str], None] | None = None,
                       views: str | None = None, rejected: list | None = None
                       ) -> tuple[list[SpottedPrediction], Signals]:
    """Spot, then recognise: ``prepared`` is a prepared clip with *every* frame kept (``PreparedClip`` with
    ``n_frames=None``, or any frozen dataclass with ``.frames`` and ``.fps``); ``predictor`` a :class:`Model`
    (:class:`inference.runtime.Predictor`), or None to spot only (``prediction`` None everywhere).

    Every spotted interval is returned; those of the asked ``kinds`` are classified: each becomes a copy of
    ``prepared`` holding its frames (with the margin) as they are — the package makes its input from them (an RGB
    package resamples them to its frame count; a flow-image package's image is the flow from the clip's first frame,
    the onset less the margin, to the spotted apex) — and all go
    through the model in one call. No micro-expression interval means "no micro-expression found", a valid answer.
    ``rejected``: a list that gets the motion peaks the spotter left out (:class:`inference.spotting.Rejected`)."""
    if on_stage:
        on_stage("spot")
    sig = motion_signals(prepared.frames, prepared.fps, params)
    intervals, left_out = spot_events(sig, len(prepared.frames), prepared.fps, params)
    if rejected is not None:
        rejected.extend(left_out)
    clips = interval_clips(prepared.frames, intervals, prepared.fps, margin_s)
    asked = [c for c in clips if c.interval.kind in kinds] if predictor is not None else []
    predictions = {}
    if asked:
        if on_stage:
            on_stage("model")
        inputs = [replace(prepared, frames=c.frames) for c in asked]
        apexes = [c.interval.apex - c.start for c in asked]  # a flow-image package: clip's first frame → the apex
        predictions = {id(c): p for c, p in zip(asked, predictor.classify(inputs, views, apexes))}
    return [SpottedPrediction(c.interval, c.start, c.end, predictions.get(id(c))) for c in clips], sig


@dataclass(frozen=True)
class ModePreparer:
    """Decode, choose the mode, then prepare: ``whole`` through ``preparer`` as the whole-clip path always did (e.g.
    only the frames the package's frame count reads), ``spot`` with every frame of the face segment kept. Auto mode
    (:data:`AUTO_RULE`): by length (:func:`choose_mode`), and a clip between :data:`WHOLE_CLIP_MAX_S` and
    :data:`ONE_EXPRESSION_MAX_S` by its aligned face's motion (:func:`one_expression`; when it is one expression it
    is prepared again as a whole clip, so the answer is exactly ``Predictor.predict``'s). Returns
    ``(ModeChoice, PreparedClip)``; a small frozen object, so the batch command's worker processes get a copy
    (``inference.pipeline.prepared_clips``)."""

    preparer: Preparer
    mode: str = DEFAULT_MODE
    params: SpotParams = SpotParams()  # the spotter's settings (working size and rate, crop margin)

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
        mode, reason = _by_length(clip.n_frames, clip.fps, self.mode)
        stages = on_stage and (lambda stage: stage == "decode" or on_stage(stage))
        preparer = self.preparer if mode == "whole" else replace(self.preparer, n_frames=None)
        prepared = preparer(clip, fps, stages)
        if self.mode == "auto" and mode == "spot" and clip.n_frames / clip.fps <= ONE_EXPRESSION_MAX_S:
            whole, why = one_expression(prepared.frames, prepared.fps, spot_settings(self.params,
                                                                                     self.preparer.crop))
            reason = f"{why}: classified whole" if whole else f"{why}: searched for micro-expressions"
            if whole:
                mode, face = "whole", prepared.timings["face"]
                prepared = self.preparer(clip, fps, stages)
                prepared = replace(prepared, timings={**prepared.timings, "face": prepared.timings["face"] + face})
        prepared = replace(prepared, timings={**prepared.timings, "decode": prepared.timings["decode"] + decode})
        return ModeChoice(mode, reason[:1].upper() + reason[1:], self.mode), prepared


@dataclass(repr=False)
class Recognition:
    """What the pipeline found in a recording: the one result type of every entry point. ``print()`` shows a summary
    (:meth:`__repr__`); :meth:`as_dict` gives plain values.

    Spot mode: ``intervals`` holds every spotted interval (frames of ``prepared``; add :attr:`first_frame` for the
    recording's), the micro-expressions with the model's prediction (:attr:`micro`; empty: "no micro-expression
    found", a valid answer), and ``signals`` the spotter's signals (a timeline plot). Whole mode: ``whole`` is the
    clip's prediction — None when the face does not move at all (:func:`still`; :data:`STILL` in the notes)."""

    mode: str  # "spot" or "whole"
    prepared: PreparedClip  # the aligned face: every frame of the segment (spot), the model's frame count (whole)
    intervals: list[SpottedPrediction]  # spot mode: every spotted interval
    signals: Signals | None  # spot mode: the signals behind them
    whole: object | None = None  # whole mode: the clip's prediction
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage, "total" among them
    why: str = ""  # why this mode was applied, in words (auto mode: the rule's verdict, :data:`AUTO_RULE`)
    rejected: list = field(default_factory=list)  # spot mode: motion peaks the spotter left out, and why

    @property
    def first_frame(self) -> int:
        """The decoded frame that the prepared (and spotted) frame 0 is: the face track may start later."""
        quality = getattr(self.prepared, "quality", None)
        return int(quality.frames_used[0]) if quality is not None else 0

    @property
    def micro(self) -> list[SpottedPrediction]:
        """The micro-expressions found; empty means "no micro-expression found"."""
        return [p for p in self.intervals if p.interval.kind == "micro"]

    @property
    def predictions(self) -> list:
        """What the model said: the whole clip's prediction, or each classified interval's."""
        if self.mode == "whole":
            return [self.whole] if self.whole is not None else []
        return [p.prediction for p in self.intervals if p.prediction is not None]

    @property
    def notes(self) -> list[str]:
        """What the verdict rests on, in words: "no micro-expression found" (spot mode), the motion peaks the spotter
        left out and why, the macro-expressions (listed, not classified), then the face track's."""
        spotted = [STILL] if self.mode == "whole" and self.whole is None else []
        if self.mode == "spot":
            spotted = [NO_MICRO] if not self.micro else []
            fps = self.prepared.fps
            spotted += [r.describe(fps, self.first_frame) for r in self.rejected]
            for p in self.intervals:
                if p.interval.kind not in RECOGNISED_KINDS and fps:
                    iv, first = p.interval, self.first_frame
                    start, end = (iv.onset + first) / fps, (iv.offset + first + 1) / fps
                    spotted.append(f"a movement at {start:.2f}–{end:.2f} s lasted {iv.length / fps:.2f} s, longer "
                                   f"than a micro-expression: a {iv.kind}-expression, listed but not classified")
        return spotted + list(self.prepared.notes)

    def as_dict(self) -> dict:
        """Plain values: the mode, the recording's facts, each interval (frames and seconds of the recording, the
        model's label and probabilities) or the whole clip's prediction, the quality and the timings."""
        prepared = self.prepared
        out = {"mode": self.mode, "why": self.why, "source": str(prepared.source), "fps": prepared.fps,
               "frames": int(prepared.input_frames), "first_frame": self.first_frame,
               "faces_seen": prepared.faces_seen, "face_coverage": round(prepared.face_coverage, 4),
               "notes": self.notes, "timings_s": {k: round(v, 4) for k, v in self.timings.items()}}
        if self.mode == "whole":
            out["prediction"] = self.whole.as_dict() if self.whole is not None else None
        else:
            out["micro"] = len(self.micro)
            out["intervals"] = [p.as_dict(prepared.fps, self.first_frame) for p in self.intervals]
            out["rejected"] = [r.as_dict(prepared.fps, self.first_frame) for r in self.rejected]
        return out

    def __repr__(self) -> str:
        prepared = self.prepared
        text = (f"Recognition(mode={self.mode!r}, source={Path(str(prepared.source)).name!r}, "
                f"frames={prepared.input_frames}, fps={prepared.fps and round(prepared.fps, 3)}")
        if self.mode == "whole":
            p = self.whole
            text += f", whole={p.top} {float(np.max(p.probs)):.3f}" if p is not None else ", whole=None"
        else:
            shown = [p.describe(prepared.fps, self.first_frame) for p in self.intervals]
            text += f", micro={len(self.micro)}, intervals=[{'; '.join(shown)}], left_out={len(self.rejected)}"
        return text + f", face_coverage={prepared.face_coverage:.2f})"


@dataclass(frozen=True)
class Recogniser:
    """The pipeline: ``Recogniser(model)(path)`` → :class:`Recognition` (decode, choose the mode, prepare, spot,
    classify). ``model``: a :class:`Model` (:class:`inference.runtime.Predictor`), or None to spot only (then give
    ``preparer``). ``params``: the spotter's settings (a learned spotter file is read and checked here, before any
    recording); the crop margin is set from the preparer's crop (:func:`spot_settings`). ``mode``: auto, spot or
    whole. ``preparer``: how recordings are decoded and aligned (default: the model's).

    For work split across processes (the batch command): :attr:`preparing` (a :class:`ModePreparer`, which pickles)
    decodes and aligns in workers; :meth:`finish` / :meth:`finish_many` take its results through the spotter and the
    model here."""

    model: Model | None
    params: SpotParams = SpotParams()
    mode: str = DEFAULT_MODE
    preparer: Preparer | None = None
    margin_s: float = CLIP_MARGIN_S
    kinds: tuple[str, ...] = RECOGNISED_KINDS

    def __post_init__(self):
        if self.mode not in MODES:
            raise InputError(f"unknown mode {self.mode!r}; use {', '.join(MODES)}")
        preparer = self.preparer if self.preparer is not None else getattr(self.model, "preparer", None)
        if preparer is None:
            raise ValueError("a Recogniser needs a model, or a preparer to spot without one")
        object.__setattr__(self, "preparer", preparer)
        object.__setattr__(self, "params", spot_settings(self.params, preparer.crop))
        if self.params.spotter:
            load_spotter(self.params.spotter, self.params)  # a wrong file is refused before any recording is read

    @property
    def preparing(self) -> ModePreparer:
        """Decode, choose the mode and prepare: ``(mode, PreparedClip)`` for :meth:`finish`."""
        return ModePreparer(self.preparer, self.mode, self.params)

    def __call__(self, clip, fps: float | None = None, on_stage: Callable[[str], None] | None = None,
                 views: str | None = None, mode: str | None = None) -> Recognition:
        """A recording (a path or a decoded :class:`inference.video.Clip`) → :class:`Recognition`. ``on_stage(name)``
        is told "decode", "face", "spot" and "model" as each starts; ``views``: test views (default the model's);
        ``mode``: this call's instead of the pipeline's."""
        mode, prepared = ModePreparer(self.preparer, mode or self.mode, self.params)(clip, fps, on_stage)
        return self.finish(mode, prepared, on_stage, views)

    def finish(self, mode: str | ModeChoice, prepared: PreparedClip, on_stage: Callable[[str], None] | None = None,
               views: str | None = None) -> Recognition:
        """:attr:`preparing`'s result through the spotter (spot mode) and the model."""
        return self.finish_many([(mode, prepared)], on_stage, views)[0]

    def finish_many(self, items: Sequence[tuple[str | ModeChoice, PreparedClip]],
                    on_stage: Callable[[str], None] | None = None, views: str | None = None) -> list[Recognition]:
        """Several prepared clips: the whole clips through the model in one call, each recording to spot on its own
        (its intervals in one call). A mode is a :class:`ModeChoice` (:attr:`preparing`'s) or its name."""
        items = [(m if isinstance(m, ModeChoice) else ModeChoice(m, f"{m} mode"), p) for m, p in items]
        out: list[Recognition | None] = [None] * len(items)
        whole, stills = [], []  # stills: nothing to classify, no answer (said in the notes)
        for i, (choice, prepared) in enumerate(items):
            if choice.mode == "whole":
                (stills if still(prepared.frames) else whole).append(i)
        for i in stills:
            choice, prepared = items[i]
            out[i] = Recognition("whole", prepared, [], None, None,
                                 {**prepared.timings, "total": sum(prepared.timings.values())}, choice.reason)
        if whole:
            if self.model is None:
                raise InputError("whole-clip mode needs a model package; give one, or spot (mode spot)")
            if on_stage:
                on_stage("model")
            predictions = self.model.classify([items[i][1] for i in whole], views)
            for i, p in zip(whole, predictions, strict=True):
                out[i] = Recognition("whole", items[i][1], [], None, p, dict(p.timings), items[i][0].reason)
        for i, (choice, prepared) in enumerate(items):
            if choice.mode != "whole":
                out[i] = self._spot(prepared, on_stage, views, choice.reason)
        return out

    def _spot(self, prepared: PreparedClip, on_stage, views, why: str = "") -> Recognition:
        t0 = time.perf_counter()
        rejected: list = []
        found, sig = classify_intervals(self.model, prepared, self.params, self.margin_s, self.kinds, on_stage, views,
                                        rejected)
        model = sum(p.prediction.timings.get("model", 0.0) for p in found if p.prediction is not None)
        timings = {**prepared.timings, "spot": time.perf_counter() - t0 - model, "model": model}
        timings["total"] = sum(timings.values())
        return Recognition("spot", prepared, found, sig, None, timings, why, rejected)
