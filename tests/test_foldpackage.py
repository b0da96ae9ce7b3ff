"""Published weights served, and packages scored: STSTNet's per-fold files (synthetic stand-ins written with
torch.save in the authors' key layout) converted to a fold package, which ONNX Runtime and OpenVINO run on a
synthetic composite flow-image set written in the published conventions (u, v, strain in the PNG's R, G, B) exactly
as the authors' own three-stream network fed the ``cv2.imread`` array does; a LOSO run's fold export and
``python -m inference.evaluate`` agree with the run's own predictions to the clip."""

import csv
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from export.convert import convert_ststnet
from export.convert import main as convert_main
from inference import evaluate as ev
from inference.errors import InputError
from inference.flowset import IMAGE_DIR
from training.models import create_model
from training.models.checkpoint import load_pretrained
from training.models.ststnet import AuthorsSTSTNet
from training.synth.flowset import write_flowset

ROOT = Path(__file__).resolve().parent.parent
SUBJECTS = {"s01": 1001, "s02": 1002, "sub01": 2001, "sub02": 2002, "006": 3006, "007": 3007}


def authors_file(path: Path, seed: int) -> dict:
    """A random fold file in the authors' layout (their STSTNet's state_dict, BN statistics drawn too)."""
    torch.manual_seed(seed)
    net = AuthorsSTSTNet()
    with torch.no_grad():
        for i in (1, 2, 3):
            bn = getattr(net, f"bn{i}")
            bn.running_mean.uniform_(0, 40)
            bn.running_var.uniform_(50, 400)
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.uniform_(-0.5, 0.5)
    sd = net.state_dict()
    torch.save(sd, path)
    return sd


@pytest.fixture(scope="module")
def flow_set(tmp_path_factory):
    root = tmp_path_factory.mktemp("flowset") / "set"
    write_flowset(root, subjects=2, clips_per_subject=3, seed=4, frame_size=(120, 160), n_frames=(6, 8), crop=32,
                  method="farneback")
    return root


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    folder = tmp_path_factory.mktemp("weights") / "STSTNet_Weights"
    folder.mkdir()
    return folder, {name: authors_file(folder / f"{name}.pth", k) for k, name in enumerate(SUBJECTS)}


@pytest.fixture(scope="module")
def package(weights, tmp_path_factory):
    out = tmp_path_factory.mktemp("pkg") / "ststnet-folds"
    convert_ststnet(weights[0], out, log=lambda *_: None)
    return out


def authors_probs(state: dict, image_bgr: np.ndarray) -> np.ndarray:
    """The authors' way: their network, the cv2.imread array as float 0–255 (B, G, R), no scaling."""
    net = AuthorsSTSTNet()
    net.load_state_dict(state)
    net.eval()
    with torch.no_grad():
        return net(torch.from_numpy(image_bgr).permute(2, 0, 1).float()[None]).softmax(-1)[0].numpy()


def test_converted_folds_give_the_authors_outputs_through_both_runtimes(weights, package, flow_set, tmp_path):
    folder, states = weights
    config = json.loads((package / "config.json").read_text())
    assert config["folds"]["subjects"] == sorted(SUBJECTS.values())
    assert config["input"]["kind"] == "flow_image_bgr" and config["input"]["color"] == "strain,v,u"
    assert config["normalisation"]["pixel_scale"] == 255.0 and config["normalisation"]["mean"] == [0.0] * 3
    card = (package / "README.md").read_text()
    for name in SUBJECTS:
        assert f"| {name}.pth |" in card
    assert "not redistributed" in card and "0.7209" in card and "christy1206/STSTNet" in card
    from inference.files import file_sha256

    assert file_sha256(folder / "sub02.pth") in card
    rows = list(csv.DictReader(open(next(flow_set.glob("*.csv")))))
    for engine in ("onnxruntime", "openvino"):
        report = ev.evaluate(package, flow_set, tmp_path / engine, engine=engine, log=lambda *_: None)
        assert report["engine"] == engine and report["n"] == 18 and not report["skipped"]
        for row, clip in zip(rows, report["clips"]):
            image = cv2.imread(str(flow_set / IMAGE_DIR / f"{row['sub']}_{row['filename_o']} .png"))
            want = authors_probs(states[row["sub"]], image)
            assert clip["fold"] == row["sub"] and clip["subject"] == SUBJECTS[row["sub"]]
            np.testing.assert_allclose(clip["probs"], want, atol=2e-5)
        written = json.loads((tmp_path / engine / "evaluation.json").read_text())
        assert written["overall"] == report["overall"] and set(written["per_dataset"]) == {"smic", "casme2", "samm"}
        assert (tmp_path / engine / "evaluation.md").read_text().startswith("# ")
        picture = cv2.imread(str(tmp_path / engine / "confusion.png"))
        assert picture is not None and picture.shape[0] > 200


