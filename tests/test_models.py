"""The model registry: architectures, kenshohara key layout, pretrained loading, checkpoints."""

from __future__ import annotations

import os

import pytest
import torch
from torch import nn

from inference.errors import InputError
from training.models import Normalisation, create_model, model_names, model_spec
from training.models.checkpoint import load_pretrained
from training.models.resnet3d import KENSHOHARA_2017, KENSHOHARA_2020, ShortcutA

EXPECTED = {
    "resnet3d_tiny", "resnet3d_18", "resnet3d_34", "resnet3d_50", "resnet3d_101", "resnext3d_101",
    "r3d_18", "r2plus1d_18", "swin3d_t", "swin3d_s", "swin3d_b",
    "sssn", "dssn", "off_apexnet", "ststnet", "late_fusion", "au_fusion",  # the peer systems
}
SMALL_INPUTS = [(1, 3, 8, 32, 32), (2, 3, 4, 48, 40)]


def small_inputs(name: str) -> list[tuple[int, ...]]:
    """Inputs a model reads: a flow-image model (one u/v/strain image per clip) at its image size, else clips."""
    size = dict(model_spec(name).default_kwargs).get("image_size")
    return [(1, 3, 1, size, size), (2, 3, 1, size, size)] if size else SMALL_INPUTS


def n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def kenshohara_file(path, model: nn.Module, arch: str, release_2017: bool = True) -> dict:
    """A checkpoint as 3D-ResNets-PyTorch writes it: DataParallel ``module.`` keys, epoch, arch,
    optimizer. The 2017 files (torch 0.3) are in the legacy, non-zip serialisation and have no
    BatchNorm ``num_batches_tracked`` buffers."""
    sd = {k: v.clone() for k, v in model.state_dict().items()
          if not (release_2017 and k.endswith("num_batches_tracked"))}
    torch.save({"epoch": 200, "arch": arch, "state_dict": {"module." + k: v for k, v in sd.items()},
                "optimizer": {"state": {}, "param_groups": [{"lr": 0.1, "params": [0, 1]}]}}, path,
               _use_new_zipfile_serialization=not release_2017)
    return sd


# --- registry -------------------------------------------------------------------------------------------------------


def test_registry_names_and_errors():
    assert set(model_names()) == EXPECTED
    with pytest.raises(InputError, match="unknown model 'resnet9000'.*resnext3d_101"):
        create_model("resnet9000", 3)
    with pytest.raises(InputError, match="does not take cardinality"):
        create_model("resnet3d_18", 3, cardinality=4)
    with pytest.raises(InputError, match="num_classes"):
        create_model("resnet3d_tiny", 0)
    spec = model_spec("resnext3d_101")
    assert spec.family == "resnet3d" and dict(spec.default_kwargs)["shortcut"] == "B"
    assert model_spec("swin3d_t").family == "torchvision"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_model_builds_runs_and_resets_its_head(name):
    torch.manual_seed(0)
    model = create_model(name, 3).eval()
    assert model.config == {"name": name, "num_classes": 3, "kwargs": dict(model_spec(name).default_kwargs)}
    assert model.spec is model_spec(name)
    # one linear head, except late fusion's: one linear head per stream, fused late (LateFusionHead)
    assert isinstance(model.fc, nn.Linear) or name == "late_fusion"
    assert model.fc.in_features == model.feature_dim
    assert model.fc.out_features == 3
    with torch.no_grad():
        for shape in small_inputs(name):
            x = torch.randn(*shape)
            feats = model.forward_features(x)
            assert feats.shape == (shape[0], model.feature_dim)
            logits = model(x)
            assert logits.shape == (shape[0], 3)
            torch.testing.assert_close(logits, model.fc(feats))
        old = model.fc
        model.reset_classifier(5)
        assert model.fc is not old and model.fc.out_features == 5 and model.config["num_classes"] == 5
        assert model(torch.randn(*small_inputs(name)[0])).shape == (1, 5)


def test_reset_classifier_gives_a_fresh_head_for_the_same_size():
    model = create_model("resnet3d_tiny", 4)
    with torch.no_grad():
        model.fc.weight.fill_(0.5)
    model.reset_classifier(4)
    assert not torch.all(model.fc.weight == 0.5)
    assert model.fc.weight.requires_grad


