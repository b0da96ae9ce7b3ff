"""Motion models served: a tiny STSTNet trained on a flow_image cache exports to a package whose config.json and ONNX
metadata carry the motion parameters, passes parity, and the runtime computes from a real clip the flow image training
would have made, giving the probabilities the PyTorch model gives on it."""

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from export.__main__ import export_package
from export.package import PackagedModel, check_parity, export_onnx
from inference import motion
from inference.errors import InputError
from inference.inputs import FLOW_NORMALISATION, Preprocessing, build_input, kind
from inference.package import ModelPackage, read_onnx_metadata
from inference.views import make_views
from tests.helpers import calibrated
from training.cache import Cache
from training.config import load_config
from training.schemes import ViewModel, load_view_model, save_view_model

ROOT = Path(__file__).resolve().parent.parent
STSTNET = ROOT / "training" / "configs" / "peers" / "ststnet.yaml"
CLIP = ROOT / "demo" / "examples" / "surprise.mp4"
LABELS = ["negative", "positive", "surprise"]


@pytest.fixture(scope="module")
def smic_data(tmp_path_factory):
    """A synthetic SMIC-HS as distributed: 2 subjects × one clip per class (real faces)."""
    from training.datasets import smic
    from training.synth.faces import FaceSource

    root = tmp_path_factory.mktemp("smic7") / "data"
    plan = [(s, c) for s in (1, 2) for c in LABELS]
    smic.write_synthetic(root, FaceSource((240, 320), seed=7), subjects=2, clips_per_subject=3,
                         rng=np.random.default_rng(7), variant="raw", n_frames=(10, 14), plan=plan)
    return root


def _prepare(data: Path, out: Path, options) -> Path:
    from training.prepare import prepare

    prepare("smic", data, out, size=56, progress=False, log=lambda *_: None, motion=options)
    return out


@pytest.fixture(scope="module")
def flow_cache(smic_data, tmp_path_factory):
    """The set prepared with --inputs flow_image: 28 px onset → apex TV-L1 flow images of 56 px face crops."""
    from training.prepare import MotionOptions

    return _prepare(smic_data, tmp_path_factory.mktemp("flow") / "cache", MotionOptions("flow_image", flow_size=28))


@pytest.fixture(scope="module")
def flow_model(flow_cache, tmp_path_factory):
    """STSTNet, SBML on O/L/R flow views, 2 epochs of one LOSO fold's training: a fold checkpoint."""
    from training.loso import run

    out = tmp_path_factory.mktemp("ststnet")
    cfg = load_config(STSTNET, [f"data.caches=[{flow_cache}]", "data.protocol=smic", f"out={out}", "epochs=2",
                                "batch_size=8", "train_views=OLR", "device=cpu"])
    run(cfg, log=lambda *_: None, progress=False)
    return next((out / "folds").glob("subject_*/model.pt"))


@pytest.fixture(scope="module")
def flow_package(flow_model, flow_cache, tmp_path_factory):
    pkg = tmp_path_factory.mktemp("pkg") / "ststnet"
    cfg = export_package(flow_model, pkg, int8=True, calibrate=str(flow_cache), log=lambda *_: None)  # checked on
    return pkg, cfg  # the training cache the checkpoint records: its flow images and labels


def test_a_flow_model_exports_with_its_motion_parameters(flow_package, flow_cache):
    pkg, cfg = flow_package
    inputs = Cache.open(flow_cache).inputs
    assert inputs["kind"] == "flow_image" and inputs["method"] == "tvl1" and inputs["size"] == 28
    on_disk = json.loads((pkg / "config.json").read_text())
    assert ModelPackage.load(pkg) == cfg and on_disk == json.loads(json.dumps(cfg.to_json()))
    spec = on_disk["input"]
    assert (spec["kind"], spec["height"], spec["width"], spec["color"]) == ("flow_image", 28, 28, "u,v,strain")
    assert spec["motion"] == inputs  # method, TV-L1 parameters, scaling (zero at 128), size, apex source
    assert spec["motion"]["scaling"]["mode"] == "fixed" and spec["motion"]["apex"] == "estimated"
    assert on_disk["n_frames"] == 1 and on_disk["size"] == 28 and on_disk["face_crop"]["size"] == 56
    assert on_disk["normalisation"]["centre"] == "zero" and on_disk["backbone"]["name"] == "ststnet"
    assert on_disk["parity"]["same_argmax"] and on_disk["parity"]["clips"] == 6
    agreement = on_disk["variants"]["int8"]["agreement"]  # measured on the cache's flow images, with their labels
    assert "uf1_drop" in agreement and agreement["clips"] == 6
    for name in ("model.onnx", "model.int8.onnx"):
        facts = read_onnx_metadata(pkg / name)
        assert facts["input_kind"] == "flow_image" and facts["input_motion"] == inputs
        assert facts["crop_size"] == 56 and facts["n_frames"] == 1
    card = (pkg / "README.md").read_text()
    assert "onset → apex flow image of 28 px (tvl1 optical flow" in card
    assert "uint8 `(N, 1, 28, 28, 3)` onset → apex flow images" in card


