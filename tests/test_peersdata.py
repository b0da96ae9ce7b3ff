"""The peer systems' data paths on a tiny synthetic CASME II (real layout, real faces, real flow): AU codes from the
sheet to AU F1 in the LOSO reports; the grey + flow clip of the late-fusion model; the oracle figure read from the
honest run."""

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from inference.errors import InputError
from training.cache import Cache
from training.config import load_config
from training.data import ClipBank
from training.datasets import casme2
from training.loso import run
from training.models.au_fusion import au_f1, parse_aus
from training.prepare import MotionOptions, prepare
from training.synth.faces import FaceSource

ROOT = Path(__file__).resolve().parent.parent
PEERS = ROOT / "training" / "configs" / "peers"
QUIET = {"progress": False, "log": lambda *_: None}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """3 subjects × 3 clips of a synthetic CASME II (its sheet codes AUs), raw frames."""
    root = tmp_path_factory.mktemp("casme2_peers")
    casme2.write_synthetic(root, FaceSource((160, 200), seed=3), subjects=3, clips_per_subject=3,
                           rng=np.random.default_rng(3), variant="raw", n_frames=(6, 8),
                           plan=[(s, e) for s in (1, 2, 3) for e in ("happiness", "disgust", "others")])
    return root


@pytest.fixture(scope="module")
def flow_clips(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("casme2_flowclip") / "cache"
    prepare("casme2", data, out, size=40, motion=MotionOptions("flow_clip", method="farneback"), **QUIET)
    return out


def _rewrite_manifest(src: Path, dst: Path, change) -> Path:
    shutil.copytree(src, dst)
    with open(dst / "manifest.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    for i, r in enumerate(rows):
        change(i, r)
    with open(dst / "manifest.csv", "w", newline="") as f:
        w = csv.DictWriter(f, list(rows[0]), lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    return dst


def test_au_fusion_trains_on_the_sheets_au_codes_and_reports_au_f1(data, flow_clips, tmp_path):
    """prepare keeps each clip's AU cell; the bank's multi-hot targets follow the config's vocabulary; a clip without
    codes is masked (no AU loss, left out of AU F1 and counted); the LOSO reports give AU F1 beside UF1/UAR/WAR, equal
    to the F1 recomputed from the per-clip predictions; the checkpoint records the vocabulary."""
    sheet = {r.clip: r.extra["action_units"] for r in casme2.load(data).records}
    cache = Cache.open(flow_clips)
    assert cache.inputs["kind"] == "flow_clip"
    assert {r["clip"]: r["action_units"] for r in cache.rows} == sheet and all(sheet.values())
    # one clip's codes removed: it must be masked, not read as "no AU active"
    blank = cache.rows[4]["clip"]
    caches = _rewrite_manifest(flow_clips, tmp_path / "cache",
                               lambda i, r: r.update(action_units="") if r["clip"] == blank else None)
    aus = [1, 2, 4, 7, 10, 12]
    bank = ClipBank.from_caches([str(caches)], "casme2", 4, inputs="flow_clip", aus=aus)
    cells = {i.split(":", 1)[1]: sheet[i.split(":", 1)[1]] for i in bank.ids}
    for j, clip in enumerate(i.split(":", 1)[1] for i in bank.ids):
        assert bank.au[j].tolist() == ([0.0] * len(aus) if clip == blank else
                                       [float(a in parse_aus(cells[clip])) for a in aus])
        assert bool(bank.au_mask[j]) == (clip != blank)

    out = tmp_path / "run"
    cfg = load_config(PEERS / "au_fusion.yaml", [
        f"data.caches=[{caches}]", f"out={out}", "train.epochs=2", "train.n_frames=4", "train.size=40",
        "train.batch_size=4", "train.device=cpu", "train.amp=none", "train.checkpoint_every=2",
        "model.kwargs={aus: [1, 2, 4, 7, 10, 12], region_size: 8, width: 8, au_hidden: 8, fusion_dim: 16, "
        "au_weight: 0.5}"])
    res = run(cfg, **QUIET)
    assert res["aus"] == aus and res["au_clips"] == len(bank) - 1 and res["au_clips_without_codes"] == 1
    rows = [r for s in (1, 2, 3) for r in json.loads((out / "folds" / f"subject_{s}" / "result.json").read_text())
            ["rows"]]
    assert [r["aus"] is None for r in rows].count(True) == 1
    coded = [r for r in rows if r["aus"] is not None]
    for r in rows:
        assert r["au_pred"] == [a for a, p in zip(aus, r["au_scores"]) if p >= 0.5]
    want = au_f1(np.array([[a in r["aus"] for a in aus] for r in coded]),
                 np.array([[a in r["au_pred"] for a in aus] for r in coded]), aus)
    assert res["au_f1"] == pytest.approx(want["mean"]) and res["au_f1_per_au"] == pytest.approx(want["per_au"])
    assert set(res) >= {"uf1", "uar", "war"}
    report = (out / "report.md").read_text()
    assert "| UF1 | UAR | WAR | AU F1 |" in report and f"{res['au_f1']:.4f}" in report
    with open(out / "per_subject.csv", newline="") as f:
        assert "au_f1" in next(csv.reader(f))
    payload = torch.load(out / "folds" / "subject_1" / "model.pt", weights_only=True)
    assert payload["extra"]["aus"] == aus and payload["config"]["backbone"]["au_weight"] == 0.5

    # no AU codes anywhere (an old cache, or a dataset without them): a clear error, not a silent emotion-only run
    none = _rewrite_manifest(flow_clips, tmp_path / "none", lambda i, r: r.update(action_units=""))
    with pytest.raises(InputError, match="no clip .* has AU codes"):
        ClipBank.from_caches([str(none)], "casme2", 4, inputs="flow_clip", aus=aus)
