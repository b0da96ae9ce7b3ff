"""Spotting evaluation as MEGC counts it, the CAS(ME)² and SAMM Long Videos loaders on generated copies of their
layouts, and ``python -m training.spot_eval`` end to end on a tiny generated set."""

import json

import numpy as np
import openpyxl
import pytest

from inference.errors import InputError
from training.datasets.registry import long_dataset_module
from training.spot_eval import LongVideo, Spotted, Truth, evaluate, main, match, read_predictions, write_predictions
from training.synth.faces import FaceSource


def _video(name, truths, dataset="casme_sq"):
    return LongVideo(dataset, 1, name, 30.0, truths=truths)


def test_hits_need_iou_of_one_half_and_the_same_kind():
    truths = [Truth(10, 14, 19, "micro", "positive"), Truth(100, 130, 159, "macro", "negative")]
    spotted = [Spotted("v", 12, 21, "micro"),  # IoU 8/12 with the first truth: a hit
               Spotted("v", 15, 24, "micro"),  # IoU 5/15: too little, and the truth is already taken
               Spotted("v", 100, 159, "micro")]  # right place, wrong kind
    assert [(i, j) for i, j, _ in match(truths, spotted)] == [(0, 0)]
    # exactly one half counts: [0, 9] against [5, 9] is 5 / 10
    assert match([Truth(0, 4, 9, "micro")], [Spotted("v", 5, 9, "micro")])[0][2] == 0.5
    assert match([Truth(0, 4, 9, "micro")], [Spotted("v", 6, 9, "micro")]) == []


def test_precision_recall_f1_pooled_over_videos_micro_and_macro_apart():
    videos = [_video("a", [Truth(10, 14, 19, "micro", "positive"), Truth(50, 55, 59, "micro", "surprise")]),
              _video("b", [Truth(0, 20, 60, "macro", "negative"), Truth(90, 93, 97, "micro", "negative")]),
              _video("c", [])]
    spotted = {"a": [Spotted("a", 10, 19, "micro", label="positive"), Spotted("a", 30, 35, "micro", label="negative"),
                     Spotted("a", 50, 59, "micro", label="negative")],
               "b": [Spotted("b", 0, 50, "macro")],
               "c": [Spotted("c", 5, 9, "micro", label="surprise")]}
    figures = evaluate(videos, spotted, labels=["negative", "positive", "surprise"])
    micro = figures["micro"]  # 3 truths; 4 spotted; 2 hits
    assert (micro["tp"], micro["fp"], micro["fn"]) == (2, 2, 1)
    assert micro["precision"] == 0.5 and micro["recall"] == pytest.approx(0.6667, abs=1e-4)
    assert micro["f1"] == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3), abs=1e-4)
    assert (figures["macro"]["tp"], figures["macro"]["fp"], figures["macro"]["fn"]) == (1, 0, 0)
    assert (figures["overall"]["tp"], figures["overall"]["fp"], figures["overall"]["fn"]) == (3, 2, 1)
    # spot-then-recognise: of the two micro hits only "a" 10-19 has the right class
    str_ = figures["spot_then_recognise"]
    assert (str_["tp"], str_["fp"], str_["fn"]) == (1, 3, 2)
    # nothing spotted anywhere: zeros, not a division error
    empty = evaluate(videos, {})
    assert empty["micro"]["f1"] == 0.0 and empty["micro"]["fn"] == 3 and "spot_then_recognise" not in empty


def test_samm_emotions_count_through_their_composite_class():
    videos = [_video("006_1", [Truth(10, 14, 19, "micro", "anger"), Truth(40, 44, 49, "micro", "other")], "samm_lv")]
    spotted = {"006_1": [Spotted("006_1", 10, 19, "micro", label="negative"),
                         Spotted("006_1", 40, 49, "micro", label="negative")]}
    s = evaluate(videos, spotted, labels=["negative", "positive", "surprise"])["spot_then_recognise"]
    assert (s["tp"], s["fp"], s["fn"]) == (1, 1, 0)  # "other" has no composite class: not counted as a truth


def test_predictions_files_round_trip_and_bad_ones_are_explained(tmp_path):
    spotted = {"v1": [Spotted("v1", 3, 9, "micro", 5, 4.2, "positive")], "v2": [Spotted("v2", 0, 40, "macro")]}
    path = write_predictions(tmp_path / "p.csv", spotted)
    back = read_predictions(path)
    assert back["v1"][0].label == "positive" and (back["v2"][0].onset, back["v2"][0].offset) == (0, 40)
    (tmp_path / "p.jsonl").write_text('{"video": "v1", "onset": 3, "offset": 9, "kind": "Micro"}\n')
    assert read_predictions(tmp_path / "p.jsonl")["v1"][0].kind == "micro"
    (tmp_path / "bad.csv").write_text("video,onset,kind\nv1,3,micro\n")
    with pytest.raises(InputError, match="no offset"):
        read_predictions(tmp_path / "bad.csv")
    (tmp_path / "bad.jsonl").write_text('{"video": "v1", "onset": 3, "offset": 9, "kind": "blink"}\n')
    with pytest.raises(InputError, match="kind"):
        read_predictions(tmp_path / "bad.jsonl")


