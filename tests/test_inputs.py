"""Input kinds are one table (inference.inputs) and a trained model is one typed record (training.record).

A new input kind is one row, registered here in this module alone, and it goes through prepare → train → export →
serve with nothing else changed: a flow clip stored as (strain, v, u) — u in the last channel, the order the
published flow set's files hold — so the views, the augmentation, the zero-motion rule, the graph and the runtime can
only be right if they all read "which channel holds u" from the row. Export reads only the checkpoint's record: the
training cache is gone before it runs.
"""

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from inference import inputs
from inference.errors import InputError
from inference.inputs import FLOW_NORMALISATION, InputKind, Preprocessing, build_input, kind
from inference.motion import FlowScaling, flow_clip, flow_params

ROOT = Path(__file__).resolve().parent.parent
CLIP = ROOT / "demo" / "examples" / "surprise.mp4"
TINY = ROOT / "training" / "configs" / "tiny.yaml"
LABELS = ["negative", "positive", "surprise"]
NEW = "svu_flow_clip"


def _build(arr, recipe, fps, apex):  # the flow of consecutive frames, channels stored as strain, v, u
    scaling = FlowScaling.from_dict(recipe["scaling"])
    return np.ascontiguousarray(flow_clip(arr, recipe["method"], scaling, recipe["params"])[..., ::-1]), None


def _recipe(options, size, apex):
    return {"kind": NEW, "method": options["method"], "params": flow_params(options["method"]),
            "scaling": FlowScaling("fixed", options["gain"], options["strain_gain"]).to_dict()}


ROW = InputKind(NEW, ("strain", "v", "u"), _build, _recipe, "on optical-flow clips stored as strain, v, u",
                shows="the flow, strain first", flow=True, zero="scaling", normalisation=FLOW_NORMALISATION)


@pytest.fixture(scope="module", autouse=True)
def new_kind():
    """The new row, for this module's tests only."""
    inputs.register(ROW)
    yield ROW
    del inputs.KINDS[NEW]


@pytest.fixture(scope="module")
def smic_data(tmp_path_factory):
    """A synthetic SMIC-HS as distributed: 2 subjects × one clip per class (real faces)."""
    from training.datasets import smic
    from training.synth.faces import FaceSource

    root = tmp_path_factory.mktemp("smic") / "data"
    plan = [(s, c) for s in (1, 2) for c in LABELS]
    smic.write_synthetic(root, FaceSource((240, 320), seed=7), subjects=2, clips_per_subject=3,
                         rng=np.random.default_rng(7), variant="raw", n_frames=(10, 14), plan=plan)
    return root


def test_the_row_states_where_u_v_and_strain_are_and_everything_reads_it(new_kind):
    """The new row's u is channel 2: its zero rule, its views (u negated where mirrored) and a Preprocessing built
    from it all follow, with no other code told."""
    from training.schemes import ViewModel

    assert (new_kind.u, new_kind.uv, new_kind.strain, new_kind.color) == (2, (2, 1), 0, "strain,v,u")
    assert kind(NEW) is new_kind and NEW in inputs.names() and kind("rgb_clip").name == "rgb"
    recipe = _recipe({"method": "farneback", "gain": 16.0, "strain_gain": 512.0}, 32, None)
    np.testing.assert_array_equal(new_kind.zero_values(recipe), [0, 128, 128])
    pre = Preprocessing.of(NEW, recipe, FLOW_NORMALISATION, 24, 32)
    assert pre.uv == (2, 1) and pre.centre and pre.zero == (0.0, 128.0, 128.0) and not pre.measured
    # min-max images: u and v's zeros are medians of channels 2 and 1, the strain's the minimum of channel 0
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (2, 1, 20, 20, 3), dtype=np.uint8)
    images[0, ..., 2] = 77
    zeros = new_kind.zeros({**recipe, "scaling": FlowScaling("minmax").to_dict()}, images)
    assert zeros[0, 0, 2] == 77 and zeros[0, 0, 0] == images[0, 0, ..., 0].min()
    np.testing.assert_array_equal(zeros[..., ::-1], FlowScaling("minmax").zero(np.ascontiguousarray(images[..., ::-1])))
    # the views negate u (channel 2) in the mirrored half, never the strain (channel 0)
    vm = ViewModel({"name": "resnet3d_tiny"}, 3, "sbml", "OLR", inputs=NEW)
    x = torch.rand(1, 3, 2, 4, 6)
    _, left, _ = vm.views(x, "OLR")
    torch.testing.assert_close(left[:, 2, ..., 3:], -x[:, 2, ..., :3].flip(-1))
    torch.testing.assert_close(left[:, 0, ..., 3:], x[:, 0, ..., :3].flip(-1))
    with pytest.raises(InputError, match="unknown input kind 'depth'"):
        kind("depth")
    with pytest.raises(ValueError, match="already registered"):
        inputs.register(ROW)


