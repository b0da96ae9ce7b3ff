"""``python -m training.gpu_check``: the dry run end to end on the CPU (the real steps at tiny sizes: the bench's two
training steps, a LOSO killed with SIGKILL and resumed, ``python -m export``, ONNX Runtime, MTCNN), the step runner's
failure handling, and the device preparation (tools/device_wheels.py)."""

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tools import device_wheels
from training.gpu_check.__main__ import main, run_steps
from training.gpu_check.report import JSON_FILE, MD_FILE, Report
from training.gpu_check.steps import DRY, STEPS, Context

ROOT = Path(__file__).resolve().parent.parent
NAMES = ["environment", "training_step", "loso_resume", "export", "face"]


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    """The dry run as a user types it, in its own process (what it imports is what a device needs)."""
    out = tmp_path_factory.mktemp("gpu_check")
    t = time.perf_counter()
    res = subprocess.run([sys.executable, "-m", "training.gpu_check", "--out", str(out), "--dry-run"], cwd=ROOT,
                         capture_output=True, text=True, timeout=600)
    return res, json.loads((out / JSON_FILE).read_text()), out, time.perf_counter() - t


def _step(report: dict, name: str) -> dict:
    return next(s for s in report["steps"] if s["name"] == name)


def test_dry_run_tells_the_whole_story(dry_run):
    res, report, out, seconds = dry_run
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert [s["name"] for s in report["steps"]] == NAMES and [s["n"] for s in report["steps"]] == [1, 2, 3, 4, 5]
    assert all(s["status"] == "ok" and s["error"] is None for s in report["steps"]), report["steps"]
    assert report["mode"] == "dry-run" and report["finished"] and report["summary"]["ok"] == 5
    assert report["sizes"]["model"] == DRY.model
    # the figures were printed as they came, and the markdown says the same
    for s in report["steps"]:
        for key in s["figures"]:
            assert f"  {key}: " in res.stdout
    md = (out / MD_FILE).read_text()
    assert all(f"## {s['n']}. {s['title']}: ok" in md for s in report["steps"])
    # every CUDA-only part says so
    cuda_parts = {s["name"]: [x["part"] for x in s["skipped"] if x["reason"].startswith("no CUDA")]
                  for s in report["steps"]}
    assert cuda_parts["environment"] and cuda_parts["training_step"] == ["MFU"]
    assert "ONNX Runtime CUDA provider" in cuda_parts["export"] and cuda_parts["face"]
    print(f"dry run: {seconds:.1f} s")


