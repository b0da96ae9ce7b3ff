"""The peer systems' networks: shapes, parameter counts against the papers' layouts, combination modes."""

from pathlib import Path

import numpy as np
import pytest
import torch

from inference.errors import InputError
from training.config import load_config
from training.models import create_model, model_spec
from training.models.peers_flow import select_channels

ROOT = Path(__file__).resolve().parent.parent
PEERS = ROOT / "training" / "configs" / "peers"


def _params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def _flow(n: int, size: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 3, 1, size, size, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("name,size", [("sssn", 227), ("dssn", 227), ("off_apexnet", 28)])
def test_forward_backward_on_one_flow_image(name, size):
    torch.manual_seed(0)
    m = create_model(name, 3)
    x = _flow(2, size).requires_grad_()
    out = m(x)
    assert out.shape == (2, 3) and m.forward_features(x).shape == (2, m.feature_dim)
    out.sum().backward()
    assert x.grad.abs().sum() > 0 and all(p.grad is not None for p in m.parameters())
    m.reset_classifier(5)
    assert m(x).shape == (2, 5) and m.config["num_classes"] == 5


def test_parameter_counts_follow_the_papers_layouts():
    # OFF-ApexNet: per stream conv 1→6 (5×5) and 6→16 (5×5); 2×16×7×7 = 1568 → 1024 → 1024 → 3 classes:
    # 2·(156 + 2416) + 1568·1024 + 1024 + 1024·1024 + 1024 + 1024·3 + 3 = 2,664,475 (published: 2.66 M).
    assert _params(create_model("off_apexnet", 3)) == 2_664_475
    # Truncated AlexNet stream on one channel: conv 1→96 (11×11) + conv 96→256 (5×5, 2 groups); 256×13×13 features.
    stream = (1 * 96 * 121 + 96) + 2 * (48 * 128 * 25 + 128)
    feat = 256 * 13 * 13
    assert _params(create_model("sssn", 3)) == stream + feat * 3 + 3
    assert _params(create_model("dssn", 3, combine="multiply")) == 2 * stream + feat * 3 + 3
    assert _params(create_model("dssn", 3, combine="add")) == 2 * stream + feat * 3 + 3
    assert _params(create_model("dssn", 3, combine="concat")) == 2 * stream + 2 * feat * 3 + 3
    # a three-channel stream (u, v, strain together) has AlexNet's own first layer: 3·96·121 + 96 = 34,944
    three = create_model("sssn", 3, streams=[["u", "v", "strain"]])
    assert _params(three.branches[0][0]) == 34_944


def test_combination_modes_merge_the_streams_feature_maps():
    x = _flow(1, 227, seed=1)
    img = x[:, :, 0]
    for mode in ("add", "multiply", "concat"):
        torch.manual_seed(0)
        m = create_model("dssn", 3, combine=mode).eval()
        a = m.branches[0](select_channels(img, ["magnitude"]))
        b = m.branches[1](select_channels(img, ["strain"]))
        want = {"add": (a + b).flatten(1), "multiply": (a * b).flatten(1),
                "concat": torch.cat([a.flatten(1), b.flatten(1)], 1)}[mode]
        torch.testing.assert_close(m.forward_features(x), want)
    assert create_model("dssn", 3, combine="concat").feature_dim == 2 * create_model("dssn", 3).feature_dim


def test_channels_are_picked_by_name():
    x = torch.zeros(1, 3, 4, 4)
    x[:, 0], x[:, 1], x[:, 2] = 3.0, -4.0, 0.5
    got = select_channels(x, ["v", "magnitude", "strain", "u"])
    assert got.shape == (1, 4, 4, 4)
    torch.testing.assert_close(got[0, :, 0, 0], torch.tensor([-4.0, 5.0, 0.5, 3.0]))
    # OFF-ApexNet's streams see u and v only: changing the strain channel changes nothing
    m = create_model("off_apexnet", 3).eval()
    y = _flow(2, 28)
    z = y.clone()
    z[:, 2] += 5.0
    torch.testing.assert_close(m(y), m(z))


def test_clear_errors_for_wrong_inputs():
    m = create_model("off_apexnet", 3)
    with pytest.raises(InputError, match="n_frames=1"):
        m(torch.zeros(2, 3, 4, 28, 28))
    with pytest.raises(InputError, match="train.size=28"):
        m(torch.zeros(2, 3, 1, 32, 32))
    with pytest.raises(InputError, match="unknown flow-image channel"):
        create_model("dssn", 3, streams=[["grey"], ["strain"]])
    with pytest.raises(InputError, match="combine mode"):
        create_model("dssn", 3, combine="max")


@pytest.mark.parametrize("name", ["sssn", "dssn", "dssn_add", "dssn_concat", "off_apexnet"])
def test_peer_configs_build_their_model(name):
    cfg = load_config(PEERS / f"{name}.yaml")
    assert cfg["data"]["protocol"] == "composite" and cfg["train"]["selection"] == "last"
    assert cfg["train"]["n_frames"] == 1 and cfg["data"].get("inputs", "flow_image") == "flow_image"
    m = create_model(cfg["model"]["name"], 3, **cfg["model"]["kwargs"])
    assert m(_flow(2, cfg["train"]["size"])).shape == (2, 3)
    assert model_spec(cfg["model"]["name"]).norm.mean == (128 / 255, 128 / 255, 0.0)  # zero motion → 0


# --- late fusion of a grey stream and a flow stream ------------------------------------------------------------------


def _late(**kw):
    torch.manual_seed(0)
    return create_model("late_fusion", 3, **{"backbone": "resnet3d_tiny", **kw}).eval()


def test_late_fusion_modes_are_the_mean_of_the_streams():
    x = torch.randn(2, 3, 4, 32, 32, generator=torch.Generator().manual_seed(3))
    for fusion in ("logits", "probs"):
        m = _late(fusion=fusion)
        f = m.forward_features(x)
        assert f.shape == (2, m.feature_dim) == (2, 128)
        inputs = m.stream_inputs(x)
        z = [m.fc.heads[i](m.streams[n].forward_features(inputs[n])) for i, n in enumerate(("grey", "flow"))]
        if fusion == "logits":
            torch.testing.assert_close(m(x), (z[0] + z[1]) / 2)
            # the same function as one linear layer on the concatenated features (the registry's fc contract)
            lin = torch.nn.Linear(128, 3)
            lin.weight.data = torch.cat([m.fc.heads[0].weight, m.fc.heads[1].weight], 1) / 2
            lin.bias.data = (m.fc.heads[0].bias + m.fc.heads[1].bias) / 2
            torch.testing.assert_close(m(x), lin(f))
        else:
            torch.testing.assert_close(m(x).softmax(-1), (z[0].softmax(-1) + z[1].softmax(-1)) / 2)
    m.reset_classifier(5)
    assert m(x).shape == (2, 5) and m.fc.fusion == "probs"


def test_late_fusion_stream_inputs_follow_the_layout():
    x = torch.randn(1, 3, 4, 32, 32, generator=torch.Generator().manual_seed(4))
    grey = _late(features="grey", layout=["r", "g", "b"])
    g = 0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]
    torch.testing.assert_close(grey.forward_features(x), grey.streams["grey"].forward_features(torch.stack([g] * 3, 1)))
    flow = _late(features="flow", layout=["u", "v", "strain"])
    torch.testing.assert_close(flow.stream_inputs(x)["flow"], x)
    both = _late()  # layout grey, u, v: the flow stream's third channel is the flow magnitude
    ins = both.stream_inputs(x)
    torch.testing.assert_close(ins["flow"][:, 2], torch.sqrt(x[:, 1] ** 2 + x[:, 2] ** 2 + 1e-12))
    torch.testing.assert_close(ins["grey"], torch.stack([x[:, 0]] * 3, 1))
    with pytest.raises(InputError, match="does not hold"):
        _late(features="grey+flow", layout=["r", "g", "b"])
    with pytest.raises(InputError, match="unknown model"):
        _late(backbone="nope")


