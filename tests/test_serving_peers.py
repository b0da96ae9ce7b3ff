"""Issues 15 and 17, serving and training leftovers for the peer systems: a flow-image package spots then recognises
each interval from its own onset → apex flow, the demo shows the motion input beside the face, late fusion's streams
start from their own weights files, and AU thresholds can be chosen on the training clips."""

import socket
from pathlib import Path

import numpy as np
import pytest

from inference import motion
from inference.runtime import Predictor
from inference.spotting import interval_iou
from inference.views import view_indices
from tests.helpers import calibrated
from tests.test_demo import SPOT_MICRO, spot_take
from tests.test_motion_package import CLIP, flow_cache, flow_model, flow_package, smic_data  # noqa: F401 — fixtures
from training.cache import Cache

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def take(tmp_path_factory) -> Path:
    """2.5 s of a synthetic face with a blink and one micro-expression at SPOT_MICRO (the demo test's recording)."""
    return spot_take(tmp_path_factory.mktemp("take") / "take.mp4")


@pytest.fixture(scope="module")
def flow_predictor(flow_package) -> Predictor:  # noqa: F811 — the imported fixture
    return Predictor(flow_package[0], device="cpu", engine="onnxruntime")


# ----------------------------------------------------------------------------- spot, then recognise, on flow
def test_a_flow_image_package_recognises_each_spotted_interval_from_its_onset_to_its_apex(
        flow_predictor, flow_package, flow_cache, take):  # noqa: F811 — the imported fixtures
    """Predictor.spot_and_classify on a recording with a flow-image package: each micro-expression's prediction is
    the ONNX graph's on the flow image from the interval clip's first frame to the spotted apex, made here with
    inference.motion from the same aligned frames."""
    import onnxruntime as ort

    result = flow_predictor.spot_and_classify(take, mode="spot")
    frames, first = result.prepared.frames, result.first_frame
    assert result.mode == "spot" and frames.shape[1:] == (56, 56, 3)
    micro = result.micro
    assert any(interval_iou((p.interval.onset + first, p.interval.offset + first), (SPOT_MICRO[0], SPOT_MICRO[2]))
               >= 0.5 for p in micro), [p.interval for p in micro]
    inputs = Cache.open(flow_cache).inputs
    session = ort.InferenceSession(str(flow_package[0] / "model.onnx"), providers=["CPUExecutionProvider"])
    for p in micro:
        pred = p.prediction
        np.testing.assert_array_equal(pred.aligned, frames[p.start:p.end + 1])  # the interval with its margin
        assert p.start < p.interval.onset and pred.apex == p.interval.apex - p.start  # the spotter's apex
        image = motion.flow_image(frames[p.start], frames[p.interval.apex], inputs["size"], inputs["method"],
                                  motion.FlowScaling.from_dict(inputs["scaling"]), inputs.get("params"))[None]
        np.testing.assert_array_equal(pred.motion, image)
        probs, _ = session.run(None, {"clips": image[None], "views": view_indices("OLR")})
        np.testing.assert_allclose(pred.probs, calibrated(flow_predictor, probs[0]), rtol=0, atol=1e-6)


