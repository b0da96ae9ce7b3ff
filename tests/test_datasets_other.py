"""Loaders of MMEW, CK+, Oulu-CASIA and UCF101, on small copies of their distributed layouts."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from openpyxl import load_workbook

from inference.errors import InputError
from inference.video import read_clip
from training.datasets import ckplus, mmew, oulu, ucf101
from training.datasets.base import frame_number
from training.synth.source import FlatSource


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def numbers(frames) -> list[int]:
    return [frame_number(f) for f in frames]


# --------------------------------------------------------------------------------------------- CK+


@pytest.fixture
def ck_root(tmp_path: Path) -> Path:
    root = tmp_path / "CK+"
    ckplus.write_synthetic(root, FlatSource((8, 8)), subjects=3, clips_per_subject=3, rng=rng(1))
    return root


def labelled_sequences(root: Path) -> dict[str, Path]:
    """Sequence id → its emotion file, found by globbing, independently of the loader."""
    return {f"{p.parent.parent.name}_{p.parent.name}": p for p in (root / "Emotion").glob("S*/*/*_emotion.txt")}


def test_ckplus_writes_the_distributed_layout(ck_root):
    subjects = sorted(p.name for p in (ck_root / "cohn-kanade-images").iterdir())
    assert len(subjects) == 3 and all(re.fullmatch(r"S\d{3}", s) for s in subjects)
    s = subjects[0]
    assert (ck_root / "cohn-kanade-images" / s / "001" / f"{s}_001_00000001.png").is_file()
    assert (ck_root / "Landmarks" / s / "001" / f"{s}_001_00000001_landmarks.txt").is_file()
    labels = labelled_sequences(ck_root)
    assert 0 < len(labels) < 9  # some sequences have no emotion file, as in the real 327 of 593
    for seq, path in labels.items():
        assert re.fullmatch(r" +\d\.0000000e\+00\n", path.read_text())
        last = sorted((ck_root / "cohn-kanade-images" / path.parent.relative_to(ck_root / "Emotion")).iterdir())[-1]
        assert path.name == last.stem + "_emotion.txt"  # named after the peak (last) frame
        assert (ck_root / "FACS" / path.parent.relative_to(ck_root / "Emotion") / (last.stem + "_facs.txt")).is_file()
    assert all(d.is_dir() for d in (ck_root / "Emotion").glob("S*/*"))  # empty folders for unlabelled ones


def test_ckplus_loads_labelled_sequences_and_drops_the_rest(ck_root):
    result = ckplus.load(ck_root)
    labels = labelled_sequences(ck_root)
    assert {r.clip for r in result.records} == set(labels)
    all_sequences = {f"{p.parent.name}_{p.name}" for p in (ck_root / "cohn-kanade-images").glob("S*/*")}
    assert sorted(result.dropped) == sorted((c, "no emotion label") for c in all_sequences - set(labels))
    for r in result.records:
        code = int(float(labels[r.clip].read_text()))
        assert r.extra["label_code"] == code
        assert r.emotion == {1: "anger", 2: "contempt", 3: "disgust", 4: "fear", 5: "happiness",
                             6: "sadness", 7: "surprise"}[code]
        assert isinstance(r.subject, int) and r.subject == int(r.clip[1:4])
        assert numbers(r.frames) == list(range(1, len(r.frames) + 1))
        assert r.apex == len(r.frames) and r.onset is None and r.offset is None
        assert r.fps == ckplus.FPS and r.extra["action_units"]


def test_ckplus_reads_scientific_notation_codes_and_unlabelled_additions(ck_root):
    clip, path = sorted(labelled_sequences(ck_root).items())[0]
    path.write_text("   5.0000000e+00   \n")
    subject, seq = clip.split("_")
    extra = ck_root / "cohn-kanade-images" / subject / "099"
    extra.mkdir()
    for i in (1, 2, 10):  # a sequence added without any emotion folder at all
        shutil.copy(next((ck_root / "cohn-kanade-images" / subject / seq).glob("*.png")),
                    extra / f"{subject}_099_{i:08d}.png")
    result = ckplus.load(ck_root)
    record = next(r for r in result.records if r.clip == clip)
    assert (record.emotion, record.extra["label_code"]) == ("happiness", 5)
    assert (f"{subject}_099", "no emotion label") in result.dropped


def test_ckplus_bad_emotion_file_is_dropped_not_raised(ck_root):
    clip, path = sorted(labelled_sequences(ck_root).items())[0]
    path.write_text("   9.0000000e+00\n")
    result = ckplus.load(ck_root)
    assert clip not in {r.clip for r in result.records}
    assert (clip, "unreadable emotion file (expected one code 0-7)") in result.dropped


def test_ckplus_root_one_level_off_and_wrong_roots(ck_root, tmp_path):
    n = len(ckplus.load(ck_root).records)
    assert len(ckplus.load(tmp_path).records) == n  # the folder above
    assert len(ckplus.load(ck_root / "cohn-kanade-images").records) == n  # the folder below
    (tmp_path / "elsewhere").mkdir()
    with pytest.raises(InputError, match="cohn-kanade-images/S005/001"):
        ckplus.load(tmp_path / "elsewhere")
    shutil.rmtree(ck_root / "Emotion")
    with pytest.raises(InputError, match="Emotion_labels.zip"):
        ckplus.load(ck_root)


# --------------------------------------------------------------------------------------- Oulu-CASIA


@pytest.fixture
def oulu_root(tmp_path: Path) -> Path:
    root = tmp_path / "Oulu-CASIA"
    oulu.write_synthetic(root, FlatSource((8, 8)), subjects=2, clips_per_subject=3, rng=rng(2))
    return root


def test_oulu_writes_the_distributed_layout(oulu_root):
    images = oulu_root / "OriginalImg"
    assert sorted(p.name for p in images.iterdir()) == ["NI", "VL"]
    assert sorted(p.name for p in (images / "VL").iterdir()) == ["Dark", "Strong", "Weak"]
    expressions = sorted(p.name for p in (images / "VL" / "Strong" / "P001").iterdir())
    assert len(expressions) == 3 and set(expressions) <= set(oulu.EXPRESSIONS)
    assert (images / "VL" / "Strong" / "P001" / expressions[0] / "000.jpeg").is_file()


def test_oulu_default_is_vl_strong(oulu_root):
    result = oulu.load(oulu_root)
    assert len(result.records) == 6 and not result.dropped
    assert {(r.extra["camera"], r.extra["illumination"]) for r in result.records} == {("VL", "Strong")}
    assert {r.subject for r in result.records} == {1, 2}
    for r in result.records:
        assert r.emotion in {"anger", "disgust", "fear", "happiness", "sadness", "surprise"}
        folder = r.frames[0].parent
        assert r.emotion == folder.name.lower() and r.clip == f"VL_Strong_{folder.parent.name}_{folder.name}"
        assert numbers(r.frames) == list(range(len(r.frames))) and r.fps == 25.0


@pytest.mark.parametrize("variant, expected", [
    ("VL/Weak", {("VL", "Weak")}),
    ("vl-dark", {("VL", "Dark")}),
    ("NI/Strong", {("NI", "Strong")}),
    ("VL/all", {("VL", "Strong"), ("VL", "Weak"), ("VL", "Dark")}),
    ("all", {(c, i) for c in ("VL", "NI") for i in ("Strong", "Weak", "Dark")}),
])
def test_oulu_variants_select_their_subsets(oulu_root, variant, expected):
    records = oulu.load(oulu_root, variant).records
    assert {(r.extra["camera"], r.extra["illumination"]) for r in records} == expected
    assert len(records) == 6 * len(expected)
    assert len({r.clip for r in records}) == len(records)
    for r in records:
        assert r.frames[0].parent.parent.parent.name == r.extra["illumination"]


def test_oulu_missing_subset_bad_variant_and_stray_folders(oulu_root):
    shutil.rmtree(oulu_root / "OriginalImg" / "NI" / "Dark")
    with pytest.raises(InputError, match="NI/Dark"):
        oulu.load(oulu_root, "NI/Dark")
    assert {r.extra["illumination"] for r in oulu.load(oulu_root, "NI/all").records} == {"Strong", "Weak"}
    with pytest.raises(InputError, match="VL/Strong"):
        oulu.load(oulu_root, "VIS/Bright")
    subject = oulu_root / "OriginalImg" / "VL" / "Strong" / "P001"
    (subject / "Contempt").mkdir()
    shutil.copy(next(subject.glob("*/000.jpeg")), subject / "Contempt" / "000.jpeg")
    empty = next(e for e in oulu.EXPRESSIONS if not (subject / e).exists())
    (subject / empty).mkdir()
    result = oulu.load(oulu_root)
    assert sorted(result.dropped) == sorted([(f"VL_Strong_P001_{empty}", "no frames"),
                                             ("VL_Strong_P001_Contempt", "not one of the six expression folders")])


def test_oulu_root_one_level_off_and_wrong_root(oulu_root, tmp_path):
    assert len(oulu.load(oulu_root / "OriginalImg").records) == 6
    assert len(oulu.load(oulu_root / "OriginalImg" / "VL").records) == 6
    with pytest.raises(InputError, match="OriginalImg/VL/Strong/P001/Anger/000.jpeg"):
        oulu.load(tmp_path)


# ---------------------------------------------------------------------------------------------- MMEW


@pytest.fixture
def mmew_root(tmp_path: Path) -> Path:
    root = tmp_path / "MMEW_Final"
    mmew.write_synthetic(root, FlatSource((8, 8)), subjects=3, clips_per_subject=3, rng=rng(3),
                         n_frames=(12, 16))
    return root


def sheet_rows(root: Path) -> list[tuple]:
    sheet = load_workbook(root / "MMEW_Micro_Exp.xlsx").active
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0] == ("Subject", "Filename", "OnsetFrame", "ApexFrame", "OffsetFrame", "Action Units",
                       "Estimated Emotion", "remarks")
    return rows[1:]


def test_mmew_writes_the_distributed_layout(mmew_root):
    rows = sheet_rows(mmew_root)
    assert len(rows) == 9
    for subject, name, *_, emotion, _ in rows:
        assert re.fullmatch(r"S\d{2}-\d{2}-\d{3}", name) and name.startswith(subject)
        assert mmew.EMOTION_INDEX[emotion.lower()] == int(name.split("-")[1])
        assert (mmew_root / "Micro_Expression" / emotion.lower() / name / "1.jpg").is_file()
    assert any(e != e.lower() for *_, e, _ in rows)  # the sheet's odd capitalisation
    assert list((mmew_root / "Macro_Expression").glob("S01/happiness/S01-01-001.jpg"))


def test_mmew_records_follow_the_sheet(mmew_root):
    rows = {r[1]: r for r in sheet_rows(mmew_root)}
    result = mmew.load(mmew_root)
    assert not result.dropped and {r.clip for r in result.records} == set(rows)
    for r in result.records:
        subject, _, onset, apex, offset, aus, emotion, _ = rows[r.clip]
        assert r.subject == int(subject[1:]) and isinstance(r.subject, int)
        assert r.emotion == emotion.lower() and r.fps == 90.0
        assert (r.onset, r.apex, r.offset) == (onset, apex, offset)
        assert r.extra["action_units"] == aus
        n = len(r.frames)
        assert numbers(r.frames) == list(range(1, n + 1))
        assert [f.name for f in r.frames] != sorted(f.name for f in r.frames)  # "10.jpg" < "2.jpg" as strings
        if offset is not None:
            assert numbers(r.segment()) == list(range(onset, offset + 1))
    last = rows[list(rows)[-1]]
    assert last[3] is None and last[4] is None  # a row without apex/offset is kept, marks left empty


def test_mmew_drops_missing_folders_and_unnamed_ones(mmew_root):
    rows = sheet_rows(mmew_root)
    gone = rows[0][1]
    shutil.rmtree(next((mmew_root / "Micro_Expression").glob(f"*/{gone}")))
    stray = mmew_root / "Micro_Expression" / "surprise" / "S09-02-001"
    stray.mkdir(parents=True)
    (stray / "1.jpg").write_bytes(next((mmew_root / "Micro_Expression").glob("*/*/1.jpg")).read_bytes())
    result = mmew.load(mmew_root)
    assert len(result.records) == len(rows) - 1
    assert sorted(result.dropped) == [(gone, "frame folder missing"), ("S09-02-001", "not in the annotation sheet")]


def test_mmew_root_one_level_off_and_wrong_roots(mmew_root, tmp_path):
    assert len(mmew.load(tmp_path).records) == 9  # the folder holding MMEW_Final
    assert len(mmew.load(mmew_root / "Micro_Expression").records) == 9
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="Micro_Expression/<emotion>/<clip>/1.jpg"):
        mmew.load(tmp_path / "empty")
    (mmew_root / "MMEW_Micro_Exp.xlsx").rename(tmp_path / "elsewhere.xlsx")
    with pytest.raises(InputError, match="MMEW_Micro_Exp.xlsx"):
        mmew.load(mmew_root)
    assert len(mmew.load(mmew_root, sheet=tmp_path / "elsewhere.xlsx").records) == 9


# -------------------------------------------------------------------------------------------- UCF101


@pytest.fixture(scope="module")
def ucf_written(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ucf") / "UCF101"
    ucf101.write_synthetic(root, FlatSource((16, 16)), subjects=9, clips_per_subject=1, rng=rng(4),
                           n_frames=(6, 8))
    return root


@pytest.fixture
def ucf_root(ucf_written, tmp_path) -> Path:
    return Path(shutil.copytree(ucf_written, tmp_path / "UCF101"))


def test_ucf101_writes_the_distributed_layout(ucf_written):
    lists = ucf_written / "ucfTrainTestlist"
    assert (ucf_written / "UCF-101" / "HandstandPushups" / "v_HandStandPushups_g08_c01.avi").is_file()
    class_lines = (lists / "classInd.txt").read_bytes().decode().split("\r\n")
    assert class_lines[0] == "1 ApplyEyeMakeup" and "37 HandstandPushups" in class_lines
    assert class_lines[100] == "101 YoYo"
    train = (lists / "trainlist01.txt").read_bytes().decode()
    assert "HandstandPushups/v_HandStandPushups_g08_c01.avi 37\r\n" in train
    assert "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi\r\n" in (lists / "testlist01.txt").read_bytes().decode()
    assert {f"{k}list0{s}.txt" for k in ("train", "test") for s in (1, 2, 3)} <= {p.name for p in lists.iterdir()}


@pytest.mark.parametrize("split, test_groups", [(1, set(range(1, 8))), (2, {8, 9}), (3, set())])
def test_ucf101_split_membership_from_the_official_lists(ucf_written, split, test_groups):
    result = ucf101.load(ucf_written, split=split)
    assert len(result.records) == 27 and not result.dropped
    for r in result.records:
        assert r.subject == r.extra["group"] and isinstance(r.subject, int)
        assert r.extra["split"] == ("test" if r.subject in test_groups else "train")
        assert r.extra["split_number"] == split
        assert r.video.is_file() and not r.frames and r.fps == 25.0
        assert r.clip == r.video.stem and r.video.parent.name == r.extra["class_name"]
    index = {r.extra["class_name"]: (r.extra["class_index"], r.emotion) for r in result.records}
    assert index == {"ApplyEyeMakeup": (1, "applyeyemakeup"), "HandstandPushups": (37, "handstandpushups"),
                     "YoYo": (101, "yoyo")}


def test_ucf101_videos_are_real_avi_clips(ucf_written):
    record = ucf101.load(ucf_written).records[0]
    clip = read_clip(record.video)
    assert clip.frames.shape[1:] == (16, 16, 3) and 6 <= clip.n_frames <= 8
    assert clip.fps == pytest.approx(25.0)


def test_ucf101_drops_missing_and_unlisted_videos(ucf_root):
    videos = ucf_root / "UCF-101"
    (videos / "YoYo" / "v_YoYo_g03_c01.avi").unlink()
    shutil.copy(videos / "YoYo" / "v_YoYo_g04_c01.avi", videos / "YoYo" / "v_YoYo_g04_c02.avi")
    result = ucf101.load(ucf_root)
    assert len(result.records) == 26
    assert sorted(result.dropped) == [("v_YoYo_g03_c01", "video missing"),
                                      ("v_YoYo_g04_c02", "not in trainlist01.txt or testlist01.txt")]


def test_ucf101_root_one_level_off_and_wrong_input(ucf_root, tmp_path):
    assert len(ucf101.load(ucf_root / "UCF-101").records) == 27
    assert len(ucf101.load(tmp_path).records) == 27
    with pytest.raises(InputError, match="splits 1, 2 and 3"):
        ucf101.load(ucf_root, split=4)
    (tmp_path / "other").mkdir()
    with pytest.raises(InputError, match="ucfTrainTestlist/classInd.txt"):
        ucf101.load(tmp_path / "other")
    (ucf_root / "ucfTrainTestlist" / "testlist01.txt").unlink()
    with pytest.raises(InputError, match="testlist01.txt: missing"):
        ucf101.load(ucf_root)
