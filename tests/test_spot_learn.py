"""The optional learned spotter: features from generated CAS(ME)² copies, LOSO training into a run folder with
per-fold figures (each fold blind to its held-out subject), and the JSON file it writes loaded by the runtime to spot
a held-out recording; wrong files are refused with a clear message."""

import json
import shutil

import numpy as np
import pytest

from inference.errors import InputError
from inference.face import CropSettings
from inference.spotting import LearnedSpotter, SpotParams, interval_iou, load_spotter, spot
from training.datasets.registry import long_dataset_module
from training.spot_eval import LongVideo, Truth, aligned_recording
from training.spot_eval import main as spot_eval_main
from training.spot_learn import TrainSettings, frame_labels, run
from training.synth.faces import FaceSource

CROP = CropSettings(size=64)


@pytest.fixture(scope="module")
def learned(tmp_path_factory):
    """Three subjects × two 3 s recordings (blinks and head turns among the micro-expressions), a LOSO run."""
    data, out = tmp_path_factory.mktemp("casme_sq"), tmp_path_factory.mktemp("spotlearn")
    long_dataset_module("casme_sq").write_synthetic(data, FaceSource((180, 240), seed=21, face_fraction=0.5),
                                                    subjects=3, videos_per_subject=2, rng=np.random.default_rng(22),
                                                    seconds=(3.0, 3.0), micro=(1, 2))
    summary = run("casme_sq", data, out, SpotParams(), CROP, TrainSettings(steps=800), progress=False)
    return data, out, summary


def test_loso_run_folder_has_honest_folds_and_pooled_figures(learned):
    data, out, summary = learned
    videos = long_dataset_module("casme_sq").load(data).videos
    subject_of = {v.video: v.subject for v in videos}
    assert summary["subjects"] == [15, 16, 17]
    micro_truths = sum(t.kind == "micro" for v in videos for t in v.truths)
    pooled_tp = 0
    for s in summary["subjects"]:
        fold = json.loads((out / "folds" / f"subject_{s}" / "fold.json").read_text())
        # honesty: the held-out subject's recordings are all in the test set and none in the training set
        assert sorted(fold["test_videos"]) == sorted(v for v, subj in subject_of.items() if subj == s)
        assert fold["train_videos"] and all(subject_of[v] != s for v in fold["train_videos"])
        model = json.loads((out / "folds" / f"subject_{s}" / "spotter.json").read_text())
        assert model["info"]["held_out_subject"] == s and model["info"]["videos"] == fold["train_videos"]
        for which in ("learned", "training_free"):
            f = fold["figures"][which]["micro"]
            assert f["tp"] + f["fn"] == sum(t.kind == "micro" for v in videos if v.subject == s for t in v.truths)
        pooled_tp += fold["figures"]["learned"]["micro"]["tp"]
    figures = json.loads((out / "loso.json").read_text())["figures"]
    assert figures["learned"]["micro"]["tp"] == pooled_tp  # pooled over the folds
    assert figures["learned"]["micro"]["tp"] + figures["learned"]["micro"]["fn"] == micro_truths
    assert figures["learned"]["micro"]["f1"] >= 0.6, figures
    table = (out / "loso.txt").read_text()
    assert "learned spotter" in table and "training-free spotter" in table and "subject 16" in table


def test_a_fold_model_spots_its_held_out_recording_through_the_runtime(learned):
    data, out, _ = learned
    path = out / "folds" / "subject_16" / "spotter.json"
    video = next(v for v in long_dataset_module("casme_sq").load(data).videos if v.subject == 16 and
                 any(t.kind == "micro" for t in v.truths))
    prepared = aligned_recording(video, CROP)  # decoded and aligned by the real detector, as the runtime does
    first = prepared.quality.frames_used[0] if prepared.quality else 0
    found = spot(prepared.frames, prepared.fps, SpotParams(spotter=path, margin=CROP.margin))
    for t in (t for t in video.truths if t.kind == "micro"):
        assert any(iv.kind == "micro" and interval_iou((iv.onset + first, iv.offset + first),
                                                       (t.onset, t.offset)) >= 0.5 for iv in found), (t, found)
    assert all(0 < iv.score <= 1 for iv in found)  # the model's expression probability at the apex


