"""Synthetic long recordings: a face behaving neutrally for 10–30 s, with micro-expressions at known times.

Ground truth for spotting (``python -m training.spot_eval``). A recording shows one synthetic subject
(:class:`training.synth.faces.FaceSource`: identity, skin, light, sensor noise, sub-pixel jitter) and a timeline of
events, none overlapping another:

==============  ==========================================================================  ==============
event           what moves                                                                  annotated as
==============  ==========================================================================  ==============
micro           the AU motion model of :mod:`.faces` (1.5–3.5 px at a 60 px inter-ocular     micro-expression
                distance, asymmetric), onset → apex → offset in 0.2–0.45 s
macro           the same AUs at 6–12 px, rising, held, falling: 1–2.5 s                       macro-expression
blink           both upper lids down and up (AU43 on both sides alike), 0.15–0.3 s            not annotated
head            the whole head turns: shift (up to a quarter of the inter-ocular distance),     not annotated
                roll (±4°) and a yaw-like narrowing, out and back in 0.8–1.6 s
talk            chin and lips down and up (AU17 + AU24 reversed), 3–5 times a second, 1.5–3 s   not annotated
==============  ==========================================================================  ==============

:func:`plan_events` draws a timeline, :func:`render` renders it, :func:`recording` does both. The layout writers
(:func:`training.datasets.casme_sq.write_synthetic`, :func:`training.datasets.samm_lv.write_synthetic`) put the
recordings into the datasets' layouts; ``python -m training.synth long --layout casme_sq …`` is the command.
"""

from __future__ import annotations

import argparse
import math
import shutil
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from inference.errors import InputError, cli

from .cli import _finish, _size, _staging, range_type
from .faces import FaceSource, aus_for

EVENT_KINDS = ("micro", "macro", "blink", "head", "talk")
ANNOTATED = ("micro", "macro")
# Seconds: (shortest, longest) of each event, and the gap kept free around it.
DURATIONS = {"micro": (0.2, 0.45), "macro": (1.0, 2.5), "blink": (0.15, 0.3), "head": (0.8, 1.6), "talk": (1.5, 3.0)}
GUARD_S = {"micro": 0.7, "macro": 0.4, "blink": 0.4, "head": 0.4, "talk": 0.4}


@dataclass
class LongEvent:
    kind: str  # one of EVENT_KINDS
    onset: int  # 0-based frame indices within the recording
    apex: int
    offset: int
    emotion: str | None = None  # micro / macro: the emotion rendered
    aus: tuple[str, ...] = ()
    side: str = "none"  # micro / macro: the image side that moves more

    def as_dict(self) -> dict:
        d = asdict(self)
        d["aus"] = list(self.aus)
        return d


@dataclass
class LongRecording:
    frames: np.ndarray  # (T, H, W, 3) uint8
    fps: float
    events: list[LongEvent]
    landmarks: np.ndarray  # (T, 5, 2): the face's landmarks in every frame (they follow the head)
    subject: int

    @property
    def truths(self) -> list[LongEvent]:
        return [e for e in self.events if e.kind in ANNOTATED]


def plan_events(n_frames: int, fps: float, rng: np.random.Generator, micro: tuple[int, int] = (1, 3),
                emotions: tuple[str, ...] = ("negative", "positive", "surprise"),
                distractors: bool = True, blink_every_s: float = 3.5) -> list[LongEvent]:
    """A timeline: ``micro`` (min, max) micro-expressions and, with ``distractors``, 0–1 macro-expression, 0–1 stretch
    of talking, 1–2 head turns and a blink every ``blink_every_s`` on average; no two events overlap."""
    busy = np.zeros(n_frames, bool)
    events: list[LongEvent] = []

    def place(kind: str, emotion: str | None = None) -> None:
        lo, hi = DURATIONS[kind]
        length = max(3, int(round(rng.uniform(lo, hi) * fps)))
        guard = int(round(GUARD_S[kind] * fps))
        for _ in range(200):
            start = int(rng.integers(guard, max(guard + 1, n_frames - length - guard)))
            a, b = max(0, start - guard), min(n_frames, start + length + guard)
            if start + length <= n_frames and not busy[a:b].any():
                busy[start:start + length] = True
                end = start + length - 1
                rise = rng.uniform(0.35, 0.6) if kind == "micro" else rng.uniform(0.25, 0.45)
                apex = start + max(1, int(round(rise * (length - 1)))) if kind != "head" else (start + end) // 2
                events.append(LongEvent(kind, start, min(apex, end - 1), end, emotion))
                return

    for _ in range(int(rng.integers(micro[0], micro[1] + 1))):
        place("micro", str(rng.choice(emotions)))
    if distractors:
        if rng.random() < 0.6:
            place("macro", str(rng.choice(emotions)))
        if rng.random() < 0.6:
            place("talk")
        for _ in range(int(rng.integers(1, 3))):
            place("head")
        for _ in range(int(round(n_frames / fps / blink_every_s))):
            place("blink")
    return sorted(events, key=lambda e: e.onset)