@pytest.mark.parametrize("name, kwargs", [
    ("resnet3d_tiny", {}), ("resnet3d_tiny", {"shortcut": "A"}), ("resnext3d_101", {}), ("swin3d_t", {}),
])
def test_channels_last_3d_and_bf16_autocast(name, kwargs):
    torch.manual_seed(0)
    model = create_model(name, 3, **kwargs).eval()
    x = torch.randn(2, 3, 8, 32, 32)
    with torch.no_grad():
        ref = model(x)
        model_cl = model.to(memory_format=torch.channels_last_3d)
        out_cl = model_cl(x.to(memory_format=torch.channels_last_3d))
        torch.testing.assert_close(out_cl, ref, rtol=1e-4, atol=1e-4)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out_bf = model_cl(x.to(memory_format=torch.channels_last_3d))
    assert out_bf.dtype == torch.bfloat16 and torch.isfinite(out_bf.float()).all()
    assert (out_bf.float() - ref).abs().max() < 0.1 * ref.abs().max() + 0.05


def test_tiny_model_trains_in_seconds_on_small_clips():
    torch.manual_seed(0)
    model = create_model("resnet3d_tiny", 2).train()
    # class 0: brightness rises over time, class 1: it falls (needs the temporal axis)
    ramp = torch.linspace(-1, 1, 8).view(1, 1, 8, 1, 1)
    x = torch.cat([ramp.expand(8, 3, 8, 48, 48), -ramp.expand(8, 3, 8, 48, 48)]) + 0.3 * torch.randn(16, 3, 8, 48, 48)
    y = torch.tensor([0] * 8 + [1] * 8)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    losses = []
    for _ in range(15):
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.3 * losses[0]
    model.eval()
    with torch.no_grad():
        assert (model(x).argmax(1) == y).float().mean() >= 0.9


# --- kenshohara layout ------------------------------------------------------------------------------------------------


def kenshohara_param_count(block: str, layers, widths, cardinality=1, num_classes=400, stem=64, t=7) -> int:
    """Parameters of the 3D-ResNets-PyTorch layout, counted from its description (not from our modules)."""
    bn = lambda c: 2 * c  # noqa: E731  (weight and bias)
    expansion = {"basic": 1, "bottleneck": 4, "resnext": 2}[block]
    total = 3 * stem * t * 49 + bn(stem)
    cin = stem
    for i, (planes, n) in enumerate(zip(widths, layers)):
        cout = planes * expansion
        for j in range(n):
            c = cin if j == 0 else cout
            if block == "basic":
                total += c * planes * 27 + bn(planes) + planes * planes * 27 + bn(planes)
            else:
                mid = cardinality * planes // 32 if block == "resnext" else planes
                groups = cardinality if block == "resnext" else 1
                total += c * mid + bn(mid) + mid * (mid // groups) * 27 + bn(mid) + mid * cout + bn(cout)
            if j == 0 and (i > 0 or c != cout):
                total += c * cout + bn(cout)  # shortcut B
        cin = cout
    return total + cin * num_classes + num_classes


def test_resnext101_matches_the_kinetics_layout_and_size():
    with torch.device("meta"):  # shapes only: no memory, no initialisation cost
        model = create_model("resnext3d_101", 400)
    sd = model.state_dict()
    # key names and shapes of resnext-101-kinetics.pth
    assert sd["conv1.weight"].shape == (64, 3, 7, 7, 7)
    assert sd["layer1.0.conv1.weight"].shape == (128, 64, 1, 1, 1)  # mid = 32 * 128 // 32
    assert sd["layer1.0.conv2.weight"].shape == (128, 4, 3, 3, 3)  # grouped by 32
    assert sd["layer1.0.conv3.weight"].shape == (256, 128, 1, 1, 1)  # expansion 2
    assert sd["layer1.0.downsample.0.weight"].shape == (256, 64, 1, 1, 1)
    assert sd["layer1.0.downsample.1.running_var"].shape == (256,)
    assert sd["layer3.22.conv2.weight"].shape == (512, 16, 3, 3, 3)
    assert "layer3.23.conv1.weight" not in sd and "layer4.3.conv1.weight" not in sd
    assert sd["layer4.0.downsample.0.weight"].shape == (2048, 1024, 1, 1, 1)
    assert sd["fc.weight"].shape == (400, 2048)
    assert model.conv1.stride == (1, 2, 2) and model.conv1.padding == (3, 3, 3)
    assert model.maxpool.kernel_size == 3 and model.maxpool.stride == 2 and model.maxpool.padding == 1
    expected = kenshohara_param_count("resnext", (3, 4, 23, 3), (128, 256, 512, 1024), cardinality=32)
    assert n_params(model) == expected == 48_340_816  # with the 400-class Kinetics head
    backbone = n_params(model) - n_params(model.fc)
    assert backbone == 47_521_216  # the 47.5 M this project measured (3-class head: 47.53 M)


def test_resnext101_flops_per_view():
    from torch.utils.flop_counter import FlopCounterMode

    model = create_model("resnext3d_101", 3).eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.randn(1, 3, 34, 112, 112))
    assert abs(counter.get_total_flops() / 1e9 - 43.6) < 0.1  # multiply-add = 2


