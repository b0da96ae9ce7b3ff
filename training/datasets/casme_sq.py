"""CAS(ME)² (Qu et al. 2017, Institute of Psychology, CAS): long recordings with macro- and micro-expressions,
read exactly as distributed, for spotting (``python -m training.spot_eval --dataset casme_sq``).

The folder the user points at (or the one above or below it) holds::

    CAS(ME)^2code_final.xlsx        (also "CAS(ME)^2code_final(Updated).xlsx") three worksheets, no header rows:
        1st (CASFEcode_final)       participant, "<expression name>_<n>" (e.g. disgust1_1), onset, apex, offset,
                                    action units, estimated emotion, expression type ("macro-expression" /
                                    "micro-expression"), self-reported emotion
        naming rule1                folder number (15), subject code, participant (1): participant → s15/
        naming rule2                video code (101 or "0101"), expression name (disgust1): name → 15_0101…
    rawpic/s15/15_0101disgustingteeth/img1.jpg …     the raw frames, 30 fps, 640×480, numbered from 1
    rawvideo/s15/15_0101disgustingteeth.avi …         the same recordings as video files

Frame numbers in the sheet are the numbers of the frame files (``img1.jpg`` is frame 1); an offset of 0 (the sheet
has a few) is taken as the apex, as the MEGC baselines do. The sheet's estimated emotions are negative, positive,
surprise and others. Recordings without annotated rows are kept (nothing to spot in them is a valid answer).

Assumptions, from public code that reads the release (the sheet itself is not public): the three worksheets are
taken by position and the naming sheets by the columns named above; the video codes and names of the synthetic
copies (:data:`VIDEOS`) follow the released naming (``<folder number>_<code><name>``) but the list is ours.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from inference.errors import InputError
from training.datasets.base import frame_number, frames_of
from training.datasets.sheets import find_sheet, frame_cell, write_frames
from training.labels import normalise
from training.spot_eval import LongLoadResult, LongVideo, make_truth

NAME = "casme_sq"
FPS = 30.0
FRAME_SIZE = (480, 640)  # height, width
GREY = False
VARIANTS = ("rawpic", "rawvideo")
SHEET_GLOB = "CAS(ME)^2code_final*.xlsx"
SHEET = "CAS(ME)^2code_final.xlsx"
EVENTS_FILE = "synthetic_events.json"  # synthetic copies only: every rendered event, annotated or not
# Video code → (expression name in the sheet, the rest of the folder name).
VIDEOS = {101: ("disgust1", "disgustingteeth"), 102: ("disgust2", "eatingworms"), 401: ("anger1", "girlcrashing"),
          402: ("anger2", "awkwardshow"), 502: ("happy1", "funnyerrors"), 503: ("happy2", "funnyfarting"),
          505: ("happy3", "funnyinnovations"), 507: ("happy4", "climbingthewall"), 508: ("happy5", "funnydunkey")}
_VIDEO_DIR = re.compile(r"^(\d+)_(\d{4})")
_HINT = "point --data at the CAS(ME)^2 folder that holds CAS(ME)^2code_final.xlsx and rawpic/ (or rawvideo/)"


def load(root: Path, variant: str = "auto") -> LongLoadResult:
    root = Path(root)
    home, sheet = _find_home(root)
    tree, variant = _tree(home, variant)
    main, participants, codes = _read_sheets(sheet)
    recordings = _recordings(tree, variant)
    videos: dict[tuple[int, int], LongVideo] = {}
    numbers: dict[tuple[int, int], dict[int, int] | None] = {}
    for key, path in sorted(recordings.items()):
        frames = frames_of(path) if variant == "rawpic" else ()
        if variant == "rawpic" and not frames:
            continue
        videos[key] = LongVideo(NAME, key[0], path.stem if variant == "rawvideo" else path.name, FPS, frames,
                                path if variant == "rawvideo" else None)
        numbers[key] = {frame_number(f): i for i, f in enumerate(frames)} if frames else None
    dropped = []
    for n, row in enumerate(main, start=1):
        where = f"{sheet.name} row {n}"
        name = str(row[1] or "").strip()
        expression = name.rsplit("_", 1)[0]
        folder = participants.get(_int(row[0]))
        code = codes.get(expression.lower())
        if folder is None or code is None:
            what = f"participant {row[0]!r}" if folder is None else f"expression {expression!r}"
            dropped.append((where, f"{what} is not in the naming sheets"))
            continue
        video = videos.get((folder, code))
        if video is None:
            dropped.append((where, f"no recording s{folder}/{folder}_{code:04d}… in {tree.name}/"))
            continue
        kind = "micro" if "micro" in str(row[7] or "").lower() else "macro"
        emotion = normalise(row[6]) if row[6] not in (None, "") else None
        truth = make_truth(numbers[(folder, code)], *(frame_cell(row[i]) for i in (2, 3, 4)), kind, emotion, where)
        if isinstance(truth, str):
            dropped.append((where, truth))
        else:
            video.truths.append(truth)
    return LongLoadResult(sorted(videos.values(), key=lambda v: (v.subject, v.video)), dropped)


def _int(value) -> int | None:
    try:
        return int(float(str(value).strip()))
    except (TypeError, ValueError):
        return None


def _find_home(root: Path) -> tuple[Path, Path]:
    return find_sheet(root, SHEET_GLOB, SHEET, _HINT)  # of several, the last: "(Updated)" sorts after the original


def _tree(home: Path, variant: str) -> tuple[Path, str]:
    found = {v: home / v for v in VARIANTS if (home / v).is_dir()}
    if variant == "auto":
        variant = "rawpic" if "rawpic" in found else "rawvideo"
    if variant not in VARIANTS:
        raise InputError(f"unknown CAS(ME)² variant {variant!r}; use one of {', '.join(VARIANTS)} or auto.")
    if variant not in found:
        raise InputError(f"no {home / variant}/ with the recordings (s15/, s16/ … inside); {_HINT}.")
    return found[variant], variant


def _read_sheets(path: Path) -> tuple[list[tuple], dict[int, int], dict[str, int]]:
    """(the coding rows, participant → folder number, expression name → video code)."""
    import openpyxl

    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:
        raise InputError(f"{path}: cannot read this spreadsheet ({exc}); use the file as the dataset ships "
                         f"it.") from exc
    try:
        sheets = {s.title.strip().lower(): s for s in book.worksheets}
        rule1, rule2 = sheets.get("naming rule1"), sheets.get("naming rule2")
        coding = [s for s in book.worksheets if not s.title.strip().lower().startswith("naming")]
        if rule1 is None or rule2 is None or not coding:
            raise InputError(f"{path}: expected a coding worksheet and the worksheets 'naming rule1' and 'naming "
                             f"rule2'; found {', '.join(s.title for s in book.worksheets)}")
        rows = [tuple(r) + (None,) * 9 for r in coding[0].iter_rows(values_only=True)]
        rows = [r for r in rows if _int(r[0]) is not None and r[1] not in (None, "")]  # skips any title row
        participants = {_int(r[2]): _int(r[0]) for r in rule1.iter_rows(values_only=True)
                        if len(r) >= 3 and _int(r[0]) is not None and _int(r[2]) is not None}
        codes = {str(r[1]).strip().lower(): _int(r[0]) for r in rule2.iter_rows(values_only=True)
                 if len(r) >= 2 and _int(r[0]) is not None and r[1] not in (None, "")}
    finally:
        book.close()
    return rows, participants, codes


def _recordings(tree: Path, variant: str) -> dict[tuple[int, int], Path]:
    """(folder number, video code) → the frame folder or video file."""
    out = {}
    for subject in sorted(p for p in tree.iterdir() if p.is_dir()):
        for item in subject.iterdir():
            m = _VIDEO_DIR.match(item.name)
            if m and (item.is_dir() if variant == "rawpic" else item.suffix.lower() == ".avi"):
                out[(int(m.group(1)), int(m.group(2)))] = item
    return out


# --- synthetic copies in the real layout ---------------------------------------------------------------------

_SELF_REPORTED = {"negative": ("disgust", "sad", "anger", "fear"), "positive": ("happy",), "surprise": ("surprise",),
                  "others": ("others",)}


def write_synthetic(root: Path, source, subjects: int, videos_per_subject: int, rng: np.random.Generator,
                    seconds: tuple[float, float] = (10.0, 30.0), micro: tuple[int, int] = (1, 3),
                    distractors: bool = True, videos: bool = False, progress=None) -> None:
    """A small CAS(ME)²: rawpic/ frame folders (and rawvideo/ .avi files with ``videos``), the coding workbook with
    its two naming sheets, and ``synthetic_events.json`` (every event rendered, with what the sheet says)."""
    from training.synth.long import recording, write_events

    root = Path(root)
    coding, rule1, rule2, listing = [], [], [], []
    codes = list(VIDEOS)
    for s in range(subjects):
        folder, participant = 15 + s, 1 + s
        rule1.append((folder, f"s{folder}", participant))
        for code in [codes[i % len(codes)] for i in range(videos_per_subject)]:
            expression, rest = VIDEOS[code]
            name = f"{folder}_{code:04d}{rest}"
            rec = recording(source, participant, rng.uniform(*seconds), FPS, rng, micro=micro, distractors=distractors)
            write_frames(root / "rawpic" / f"s{folder}" / name, rec.frames,
                         [f"img{i + 1}.jpg" for i in range(len(rec.frames))])
            if videos:
                from inference.video import write_video

                (root / "rawvideo" / f"s{folder}").mkdir(parents=True, exist_ok=True)
                write_video(root / "rawvideo" / f"s{folder}" / f"{name}.avi", rec.frames, FPS)
            for n, e in enumerate(rec.truths, start=1):
                coding.append((participant, f"{expression}_{n}", e.onset + 1, e.apex + 1, e.offset + 1,
                               "+".join(a[2:] for a in e.aus), e.emotion, f"{e.kind}-expression",
                               str(rng.choice(_SELF_REPORTED.get(e.emotion, ("others",))))))
            listing.append({"video": name, "subject": folder, "fps": FPS, "frames": len(rec.frames),
                            "events": [{**e.as_dict(), "first_frame_number": 1} for e in rec.events]})
            if progress:
                progress(1)
    rule2 = [(code, VIDEOS[code][0]) for code in codes]
    _write_workbook(root / SHEET, coding, rule1, rule2)
    write_events(root / EVENTS_FILE, listing)


def _write_workbook(path: Path, coding: list[tuple], rule1: list[tuple], rule2: list[tuple]) -> None:
    import openpyxl

    book = openpyxl.Workbook()
    for i, (title, rows) in enumerate((("CASFEcode_final", coding), ("naming rule1", rule1),
                                       ("naming rule2", rule2))):
        sheet = book.active if i == 0 else book.create_sheet()
        sheet.title = title
        for row in rows:
            sheet.append(list(row))
    book.save(path)