# ----------------------------------------------------------------------------- the demo shows the motion input
def test_flow_colour_and_motion_sheet_known_answers():
    from demo.app import flow_colour, motion_sheet

    u = np.array([[2.0, -2.0, 0.0, 0.0, 1.0]])
    v = np.array([[0.0, 0.0, 2.0, 0.0, 0.0]])
    rgb = flow_colour(u, v, 2.0)[0].tolist()
    assert rgb[0] == [255, 0, 0] and rgb[1] == [0, 255, 255] and rgb[3] == [0, 0, 0]  # right: red, left: cyan
    assert rgb[2][0] > 100 and rgb[2][1] == 255 and rgb[2][2] == 0 and max(rgb[4]) in (127, 128)  # down: 90°; half
    image = np.zeros((1, 8, 8, 3), np.uint8)
    image[..., :2] = 128  # fixed scaling: zero motion at 128
    image[0, 2, 3] = (128 + 32, 128, 200)  # one pixel moving right by 2 px, with strain
    image[0, 5, 5] = (128, 128 - 16, 100)  # one moving up by 1 px
    sheet = motion_sheet(image, "flow_image", motion.FIXED.to_dict(), size=16, gap=2)
    assert sheet.shape == (34, 16, 3)
    assert sheet[2 * 2, 3 * 2].tolist() == [255, 0, 0] and sheet[0, 0].tolist() == [0, 0, 0]
    assert sheet[5 * 2, 5 * 2, 2] > 0 and sheet[5 * 2, 5 * 2].max() == 128  # half the largest motion
    assert sheet[18 + 2 * 2, 3 * 2].tolist() == [255] * 3 and sheet[18 + 5 * 2, 5 * 2].tolist() == [128] * 3
    grey_flow = np.stack([np.full((8, 8), 90, np.uint8), np.full((8, 8), 140, np.uint8),
                          np.full((8, 8), 128, np.uint8)], -1)[None].repeat(3, 0)
    sheet = motion_sheet(grey_flow, "grey_flow_clip", size=8, gap=2)
    assert sheet.shape == (18, 28, 3) and sheet[0, 0].tolist() == [255, 0, 0] and sheet[12, 12].tolist() == [90] * 3


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_demo_shows_the_flow_image_beside_the_face(flow_predictor, flow_package, take, tmp_path,  # noqa: F811
                                                       monkeypatch):
    """Through gradio_client: a motion package's page has /motion and /interval_motion; for a whole clip and for a
    spotted interval, the image is the prediction's flow image drawn by motion_sheet (png: exact)."""
    from gradio_client import Client, handle_file
    from PIL import Image

    from demo.app import build_app, launch, motion_sheet

    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    recipe = flow_package[1].motion  # how the flow image is made (its scaling: where zero motion lies)
    app = build_app(flow_predictor, examples=[])
    port = _free_port()
    launch(app, port=port, block=False)
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        api = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
        assert {"/analyse", "/motion", "/interval", "/interval_motion"} <= set(api), list(api)

        def shown(path) -> np.ndarray:
            return np.asarray(Image.open(path).convert("RGB"))

        label, face, *_ = client.predict(handle_file(str(CLIP)), "OLR", api_name="/analyse")
        whole = flow_predictor.predict(CLIP)
        assert label["label"] == whole.top and Path(face).stat().st_size > 0
        image = shown(client.predict(api_name="/motion"))
        np.testing.assert_array_equal(image, motion_sheet(whole.motion, "flow_image", recipe))
        # a drawn flow field, not a flat picture (a flat one has 1–2 colours; 9 when measured at the apex estimated
        # from both ends, frame 11–12 of 46 — the generator's is 17 —, 20-30 at the onset-only estimate, frame 40)
        assert image.shape == (260, 128, 3) and len(np.unique(image[:128].reshape(-1, 3), axis=0)) > 4
        assert image[132:].std() > 5  # the strain map is not blank

        *_, summary, _, _ = client.predict(handle_file(str(take)), "OLR", api_name="/analyse")  # then notes, timings
        assert summary.startswith("**1 micro-expression** spotted")
        spotted = flow_predictor.spot_and_classify(take).micro[0].prediction
        image = shown(client.predict(api_name="/motion"))
        np.testing.assert_array_equal(image, motion_sheet(spotted.motion, "flow_image", recipe))
        _, _, choice = client.predict(api_name="/timeline")
        chosen = client.predict(choice["value"] if isinstance(choice, dict) else choice, api_name="/interval")
        assert chosen[0]["label"] == spotted.top
        np.testing.assert_array_equal(shown(client.predict(api_name="/interval_motion")), image)
    finally:
        app.close()


# ----------------------------------------------------------------------------- training: streams and AU thresholds
PEERS = ROOT / "training" / "configs" / "peers"


def _bank(kind: str, subjects=(1, 2, 3), per_subject: int = 4, aus=None, seed: int = 0):
    """A small in-memory bank of random flow clips (T = 4, 40 px), three classes, with AU targets for ``aus``."""
    import torch

    from training.data import ClipBank

    rng = np.random.default_rng(seed)
    n = len(subjects) * per_subject
    au = None if aus is None else torch.from_numpy((rng.random((n, len(aus))) < 0.4).astype(np.float32))
    return ClipBank(torch.from_numpy(rng.integers(0, 256, (n, 4, 40, 40, 3), dtype=np.uint8)),
                    torch.from_numpy(np.arange(n) % 3), np.repeat(np.array(subjects), per_subject),
                    [f"casme2:c{i}" for i in range(n)], ("negative", "positive", "surprise"), {"kind": kind},
                    torch.tensor([128.0, 128.0, 0.0]).repeat(n, 4, 1), tuple(aus or ()), au,
                    None if aus is None else torch.ones(n, dtype=torch.bool))