def test_late_fusion_trains_in_the_view_scheme():
    from training.schemes import ViewModel

    torch.manual_seed(0)
    vm = ViewModel({"name": "late_fusion", "backbone": "resnet3d_tiny", "fusion": "probs"}, 3, "sbml", "OLR")
    x, y = torch.randn(2, 3, 4, 32, 32), torch.tensor([0, 2])
    loss, logits = vm.loss(x, y)
    loss.backward()
    assert logits.shape == (2, 3) and torch.isfinite(loss)
    assert all(p.grad is not None for p in vm.backbone.streams.parameters())


@pytest.mark.parametrize("name", ["late_fusion_flow", "late_fusion_grey", "late_fusion_grey_flow"])
def test_late_fusion_configs(name):
    cfg = load_config(PEERS / f"{name}.yaml")
    kw = cfg["model"]["kwargs"]
    assert cfg["model"]["name"] == "late_fusion" and kw["backbone"] == "swin3d_t"
    assert cfg["data"]["inputs"] == {"flow": "flow_clip", "grey": "rgb", "grey+flow": "grey_flow_clip"}[kw["features"]]


# --- AU fusion: region flow features + AU detection ------------------------------------------------------------------


def test_au_codes_from_the_sheets():
    from training.models.au_fusion import au_targets, parse_aus

    assert parse_aus("4+L10") == {4, 10}  # CASME II: side prefixes
    assert parse_aus("R12+R15") == {12, 15}  # SAMM
    assert parse_aus("AU1+2+4") == {1, 2, 4} and parse_aus("12B") == {12} and parse_aus("L1, R2") == {1, 2}
    assert parse_aus("") == set() and parse_aus(None) == set() and parse_aus(float("nan")) == set()
    t, mask = au_targets(["4+L10", "", "12"], aus=(4, 10, 12))
    assert t.tolist() == [[1, 1, 0], [0, 0, 0], [0, 0, 1]] and mask.tolist() == [True, False, True]