def test_dry_run_figures(dry_run):
    _, report, out, _ = dry_run
    env = _step(report, "environment")["figures"]
    assert env["cuda_available"] is False and "CPUExecutionProvider" in env["onnxruntime_providers"]
    assert env["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    train = _step(report, "training_step")["figures"]
    assert train["ours_clips_per_s"] > 0 and train["baseline_clips_per_s"] > 0
    assert train["speedup"] == pytest.approx(train["ours_clips_per_s"] / train["baseline_clips_per_s"], rel=1e-3)
    # 16 folds x 100 epochs x 156 clips (39 batches of 4) at our rate
    assert train["smic_loso_min"] == pytest.approx(16 * 100 * 156 / train["ours_clips_per_s"] / 60, rel=1e-3)
    assert train["peak_tflops"] is None and "ours_mfu" not in train
    loso = _step(report, "loso_resume")
    assert [c["met"] for c in loso["checks"]] == [True, True, True]
    f = loso["figures"]
    assert f["clips_compared"] == 2 * 3 * DRY.clips_per_class
    assert f["bit_identical"] is True and f["max_abs_prob_diff"] == 0  # on the CPU, bit for bit
    assert "subject_" in loso["checks"][0]["value"] and "resuming at epoch 1" in loso["checks"][1]["value"]
    assert "== resumed" in (out / "loso.log").read_text() and (out / "loso-child.log").exists()
    export = _step(report, "export")
    parity = export["figures"]["cpu_parity"]
    assert parity["same_argmax"] is True and parity["max_abs_logit_diff"] <= parity["atol"]
    assert export["checks"][0]["met"] and export["checks"][0]["value"]["max_abs_logit_diff"] < 1e-4
    assert export["figures"]["fp16_vs_pytorch"]["top1_agreement"] == 1.0
    for key in ("pytorch_eager_fp32_clips_per_s", "onnxruntime_fp32_clips_per_s", "onnxruntime_fp16_clips_per_s"):
        assert export["figures"][key] > 0
    assert "wrote" in (out / "export.log").read_text()
    assert _step(report, "face")["figures"]["cpu_clips_per_s"] > 0


def test_the_check_needs_only_what_the_device_has_and_the_carried_wheels(dry_run):
    from importlib.metadata import PackageNotFoundError, requires

    _, report, _, _ = dry_run
    # the device's opencv-python-headless has the cv2 the check uses (no contrib module)
    same = {"opencv-contrib-python-headless": "opencv-python-headless"}
    needed = {same.get(n, n) for n in map(device_wheels.normalise, report["imported"])}
    assert {"torch", "onnxruntime", "onnx"} <= needed
    assert "facenet-pytorch" not in needed  # the face stage is ONNX (inference/mtcnn.py)
    there = device_wheels.DEVICE_HAS | set(device_wheels.WHEELS)
    # what a package the device has pulls in here (pytz for this pandas, brotli for urllib3) comes with the device's
    # own version of that package
    pulled = set()
    for dist in needed & device_wheels.DEVICE_HAS:
        try:
            pulled |= {device_wheels.normalise(re.split(r"[\s;<>=!~\[(]", r)[0]) for r in requires(dist) or []}
        except PackageNotFoundError:
            pass
    assert needed - there <= pulled, needed - there - pulled


def _report(tmp_path) -> Report:
    return Report(tmp_path, {"command": "test", "mode": "test", "device": "cpu", "budget_s": 3})


def _ctx(tmp_path) -> Context:
    return Context(sizes=DRY, device="cpu", dry=False, work=tmp_path, out=tmp_path, workers=0)


def test_a_failing_step_is_recorded_and_the_next_one_runs(tmp_path, monkeypatch):
    def broken(step, ctx):
        step.figure("before", 1.5)
        raise ValueError("the GPU caught fire")

    def slow(step, ctx):
        step.figure("started", True)
        try:
            time.sleep(5)
        except Exception:  # a handler on the way (an optional import's guard, say) must not swallow the stop
            step.figure("swallowed", True)
        time.sleep(5)

    def fine(step, ctx):
        # what a run killed now would leave: the steps before, complete, and this one's figures so far
        step.figure("so_far", 1)
        on_disk = json.loads((tmp_path / JSON_FILE).read_text())
        seen.append(([s["status"] for s in on_disk["steps"]], on_disk["steps"][-1]["figures"], on_disk["finished"]))
        step.check("an assertion", False, 3, "== 4")
        step.check("a target", False, 3, ">= 4", kind="target")

    def cpu_only(step, ctx):
        ctx.require_device()

    monkeypatch.setattr("training.gpu_check.__main__.STEPS", [
        (1, "broken", "Broken", 10, broken), (2, "slow", "Slow", 0.3, slow), (3, "fine", "Fine", 10, fine),
        (4, "cuda", "CUDA", 10, cpu_only)])
    report = _report(tmp_path)
    seen = []
    t = time.perf_counter()
    assert run_steps(report, _ctx(tmp_path), None) == 3
    assert seen == [(["failed", "failed", "running"], {"so_far": 1}, None)]
    assert time.perf_counter() - t < 8  # the slow step was stopped at its budget (it sleeps 10 s; slack for load)
    saved = json.loads((tmp_path / JSON_FILE).read_text())
    broken_, slow_, fine_, cuda_ = saved["steps"]
    assert broken_["status"] == "failed" and broken_["figures"] == {"before": 1.5}
    assert broken_["error"]["type"] == "ValueError" and "the GPU caught fire" in broken_["error"]["traceback_tail"][-1]
    assert slow_["status"] == "failed" and slow_["error"]["message"] == "stopped at its budget of 0.3 s"
    assert slow_["figures"] == {"started": True}
    assert fine_["status"] == "failed" and [c["met"] for c in fine_["checks"]] == [False, False]
    assert cuda_["status"] == "skipped" and cuda_["skipped"][0]["reason"].startswith("no CUDA")
    assert saved["summary"] == {"running": 0, "ok": 0, "failed": 3, "skipped": 1, "targets_missed": ["a target"]}
    md = (tmp_path / MD_FILE).read_text()
    assert "**Error** (ValueError): the GPU caught fire" in md
    assert "| an assertion | assert | 3 | == 4 | **FAIL** |" in md


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="checks the CPU machine's answer")
def test_without_dry_run_a_cpu_machine_skips_the_cuda_steps(tmp_path):
    assert main(["--out", str(tmp_path), "--only", "2,3,4,5"]) == 0
    report = json.loads((tmp_path / JSON_FILE).read_text())
    assert [s["status"] for s in report["steps"]] == ["skipped"] * 4
    assert all(s["skipped"][0]["reason"].startswith("no CUDA") for s in report["steps"])
    assert not list(tmp_path.glob("*.log"))  # nothing ran