@pytest.mark.parametrize("name, block, layers, total", [
    ("resnet3d_18", "basic", (2, 2, 2, 2), 33_409_104),
    ("resnet3d_34", "basic", (3, 4, 6, 3), 63_718_736),
    ("resnet3d_50", "bottleneck", (3, 4, 6, 3), 47_018_576),
    ("resnet3d_101", "bottleneck", (3, 4, 23, 3), 86_064_720),
])
def test_resnet_parameter_counts(name, block, layers, total):
    with torch.device("meta"):
        model = create_model(name, 400)
    assert n_params(model) == kenshohara_param_count(block, layers, (64, 128, 256, 512)) == total


def test_shortcut_a_is_a_strided_zero_padded_identity():
    x = torch.randn(2, 4, 5, 7, 7)
    out = ShortcutA(8, 2)(x)
    assert out.shape == (2, 8, 3, 4, 4)
    torch.testing.assert_close(out[:, :4], x[:, :, ::2, ::2, ::2])
    assert torch.all(out[:, 4:] == 0)
    model = create_model("resnet3d_18", 400, shortcut="A")
    assert not any("downsample" in k for k in model.state_dict())
    shortcut_b = (64 * 128 + 2 * 128) + (128 * 256 + 2 * 256) + (256 * 512 + 2 * 512)  # conv 1x1x1 + BN, stages 2-4
    assert n_params(model) == 33_409_104 - shortcut_b == 33_235_280
    with torch.no_grad():  # odd sizes: the shortcut and the strided convolution agree on shapes
        assert model.eval()(torch.randn(1, 3, 7, 33, 35)).shape == (1, 400)


# --- pretrained weights ---------------------------------------------------------------------------------------------


def test_kenshohara_resnext101_file_loads_into_a_3_class_model(tmp_path):
    torch.manual_seed(1)
    source = create_model("resnext3d_101", 400)
    path = tmp_path / "resnext-101-kinetics.pth"
    file_sd = kenshohara_file(path, source, "resnext-101")

    torch.manual_seed(2)
    model = create_model("resnext3d_101", 3)
    fresh_head = {k: v.clone() for k, v in model.fc.state_dict().items()}
    assert not torch.equal(model.state_dict()["layer2.1.conv2.weight"], file_sd["layer2.1.conv2.weight"])

    report = load_pretrained(model, path)
    assert report["head_replaced"] is True and report["file_head_shape"] == [400, 2048]
    assert report["arch"] == "resnext-101" and report["epoch"] == 200
    assert [m[0] for m in report["mismatched"]] == ["fc.weight", "fc.bias"]
    assert report["unexpected"] == []
    counters = {k for k in model.state_dict() if k.endswith("num_batches_tracked")}
    assert set(report["missing"]) == {"fc.weight", "fc.bias"} | counters
    own = model.state_dict()
    for k, v in file_sd.items():
        if not k.startswith("fc."):
            assert torch.equal(own[k], v), k
            assert k in report["loaded"]
    for k, v in fresh_head.items():
        assert torch.equal(model.fc.state_dict()[k], v)
    assert model.fc.out_features == 3

    # the same through create_model(pretrained=...); the file's normalisation is the 2017 one
    again = create_model("resnext3d_101", 3, pretrained=path)
    assert again.pretrained_report["head_replaced"] is True
    assert torch.equal(again.state_dict()["layer4.2.bn3.running_mean"], file_sd["layer4.2.bn3.running_mean"])
    assert model_spec("resnext3d_101").norm_for(path) == KENSHOHARA_2017
    assert "pretrained" not in again.config["kwargs"]


def test_same_number_of_classes_keeps_the_file_head(tmp_path):
    source = create_model("resnet3d_tiny", 5)
    path = tmp_path / "tiny.pth"
    kenshohara_file(path, source, "tiny", release_2017=False)
    model = create_model("resnet3d_tiny", 5)
    report = load_pretrained(model, path)
    assert report["head_replaced"] is False and report["missing"] == [] and report["mismatched"] == []
    assert torch.equal(model.fc.weight, source.fc.weight)


