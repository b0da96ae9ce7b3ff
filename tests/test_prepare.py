"""`training.prepare` on a synthetic CASME II (real layout, real faces): cache, resume after a real kill, bad clips."""

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from inference.errors import InputError
from training.cache import Cache, CacheWriter
from training.datasets import casme2
from training.prepare import prepare
from training.synth.faces import FaceSource

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("casme2")
    casme2.write_synthetic(root, FaceSource((240, 320), seed=5), subjects=3, clips_per_subject=3,
                           rng=np.random.default_rng(5), variant="raw", n_frames=(8, 10))
    return root


def _rows(cache: Path) -> list[dict]:
    with open(cache / "manifest.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_prepare_builds_a_memory_mapped_cache(dataset, tmp_path):
    out = tmp_path / "cache"
    summary = prepare("casme2", dataset, out, size=64, progress=False, log=lambda *_: None)
    records = casme2.load(dataset).records
    assert summary["prepared"] == len(records) == 9 and summary["failed"] == 0
    cache = Cache.open(out)
    assert isinstance(cache.frames, np.memmap) and cache.frames.shape[1:] == (64, 64, 3)
    assert len(cache) == 9
    by_clip = {r.clip: r for r in records}
    for i, row in enumerate(cache.rows):
        rec = by_clip[row["clip"]]
        assert row["subject"] == rec.subject and row["label"] == rec.emotion and row["status"] == "ok"
        assert row["n_frames"] == len(rec.segment()) == cache.clip(i).shape[0]  # onset → offset
        assert row["faces_seen"] == "1"
    assert cache.clip(0).std() > 10  # real pictures, not zeros
    # the cache holds what serving's clip path gives for the same frames: one path (inference.preprocess.Preparer)
    from inference.face import CropSettings
    from inference.preprocess import Preparer
    from inference.video import read_frames

    served = Preparer(CropSettings(size=64))(read_frames(list(by_clip[cache.rows[0]["clip"]].segment())))
    assert served.n_frames == served.input_frames  # no n_frames: every frame kept, as the cache keeps them
    np.testing.assert_array_equal(cache.clip(0), served.frames)
    # a second run finds everything done and changes nothing
    size_before = (out / "frames.u8").stat().st_size
    again = prepare("casme2", dataset, out, size=64, progress=False, log=lambda *_: None)
    assert again["prepared"] == 0 and again["skipped_done"] == 9
    assert (out / "frames.u8").stat().st_size == size_before
    with pytest.raises(InputError, match="other settings"):
        prepare("casme2", dataset, out, size=96, progress=False, log=lambda *_: None)


def test_prepare_resumes_after_a_real_kill(dataset, tmp_path):
    reference = tmp_path / "reference"
    prepare("casme2", dataset, reference, size=64, progress=False, log=lambda *_: None)
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "training.prepare", "--dataset", "casme2", "--root", str(dataset),
           "--out", str(out), "--size", "64"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if (out / "manifest.csv").exists() and len(_rows(out)) >= 3:
            break
        time.sleep(0.02)
    assert proc.poll() is None, "prepare finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = len(_rows(out))
    assert 3 <= done_before < 9
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert f"{done_before} already done" in res.stdout
    rows = _rows(out)
    assert sorted(r["clip"] for r in rows) == sorted(r["clip"] for r in _rows(reference))  # each clip exactly once
    assert rows == _rows(reference)
    assert (out / "frames.u8").read_bytes() == (reference / "frames.u8").read_bytes()


def test_torn_tail_is_repaired_on_resume(dataset, tmp_path):
    out = tmp_path / "cache"
    prepare("casme2", dataset, out, size=64, progress=False, log=lambda *_: None)
    good_rows, good_bytes = _rows(out), (out / "frames.u8").read_bytes()
    with open(out / "frames.u8", "ab") as f:
        f.write(b"\x07" * 5000)  # frames of a clip whose row was never written
    with open(out / "manifest.csv", "a") as f:
        f.write("casme2,3,EP99_99,hap")  # a row cut off mid-line
    writer = CacheWriter(out, {"dataset": "casme2", "variant": "auto", "root": str(dataset.resolve()), "size": 64,
                               "margin": 0.1, "faces": True})
    assert len(writer.open()) == 9
    assert _rows(out) == good_rows and (out / "frames.u8").read_bytes() == good_bytes
    assert len(Cache.open(out)) == 9


def test_a_bad_clip_is_recorded_and_the_run_goes_on(dataset, tmp_path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(dataset, broken)
    record = casme2.load(broken).records[4]
    victim = record.segment()[1]
    victim.write_bytes(b"not an image")
    out = tmp_path / "cache"
    summary = prepare("casme2", broken, out, size=64, progress=False, log=lambda *_: None)
    assert summary["prepared"] == 8 and summary["failed"] == 1
    cache = Cache.open(out)
    assert len(cache) == 8 and len(cache.failed) == 1
    assert cache.failed[0]["clip"] == record.clip and "cannot be read" in cache.failed[0]["status"]
    # fixed and retried: the clip joins the cache
    shutil.copy(record.segment()[0], victim)
    again = prepare("casme2", broken, out, size=64, retry_failed=True, progress=False, log=lambda *_: None)
    assert again["prepared"] == 1 and len(Cache.open(out)) == 9


def test_synth_and_prepare_commands(tmp_path):
    data, cache = tmp_path / "smic", tmp_path / "cache"
    res = subprocess.run([sys.executable, "-m", "training.synth", "--layout", "smic", "--out", str(data),
                          "--subjects", "2", "--clips-per-subject", "2", "--frames", "6", "--frame-size", "240x320"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert "4 clips from 2 subjects" in res.stdout
    res = subprocess.run([sys.executable, "-m", "training.synth", "--layout", "smic", "--out", str(data)],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert res.returncode == 2 and "already holds files" in res.stderr
    res = subprocess.run([sys.executable, "-m", "training.prepare", "--dataset", "smic", "--root", str(data),
                          "--out", str(cache), "--size", "48"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert "4 clips prepared, 0 failed" in res.stdout
    res = subprocess.run([sys.executable, "-m", "training.prepare", "--dataset", "smic",
                          "--root", str(tmp_path / "nope"),
                          "--out", str(cache)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert res.returncode == 2 and res.stderr.startswith("error:") and "Traceback" not in res.stderr


def test_prepare_flow_images_records_how_and_resumes(tmp_path):
    """--inputs flow_image on a tiny synthetic SMIC (no apex in its annotation): one onset → apex flow image per clip,
    computed from the same aligned faces as the RGB cache, the apex estimated and said so; the settings record the
    method and parameters; a second run resumes, one with other parameters is refused."""
    from inference import motion
    from training.datasets import smic
    from training.prepare import MotionOptions

    data = tmp_path / "smic"
    smic.write_synthetic(data, FaceSource((160, 200), seed=8), subjects=2, clips_per_subject=2,
                         rng=np.random.default_rng(8), variant="raw", n_frames=(5, 6),
                         plan=[(1, "positive"), (1, "surprise"), (2, "negative"), (2, "positive")])
    quiet = {"size": 48, "progress": False, "log": lambda *_: None}
    prepare("smic", data, tmp_path / "rgb", **quiet)
    flow = MotionOptions("flow_image", method="farneback", flow_size=24)
    summary = prepare("smic", data, tmp_path / "flow", motion=flow, **quiet)
    assert summary["prepared"] == 4 and summary["failed"] == 0
    rgb, cache = Cache.open(tmp_path / "rgb"), Cache.open(tmp_path / "flow")
    inputs = cache.settings["inputs"]
    assert inputs == {"kind": "flow_image", "method": "farneback", "params": motion.flow_params("farneback"),
                      "scaling": motion.FlowScaling().to_dict(), "size": 24, "apex": "estimated"}
    assert cache.frames.shape == (4, 24, 24, 3) and [r["clip"] for r in cache.rows] == [r["clip"] for r in rgb.rows]
    for i, row in enumerate(cache.rows):
        faces = np.asarray(rgb.clip(i))
        apex = motion.estimate_apex(faces)
        assert row["input_apex"] == f"{apex} estimated" and row["n_frames"] == 1
        np.testing.assert_array_equal(cache.clip(i)[0], motion.flow_image(faces[0], faces[apex], 24, "farneback"))
    assert Cache.open(tmp_path / "rgb").inputs == {"kind": "rgb"}
    again = prepare("smic", data, tmp_path / "flow", motion=flow, **quiet)
    assert again["prepared"] == 0 and again["skipped_done"] == 4
    with pytest.raises(InputError, match="other settings .*inputs: .*'gain': 16.0.* there, .*'gain': 8.0"):
        prepare("smic", data, tmp_path / "flow", motion=MotionOptions("flow_image", "farneback", 24, gain=8.0),
                **quiet)


def test_the_annotated_apex_is_found_in_the_cached_frames(dataset):
    """CASME II annotates the apex by frame number; a flow image takes the frame of that number (onset = index 0)."""
    from training.prepare import apex_index, apex_source

    records = casme2.load(dataset).records
    assert apex_source(records) == "annotated"
    for rec in records:
        frames = rec.segment()
        i = apex_index(rec, len(frames))
        assert frames[i].name == next(f.name for f in frames if int("".join(filter(str.isdigit, f.stem))) == rec.apex)
        assert i == rec.apex - rec.onset
