"""The batch command spots recordings: one row per interval found (frames and seconds of the recording), one summary
row per recording ("no micro-expression found" when none), the whole-clip row for short clips; resumable."""

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from inference.spotting import interval_iou
from training.synth.faces import FaceSource
from training.synth.long import LongEvent, render

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "demo" / "default_model"
FPS = 30.0
MICRO = LongEvent("micro", 60, 65, 71, "surprise")


@pytest.fixture(scope="module")
def recordings(tmp_path_factory):
    """take.mp4: 4 s with a blink and one micro-expression at known frames; still.mp4: 1.5 s of a neutral face;
    short.mp4: a 0.46 s example clip (one expression)."""
    from inference.video import write_video

    root = tmp_path_factory.mktemp("spot-in")
    source = FaceSource((160, 200), seed=5, face_fraction=0.6)
    rec = render(source, 3, [LongEvent("blink", 20, 23, 27), MICRO], 120, FPS, np.random.default_rng(4))
    write_video(root / "take.mp4", rec.frames, FPS)
    write_video(root / "still.mp4", np.repeat(rec.frames[:1], 45, axis=0), FPS)
    shutil.copy(ROOT / "demo" / "examples" / "surprise.mp4", root / "short.mp4")
    return root


def _run(inputs, out, *extra):
    from inference.__main__ import main

    assert main(["--model", str(PACKAGE), "--input", *map(str, inputs), "--output", str(out), "--workers", "0",
                 "--device", "cpu", "--engine", "onnxruntime", *extra]) == 0


def test_batch_rows_name_the_spotted_interval_and_resume(recordings, tmp_path, capsys):
    out = tmp_path / "rows.csv"
    _run([recordings], out)
    rows = list(csv.DictReader(out.open()))
    by = {}
    for r in rows:
        by.setdefault((Path(r["path"]).name, r["row"]), []).append(r)
    assert sorted(by) == [("short.mp4", "clip"), ("still.mp4", "summary"), ("take.mp4", "interval"),
                          ("take.mp4", "summary")]
    (hit,) = by["take.mp4", "interval"]  # the micro-expression, not the blink
    assert hit["kind"] == "micro" and hit["mode"] == "spot" and float(hit["score"]) > 0
    onset, apex, offset = int(hit["onset"]), int(hit["apex"]), int(hit["offset"])
    assert interval_iou((onset, offset), (MICRO.onset, MICRO.offset)) >= 0.5 and abs(apex - MICRO.apex) <= 3
    assert float(hit["start_s"]) == pytest.approx(onset / FPS, abs=1e-3)
    assert float(hit["end_s"]) == pytest.approx((offset + 1) / FPS, abs=1e-3)  # the end of the offset frame
    assert hit["label"] in ("negative", "positive", "surprise")
    assert abs(sum(float(hit[f"prob_{k}"]) for k in ("negative", "positive", "surprise")) - 1) < 1e-4
    (summary,) = by["take.mp4", "summary"]
    assert summary["intervals"] == "1" and "no micro-expression" not in summary["notes"]
    assert float(summary["face_coverage"]) > 0.9 and float(summary["t_total"]) > 0
    (still,) = by["still.mp4", "summary"]
    assert still["intervals"] == "0" and still["notes"].split(" | ")[0] == "no micro-expression found"
    (short,) = by["short.mp4", "clip"]  # under a second: one expression, as before
    assert short["mode"] == "whole" and short["label"] and short["onset"] == ""
    capsys.readouterr()
    _run([recordings], out)  # resumed: every recording is finished, nothing is redone
    assert "3 already in" in capsys.readouterr().out and list(csv.DictReader(out.open())) == rows
    # whole mode gives the recording one row, as before spotting existed
    whole = tmp_path / "whole.jsonl"
    _run([recordings / "take.mp4"], whole, "--mode", "whole")
    (line,) = [json.loads(x) for x in whole.read_text().splitlines()]
    assert line["row"] == "clip" and line["label"] in ("negative", "positive", "surprise")


