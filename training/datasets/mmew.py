"""MMEW (Micro-and-Macro Expression Warehouse, Ben et al., TPAMI 2021): 300 micro-expressions, 90 fps.

As distributed (the ``MMEW_Final`` folder)::

    Micro_Expression/happiness/S03-01-002/1.jpg 2.jpg … 10.jpg …   one folder per clip, frames "N.jpg"
    Macro_Expression/S03/happiness/S03-01-001.jpg                   single stills (not loaded here)
    MMEW_Micro_Exp.xlsx    Subject | Filename | OnsetFrame | ApexFrame | OffsetFrame | Action Units |
                           Estimated Emotion | remarks

Clip folders are named ``PersonIndex-EmotionIndex-SampleIndex`` and sit in a folder named after the
emotion (some copies add a subject level, ``Micro_Expression/S03/happiness/S03-01-002``; both are read).
Onset, apex and offset are the numbers of the frame files. The sheet is the source of truth: a row whose
folder is missing, and a folder the sheet does not name, are dropped with the reason. A few rows have no
usable apex/offset in some releases; those fields are left empty (the raw cell is kept in ``extra``).

``root`` may be ``MMEW_Final`` itself, the folder above it, or ``Micro_Expression``; the sheet is looked
for beside ``Micro_Expression`` and one folder up (some copies keep it outside ``MMEW_Final``), or given
as ``sheet=``.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from inference.errors import InputError
from inference.video import IMAGE_EXTENSIONS
from training.datasets.base import ClipRecord, LoadResult, frames_of, subject_id
from training.datasets.sheets import frame_cell, read_sheet
from training.labels import composite_label, normalise
from training.synth.source import ClipSource

NAME = "mmew"
FPS = 90.0
VARIANTS = ("micro",)  # the macro part ships single stills, not clips
MICRO_DIR = "Micro_Expression"
MACRO_DIR = "Macro_Expression"
SHEET = "MMEW_Micro_Exp.xlsx"
# The EmotionIndex of clip names: happiness 01 (S03-01-002 on the dataset page) … anger 07.
EMOTION_INDEX = {"happiness": 1, "surprise": 2, "disgust": 3, "others": 4, "fear": 5, "sadness": 6, "anger": 7}


def load(root: Path, variant: str = "auto", sheet: Path | None = None) -> LoadResult:
    """Every row of the annotation sheet whose clip folder exists, as a record."""
    if variant not in ("auto", *VARIANTS):
        raise InputError(f"MMEW has no variant {variant!r}; use one of: auto, {', '.join(VARIANTS)} "
                         f"(the macro-expressions are single stills, not clips).")
    micro = _locate(Path(root))
    rows = _read_sheet(Path(sheet) if sheet is not None else _find_sheet(micro))
    folders = _clip_folders(micro)
    records, dropped, seen = [], [], set()
    for row in rows:
        clip = row["filename"]
        if clip in seen:
            dropped.append((clip, "duplicate sheet row"))
            continue
        seen.add(clip)
        record = _record(row, folders.get(clip))
        if isinstance(record, str):
            dropped.append((clip, record))
        else:
            records.append(record)
    dropped += [(name, "not in the annotation sheet") for name in sorted(set(folders) - seen)]
    return LoadResult(records, dropped)


def _record(row: dict, folder: Path | None) -> ClipRecord | str:
    emotion = normalise(row.get("estimatedemotion") or "")
    if not emotion:
        return "no emotion label"
    if folder is None:
        return "frame folder missing"
    frames = frames_of(folder)
    if not frames:
        return "no frames"
    try:
        subject = subject_id(row["filename"] if row.get("subject") in (None, "") else row["subject"])
    except ValueError:
        return "no subject number"
    extra = {"filename": row["filename"], "emotion_folder": folder.parent.name,
             "action_units": _text(row.get("actionunits")), "remarks": _text(row.get("remarks"))}
    marks = {}
    for key in ("onset", "apex", "offset"):
        marks[key] = frame_cell(row.get(f"{key}frame"))
        if marks[key] is None and _text(row.get(f"{key}frame")):
            extra[f"{key}_cell"] = _text(row.get(f"{key}frame"))
    return ClipRecord(dataset=NAME, subject=subject, clip=row["filename"], emotion=emotion, frames=frames,
                      fps=FPS, composite=composite_label(NAME, emotion), extra=extra, **marks)


def _text(value) -> str:
    return "" if value is None else str(value).strip()


# Other spellings of the sheet's columns, onto the keys read_sheet gives the usual ones.
_ALIASES = {"onset": "onsetframe", "apex": "apexframe", "offset": "offsetframe", "aus": "actionunits",
            "au": "actionunits", "emotion": "estimatedemotion"}


def _read_sheet(path: Path) -> list[dict]:
    """Rows with a Filename, keyed as :func:`training.datasets.sheets.read_sheet` keys them."""
    rows = []
    for row in read_sheet(path, required=("filename",)):
        for alias, key in _ALIASES.items():
            if alias in row and key not in row:
                row[key] = row.pop(alias)
        if _text(row.get("filename")):
            row["filename"] = _text(row["filename"])
            rows.append(row)
    return rows


def _clip_folders(micro: Path) -> dict[str, Path]:
    """Clip name → folder, for every folder below ``Micro_Expression`` that holds frame images."""
    found: dict[str, Path] = {}
    for folder in sorted(p for p in micro.rglob("*") if p.is_dir()):
        if any(f.suffix.lower() in IMAGE_EXTENSIONS for f in folder.iterdir() if f.is_file()):
            found.setdefault(folder.name, folder)
    return found


def _is_micro(path: Path) -> bool:
    return path.is_dir() and re.sub(r"[^a-z]", "", path.name.lower()) == "microexpression"


def _locate(root: Path) -> Path:
    """The ``Micro_Expression`` folder: in root, in a folder of root, or root itself."""
    if not root.is_dir():
        raise InputError(f"{root}: no such folder. Point at the unpacked MMEW_Final folder.")
    if _is_micro(root):
        return root
    for base in (root, *(p for p in sorted(root.iterdir()) if p.is_dir())):
        found = [p for p in sorted(base.iterdir()) if _is_micro(p)] if base.is_dir() else []
        if found:
            return found[0]
    raise InputError(
        f"{root}: not the MMEW dataset. Expected {MICRO_DIR}/<emotion>/<clip>/1.jpg and {SHEET} here "
        f"(the MMEW_Final folder) or one folder above or below.")


def _find_sheet(micro: Path) -> Path:
    for folder in (micro.parent, micro.parent.parent):
        exact = folder / SHEET
        if exact.is_file():
            return exact
        found = sorted(p for p in folder.glob("*.xlsx") if "micro" in p.name.lower() and not p.name.startswith("~$"))
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            raise InputError(f"{folder}: several annotation sheets ({', '.join(p.name for p in found)}); "
                             f"choose one with sheet=.")
    raise InputError(f"{micro.parent}: no annotation sheet {SHEET} beside {micro.name}/. It ships with MMEW; "
                     f"put it there or give it with sheet=.")


# ---------------------------------------------------------------------------------------------------
# Synthetic copy in the distributed layout


def write_synthetic(root: Path, source: ClipSource, subjects: int, clips_per_subject: int,
                    rng: np.random.Generator, variant: str = "micro",
                    n_frames: tuple[int, int] = (12, 24)) -> None:
    """A small MMEW_Final in ``root``: ``Micro_Expression/<emotion>/<S01-EE-NNN>/N.jpg`` and the sheet.

    Frames are ``1.jpg`` … ``N.jpg`` (so string order is not frame order once N ≥ 10); the sheet's
    Estimated Emotion is written in mixed case for some rows; the last row has no apex or offset
    (as a few rows of the real sheet) when there are three clips or more. Macro stills are written too.
    """
    if variant not in VARIANTS:
        raise ValueError(f"MMEW variants: {VARIANTS}, got {variant!r}")
    import cv2

    root = Path(root)
    rows = []
    for s in range(1, subjects + 1):
        counts: dict[str, int] = {}
        for _ in range(clips_per_subject):
            emotion = str(rng.choice(list(EMOTION_INDEX)))
            counts[emotion] = counts.get(emotion, 0) + 1
            name = f"S{s:02d}-{EMOTION_INDEX[emotion]:02d}-{counts[emotion]:03d}"
            n = int(rng.integers(n_frames[0], n_frames[1] + 1))
            synth = source.micro(s, emotion, n, rng)
            folder = root / MICRO_DIR / emotion / name
            folder.mkdir(parents=True, exist_ok=True)
            for i, frame in enumerate(synth.frames, start=1):
                cv2.imwrite(str(folder / f"{i}.jpg"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
            label = emotion.capitalize() if len(rows) % 3 == 1 else emotion
            rows.append([f"S{s:02d}", name, synth.onset + 1, synth.apex + 1, synth.offset + 1,
                         "AU12" if emotion == "happiness" else "AU4+AU7", label, None])
        _write_macro_still(root, source, s, rng)
    if len(rows) >= 3:
        rows[-1][3:5] = [None, None]
    _write_sheet(root / SHEET, rows)


def _write_macro_still(root: Path, source: ClipSource, subject: int, rng: np.random.Generator) -> None:
    import cv2

    synth = source.macro(subject, "happiness", 6, rng)
    folder = root / MACRO_DIR / f"S{subject:02d}" / "happiness"
    folder.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(folder / f"S{subject:02d}-01-001.jpg"), cv2.cvtColor(synth.frames[synth.apex], cv2.COLOR_RGB2BGR))


def _write_sheet(path: Path, rows: list[list]) -> None:
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.title = "Sheet1"
    sheet.append(["Subject", "Filename", "OnsetFrame", "ApexFrame", "OffsetFrame", "Action Units",
                  "Estimated Emotion", "remarks"])
    for row in rows:
        sheet.append(row)
    book.save(path)
