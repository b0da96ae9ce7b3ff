"""CK+ (Extended Cohn-Kanade, Lucey et al. 2010): posed macro-expressions, neutral face → peak.

As distributed (four zip files, unpacked side by side; the ReadMe of the distribution)::

    cohn-kanade-images/S005/001/S005_001_00000001.png … S005_001_00000011.png
    Emotion/S005/001/S005_001_00000011_emotion.txt     "   3.0000000e+00"  (the peak frame's name)
    FACS/S005/001/S005_001_00000011_facs.txt           one "AU intensity" pair of floats per line
    Landmarks/S005/001/S005_001_00000001_landmarks.txt 68 "x y" lines per frame (not read here)

593 sequences of 123 subjects; only 327 have an emotion file ("if there is no file there is no emotion
label"), the others are dropped with the reason "no emotion label". Emotion codes: 0 neutral, 1 anger,
2 contempt, 3 disgust, 4 fear, 5 happy, 6 sadness, 7 surprise.

Neutral frames: every sequence starts at a neutral face and ends at the peak, which is its last frame.
A record holds the whole sequence; ``apex`` is the peak's frame number (from the emotion file's name),
``onset``/``offset`` are left empty because the annotation gives none. Protocols that take the first
frames as extra "neutral" samples do so downstream; the loader never invents records.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from inference.errors import InputError
from training.datasets.base import ClipRecord, LoadResult, frame_number, frames_of, subject_id
from training.labels import composite_label, normalise
from training.synth.source import ClipSource

NAME = "ckplus"
FPS = 30.0  # NTSC S-VHS recordings (Panasonic AG-7500), digitised frame by frame
VARIANTS = ("images",)

IMAGES, EMOTION, FACS, LANDMARKS = "cohn-kanade-images", "Emotion", "FACS", "Landmarks"
CODES = {0: "neutral", 1: "anger", 2: "contempt", 3: "disgust", 4: "fear", 5: "happy", 6: "sadness",
         7: "surprise"}
_SUBJECT = re.compile(r"^S\d+$")


def load(root: Path, variant: str = "auto") -> LoadResult:
    """Every sequence of ``cohn-kanade-images`` with its emotion code; unlabelled ones are dropped."""
    if variant not in ("auto", *VARIANTS):
        raise InputError(f"CK+ has no variant {variant!r}; use one of: auto, {', '.join(VARIANTS)}.")
    base = _locate(Path(root))
    records, dropped = [], []
    for subject_dir in _subdirs(base / IMAGES, _SUBJECT):
        for seq_dir in _subdirs(subject_dir):
            clip = f"{subject_dir.name}_{seq_dir.name}"
            record = _record(base, subject_dir.name, seq_dir.name, clip)
            if isinstance(record, str):
                dropped.append((clip, record))
            else:
                records.append(record)
    return LoadResult(records, dropped)


def _record(base: Path, subject: str, sequence: str, clip: str) -> ClipRecord | str:
    """The sequence's record, or the reason it is unusable."""
    frames = frames_of(base / IMAGES / subject / sequence)
    if not frames:
        return "no frames"
    labels = sorted((base / EMOTION / subject / sequence).glob("*_emotion.txt"))
    if not labels:
        return "no emotion label"
    if len(labels) > 1:
        return "several emotion files"
    code = _read_code(labels[0])
    if code is None:
        return "unreadable emotion file (expected one code 0-7)"
    emotion = normalise(CODES[code])
    return ClipRecord(
        dataset=NAME, subject=subject_id(subject), clip=clip, emotion=emotion, frames=frames,
        apex=frame_number(labels[0]), fps=FPS,
        composite=composite_label(NAME, emotion),
        extra={"label_code": code, "subject_folder": subject, "sequence": sequence,
               "action_units": _read_facs(base / FACS / subject / sequence)},
    )


def _read_code(path: Path) -> int | None:
    """The single float code of an emotion file ("   3.0000000e+00" → 3), or None if it is not one."""
    try:
        values = [float(v) for v in path.read_text(errors="replace").split()]
    except ValueError:
        return None
    if len(values) != 1 or not values[0].is_integer() or int(values[0]) not in CODES:
        return None
    return int(values[0])


def _read_facs(folder: Path) -> list[tuple[int, float]]:
    """(AU, intensity) pairs of the sequence's FACS file; empty when there is none or it is unreadable."""
    files = sorted(folder.glob("*_facs.txt")) if folder.is_dir() else []
    if not files:
        return []
    try:
        values = [float(v) for v in files[0].read_text(errors="replace").split()]
    except ValueError:
        return []
    return [(int(au), intensity) for au, intensity in zip(values[0::2], values[1::2])]


def _subdirs(folder: Path, pattern: re.Pattern | None = None) -> list[Path]:
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if p.is_dir() and (pattern is None or pattern.match(p.name))]
    return sorted(found, key=lambda p: p.name)