def test_a_new_kind_is_one_row_from_prepare_through_training_and_export_to_serving(smic_data, tmp_path):
    """prepare --inputs NEW → LOSO training → export (the training cache deleted first: export reads the checkpoint's
    record only) → the runtime on a real clip: it makes the new input with the row's builder, and the graph gives the
    probabilities of the PyTorch model fed through an independent reading of the layout (zero [0, 128, 128], u in
    channel 2)."""
    from export.__main__ import export_package
    from inference.runtime import Predictor
    from inference.temporal import resample
    from training.config import load_config
    from training.data import ClipBank, augment, normalise
    from training.loso import run
    from training.prepare import MotionOptions, prepare
    from training.record import TrainedModel
    from training.schemes import load_view_model

    cache = tmp_path / "cache"
    prepare("smic", smic_data, cache, size=40, progress=False, log=lambda *_: None,
            motion=MotionOptions(NEW, method="farneback"))
    bank = ClipBank.from_caches([str(cache)], "smic", 4, inputs=NEW)
    assert bank.uv == (2, 1) and torch.equal(bank.zeros[0, 0], torch.tensor([0.0, 128.0, 128.0]))
    cfg = load_config(TINY, [f"data.caches=[{cache}]", f"data.inputs={NEW}", f"out={tmp_path / 'run'}", "epochs=1",
                             "train.flip=true"])
    run(cfg, log=lambda *_: None, progress=False)
    checkpoint = next((tmp_path / "run" / "folds").glob("subject_*/model.pt"))
    vm, meta = load_view_model(checkpoint)
    record = TrainedModel.read(meta, checkpoint)
    assert record.inputs["kind"] == NEW and record.frame_size == 40 and record.caches == (str(cache),)

    shutil.rmtree(cache)  # export must not need it
    pkg = export_package(checkpoint, tmp_path / "pkg", clips=[str(CLIP)], log=lambda *_: None)
    assert (pkg.input.kind, pkg.input.color, pkg.input.height, pkg.motion) == (NEW, "strain,v,u", 40, record.inputs)
    assert pkg.summary.endswith("on optical-flow clips stored as strain, v, u, exported as ONNX.")
    assert pkg.preprocessing() == record.preprocessing() and pkg.parity.same_argmax

    pred = Predictor(tmp_path / "pkg", device="cpu", engine="onnxruntime").predict(CLIP)
    clip = resample(build_input(pred.aligned, record.inputs)[0], 8)
    np.testing.assert_array_equal(pred.motion, clip)
    reversed_flow = flow_clip(pred.aligned, "farneback", FlowScaling.from_dict(record.inputs["scaling"]))
    np.testing.assert_array_equal(clip, resample(reversed_flow[..., ::-1], 8))
    zero = torch.tensor([0.0, 128.0, 128.0]).expand(1, 8, 3)
    x = normalise(augment(torch.from_numpy(clip)[None], 48, flow_zero=zero, uv=(2, 1)), zero / 255.0,
                  FLOW_NORMALISATION["std"])
    np.testing.assert_allclose(pred.probs, vm.predict(x, pkg.test_views)[0][0].numpy(), atol=1e-5)


def _record(**change) -> "TrainedModel":  # noqa: F821
    from training.record import TrainedModel

    model = {"backbone": {"name": "resnet3d_tiny"}, "num_classes": 3, "scheme": "sbml", "train_views": "OLR",
             "view_weights": [0.4, 0.4, 0.2], "test_views": "OLR", "fsb_head": "linear", "fsb_hidden": 256,
             "inputs": "flow_image"}
    base = TrainedModel(
        model=model, labels=tuple(LABELS), what="LOSO fold, held-out subject 1", epoch=3, protocol="smic", run="r",
        n_frames=1, size=28, frame_size=32, normalisation=dict(FLOW_NORMALISATION), selection="last",
        inputs={"kind": "flow_image", "method": "farneback", "params": flow_params("farneback"),
                "scaling": FlowScaling().to_dict(), "size": 32, "apex": "estimated"},
        caches=("cache/smic",), crop={"size": 56, "margin": 0.1}, synthetic=True,
        init={"pretrained": "runs/pre/model.pt", "kind": "checkpoint"}, provenance=({"stage": "pre"},),
        loso={"uf1": 0.5, "uar": 0.5, "war": 0.6, "n": 6, "protocol": {"dataset_protocol": "smic"}})
    return dataclasses.replace(base, **change)


