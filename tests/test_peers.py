"""The peer systems' networks: shapes, parameter counts against the papers' layouts, combination modes."""

from pathlib import Path

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


@pytest.mark.parametrize("name", ["late_fusion_flow", "late_fusion_grey"])
def test_late_fusion_configs(name):
    cfg = load_config(PEERS / f"{name}.yaml")
    kw = cfg["model"]["kwargs"]
    assert cfg["model"]["name"] == "late_fusion" and kw["backbone"] == "swin3d_t"
    assert cfg["data"]["inputs"] == {"flow": "flow_clip", "grey": "rgb"}[kw["features"]]