def test_run_resumes_and_the_final_model_round_trips(learned):
    data, out, _ = learned
    stamps = {p: p.stat().st_mtime_ns for p in [*(out / "features").glob("*.npz"), *(out / "folds").glob("*/*")]}
    run("casme_sq", data, out, SpotParams(), CROP, TrainSettings(steps=800), progress=False, final=False)
    assert stamps and all(p.stat().st_mtime_ns == t for p, t in stamps.items())  # nothing extracted or trained again
    data_json = json.loads((out / "spotter.json").read_text())  # plain JSON: no pickle, no torch file
    assert data_json["info"]["subjects"] == [15, 16, 17] and len(data_json["info"]["videos"]) == 6
    spotter = load_spotter(out / "spotter.json", SpotParams())
    again = LearnedSpotter.from_json(json.loads(json.dumps(spotter.to_json())))
    for (w, b), (w2, b2) in zip(spotter.layers, again.layers):
        np.testing.assert_allclose(w, w2, atol=1e-6)
        np.testing.assert_allclose(b, b2, atol=1e-6)


def test_wrong_spotter_files_are_refused_with_what_to_do(learned, tmp_path):
    _, out, _ = learned
    good = json.loads((out / "spotter.json").read_text())
    with pytest.raises(InputError, match="no such learned spotter file"):
        load_spotter(tmp_path / "missing.json")
    (tmp_path / "text.json").write_text("not json")
    with pytest.raises(InputError, match="not JSON"):
        load_spotter(tmp_path / "text.json")
    cases = {"other.json": ({"labels": ["a"]}, "not a learned spotter file"),
             "features.json": ({**good, "features": good["features"][:-1]}, "other features"),
             "shapes.json": ({**good, "mean": good["mean"][:-1]}, "do not fit"),
             "version.json": ({**good, "version": 99}, "version 99"),
             "damaged.json": ({k: v for k, v in good.items() if k != "layers"}, "damaged")}
    for name, (content, message) in cases.items():
        (tmp_path / name).write_text(json.dumps(content))
        with pytest.raises(InputError, match=message):
            load_spotter(tmp_path / name)
    frames = np.zeros((40, 64, 64, 3), np.uint8)
    with pytest.raises(InputError, match="window_s=0.2"):  # signals computed otherwise than for training
        spot(frames, 30.0, SpotParams(window_s=0.3, spotter=out / "spotter.json"))
    shutil.copy(tmp_path / "shapes.json", tmp_path / "bad.json")
    assert spot_eval_main(["--dataset", "casme_sq", "--data", str(tmp_path), "--spotter",
                           str(tmp_path / "bad.json")]) == 2


def test_frame_labels_follow_the_recordings_frames():
    video = LongVideo("casme_sq", 1, "v", 30.0, truths=[Truth(10, 12, 15, "micro"), Truth(30, 40, 50, "macro")])
    labels = frame_labels(video, first=4, step=2, n_work=25)  # working frame i is recording frame 4 + 2i (+1)
    assert labels.tolist() == [0] * 3 + [1] * 3 + [0] * 7 + [2] * 10 + [0] * 2


def test_the_batch_command_and_the_predictor_take_a_learned_spotter(learned, tmp_path, capsys):
    """``python -m inference … --spotter FILE`` spots with the learned file (the rows' intervals are the file's: scores
    are its probabilities); a wrong file is refused before any recording is read."""
    import csv
    from pathlib import Path

    from inference.__main__ import main
    from inference.runtime import Predictor

    data, out, _ = learned
    package = Path(__file__).resolve().parent.parent / "demo" / "default_model"
    video = next(v for v in long_dataset_module("casme_sq").load(data).videos if v.subject == 16)
    args = ["--model", str(package), "--input", str(video.source), "--fps", str(video.fps), "--mode", "spot",
            "--workers", "0", "--device", "cpu", "--engine", "onnxruntime"]
    rows_path = tmp_path / "rows.csv"
    assert main([*args, "--output", str(rows_path), "--spotter", str(out / "spotter.json")]) == 0
    rows = list(csv.DictReader(rows_path.open()))
    intervals = [r for r in rows if r["row"] == "interval"]
    assert [r["row"] for r in rows].count("summary") == 1 and intervals
    assert all(0 < float(r["score"]) <= 1 for r in intervals)  # the learned model's probabilities
    learned_result = Predictor(package, device="cpu", engine="onnxruntime").spot_and_classify(
        video.source, mode="spot", fps=video.fps, spotter=out / "spotter.json")
    assert [round(p.interval.score, 4) for p in learned_result.intervals] == [round(float(r["score"]), 4)
                                                                              for r in intervals]
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    capsys.readouterr()
    assert main([*args, "--output", str(tmp_path / "none.csv"), "--spotter", str(bad)]) == 2
    assert "spot_learn" in capsys.readouterr().err and not (tmp_path / "none.csv").exists()


