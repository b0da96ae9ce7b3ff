"""SAMM (Davison et al. 2018, Manchester Metropolitan University), read exactly as distributed.

The folder the user points at (or the one above or below it) holds::

    SAMM_Micro_FACS_Codes_v2.xlsx      13 rows of title and notes, the header in row 14, data from row 15:
                                       Subject, Filename, Inducement Code, Onset Frame, Apex Frame, Offset Frame,
                                       Duration, Type, Action Units, Notes, Estimated Emotion (159 rows, 32 subjects)
    006/006_1_2/006_05562.jpg …        raw frames, 200 fps (also accepted inside a SAMM/ folder)
    SAMM_CROP/006/006_1_2/006_05562.jpg …   the cropped faces (the sheet may also sit inside SAMM_CROP/)

The header row is found by its content (the row that names Subject and Filename), not by its position.
Subjects are written "006" in the sheet and as folder names; they become the integer 6. Frame numbers in
the sheet are the numbers in the file names (``Onset Frame 5562`` is ``006_05562.jpg``).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from inference.errors import InputError
from training.datasets.base import ClipRecord, LoadResult, match_sheet, subject_id
from training.datasets.sheets import annotated_clip, au_code, draw_rows, find_sheet, read_sheet, spelling, write_frames
from training.labels import composite_label, normalise
from training.synth.source import ClipSource

NAME = "samm"
FPS = 200
VARIANTS = ("raw", "cropped")

SHEET = "SAMM_Micro_FACS_Codes_v2.xlsx"
SHEET_GLOB = "SAMM_Micro_FACS_Codes*.xlsx"
CROP_FOLDER = "SAMM_CROP"
HEADER_ROW = 14  # what the writer reproduces; the loader finds the header by its content
COLUMNS = ("Subject", "Filename", "Inducement Code", "Onset Frame", "Apex Frame", "Offset Frame", "Duration", "Type",
           "Action Units", "Notes", "Estimated Emotion")
# Estimated Emotion over the 159 micro-movements.
FREQUENCIES = {"anger": 57, "contempt": 12, "disgust": 9, "fear": 8, "happiness": 26, "other": 26, "sadness": 6,
               "surprise": 15}
LABELS = tuple(FREQUENCIES)
_SUBJECT_DIR = re.compile(r"^\d{3}$")
_HINT = ("point --root at the SAMM folder that holds SAMM_Micro_FACS_Codes_v2.xlsx and the subject folders "
         "006/, 007/ … (or SAMM_CROP/)")


def load(root: Path, variant: str = "auto") -> LoadResult:
    root = Path(root)
    home, sheet = _find_home(root)
    tree, variant = _frame_tree(home, variant)
    rows = read_sheet(sheet)
    folders = _clip_folders(tree)
    return match_sheet(rows, folders, sheet.name, lambda row, used: _record(row, folders, used, sheet.name, variant))


def _find_home(root: Path) -> tuple[Path, Path]:
    return find_sheet(root, SHEET_GLOB, SHEET, _HINT, prefer=SHEET)


def _frame_tree(home: Path, variant: str) -> tuple[Path, str]:
    cropped_home = CROP_FOLDER.lower() in home.name.lower()
    candidates = {
        "cropped": [home] if cropped_home else [home / CROP_FOLDER, home / CROP_FOLDER / CROP_FOLDER,
                                                home.parent / CROP_FOLDER],
        "raw": [home.parent / "SAMM", home.parent] if cropped_home else [home, home / "SAMM", home / "SAMM" / "SAMM"],
    }
    found = {v: next((p for p in candidates[v] if _has_subjects(p)), None) for v in VARIANTS}
    if variant == "auto":
        variant = "cropped" if found["cropped"] else "raw"
    if variant not in VARIANTS:
        raise InputError(f"unknown SAMM variant {variant!r}; use one of {', '.join(VARIANTS)} or auto.")
    if found[variant] is None:
        where = home / CROP_FOLDER if variant == "cropped" and not cropped_home else home
        raise InputError(f"no {variant} SAMM frames: expected subject folders 006/, 007/ … in {where}; {_HINT}.")
    return found[variant], variant


def _has_subjects(folder: Path) -> bool:
    return folder.is_dir() and any(p.is_dir() and _SUBJECT_DIR.match(p.name) for p in folder.iterdir())


def _clip_folders(tree: Path) -> dict[str, Path]:
    """Every clip folder by its name (006_1_2 names its subject, so names are unique)."""
    return {clip.name: clip for subject in tree.iterdir() if subject.is_dir() and _SUBJECT_DIR.match(subject.name)
            for clip in subject.iterdir() if clip.is_dir()}


def _record(row: dict, folders: dict[str, Path], used: set, sheet: str, variant: str):
    """(record, clip id, None) for a usable row, else (None, clip id, why not)."""
    clip = _text(row.get("filename"))
    if not clip:
        return None, f"row {row['_row']}", f"no Filename ({sheet} row {row['_row']})"
    try:
        subject = subject_id(row.get("subject"))
    except ValueError:
        return None, clip, f"no subject number in {row.get('subject')!r} ({sheet} row {row['_row']})"
    if clip in used:
        return None, clip, f"duplicate row in {sheet} (row {row['_row']})"
    folder = folders.get(clip)
    if folder is None:
        return None, clip, f"row {row['_row']} of {sheet} has no frame folder {subject:03d}/{clip}"
    used.add(clip)
    if subject_id(folder.parent.name) != subject:
        return None, clip, f"sheet says subject {subject} but the folder is in {folder.parent.name}/"
    found = annotated_clip(row, folder, LABELS)
    if isinstance(found, str):
        return None, clip, found
    emotion, raw_label, frames, onset, apex, offset = found
    extra = {"sheet": sheet, "sheet_label": raw_label, "action_units": _text(row.get("actionunits")),
             "inducement_code": row.get("inducementcode"), "type": _text(row.get("type")),
             "notes": _text(row.get("notes")), "variant": variant}
    return ClipRecord(NAME, subject, clip, emotion, frames, onset=onset, apex=apex, offset=offset, fps=FPS,
                      composite=composite_label(NAME, emotion), extra=extra), clip, None


def _text(value) -> str:
    return "" if value is None else str(value).strip()


# --- synthetic copies in the real layout ---------------------------------------------------------------------

# The sheet capitalises its labels ("Anger", "Other"); a few rows are spelled otherwise.
_SPELLINGS = {"anger": ("Anger", "Anger", "Anger", "Anger "), "contempt": ("Contempt",), "disgust": ("Disgust",),
              "fear": ("Fear",), "happiness": ("Happiness", "Happiness", "happiness"),
              "other": ("Other", "Other", "other"),
              "sadness": ("Sadness",), "surprise": ("Surprise",)}
_AUS = ("R14A", "12", "4+7", "L2", "R12B", "1+2", "4", "14", "7", "R10", "12+15", "A1+A2")
_PREAMBLE = (
    "SAMM: Spontaneous Actions and Micro-Movements - Micro-Movement FACS Codes (v2)",
    "Frame rate 200 fps. Frame numbers are the numbers in the image file names.",
    "Onset/Apex/Offset Frame: first, peak and last frame of the movement; Duration in frames.",
    "Inducement Code: the stimulus that induced the movement.",
    "Estimated Emotion: based on the AUs and the stimulus; Other when none fits.",
)


def write_synthetic(root: Path, source: ClipSource, subjects: int, clips_per_subject: int,
                    rng: np.random.Generator, variant: str = "cropped", n_frames: tuple[int, int] = (12, 24),
                    plan: list[tuple[int, str]] | None = None) -> None:
    """A small SAMM: the FACS codes sheet (title block, header in row 14) and the raw or cropped frames."""
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    root = Path(root)
    tree = root if variant == "raw" else root / CROP_FOLDER
    rows = draw_rows(range(6, 6 + subjects), clips_per_subject, rng, FREQUENCIES, plan)
    takes: dict[tuple[int, int], int] = {}
    sheet_rows = []
    for subject, label in rows:
        emotion = normalise(label)
        clip = source.micro(subject, emotion, int(rng.integers(n_frames[0], n_frames[1] + 1)), rng)
        inducement = int(rng.integers(1, 8))
        takes[(subject, inducement)] = takes.get((subject, inducement), 0) + 1
        name = f"{subject:03d}_{inducement}_{takes[(subject, inducement)]}"
        first = int(rng.integers(1000, 9000))
        numbers = [first + i for i in range(len(clip.frames))]
        write_frames(tree / f"{subject:03d}" / name, clip.frames, [f"{subject:03d}_{n:05d}.jpg" for n in numbers],
                     clip.face_box if variant == "cropped" else None)
        onset, apex, offset = numbers[clip.onset], numbers[clip.apex], numbers[clip.offset]
        drawn = str(rng.choice(_AUS))  # drawn in any case: the rest of the set stays as it was
        sheet_rows.append((f"{subject:03d}", name, inducement, onset, apex, offset, offset - onset + 1, "Micro",
                           au_code(clip.aus) or drawn, None, spelling(label, _SPELLINGS, rng)))
    _write_sheet(root / SHEET, sheet_rows)


def _write_sheet(path: Path, rows: list[tuple]) -> None:
    import openpyxl

    path.parent.mkdir(parents=True, exist_ok=True)
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "Sheet1"
    for number, text in enumerate(_PREAMBLE, start=1):
        sheet.cell(row=number, column=1, value=text)
    for column, title in enumerate(COLUMNS, start=1):
        sheet.cell(row=HEADER_ROW, column=column, value=title)
    for offset, row in enumerate(rows, start=1):
        for column, value in enumerate(row, start=1):
            sheet.cell(row=HEADER_ROW + offset, column=column, value=value)
    book.save(path)
