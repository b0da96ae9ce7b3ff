"""The model package's one typed description (inference/package.py): config.json in and out, its checks and errors,
the facts in a bare model.onnx's metadata, and the package's file names."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from inference.errors import InputError
from inference.face import CropSettings
from inference.inputs import build_input
from inference.package import (
    FORMAT_VERSION,
    HUB_FILES,
    PACKAGE_FILES,
    REQUIRED_FILES,
    VARIANT_CHOICES,
    VARIANT_FILES,
    ModelPackage,
    crop_settings,
    missing_files,
    read_onnx_metadata,
)

ROOT = Path(__file__).resolve().parent.parent
DEFAULT = ROOT / "demo" / "default_model"


_FLOW = {"kind": "flow_image", "method": "farneback", "params": {"method": "farneback", "levels": 2},
         "scaling": {"mode": "fixed", "channels": ["u", "v", "strain"], "gain": 16.0, "strain_gain": 512.0,
                     "zero": [128.0, 128.0, 0.0]}, "size": 32, "apex": "estimated"}  # a cache.json's inputs


def _config() -> dict:
    return json.loads((DEFAULT / "config.json").read_text())


def _folder(tmp_path: Path, data: dict | str) -> Path:
    folder = tmp_path / "pkg"
    folder.mkdir(exist_ok=True)
    (folder / "config.json").write_text(data if isinstance(data, str) else json.dumps(data))
    return folder


def test_an_existing_package_loads_and_writes_back_the_same_config():
    """demo/default_model was exported before the typed description existed: it loads, and to_json gives back every
    key and value it holds, in its order (plus the input kind, which it predates: rgb_clip)."""
    data = _config()
    pkg = ModelPackage.load(DEFAULT)
    assert pkg.format_version == FORMAT_VERSION == 1 and pkg.labels == ["negative", "positive", "surprise"]
    assert pkg.sbml and pkg.test_views == "OLR" and pkg.n_frames == 8 and pkg.size == 48
    assert pkg.input.kind == "rgb_clip" and pkg.input.height == 64 and pkg.input.layout == "NTHWC"
    assert pkg.loso.uf1 == pytest.approx(data["loso"]["uf1"]) and pkg.loso.protocol["selection"] == "last"
    assert pkg.parity.same_argmax and pkg.source_checkpoint.sha256 == data["source_checkpoint"]["sha256"]
    out = pkg.to_json()
    assert list(out) == list(data)
    assert out == {**data, "input": {**data["input"], "kind": "rgb_clip"}}
    assert ModelPackage.from_json(json.loads(json.dumps(out))) == pkg  # a round trip changes nothing


def test_the_crop_settings_come_from_the_package():
    pkg = ModelPackage.load(DEFAULT)
    assert pkg.crop_settings() == CropSettings(size=64, margin=0.1)
    assert crop_settings({"size": 96, "margin": 0.2, "extent": 2.5}) == CropSettings(96, 0.2)
    with pytest.raises(InputError, match="face-crop settings"):
        crop_settings({"margin": 0.1}, "x.pt")


def test_variants_are_typed_and_written_in_the_configs_own_form():
    data = _config()
    data["variants"] = {"int8": {"file": "model.int8.onnx", "for": "CPU (static QDQ, per-channel)", "stem": "int8",
                                 "agreement": {"top1_agreement": 1.0, "clips": 16, "meets_target": True},
                                 "calibration": {"source": "cache/x", "clips": 32}},
                        "fp16": {"file": "model.fp16.onnx", "for": "GPU (CUDA execution provider)",
                                 "agreement": {"top1_agreement": 1.0}}}
    pkg = ModelPackage.from_json(data)
    assert pkg.variants["int8"].stem == "int8" and pkg.variants["int8"].target.startswith("CPU")
    assert pkg.variants["fp16"].stem is None and pkg.files() == ["model.onnx", "model.int8.onnx", "model.fp16.onnx"]
    assert pkg.to_json()["variants"] == data["variants"]
    assert list(pkg.to_json()["variants"]["int8"]) == ["file", "for", "stem", "agreement", "calibration"]


@pytest.mark.parametrize("change, message", [
    (lambda d: d.pop("labels"), "the field 'labels' is missing"),
    (lambda d: d.pop("format_version"), "the field 'format_version' is missing"),
    (lambda d: d["input"].pop("height"), "the field 'input.height' is missing"),
    (lambda d: d.update(format_version=2), "package format 2 is newer than this runtime's; this runtime reads format "
                                           "1. Update the project or re-export the model"),
    (lambda d: d.update(format_version="one"), "unknown package format 'one'; this runtime reads format 1"),
    (lambda d: d.update(format_version=0), "unknown package format 0"),
    (lambda d: d.update(labels=[]), "'labels' must be a non-empty list"),
    (lambda d: d.update(scheme="late"), "unknown scheme 'late'"),
    (lambda d: d.update(test_views="OX"), "invalid view set 'OX'"),
    (lambda d: d.update(view_index={"O": 2, "L": 1, "R": 0}), "view indices"),
    (lambda d: d["input"].update(kind="optical_flow"), "input kind 'optical_flow' is not one this runtime reads"),
    (lambda d: d.update(variants={"int4": {"file": "model.int4.onnx"}}), "unknown variants int4"),
    (lambda d: d.update(face_crop={"size": 4, "margin": 0.1}), "face-crop settings"),
    (lambda d: d["input"].update(kind="flow_image"), "the field 'input.motion' is missing"),
    (lambda d: d["input"].update(kind="flow_image", motion={**_FLOW, "kind": "flow_clip"}),
     "input kind 'flow_image' but its motion parameters are for 'flow_clip'"),
    (lambda d: d["input"].update(kind="flow_image", motion={**_FLOW, "scaling": {"mode": "log"}}),
     "input.motion: unknown flow scaling 'log'"),
    (lambda d: d["input"].update(kind="flow_image", motion={**_FLOW, "method": "published"}),
     "input.motion: unknown optical-flow method 'published'"),
    (lambda d: d["input"].update(motion=_FLOW), "an rgb_clip input has no motion parameters"),
])
def test_a_wrong_config_is_a_clear_input_error(tmp_path, change, message):
    data = _config()
    change(data)
    folder = _folder(tmp_path, data)
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")) as e:
        ModelPackage.load(folder)
    assert str(folder / "config.json") in str(e.value)


def test_a_missing_or_unreadable_config_says_what_to_do(tmp_path):
    with pytest.raises(InputError, match="config.json: no such file; a model package folder holds config.json and "
                                         "model.onnx"):
        ModelPackage.load(tmp_path)
    with pytest.raises(InputError, match="cannot be read .*re-export the model"):
        ModelPackage.load(_folder(tmp_path, "{not json"))
    with pytest.raises(InputError, match="config must be a JSON object"):
        ModelPackage.load(_folder(tmp_path, "[1, 2]"))


def test_the_runtime_refuses_a_newer_package(tmp_path):
    from inference.runtime import Predictor

    folder = tmp_path / "pkg"
    shutil.copytree(DEFAULT, folder)
    data = _config()
    data["format_version"] = FORMAT_VERSION + 1
    (folder / "config.json").write_text(json.dumps(data))
    with pytest.raises(InputError, match=f"this runtime reads format {FORMAT_VERSION}. Update the project or "
                                         "re-export"):
        Predictor(folder, device="cpu")


def test_package_file_names_have_one_home():
    assert VARIANT_FILES == {"fp32": "model.onnx", "fp16": "model.fp16.onnx", "int8": "model.int8.onnx"}
    assert VARIANT_CHOICES == ("auto", "fp32", "fp16", "int8")
    assert REQUIRED_FILES == ("config.json", "model.onnx") and HUB_FILES == (*REQUIRED_FILES, "README.md")
    assert PACKAGE_FILES == ("model.onnx", "model.fp16.onnx", "model.int8.onnx", "config.json", "README.md")
    assert missing_files(DEFAULT) == [] and missing_files(DEFAULT, HUB_FILES) == []


def test_onnx_metadata_is_read_back_without_the_onnx_package(tmp_path, monkeypatch):
    """The facts export embeds are read with ONNX Runtime alone; a graph without them gives {}."""
    import sys

    import onnx
    from onnx import TensorProto, helper

    pkg = ModelPackage.load(DEFAULT)
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.save(model, str(tmp_path / "bare.onnx"))
    helper.set_model_props(model, pkg.onnx_metadata("int8"))
    onnx.save(model, str(tmp_path / "m.onnx"))
    monkeypatch.setitem(sys.modules, "onnx", None)  # a serving box has no onnx package
    meta = read_onnx_metadata(tmp_path / "m.onnx")
    assert meta["format_version"] == FORMAT_VERSION and meta["labels"] == pkg.labels and meta["variant"] == "int8"
    assert meta["n_frames"] == 8 and meta["crop_size"] == 64 and meta["input_kind"] == "rgb_clip"
    assert meta["input_layout"] == "NTHWC" and meta["scheme"] == "sbml" and meta["test_views"] == "OLR"
    assert meta["view_index"] == {"O": 0, "L": 1, "R": 2} and meta["outputs"] == ["probs", "view_logits"]
    assert read_onnx_metadata(tmp_path / "bare.onnx") == {}
    (tmp_path / "junk.onnx").write_bytes(np.arange(100, dtype=np.uint8).tobytes())
    with pytest.raises(InputError, match="not a readable ONNX graph"):
        read_onnx_metadata(tmp_path / "junk.onnx")


def test_hf_endpoint_is_read_in_one_place(monkeypatch):
    from inference.hub import hub_endpoint

    monkeypatch.setenv("HF_ENDPOINT", " http://127.0.0.1:9/ ")
    assert hub_endpoint() == "http://127.0.0.1:9"
    monkeypatch.setenv("HF_ENDPOINT", "")
    assert hub_endpoint() is None


def test_a_motion_package_records_its_inputs_and_builds_them_as_training_did(tmp_path):
    """A flow-image package: the cache's motion parameters round-trip through config.json and the ONNX metadata; the
    runtime keeps every aligned frame and builds the graph's input with inference.inputs.build_input."""

    data = _config()
    data["n_frames"] = 1
    data["input"].update(kind="flow_image", height=32, width=32, color="u,v,strain", motion=_FLOW)
    pkg = ModelPackage.load(_folder(tmp_path, data))
    assert pkg.motion == _FLOW and pkg.aligned_frames is None and pkg.input.kind == "flow_image"
    assert pkg.to_json()["input"]["motion"] == _FLOW and ModelPackage.from_json(pkg.to_json()) == pkg
    assert json.loads(pkg.onnx_metadata()["input_motion"]) == _FLOW and pkg.onnx_metadata()["crop_size"] == "64"
    assert "input_motion" not in ModelPackage.load(DEFAULT).onnx_metadata()  # RGB packages: as before
    assert ModelPackage.load(DEFAULT).aligned_frames == 8
    from tests.helpers import animate, astronaut

    frames, _ = animate(astronaut()[::4, ::4], 6, jitter=1.0, frame_size=(64, 64))  # a small shaken face
    x, apex = pkg.build_input(frames)
    want, want_apex = build_input(frames, _FLOW)
    assert x.shape == (1, 32, 32, 3) and apex == want_apex and np.array_equal(x, want)
    assert np.array_equal(pkg.build_input(frames, apex=2)[0], build_input(frames, _FLOW, apex=2)[0])
    with pytest.raises(InputError, match=r"is \(48, 48, 3\), the graph takes \(32, 32, 3\)"):
        ModelPackage.from_json({**pkg.to_json(), "input": {**pkg.to_json()["input"], "motion": {**_FLOW, "size": 48}}}
                               ).build_input(frames)