def test_the_record_round_trips_and_maps_one_to_one_onto_the_package_config():
    from inference.package import ModelPackage
    from training.record import RECORD_FORMAT, TrainedModel

    record = _record()
    extra = record.extra()
    assert extra["record"] == RECORD_FORMAT and "model" not in extra and "labels" not in extra
    assert TrainedModel.from_parts(record.model, record.labels, extra) == record
    fields = record.package_fields()
    pkg = ModelPackage(**fields, test_views="OLR")
    config = ModelPackage.from_json(pkg.to_json())
    assert config.labels == LABELS and (config.n_frames, config.size) == (1, 28)
    assert (config.input.kind, config.input.height, config.input.color, config.motion) == (
        "flow_image", 32, "u,v,strain", record.inputs)
    assert config.normalisation == {**FLOW_NORMALISATION, "applied": "inside the graph"}
    assert (config.scheme, config.train_views, config.view_weights, config.fsb_head) == ("sbml", "OLR",
                                                                                        [0.4, 0.4, 0.2], None)
    assert config.face_crop == record.crop and config.backbone == {"name": "resnet3d_tiny"}
    assert (config.protocol, config.provenance, config.synthetic) == ("smic", [{"stage": "pre"}], True)
    assert (config.loso.uf1, config.loso.n, config.init) == (0.5, 6, "checkpoint: model.pt")
    assert config.trained == {"what": "LOSO fold, held-out subject 1", "epoch": 3, "selection": "last"}
    assert config.preprocessing() == record.preprocessing()
    with pytest.raises(InputError, match="the record lacks frame_size"):
        TrainedModel.from_parts(record.model, record.labels, {k: v for k, v in extra.items() if k != "frame_size"})
    with pytest.raises(InputError, match="record format 3"):
        TrainedModel.from_parts(record.model, record.labels, {**extra, "record": 3})
    with pytest.raises(InputError, match="network takes flow_image inputs, its record says rgb"):
        _record(inputs={"kind": "rgb"})


def test_an_old_checkpoint_goes_through_the_one_converter_or_is_refused_saying_how_to_re_export(tmp_path):
    """A checkpoint written before the record (its extra an untyped dict without frame_size): the converter recovers
    the frame side (the flow image's size, else the crop's, else the network's); one that cannot say how its inputs
    were made is refused with what to do."""
    from training.record import TrainedModel
    from training.schemes import ViewModel, load_view_model, save_view_model

    record = _record()
    old = {k: v for k, v in record.extra().items() if k not in ("record", "frame_size")}
    assert TrainedModel.from_parts(record.model, record.labels, old) == record
    rgb = {**old, "inputs": {"kind": "rgb"}, "n_frames": 8, "size": 48}
    converted = TrainedModel.from_parts({**record.model, "inputs": "rgb"}, record.labels, rgb)
    assert converted.frame_size == 56 and converted.inputs == {"kind": "rgb"}
    assert TrainedModel.from_parts({**record.model, "inputs": "rgb"}, record.labels,
                                   {**rgb, "crop": None}).frame_size == 48
    vm = ViewModel({"name": "resnet3d_tiny"}, 3, "sbml", "OLR")
    save_view_model(tmp_path / "old.pt", vm, LABELS, {"what": "a fold", "epoch": 2})
    with pytest.raises(InputError, match=r"old\.pt: a checkpoint written before the trained-model record, without "
                                         r"n_frames, size, normalisation.*python -m export"):
        TrainedModel.read(load_view_model(tmp_path / "old.pt")[1], tmp_path / "old.pt")
    with pytest.raises(InputError, match="the record lacks"):  # a record is checked before it is written
        save_view_model(tmp_path / "bad.pt", vm, LABELS, {"record": 2, "what": "a fold"})
    assert not (tmp_path / "bad.pt").exists()
