"""Checkpoint → ONNX model package: parity with PyTorch, variants, config, a card the Hub accepts."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from export.__main__ import export_package
from export.package import PackagedModel, check_parity
from inference.errors import InputError
from inference.package import VARIANT_FILES, ModelPackage, read_onnx_metadata
from training.config import load_config
from training.loso import run
from training.record import TrainedModel
from training.schemes import load_view_model

ROOT = Path(__file__).resolve().parent.parent
TINY = ROOT / "training" / "configs" / "tiny.yaml"


@pytest.fixture(scope="module")
def trained(smic_heldout_cache, small_run, tmp_path_factory):
    """A small SBML-OLR LOSO run (2 subjects, with its --final model) and a short FSB one."""
    out = tmp_path_factory.mktemp("runs")
    (out / "sbml").symlink_to(small_run[0], target_is_directory=True)
    run(load_config(TINY, [f"data.caches=[{smic_heldout_cache}]", f"out={out / 'fsb'}", "epochs=1", "scheme.type=fsb",
                           "train_views=LR", "fsb_head=mlp"]), log=lambda *_: None, progress=False)
    return out


@pytest.fixture(scope="module")
def clips(smic_heldout_cache):
    """The cache's clips at the model's 8 frames."""
    return _clips(smic_heldout_cache, 8, 8)


@pytest.fixture(scope="module")
def final_package(trained, smic_heldout_cache, tmp_path_factory):
    """The --final model exported with both variants (int8 calibrated on the training clips, the check on 16 labelled
    clips); (folder, the ModelPackage export_package returned). The card test reads the same package."""
    pkg = tmp_path_factory.mktemp("final") / "pkg"
    cfg = export_package(trained / "sbml" / "final" / "model.pt", pkg, fp16=True, int8=True,
                         calibrate=str(smic_heldout_cache), clips=[str(smic_heldout_cache)], log=lambda *_: None)
    return pkg, cfg


def _ort(path):
    import onnxruntime as ort

    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _clips(cache, n, frames):
    from inference.temporal import resample
    from training.cache import Cache

    c = Cache.open(cache)
    return np.stack([resample(np.asarray(c.clip(i)), frames) for i in range(n)])


def test_final_model_exports_with_variants(final_package, trained, clips):
    pkg, cfg = final_package
    assert sorted(p.name for p in pkg.iterdir()) == ["README.md", "config.json", "model.fp16.onnx", "model.int8.onnx",
                                                     "model.onnx"]
    on_disk = json.loads((pkg / "config.json").read_text())
    assert on_disk == json.loads(json.dumps(cfg.to_json())) and ModelPackage.load(pkg) == cfg
    assert on_disk["labels"] == ["negative", "positive", "surprise"]
    assert on_disk["n_frames"] == 8 and on_disk["size"] == 48
    assert on_disk["input"]["height"] == 56 and on_disk["face_crop"]["size"] == 56
    assert on_disk["face_crop"]["margin"] == 0.1
    assert on_disk["scheme"] == "sbml" and on_disk["test_views"] == "OLR" and on_disk["opset"] == 17
    assert on_disk["loso"]["protocol"]["selection"] == "last" and 0 <= on_disk["loso"]["uf1"] <= 1
    assert on_disk["parity"]["same_argmax"] and on_disk["parity"]["max_abs_logit_diff"] < 1e-3
    for name in ("fp16", "int8"):
        agreement = on_disk["variants"][name]["agreement"]
        assert agreement["top1_agreement"] >= 0.99 and agreement["uf1_drop"] <= 0.01, agreement
        assert 0 <= agreement["max_abs_prob_diff"] < 1, agreement
    assert on_disk["variants"]["int8"]["stem"] in ("int8", "float")  # auto: int8 unless that missed the targets
    for variant, name in VARIANT_FILES.items():  # each bare graph file says what it is (ONNX metadata)
        facts = read_onnx_metadata(pkg / name)
        assert facts["variant"] == variant and facts["format_version"] == on_disk["format_version"] == 1
        assert facts["labels"] == on_disk["labels"] and facts["n_frames"] == 8 and facts["crop_size"] == 56
        assert (facts["input_kind"], facts["input_layout"], facts["scheme"], facts["test_views"]) == (
            "rgb_clip", "NTHWC", "sbml", "OLR")
    # the package stands alone: ONNX Runtime with any batch size and any SBML view subset matches PyTorch
    model, meta = load_view_model(trained / "sbml" / "final" / "model.pt")
    ref = PackagedModel(model, TrainedModel.read(meta).preprocessing())
    clips = clips[:5]
    session = _ort(pkg / "model.onnx")
    for views in ([0, 1, 2], [0], [1, 2], [2, 0]):
        probs, view_logits = session.run(None, {"clips": clips, "views": np.array(views, np.int64)})
        with torch.no_grad():
            p, vl = ref(torch.from_numpy(clips), torch.tensor(views))
        np.testing.assert_allclose(view_logits, vl.numpy(), rtol=1e-3, atol=1e-5)
        assert probs.shape == (5, 3) and view_logits.shape == (len(views), 5, 3)
        np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)
    # evaluation in training and the package agree: training's eval path is the graph's
    from training.data import augment, normalise

    norm = meta["extra"]["normalisation"]
    x = normalise(augment(torch.from_numpy(clips), 48), **{k: norm[k] for k in ("mean", "std", "pixel_scale")})
    with torch.no_grad():
        train_probs, _ = model.predict(x)
    probs, _ = session.run(None, {"clips": clips, "views": np.array([0, 1, 2], np.int64)})
    np.testing.assert_allclose(probs, train_probs.numpy(), atol=1e-4)


def test_card_passes_the_hubs_metadata_checks(final_package):
    from huggingface_hub import ModelCard

    pkg, _ = final_package
    card = ModelCard.load(pkg / "README.md")
    assert card.data.pipeline_tag == "video-classification"
    assert {"onnx", "micro-expression"} <= set(card.data.tags)
    results = {r.metric_type: r for r in card.data.eval_results}
    assert set(results) == {"uf1", "uar", "accuracy"}
    assert results["uf1"].dataset_type == "smic" and "LOSO" in results["uf1"].metric_name
    cfg = json.loads((pkg / "config.json").read_text())
    assert results["uf1"].metric_value == pytest.approx(cfg["loso"]["uf1"], abs=1e-4)
    text = (pkg / "README.md").read_text()
    assert "## N-step provenance" in text and "model.onnx" in text and "$" not in text.split("---", 2)[2]


def test_fold_and_fsb_checkpoints_export(trained, tmp_path):
    fold = export_package(trained / "sbml" / "folds" / "subject_2" / "model.pt", tmp_path / "fold", views="LR",
                          log=lambda *_: None)
    assert fold.test_views == "LR" and fold.loso is not None  # the run's figures, said to be the run's
    assert "one fold" in (tmp_path / "fold" / "README.md").read_text()
    fsb = export_package(trained / "fsb" / "folds" / "subject_1" / "model.pt", tmp_path / "fsb", log=lambda *_: None)
    assert fsb.scheme == "fsb" and fsb.input.views_input is None and fsb.outputs == ["probs", "logits"]
    session = _ort(tmp_path / "fsb" / "model.onnx")
    assert [i.name for i in session.get_inputs()] == ["clips"]
    facts = read_onnx_metadata(tmp_path / "fsb" / "model.onnx")
    assert facts["scheme"] == "fsb" and facts["views_input"] == "" and facts["test_views"] == "LR"
    with pytest.raises(InputError, match="FSB model classifies the features of its training views"):
        export_package(trained / "fsb" / "folds" / "subject_1" / "model.pt", tmp_path / "x", views="OLR",
                       log=lambda *_: None)


def _casme2_cache(src: Path, out: Path, labels: list[str]) -> Path:
    """A CASME II cache in the format training.prepare writes, its aligned clips borrowed from the cache ``src``."""
    from training.cache import Cache, CacheWriter
    from training.labels import composite_label

    source = Cache.open(src)
    writer = CacheWriter(out, {**source.settings, "dataset": "casme2"})
    writer.open()
    for i, label in enumerate(labels):
        writer.add({"dataset": "casme2", "subject": 1 + i % 2, "clip": f"EP{i:02d}", "label": label,
                    "composite": composite_label("casme2", label) or "", "onset": 0, "apex": 1, "offset": 2,
                    "fps": 200, "source": ""}, np.asarray(source.clip(i)))
    return out


def test_a_composite_model_is_checked_on_every_datasets_clips(trained, smic_heldout_cache, tmp_path):
    """Export labels its check clips by the checkpoint's protocol, with the rule training uses
    (training.labels.protocol_entry): for a composite-protocol model a CASME II clip counts by its composite class
    (disgust and repression → negative, happiness → positive) and the classes outside the composite ("others",
    "fear") are left out — so the variants' UF1 drop is measured. (Export used to test for a class named
    "composite" instead: every CASME II clip went unlabelled, and the UF1 drop silently unmeasured.)"""
    from training.schemes import save_view_model

    casme2 = _casme2_cache(smic_heldout_cache, tmp_path / "casme2",
                           ["disgust", "happiness", "surprise", "repression", "others", "fear", "others", "surprise"])
    model, meta = load_view_model(trained / "sbml" / "final" / "model.pt")
    save_view_model(tmp_path / "composite.pt", model, meta["labels"],
                    {**meta["extra"], "protocol": "composite", "caches": [str(smic_heldout_cache), str(casme2)]})
    cfg = export_package(tmp_path / "composite.pt", tmp_path / "pkg", fp16=True, log=lambda *_: None)
    agreement = cfg.variants["fp16"].agreement
    assert agreement["clips"] == 16 + 5  # 16 SMIC-HS clips, the 5 CASME II clips of composite classes
    assert "uf1_drop" in agreement and "uf1_fp32" in agreement, agreement
    assert cfg.protocol == "composite" and cfg.training_data.startswith("MEGC2019 composite")


def test_nstep_checkpoint_exports_with_its_provenance(smic_heldout_cache, tmp_path):
    import yaml

    from training.nstep import load_chain, run_chain

    chain = {"name": "c", "out": str(tmp_path / "chain"), "model": {"name": "resnet3d_tiny"}, "stages": [
        {"name": "pre", "data": {"caches": [str(smic_heldout_cache)]},
         "train": {"epochs": 1, "batch_size": 8, "n_frames": 8, "size": 48, "device": "cpu"}},
        {"name": "micro", "loso": {"base": str(TINY), "data": {"caches": [str(smic_heldout_cache)]},
                                   "train": {"epochs": 1}},
         "final": True}]}
    (tmp_path / "chain.yaml").write_text(yaml.safe_dump(chain))
    run_chain(load_chain(tmp_path / "chain.yaml"), log=lambda *_: None, progress=False)
    cfg = export_package(tmp_path / "chain" / "stage2_micro" / "final" / "model.pt", tmp_path / "pkg",
                         log=lambda *_: None)
    assert [p["stage"] for p in cfg.provenance] == ["pre", "micro"]
    assert cfg.provenance[1]["init"]["sha256"]
    card = (tmp_path / "pkg" / "README.md").read_text()
    assert "| pre | scratch |" in card and "| micro | previous `model.pt`" in card


def test_a_wrong_export_fails_loudly(trained, clips, tmp_path):
    from export.package import export_onnx

    model, meta = load_view_model(trained / "sbml" / "final" / "model.pt")
    packaged = PackagedModel(model, TrainedModel.read(meta).preprocessing())
    export_onnx(packaged, tmp_path / "m.onnx", 8, 56)
    with torch.no_grad():
        model.backbone.fc.bias += 0.05  # PyTorch and the file now differ
    with pytest.raises(InputError, match="ONNX Runtime disagrees with PyTorch"):
        check_parity(packaged, tmp_path / "m.onnx", clips[:3], "OLR")


def _cli(capsys, *args) -> tuple[int, str, str]:
    """``python -m export ARGS`` in this process (the command's main, as the module runs it): status, stdout, stderr.
    Starting Python, torch and ONNX for every call is what made these tests slow; test_cli starts one for real."""
    from export.__main__ import main

    status = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return status, out, err


def test_cli(trained, tmp_path, capsys):
    res = subprocess.run([sys.executable, "-m", "export", "--checkpoint", str(trained / "sbml" / "final" / "model.pt"),
                          "--out", str(tmp_path / "pkg"), "--fp16"], cwd=ROOT, capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, res.stderr
    assert "ONNX Runtime matches PyTorch" in res.stdout and (tmp_path / "pkg" / "model.fp16.onnx").exists()
    status, _, err = _cli(capsys, "--checkpoint", tmp_path / "nope.pt", "--out", tmp_path / "x")
    assert status == 2 and err.startswith("error:") and "Traceback" not in err
    status, _, err = _cli(capsys, "--checkpoint", trained / "sbml" / "final" / "model.pt", "--out", tmp_path / "y",
                          "--int8")
    assert status == 2 and "--calibrate" in err


def test_parity_tolerance_follows_the_size_of_the_logits(trained, clips, tmp_path):
    """Float32 rounding grows with the numbers summed: a model whose logits are large still exports (a logit near
    zero in it carries the rounding of its large neighbours), and atol is recorded at that scale."""
    from export.package import ATOL, export_onnx

    model, meta = load_view_model(trained / "sbml" / "final" / "model.pt")
    packaged = PackagedModel(model, TrainedModel.read(meta).preprocessing())
    clips = clips[:6]
    with torch.no_grad():  # the logits are linear in the classifier: scaled so that the largest is 50
        trained_largest = float(packaged(torch.from_numpy(clips), torch.tensor([0, 1, 2]))[1].abs().max())
        model.backbone.fc.weight *= 50 / trained_largest
        model.backbone.fc.bias *= 50 / trained_largest
    export_onnx(packaged, tmp_path / "m.onnx", 8, 56)
    parity = check_parity(packaged, tmp_path / "m.onnx", clips, "OLR")
    with torch.no_grad():
        largest = float(packaged(torch.from_numpy(clips), torch.tensor([0, 1, 2]))[1].abs().max())
    assert largest > 20 and parity.atol == pytest.approx(ATOL * largest, rel=1e-4)


def test_card_notes_and_synthetic_training_data(trained, tmp_path, capsys):
    from training.schemes import save_view_model

    model, meta = load_view_model(trained / "sbml" / "final" / "model.pt")
    save_view_model(tmp_path / "synthetic.pt", model, meta["labels"], {**meta["extra"], "synthetic": True})
    (tmp_path / "notes.md").write_text("## How this package was made\n\nBy `make_it.sh`, from scratch.\n")
    status, _, err = _cli(capsys, "--checkpoint", tmp_path / "synthetic.pt", "--out", tmp_path / "pkg", "--notes",
                          tmp_path / "notes.md")
    assert status == 0, err
    cfg = json.loads((tmp_path / "pkg" / "config.json").read_text())
    assert cfg["synthetic"] and cfg["training_data"].startswith("synthetic clips in the layout of SMIC-HS")
    card = (tmp_path / "pkg" / "README.md").read_text()
    assert "Leave-one-subject-out on a synthetic copy of SMIC-HS" in card and "synthetic-data demo weights" in card
    assert "| pre-training | scratch |" in card  # trained from scratch: no weights file to name
    # the notes are sections of the card of their own, after the results and before the usage
    assert (card.index("## Results") < card.index("## How this package was made\n\nBy `make_it.sh`")
            < card.index("## How to use"))
    status, _, err = _cli(capsys, "--checkpoint", tmp_path / "synthetic.pt", "--out", tmp_path / "x", "--notes",
                          tmp_path / "nope.md")
    assert status == 2 and "--notes" in err and "Traceback" not in err


def _conv_graph(path, conv: torch.nn.Module, shape) -> None:
    torch.onnx.export(torch.nn.Sequential(conv.eval().requires_grad_(False)), (torch.randn(shape),), str(path),
                      input_names=["x"], output_names=["y"], opset_version=17, dynamo=False,
                      dynamic_axes={"x": {0: "n", 2: "t"}, "y": {0: "n", 2: "t"}} if len(shape) == 5 else None)


@pytest.mark.parametrize("kt, pad_t, bias", [(7, 3, False), (3, 1, True), (5, 0, True)])
def test_folded_stem_computes_the_same_convolution(tmp_path, kt, pad_t, bias):
    import onnx

    from export.package import fold_temporal_stem

    torch.manual_seed(kt)
    conv = torch.nn.Conv3d(3, 16, (kt, 7, 7), stride=(1, 2, 2), padding=(pad_t, 3, 3), bias=bias)
    _conv_graph(tmp_path / "a.onnx", conv, (2, 3, 9, 30, 30))
    model = onnx.load(str(tmp_path / "a.onnx"))
    assert fold_temporal_stem(model)
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(tmp_path / "b.onnx"))
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    kernel = convs[0].attribute[[a.name for a in convs[0].attribute].index("kernel_shape")]
    assert len(convs) == 1 and list(kernel.ints) == [1, 7, 7]
    assert [i.dims for i in model.graph.initializer if i.name == convs[0].input[1]] == [[16, 3 * kt, 1, 7, 7]]
    x = torch.randn(2, 3, 11, 30, 30).numpy() * 60  # another clip length than the traced one: the slices follow it
    with torch.no_grad():
        ref = conv(torch.from_numpy(x)).numpy()
    got = _ort(tmp_path / "b.onnx").run(None, {"x": x})[0]
    assert got.shape == ref.shape
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())


@pytest.mark.parametrize("conv, shape", [
    (torch.nn.Conv3d(3, 8, (3, 7, 7), stride=(2, 2, 2), padding=(1, 3, 3)), (1, 3, 8, 20, 20)),  # temporal stride
    (torch.nn.Conv3d(4, 8, (3, 3, 3), padding=1, groups=2), (1, 4, 8, 20, 20)),  # grouped
    (torch.nn.Conv3d(3, 8, (1, 7, 7), padding=(0, 3, 3)), (1, 3, 8, 20, 20)),  # nothing to fold
    (torch.nn.Conv2d(3, 8, 7, padding=3), (1, 3, 20, 20)),  # 2D
])
def test_folding_leaves_other_convolutions_alone(tmp_path, conv, shape):
    import onnx

    from export.package import fold_temporal_stem

    _conv_graph(tmp_path / "a.onnx", conv, shape)
    model = onnx.load(str(tmp_path / "a.onnx"))
    before = model.SerializeToString()
    assert not fold_temporal_stem(model)
    assert model.SerializeToString() == before


def _stem_kernel(path: Path, clips: np.ndarray) -> str:
    """OpenVINO's kernel for the graph's first convolution, from its per-node profile."""
    import openvino as ov

    core = ov.Core()
    model = core.read_model(str(path))
    feeds = {"clips": clips, "views": np.array([0, 1, 2], np.int64)}
    model.reshape({k: v.shape for k, v in feeds.items()})
    compiled = core.compile_model(model, "CPU", {"PERF_COUNT": True, "INFERENCE_PRECISION_HINT": "f32"})
    request = compiled.create_infer_request()
    request.infer(feeds)
    return next(p.exec_type for p in request.profiling_info if p.node_type == "Convolution")


def test_int8_stem_choice(trained, smic_heldout_cache, clips, tmp_path):
    """--int8-stem int8 gives OpenVINO an int8 kernel for the first convolution (3 channels have none); float keeps it
    in float; the config says which, with its agreement with fp32."""
    clips = clips[:1]
    kernels = {}
    for stem in ("int8", "float"):
        cfg = export_package(trained / "sbml" / "final" / "model.pt", tmp_path / stem, int8=True,
                             calibrate=str(smic_heldout_cache), log=lambda *_: None, int8_stem=stem)
        int8 = cfg.variants["int8"]
        assert int8.stem == stem and int8.agreement["clips"] == 16 and 0 <= int8.agreement["max_abs_prob_diff"] < 1
        kernels[stem] = _stem_kernel(tmp_path / stem / "model.int8.onnx", clips)
    assert kernels["int8"].endswith("I8") and not kernels["float"].endswith("I8"), kernels
    with pytest.raises(InputError, match="--int8-stem must be"):
        export_package(trained / "sbml" / "final" / "model.pt", tmp_path / "x", int8=True,
                       calibrate=str(smic_heldout_cache), log=lambda *_: None, int8_stem="int4")


@pytest.mark.parametrize("reachable", [True, False])
def test_int8_stem_auto_keeps_int8_only_within_the_targets(trained, smic_heldout_cache, tmp_path, monkeypatch,
                                                            reachable):
    import export.package

    monkeypatch.setitem(export.package.VARIANT_TARGETS, "top1_agreement", 0.0 if reachable else 1.01)
    lines = []
    cfg = export_package(trained / "sbml" / "final" / "model.pt", tmp_path / "pkg", int8=True,
                         calibrate=str(smic_heldout_cache), log=lines.append)
    tried = [line.split("(")[1].split(" ")[0] for line in lines if line.startswith("model.int8.onnx (")]
    assert tried == (["int8"] if reachable else ["int8", "float"]), lines
    assert cfg.variants["int8"].stem == tried[-1]
    assert cfg.variants["int8"].agreement["meets_target"] is reachable
    assert reachable or any(line.startswith("warning: model.int8.onnx misses the targets") for line in lines), lines


def test_an_int8_stem_that_cannot_fold_is_reported_as_float(tmp_path):
    from export.package import make_int8

    class Clips(torch.nn.Module):  # uint8 clips in, like a package's graph; a stem with a temporal stride
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv3d(3, 8, (3, 3, 3), stride=(2, 1, 1), padding=1)

        def forward(self, clips):
            return self.conv(clips.permute(0, 4, 1, 2, 3).float() / 255).mean((2, 3, 4))

    torch.onnx.export(Clips().eval(), (torch.zeros(1, 6, 16, 16, 3, dtype=torch.uint8),), str(tmp_path / "m.onnx"),
                      input_names=["clips"], output_names=["probs"], opset_version=17, dynamo=False)
    calib = np.random.default_rng(0).integers(0, 255, (4, 6, 16, 16, 3), dtype=np.uint8)
    assert make_int8(tmp_path / "m.onnx", tmp_path / "q.onnx", calib, False, "O", stem="int8") == "float"
    assert make_int8(tmp_path / "m.onnx", tmp_path / "q.onnx", calib, False, "O", stem="float") == "float"