def _pytorch(vm, image: np.ndarray, inputs: dict, norm: dict, size: int = 28):
    """Training's evaluation path on one flow image or clip ``(T, S, S, 3)``: resized to ``size``, centred on its
    stored zero (FlowScaling.zero, per frame), the view model's fused and per-view probabilities; (input, probs,
    per_view)."""
    from training.data import augment, normalise

    zero = torch.tensor(motion.FlowScaling.from_dict(inputs["scaling"]).zero(image), dtype=torch.float32)[None]
    x = augment(torch.from_numpy(image)[None], size, flow_zero=zero)
    x = normalise(x, zero / 255.0, norm["std"], norm["pixel_scale"])
    return (x, *vm.predict(x, "OLR"))


def test_the_runtime_computes_the_flow_image_training_would_and_matches_pytorch(flow_package, flow_model, flow_cache,
                                                                                 tmp_path):
    """From a real clip, through the demo's analysis (Predictor.predict): every aligned frame kept, the flow image made
    with the recorded parameters (apex estimated from the first frame), and the graph's probabilities = the trained
    model's on that image, through training's own evaluation path (resize, centring on the stored zero, flow views).
    The batch command gives the same row."""
    from demo.app import Analyser
    from inference.__main__ import main
    from inference.runtime import Predictor

    pkg, cfg = flow_package
    predictor = Predictor(pkg, device="cpu", engine="onnxruntime")
    analysis = Analyser(predictor).analyse(str(CLIP))
    pred = analysis.prediction
    assert sorted(analysis.sheets) == ["L", "O", "R"]  # the page shows the aligned face's views
    assert pred.aligned.shape[1:] == (56, 56, 3) and len(pred.aligned) > 30  # every frame of the face segment
    inputs = Cache.open(flow_cache).inputs
    image, apex = build_input(pred.aligned, inputs)
    assert pred.apex == apex == motion.estimate_apex(pred.aligned) and 0 < apex < len(pred.aligned)
    np.testing.assert_array_equal(pred.motion, image)
    assert pred.motion.shape == (1, 28, 28, 3) and "motion" in pred.timings
    vm, meta = load_view_model(flow_model)
    x, probs, per_view = _pytorch(vm, image, inputs, meta["extra"]["normalisation"])
    np.testing.assert_allclose(pred.probs, calibrated(predictor, probs[0].numpy()), atol=1e-5)
    for i, v in enumerate("OLR"):
        np.testing.assert_allclose(pred.per_view[v], calibrated(predictor, per_view[i, 0].numpy()), atol=1e-5)
    # the L and R views are flow views: u negated where mirrored, so they differ from RGB-style mirrors
    # (compared on the inputs: a barely trained model's probabilities hardly move with them)
    flow_views, rgb_style = vm.views(x, "LR"), make_views(x, "LR")
    u = kind(inputs["kind"]).u
    for fv, rv in zip(flow_views, rgb_style, strict=True):
        assert not torch.equal(fv, rv)
        same = torch.isclose(fv[:, u], rv[:, u]) | torch.isclose(fv[:, u], -rv[:, u])
        assert bool(same.all()) and bool(torch.isclose(fv[:, u], -rv[:, u]).any())
        keep = [c for c in range(3) if c != u]
        assert torch.equal(fv[:, keep], rv[:, keep])
    out = tmp_path / "rows.csv"
    assert main(["--model", str(pkg), "--input", str(CLIP), "--output", str(out), "--workers", "0", "--device", "cpu",
                 "--engine", "onnxruntime"]) == 0
    row = next(csv.DictReader(out.open()))
    assert row["status"] == "ok" and row["label"] == pred.top
    np.testing.assert_allclose([float(row[f"prob_{k}"]) for k in LABELS], pred.probs, atol=1e-5)


