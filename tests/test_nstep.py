"""N-step chains on CPU: synthetic action → macro (CK+ + Oulu-CASIA) → micro LOSO, with a tiny backbone."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from inference.errors import InputError
from training.nstep import load_chain, run_chain
from training.schemes import load_view_model

ROOT = Path(__file__).resolve().parent.parent
TINY = ROOT / "training" / "configs" / "tiny.yaml"


@pytest.fixture(scope="module")
def pretrain_caches(tmp_path_factory):
    from training.datasets import ckplus, oulu, ucf101
    from training.prepare import prepare
    from training.synth.faces import FaceSource

    root = tmp_path_factory.mktemp("pretrain")
    caches = {}
    for name, module, size in (("ucf101", ucf101, (120, 160)), ("ckplus", ckplus, (240, 320)),
                               ("oulu", oulu, (240, 320))):
        module.write_synthetic(root / name, FaceSource(size, seed=3, grey=name == "ckplus"), subjects=3,
                               clips_per_subject=2, rng=np.random.default_rng(3), n_frames=(8, 10))
        prepare(name, root / name, root / f"cache-{name}", size=56, progress=False, log=lambda *_: None)
        caches[name] = root / f"cache-{name}"
    return caches


def _chain(tmp_path, caches, smic_cache) -> Path:
    chain = {
        "name": "tiny-chain",
        "out": str(tmp_path / "chain"),
        "model": {"name": "resnet3d_tiny"},
        "stages": [
            {"name": "ucf", "data": {"caches": [str(caches["ucf101"])]}, "init": {"kind": "scratch"},
             "train": {"epochs": 2, "batch_size": 6, "n_frames": 8, "size": 48, "milestones": [1], "device": "cpu"}},
            {"name": "macro", "data": {"caches": [str(caches["ckplus"]), str(caches["oulu"])]},
             "train": {"epochs": 3, "batch_size": 6, "n_frames": 8, "size": 48, "milestones": [2], "device": "cpu"}},
            {"name": "micro", "loso": {"base": str(TINY), "data": {"caches": [str(smic_cache)]},
                                       "train": {"epochs": 1}}, "final": True},
        ],
    }
    path = tmp_path / "chain.yaml"
    path.write_text(yaml.safe_dump(chain))
    return path


def test_three_step_chain_carries_the_backbone_and_replaces_heads(pretrain_caches, smic_cache, tmp_path):
    run_chain(load_chain(_chain(tmp_path, pretrain_caches, smic_cache)), log=lambda *_: None, progress=False)
    out = tmp_path / "chain"
    ucf = json.loads((out / "stage1_ucf" / "done.json").read_text())
    macro = json.loads((out / "stage2_macro" / "done.json").read_text())
    assert ucf["init"] == {"kind": "scratch"} and macro["init"]["kind"] == "previous"
    assert macro["init"]["sha256"]  # the file it started from, hashed
    assert macro["backbone_in"] == ucf["backbone_out"]  # what entered stage 2 is what left stage 1
    assert set(macro["datasets"]) == {"ckplus", "oulu"}
    m1, meta1 = load_view_model(out / "stage1_ucf" / "model.pt")
    m2, meta2 = load_view_model(out / "stage2_macro" / "model.pt")
    assert meta1["labels"] == ["applyeyemakeup", "handstandpushups", "yoyo"]
    assert set(meta2["labels"]) <= {"anger", "contempt", "disgust", "fear", "happiness", "sadness", "surprise"}
    assert m1.backbone.fc.out_features == 3 and m2.backbone.fc.out_features == len(meta2["labels"])
    assert not torch.equal(m1.backbone.layer1[0].conv1.weight, m2.backbone.layer1[0].conv1.weight)  # stage 2 trained
    # every fold of the LOSO stage starts from the macro stage's backbone, with a fresh 3-class head
    for fold in (out / "stage3_micro" / "folds").iterdir():
        assert json.loads((fold / "result.json").read_text())["backbone_in"] == macro["backbone_out"]
    fold_model, fold_meta = load_view_model(out / "stage3_micro" / "folds" / "subject_1" / "model.pt")
    prov = fold_meta["extra"]["provenance"]
    assert [p["stage"] for p in prov] == ["ucf", "macro", "micro"]
    assert prov[-1]["init"]["path"].endswith("stage2_macro/model.pt")
    assert fold_meta["labels"] == ["negative", "positive", "surprise"]
    final, final_meta = load_view_model(out / "stage3_micro" / "final" / "model.pt")
    assert [p["stage"] for p in final_meta["extra"]["provenance"]] == ["ucf", "macro", "micro"]
    assert (out / "stage3_micro" / "results.json").exists()


def test_killed_stage_resumes_and_finished_stages_are_skipped(pretrain_caches, smic_cache, tmp_path):
    path = _chain(tmp_path, pretrain_caches, smic_cache)
    cmd = [sys.executable, "-m", "training.nstep", "--config", str(path), "stage.2.epochs=6", "--no-progress"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = tmp_path / "chain" / "stage2_macro" / "state.pt"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None and not state.exists():
        time.sleep(0.01)
    assert proc.poll() is None, "the chain ended before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    stage1 = (tmp_path / "chain" / "stage1_ucf" / "done.json").read_text()
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "ucf: done before, skipped" in res.stdout and "macro: resuming at epoch" in res.stdout
    assert (tmp_path / "chain" / "stage1_ucf" / "done.json").read_text() == stage1
    macro = json.loads((tmp_path / "chain" / "stage2_macro" / "done.json").read_text())
    assert macro["epochs"] == 6 and macro["backbone_in"] == json.loads(stage1)["backbone_out"]
    assert (tmp_path / "chain" / "stage3_micro" / "results.json").exists()


def test_chain_config_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"model": {"name": "resnet3d_tiny"},
                                   "stages": [{"name": "a", "init": {"kind": "previous"}, "data": {"caches": ["x"]}}]}))
    with pytest.raises(InputError, match="no previous stage"):
        load_chain(bad)
    bad.write_text(yaml.safe_dump({"stages": [{"name": "a", "loso": {"base": str(TINY)}},
                                              {"name": "b", "data": {"caches": ["x"]}}]}))
    with pytest.raises(InputError, match="only the last stage can be a LOSO run"):
        load_chain(bad)
    bad.write_text(yaml.safe_dump({"stages": [{"name": "a", "init": {"kind": "imagenet2d"},
                                               "data": {"caches": ["x"]}}]}))
    with pytest.raises(InputError, match="needs init.path"):
        load_chain(bad)
    bad.write_text(yaml.safe_dump({"stages": [{"name": "a", "data": {"caches": ["x"]},
                                               "init": {"kind": "file", "path": str(tmp_path / "none.pth")}}]}))
    with pytest.raises(InputError, match="none.pth not found"):
        run_chain(load_chain(bad), log=lambda *_: None, progress=False)


def test_every_paper_chain_config_loads():
    configs = sorted((ROOT / "training" / "configs" / "nstep").glob("*.yaml"))
    assert len(configs) >= 18 + 6
    for path in configs:
        chain = load_chain(path)
        assert chain["model"]["name"] == "resnet3d_50"
        assert "loso" in chain["stages"][-1]
