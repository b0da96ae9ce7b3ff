"""SAMM Long Videos (Yap et al. 2020, Manchester Metropolitan University): long recordings with macro- and
micro-movements, read exactly as distributed, for spotting (``python -m training.spot_eval --dataset samm_lv``).

The folder the user points at (or the one above or below it) holds::

    SAMM_LongVideos_V1_Release.xlsx      (V2, V3 … later releases; the newest is used) title and notes rows, the
                                         header in row 10: Subject, Filename, Inducement Code, Onset, Apex, Offset,
                                         Duration, Type, Action Units, Notes. Filename is <subject>_<video>_<n>
                                         (006_1_2: the 2nd movement in recording 006_1); Type is "Micro - 1/2" or
                                         "Macro"
    SAMM_longvideos/006_1/006_1_0001.jpg …   the raw frames, 200 fps, 2040×1088 grey, numbered from 1
    SAMM_Micro_FACS_Codes_v2.xlsx         optional: the SAMM micro-expression sheet; its Estimated Emotion gives
                                         micro-movements a class (matched by Filename), as the MEGC spot-then-
                                         recognise task does

The long-video sheet itself has no emotion column; where one is present (Estimated Emotion or Emotion) it is used.
Frame numbers in the sheet are the frame files' numbers; a missing offset (-1, 0 or empty) is taken as the apex.
The header row is found by its content (:func:`training.datasets.sheets.read_sheet`), not by its position.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from inference.errors import InputError
from training.datasets.base import frame_number, frames_of, subject_id
from training.datasets.sheets import frame_cell, read_sheet, write_frames, write_table
from training.labels import normalise
from training.spot_eval import LongLoadResult, LongVideo, make_truth

NAME = "samm_lv"
FPS = 200.0
FRAME_SIZE = (544, 1020)  # height, width: the release's 1088×2040, halved
GREY = True
VARIANTS = ("raw",)
SHEET_GLOB = "SAMM_LongVideos_V*_Release.xlsx"
SHEET = "SAMM_LongVideos_V1_Release.xlsx"
TREE = "SAMM_longvideos"
MICRO_SHEET_GLOB = "SAMM_Micro_FACS_Codes*.xlsx"
EVENTS_FILE = "synthetic_events.json"
HEADER_ROW = 10
COLUMNS = ("Subject", "Filename", "Inducement Code", "Onset", "Apex", "Offset", "Duration", "Type", "Action Units",
           "Notes")
TYPES = {"micro": "Micro - 1/2", "macro": "Macro"}
_VIDEO_DIR = re.compile(r"^\d{3}_\d+$")
_HINT = ("point --data at the folder that holds SAMM_LongVideos_V1_Release.xlsx (or a later release) and "
         "SAMM_longvideos/")


def load(root: Path, variant: str = "auto") -> LongLoadResult:
    root = Path(root)
    if variant not in ("auto",) + VARIANTS:
        raise InputError(f"unknown SAMM Long Videos variant {variant!r}; use raw or auto.")
    home, sheet = _find_home(root)
    tree = next((p for p in (home / TREE, home / TREE / TREE) if p.is_dir()), None)
    if tree is None:
        raise InputError(f"no {home / TREE}/ with the recordings (006_1/, 006_2/ … inside); {_HINT}.")
    rows = read_sheet(sheet, required=("subject", "filename", "onset"))
    emotions = _micro_emotions(home)
    videos: dict[str, LongVideo] = {}
    numbers: dict[str, dict[int, int]] = {}
    for folder in sorted(p for p in tree.iterdir() if p.is_dir() and _VIDEO_DIR.match(p.name)):
        frames = frames_of(folder)
        if frames:
            videos[folder.name] = LongVideo(NAME, subject_id(folder.name), folder.name, FPS, frames)
            numbers[folder.name] = {frame_number(f): i for i, f in enumerate(frames)}
    dropped = []
    for row in rows:
        where = f"{sheet.name} row {row['_row']}"
        name = str(row.get("filename") or "").strip()
        parts = name.split("_")
        if len(parts) < 2:
            dropped.append((where, f"Filename {name!r} is not <subject>_<video>_<n>"))
            continue
        video = videos.get(f"{parts[0]}_{parts[1]}")
        if video is None:
            dropped.append((where, f"no recording {TREE}/{parts[0]}_{parts[1]}/"))
            continue
        kind = "micro" if "micro" in str(row.get("type") or "").lower() else "macro"
        label = row.get("estimatedemotion") or row.get("emotion") or emotions.get(name)
        emotion = normalise(label) if label not in (None, "") else None
        truth = make_truth(numbers[video.video], *(frame_cell(row.get(k)) for k in ("onset", "apex", "offset")), kind,
                           emotion, where)
        if isinstance(truth, str):
            dropped.append((where, truth))
        else:
            video.truths.append(truth)
    return LongLoadResult(list(videos.values()), dropped)


def _find_home(root: Path) -> tuple[Path, Path]:
    if not root.is_dir():
        raise InputError(f"{root}: no such folder; {_HINT}.")
    for folder in [root, root.parent] + sorted(p for p in root.iterdir() if p.is_dir()):
        sheets = [s for s in folder.glob(SHEET_GLOB) if not s.name.startswith("~$")]
        if sheets:
            return folder, max(sheets, key=lambda s: int(re.search(r"_V(\d+)_", s.name).group(1)))
    raise InputError(f"no {SHEET} (or a later release) in {root}, the folder above it or the folders inside it; "
                     f"{_HINT}.")


def _micro_emotions(home: Path) -> dict[str, object]:
    """Filename → Estimated Emotion from the SAMM micro-expression sheet beside the long-video one, if any."""
    sheets = sorted(p for p in home.glob(MICRO_SHEET_GLOB) if not p.name.startswith("~$"))
    if not sheets:
        return {}
    return {str(r.get("filename")).strip(): r.get("estimatedemotion") for r in read_sheet(sheets[-1])
            if r.get("filename") is not None}


# --- synthetic copies in the real layout ---------------------------------------------------------------------

# SAMM's Estimated Emotion labels, as the micro-expression sheet spells them, by the composite class rendered.
_EMOTIONS = {"negative": ("Anger", "Contempt", "Disgust", "Sadness", "Fear"), "positive": ("Happiness",),
             "surprise": ("Surprise",)}
_PREAMBLE = (
    "SAMM Long Videos - Macro- and Micro-Movements (V1 Release)",
    "Frame rate 200 fps. Frame numbers are the numbers in the image file names.",
    "Type: Micro - 1/2 for micro-movements, Macro for macro-movements.",
    "Filename: subject_video_movement.",
)


def write_synthetic(root: Path, source, subjects: int, videos_per_subject: int, rng: np.random.Generator,
                    seconds: tuple[float, float] = (10.0, 30.0), micro: tuple[int, int] = (1, 3),
                    distractors: bool = True, progress=None) -> None:
    """A small SAMM Long Videos: SAMM_longvideos/ frame folders, the release sheet (header in row 10), the SAMM
    micro-expression sheet with the micro-movements' Estimated Emotion, and ``synthetic_events.json``."""
    from training.datasets import samm
    from training.synth.long import recording, write_events

    root = Path(root)
    rows, micro_rows, listing = [], [], []
    for s in range(subjects):
        subject = 6 + s
        for v in range(1, videos_per_subject + 1):
            name = f"{subject:03d}_{v}"
            rec = recording(source, subject, rng.uniform(*seconds), FPS, rng, micro=micro, distractors=distractors)
            write_frames(root / TREE / name, rec.frames, [f"{name}_{i + 1:04d}.jpg" for i in range(len(rec.frames))])
            for n, e in enumerate(rec.truths, start=1):
                movement = f"{name}_{n}"
                aus = "+".join(a[2:] for a in e.aus)
                rows.append((f"{subject:03d}", movement, v, e.onset + 1, e.apex + 1, e.offset + 1,
                             e.offset - e.onset + 1, TYPES[e.kind], aus, None))
                if e.kind == "micro":
                    label = str(rng.choice(_EMOTIONS.get(e.emotion, ("Other",))))
                    micro_rows.append((f"{subject:03d}", movement, v, e.onset + 1, e.apex + 1, e.offset + 1,
                                       e.offset - e.onset + 1, "Micro - 1/2", aus, None, label))
            listing.append({"video": name, "subject": subject, "fps": FPS, "frames": len(rec.frames),
                            "events": [e.as_dict() for e in rec.events]})
            if progress:
                progress(1)
    title = [(line,) for line in _PREAMBLE] + [()] * (HEADER_ROW - 1 - len(_PREAMBLE))
    write_table(root / SHEET, "Sheet1", title + [COLUMNS] + rows)
    samm._write_sheet(root / samm.SHEET, micro_rows)  # the SAMM sheet as its own writer makes it
    write_events(root / EVENTS_FILE, listing)
