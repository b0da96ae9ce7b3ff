"""Helpers shared by the loaders and writers of datasets that ship annotation sheets (CASME II, SAMM, MMEW)
and frame folders (SMIC too): reading .xlsx sheets whose header row may sit below a title block, frame-number
cells, onset/offset checks, and writing frames and sheets for the synthetic copies."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from inference.errors import InputError
from training.datasets.base import frame_number, frames_of
from training.labels import normalise


def column_key(text) -> str:
    """A header cell as a key: "Onset Frame", "OnsetFrame", "onset_frame" → "onsetframe"."""
    return re.sub(r"[^a-z0-9]", "", str(text).lower())


def read_sheet(path: Path, required: tuple[str, ...] = ("subject", "filename")) -> list[dict]:
    """The data rows of the first worksheet with a header row naming ``required`` columns, as dicts keyed by
    :func:`column_key` (plus ``_row``, the row number in Excel). The header row is found by its content, so
    title and notes rows above it (SAMM has 13) are skipped; blank rows are skipped."""
    import openpyxl

    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # a corrupt or non-Excel file named .xlsx
        raise InputError(f"{path}: cannot read this spreadsheet ({exc}); "
                         "use the file as the dataset ships it.") from exc
    try:
        for sheet in book.worksheets:
            header, rows = None, []
            for number, cells in enumerate(sheet.iter_rows(values_only=True), start=1):
                if header is None:
                    keys = [column_key(c) if c is not None else "" for c in cells]
                    if all(k in keys for k in required):
                        header = keys
                    continue
                if all(c is None or not str(c).strip() for c in cells):
                    continue
                row = {k: v for k, v in zip(header, cells) if k}
                row["_row"] = number
                rows.append(row)
            if header is not None:
                return rows
    finally:
        book.close()
    raise InputError(f"{path}: no header row with the columns {', '.join(required)} in any worksheet; "
                     "use the annotation sheet as the dataset ships it.")


def frame_cell(value) -> int | None:
    """A frame number from a sheet cell: 46, 46.0, "46", " 46 " → 46; "/", "", None, 0, -1 → None."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        number = value
    else:
        try:
            number = float(str(value).strip())
        except ValueError:
            return None
    if number != number or number <= 0 or number != int(number):  # NaN, 0 / negative, fractional
        return None
    return int(number)


def check_span(frames, onset: int | None, apex: int | None, offset: int | None) -> tuple[int | None, str | None]:
    """(apex to keep, None) when onset/offset lie within the frames present, else (apex, why not). An apex
    outside onset..offset is dropped to None; the clip is kept."""
    first, last = frame_number(frames[0]), frame_number(frames[-1])
    if onset is not None and offset is not None and offset < onset:
        return apex, f"offset {offset} is before onset {onset}"
    for name, number in (("onset", onset), ("offset", offset)):
        if number is not None and not first <= number <= last:
            return apex, f"{name} {number} outside the frames present ({first}–{last})"
    low = first if onset is None else onset
    high = last if offset is None else offset
    if apex is not None and not low <= apex <= high:
        apex = None
    return apex, None


def write_frames(folder: Path, frames: np.ndarray, names: list[str], box=None) -> None:
    """RGB frames as image files (cropped to ``box`` = x0, y0, x1, y1 when given)."""
    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    for frame, name in zip(frames, names):
        if box is not None:
            x0, y0, x1, y1 = box
            frame = frame[y0:y1, x0:x1]
        if not cv2.imwrite(str(folder / name), cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2BGR)):
            raise OSError(f"could not write {folder / name}")


def write_table(path: Path, title: str, rows: list[tuple]) -> None:
    import openpyxl

    path.parent.mkdir(parents=True, exist_ok=True)
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = title
    for row in rows:
        sheet.append(list(row))
    book.save(path)


def draw_rows(subject_ids, clips_per_subject: int, rng: np.random.Generator, frequencies: dict[str, int],
              plan: list[tuple[int, str]] | None) -> list[tuple[int, str]]:
    """(subject, label) rows: the plan when given, else labels drawn with the dataset's own frequencies."""
    if plan is not None:
        return [(int(s), str(e)) for s, e in plan]
    labels = list(frequencies)
    p = np.array([frequencies[k] for k in labels], float)
    return [(int(s), labels[int(rng.choice(len(labels), p=p / p.sum()))])
            for s in subject_ids for _ in range(clips_per_subject)]


def spelling(label: str, spellings: dict[str, tuple[str, ...]], rng: np.random.Generator) -> str:
    """How a sheet writes ``label``: one of the dataset's spellings for a canonical label, else the label as given
    (so a plan can put any odd spelling into the sheet)."""
    options = spellings.get(label)
    return str(options[int(rng.integers(len(options)))]) if options else label


def annotated_clip(row: dict, folder: Path, labels, label_column: str = "estimatedemotion"):
    """The part every sheet-annotated clip shares: its label, frames and onset/apex/offset.

    Returns ``(emotion, raw_label, frames, onset, apex, offset)`` for a usable row, else the reason it is not.
    """
    raw_label = row.get(label_column)
    if raw_label is None or not str(raw_label).strip():
        return "no Estimated Emotion label"
    emotion = normalise(raw_label)
    if emotion not in labels:
        return f"unknown label {raw_label!r}"
    frames = frames_of(folder)
    if not frames:
        return f"no frame images in {folder}"
    onset, apex, offset = (frame_cell(row.get(k)) for k in ("onsetframe", "apexframe", "offsetframe"))
    apex, reason = check_span(frames, onset, apex, offset)
    if reason:
        return reason
    return emotion, raw_label, frames, onset, apex, offset


def find_sheet(root: Path, pattern: str, name: str, hint: str, prefer: str | None = None) -> tuple[Path, Path]:
    """The folder holding a dataset's annotation sheet and the sheet: ``root``, the folder above it, or a folder
    inside it, whichever first holds a file matching ``pattern`` (Excel's ``~$`` lock files ignored); of several,
    the one named ``prefer`` when given, else the last by name (an "(Updated)" copy sorts after the original).
    ``name`` and ``hint`` word the error when there is none."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root}: no such folder; {hint}.")
    for folder in [root, root.parent] + sorted(p for p in root.iterdir() if p.is_dir()):
        sheets = [s for s in sorted(folder.glob(pattern)) if not s.name.startswith("~$")]
        if sheets:
            return folder, ([s for s in sheets if s.name == prefer] or sheets)[-1]
    raise InputError(f"no {name} in {root}, the folder above it or the folders inside it; {hint}.")


def au_code(aus) -> str:
    """A sheet's "Action Units" cell for the AU numbers a synthetic clip rendered (``(6, 12)`` → ``"6+12"``); empty
    when it rendered none (the writer then draws a code)."""
    return "+".join(str(int(a)) for a in aus)