def test_checks_run_on_the_models_own_kind(flow_model, flow_cache, tmp_path):
    """A cache of another kind cannot check a flow model; a video can: it goes through the runtime's motion path."""
    rgb = tmp_path / "rgb"
    shutil.copytree(flow_cache, rgb)
    settings = json.loads((rgb / "cache.json").read_text())
    (rgb / "cache.json").write_text(json.dumps({**settings, "size": 28, "inputs": {"kind": "rgb"}}))
    with pytest.raises(InputError, match="holds rgb inputs made otherwise than the model's .*kind: 'rgb' there, "
                                         "'flow_image' in the model"):
        export_package(flow_model, tmp_path / "pkg", clips=[str(rgb)], log=lambda *_: None)
    assert not (tmp_path / "pkg").exists()
    with pytest.raises(InputError, match="--serve-flow and --face-crop are for models trained on a published"):
        export_package(flow_model, tmp_path / "pkg", serve_flow="tvl1", face_crop=56, log=lambda *_: None)
    cfg = export_package(flow_model, tmp_path / "pkg", clips=[str(CLIP)], log=lambda *_: None)
    assert cfg.parity.clips == 1 and cfg.parity.same_argmax
    data = json.loads((tmp_path / "pkg" / "config.json").read_text())
    data["input"]["kind"] = "depth_clip"  # a kind from a newer project
    (tmp_path / "pkg" / "config.json").write_text(json.dumps(data))
    from inference.runtime import Predictor

    with pytest.raises(InputError, match="input kind 'depth_clip' is not one this runtime reads .*update the project"):
        Predictor(tmp_path / "pkg", device="cpu")


def test_a_published_flow_set_model_is_served_on_flow_made_here_only_when_asked(tmp_path):
    """A model of a published flow-image set (flow made elsewhere from the set's own crops) is refused, unless the
    export names the flow and the face crop serving uses; then the package records both and what training saw, is
    checked on the set's own min-max images, and serves a clip: the flow image made here (min-max, its zero measured
    inside the graph) gives the PyTorch model's probabilities."""
    from inference.runtime import Predictor
    from training.synth.flowset import write_flowset

    root = tmp_path / "set"
    write_flowset(root, subjects=1, clips_per_subject=3, seed=5, frame_size=(120, 160), n_frames=(6, 8), crop=32,
                  method="farneback")
    trained = Cache.open(root).inputs
    assert trained["method"] == "published" and trained["scaling"]["mode"] == "minmax"
    torch.manual_seed(0)
    vm = ViewModel({"name": "ststnet"}, 3, "sbml", "OLR", inputs="flow_image").eval()
    save_view_model(tmp_path / "m.pt", vm, LABELS,
                    {"inputs": trained, "normalisation": dict(FLOW_NORMALISATION), "n_frames": 1, "size": 28,
                     "crop": None, "caches": [str(root)], "protocol": "composite"})
    with pytest.raises(InputError, match="flow images made by 'published' .* --serve-flow tvl1 --face-crop SIZE"):
        export_package(tmp_path / "m.pt", tmp_path / "pkg", log=lambda *_: None)
    cfg = export_package(tmp_path / "m.pt", tmp_path / "pkg", serve_flow="farneback", face_crop=56,
                         log=lambda *_: None)
    served = cfg.motion
    assert (served["method"], served["size"], served["apex"]) == ("farneback", 28, "estimated")
    assert served["scaling"] == trained["scaling"] and served["trained_on"] == trained
    assert cfg.face_crop["size"] == 56 and cfg.parity.clips == 9 and cfg.parity.same_argmax  # the set's 9 images
    assert "**an approximation**: trained on flow images made by 'published'" in (tmp_path / "pkg" / "README.md"
                                                                                  ).read_text()
    predictor = Predictor(tmp_path / "pkg", device="cpu", engine="onnxruntime")
    pred = predictor.predict(CLIP)
    image, _ = build_input(pred.aligned, served)
    np.testing.assert_array_equal(pred.motion, image)
    _, probs, _ = _pytorch(vm, image, served, FLOW_NORMALISATION)
    np.testing.assert_allclose(pred.probs, calibrated(predictor, probs[0].numpy()), atol=1e-5)