def test_file_of_another_architecture_is_refused_with_the_keys_named(tmp_path):
    path = tmp_path / "resnet-50-kinetics.pth"
    kenshohara_file(path, create_model("resnet3d_50", 400), "resnet-50")
    model = create_model("resnext3d_101", 3)
    before = model.state_dict()["layer1.0.conv1.weight"].clone()
    with pytest.raises(InputError) as err:
        load_pretrained(model, path)
    msg = str(err.value)
    assert "resnext3d_101" in msg and "with another shape" in msg
    assert "layer1.0.conv1.weight (file (64, 64, 1, 1, 1), model (128, 64, 1, 1, 1))" in msg
    assert "layer1.0.conv2.weight" in msg  # one entry per module: BatchNorm siblings do not crowd it out
    assert "missing from the file" in msg and "layer3.6.conv1.weight" in msg
    assert torch.equal(model.state_dict()["layer1.0.conv1.weight"], before)  # nothing half-loaded

    # without strictness it loads what fits and says what did not
    report = load_pretrained(model, path, strict_backbone=False)
    assert "conv1.weight" in report["loaded"] and "layer1.0.conv2.weight" not in report["loaded"]
    assert any(m[0] == "layer1.0.conv2.weight" for m in report["mismatched"])


def test_shortcut_a_resnet18_file(tmp_path):
    path = tmp_path / "resnet-18-kinetics.pth"
    file_sd = kenshohara_file(path, create_model("resnet3d_18", 400, shortcut="A"), "resnet-18")
    assert not any("downsample" in k for k in file_sd)
    model = create_model("resnet3d_18", 3, shortcut="A")
    report = load_pretrained(model, path)
    assert report["head_replaced"] and report["unexpected"] == []
    assert torch.equal(model.state_dict()["layer4.1.conv2.weight"], file_sd["layer4.1.conv2.weight"])
    # the registry knows the file needs shortcut A and the 2017 normalisation
    known = model_spec("resnet3d_18").weights_for(path)
    assert dict(known.kwargs) == {"shortcut": "A"} and known.norm == KENSHOHARA_2017
    # into a shortcut-B network it fails and says why
    with pytest.raises(InputError, match=r"layer2\.0\.downsample\.0\.weight.*shortcut='A'"):
        load_pretrained(create_model("resnet3d_18", 3), path)


@pytest.mark.parametrize("content", [b"this is not a checkpoint\n", b""])
def test_garbage_file_is_an_input_error(tmp_path, content):
    path = tmp_path / "weights.pth"
    path.write_bytes(content)
    with pytest.raises(InputError, match="not a readable PyTorch checkpoint"):
        load_pretrained(create_model("resnet3d_tiny", 3), path)


def test_truncated_and_unsafe_and_empty_files_are_input_errors(tmp_path):
    good = tmp_path / "good.pth"
    torch.save(create_model("resnet3d_tiny", 3).state_dict(), good)
    cut = tmp_path / "cut.pth"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(InputError, match="not a readable PyTorch checkpoint"):
        load_pretrained(create_model("resnet3d_tiny", 3), cut)

    unsafe = tmp_path / "unsafe.pth"
    torch.save({"state_dict": create_model("resnet3d_tiny", 3).state_dict(),
                "obj": Normalisation((0, 0, 0), (1, 1, 1), 1)},
               unsafe)
    with pytest.raises(InputError, match="not a readable PyTorch checkpoint"):  # weights_only refuses objects
        load_pretrained(create_model("resnet3d_tiny", 3), unsafe)

    nothing = tmp_path / "nothing.pth"
    torch.save({"epoch": 3, "lr": 0.1}, nothing)
    with pytest.raises(InputError, match="holds no state dict"):
        load_pretrained(create_model("resnet3d_tiny", 3), nothing)
    with pytest.raises(InputError, match="no weights file"):
        load_pretrained(create_model("resnet3d_tiny", 3), tmp_path / "absent.pth")