def _events(root):
    return {v["video"]: v for v in json.loads((root / "synthetic_events.json").read_text())}


@pytest.fixture(scope="module")
def casme_copy(tmp_path_factory):
    root = tmp_path_factory.mktemp("casme_sq")
    long_dataset_module("casme_sq").write_synthetic(root, FaceSource((96, 128), seed=2), subjects=2,
                                                    videos_per_subject=2, rng=np.random.default_rng(4),
                                                    seconds=(2.5, 3.5), micro=(1, 2))
    return root


def test_casme_sq_loader_reads_the_generated_layout(casme_copy):
    module = long_dataset_module("casme-sq")
    result = module.load(casme_copy)
    assert not result.dropped, result.dropped
    events = _events(casme_copy)
    assert sorted(v.video for v in result.videos) == sorted(events)
    assert {v.subject for v in result.videos} == {15, 16}
    for v in result.videos:
        assert v.fps == 30.0 and len(v.frames) == events[v.video]["frames"] and v.frames[0].name == "img1.jpg"
        want = [(e["kind"], e["onset"], e["apex"], e["offset"], e["emotion"]) for e in events[v.video]["events"]
                if e["kind"] in ("micro", "macro")]
        assert [(t.kind, t.onset, t.apex, t.offset, t.emotion) for t in v.truths] == want
    assert sum(t.kind == "micro" for v in result.videos for t in v.truths) >= 4


def test_casme_sq_sheet_quirks_and_mistakes(casme_copy, tmp_path):
    import shutil

    root = tmp_path / "CAS(ME)^2"
    shutil.copytree(casme_copy, root)
    sheet = root / "CAS(ME)^2code_final.xlsx"
    book = openpyxl.load_workbook(sheet)
    coding = book.worksheets[0]
    first = [c.value for c in coding[1]]
    coding.append([first[0], first[1], first[2], first[3], 0] + first[5:])  # offset 0: the apex is used
    coding.append([99] + first[1:])  # a participant the naming sheet does not know
    book.save(sheet)
    module = long_dataset_module("casme_sq")
    result = module.load(root / "rawpic")  # pointed one folder too deep: still found
    assert any("participant 99" in why for _, why in result.dropped)
    expression = first[1].rsplit("_", 1)[0]
    name = next(f"15_{code:04d}{rest}" for code, (e, rest) in module.VIDEOS.items() if e == expression)
    extra = next(v for v in result.videos if v.video == name).truths[-1]
    assert extra.offset == extra.apex == first[3] - 1
    with pytest.raises(InputError, match="CAS"):
        long_dataset_module("casme_sq").load(tmp_path / "nowhere")


def test_samm_lv_loader_reads_the_generated_layout(tmp_path):
    module = long_dataset_module("samm-lv")
    module.write_synthetic(tmp_path, FaceSource((96, 128), seed=3, grey=True), subjects=1, videos_per_subject=1,
                           rng=np.random.default_rng(5), seconds=(1.2, 1.2), micro=(1, 1), distractors=False)
    result = module.load(tmp_path)
    assert not result.dropped, result.dropped
    [video] = result.videos
    assert video.video == "006_1" and video.subject == 6 and video.fps == 200.0 and len(video.frames) == 240
    assert video.frames[0].name == "006_1_0001.jpg"
    [event] = _events(tmp_path)["006_1"]["events"]
    [truth] = video.truths
    assert (truth.kind, truth.onset, truth.apex, truth.offset) == ("micro", event["onset"], event["apex"],
                                                                     event["offset"])
    # the class comes from the SAMM micro-expression sheet beside the long-video one
    assert truth.emotion in ("anger", "contempt", "disgust", "sadness", "fear", "happiness", "surprise")


def test_spot_eval_end_to_end_and_resumed(tmp_path, capsys):
    data, out = tmp_path / "data", tmp_path / "out"
    long_dataset_module("casme_sq").write_synthetic(data, FaceSource((180, 240), seed=6, face_fraction=0.5),
                                                    subjects=1, videos_per_subject=1, rng=np.random.default_rng(8),
                                                    seconds=(3.5, 3.5), micro=(2, 2), distractors=False)
    args = ["--dataset", "casme_sq", "--data", str(data), "--out", str(out), "--size", "64"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "micro-expressions" in printed and "spot-then-recognise" not in printed
    summary = json.loads((out / "summary.json").read_text())
    micro = summary["figures"]["micro"]
    assert micro["tp"] + micro["fn"] == 2 and micro["tp"] >= 1, summary["figures"]
    [record] = list((out / "videos").glob("*.json"))
    stamp = record.stat().st_mtime_ns
    assert main(args) == 0
    assert record.stat().st_mtime_ns == stamp  # resumed: the finished recording was not spotted again
    # the intervals file it wrote, evaluated as a predictions file, gives the same figures
    assert main(["--dataset", "casme_sq", "--data", str(data), "--predictions", str(out / "intervals.csv")]) == 0
    assert f"{micro['f1']:.3f}" in capsys.readouterr().out
    assert main(["--dataset", "casme_sq", "--data", str(tmp_path / "missing")]) == 2
