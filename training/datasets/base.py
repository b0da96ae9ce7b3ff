"""What every dataset loader returns: clip records with integer subjects, ordered frames and labels.

A loader reads a dataset exactly as its owners distribute it (folders, file names, annotation sheets)
and never modifies it. Problems with single clips (a sheet row without a folder, a label outside every
protocol) are collected in ``LoadResult.dropped`` with the reason, not raised; a root that is not the
dataset at all raises :class:`inference.errors.InputError` saying what was expected where.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from inference.video import list_frame_files


@dataclass
class ClipRecord:
    dataset: str  # registry name: smic, casme2, samm, mmew, ckplus, oulu, ucf101
    subject: int  # always an int (sheets say 1, "sub01", "006", "s1", "P001", "S005" …)
    clip: str  # clip id, unique within the dataset (e.g. EP02_01f, s1_ne_01, 006_1_2)
    emotion: str  # the dataset's own label, lower case, spelling normalised ("Other" → "other")
    frames: tuple[Path, ...] = ()  # frame images in numeric order (empty for video datasets)
    video: Path | None = None  # the video file, for video datasets (UCF101)
    onset: int | None = None  # frame numbers as the annotation gives them (the number in the file name)
    apex: int | None = None
    offset: int | None = None
    fps: float | None = None
    composite: str | None = None  # MEGC2019 3-class label (negative / positive / surprise) where defined
    extra: dict = field(default_factory=dict)  # dataset-specific facts: action units, illumination, split …

    def segment(self) -> tuple[Path, ...]:
        """The frames from onset to offset inclusive (all frames when the annotation gives none)."""
        if not self.frames or self.onset is None or self.offset is None:
            return self.frames
        picked = tuple(f for f in self.frames if self.onset <= frame_number(f) <= self.offset)
        return picked or self.frames


@dataclass
class LoadResult:
    records: list[ClipRecord]
    dropped: list[tuple[str, str]] = field(default_factory=list)  # (clip id or row, reason)

    def summary(self) -> str:
        """One paragraph a user can read: what was loaded, and what was dropped and why."""
        subjects = len({r.subject for r in self.records})
        counts = Counter(r.emotion for r in self.records)
        per_emotion = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
        text = f"{len(self.records)} clips from {subjects} subjects ({per_emotion})"
        if self.dropped:
            reasons = Counter(reason for _, reason in self.dropped)
            text += f"; dropped {len(self.dropped)}: " + "; ".join(f"{n} × {r}" for r, n in reasons.most_common())
        return text


def match_sheet(rows, folders: dict, sheet_name: str, record_of, folder_id=str) -> LoadResult:
    """Sheet rows matched to frame folders: ``record_of(row, used)`` gives ``(record or None, clip id, reason)`` and
    adds the key of the folder it used to ``used``; a row without a record and a folder no row used are dropped,
    each with its reason (``folder_id(key)`` names an unused folder)."""
    records, dropped, used = [], [], set()
    for row in rows:
        record, clip, reason = record_of(row, used)
        if record is None:
            dropped.append((clip, reason))
        else:
            records.append(record)
    for key, folder in sorted(folders.items()):
        if key not in used:
            dropped.append((folder_id(key), f"frame folder {folder} has no row in {sheet_name}"))
    return LoadResult(records, dropped)


_NUMBER = re.compile(r"(\d+)")


def frame_number(path: Path | str) -> int:
    """The last number in a frame file's name: reg_img46.jpg → 46, 006_05562.jpg → 5562."""
    found = _NUMBER.findall(Path(path).stem)
    if not found:
        raise ValueError(f"{path}: no frame number in the file name")
    return int(found[-1])


def subject_id(value) -> int:
    """An integer subject id from what sheets and folders say: 1, 1.0, "sub01", "006", "s1", "P001", "S005"."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return int(value)
    found = _NUMBER.findall(str(value))
    if not found:
        raise ValueError(f"no subject number in {value!r}")
    return int(found[0])


def frames_of(folder: Path) -> tuple[Path, ...]:
    return tuple(list_frame_files(folder)) if folder.is_dir() else ()
