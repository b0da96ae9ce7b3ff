"""The LOSO runner end to end on CPU: a tiny backbone on a synthetic SMIC-HS with real faces."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from inference.errors import InputError
from training.config import load_config
from training.loso import run
from training.metrics import scores
from training.schemes import load_view_model

ROOT = Path(__file__).resolve().parent.parent
TINY = ROOT / "training" / "configs" / "tiny.yaml"


def _cfg(cache, out, *overrides):
    return load_config(TINY, [f"data.caches=[{cache}]", f"out={out}", *overrides])


def _quiet(*_):
    pass


def _predictions(out: Path) -> list[dict]:
    with open(out / "predictions.csv", newline="") as f:
        return list(csv.DictReader(f))


def _check_outputs(out: Path, classes=("negative", "positive", "surprise")):
    res = json.loads((out / "results.json").read_text())
    rows = _predictions(out)
    assert len(rows) == res["n"] == 54
    assert {int(r["subject"]) for r in rows} == set(range(1, 7))
    again = scores([classes.index(r["label"]) for r in rows], [classes.index(r["pred"]) for r in rows], 3)
    for k in ("uf1", "uar", "war"):
        assert res[k] == pytest.approx(again[k])  # results.json agrees with predictions.csv
    for r in rows:
        s = [float(r[f"score_{c}"]) for c in classes]
        assert sum(s) == pytest.approx(1.0, abs=1e-4) and classes[int(np.argmax(s))] == r["pred"]
    for name in ("per_subject.csv", "confusion.png", "report.md", "config.yaml"):
        assert (out / name).stat().st_size > 0
    assert list((out / "tensorboard").rglob("events.out.tfevents.*"))
    model, meta = load_view_model(out / "folds" / "subject_1" / "model.pt")
    assert meta["labels"] == list(classes) and meta["extra"]["protocol"] == "smic"
    return res


@pytest.mark.parametrize("overrides", [
    ["train_views=O"],
    ["train_views=OLR", "test_views=OL", "smote=true"],
    ["scheme.type=fsb", "train_views=OL", "fsb_head=linear", "balanced=true"],
    ["scheme.type=fsb", "train_views=OLR", "fsb_head=mlp"],
])
def test_every_scheme_runs_end_to_end(smic_cache, tmp_path, overrides):
    cfg = _cfg(smic_cache, tmp_path / "run", "epochs=1", "rotation=10", "scale=1.1", *overrides)
    run(cfg, log=_quiet, progress=False)
    res = _check_outputs(tmp_path / "run")
    assert res["protocol"]["train_views"] == cfg["scheme"]["train_views"]
    model, _ = load_view_model(tmp_path / "run" / "folds" / "subject_2" / "model.pt")
    assert model.scheme == cfg["scheme"]["type"]


def test_resume_after_kill_gives_identical_results(smic_heldout_cache, tmp_path):
    overrides = ["epochs=3", "milestones=[2]"]  # two subjects, two folds: each killed once, mid-fold
    run(_cfg(smic_heldout_cache, tmp_path / "reference", *overrides), log=_quiet, progress=False)
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "training.loso", "--config", str(TINY), f"data.caches=[{smic_heldout_cache}]",
           f"out={out}", *overrides, "--no-progress"]
    for wait_for in ("folds/subject_1/state.pt", "folds/subject_2/state.pt"):  # killed twice, mid-fold
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 240
        while time.time() < deadline and proc.poll() is None and not (out / wait_for).exists():
            time.sleep(0.01)
        assert proc.poll() is None, "the run ended before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    assert _predictions(out) == _predictions(tmp_path / "reference")
    a, b = (json.loads((d / "results.json").read_text()) for d in (out, tmp_path / "reference"))
    assert (a["uf1"], a["uar"], a["war"]) == (b["uf1"], b["uar"], b["war"])


def test_test_set_selection_is_named_in_every_report(smic_heldout_cache, tmp_path):
    res = run(_cfg(smic_heldout_cache, tmp_path / "run", "epochs=2", "selection=test_set_best"), log=_quiet,
              progress=False)
    assert "warning" in res and "held-out subject" in res["warning"]
    assert json.loads((tmp_path / "run" / "results.json").read_text())["protocol"]["selection"] == "test_set_best"
    assert "**Warning.**" in (tmp_path / "run" / "report.md").read_text()
    honest = run(_cfg(smic_heldout_cache, tmp_path / "honest", "epochs=2"), log=_quiet, progress=False)
    assert "warning" not in honest


def test_final_model_on_all_subjects(smic_cache, tmp_path):
    run(_cfg(smic_cache, tmp_path / "run", "epochs=1"), final=True, log=_quiet, progress=False)
    model, meta = load_view_model(tmp_path / "run" / "final" / "model.pt")
    assert meta["extra"]["what"].startswith("trained on all subjects")
    assert set(meta["extra"]["loso"]) >= {"uf1", "uar", "war", "protocol"}
    assert not (tmp_path / "run" / "final" / "state.pt").exists()


def test_torchrun_shards_folds_into_one_report(smic_heldout_cache, tmp_path):
    out = tmp_path / "sharded"  # two subjects: one fold per rank
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "-m", "training.loso",
           "--config", str(TINY), f"data.caches=[{smic_heldout_cache}]", f"out={out}", "epochs=1", "--no-progress"]
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert res.returncode == 0, res.stderr[-3000:]
    single = tmp_path / "single"  # one process, with the threads torchrun gives each rank (float sums follow them)
    cmd = [sys.executable, "-m", "training.loso", "--config", str(TINY), f"data.caches=[{smic_heldout_cache}]",
           f"out={single}", "epochs=1", "--no-progress"]
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert res.returncode == 0, res.stderr[-3000:]
    assert _predictions(out) == _predictions(single)  # each fold's result does not depend on which rank ran it


def test_config_errors_are_messages(smic_cache, tmp_path):
    with pytest.raises(InputError, match="'train.epoch': no such key; known here: epochs"):
        load_config(TINY, ["train.epoch=3"])
    with pytest.raises(InputError, match="no such key"):
        load_config(TINY, ["nonsense=3"])
    with pytest.raises(InputError, match="test views must be the same"):
        run(_cfg(smic_cache, tmp_path / "x", "scheme.type=fsb", "train_views=OL", "test_views=O"), log=_quiet,
            progress=False)
    res = subprocess.run([sys.executable, "-m", "training.loso", "--config", str(TINY), "epochs=1"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and "no data" in res.stderr and "Traceback" not in res.stderr
