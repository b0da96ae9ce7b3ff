"""The runtime and the batch command on a package exported from the tiny trained model."""

import contextlib
import csv
import io
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from inference.errors import InputError
from inference.runtime import Predictor
from tests.helpers import calibrated

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def package(small_run, tmp_path_factory):
    """The small LOSO's --final model exported with an int8 variant (the runtime needs a real package, not a good
    recogniser: the expensive 24-epoch tiny LOSO is test_loso's)."""
    from export.__main__ import export_package

    out = tmp_path_factory.mktemp("pkg") / "tiny"
    export_package(small_run[0] / "final" / "model.pt", out, int8=True, calibrate=str(_cache_of(small_run)),
                   log=lambda *_: None)
    return out


def _cache_of(tiny_run):
    import yaml

    return yaml.safe_load((tiny_run[0] / "config.yaml").read_text())["data"]["caches"][0]


@pytest.fixture(scope="module")
def clip_folders(smic_heldout_cache):
    """The held-out synthetic SMIC-HS clips as the dataset ships them (frame folders)."""
    from training.datasets import smic

    return [r.frames[0].parent for r in smic.load(smic_heldout_cache.parent / "data").records]


@pytest.mark.parametrize("engine, provider", [("onnxruntime", "CPUExecutionProvider"), ("openvino", "OpenVINO (CPU)")])
def test_predictor_matches_the_pytorch_path(package, small_run, clip_folders, engine, provider):
    from export.package import PackagedModel
    from inference.package import crop_settings
    from inference.preprocess import preprocess
    from training.record import TrainedModel
    from training.schemes import load_view_model

    predictor = Predictor(package, device="cpu", engine=engine)
    assert predictor.provider == provider and predictor.engine == engine and predictor.variant == "fp32"
    model, meta = load_view_model(small_run[0] / "final" / "model.pt")
    reference = PackagedModel(model, TrainedModel.read(meta).preprocessing())
    crop = crop_settings(meta["extra"]["crop"])
    for folder in clip_folders[:4]:
        pred = predictor.predict(folder)
        o = preprocess(folder, crop, n_frames=meta["extra"]["n_frames"], views="O").views["O"]
        with torch.no_grad():
            probs, view_logits = reference(torch.from_numpy(o[None]), torch.tensor([0, 1, 2]))
        np.testing.assert_allclose(pred.probs, calibrated(predictor, probs[0].numpy()), atol=1e-4)
        assert set(pred.per_view) == {"O", "L", "R"} and pred.faces_seen == 1
        view_l = torch.softmax(view_logits[1, 0], -1).numpy()
        np.testing.assert_allclose(pred.per_view["L"], calibrated(predictor, view_l), atol=1e-4)
        assert set(pred.timings) >= {"decode", "face", "resample", "model", "fuse", "total"}
    only_o = predictor.predict(clip_folders[0], views="O")
    assert list(only_o.per_view) == ["O"]
    np.testing.assert_allclose(only_o.probs, only_o.per_view["O"], atol=1e-6)  # one view: fused = that view
    int8 = Predictor(package, device="cpu", variant="int8", engine=engine)
    assert int8.predict(clip_folders[0]).top == predictor.predict(clip_folders[0]).top
    batch = np.stack([predictor.prepare(f).frames for f in clip_folders[:3]])  # a new input shape: a second compile
    probs, view_logits = predictor.run(batch, "LR")
    assert probs.shape == (3, len(predictor.labels)) and view_logits.shape == (2, 3, len(predictor.labels))
    shapes = len(getattr(predictor.session, "compiled", {}))
    pair, pair_views = predictor.run(batch[:2])
    one_by_one = [predictor.run(clip[None]) for clip in batch[:2]]
    np.testing.assert_allclose(pair, np.concatenate([p for p, _ in one_by_one]), atol=1e-5)
    np.testing.assert_allclose(pair_views, np.concatenate([v for _, v in one_by_one], axis=1), atol=1e-5)
    if engine == "openvino":  # a batch size not compiled yet ran clip by clip on the graph compiled for one
        assert len(predictor.session.compiled) == shapes
    with pytest.raises(InputError, match="no fp16 variant"):
        Predictor(package, device="cpu", variant="fp16")


