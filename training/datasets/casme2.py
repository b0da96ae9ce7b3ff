"""CASME II (Yan et al. 2014, Institute of Psychology, CAS), read exactly as distributed.

The folder the user points at (or the one above or below it) holds::

    CASME2-coding-20140508.xlsx          Sheet1, header in row 1: Subject, Filename, OnsetFrame, ApexFrame,
                                         OffsetFrame, Action Units, Estimated Emotion (255 rows, 26 subjects)
    CASME2-coding-20190701.xlsx          the 2019 revision: the same named columns plus two with empty headers
                                         (used instead of the 2014 sheet when both are present)
    CASME2-ObjectiveClasses.xlsx         optional: Subject, Filename, Objective Class (AU-based classes I–VII)
    CASME2_RAW_selected/sub01/EP02_01f/img46.jpg …      raw frames, 200 fps
    Cropped/sub01/EP02_01f/reg_img46.jpg …              cropped, registered faces

Frame numbers in the sheet are the numbers in the file names (``OnsetFrame 46`` is ``reg_img46.jpg``), and
files are ordered numerically: a string sort puts ``reg_img100`` before ``reg_img46``. The real sheet has
``/`` in some ApexFrame cells and ``0`` in a few OffsetFrame cells; such clips are kept with the value None.
Clip ids are ``sub01/EP02_01f`` because the file names repeat across subjects.

"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from inference.errors import InputError
from training.datasets.base import ClipRecord, LoadResult, match_sheet, subject_id
from training.datasets.sheets import annotated_clip, au_code, draw_rows, read_sheet, spelling, write_frames, write_table
from training.labels import composite_label, normalise
from training.synth.source import ClipSource

NAME = "casme2"
FPS = 200
VARIANTS = ("raw", "cropped")

SHEET_GLOB = "CASME2-coding-*.xlsx"
SHEET_2014 = "CASME2-coding-20140508.xlsx"
SHEET_2019 = "CASME2-coding-20190701.xlsx"
OBJECTIVE_SHEET = "CASME2-ObjectiveClasses.xlsx"
# Where each variant's frames live, relative to the sheet's folder (downloads sometimes nest a folder in itself).
TREES = {
    "raw": ("CASME2_RAW_selected", "CASME2_RAW_selected/CASME2_RAW_selected"),
    "cropped": ("Cropped", "Cropped/Cropped", "Cropped-updated/Cropped", "Cropped-updated"),
}
PREFIX = {"raw": "img", "cropped": "reg_img"}
# Estimated Emotion in the 2014 sheet: 255 rows.
FREQUENCIES = {"others": 99, "disgust": 63, "happiness": 32, "repression": 27, "surprise": 25, "sadness": 7, "fear": 2}
LABELS = tuple(FREQUENCIES)
COLUMNS_2014 = ("Subject", "Filename", "OnsetFrame", "ApexFrame", "OffsetFrame", "Action Units", "Estimated Emotion")
COLUMNS_2019 = ("Subject", "Filename", None, "OnsetFrame", "ApexFrame", "OffsetFrame", None, "Action Units",
                "Estimated Emotion")
_HINT = ("point --root at the CASME II folder that holds CASME2-coding-20140508.xlsx (or CASME2-coding-20190701.xlsx) "
         "and Cropped/ or CASME2_RAW_selected/")


def load(root: Path, variant: str = "auto") -> LoadResult:
    root = Path(root)
    home, sheet = _find_home(root)
    tree, variant = _frame_tree(home, variant)
    rows = read_sheet(sheet)
    objective = _objective_classes(home)
    folders = _clip_folders(tree)
    return match_sheet(rows, folders, sheet.name,
                       lambda row, used: _record(row, folders, used, sheet.name, objective, variant),
                       folder_id=lambda key: f"sub{key[0]:02d}/{key[1]}")


def _find_home(root: Path) -> tuple[Path, Path]:
    """The folder holding the coding sheet (root, the folder above it, or one below it) and the sheet to use."""
    if not root.is_dir():
        raise InputError(f"{root}: no such folder; {_HINT}.")
    candidates = [root, root.parent] + sorted(p for p in root.iterdir() if p.is_dir())
    for folder in candidates:
        sheets = sorted(folder.glob(SHEET_GLOB), key=lambda p: re.findall(r"\d{8}", p.name) or [""])
        sheets = [s for s in sheets if not s.name.startswith("~$")]  # Excel's lock files
        if sheets:
            return folder, sheets[-1]  # the newest revision
    raise InputError(f"no {SHEET_GLOB} sheet in {root}, the folder above it or the folders inside it; {_HINT}.")


def _frame_tree(home: Path, variant: str) -> tuple[Path, str]:
    found = {v: _first_tree(home, TREES[v]) for v in VARIANTS}
    if variant == "auto":
        variant = "cropped" if found["cropped"] else "raw"
    if variant not in VARIANTS:
        raise InputError(f"unknown CASME II variant {variant!r}; use one of {', '.join(VARIANTS)} or auto.")
    if found[variant] is None:
        expected = " or ".join(f"{home / t}/" for t in TREES[variant][:1])
        raise InputError(f"no {variant} CASME II frames: expected {expected} with sub01/, sub02/ … inside; {_HINT}.")
    return found[variant], variant


def _first_tree(home: Path, names) -> Path | None:
    for name in names:
        folder = home / name
        if folder.is_dir() and any(p.is_dir() and re.search(r"\d", p.name) for p in folder.iterdir()):
            return folder
    return None


def _clip_folders(tree: Path) -> dict[tuple[int, str], Path]:
    """Every clip folder under the tree, by (subject, folder name): sub01/EP02_01f → (1, "EP02_01f")."""
    folders = {}
    for subject_dir in tree.iterdir():
        if not subject_dir.is_dir() or not re.search(r"\d", subject_dir.name):
            continue
        for clip_dir in subject_dir.iterdir():
            if clip_dir.is_dir():
                folders[(subject_id(subject_dir.name), clip_dir.name)] = clip_dir
    return folders


def _objective_classes(home: Path) -> dict[tuple[int, str], object]:
    path = home / OBJECTIVE_SHEET
    if not path.is_file():
        return {}
    classes = {}
    for row in read_sheet(path):
        try:
            classes[(subject_id(row.get("subject")), str(row.get("filename")).strip())] = row.get("objectiveclass")
        except ValueError:
            continue
    return classes


def _record(row: dict, folders, used: set, sheet: str, objective: dict, variant: str):
    """(record, clip id, None) for a usable row, else (None, clip id, why not)."""
    name = str(row.get("filename") or "").strip()
    try:
        subject = subject_id(row.get("subject"))
    except ValueError:
        return None, f"row {row['_row']}", f"no subject number in {row.get('subject')!r} ({sheet} row {row['_row']})"
    clip = f"sub{subject:02d}/{name}"
    if not name:
        return None, f"row {row['_row']}", f"no Filename ({sheet} row {row['_row']})"
    if (subject, name) in used:
        return None, clip, f"duplicate row in {sheet} (row {row['_row']})"
    folder = folders.get((subject, name))
    if folder is None:
        return None, clip, f"row {row['_row']} of {sheet} has no frame folder sub{subject:02d}/{name}"
    used.add((subject, name))
    found = annotated_clip(row, folder, LABELS)
    if isinstance(found, str):
        return None, clip, found
    emotion, raw_label, frames, onset, apex, offset = found
    extra = {"sheet": sheet, "sheet_label": raw_label, "action_units": _text(row.get("actionunits")),
             "variant": variant, "objective_class": row.get("objectiveclass", objective.get((subject, name)))}
    return ClipRecord(NAME, subject, clip, emotion, frames, onset=onset, apex=apex, offset=offset, fps=FPS,
                      composite=composite_label(NAME, emotion), extra=extra), clip, None


def _text(value) -> str:
    return "" if value is None else str(value).strip()


# --- synthetic copies in the real layout ---------------------------------------------------------------------

# How the labels are written: mostly as the 2014 sheet spells them, sometimes as other sheets do.
_SPELLINGS = {"others": ("others", "others", "others", "Others", "others "), "happiness": ("happiness", "Happiness"),
              "disgust": ("disgust", "Disgust "), "repression": ("repression",), "surprise": ("surprise", "Surprise"),
              "sadness": ("sadness",), "fear": ("fear",)}
_AUS = ("4", "12", "1+2", "4+7", "14", "R12", "L10", "1+2+4", "6+12", "9", "17", "4+L10")
_OBJECTIVE = {"happiness": 1, "surprise": 2, "disgust": 3, "repression": 4, "sadness": 6, "fear": 5, "others": 7}


def write_synthetic(root: Path, source: ClipSource, subjects: int, clips_per_subject: int,
                    rng: np.random.Generator, variant: str = "cropped", n_frames: tuple[int, int] = (12, 24),
                    plan: list[tuple[int, str]] | None = None) -> None:
    """A small CASME II: the 2014 coding sheet, the objective classes sheet and one frame tree (``variant``)."""
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    root = Path(root)
    rows = draw_rows(range(1, subjects + 1), clips_per_subject, rng, FREQUENCIES, plan)
    tree = root / TREES[variant][0]
    sheet_rows, objective_rows, names = [], [], {}
    for subject, label in rows:
        emotion = normalise(label)
        clip = source.micro(subject, emotion, int(rng.integers(n_frames[0], n_frames[1] + 1)), rng)
        name = _clip_name(subject, names, rng)
        first = int(rng.integers(40, 101))  # real clips start around img40–img100, so some cross 99 → 100
        numbers = [first + i for i in range(len(clip.frames))]
        write_frames(tree / f"sub{subject:02d}" / name, clip.frames,
                     [f"{PREFIX[variant]}{n}.jpg" for n in numbers], clip.face_box if variant == "cropped" else None)
        apex = "/" if rng.random() < 0.04 else numbers[clip.apex]  # the real sheet has "/" for a few apexes
        drawn = str(rng.choice(_AUS))  # drawn in any case: the rest of the set stays as it was
        sheet_rows.append((subject, name, numbers[clip.onset], apex, numbers[clip.offset],
                           au_code(clip.aus) or drawn, spelling(label, _SPELLINGS, rng)))
        objective_rows.append((subject, name, _OBJECTIVE.get(emotion, 7)))
    write_coding_sheet(root / SHEET_2014, sheet_rows)
    write_table(root / OBJECTIVE_SHEET, "Sheet1", [("Subject", "Filename", "Objective Class")] + objective_rows)


def write_coding_sheet(path: Path, rows: list[tuple], revision: int = 2014) -> None:
    """A coding sheet from (subject, filename, onset, apex, offset, action units, emotion) rows, in the 2014
    layout or the 2019 one (two more columns with empty headers; their content here is a placeholder)."""
    if revision == 2014:
        write_table(path, "Sheet1", [COLUMNS_2014] + [tuple(r) for r in rows])
    else:
        write_table(path, "Sheet1", [COLUMNS_2019] + [(s, f, None, on, ap, off, None, au, e)
                                                      for s, f, on, ap, off, au, e in rows])


def _clip_name(subject: int, taken: dict, rng: np.random.Generator) -> str:
    """EP02_01f, EP19_05, … (episode, take, an "f" on most), unique within the subject."""
    while True:
        name = f"EP{int(rng.integers(1, 20)):02d}_{int(rng.integers(1, 12)):02d}{'f' if rng.random() < 0.7 else ''}"
        if name not in taken.setdefault(subject, set()):
            taken[subject].add(name)
            return name