def test_the_scores_are_training_s(package, flow_set):
    """evaluate's UF1 / UAR / WAR are training.metrics' on the same predictions."""
    from training.metrics import scores

    report = ev.evaluate(package, flow_set, engine="onnxruntime", log=lambda *_: None)
    labels = report["labels"]
    truth = [labels.index(c["label"]) for c in report["clips"]]
    pred = [labels.index(c["pred"]) for c in report["clips"]]
    want = scores(truth, pred, 3)
    assert report["overall"]["confusion"] == want["confusion"] and len(set(pred)) > 1
    for k in ("uf1", "uar", "war"):
        assert report["overall"][k] == pytest.approx(want[k])
    for k in ("f1", "recall", "support"):
        assert report["overall"]["per_class"][k] == pytest.approx(want["per_class"][k])


def test_bad_fold_files_are_refused_naming_the_key_and_the_file(weights, tmp_path, capsys):
    folder, states = weights
    cases = {
        "missing": ({k: v for k, v in states["s01"].items() if k != "bn2.running_var"}, "s01", "'bn2.running_var'"),
        "extra": ({**states["s01"], "conv4.weight": torch.zeros(1)}, "s01", "'conv4.weight'"),
        "shape": ({**states["s01"], "fc.weight": torch.zeros(3, 399)}, "s01", "'fc.weight' has shape (3, 399)"),
    }
    for case, (sd, name, says) in cases.items():
        bad = tmp_path / case
        bad.mkdir()
        torch.save(sd, bad / f"{name}.pth")
        with pytest.raises(InputError, match="pth") as err:
            convert_ststnet(bad, tmp_path / "out", log=lambda *_: None)
        assert says in str(err.value) and str(bad / f"{name}.pth") in str(err.value), case
    unknown = tmp_path / "unknown"
    unknown.mkdir()
    shutil.copy(folder / "s01.pth", unknown / "x01.pth")
    assert convert_main(["ststnet", str(unknown), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "x01.pth" in err and "names no subject" in err and "Traceback" not in err
    twice = tmp_path / "twice"
    twice.mkdir()
    shutil.copy(folder / "s01.pth", twice / "s01.pth")
    shutil.copy(folder / "s01.pth", twice / "s1.pth")
    with pytest.raises(InputError, match="subject 1001 .* has a fold file already"):
        convert_ststnet(twice, tmp_path / "out", log=lambda *_: None)
    assert not (tmp_path / "out").exists()


def test_load_pretrained_reads_the_authors_files_and_refuses_a_classifier_alone(weights, flow_set, tmp_path):
    folder, states = weights
    model = create_model("ststnet", 3).eval()
    report = load_pretrained(model, folder / "sub01.pth")
    assert not report["missing"] and not report["head_replaced"]
    image = cv2.imread(str(next((flow_set / IMAGE_DIR).glob("*.png"))))
    with torch.no_grad():
        got = model(torch.from_numpy(image).permute(2, 0, 1).float()[None, :, None]).softmax(-1)[0].numpy()
    np.testing.assert_allclose(got, authors_probs(states["sub01"], image), atol=1e-5)
    torch.save({"fc.weight": torch.zeros(3, 400), "fc.bias": torch.zeros(3)}, tmp_path / "fc.pth")
    for strict in (True, False):
        with pytest.raises(InputError, match="none of its weights fit the backbone|does not fit"):
            load_pretrained(create_model("ststnet", 3), tmp_path / "fc.pth", strict_backbone=strict)


def test_a_set_in_the_wrong_channel_order_is_refused_naming_the_likely_order(flow_set, tmp_path, package):
    from training.cache import Cache

    wrong = tmp_path / "wrong"
    shutil.copytree(flow_set, wrong)
    for p in (wrong / IMAGE_DIR).glob("*.png"):
        cv2.imwrite(str(p), cv2.imread(str(p))[..., ::-1])  # u, v, strain in B, G, R: the old writer's order
    for read in (lambda: Cache.open(wrong), lambda: ev.evaluate(package, wrong, log=lambda *_: None)):
        with pytest.raises(InputError, match=r"likely order as OpenCV reads the files is u, v, strain"):
            read()


@pytest.mark.parametrize("config", ["ststnet.yaml", "ststnet_fsb_OLR.yaml", "ststnet_sbml_OLR.yaml"])
def test_a_loso_run_and_evaluate_on_its_fold_export_agree_to_the_clip(flow_set, tmp_path, config):
    """Plain STSTNet and FSB-OLR (its three views' features through one fused head), both trained fold-batched."""
    from export.__main__ import main as export_main
    from training.config import load_config
    from training.loso import run

    cfg = load_config(ROOT / "training" / "configs" / "peers" / config,
                      [f"data.caches=[{flow_set}]", f"out={tmp_path / 'run'}", "epochs=2", "batch_size=8",
                       "device=cpu"])
    results = run(cfg, log=lambda *_: None, progress=False)
    assert export_main(["--folds", str(tmp_path / "run"), "--out", str(tmp_path / "pkg"), "--serve-flow", "tvl1",
                        "--face-crop", "64"]) == 0
    config = json.loads((tmp_path / "pkg" / "config.json").read_text())
    assert config["folds"]["subjects"] == sorted(SUBJECTS.values()) and config["loso"]["uf1"] == results["uf1"]
    # its temperature: fitted on the run's pooled out-of-fold predictions, with the diagram and the card's section
    from inference.calibration import Calibration, ece, nll

    with open(tmp_path / "run" / "predictions.csv") as f:
        ran = {r["clip"]: r for r in csv.DictReader(f)}
    labels = config["labels"]
    oof = np.array([[float(r[f"score_{c}"]) for c in labels] for r in ran.values()])
    oof_y = np.array([labels.index(r["label"]) for r in ran.values()])
    want = Calibration.fit(oof, oof_y)
    cal = config["calibration"]
    assert cal["temperature"] == want.temperature and cal["clips"] == 18 and cal["figure"] == "reliability.png"
    assert (cal["ece_before"], cal["ece_after"]) == (want.ece_before, want.ece_after)
    assert cv2.imread(str(tmp_path / "pkg" / "reliability.png")) is not None
    assert f"**T = {want.temperature:g}**" in (tmp_path / "pkg" / "README.md").read_text()
    report = ev.evaluate(tmp_path / "pkg", flow_set, engine="onnxruntime", log=lambda *_: None)
    assert len(ran) == report["n"] == 18
    for clip in report["clips"]:  # as served: the run's probabilities through the package's temperature
        mine = ran[clip["clip"]]
        assert (clip["pred"], clip["subject"]) == (mine["pred"], int(mine["subject"])), clip["clip"]
        np.testing.assert_allclose(clip["probs"], want.apply([float(mine[f"score_{c}"]) for c in labels]),
                                   atol=1e-4)
    served = want.apply(oof)
    assert report["calibration"]["served"]["ece"] == pytest.approx(ece(served, oof_y), abs=2e-4)
    assert report["calibration"]["uncalibrated"]["nll"] == pytest.approx(nll(oof, oof_y), abs=2e-4)
    for k in ("uf1", "uar", "war"):
        assert report["overall"][k] == pytest.approx(results[k], abs=1e-9)
    if config == "ststnet.yaml":  # served on other views than the run's: no temperature, a card that says so
        assert export_main(["--folds", str(tmp_path / "run"), "--out", str(tmp_path / "olr"), "--views", "OLR",
                            "--serve-flow", "tvl1", "--face-crop", "64"]) == 0
        olr = json.loads((tmp_path / "olr" / "config.json").read_text())
        assert olr["test_views"] == "OLR" and olr.get("calibration") is None and not (tmp_path / "olr" /
                                                                                       "reliability.png").exists()
        assert "This figure is the run's on test views O; the package serves views OLR" in olr["loso"]["warning"]
        assert "This figure is the run's on test views O" in (tmp_path / "olr" / "README.md").read_text()
    if "fsb" in config:  # FSB-OLR folds fuse their own three views in the graph, in serving too; no other views
        from inference.package import ModelPackage
        from inference.runtime import Predictor

        pkg = ModelPackage.load(tmp_path / "pkg")
        assert pkg.test_views == "OLR" and not pkg.views_outside
        clips, rows, _ = ev.read_set(flow_set, pkg)
        predictor = Predictor(tmp_path / "pkg", device="cpu", engine="onnxruntime")
        _, _, folds = predictor.run_folds(clips)
        np.testing.assert_allclose(folds, ev.fold_probabilities(predictor.session, pkg, clips, "OLR"), atol=1e-6)
        with pytest.raises(InputError, match="FSB: it always classifies the views OLR together"):
            ev.evaluate(tmp_path / "pkg", flow_set, engine="onnxruntime", log=lambda *_: None, views="O")


def test_the_fold_bench_prints_both_targets(package, flow_set, capsys):
    from tools.bench.folds import main

    assert main(["--model", str(package), "--data", str(flow_set), "--repeat", "2"]) == 0
    out = capsys.readouterr().out
    assert "6 fold(s)" in out and "evaluate   onnxruntime  18 clips" in out and "1 interval onnxruntime" in out
    assert "target ≤ 50 ms" in out and "target ≤ 10 s" in out


def aligned_clip(size: int = 112, seed: int = 3) -> np.ndarray:
    """A synthetic aligned face clip (T, S, S, 3) uint8: a smooth texture whose lower half moves right by the apex."""
    rng = np.random.default_rng(seed)
    base = cv2.GaussianBlur(rng.uniform(0, 255, (size, size)).astype(np.float32), (0, 0), 3)
    base = cv2.normalize(base, None, 20, 235, cv2.NORM_MINMAX)
    frames = []
    for t in range(5):
        m = np.float32([[1, 0, 0.6 * t], [0, 1, 0.3 * t]])
        moved = cv2.warpAffine(base, m, (size, size), borderMode=cv2.BORDER_REFLECT)
        f = base.copy()
        f[size // 2:] = moved[size // 2:]
        frames.append(np.repeat(f[..., None], 3, -1))
    return np.clip(np.stack(frames), 0, 255).astype(np.uint8)


def test_a_clip_is_served_with_the_composite_recipe_in_the_authors_order_exactly_once(weights, package):
    """The converted package serves with megc2019-composite at its crop margin: the graph is fed the recipe's
    image in the authors' order (strain, v, u) — the same array as the recipe's u, v, strain image reversed,
    computed independently — and its folds answer as the authors' networks do on that array."""
    from dataclasses import replace

    import onnxruntime as ort

    from inference.package import ModelPackage
    from inference.recipe import recipe

    folder, states = weights
    pkg = ModelPackage.load(package)
    assert pkg.motion["kind"] == "flow_image_bgr" and pkg.motion["recipe"]["name"] == "megc2019-composite"
    assert pkg.motion["trained_on"]["method"] == "published"
    assert pkg.face_crop["margin"] == 0.25 == recipe("megc2019-composite").crop_margin
    frames = aligned_clip(int(pkg.face_crop["size"]))
    x, apex = pkg.build_input(frames, apex=4)
    assert apex == 4 and x.shape == (1, 28, 28, 3) and x.dtype == np.uint8
    uvs = replace(recipe("megc2019-composite"), channels=("u", "v", "strain")).image(frames[0], frames[4])
    want = uvs[..., ::-1]  # strain, v, u: the cv2.imread order of the published PNGs
    np.testing.assert_array_equal(x[0], want)
    assert not np.array_equal(want, uvs)  # the order matters on this clip
    session = ort.InferenceSession(str(package / "model.onnx"), providers=["CPUExecutionProvider"])
    _, fold_logits = session.run(None, {"clips": x[None]})
    names = pkg.folds.names
    for f, name in enumerate(names):
        np.testing.assert_allclose(np.exp(fold_logits[f, 0] - fold_logits[f, 0].max()) /
                                   np.exp(fold_logits[f, 0] - fold_logits[f, 0].max()).sum(),
                                   authors_probs(states[name], np.ascontiguousarray(want)), atol=2e-5)


def test_convert_calibrates_on_held_out_folds_only(weights, flow_set, tmp_path):
    """--calibrate-on: the temperature is fitted on each clip's held-out-fold prediction (the authors' network on
    it, computed here independently); a subject no fold held out (here: 007's file left out) is not used."""
    from inference.calibration import Calibration

    folder, states = weights
    partial = tmp_path / "w"
    partial.mkdir()
    for name in SUBJECTS:
        if name != "007":
            shutil.copy(folder / f"{name}.pth", partial / f"{name}.pth")
    out = tmp_path / "pkg"
    assert convert_main(["ststnet", str(partial), "--out", str(out), "--calibrate-on", str(flow_set),
                         "--confidence-floor", "0.6"]) == 0
    rows = [r for r in csv.DictReader(open(next(flow_set.glob("*.csv")))) if r["sub"] != "007"]
    probs = np.array([authors_probs(states[r["sub"]],
                                    cv2.imread(str(flow_set / IMAGE_DIR / f"{r['sub']}_{r['filename_o']} .png")))
                      for r in rows])
    want = Calibration.fit(probs, np.array([int(r["label"]) for r in rows]), floor=0.6)
    cal = json.loads((out / "config.json").read_text())["calibration"]
    assert cal["clips"] == 15 and "3 clips of subjects no fold held out left out" in cal["source"]
    assert cal["temperature"] == pytest.approx(want.temperature, rel=1e-3) and cal["floor"] == 0.6
    assert cal["ece_before"] == pytest.approx(want.ece_before, abs=1e-3)
    assert cv2.imread(str(out / "reliability.png")) is not None
    card = (out / "README.md").read_text()
    assert "## Calibration" in card and "Confidence floor: 0.6" in card and "![Reliability diagram]" in card
    report = ev.evaluate(out, flow_set, engine="onnxruntime", log=lambda *_: None)
    assert report["calibration"]["temperature"] == cal["temperature"]
    assert report["calibration"]["uncalibrated"]["ece"] != report["calibration"]["served"]["ece"]


def olr_by_hand(image: np.ndarray, zero: float) -> list[np.ndarray]:
    """O, L, R of one stored (strain, v, u) 28 px image, written out: the halves split at column 14, each mirrored
    into a whole image; in the mirrored half u (channel 2) becomes 2·zero − u, rounded and clipped to 0–255."""
    left, right = image[:, :14], image[:, 14:]
    out = [image]
    for kept, mirrored, first in ((left, left[:, ::-1].copy(), False), (right, right[:, ::-1].copy(), True)):
        u = mirrored[..., 2].astype(np.float64)
        mirrored[..., 2] = np.clip(np.rint(2 * zero - u), 0, 255).astype(np.uint8)
        out.append(np.concatenate([mirrored, kept] if first else [kept, mirrored], axis=1))
    return out


def test_olr_test_time_views_reflect_u_about_its_measured_zero(weights, package, flow_set):
    """evaluate --views OLR and serving's run_folds: each fold's probability is the mean of the authors' network on
    the O, L and R views, u reflected about the image's zero motion (the median of u over its central region, as the
    min-max scaling defines it)."""
    import onnxruntime as ort

    from inference.motion import FlowScaling, central
    from inference.package import ModelPackage
    from inference.runtime import Predictor

    folder, states = weights
    report = ev.evaluate(package, flow_set, engine="onnxruntime", log=lambda *_: None, views="OLR")
    plain = ev.evaluate(package, flow_set, engine="onnxruntime", log=lambda *_: None)
    assert report["views"] == "OLR" and "views OLR" in report["how"]
    rows = list(csv.DictReader(open(next(flow_set.glob("*.csv")))))
    region = central((28, 28), FlowScaling("minmax").zero_region)
    moved = 0
    for row, clip, o in zip(rows, report["clips"], plain["clips"]):
        image = cv2.imread(str(flow_set / IMAGE_DIR / f"{row['sub']}_{row['filename_o']} .png"))
        zero = float(np.median(image[region[0], region[1], 2].astype(np.float32)))
        want = np.mean([authors_probs(states[row["sub"]], v) for v in olr_by_hand(image, zero)], axis=0)
        np.testing.assert_allclose(clip["probs"], want, atol=2e-5)
        unreflected = [image] + [np.concatenate([image[:, :14], image[:, :14][:, ::-1]], 1),
                                 np.concatenate([image[:, 14:][:, ::-1], image[:, 14:]], 1)]
        wrong = np.mean([authors_probs(states[row["sub"]], np.ascontiguousarray(v)) for v in unreflected], axis=0)
        moved += not np.allclose(clip["probs"], wrong, atol=1e-4)
        assert not np.allclose(clip["probs"], o["probs"], atol=1e-6)
    assert moved == len(rows)  # reflecting u is not a no-op
    # serving takes the same path: the fold ensemble's views through Predictor.run_folds
    pkg = ModelPackage.load(package)
    clips, set_rows, _ = ev.read_set(flow_set, pkg)
    predictor = Predictor(package, device="cpu", engine="onnxruntime")
    probs, _, folds = predictor.run_folds(clips, "OLR")
    session = ort.InferenceSession(str(package / "model.onnx"), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(folds, ev.fold_probabilities(session, pkg, clips, "OLR"), atol=1e-5)
    np.testing.assert_allclose(probs, folds.mean(0), atol=1e-6)
    with pytest.raises(InputError, match="view set"):
        ev.evaluate(package, flow_set, engine="onnxruntime", log=lambda *_: None, views="OX")


def test_the_real_clip_check_serves_clips_named_as_the_set_s_rows(package, flow_set, tmp_path, capsys):
    """``python -m tools.check_real_clips`` (issue 27's local check on real clips): a clip named
    ``<dataset>_<sub>_<clip>`` after a row of the set is served as the batch command serves it; the tool reports the
    row's label, the served answer, the fold that held the clip's subject out, and per channel the correlation of the
    served flow image with the set's image of that clip — each recomputed here — and the same at a coded apex; a
    clip no row names is reported, not fatal."""
    import csv
    import shutil

    from inference.evaluate import read_set
    from inference.runtime import Predictor
    from tools.check_real_clips import channel_r, check, main

    row = next(r for r in csv.DictReader(next(flow_set.glob("*.csv")).open()) if r["dataset"] == "casme2")
    name = f"casme2_{row['sub']}_{row['filename_o']}"
    clips = tmp_path / "clips"
    clips.mkdir()
    shutil.copy(ROOT / "demo" / "examples" / "surprise.mp4", clips / f"{name}.mp4")
    shutil.copy(ROOT / "demo" / "examples" / "positive.mp4", clips / "casme2_sub99_EP99_99.mp4")
    coded = tmp_path / "coded.csv"
    coded.write_text(f"name,onset,apex\n{name},10,20\n")
    channels, results = check(str(package), str(flow_set), str(clips), coded=str(coded), engine="onnxruntime")
    assert channels == ("strain", "v", "u")
    item = next(i for i in results if i["name"] == name)
    assert next(i for i in results if i["name"] != name)["error"].startswith("no row of the set")
    predictor = Predictor(package, engine="onnxruntime")
    images, rows, _ = read_set(flow_set, predictor.package)
    at = next(i for i, r in enumerate(rows) if r["clip"] == f"casme2:{row['sub']}/{row['filename_o']}")
    pred = predictor.predict(clips / f"{name}.mp4")
    assert item["label"] == predictor.labels[rows[at]["label"]] and item["served"] == pred.top
    np.testing.assert_allclose(item["r"], channel_r(pred.motion[0], images[at, 0]))
    assert all(-1 <= r <= 1 for r in item["r"])
    fold = list(predictor.package.folds.subjects).index(rows[at]["subject"])
    np.testing.assert_allclose(list(item["held_out_fold"].values()), pred.fold_probs[fold], atol=1e-6)
    at_coded = predictor.classify([predictor.prepare(clips / f"{name}.mp4")], apexes=[10])[0]
    assert item["coded"]["apex"] == 10 and item["coded"]["served"] == at_coded.top
    np.testing.assert_allclose(item["coded"]["r"], channel_r(at_coded.motion[0], images[at, 0]))
    assert main(["--model", str(package), "--data", str(flow_set), "--clips", str(clips), "--coded", str(coded),
                 "--engine", "onnxruntime"]) == 0
    out = capsys.readouterr().out
    assert f"{name} [{item['label']}]: served {item['served']}" in out and "held-out fold:" in out
    assert "casme2_sub99_EP99_99: no row of the set" in out and "of 1 clips served" in out