def test_multitask_loss_and_au_f1_known_answers():
    import torch.nn.functional as F

    from training.models.au_fusion import au_f1, multitask_loss

    g = torch.Generator().manual_seed(5)
    e, a = torch.randn(3, 3, generator=g), torch.randn(3, 2, generator=g)
    y, t = torch.tensor([0, 2, 1]), torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    mask = torch.tensor([True, False, True])
    loss, parts = multitask_loss(e, a, y, t, mask, au_weight=0.5)
    want = F.cross_entropy(e, y) + 0.5 * F.binary_cross_entropy_with_logits(a[[0, 2]], t[[0, 2]])
    torch.testing.assert_close(loss, want)
    a2 = a.clone()
    a2[1] += 10.0  # the clip without AU codes does not count
    torch.testing.assert_close(multitask_loss(e, a2, y, t, mask, au_weight=0.5)[0], want)
    assert parts["au"] == pytest.approx(float(F.binary_cross_entropy_with_logits(a[[0, 2]], t[[0, 2]])))
    truth = np.array([[1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 0, 0]])
    pred = np.array([[1, 1, 1], [0, 1, 0], [0, 1, 0], [1, 0, 0]])
    f = au_f1(truth, pred, aus=(1, 2, 4))
    # AU1: tp 1, fp 1, fn 1 → 0.5; AU2: tp 2, fp 1, fn 0 → 0.8; AU4 never in the truth: left out
    assert f["per_au"] == pytest.approx({"AU1": 0.5, "AU2": 0.8}) and f["mean"] == pytest.approx(0.65)


def test_au_fusion_sees_only_its_face_regions_and_learns_an_au():
    from training.models.au_fusion import au_f1, multitask_loss

    torch.manual_seed(0)
    m = create_model("au_fusion", 3, aus=[12, 4], region_size=12, width=16, au_hidden=16, fusion_dim=32)
    x = torch.randn(2, 3, 4, 40, 40, generator=torch.Generator().manual_seed(6))
    m.eval()
    e, au = m.forward_multi(x)
    torch.testing.assert_close(m(x), e)
    assert e.shape == (2, 3) and au.shape == (2, 2)
    corner = x.clone()
    corner[..., :3, :1] += 50.0  # above the brows at the far left: no region covers it
    torch.testing.assert_close(m.forward_multi(corner)[1], au)
    mouth = x.clone()
    mouth[..., 30:36, 15:25] += 5.0
    assert not torch.allclose(m.forward_multi(mouth)[1], au)

    # AU12 is on exactly when the mouth corners move; the AU branch learns it from the multi-task loss
    g = torch.Generator().manual_seed(7)
    n = 32
    clips = 0.1 * torch.randn(n, 3, 4, 40, 40, generator=g)
    on = torch.arange(n) % 2 == 0
    clips[on, 0, :, 30:36, 10:30] += 1.0  # u of the mouth region
    labels, target = on.long(), torch.stack([on.float(), torch.zeros(n)], 1)
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    m.train()
    for _ in range(25):
        emotion, au_logits = m.forward_multi(clips)
        loss, _ = multitask_loss(emotion, au_logits, labels, target)
        opt.zero_grad()
        loss.backward()
        opt.step()
    m.eval()
    with torch.no_grad():
        predicted = (m.forward_multi(clips)[1] > 0).numpy()
    assert au_f1(target.numpy(), predicted, aus=(12, 4))["per_au"]["AU12"] > 0.9


def test_late_fusion_loads_one_backbone_file_into_every_stream(tmp_path):
    donor = create_model("resnet3d_tiny", 400)
    torch.save(donor.state_dict(), tmp_path / "tiny.pth")
    m = _late()
    reports = m.load_stream_weights(tmp_path / "tiny.pth")
    assert set(reports) == {"grey", "flow"} and all(r["head_replaced"] for r in reports.values())
    for name in ("grey", "flow"):
        torch.testing.assert_close(m.streams[name].conv1.weight, donor.conv1.weight)
