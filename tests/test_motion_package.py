"""Motion models served: a tiny STSTNet trained on a flow_image cache exports to a package whose config.json and ONNX
metadata carry the motion parameters, passes parity, and the runtime computes from a real clip the flow image training
would have made, giving the probabilities the PyTorch model gives on it."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from export.__main__ import export_package
from export.package import PackagedModel, check_parity, export_onnx
from inference import motion
from inference.errors import InputError
from inference.package import ModelPackage, read_onnx_metadata
from inference.views import make_views
from training.cache import Cache
from training.config import load_config
from training.schemes import ViewModel, load_view_model, save_view_model

ROOT = Path(__file__).resolve().parent.parent
STSTNET = ROOT / "training" / "configs" / "peers" / "ststnet.yaml"
CLIP = ROOT / "demo" / "examples" / "surprise.mp4"
LABELS = ["negative", "positive", "surprise"]


@pytest.fixture(scope="module")
def flow_cache(smic_heldout_cache, tmp_path_factory):
    """The held-out synthetic SMIC-HS (2 subjects, 18 clips) prepared again with --inputs flow_image at 28 px."""
    from training.prepare import MotionOptions, prepare

    root = Path(Cache.open(smic_heldout_cache).settings["root"])
    out = tmp_path_factory.mktemp("flow") / "cache"
    prepare("smic", root, out, size=56, progress=False, log=lambda *_: None,
            motion=MotionOptions("flow_image", flow_size=28))
    return out


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
    assert on_disk["parity"]["same_argmax"] and on_disk["parity"]["clips"] == 16
    agreement = on_disk["variants"]["int8"]["agreement"]  # measured on the cache's flow images, with their labels
    assert "uf1_drop" in agreement and agreement["clips"] == 16
    for name in ("model.onnx", "model.int8.onnx"):
        facts = read_onnx_metadata(pkg / name)
        assert facts["input_kind"] == "flow_image" and facts["input_motion"] == inputs
        assert facts["crop_size"] == 56 and facts["n_frames"] == 1
    card = (pkg / "README.md").read_text()
    assert "onset → apex flow image of 28 px (tvl1 optical flow" in card
    assert "uint8 `(N, 1, 28, 28, 3)` onset → apex flow images" in card


def test_the_runtime_computes_the_flow_image_training_would_and_matches_pytorch(flow_package, flow_model, flow_cache,
                                                                                 tmp_path):
    """From a real clip, through the demo's analysis (Predictor.predict): every aligned frame kept, the flow image made
    with the recorded parameters (apex estimated from the first frame), and the graph's probabilities = the trained
    model's on that image, through training's own evaluation path (resize, centring on the stored zero, flow views).
    The batch command gives the same row."""
    from demo.app import Analyser
    from inference.__main__ import main
    from inference.runtime import Predictor
    from training.data import augment, normalise

    pkg, cfg = flow_package
    predictor = Predictor(pkg, device="cpu", engine="onnxruntime")
    analysis = Analyser(predictor).analyse(str(CLIP))
    pred = analysis.prediction
    assert sorted(analysis.sheets) == ["L", "O", "R"]  # the page shows the aligned face's views
    assert pred.aligned.shape[1:] == (56, 56, 3) and len(pred.aligned) > 30  # every frame of the face segment
    inputs = Cache.open(flow_cache).inputs
    image, apex = motion.build_input(pred.aligned, inputs)
    assert pred.apex == apex == motion.estimate_apex(pred.aligned) and 0 < apex < len(pred.aligned)
    np.testing.assert_array_equal(pred.motion, image)
    assert pred.motion.shape == (1, 28, 28, 3) and "motion" in pred.timings
    vm, meta = load_view_model(flow_model)
    norm = meta["extra"]["normalisation"]
    zero = torch.tensor(motion.FlowScaling.from_dict(inputs["scaling"]).zero(image), dtype=torch.float32)[None]
    x = augment(torch.from_numpy(image)[None], 28, flow_zero=zero)
    x = normalise(x, zero / 255.0, norm["std"], norm["pixel_scale"])
    probs, per_view = vm.predict(x, "OLR")
    np.testing.assert_allclose(pred.probs, probs[0].numpy(), atol=1e-5)
    for i, v in enumerate("OLR"):
        np.testing.assert_allclose(pred.per_view[v], per_view[i, 0].numpy(), atol=1e-5)
    # the L and R views are flow views: u negated where mirrored, so they differ from RGB-style mirrors
    rgb_style = vm.backbone.fc(vm.backbone.forward_features(torch.cat(make_views(x, "LR")))).softmax(-1)
    assert not torch.allclose(rgb_style[0], per_view[1, 0], atol=1e-4)
    out = tmp_path / "rows.csv"
    assert main(["--model", str(pkg), "--input", str(CLIP), "--output", str(out), "--workers", "0", "--device", "cpu",
                 "--engine", "onnxruntime"]) == 0
    row = next(csv.DictReader(out.open()))
    assert row["status"] == "ok" and row["label"] == pred.top
    np.testing.assert_allclose([float(row[f"prob_{k}"]) for k in LABELS], pred.probs, atol=1e-5)


def test_checks_run_on_the_models_own_kind(flow_model, smic_heldout_cache, tmp_path):
    """A cache of aligned faces cannot check a flow model; a video can: it goes through the runtime's motion path."""
    with pytest.raises(InputError, match="holds rgb inputs made otherwise than the model's .*kind: 'rgb' there, "
                                         "'flow_image' in the model"):
        export_package(flow_model, tmp_path / "pkg", clips=[str(smic_heldout_cache)], log=lambda *_: None)
    assert not (tmp_path / "pkg").exists()
    cfg = export_package(flow_model, tmp_path / "pkg", clips=[str(CLIP)], log=lambda *_: None)
    assert cfg.parity.clips == 1 and cfg.parity.same_argmax
    data = json.loads((tmp_path / "pkg" / "config.json").read_text())
    data["input"]["kind"] = "depth_clip"  # a kind from a newer project
    (tmp_path / "pkg" / "config.json").write_text(json.dumps(data))
    from inference.runtime import Predictor

    with pytest.raises(InputError, match="input kind 'depth_clip' is not one this runtime reads .*update the project"):
        Predictor(tmp_path / "pkg", device="cpu")


def test_a_model_trained_on_a_published_flow_set_is_refused(tmp_path):
    vm = ViewModel({"name": "ststnet"}, 3, "sbml", "O", inputs="flow_image")
    save_view_model(tmp_path / "m.pt", vm, LABELS,
                    {"inputs": {"kind": "flow_image", "method": "published", "params": {},
                                "scaling": motion.FlowScaling("minmax").to_dict(), "apex": "annotated"},
                     "normalisation": {"mean": [0.5] * 3, "std": [0.5] * 3, "centre": "zero"}, "n_frames": 1,
                     "size": 28, "crop": None})
    with pytest.raises(InputError, match="flow images made by 'published' .* serving cannot compute"):
        export_package(tmp_path / "m.pt", tmp_path / "pkg", clips=[str(CLIP)], log=lambda *_: None)


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
    packaged = PackagedModel(vm, norm, 28, {"kind": "flow_image", "scaling": scaling.to_dict()}, 28)
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