def _raised(t: np.ndarray, a: float, b: float) -> np.ndarray:
    """0 at ``a``, 1 at ``b`` (half a cosine), for ``a < t < b``."""
    return 0.5 - 0.5 * np.cos(np.pi * np.clip((t - a) / max(b - a, 1e-9), 0, 1))


def envelope(e: LongEvent, n_frames: int, fps: float, rng: np.random.Generator) -> np.ndarray:
    """The event's amplitude (0…1) on every frame of the recording."""
    t = np.arange(n_frames, dtype=np.float64)
    inside = (t >= e.onset) & (t <= e.offset)
    amp = np.zeros(n_frames)
    if e.kind == "macro":  # rise to the apex, hold, fall over about the same time as the rise
        fall = e.offset - max(1, e.apex - e.onset)
        amp = np.where(t <= e.apex, _raised(t, e.onset, e.apex), 1 - _raised(t, fall, e.offset))
    elif e.kind == "talk":  # the mouth opens and closes 3–5 times a second, fading in and out
        hz = rng.uniform(3, 5)
        fade = np.minimum(_raised(t, e.onset, e.onset + 0.3 * fps), 1 - _raised(t, e.offset - 0.3 * fps, e.offset))
        amp = np.abs(np.sin(np.pi * hz * (t - e.onset) / fps)) * fade * rng.uniform(0.7, 1.0)
    else:  # micro, blink, head: up to the apex, back down to the offset
        amp = np.where(t <= e.apex, _raised(t, e.onset, e.apex), 1 - _raised(t, e.apex, e.offset))
    return np.where(inside, amp, 0.0)


