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

from export.__main__ import export_package
from inference.errors import InputError
from inference.inputs import build_input
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
    assert res["au_threshold"] == 0.5 and "AU F1 (action units, predicted at probability ≥ 0.5)" in report
    with open(out / "per_subject.csv", newline="") as f:
        assert "au_f1" in next(csv.reader(f))
    payload = torch.load(out / "folds" / "subject_1" / "model.pt", weights_only=True)
    assert payload["extra"]["aus"] == aus and payload["config"]["backbone"]["au_weight"] == 0.5
    # the emotion head exports like any flow model (the region boxes are constants of the graph; parity checked)
    pkg = export_package(out / "folds" / "subject_1" / "model.pt", tmp_path / "pkg", clips=[str(caches)],
                         log=lambda *_: None)
    assert pkg.input.kind == "flow_clip" and (tmp_path / "pkg" / "model.onnx").exists()

    # no AU codes anywhere (an old cache, or a dataset without them): a clear error, not a silent emotion-only run
    none = _rewrite_manifest(flow_clips, tmp_path / "none", lambda i, r: r.update(action_units=""))
    with pytest.raises(InputError, match="no clip .* has AU codes"):
        ClipBank.from_caches([str(none)], "casme2", 4, inputs="flow_clip", aus=aus)


@pytest.fixture(scope="module")
def rgb(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("casme2_rgb") / "cache"
    prepare("casme2", data, out, size=40, **QUIET)
    return out


def test_grey_flow_clips_are_prepared_through_build_input_and_train_late_fusion(data, rgb, tmp_path):
    """--inputs grey_flow_clip: TIM to --tim frames, then each frame's grey level beside the flow ending at it (u, v
    fixed-scaled, zero at 128), exactly inference.inputs.build_input of the aligned faces (serving's path); the bank
    centres all three channels on 128; a flip and the L/R views negate u only (channel 1); the late-fusion grey+flow
    config trains on it with the LOSO runner."""
    from inference import motion
    from inference.views import make_views
    from training.data import augment
    from training.schemes import ViewModel

    out = tmp_path / "greyflow"
    opts = MotionOptions("grey_flow_clip", method="farneback", tim=5)
    prepare("casme2", data, out, size=40, motion=opts, **QUIET)
    cache, faces = Cache.open(out), Cache.open(rgb)
    settings = cache.inputs
    assert settings["kind"] == "grey_flow_clip" and settings["tim"] == 5 and settings["channels"] == ["grey", "u", "v"]
    assert [r["clip"] for r in cache.rows] == [r["clip"] for r in faces.rows]
    for i in range(len(cache)):
        f = np.asarray(faces.clip(i))
        clip = cache.clip(i)
        assert clip.shape == (4, 40, 40, 3)
        np.testing.assert_array_equal(clip, build_input(f, settings)[0])
        t = motion.tim(f, 5)
        np.testing.assert_array_equal(clip[..., 0], [cv2_grey(x) for x in t[1:]])
        np.testing.assert_array_equal(clip[..., 1:], motion.flow_clip(t, "farneback")[..., :2])
    with pytest.raises(InputError, match="--tim"):
        MotionOptions("flow_image", tim=5)

    bank = ClipBank.from_caches([str(out)], "casme2", 4, inputs="grey_flow_clip")
    assert bank.flow and bank.uv == (1, 2) and torch.equal(bank.zeros, torch.full((len(bank), 4, 3), 128.0))
    flipped = augment(bank.clips, 40, torch.Generator().manual_seed(1), flip=True, flow_zero=bank.zeros,
                      uv=bank.uv) * 255
    plain = bank.clips.permute(0, 4, 1, 2, 3).float()
    n_flipped = 0
    for o, p in zip(flipped, plain):
        m = p.flip(-1)
        m[1] = 256 - m[1]  # u reflected about 128; grey and v mirrored as pictures
        if torch.allclose(o, m, atol=1e-3):
            n_flipped += 1
        else:
            assert torch.allclose(o, p, atol=1e-3)
    assert 0 < n_flipped < len(bank)
    vm = ViewModel({"name": "late_fusion", "backbone": "resnet3d_tiny"}, 3, "sbml", "OL", inputs="grey_flow_clip")
    x = torch.randn(2, 3, 2, 8, 8)
    left = vm.views(x, "OL")[1]
    mirrored = make_views(x, "OL")[1]  # the RGB view: every channel mirrored as a picture
    torch.testing.assert_close(left[:, [0, 2]], mirrored[:, [0, 2]])
    torch.testing.assert_close(left[:, 1, ..., 4:], -mirrored[:, 1, ..., 4:])  # L: the right half is mirrored
    torch.testing.assert_close(left[:, 1, ..., :4], x[:, 1, ..., :4])

    run_dir = tmp_path / "late"
    cfg = load_config(PEERS / "late_fusion_grey_flow.yaml", [
        f"data.caches=[{out}]", "data.protocol=casme2", f"out={run_dir}", "model.kwargs.backbone=resnet3d_tiny",
        "train.epochs=1", "train.n_frames=4", "train.size=32", "train.batch_size=4", "train.device=cpu",
        "train.amp=none", "train.flip=true", "scheme.train_views=OL"])
    res = run(cfg, **QUIET)
    assert res["n"] == len(bank) and res["protocol"]["backbone"] == "late_fusion"
    payload = torch.load(run_dir / "folds" / "subject_1" / "model.pt", weights_only=True)
    assert payload["extra"]["inputs"]["kind"] == "grey_flow_clip" and payload["extra"]["inputs"]["tim"] == 5
    assert payload["extra"]["normalisation"]["mean"] == pytest.approx([128 / 255] * 3)
    # the package records the kind and how serving makes it (TIM length included); parity checked on the cache
    pkg = export_package(run_dir / "folds" / "subject_1" / "model.pt", tmp_path / "pkg", clips=[str(out)],
                         log=lambda *_: None)
    assert (pkg.input.kind, pkg.input.color, pkg.input.motion["tim"]) == ("grey_flow_clip", "grey,u,v", 5)


def cv2_grey(frame):
    import cv2

    return cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)


def test_flow_of_magnified_frames_is_one_recorded_step_of_build_input(rgb):
    """--magnify-first: the flow kinds' frames are magnified at the clip's rate, then TIM, then the flow — recorded in
    the settings, so serving (build_input with the package's fps) repeats it; refused where it means nothing."""
    from inference import motion
    from training.datasets.base import ClipRecord
    from training.prepare import motion_input

    faces = np.asarray(Cache.open(rgb).clip(0))
    opts = MotionOptions("flow_clip", method="farneback", tim=5, magnify_first=True, alpha=4.0, levels=2)
    settings = opts.settings(40, None)
    assert settings["magnify"] == {"alpha": 4.0, "low_hz": 0.5, "high_hz": 5.0, "levels": 2} and settings["tim"] == 5
    clip, _ = motion_input(faces, ClipRecord("casme2", 1, "c", "others", fps=30.0), opts)
    want = motion.flow_clip(motion.tim(motion.magnify(faces, 30.0, 4.0, 0.5, 5.0, 2), 5), "farneback")
    np.testing.assert_array_equal(clip, want)
    assert not np.array_equal(clip, build_input(faces, {**settings, "magnify": None})[0])
    with pytest.raises(InputError, match="frame rate"):
        motion_input(faces, ClipRecord("casme2", 1, "c", "others"), opts)
    with pytest.raises(InputError, match="--magnify-first"):
        MotionOptions("rgb", magnify_first=True)