def _trainer(config: str, overrides: list[str], bank, logs: list | None = None):
    from training.config import load_config
    from training.engine import Trainer

    cfg = load_config(PEERS / config, ["data.caches=[unused]", "data.protocol=casme2", "train.device=cpu",
                                       "train.amp=none", "train.n_frames=4", "train.size=40", *overrides])
    return Trainer(cfg, log=(logs.append if logs is not None else lambda *_: None), progress=False, bank=bank)


def test_late_fusion_streams_start_from_their_own_weights_files(tmp_path):
    """model.stream_pretrained: each stream loads its own file (torch.load weights_only), the files' Kinetics-sized
    classifiers are left out and said so, and mistakes are clear errors."""
    import torch

    from inference.errors import InputError
    from training.config import load_config
    from training.models import create_model

    torch.manual_seed(1)
    grey, flow = create_model("resnet3d_tiny", 400), create_model("resnet3d_tiny", 400)
    torch.save(grey.state_dict(), tmp_path / "grey.pth")
    torch.save({"state_dict": flow.state_dict(), "arch": "resnet3d_tiny"}, tmp_path / "flow.pth")
    kwargs = "model.kwargs={backbone: resnet3d_tiny, features: grey+flow, layout: [grey, u, v]}"
    bank = _bank("grey_flow_clip")
    logs = []
    both = f"model.stream_pretrained={{grey: {tmp_path / 'grey.pth'}, flow: {tmp_path / 'flow.pth'}}}"
    trainer = _trainer("late_fusion_grey_flow.yaml", [kwargs, both], bank, logs)
    model = trainer.new_model(0)
    for name, donor in (("grey", grey), ("flow", flow)):
        own = model.backbone.streams[name].state_dict()
        for k, v in donor.state_dict().items():
            if not k.startswith("fc."):
                torch.testing.assert_close(own[k], v, msg=f"{name}: {k}")
    assert any("grey.pth: " in line and "into the grey stream; 2 keys left out: fc.weight, fc.bias" in line
               for line in logs), logs
    assert trainer.model_extra("fold", 1)["init"]["streams"] == {"grey": str(tmp_path / "grey.pth"),
                                                                 "flow": str(tmp_path / "flow.pth")}
    grey_only = f"model.stream_pretrained={{grey: {tmp_path / 'grey.pth'}}}"
    only_grey = _trainer("late_fusion_grey_flow.yaml", [kwargs, grey_only], bank).new_model(0)
    assert not torch.equal(only_grey.backbone.streams["flow"].conv1.weight, flow.conv1.weight)  # from scratch
    torch.testing.assert_close(only_grey.backbone.streams["grey"].conv1.weight, grey.conv1.weight)

    def refused(streams: str, *more: str):
        return _trainer("late_fusion_grey_flow.yaml", [kwargs, f"model.stream_pretrained={streams}", *more],
                        bank).new_model(0)

    with pytest.raises(InputError, match="no weights file at .*missing.pth"):
        refused(f"{{flow: {tmp_path / 'missing.pth'}}}")
    torch.save({**grey.state_dict(), "conv1.weight": torch.zeros(8, 3, 1, 3, 3)}, tmp_path / "narrow.pth")
    with pytest.raises(InputError, match="tensors with another shape: conv1.weight"):
        refused(f"{{grey: {tmp_path / 'narrow.pth'}}}")
    with pytest.raises(InputError, match="no stream named 'rgb' .* its streams are grey, flow"):
        refused(f"{{rgb: {tmp_path / 'grey.pth'}}}")
    with pytest.raises(InputError, match="both name starting weights"):
        refused(f"{{grey: {tmp_path / 'grey.pth'}}}", f"model.pretrained={tmp_path / 'grey.pth'}")
    with pytest.raises(InputError, match="model.stream_pretrained must be a mapping of stream names"):
        load_config(PEERS / "late_fusion_flow.yaml", [f"model.stream_pretrained={tmp_path / 'grey.pth'}"])
    with pytest.raises(InputError, match="ststnet has none .*use model.pretrained"):
        _trainer("ststnet.yaml", ["train.n_frames=1", grey_only], _bank("flow_image")
                 ).new_model(0)