def render(source: FaceSource, subject: int, events: list[LongEvent], n_frames: int, fps: float,
           rng: np.random.Generator, noise: float = 2.0) -> LongRecording:
    """The recording's frames: local motion fields (expressions, blinks, talking) on the subject's face, then the
    head's pose (turns, a slow drift and sub-pixel jitter), then sensor noise."""
    ident = source.identity(subject)
    h, w = source.frame_size
    scale = ident.iod / 60.0  # motion amplitudes are stated for a 60 px inter-ocular distance
    fields, amps = [], []
    head = np.zeros((n_frames, 4))  # dx, dy, roll (rad), yaw narrowing
    for e in events:
        amp = envelope(e, n_frames, fps, rng)
        if e.kind in ("micro", "macro"):
            e.aus = tuple(aus_for(e.emotion or "others", rng))
            e.side = str(rng.choice(["left", "right"])) if e.aus else "none"
            px = rng.uniform(1.5, 3.5) if e.kind == "micro" else rng.uniform(6.0, 12.0)
            fields.append(source._expression_field(ident, list(e.aus), px * scale, e.side, rng.uniform(0.1, 0.5)))
        elif e.kind == "blink":
            fields.append(source._expression_field(ident, ["AU43"], rng.uniform(5.0, 7.0) * scale, "left", 1.0))
        elif e.kind == "talk":
            fields.append(source._expression_field(ident, ["AU17", "AU24"], -rng.uniform(3.0, 5.0) * scale, "left",
                                                   1.0))
        else:  # head
            pose = np.array([rng.uniform(-0.25, 0.25) * ident.iod, rng.uniform(-0.12, 0.12) * ident.iod,
                             math.radians(rng.uniform(-4, 4)), rng.uniform(0.0, 0.07)])
            head += amp[:, None] * pose
            continue
        amps.append(amp)
    drift = rng.normal(0, 0.3 * scale, 2) / max(1, n_frames - 1)
    jitter = rng.normal(0, 0.08 * scale, (n_frames, 2))
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    centre = ident.landmarks.mean(0)
    bank = source._noise_bank(noise)
    frames = np.empty((n_frames, h, w, 3), np.uint8)
    landmarks = np.empty((n_frames, 5, 2))
    for i in range(n_frames):
        field = None
        for f, a in zip(fields, amps):
            if a[i] > 0:
                field = f * np.float32(a[i]) if field is None else field + f * np.float32(a[i])
        img = ident.image if field is None else cv2.remap(ident.image, xs - field[..., 0], ys - field[..., 1],
                                                          cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        dx, dy, roll, narrow = head[i]
        c, s = math.cos(roll), math.sin(roll)
        lin = np.array([[c, -s], [s, c]]) @ np.diag([1.0 - narrow, 1.0])
        shift = np.array([dx, dy]) + drift * i + jitter[i]
        m = np.hstack([lin, (centre + shift - lin @ centre)[:, None]])
        img = cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        grain = np.roll(bank[int(rng.integers(len(bank)))], int(rng.integers(h * w)) * 3)
        frames[i] = np.clip(img.astype(np.int16) + grain, 0, 255).astype(np.uint8)
        landmarks[i] = ident.landmarks @ m[:, :2].T + m[:, 2]
    if source.grey:
        frames[:] = frames.mean(axis=-1, keepdims=True).astype(np.uint8)
    return LongRecording(frames, float(fps), events, landmarks, int(subject))


def recording(source: FaceSource, subject: int, seconds: float, fps: float, rng: np.random.Generator,
              **plan_options) -> LongRecording:
    """A timeline drawn by :func:`plan_events` and rendered."""
    n = max(int(round(seconds * fps)), 3)
    return render(source, subject, plan_events(n, fps, rng, **plan_options), n, fps, rng)


def write_events(path: Path, listing: list[dict]) -> Path:
    """Every rendered event of every recording (annotated or not), as JSON: ``[{video, subject, fps, frames,
    events: [{kind, onset, apex, offset, emotion, aus, side}]}]`` with 0-based frame indices."""
    from inference.files import write_json_atomic

    return write_json_atomic(path, listing)


def aligned_frames(rec: LongRecording, size: int = 64, margin: float = 0.1, follow_head: bool = False) -> np.ndarray:
    """The recording's face cropped as :mod:`inference.face` aligns it, from the known landmarks (no detector): one
    fixed crop from the median landmarks, or with ``follow_head`` a crop per frame."""
    from inference.face import CropSettings, output_crop_matrix, warp

    crop = CropSettings(size=size, margin=margin)
    fixed = output_crop_matrix(np.median(rec.landmarks, axis=0), crop)
    return np.stack([warp(f, output_crop_matrix(lm, crop) if follow_head else fixed, size)
                     for f, lm in zip(rec.frames, rec.landmarks)])


# ---------------------------------------------------------------- command line (python -m training.synth long)

LAYOUTS = ("casme_sq", "samm_lv")


def build_parser() -> argparse.ArgumentParser:
    seconds = range_type(float, "SECONDS or MIN-MAX such as 10-30", 0.1,
                         "durations must be at least 0.1 s, and MIN <= MAX")

    p = argparse.ArgumentParser(
        prog="python -m training.synth long",
        description="Write synthetic long recordings in the layout of CAS(ME)² (casme_sq) or SAMM Long Videos "
                    "(samm_lv): a face behaving neutrally with blinks, head turns, talking and macro-expressions, and "
                    "1–3 micro-expressions at known times, annotated in the dataset's own sheet, so that "
                    "python -m training.spot_eval has ground truth.",
        epilog="Example: python -m training.synth long --layout casme_sq --out data/casme_sq-synth --subjects 4 "
               "--videos-per-subject 5 --seconds 10-30 --seed 7")
    p.add_argument("--layout", required=True, choices=LAYOUTS, help="which dataset's layout to write")
    p.add_argument("--out", required=True, type=Path, help="output folder (must not exist or be empty)")
    p.add_argument("--subjects", type=int, default=4, help="number of subjects (default 4)")
    p.add_argument("--videos-per-subject", type=int, default=5, help="recordings per subject (default 5)")
    p.add_argument("--seconds", type=seconds, default=(10.0, 30.0),
                   help="length of each recording, SECONDS or MIN-MAX (default 10-30)")
    p.add_argument("--micro", type=int, nargs=2, default=(1, 3), metavar=("MIN", "MAX"),
                   help="micro-expressions per recording (default 1 3)")
    p.add_argument("--no-distractors", action="store_true",
                   help="no blinks, head turns, talking or macro-expressions")
    p.add_argument("--seed", type=int, default=0, help="random seed: the same seed writes the same dataset")
    p.add_argument("--frame-size", type=_size, default=None,
                   help="HEIGHTxWIDTH of the frames (default: the layout's, e.g. 480x640 for CAS(ME)²)")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it already holds files")
    return p


@cli
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from tqdm import tqdm

    from ..datasets.registry import long_dataset_module

    if args.subjects < 1 or args.videos_per_subject < 1:
        raise InputError("--subjects and --videos-per-subject must be at least 1")
    if not 0 <= args.micro[0] <= args.micro[1]:
        raise InputError("--micro MIN MAX needs 0 <= MIN <= MAX")
    module = long_dataset_module(args.layout)
    source = FaceSource(args.frame_size or module.FRAME_SIZE, seed=args.seed, grey=module.GREY)
    t0 = time.perf_counter()
    out: Path = args.out
    tmp = _staging(out, args.overwrite)  # renamed to --out at the end: a stopped run leaves no half dataset
    try:
        with tqdm(total=args.subjects * args.videos_per_subject, desc=args.layout, unit="video") as bar:
            module.write_synthetic(tmp, source, args.subjects, args.videos_per_subject,
                                   np.random.default_rng(args.seed), seconds=args.seconds, micro=tuple(args.micro),
                                   distractors=not args.no_distractors, progress=bar.update)
        _finish(tmp, out, args, ["long", *(sys.argv[2:] if argv is None else argv)])
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    result = module.load(out)
    print(f"wrote {out} in {time.perf_counter() - t0:.1f} s: {result.summary()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