def test_torchvision_state_dicts_load(tmp_path):
    from torchvision.models import video as tvv

    torch.manual_seed(3)
    tv = tvv.r3d_18(weights=None).eval()  # 400 classes, as torchvision publishes it
    path = tmp_path / "r3d_18-b3b3357e.pth"
    torch.save(tv.state_dict(), path)
    model = create_model("r3d_18", 3, pretrained=path)
    assert model.pretrained_report["head_replaced"]
    for k, v in tv.state_dict().items():
        if not k.startswith("fc."):
            assert torch.equal(model.state_dict()[k], v), k
    assert model_spec("r3d_18").norm_for(path).mean == (0.43216, 0.394666, 0.37645)

    # swin3d: torchvision's "head" is our "fc"; with 400 classes it is the same network
    swin = tvv.swin3d_t(weights=None).eval()
    path = tmp_path / "swin3d_t-7615ae03.pth"
    torch.save(swin.state_dict(), path)
    ours = create_model("swin3d_t", 400)
    report = load_pretrained(ours, path)
    assert report["head_replaced"] is False and report["unexpected"] == [] and report["missing"] == []
    x = torch.randn(1, 3, 8, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(ours.eval()(x), swin(x))
    assert model_spec("swin3d_t").norm_for(path).std == (0.229, 0.224, 0.225)


# --- normalisation ---------------------------------------------------------------------------------------------------


def _normalised(norm: Normalisation, pixels: torch.Tensor) -> torch.Tensor:
    """uint8 pixels ``(N, C, T, H, W)`` through the one evaluation path (training.data.network_input with an RGB
    model's inference.inputs.Preprocessing of this normalisation)."""
    from inference.inputs import Preprocessing
    from training.data import network_input

    side = pixels.shape[-1]
    return network_input(pixels.permute(0, 2, 3, 4, 1).contiguous(),
                         Preprocessing.of("rgb", None, norm.to_dict(), side, side))


def test_normalisation_per_weights_file():
    spec = model_spec("resnet3d_50")
    assert spec.norm_for("/w/resnet-50-kinetics.pth") == KENSHOHARA_2017
    assert spec.norm_for("r3d50_K_200ep.pth") == KENSHOHARA_2020
    assert spec.weights_for("r3d50_KM_200ep.pth").num_classes == 1039
    assert spec.norm_for("my_own.pth") == spec.norm == KENSHOHARA_2020
    assert model_spec("resnext3d_101").norm == KENSHOHARA_2017
    assert model_spec("swin3d_b").norm.mean == (0.485, 0.456, 0.406)
    assert {w.filename for w in model_spec("swin3d_b").pretrained} == {"swin3d_b_1k-24f7c7c6.pth",
                                                                      "swin3d_b_22k-7c6ae6fa.pth"}

    pixels = torch.tensor([0, 255], dtype=torch.uint8).view(1, 1, 2, 1, 1).expand(1, 3, 2, 1, 1)
    out17 = _normalised(KENSHOHARA_2017, pixels)
    torch.testing.assert_close(out17[0, :, 1, 0, 0], torch.tensor([255 - 114.7748, 255 - 107.7354, 255 - 99.4750]))
    out20 = _normalised(KENSHOHARA_2020, pixels)
    torch.testing.assert_close(out20[0, 0, :, 0, 0], torch.tensor([-0.4345 / 0.2768, (1 - 0.4345) / 0.2768]))
    assert Normalisation.from_dict(KENSHOHARA_2017.to_dict()) == KENSHOHARA_2017
    # the plain-dict form training uses: x in 0-1 → (x * pixel_scale - mean) / std
    d = model_spec("resnext3d_101").normalisation
    assert d == {"mean": [114.7748, 107.7354, 99.4750], "std": [1.0, 1.0, 1.0], "pixel_scale": 255,
                 "source": KENSHOHARA_2017.source}
    assert spec.normalisation_for("resnet-50-kinetics.pth")["pixel_scale"] == 255
    assert spec.normalisation["pixel_scale"] == 1
    x01 = pixels.float() / 255
    expected = (x01[0, :, 1, 0, 0] * d["pixel_scale"] - torch.tensor(d["mean"])) / torch.tensor(d["std"])
    torch.testing.assert_close(expected, out17[0, :, 1, 0, 0])


# --- our checkpoints -------------------------------------------------------------------------------------------------


def test_view_model_checkpoint_round_trip(tmp_path):
    from training.schemes import ViewModel, load_view_model, save_view_model

    torch.manual_seed(4)
    model = ViewModel({"name": "resnet3d_tiny", "shortcut": "A", "conv1_t_size": 5}, 3, "fsb", "OLR", fsb_head="mlp")
    model.train()
    model.loss(torch.randn(4, 3, 8, 48, 48), torch.tensor([0, 1, 2, 0]))[0].backward()  # moves BatchNorm statistics
    model.eval()
    labels = ["negative", "positive", "surprise"]
    extra = {"norm": KENSHOHARA_2020.to_dict(), "fold": 3, "metrics": {"uf1": 0.61, "uar": 0.6},
             "chain": ["ucf101", "ckplus"], "epoch_curve": torch.arange(3.0)}
    path = tmp_path / "run" / "model.pt"
    save_view_model(path, model, labels, extra)
    save_view_model(path, model, labels, extra)  # overwrites in place
    assert sorted(os.listdir(path.parent)) == ["model.pt"]  # no temporary file left behind

    raw = torch.load(path, map_location="cpu", weights_only=True)
    assert raw["format"] == 1 and raw["kind"] == "view_model" and raw["labels"] == labels

    rebuilt, meta = load_view_model(path)
    assert rebuilt.config == model.config and not rebuilt.training
    assert rebuilt.backbone.conv1.kernel_size == (5, 7, 7)
    assert isinstance(rebuilt.backbone.layer2[0].downsample, ShortcutA)
    assert meta["labels"] == labels and meta["extra"]["metrics"] == {"uf1": 0.61, "uar": 0.6}
    assert torch.equal(meta["extra"]["epoch_curve"], torch.arange(3.0))
    assert Normalisation.from_dict(meta["extra"]["norm"]) == KENSHOHARA_2020
    x = torch.randn(2, 3, 8, 48, 48)
    with torch.no_grad():
        assert torch.equal(rebuilt(x), model(x))

    # our checkpoint is also a pretrained source for the next step of an N-step chain: its backbone
    nxt = create_model("resnet3d_tiny", 5, shortcut="A", conv1_t_size=5)
    report = load_pretrained(nxt, path)
    assert report["head_replaced"] and torch.equal(nxt.layer3[0].conv1.weight, model.backbone.layer3[0].conv1.weight)


def test_checkpoints_refuse_what_weights_only_cannot_read(tmp_path):
    from training.schemes import ViewModel, save_view_model

    model = ViewModel({"name": "resnet3d_tiny"}, 2, "sbml", "O")
    path = tmp_path / "ckpt.pt"
    save_view_model(path, model, ["a", "b"], {"ok": 1})
    before = path.read_bytes()
    with pytest.raises(TypeError, match="Normalisation"):
        save_view_model(path, model, ["a", "b"], {"norm": KENSHOHARA_2017})
    with pytest.raises(ValueError, match="3 labels"):
        save_view_model(path, model, ["a", "b", "c"], {})
    assert path.read_bytes() == before and sorted(os.listdir(tmp_path)) == ["ckpt.pt"]


def test_load_view_model_refuses_foreign_files(tmp_path):
    from training.schemes import load_view_model

    path = tmp_path / "resnet-18-kinetics.pth"
    kenshohara_file(path, create_model("resnet3d_tiny", 400), "resnet-18")
    with pytest.raises(InputError, match="not a checkpoint written by training.loso"):
        load_view_model(path)
    text = tmp_path / "notes.pt"
    text.write_text("hello")
    with pytest.raises(InputError, match="not a readable checkpoint"):
        load_view_model(text)


def test_imagenet_2d_weights_inflate_into_the_3d_resnet(tmp_path):
    """I3D inflation: on a still clip, the inflated 3D network's first convolution equals the 2D one's."""
    import torchvision

    from training.engine import input_normalisation
    from training.models.checkpoint import inflate_2d

    torch.manual_seed(0)
    two_d = torchvision.models.resnet18(weights=None).eval()
    path = tmp_path / "resnet18-imagenet.pth"
    torch.save(two_d.state_dict(), path)
    three_d = create_model("resnet3d_18", 5).eval()
    report = inflate_2d(three_d, path)
    assert "conv1.weight" in report["inflated"] and report["head_replaced"]
    image = torch.randn(1, 3, 64, 64)
    still = image.unsqueeze(2).repeat(1, 1, 7, 1, 1)
    with torch.no_grad():
        torch.testing.assert_close(three_d.conv1(still)[:, :, 3], two_d.conv1(image), atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(three_d.bn1.running_var, two_d.bn1.running_var)
    with pytest.raises(InputError, match="same depth"):
        inflate_2d(create_model("resnet3d_34", 5), path)  # 34 has more blocks than 18
    norm = input_normalisation({"name": "resnet3d_18", "pretrained": str(path), "init": "inflate2d"})
    assert norm["mean"] == [0.485, 0.456, 0.406]
