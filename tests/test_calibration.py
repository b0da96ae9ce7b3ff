"""Probabilities you can trust (inference/calibration.py, export/calibrate.py): the temperature fitted on out-of-
subject predictions, the expected calibration error and reliability bins, the package field, the temperature applied
once in Predictor.classify (so the pipeline, the batch rows and the demo get it), "uncertain" below the floor, and a
fold ensemble's spread."""

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from inference.calibration import Calibration, ece, fit_temperature, fold_spread, nll, reliability, scale
from inference.errors import InputError
from inference.package import ModelPackage

ROOT = Path(__file__).resolve().parent.parent
DEFAULT = ROOT / "demo" / "default_model"
EXAMPLE = ROOT / "examples" / "astronaut.mp4"


def _overconfident(n=3000, k=3, t_true=2.5, seed=0):
    """Clips whose labels follow softmax(z) while the model says softmax(z · t_true): over-confident by t_true."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 1.5, (n, k))
    p_true = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    y = np.array([rng.choice(k, p=p) for p in p_true])
    said = np.exp(z * t_true) / np.exp(z * t_true).sum(1, keepdims=True)
    return said, y


def test_temperature_is_fitted_by_nll_and_lowers_the_ece():
    probs, y = _overconfident()
    t = fit_temperature(probs, y)
    assert t == pytest.approx(2.5, rel=0.1)
    assert nll(scale(probs, t), y) < nll(probs, y)
    for other in (t * 0.8, t * 1.25):  # a minimum of the NLL
        assert nll(scale(probs, t), y) <= nll(scale(probs, other), y)
    assert ece(scale(probs, t), y) < 0.5 * ece(probs, y)
    assert np.array_equal(scale(probs, t).argmax(1), probs.argmax(1))  # the top class never changes
    under, y2 = _overconfident(t_true=0.5, seed=1)
    assert fit_temperature(under, y2) == pytest.approx(0.5, rel=0.1)


def test_reliability_bins_and_ece_by_hand():
    probs = np.array([[0.95, 0.05], [0.9, 0.1], [0.6, 0.4], [0.3, 0.7]])
    y = np.array([0, 1, 0, 1])
    bins = reliability(probs, y, bins=5)
    assert [b["clips"] for b in bins] == [0, 0, 1, 1, 2]
    assert bins[4]["confidence"] == pytest.approx(0.925) and bins[4]["accuracy"] == 0.5
    assert ece(probs, y, bins=5) == pytest.approx((abs(1 - 0.6) + abs(1 - 0.7) + 2 * abs(0.5 - 0.925)) / 4)
    with pytest.raises(InputError, match="one class index per row"):
        ece(probs, np.array([0, 1, 2, 0]))


def test_calibration_record_and_package_field():
    probs, y = _overconfident(n=500)
    cal = Calibration.fit(probs, y, "held-out", floor=0.6)
    assert cal.clips == 500 and cal.ece_after < cal.ece_before and cal.nll_after < cal.nll_before
    assert len(cal.reliability["before"]) == len(cal.reliability["after"]) == cal.bins
    low = scale(probs, cal.temperature).max(1) < 0.6
    assert cal.below_floor["share"] == pytest.approx(low.mean(), abs=1e-4)
    assert Calibration.from_json(json.loads(json.dumps(cal.to_json()))) == cal
    data = json.loads((DEFAULT / "config.json").read_text())
    assert ModelPackage.from_json(data).calibration is None  # a package without one reads as before
    data["calibration"] = cal.to_json()
    pkg = ModelPackage.from_json(data)
    assert pkg.calibration == cal and ModelPackage.from_json(pkg.to_json()).calibration == cal
    for bad in ({"floor": 0.5}, {"temperature": 0.0}, {"temperature": 1.0, "floor": 1.5}):
        with pytest.raises(InputError, match="calibration|temperature|floor"):
            ModelPackage.from_json({**data, "calibration": bad})


def _package_with(tmp_path, calibration: Calibration, name="cal") -> Path:
    folder = tmp_path / name
    shutil.copytree(DEFAULT, folder)
    data = json.loads((folder / "config.json").read_text())
    data["calibration"] = calibration.to_json()
    (folder / "config.json").write_text(json.dumps(data))
    return folder


def test_the_temperature_is_applied_once_for_every_entry_point(tmp_path):
    """The real default package, with and without a temperature, on the same prepared clip: Predictor.classify
    (the path of the pipeline, the batch command and the demo) scales the fused and the per-view probabilities, and
    the verdict says "uncertain" below the floor."""
    from demo.app import card_facts, verdict_markdown
    from inference.__main__ import main
    from inference.recognise import Recogniser
    from inference.runtime import Predictor

    raw = Predictor(DEFAULT, device="cpu", engine="onnxruntime")
    prepared = raw.prepare(EXAMPLE)
    base = raw.classify([prepared])[0]
    assert not base.calibrated and not base.uncertain and "uncertain" not in verdict_markdown(base, {
        k: float(p) for k, p in zip(base.labels, base.probs)})
    floor = float(scale(base.probs, 3.0).max()) + 0.01  # just above this clip's calibrated confidence
    hot = Predictor(_package_with(tmp_path, Calibration(temperature=3.0, floor=floor)), device="cpu",
                    engine="onnxruntime")
    pred = hot.classify([prepared])[0]
    assert pred.calibrated and pred.top == base.top
    np.testing.assert_allclose(pred.probs, scale(base.probs, 3.0), atol=1e-5)
    for v in base.per_view:
        np.testing.assert_allclose(pred.per_view[v], scale(base.per_view[v], 3.0), atol=1e-5)
    assert pred.uncertain and pred.verdict == f"uncertain ({base.top}?)"
    row = pred.as_dict()
    assert row["uncertain"] is True and row["confidence_floor"] == pytest.approx(floor) and row["calibrated"]
    text = verdict_markdown(pred, {k: float(p) for k, p in zip(pred.labels, pred.probs)})
    assert "**uncertain**" in text and "confidence floor" in text
    assert "| calibration | temperature 3 " in card_facts(hot, str(hot.folder))
    assert "| calibration |" not in card_facts(raw, str(DEFAULT))
    whole = Recogniser(hot, mode="whole")(EXAMPLE).whole  # the pipeline: the same numbers
    np.testing.assert_allclose(whole.probs, pred.probs, atol=1e-5)
    assert whole.uncertain
    out = tmp_path / "rows.csv"
    assert main(["--model", str(hot.folder), "--input", str(EXAMPLE), "--output", str(out), "--workers", "0",
                 "--device", "cpu", "--engine", "onnxruntime", "--mode", "whole"]) == 0
    r = next(csv.DictReader(out.open()))
    assert r["uncertain"] == "True" and float(r["confidence_floor"]) == pytest.approx(floor)
    np.testing.assert_allclose([float(r[f"prob_{k}"]) for k in pred.labels], pred.probs, atol=1e-5)


def _fold_graph(path: Path, n_frames: int, side: int, k: int, folds: int) -> None:
    """A small real ONNX graph in the fold-package layout: ``fold_probs`` (F, N, K) — each fold a softmax of a linear
    map of the clip's mean grey level — their mean ``probs`` (N, K) and ``view_logits`` (1, N, K)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(3)
    nodes = [helper.make_node("Cast", ["clips"], ["x"], to=TensorProto.FLOAT),
             helper.make_node("ReduceMean", ["x"], ["m"], axes=[1, 2, 3, 4], keepdims=0),
             helper.make_node("Unsqueeze", ["m", "ax1"], ["m2"]),
             helper.make_node("Div", ["m2", "c255"], ["m3"])]
    inits = [numpy_helper.from_array(np.array([1], np.int64), "ax1"),
             numpy_helper.from_array(np.array([0], np.int64), "ax0"),
             numpy_helper.from_array(np.array(255.0, np.float32), "c255")]
    for f in range(folds):
        inits += [numpy_helper.from_array(rng.normal(0, 4, (1, k)).astype(np.float32), f"w{f}"),
                  numpy_helper.from_array(rng.normal(0, 1, (k,)).astype(np.float32), f"b{f}")]
        nodes += [helper.make_node("MatMul", ["m3", f"w{f}"], [f"l{f}"]),
                  helper.make_node("Add", [f"l{f}", f"b{f}"], [f"z{f}"]),
                  helper.make_node("Softmax", [f"z{f}"], [f"p{f}"], axis=-1),
                  helper.make_node("Unsqueeze", [f"p{f}", "ax0"], [f"q{f}"])]
    nodes += [helper.make_node("Concat", [f"q{f}" for f in range(folds)], ["fold_probs"], axis=0),
              helper.make_node("ReduceMean", ["fold_probs"], ["probs"], axes=[0], keepdims=0),
              helper.make_node("Log", ["probs"], ["lp"]),
              helper.make_node("Unsqueeze", ["lp", "ax0"], ["view_logits"])]
    graph = helper.make_graph(
        nodes, "folds",
        [helper.make_tensor_value_info("clips", TensorProto.UINT8, ["N", n_frames, side, side, 3]),
         helper.make_tensor_value_info("views", TensorProto.INT64, ["V"])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", k]),
         helper.make_tensor_value_info("view_logits", TensorProto.FLOAT, [1, "N", k]),
         helper.make_tensor_value_info("fold_probs", TensorProto.FLOAT, [folds, "N", k])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def test_a_fold_ensemble_is_calibrated_fold_by_fold_and_shows_its_spread(tmp_path):
    from inference.runtime import Predictor

    folder = _package_with(tmp_path, Calibration(temperature=2.0, floor=0.4), "folds")
    data = json.loads((folder / "config.json").read_text())
    data.update(outputs=["probs", "view_logits", "fold_probs"], test_views="O")
    (folder / "config.json").write_text(json.dumps(data))
    for f in folder.glob("model.*onnx"):
        f.unlink()
    _fold_graph(folder / "model.onnx", data["n_frames"], data["input"]["height"], len(data["labels"]), 4)
    predictor = Predictor(folder, device="cpu", engine="onnxruntime")
    rng = np.random.default_rng(0)
    clip = rng.integers(0, 255, (1, data["n_frames"], 64, 64, 3), dtype=np.uint8)
    probs, _, folds = predictor.run_folds(clip, "O")
    assert folds.shape == (4, 1, len(data["labels"]))
    from inference.preprocess import PreparedClip

    prepared = PreparedClip(clip[0], {"faces_seen": 1}, {}, "noise", None)
    pred = predictor.classify([prepared], "O")[0]
    expected = scale(folds[:, 0], 2.0)
    np.testing.assert_allclose(pred.fold_probs, expected, atol=1e-6)
    np.testing.assert_allclose(pred.probs, expected.mean(0), atol=1e-6)
    np.testing.assert_allclose(pred.spread, expected.std(0), atol=1e-6)
    assert pred.spread.max() > 0.01  # the folds disagree
    row = pred.as_dict()
    assert set(row["fold_spread"]) == set(pred.labels)
    assert fold_spread(None) is None and fold_spread(expected[:1]) is None


def test_export_fits_on_the_runs_out_of_subject_predictions(tmp_path):
    """A LOSO run's layout (predictions.csv and results.json as training.report writes them; a fold's and a --final
    checkpoint's place in it): the calibration comes from the pooled out-of-fold predictions, the reliability
    diagram is a PNG, and the card says what the temperature, the ECE and the floor are."""
    import cv2

    from export.calibrate import card_section, loso_calibration, read_predictions, reliability_figure, run_folder

    labels = ["negative", "positive", "surprise"]
    run = tmp_path / "run"
    (run / "folds" / "subject_1").mkdir(parents=True)
    (run / "final").mkdir()
    probs, y = _overconfident(n=300)
    with (run / "predictions.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["subject", "clip", "label", "pred", "fold", *[f"score_{k}" for k in labels]])
        for i, (p, t) in enumerate(zip(probs, y)):
            w.writerow([1 + i % 5, f"c{i}", labels[t], labels[int(p.argmax())], i % 5, *np.round(p, 6)])
    (run / "results.json").write_text(json.dumps({"uf1": 0.5, "selection": "last"}))
    for ckpt in (run / "folds" / "subject_1" / "model.pt", run / "final" / "model.pt"):
        assert run_folder(ckpt) == run.resolve()
    assert run_folder(tmp_path / "elsewhere" / "model.pt") is None
    cal = loso_calibration(run / "final" / "model.pt", labels, floor=0.55)
    got, got_y = read_predictions(run / "predictions.csv", labels)
    assert np.array_equal(got_y, y) and cal.clips == 300
    assert cal.temperature == pytest.approx(fit_temperature(got, got_y), rel=1e-3)
    assert cal.ece_after < cal.ece_before and "held its subject out" in cal.source
    png = reliability_figure(cal, tmp_path / "reliability.png")
    img = cv2.imread(str(png))
    assert img is not None and img.shape[0] > 200 and img.std() > 10
    text = card_section(cal)
    assert f"T = {cal.temperature:g}" in text and f"{cal.ece_before} before, {cal.ece_after} after" in text
    assert "Confidence floor: 0.55" in text
    assert "No calibration" in card_section(None)
    with pytest.raises(InputError, match="score_negative"):
        read_predictions(run / "predictions.csv", ["negative", "other"])