def test_interval_rows_of_an_unfinished_recording_are_dropped_on_resume(tmp_path):
    from inference.__main__ import RowWriter

    for name in ("out.jsonl", "out.csv"):
        writer = RowWriter(tmp_path / name, ["a", "b"])
        writer.start()
        writer.write_many([{"path": "x.mp4", "status": "ok", "row": "interval", "onset": 3},
                           {"path": "x.mp4", "status": "ok", "row": "summary", "intervals": 1}])
        writer.write({"path": "y.mp4", "status": "ok", "row": "interval", "onset": 5})  # killed before its summary
        assert RowWriter(tmp_path / name, ["a", "b"]).done() == {"x.mp4"}
        text = (tmp_path / name).read_text()
        assert "x.mp4" in text and "y.mp4" not in text


def test_the_same_recording_gives_the_same_signals_whatever_ran_before_and_however_many_threads(
        recordings, tmp_path, monkeypatch):
    """Issue 30: the spotter's answer depends on the recording only. The fixture's recording, rendered and written
    again after other work in this process, is the same file; and that file (with keyframes along it, so it can be
    decoded in pieces) gives bit-identical aligned frames, signals and intervals with OpenCV on 1 or 8 threads, torch
    on 1 or 4, the decoder in pieces or in one go, and after a batch run."""
    import cv2
    import torch

    from inference import video
    from inference.recognise import ModePreparer
    from inference.runtime import Predictor
    from inference.spotting import SpotParams, motion_signals, spot

    source = FaceSource((160, 200), seed=5, face_fraction=0.6)
    frames = render(source, 3, [LongEvent("blink", 20, 23, 27), MICRO], 120, FPS, np.random.default_rng(4)).frames
    video.write_video(tmp_path / "again.mp4", frames, FPS)
    assert (tmp_path / "again.mp4").read_bytes() == (recordings / "take.mp4").read_bytes()
    path = tmp_path / "keyed.mp4"
    video.write_video(path, frames, FPS, keyframe_every=60)
    predictor = Predictor(PACKAGE, device="cpu", engine="onnxruntime")
    params = SpotParams(margin=predictor.crop.margin)
    split, real = [], video._read_pieces

    def read_pieces(*args):
        split.append(real(*args))
        return split[-1]

    monkeypatch.setattr(video, "_read_pieces", read_pieces)
    monkeypatch.setattr(video, "_cores", lambda: 2)  # two pieces even on a one-core machine

    def spotted(cv2_threads: int, torch_threads: int, pieces: int):
        cv2.setNumThreads(cv2_threads)
        torch.set_num_threads(torch_threads)
        monkeypatch.setattr(video, "MAX_PIECES", pieces)
        _, prepared = ModePreparer(predictor.preparer, "spot")(path)
        sig = motion_signals(prepared.frames, prepared.fps, params)
        return prepared.frames, sig, spot(prepared.frames, prepared.fps, params, sig)

    before = cv2.getNumThreads(), torch.get_num_threads()
    try:
        runs = {"1 thread, one decoder": spotted(1, 1, 1), "8 and 4 threads, pieces": spotted(8, 4, 4)}
        _run([recordings / "still.mp4"], tmp_path / "rows.csv")  # a batch run in between
        runs["after a batch run"] = spotted(*before, 4)
    finally:
        cv2.setNumThreads(before[0])
        torch.set_num_threads(before[1])
    assert len(split) == 2 and None not in split, split  # the two runs with pieces were decoded in pieces
    (ref_frames, ref, ref_intervals), *others = runs.values()
    assert [iv.kind for iv in ref_intervals] == ["micro"]
    for name, (aligned, sig, intervals) in zip(list(runs)[1:], others):
        np.testing.assert_array_equal(aligned, ref_frames, err_msg=name)
        for key in ("blocks_difference", "difference", "contrast", "head"):
            np.testing.assert_array_equal(getattr(sig, key), getattr(ref, key), err_msg=f"{name}: {key}")
        assert (sig.threshold, sig.noise) == (ref.threshold, ref.noise) and intervals == ref_intervals, name