def test_train_f1_thresholds_known_answers():
    from training.engine import train_f1_thresholds

    probs = np.array([[0.9, 0.2], [0.7, 0.6], [0.6, 0.6], [0.3, 0.1], [0.2, 0.8]])
    target = np.array([[1, 0], [1, 1], [0, 0], [1, 0], [0, 0]], bool)
    # AU a (3 clips have it): t=0.7 predicts 2, both right: F1 = 4/5; t=0.3 predicts 4, 3 right: F1 = 6/7 (best)
    # AU b: only row 1 has it; t=0.6 predicts rows 1, 2 and 4 (0.8): F1 = 2/(3+1) = 0.5; t=0.8: 0; best 0.6
    np.testing.assert_allclose(train_f1_thresholds(probs, target), [0.3, 0.6])
    np.testing.assert_allclose(train_f1_thresholds(probs, np.zeros_like(target), default=0.4), [0.4, 0.4])


def test_au_thresholds_are_chosen_on_the_training_clips_only():
    """train.au_threshold=train_f1: each AU's threshold maximises F1 on the fold's training subjects' clips; the
    held-out subject's AU codes change nothing, the training subjects' do; rows and AU F1 use the thresholds and the
    fold result says which rule was used. The default keeps 0.5."""
    import torch

    from training.engine import train_f1_thresholds
    from training.models.au_fusion import au_f1

    aus = [1, 2, 4, 12]
    kw = "model.kwargs={aus: [1, 2, 4, 12], region_size: 8, width: 8, au_hidden: 8, fusion_dim: 16}"
    bank = _bank("flow_clip", aus=aus, seed=3)
    trainer = _trainer("au_fusion.yaml", [kw, "train.au_threshold=train_f1"], bank)
    model = trainer.new_model(0)
    test_idx, train_idx = np.flatnonzero(bank.subjects == 2), np.flatnonzero(bank.subjects != 2)
    rows = [{} for _ in test_idx]
    result = trainer.fold_aus(model, test_idx, rows)
    want = train_f1_thresholds(trainer.evaluate_aus(model, train_idx), bank.au[train_idx].numpy() > 0.5)
    assert result["au_threshold"] == "train_f1"
    assert list(result["au_thresholds"].values()) == pytest.approx(want.tolist())
    assert any(t != 0.5 for t in want)
    probs = trainer.evaluate_aus(model, test_idx)
    for row, p in zip(rows, probs):
        assert row["au_pred"] == [a for a, x, t in zip(aus, p, want) if x >= t]
    target = bank.au[test_idx].numpy() > 0.5
    assert result["au_f1"] == pytest.approx(au_f1(target, probs >= want, aus)["mean"])
    bank.au[test_idx] = 1.0 - bank.au[test_idx]  # the held-out subject's codes play no part
    assert trainer.fold_aus(model, test_idx, [{} for _ in test_idx])["au_thresholds"] == result["au_thresholds"]
    bank.au[train_idx] = torch.roll(bank.au[train_idx], 1, 0)  # the training subjects' codes do
    assert trainer.fold_aus(model, test_idx, [{} for _ in test_idx])["au_thresholds"] != result["au_thresholds"]
    plain = _trainer("au_fusion.yaml", [kw], bank).fold_aus(model, test_idx, [{} for _ in test_idx])
    assert plain["au_threshold"] == 0.5 and set(plain["au_thresholds"].values()) == {0.5}
    from training.report import au_rule, report_markdown  # the report says which rule the AU F1 used

    protocol = {"evaluation": "LOSO", "dataset_protocol": "casme2", "classes": ["a", "b"], "subjects": 2, "clips": 4,
                "scheme": "sbml", "fsb_head": None, "train_views": "O", "test_views": "O", "backbone": "au_fusion",
                "pretrained": None, "epochs": 1, "n_frames": 4, "size": 40, "selection": "last", "smote": False,
                "balanced": False, "seed": 0}
    res = {"run": "r", "uf1": 0.5, "uar": 0.5, "war": 0.5, "n": 4, "protocol": protocol,
           "per_class": {"f1": [0.5, 0.5], "recall": [0.5, 0.5], "support": [2, 2]}, "au_f1": 0.4,
           "au_f1_per_au": {"AU1": 0.4}, "au_clips": 4, "au_clips_without_codes": 0, "au_threshold": "train_f1"}
    text = report_markdown(res, [])
    assert au_rule("train_f1") in text and "best F1 on its fold's training subjects" in text
    assert au_rule(0.3) == "predicted at probability ≥ 0.3"