def _locate(root: Path) -> Path:
    """The folder holding ``cohn-kanade-images`` and ``Emotion``: root, one of its folders, or its parent."""
    if not root.is_dir():
        raise InputError(f"{root}: no such folder. Point at the unpacked CK+ folder (the one holding "
                         f"{IMAGES}/ and {EMOTION}/).")
    candidates = [root, *(p for p in sorted(root.iterdir()) if p.is_dir()), root.parent]
    found = [c for c in candidates if (c / IMAGES).is_dir()]
    if not found:
        raise InputError(
            f"{root}: not the CK+ dataset. Expected {IMAGES}/S005/001/S005_001_00000001.png … and "
            f"{EMOTION}/S005/001/S005_001_000000NN_emotion.txt here (unpack extended-cohn-kanade-images.zip "
            f"and Emotion_labels.zip side by side), or one folder above or below.")
    base = found[0]
    if not (base / EMOTION).is_dir():
        raise InputError(
            f"{base}: {IMAGES}/ is there but {EMOTION}/ is not. Unpack Emotion_labels.zip next to it "
            f"(it holds {EMOTION}/S005/001/S005_001_000000NN_emotion.txt).")
    return base


# ---------------------------------------------------------------------------------------------------
# Synthetic copy in the distributed layout

_FACS_BY_CODE = {1: (4, 5, 7, 23), 2: (14,), 3: (9, 15), 4: (1, 2, 4, 5, 20), 5: (6, 12), 6: (1, 4, 15),
                 7: (1, 2, 5, 27)}


def write_synthetic(root: Path, source: ClipSource, subjects: int, clips_per_subject: int,
                    rng: np.random.Generator, variant: str = "images",
                    n_frames: tuple[int, int] = (12, 24), unlabelled: float = 0.4) -> None:
    """A small CK+ in the distributed layout: sequences from neutral to the peak (their last frame).

    About ``unlabelled`` of the sequences get no emotion file (the real share is 266 of 593); when a
    subject has two or more sequences, at least one is labelled and one is not. Subject numbers are
    sparse (S005, S010, …), emotion files hold the code as "   3.0000000e+00", the emotion folder of an
    unlabelled sequence exists but is empty, and some sequences are grey-level PNGs as most of CK+ is.
    """
    root = Path(root)
    numbers = sorted(rng.choice(np.arange(5, 1000), size=subjects, replace=False).tolist())
    for number in numbers:
        labelled = rng.random(clips_per_subject) >= unlabelled
        if clips_per_subject >= 2:
            labelled[0], labelled[-1] = True, False
        for seq in range(1, clips_per_subject + 1):
            code = int(rng.integers(1, 8))
            _write_sequence(root, source, f"S{number:03d}", f"{seq:03d}", code, bool(labelled[seq - 1]),
                            rng, n_frames)


def _write_sequence(root: Path, source: ClipSource, subject: str, sequence: str, code: int, labelled: bool,
                    rng: np.random.Generator, n_frames: tuple[int, int]) -> None:
    import cv2

    n = int(rng.integers(n_frames[0], n_frames[1] + 1))
    synth = source.macro(subject_id(subject), CODES[code], n, rng)
    frames = synth.frames[: synth.apex + 1]  # CK+ sequences stop at the peak
    grey = bool(rng.random() < 0.7)
    stem = f"{subject}_{sequence}"
    folder = root / IMAGES / subject / sequence
    folder.mkdir(parents=True, exist_ok=True)
    for i, frame in enumerate(frames, start=1):
        image = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY if grey else cv2.COLOR_RGB2BGR)
        cv2.imwrite(str(folder / f"{stem}_{i:08d}.png"), image)
        _write_landmarks(root / LANDMARKS / subject / sequence / f"{stem}_{i:08d}_landmarks.txt", frame.shape)
    peak = f"{stem}_{len(frames):08d}"
    (root / EMOTION / subject / sequence).mkdir(parents=True, exist_ok=True)
    if labelled:
        (root / EMOTION / subject / sequence / f"{peak}_emotion.txt").write_text(f"   {code:.7e}\n")
    facs = root / FACS / subject / sequence / f"{peak}_facs.txt"
    facs.parent.mkdir(parents=True, exist_ok=True)
    facs.write_text("".join(f"   {au:.7e}   {0.0:.7e}\n" for au in _FACS_BY_CODE[code]))


def _write_landmarks(path: Path, shape: tuple[int, ...]) -> None:
    h, w = shape[:2]
    t = np.linspace(0, 2 * np.pi, 68, endpoint=False)
    points = np.stack([w / 2 + w / 4 * np.cos(t), h / 2 + h / 3 * np.sin(t)], axis=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"   {x:.7e}   {y:.7e}\n" for x, y in points))
