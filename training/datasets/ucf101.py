"""UCF101 (Soomro et al. 2012): 13,320 action clips of 101 classes, 25 groups, 25 fps, for pre-training.

As distributed (UCF101.rar and UCF101TrainTestSplits-RecognitionTask.zip, unpacked side by side)::

    UCF-101/ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi
    ucfTrainTestlist/classInd.txt       "1 ApplyEyeMakeup" … "101 YoYo" (1-based)
    ucfTrainTestlist/trainlist01.txt    "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1"
    ucfTrainTestlist/testlist01.txt     "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi"   (…02, …03)

The lists have Windows line ends. The class is the list entry's folder, never the file name: the
HandstandPushups folder holds ``v_HandStandPushups_g01_c01.avi``. Clips of one group share actors and
background, so the group number is the record's ``subject``; split *k*'s test set is groups 7k-6…7k.

``load(root, split=1)`` returns every clip named by that split's two lists, with ``extra["split"]``
"train" or "test"; a list entry whose video is missing and a video no list names are dropped.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from inference.errors import InputError
from inference.video import write_video
from training.datasets.base import ClipRecord, LoadResult
from training.labels import normalise
from training.synth.source import ClipSource

NAME = "ucf101"
FPS = 25.0
VARIANTS = ("videos",)
VIDEOS, LISTS = "UCF-101", "ucfTrainTestlist"
SPLITS = (1, 2, 3)
_CLIP = re.compile(r"^v_(?P<action>.+)_g(?P<group>\d+)_c(?P<clip>\d+)$")

CLASSES = (  # classInd.txt order: index = position + 1
    "ApplyEyeMakeup ApplyLipstick Archery BabyCrawling BalanceBeam BandMarching BaseballPitch Basketball "
    "BasketballDunk BenchPress Biking Billiards BlowDryHair BlowingCandles BodyWeightSquats Bowling "
    "BoxingPunchingBag BoxingSpeedBag BreastStroke BrushingTeeth CleanAndJerk CliffDiving CricketBowling "
    "CricketShot CuttingInKitchen Diving Drumming Fencing FieldHockeyPenalty FloorGymnastics FrisbeeCatch "
    "FrontCrawl GolfSwing Haircut Hammering HammerThrow HandstandPushups HandstandWalking HeadMassage "
    "HighJump HorseRace HorseRiding HulaHoop IceDancing JavelinThrow JugglingBalls JumpingJack JumpRope "
    "Kayaking Knitting LongJump Lunges MilitaryParade Mixing MoppingFloor Nunchucks ParallelBars "
    "PizzaTossing PlayingCello PlayingDaf PlayingDhol PlayingFlute PlayingGuitar PlayingPiano PlayingSitar "
    "PlayingTabla PlayingViolin PoleVault PommelHorse PullUps Punch PushUps Rafting RockClimbingIndoor "
    "RopeClimbing Rowing SalsaSpin ShavingBeard Shotput SkateBoarding Skiing Skijet SkyDiving "
    "SoccerJuggling SoccerPenalty StillRings SumoWrestling Surfing Swing TableTennisShot TaiChi "
    "TennisSwing ThrowDiscus TrampolineJumping Typing UnevenBars VolleyballSpiking WalkingWithDog "
    "WallPushups WritingOnBoard YoYo"
).split()
FILE_NAMES = {"HandstandPushups": "HandStandPushups"}  # class folder → the spelling in its file names


def load(root: Path, variant: str = "auto", split: int = 1) -> LoadResult:
    """Every clip of the official lists of ``split``, with its train/test membership."""
    if variant not in ("auto", *VARIANTS):
        raise InputError(f"UCF101 has no variant {variant!r}; use one of: auto, {', '.join(VARIANTS)}.")
    if split not in SPLITS:
        raise InputError(f"UCF101 has splits 1, 2 and 3 (trainlist0N.txt / testlist0N.txt), not {split!r}.")
    videos, lists = _locate(Path(root))
    classes = _read_classes(lists / "classInd.txt")
    records, dropped, listed = [], [], set()
    for part in ("train", "test"):
        for entry, label in _read_list(lists / f"{part}list{split:02d}.txt"):
            if entry in listed:
                dropped.append((Path(entry).stem, "named twice in the split lists"))
                continue
            listed.add(entry)
            record = _record(videos, entry, label, part, split, classes)
            if isinstance(record, str):
                dropped.append((Path(entry).stem, record))
            else:
                records.append(record)
    on_disk = {f"{p.parent.name}/{p.name}" for p in videos.glob("*/*.avi")}
    dropped += [(Path(e).stem, f"not in trainlist{split:02d}.txt or testlist{split:02d}.txt")
                for e in sorted(on_disk - listed)]
    records.sort(key=lambda r: (r.extra["class_index"], r.subject, r.extra["clip"]))
    return LoadResult(records, dropped)


def _record(videos: Path, entry: str, label: int | None, part: str, split: int,
            classes: dict[str, int]) -> ClipRecord | str:
    action, _, file_name = entry.partition("/")
    match = _CLIP.match(Path(file_name).stem)
    if action not in classes:
        return "class not in classInd.txt"
    if match is None:
        return "file name is not v_<Class>_gNN_cNN.avi"
    if label is not None and label != classes[action]:
        return "label disagrees with classInd.txt"
    video = videos / action / file_name
    if not video.is_file():
        return "video missing"
    group, clip = int(match["group"]), int(match["clip"])
    return ClipRecord(
        dataset=NAME, subject=group, clip=video.stem, emotion=normalise(action), video=video, fps=FPS,
        extra={"class_name": action, "class_index": classes[action], "group": group, "clip": clip,
               "split": part, "split_number": split},
    )


def _read_classes(path: Path) -> dict[str, int]:
    """classInd.txt: class folder name → 1-based index."""
    classes = {}
    for line in _lines(path):
        index, _, name = line.partition(" ")
        if not index.isdigit() or not name.strip():
            raise InputError(f"{path}: line {line!r} is not '<index> <ClassName>'. Use the classInd.txt of "
                             f"UCF101TrainTestSplits-RecognitionTask.zip.")
        classes[name.strip()] = int(index)
    return classes


def _read_list(path: Path) -> list[tuple[str, int | None]]:
    """A train or test list: (``Class/v_Class_gNN_cNN.avi``, label or None) per line."""
    entries = []
    for line in _lines(path):
        parts = line.split()
        label = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None
        entries.append((parts[0].replace("\\", "/"), label))
    return entries


def _lines(path: Path) -> list[str]:
    if not path.is_file():
        raise InputError(f"{path}: missing. It ships in UCF101TrainTestSplits-RecognitionTask.zip; unpack it "
                         f"as {LISTS}/ next to {VIDEOS}/.")
    return [line.strip() for line in path.read_text(errors="replace").splitlines() if line.strip()]


def _locate(root: Path) -> tuple[Path, Path]:
    """(videos folder, lists folder): beside each other in root, in a folder of root, or root's parent."""
    if not root.is_dir():
        raise InputError(f"{root}: no such folder. Point at the folder holding {VIDEOS}/ and {LISTS}/.")
    for base in (root, *(p for p in sorted(root.iterdir()) if p.is_dir()), root.parent):
        lists = base / LISTS
        if not (lists / "classInd.txt").is_file():
            continue
        for videos in (base / VIDEOS, base / "UCF101", base):
            if videos.is_dir() and any((videos / c).is_dir() for c in CLASSES):
                return videos, lists
    raise InputError(
        f"{root}: not the UCF101 dataset. Expected {VIDEOS}/ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi … and "
        f"{LISTS}/classInd.txt, trainlist01.txt, testlist01.txt here (unpack UCF101.rar and "
        f"UCF101TrainTestSplits-RecognitionTask.zip side by side), or one folder above or below.")