def test_cpu_engine_choice(package):
    assert Predictor(package, device="cpu").engine == "openvino"  # installed with serve-cpu.txt: the default on CPU
    with pytest.raises(InputError, match="unknown engine"):
        Predictor(package, device="cpu", engine="tvm")
    with pytest.raises(InputError, match="runs on the CPU"):
        Predictor(package, device="cuda", engine="openvino")


def test_runtime_benchmark_prints_every_engine(package, clip_folders):
    from tools.bench.inference import main as bench

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert bench(["runtime", "--model", str(package), "--clip", str(clip_folders[0]), "--repeat", "1",
                      "--batch", "3"]) == 0
    text = out.getvalue()
    assert "fp32 on OpenVINO (CPU)" in text and "peak RSS" in text and "a batch of 3 clips" in text
    for row in ("ONNX Runtime fp32", "ONNX Runtime int8", "OpenVINO fp32", "OpenVINO int8"):
        line = next(ln for ln in text.splitlines() if f"model {row}" in ln)
        rate = re.search(r"([\d.]+) clips/s", line)
        assert rate and float(rate.group(1)) > 0, line


def test_eager_benchmark_is_a_separate_tool_from_the_serving_side_one(package, small_run, clip_folders):
    from tools.bench.export import main as eager_bench
    from tools.bench.inference import main as bench

    checkpoint = small_run[0] / "final" / "model.pt"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert eager_bench(["--model", str(package), "--checkpoint", str(checkpoint), "--clip", str(clip_folders[0]),
                            "--repeat", "1", "--batch", "2", "--device", "cpu"]) == 0
    text = out.getvalue()
    assert "eager on cpu" in text and "a batch of 2 clips" in text
    for row in ("PyTorch eager fp32", "ONNX Runtime fp32", "ONNX Runtime int8", "OpenVINO fp32", "OpenVINO int8"):
        line = next(ln for ln in text.splitlines() if f"model {row}" in ln)
        ratio = re.search(r"\(([\d.]+)x of ONNX Runtime fp32\)", line)
        assert ratio and float(ratio.group(1)) > 0, line
    err = io.StringIO()  # the serving-side bench no longer takes a checkpoint, and says where that went
    with contextlib.redirect_stderr(err):
        assert bench(["runtime", "--model", str(package), "--checkpoint", str(checkpoint)]) == 2
    assert "python -m tools.bench.export" in err.getvalue()


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture()
def inputs(clip_folders, tmp_path):
    root = tmp_path / "in"
    root.mkdir()
    for i, folder in enumerate(clip_folders[:6]):
        shutil.copytree(folder, root / f"clip{i:02d}")
    (root / "broken.mp4").write_text("not a video at all\n" * 20)
    wall = root / "wall"
    wall.mkdir()
    import cv2

    for i in range(6):
        cv2.imwrite(str(wall / f"img{i}.png"), np.full((120, 160, 3), 90 + i, np.uint8))
    return root


def _cmd(package, inputs, out, *extra):
    return [sys.executable, "-m", "inference", "--model", str(package), "--input", str(inputs), "--output", str(out),
            "--device", "cpu", *extra]