def test_a_flow_clip_model_exports_and_serves_like_pytorch(smic_data, tmp_path):
    """A 3D network on flow clips (Farneback, consecutive frames; 8 of them after resampling): the runtime makes the
    clip's flow with the recorded parameters from every aligned frame, resamples it as training's bank did, and the
    graph (per-frame zeros, flow views) gives the PyTorch model's probabilities."""
    from inference.runtime import Predictor
    from inference.temporal import resample
    from training.loso import run
    from training.prepare import MotionOptions

    cache = _prepare(smic_data, tmp_path / "cache", MotionOptions("flow_clip", method="farneback"))
    cfg = load_config(ROOT / "training" / "configs" / "tiny.yaml",
                      [f"data.caches=[{cache}]", "data.inputs=flow_clip", f"out={tmp_path / 'run'}", "epochs=1"])
    run(cfg, log=lambda *_: None, progress=False)
    checkpoint = next((tmp_path / "run" / "folds").glob("subject_*/model.pt"))
    pkg = export_package(checkpoint, tmp_path / "pkg", log=lambda *_: None)
    inputs = Cache.open(cache).inputs
    assert pkg.input.kind == "flow_clip" and pkg.motion == inputs and pkg.n_frames == 8 and pkg.input.height == 56
    assert (inputs["method"], inputs["reference"]) == ("farneback", "consecutive") and pkg.parity.clips == 6
    predictor = Predictor(tmp_path / "pkg", device="cpu", engine="onnxruntime")
    pred = predictor.predict(CLIP)
    clip = resample(build_input(pred.aligned, inputs)[0], 8)
    np.testing.assert_array_equal(pred.motion, clip)
    vm, meta = load_view_model(checkpoint)
    _, probs, _ = _pytorch(vm, clip, inputs, meta["extra"]["normalisation"], size=48)
    np.testing.assert_allclose(pred.probs, calibrated(predictor, probs[0].numpy()), atol=1e-5)


@pytest.mark.parametrize("scheme, views", [("sbml", "OLR"), ("fsb", "LR")])
def test_min_max_flow_is_centred_on_the_zero_measured_inside_the_graph(tmp_path, scheme, views):
    """Min-max scaled flow images (zero not stored): the graph measures each image's zero as FlowScaling.zero does
    (median of u, v over the central region, strain minimum), centres on it and builds flow views, as training's
    engine and ViewModel do (SBML and FSB)."""
    from training.data import augment, normalise

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (5, 1, 28, 28, 3), dtype=np.uint8)
    images[1, 0, :, :, 0] = 200  # a constant u: its zero is that value
    scaling = motion.FlowScaling("minmax")
    torch.manual_seed(0)
    vm = ViewModel({"name": "ststnet"}, 3, scheme, views, inputs="flow_image").eval()
    norm = {"mean": [0.5] * 3, "std": [0.5, 0.25, 0.5], "pixel_scale": 1.0, "centre": "zero"}
    pre = Preprocessing.of("flow_image", {"kind": "flow_image", "scaling": scaling.to_dict()}, norm, 28, 28)
    packaged = PackagedModel(vm, pre)
    zero = torch.from_numpy(scaling.zero(images)).float()
    assert zero[1, 0, 0] == 200
    x = normalise(augment(torch.from_numpy(images), 28, flow_zero=zero), zero / 255.0, norm["std"])
    torch.testing.assert_close(packaged.prepare(torch.from_numpy(images)), x, atol=1e-6, rtol=0)
    args = (torch.from_numpy(images),) + ((torch.tensor([0, 1, 2]),) if scheme == "sbml" else ())
    torch.testing.assert_close(packaged(*args)[0], vm.predict(x, views)[0], atol=1e-6, rtol=0)
    path = tmp_path / "m.onnx"
    export_onnx(packaged, path, 1, 28)
    parity = check_parity(packaged, path, images, views)
    assert parity.same_argmax and parity.max_abs_logit_diff < 1e-4
