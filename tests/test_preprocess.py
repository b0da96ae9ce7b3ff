"""`python -m inference.preprocess` as a user runs it, on the bundled example and on bad input."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from inference.views import make_view

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "astronaut.mp4"


def run(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "inference.preprocess", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd, timeout=300)


def test_preprocess_example_clip(tmp_path):
    out = tmp_path / "astronaut"
    res = run(EXAMPLE, "--out", out, "--size", 112, "--frames", 34)
    assert res.returncode == 0, res.stderr
    assert "faces seen 1" in res.stdout
    o, left, r = (np.load(out / f"{v}.npy") for v in "OLR")
    for v in (o, left, r):
        assert v.shape == (34, 112, 112, 3) and v.dtype == np.uint8
    np.testing.assert_array_equal(left, make_view(o, "L"))
    np.testing.assert_array_equal(r, make_view(o, "R"))
    meta = json.loads((out / "meta.json").read_text())
    assert meta["input_frames"] == 200 and meta["output_frames"] == 34 and meta["fps"] == 100
    assert meta["frames_used"][0] == 0 and meta["frames_used"][-1] == 199
    assert meta["faces_seen"] == 1 and meta["mode"] == "fixed"
    assert np.array(meta["transform"]).shape == (2, 3)
    assert np.array(meta["landmarks"]).shape == (5, 2)
    assert set(meta["boxes"]) == {"0", "199"} and len(meta["keyframes"]) == 8
    assert meta["crop"]["size"] == 112
    preview = Image.open(out / "preview.png")
    assert preview.size[0] > 8 * 112 and preview.size[1] > 3 * 112
    # the example's head is rolled; the crop levels it (landmarks mapped into the crop lie level)
    lm = np.array(meta["landmarks"]) @ np.array(meta["transform"])[:, :2].T + np.array(meta["transform"])[:, 2]
    assert abs(lm[0, 1] - lm[1, 1]) < 0.5
    assert not list(out.glob(".*")), "temporary files left behind"


def test_preprocess_folder_keeps_all_frames_and_chosen_views(tmp_path, face_image):
    import cv2

    from tests.helpers import animate

    frames, _ = animate(face_image, 7, angle=-9, shift=(-15, 10))
    src = tmp_path / "sub01" / "EP02_01f"
    src.mkdir(parents=True)
    for i, f in enumerate(frames):
        cv2.imwrite(str(src / f"reg_img{40 + 12 * i}.jpg"), cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    res = run(src, "--out", tmp_path / "out", "--size", 96, "--views", "LR", "--fps", 200)
    assert res.returncode == 0, res.stderr
    assert not (tmp_path / "out" / "O.npy").exists()
    assert np.load(tmp_path / "out" / "L.npy").shape == (7, 96, 96, 3)
    assert json.loads((tmp_path / "out" / "meta.json").read_text())["fps"] == 200


@pytest.mark.parametrize("make,words", [
    (lambda d: (d / "empty.mp4").touch() or d / "empty.mp4", "empty"),
    (lambda d: (d / "notes.mp4").write_text("not a video\n" * 99) and d / "notes.mp4", "not a readable video"),
    (lambda d: d / "nowhere.mp4", "no such file"),
])
def test_preprocess_bad_input_is_a_message_not_a_traceback(tmp_path, make, words):
    res = run(make(tmp_path), "--out", tmp_path / "out")
    assert res.returncode == 2
    assert res.stderr.startswith("error: ") and words in res.stderr
    assert "Traceback" not in res.stderr
    assert not (tmp_path / "out" / "meta.json").exists()


def test_preprocess_no_face(tmp_path):
    from inference.video import write_video

    rng = np.random.default_rng(1)
    write_video(tmp_path / "wall.mp4", rng.integers(90, 110, (10, 240, 320, 3), dtype=np.uint8), fps=25)
    res = run(tmp_path / "wall.mp4", "--out", tmp_path / "out")
    assert res.returncode == 2 and "no face found (looked at frames 0, 9 of 10)" in res.stderr
    assert "Traceback" not in res.stderr


def test_help_explains():
    res = run("--help")
    assert res.returncode == 0
    text = " ".join(res.stdout.split())
    for words in ["O.npy", "--size", "--frames", "--margin", "folder of frame images"]:
        assert words in text


def test_one_clip_path_gives_a_named_picklable_result(face_image):
    import pickle

    from inference.errors import InputError
    from inference.face import CropSettings
    from inference.preprocess import PreparedClip, Preparer, preprocess
    from inference.video import Clip
    from tests.helpers import animate

    frames, _ = animate(face_image, 9, angle=5, shift=(5, -3), frame_size=(240, 320), base_scale=0.8)
    clip = Clip(frames, 30.0, "in-memory")
    stages = []
    prepared = Preparer(CropSettings(size=64), n_frames=5)(clip, on_stage=stages.append)
    assert isinstance(prepared, PreparedClip) and stages == ["decode", "face"]
    assert prepared.frames.shape == (5, 64, 64, 3) and prepared.frames.dtype == np.uint8
    assert (prepared.source, prepared.fps, prepared.input_frames) == ("in-memory", 30.0, 9)
    assert prepared.input_size == (320, 240)
    assert prepared.faces_seen == 1 and prepared.face["crop"]["size"] == 64 and prepared.face["mode"] == "fixed"
    assert set(prepared.timings) == {"decode", "face", "resample"}
    assert prepared.frames_used == [0.0, 2.0, 4.0, 6.0, 8.0]
    again = pickle.loads(pickle.dumps(prepared))  # what a worker process hands back
    np.testing.assert_array_equal(again.frames, prepared.frames)
    every = Preparer(CropSettings(size=64))(clip)  # no n_frames: every frame (the training cache)
    assert every.n_frames == 9
    np.testing.assert_array_equal(every.frames[[0, 2, 4, 6, 8]], prepared.frames)  # whole positions: the same frames
    o = preprocess(clip, CropSettings(size=64), n_frames=5, views="O")  # the command's path is the same path
    np.testing.assert_array_equal(o.views["O"], prepared.frames)
    assert o.meta["faces_seen"] == 1 and o.meta["frames_used"] == prepared.frames_used
    with pytest.raises(InputError, match="unknown device"):
        Preparer(device="tpu")


def test_runtime_imports_nothing_from_training():
    code = ("import sys, inference.preprocess, inference.face, inference.video, inference.views\n"
            "import tools.bench.inference  # the serving-side bench runs on a serving install too\n"
            "bad = [m for m in sys.modules\n"
            "       if m.split('.')[0] in ('training', 'export', 'demo', 'pandas', 'tensorboard', 'yaml')]\n"
            "print(bad)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert res.returncode == 0 and res.stdout.strip() == "[]", res.stdout + res.stderr


def test_face_benchmark_command_prints_the_ratio():
    res = subprocess.run([sys.executable, "-m", "tools.bench.inference", "face", "--repeat", "1", "--max-frames", "24"],
                         capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert res.returncode == 0, res.stderr
    assert "naive: MTCNN on every frame" in res.stdout and "x faster" in res.stdout


def test_working_size_and_memory_options(tmp_path, capsys):
    from inference.preprocess import main

    out = tmp_path / "small"
    args = ["--frames", "8", "--working-size", "160", "--max-megabytes", "64"]
    assert main([str(EXAMPLE), "--out", str(out), *args]) == 0
    meta = json.loads((out / "meta.json").read_text())
    assert meta["input_size"] == [160, 120] and meta["quality"]["face_coverage"] == 1.0
    assert "face coverage 100% (frames 0–199 used)" in capsys.readouterr().out
    assert main([str(EXAMPLE), "--out", str(out), "--max-megabytes", "1"]) == 2  # 200 frames need more than 1 MiB
    assert "MB" in capsys.readouterr().err