def test_batch_resume_after_kill_gives_every_input_once(package, inputs, tmp_path):
    out = tmp_path / "pred.csv"
    proc = subprocess.Popen(_cmd(package, inputs, out), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while (time.time() < deadline and proc.poll() is None
           and not (out.exists() and len(out.read_text().splitlines()) >= 3)):
        time.sleep(0.01)
    assert proc.poll() is None, "the batch finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    before = len(_rows(out))
    res = subprocess.run(_cmd(package, inputs, out), cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    assert f"{before} already in" in res.stdout
    rows = _rows(out)
    expected = sorted(str(p) for p in list(inputs.glob("clip*")) + [inputs / "broken.mp4", inputs / "wall"])
    assert sorted(r["path"] for r in rows) == expected  # each input exactly once
    by_path = {r["path"]: r for r in rows}
    broken, wall = by_path[str(inputs / "broken.mp4")], by_path[str(inputs / "wall")]
    assert broken["status"] == "error" and "not a readable video" in broken["error"]
    assert wall["status"] == "error" and "no face found" in wall["error"]
    for r in rows:
        if r["path"].split("/")[-1].startswith("clip"):
            assert r["status"] == "ok" and r["label"] in ("negative", "positive", "surprise")
            assert abs(sum(float(r[f"prob_{k}"]) for k in ("negative", "positive", "surprise")) - 1) < 1e-4
    assert "7 predicted" not in res.stdout  # the resumed run did only what was left


def test_batch_with_workers_and_model_batches_gives_the_same_rows(package, inputs, tmp_path):
    rows = {}
    for mode, extra in {"serial": ["--workers", "0"], "parallel": ["--workers", "2", "--batch-size", "3"]}.items():
        out = tmp_path / f"{mode}.csv"
        res = subprocess.run(_cmd(package, inputs, out, *extra), cwd=ROOT, capture_output=True, text=True, timeout=600)
        assert res.returncode == 0, res.stderr
        expected = "2 preparing workers, model batches of 3" if mode == "parallel" else "no preparing workers"
        assert expected in res.stdout
        rows[mode] = {r["path"]: r for r in _rows(out)}
    serial, parallel = rows["serial"], rows["parallel"]
    assert sorted(serial) == sorted(parallel) and len(serial) == 8  # every input once, in whatever order it finished
    for path, r in serial.items():
        q = parallel[path]
        assert (q["status"], q["label"], q["error"]) == (r["status"], r["label"], r["error"]), path
        if r["status"] == "ok":
            for k in ("negative", "positive", "surprise"):
                assert abs(float(q[f"prob_{k}"]) - float(r[f"prob_{k}"])) < 1e-4, path
    assert sum(r["status"] == "ok" for r in serial.values()) == 6


def test_ctrl_c_stops_the_batch_cleanly(clip_folders, package, tmp_path):
    many = tmp_path / "many"  # 30 clips: after the first row, far too many left to finish before the interrupt lands
    for i in range(30):
        shutil.copytree(clip_folders[i % 6], many / f"clip{i:02d}")
    out = tmp_path / "pred.jsonl"
    # Ctrl-C as a terminal sends it: with SIGINT at its default in the child (a pytest-xdist worker ignores SIGINT,
    # and an ignored SIGINT is inherited: Python would then never raise KeyboardInterrupt)
    proc = subprocess.Popen(_cmd(package, many, out, "--workers", "1"), cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None and not (out.exists() and out.read_text().count("\n") >= 1):
        time.sleep(0.01)
    assert proc.poll() is None, "the batch finished before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted:" in err and "run the same command again" in err and "Traceback" not in err, err
    assert out.read_bytes().endswith(b"\n")  # whole rows only
    assert 1 <= out.read_text().count("\n") < 30  # stopped part-way


def test_a_dying_worker_costs_only_the_clip_that_kills_it(tmp_path):
    from inference.pipeline import WORKER_DIED, prepared_clips
    from tests.helpers import DyingPreparer

    names = ["a.mp4", "crash1.mp4", "bb.mp4", "bad.mp4", "ccc.mp4", "crash2.mp4", "dddd.mp4", "eeeee.mp4"]
    got = list(prepared_clips([tmp_path / n for n in names], DyingPreparer(), None, workers=2))
    assert sorted(q.name for q, _, _ in got) == sorted(names)  # each clip exactly once
    result = {q.name: (status, payload) for q, status, payload in got}
    assert result["crash1.mp4"] == ("error", WORKER_DIED) and result["crash2.mp4"] == ("error", WORKER_DIED)
    assert result["bad.mp4"] == ("error", "ValueError: bad.mp4 is unreadable")
    for name in ("a.mp4", "bb.mp4", "ccc.mp4", "dddd.mp4", "eeeee.mp4"):
        status, prepared = result[name]
        frames = prepared.frames
        assert status == "ok" and frames.shape == (2, 4, 4, 3) and int(frames[0, 0, 0, 0]) == len(name)
        assert prepared.faces_seen == 1 and prepared.source.endswith(name)  # a named result, through the pickle


def test_stopping_part_way_ends_the_workers_and_joins_the_pool_thread(tmp_path):
    """A batch run stopped part-way (Ctrl-C, or any consumer stopping) while a worker is busy on a long recording:
    the workers end at once and the pool's manager thread is joined before the run returns. Left running, Python
    3.11's exit hook for process pools can race it on its wake-up pipe and print "OSError: Bad file descriptor" with
    a traceback after the "interrupted:" line (seen once in CI, in test_ctrl_c_stops_the_batch_cleanly)."""
    import multiprocessing
    import threading

    from inference.pipeline import prepared_clips
    from tests.helpers import DyingPreparer

    clips = prepared_clips([tmp_path / n for n in ("a.mp4", "slow1.mp4", "slow2.mp4")], DyingPreparer(), None,
                           workers=2)
    assert next(clips)[0].name == "a.mp4"  # the slow ones are in flight
    t0 = time.perf_counter()
    clips.close()
    assert time.perf_counter() - t0 < 20  # not the minute a slow clip takes
    assert not [t for t in threading.enumerate() if type(t).__name__ == "_ExecutorManagerThread"]
    assert not multiprocessing.active_children()


def test_shards_cover_the_inputs_exactly_once(package, inputs, tmp_path):
    from inference.__main__ import find_inputs, shard_of

    everything = find_inputs([str(inputs)], recursive=False)
    assert len(everything) == 8
    parts = [[q for q in everything if shard_of(q, 3) == i] for i in range(3)]
    assert sorted(map(str, sum(parts, []))) == sorted(map(str, everything))
    import json

    for i in range(3):  # each machine's output holds its share, and exists even when the share is empty
        out = tmp_path / f"shard{i}.jsonl"
        res = subprocess.run(_cmd(package, inputs, out, "--shard", f"{i}/3"), cwd=ROOT, capture_output=True, text=True,
                             timeout=600)
        assert res.returncode == 0, res.stderr
        got = [json.loads(line)["path"] for line in out.read_text().splitlines()]
        assert sorted(got) == sorted(map(str, parts[i]))
    empty = tmp_path / "empty"
    empty.mkdir()
    shutil.copy(inputs / "broken.mp4", empty / "a.mp4")
    share = shard_of(empty / "a.mp4", 2)
    out = tmp_path / "none.jsonl"
    res = subprocess.run(_cmd(package, empty, out, "--shard", f"{1 - share}/2"), cwd=ROOT, capture_output=True,
                         text=True, timeout=600)
    assert res.returncode == 0 and "0 inputs in shard" in res.stdout, res.stderr
    assert out.exists() and out.read_text() == ""
    res = subprocess.run(_cmd(package, inputs, out, "--shard", "3/3"), cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 2 and "0 <= I < N" in res.stderr


def test_package_from_the_local_hub(package, tmp_path, monkeypatch):
    from export.push import push_package
    from tests.hub_server import LocalHub, point_client_at

    with LocalHub(tmp_path / "server") as server:
        point_client_at(monkeypatch, server.endpoint, tmp_path / "hf-home")
        pushed = push_package(package, "lab/tiny", revision="v1")
        predictor = Predictor("hf://lab/tiny@v1", device="cpu")
        assert predictor.folder.name == pushed["commit"]
        assert predictor.labels == ["negative", "positive", "surprise"]


def test_bad_packages_and_options(package, tmp_path):
    with pytest.raises(InputError, match="config.json"):
        Predictor(tmp_path, device="cpu")
    with pytest.raises(InputError, match="view set"):
        Predictor(package, device="cpu", views="OX")
    if "CUDAExecutionProvider" not in __import__("onnxruntime").get_available_providers():
        with pytest.raises(InputError, match="no CUDA provider"):
            Predictor(package, device="cuda")
