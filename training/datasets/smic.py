"""SMIC-HS (Li et al. 2013, University of Oulu), the high-speed camera part, read exactly as distributed.

There is no annotation sheet: the label is the folder a clip sits in. The folder the user points at is
``SMIC_all_cropped`` or ``SMIC_all_raw`` (or the ``SMIC`` folder holding them, or their ``HS`` folder)::

    SMIC_all_cropped/HS/s1/micro/negative/s1_ne_01/reg_image036237.bmp …   cropped faces
    SMIC_all_raw/HS/s1/micro/negative/s1_ne_01/image036237.bmp …           raw frames, 100 fps
                        micro/positive/s1_po_01/,  micro/surprise/s1_sur_01/
                        non_micro/…   (not micro-expressions; not read)

Onset / apex / offset: the HS clips are already cut from the onset to the offset of the expression, so
``onset`` is the first frame number present, ``offset`` the last, and ``apex`` is None (not annotated; the
SMIC-E long videos, which this loader does not read, have their own annotation sheet). ``segment()`` is
the whole clip. Clip ids are the folder names (``s1_ne_01``), which name their subject.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from inference.errors import InputError
from inference.video import natural_key
from training.datasets.base import ClipRecord, LoadResult, frame_number, frames_of, subject_id
from training.datasets.sheets import draw_rows, write_frames
from training.labels import composite_label, normalise
from training.synth.source import ClipSource

NAME = "smic"
FPS = 100
VARIANTS = ("raw", "cropped")

TOPS = {"cropped": "SMIC_all_cropped", "raw": "SMIC_all_raw"}
PREFIX = {"cropped": "reg_image", "raw": "image"}
# The 164 HS micro-expression clips of 16 subjects.
FREQUENCIES = {"negative": 70, "positive": 51, "surprise": 43}
LABELS = tuple(FREQUENCIES)
CODES = {"negative": "ne", "positive": "po", "surprise": "sur"}  # s1_ne_01, s1_po_01, s1_sur_01
_HINT = ("point --root at SMIC_all_cropped or SMIC_all_raw (the folder holding HS/s1/micro/negative/s1_ne_01/ …), "
         "or at the SMIC folder that holds them")


def load(root: Path, variant: str = "auto") -> LoadResult:
    root = Path(root)
    trees = _trees(root)
    if variant == "auto":
        variant = "cropped" if "cropped" in trees else "raw"
    if variant not in VARIANTS:
        raise InputError(f"unknown SMIC variant {variant!r}; use one of {', '.join(VARIANTS)} or auto.")
    if not trees:
        raise InputError(f"no SMIC-HS clips in {root}: expected HS/s1/micro/… inside {TOPS['cropped']}/ or "
                         f"{TOPS['raw']}/; {_HINT}.")
    if variant not in trees:
        raise InputError(f"no {variant} SMIC-HS clips near {root}: expected {TOPS[variant]}/HS/; {_HINT}.")
    records, dropped = [], []
    for subject_dir in sorted((p for p in trees[variant].iterdir() if p.is_dir()), key=lambda p: natural_key(p.name)):
        try:
            subject = subject_id(subject_dir.name)
        except ValueError:
            dropped.append((subject_dir.name, f"{subject_dir} is not a subject folder (s1, s2 …)"))
            continue
        micro = subject_dir / "micro"
        if micro.is_dir():
            _read_subject(micro, subject, variant, records, dropped)
    return LoadResult(records, dropped)


def _trees(root: Path) -> dict[str, Path]:
    """The HS folder of each variant: root is a top folder or its HS folder (that variant only), or holds them."""
    if not root.is_dir():
        return {}
    for folder in (root, root.parent):
        for variant, top in TOPS.items():
            if folder.name == top and (folder / "HS").is_dir():
                return {variant: folder / "HS"}
    trees = {}
    for base in (root, root / "SMIC"):
        for variant, top in TOPS.items():
            for folder in (base / top, base / top / top):  # some downloads nest the top folder in itself
                if (folder / "HS").is_dir():
                    trees.setdefault(variant, folder / "HS")
    if not trees:  # an HS folder under another name: tell the variants apart by the frame file names
        hs = root if root.name == "HS" else root / "HS"
        if hs.is_dir():
            first = next(hs.glob("*/micro/*/*/*.bmp"), None)
            trees["cropped" if first is not None and first.name.startswith("reg_") else "raw"] = hs
    return trees


def _read_subject(micro: Path, subject: int, variant: str, records: list, dropped: list) -> None:
    for label_dir in sorted(p for p in micro.iterdir() if p.is_dir()):
        emotion = normalise(label_dir.name)
        for clip_dir in sorted((p for p in label_dir.iterdir() if p.is_dir()), key=lambda p: natural_key(p.name)):
            clip = clip_dir.name
            reason = _problem(clip, emotion, label_dir.name, subject)
            frames = () if reason else frames_of(clip_dir)
            if not reason and not frames:
                reason = f"no frame images in {clip_dir}"
            if reason:
                dropped.append((clip, reason))
                continue
            records.append(ClipRecord(
                NAME, subject, clip, emotion, frames, onset=frame_number(frames[0]), apex=None,
                offset=frame_number(frames[-1]), fps=FPS, composite=composite_label(NAME, emotion),
                extra={"variant": variant, "label_folder": label_dir.name}))


def _problem(clip: str, emotion: str, folder: str, subject: int) -> str | None:
    """Why a clip folder cannot be used, or None: its label folder and its name must agree (s1_ne_01 in negative/)."""
    if emotion not in LABELS:
        return f"unknown label folder {folder!r} (expected {', '.join(LABELS)})"
    parts = clip.split("_")
    if len(parts) >= 2 and normalise(parts[1]) in LABELS and normalise(parts[1]) != emotion:
        return f"clip name says {normalise(parts[1])} but it is in the {folder}/ folder"
    try:
        if subject_id(parts[0]) != subject:
            return f"clip name says subject {parts[0]} but it is in the s{subject}/ folder"
    except ValueError:
        pass
    return None


# --- synthetic copies in the real layout ---------------------------------------------------------------------

def write_synthetic(root: Path, source: ClipSource, subjects: int, clips_per_subject: int,
                    rng: np.random.Generator, variant: str = "cropped", n_frames: tuple[int, int] = (12, 24),
                    plan: list[tuple[int, str]] | None = None) -> None:
    """A small SMIC-HS under ``root``/SMIC_all_cropped/HS (or SMIC_all_raw/HS): label folders, .bmp frames.

    Each clip is cut to its onset..offset, as the real HS clips are. A plan's emotion must be one of
    negative / positive / surprise (any spelling :func:`normalise` knows, e.g. "ne", "Positive")."""
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    hs = Path(root) / TOPS[variant] / "HS"
    counts: dict[tuple[int, str], int] = {}
    for subject, label in draw_rows(range(1, subjects + 1), clips_per_subject, rng, FREQUENCIES, plan):
        emotion = normalise(label)
        if emotion not in CODES:
            raise ValueError(f"SMIC labels are folders {', '.join(LABELS)}; cannot write {label!r}")
        clip = source.micro(subject, emotion, int(rng.integers(n_frames[0], n_frames[1] + 1)), rng)
        counts[(subject, emotion)] = counts.get((subject, emotion), 0) + 1
        name = f"s{subject}_{CODES[emotion]}_{counts[(subject, emotion)]:02d}"
        cut = clip.frames[clip.onset:clip.offset + 1]
        first = int(rng.integers(1000, 99000))  # six-digit, zero-padded numbers: image036237.bmp
        write_frames(hs / f"s{subject}" / "micro" / emotion / name, cut,
                     [f"{PREFIX[variant]}{first + i:06d}.bmp" for i in range(len(cut))],
                     clip.face_box if variant == "cropped" else None)