# ---------------------------------------------------------------------------------------------------
# Synthetic copy in the distributed layout

SYNTH_CLASSES = ("ApplyEyeMakeup", "HandstandPushups", "YoYo")


def write_synthetic(root: Path, source: ClipSource, subjects: int, clips_per_subject: int,
                    rng: np.random.Generator, variant: str = "videos",
                    n_frames: tuple[int, int] = (12, 24), classes: tuple[str, ...] = SYNTH_CLASSES) -> None:
    """A small UCF101 in ``root``: for each of ``classes``, groups g01…g``subjects`` of
    ``clips_per_subject`` .avi clips, the full classInd.txt and the three official splits' lists
    (split k tests groups 7k-6…7k), written with Windows line ends as the real lists are."""
    if variant not in VARIANTS:
        raise ValueError(f"UCF101 variants: {VARIANTS}, got {variant!r}")
    root = Path(root)
    entries = []
    for action in classes:
        spelled = FILE_NAMES.get(action, action)
        for group in range(1, subjects + 1):
            for clip in range(1, clips_per_subject + 1):
                n = int(rng.integers(n_frames[0], n_frames[1] + 1))
                synth = source.action(action, n, rng)
                name = f"{action}/v_{spelled}_g{group:02d}_c{clip:02d}.avi"
                write_video(root / VIDEOS / name, synth.frames, FPS)
                entries.append((name, action, group))
    _write_lists(root / LISTS, entries)


def _write_lists(folder: Path, entries: list[tuple[str, str, int]]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    index = {name: i for i, name in enumerate(CLASSES, start=1)}
    _write_lines(folder / "classInd.txt", [f"{i} {name}" for name, i in index.items()])
    for split in SPLITS:
        test_groups = range(7 * split - 6, 7 * split + 1)
        _write_lines(folder / f"trainlist{split:02d}.txt",
                     [f"{name} {index[action]}" for name, action, g in entries if g not in test_groups])
        _write_lines(folder / f"testlist{split:02d}.txt",
                     [name for name, _, g in entries if g in test_groups])


def _write_lines(path: Path, lines: list[str]) -> None:
    path.write_bytes("".join(f"{line}\r\n" for line in lines).encode())