def test_the_demo_takes_a_learned_spotter(learned, tmp_path, capsys):
    """The demo's page spots with the learned file when started with ``--spotter`` (its intervals score as the
    file's probabilities); a wrong file stops the server before it starts, with what to do."""
    import cv2

    from demo.__main__ import main as demo_main
    from demo.app import DEFAULT_MODEL, Analyser
    from inference.runtime import Predictor
    from inference.video import write_video

    data, out, _ = learned
    video = next(v for v in long_dataset_module("casme_sq").load(data).videos if v.subject == 16)
    upload = tmp_path / "take.mp4"
    write_video(upload, [cv2.imread(str(f))[..., ::-1] for f in video.frames], video.fps)
    analysis = Analyser(Predictor(DEFAULT_MODEL, device="cpu"), SpotParams(spotter=str(out / "spotter.json"))) \
        .analyse(str(upload), mode="spot")
    assert analysis.spot is not None and analysis.spot.intervals
    assert all(0 < p.interval.score <= 1 for p in analysis.spot.intervals)
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    capsys.readouterr()
    assert demo_main(["--spotter", str(bad), "--port", "0"]) == 2
    assert "spot_learn" in capsys.readouterr().err


def test_the_spotter_is_a_package_pushed_to_the_hub_and_pulled_back(learned, tmp_path):
    """``OUT/spotter/`` (config.json + a card with Hub metadata) goes to a local Hub through ``export.push`` and comes
    back through the model package's download code: ``SpotParams(spotter="hf://…@v1")`` spots as the file does."""
    from export.push import push_package
    from inference.learned_spotter import SPOTTER_FILES, spotter_file
    from tests.hub_server import LocalHub, point_client_at

    data, out, summary = learned
    package = out / "spotter"
    assert summary["spotter_package"] == str(package)
    assert sorted(p.name for p in package.iterdir()) == sorted(SPOTTER_FILES)
    assert json.loads((package / "config.json").read_text()) == json.loads((out / "spotter.json").read_text())
    card = (package / "README.md").read_text()
    assert card.startswith("---\n") and "LOSO micro F1" in card and "do not transfer" in card
    (tmp_path / "notes.txt").write_text("x")
    with LocalHub(tmp_path / "server") as server, pytest.MonkeyPatch.context() as mp:
        point_client_at(mp, server.endpoint, tmp_path / "hf-home")
        pushed = push_package(package, "lab/spotter", revision="v1")
        assert sorted(pushed["files"]) == sorted(SPOTTER_FILES)
        ref = "hf://lab/spotter@v1"
        downloaded = spotter_file(ref)
        assert downloaded.read_bytes() == (package / "config.json").read_bytes()
        assert sorted(p.name for p in downloaded.parent.iterdir()) == sorted(SPOTTER_FILES)
        video = next(v for v in long_dataset_module("casme_sq").load(data).videos if v.subject == 16)
        prepared = aligned_recording(video, CROP)
        by_file = spot(prepared.frames, prepared.fps, SpotParams(spotter=out / "spotter.json", margin=CROP.margin))
        assert spot(prepared.frames, prepared.fps, SpotParams(spotter=ref, margin=CROP.margin)) == by_file
        assert spot(prepared.frames, prepared.fps, SpotParams(spotter=package, margin=CROP.margin)) == by_file
        with pytest.raises(InputError, match="no model repository .lab/nothing-here."):
            spotter_file("hf://lab/nothing-here@v1")
    with pytest.raises(InputError, match="not a learned spotter package"):
        spotter_file(tmp_path)