def test_the_device_command_and_its_wheels():
    cmd = device_wheels.COMMAND
    assert len(cmd) <= 2000 and "--target /tmp/site .whl/*.whl" in cmd and "export PYTHONPATH=/tmp/site" in cmd
    assert "PYTHONUNBUFFERED=1 python3 -m training.gpu_check --out $OUT/gpu" in cmd
    assert device_wheels.CARRY == [".whl"] and device_wheels.TIMEOUT_S >= sum(b for *_, b, _ in STEPS) + 60
    # only what the device lacks, at the project's own pins
    assert not set(device_wheels.WHEELS) & device_wheels.DEVICE_HAS
    assert {"torch", "onnxruntime", "onnx", "opencv-python-headless", "scikit-image"} <= device_wheels.DEVICE_HAS
    pins = {}
    for req in (ROOT / "requirements").glob("*.txt"):
        for line in req.read_text().splitlines():
            m = re.match(r"([A-Za-z0-9_.-]+)==([^\s#]+)", line)
            if m:
                pins[device_wheels.normalise(m.group(1))] = m.group(2)
    assert {k: pins.get(k) for k in device_wheels.WHEELS} == device_wheels.WHEELS
    # the ignored folder the wheels go to, and the command as the README and tools/README.md give it
    ignored = subprocess.run(["git", "check-ignore", "-q", ".whl/x.whl"], cwd=ROOT).returncode == 0
    assert ignored
    for doc in ("README.md", "tools/README.md"):
        assert cmd in (ROOT / doc).read_text(), doc
    # what travels is measured from git's view of the tree (the .venv and ignored outputs stay behind)
    files = device_wheels.travelling_files()
    assert ROOT / "training" / "gpu_check" / "__main__.py" in files
    assert not any(".venv" in p.relative_to(ROOT).parts for p in files)
    assert device_wheels.mib(files) < device_wheels.LIMIT_MIB


def test_check_reports_missing_wheels_and_size(monkeypatch, capsys):
    monkeypatch.setattr(device_wheels, "DEST", ".whl-none-here")
    assert device_wheels.main(["--check"]) == 1
    out = capsys.readouterr().out
    assert "MISSING: onnxconverter-common" in out and "limit 64 MiB" in out


def test_a_device_report_is_kept_under_its_date_and_gpu(dry_run, tmp_path):
    _, report, out, _ = dry_run
    report = dict(report, device="NVIDIA H100 80GB HBM3")
    (tmp_path / "back").mkdir()
    for f in out.iterdir():
        (tmp_path / "back" / f.name).write_bytes(f.read_bytes())
    (tmp_path / "back" / JSON_FILE).write_text(json.dumps(report))
    dest = device_wheels.keep(tmp_path / "back", tmp_path / "results")
    assert dest.name == f"{report['started'][:10]}_H100-80GB-HBM3"
    assert sorted(p.name for p in dest.iterdir()) == sorted(
        [JSON_FILE, MD_FILE, "export.log", "loso.log", "loso-child.log"])
