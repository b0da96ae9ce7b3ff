"""3D ResNets and ResNeXt in the parameter layout of kenshohara's 3D-ResNets-PyTorch.

Keys match the public Kinetics checkpoints of that repository (2017 release: resnet-18/34/50/101
and resnext-101-kinetics.pth; 2020 release: r3d18/34/50/101_K_200ep.pth etc.), so their
``state_dict`` loads as it is:

- ``conv1`` Conv3d(3, 64, (t, 7, 7), stride (1, 2, 2), padding (t // 2, 3, 3), no bias), t = 7;
  ``bn1``; ReLU; MaxPool3d(3, stride 2, padding 1); ``layer1``..``layer4``; ``fc``.
- BasicBlock (expansion 1): ``conv1`` 3x3x3 (stride), ``bn1``, ``conv2`` 3x3x3, ``bn2``.
  Bottleneck (expansion 4): ``conv1`` 1x1x1, ``bn1``, ``conv2`` 3x3x3 (stride), ``bn2``,
  ``conv3`` 1x1x1, ``bn3``. ResNeXtBottleneck (expansion 2): the same with
  mid = cardinality * planes // 32 channels and ``conv2`` grouped by cardinality.
- Stage widths 64/128/256/512 (ResNeXt: 128/256/512/1024); stages 2..4 start with stride 2.
- Shortcut "B": ``downsample = Sequential(Conv3d 1x1x1 stride s, BatchNorm3d)`` where the shape
  changes (keys ``layerN.0.downsample.0.weight``, ``layerN.0.downsample.1.*``).
  Shortcut "A" (the 2017 resnet-18/34 files): no parameters, strided identity with the new
  channels zero-padded. (The 2017 code also cut the gradient through that shortcut with
  ``.data``; here it flows, as in any residual net.)

Differences that change no weights: global pooling is adaptive (any T, H, W instead of the fixed
``AvgPool3d`` sized for 16x112x112), and ``forward_features`` exposes the pooled features.
"""

from __future__ import annotations

from types import MappingProxyType

import torch
import torch.nn.functional as F
from torch import nn

from .registry import ModelSpec, Normalisation, PretrainedWeights, VideoClassifier, register

# The 2017 release was trained on raw 0-255 pixels minus the ActivityNet mean, std 1
# (3D-ResNets-PyTorch 2017 opts: --norm_value 1, --mean_dataset activitynet, std_norm off).
KENSHOHARA_2017 = Normalisation(
    mean=(114.7748, 107.7354, 99.4750), std=(1.0, 1.0, 1.0), pixel_scale=255,
    source="3D-ResNets-PyTorch 2017 (ActivityNet mean, 0-255 pixels, no std)",
)
# The 2020 release: 0-1 pixels, Kinetics mean and std (mean.py get_mean_std(1, "kinetics")).
KENSHOHARA_2020 = Normalisation(
    mean=(0.4345, 0.4051, 0.3775), std=(0.2768, 0.2713, 0.2737), pixel_scale=1,
    source="3D-ResNets-PyTorch 2020 (Kinetics mean/std, 0-1 pixels)",
)

_SRC_2017 = "kenshohara/3D-ResNets-PyTorch, 2017 release (Kinetics-400)"
_SRC_2020 = "kenshohara/3D-ResNets-PyTorch, 2020 release"


def _conv3(cin: int, cout: int, stride: int = 1, groups: int = 1) -> nn.Conv3d:
    return nn.Conv3d(cin, cout, kernel_size=3, stride=stride, padding=1, groups=groups, bias=False)


def _conv1(cin: int, cout: int, stride: int = 1) -> nn.Conv3d:
    return nn.Conv3d(cin, cout, kernel_size=1, stride=stride, bias=False)


class ShortcutA(nn.Module):
    """Parameter-free shortcut: strided identity, extra channels zero."""

    def __init__(self, out_channels: int, stride: int):
        super().__init__()
        self.out_channels, self.stride = out_channels, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.stride
        if s != 1:
            x = x[:, :, ::s, ::s, ::s]  # what avg_pool3d(kernel 1, stride s) does
        return F.pad(x, (0, 0, 0, 0, 0, 0, 0, self.out_channels - x.shape[1]))


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 cardinality: int = 1):
        super().__init__()
        self.conv1 = _conv3(cin, planes, stride)
        self.bn1 = nn.BatchNorm3d(planes)
        self.conv2 = _conv3(planes, planes)
        self.bn2 = nn.BatchNorm3d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.relu(out + shortcut)


class Bottleneck(nn.Module):
    """ResNet bottleneck (expansion 4); with ``cardinality > 1`` and expansion 2 it is ResNeXt's."""

    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 cardinality: int = 1):
        super().__init__()
        mid = self.mid_planes(planes, cardinality)
        self.conv1 = _conv1(cin, mid)
        self.bn1 = nn.BatchNorm3d(mid)
        self.conv2 = _conv3(mid, mid, stride, groups=cardinality)
        self.bn2 = nn.BatchNorm3d(mid)
        self.conv3 = _conv1(mid, planes * self.expansion)
        self.bn3 = nn.BatchNorm3d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    @staticmethod
    def mid_planes(planes: int, cardinality: int) -> int:
        return planes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.relu(out + shortcut)


class ResNeXtBottleneck(Bottleneck):
    expansion = 2

    @staticmethod
    def mid_planes(planes: int, cardinality: int) -> int:
        return cardinality * planes // 32


BLOCKS = {"basic": BasicBlock, "bottleneck": Bottleneck, "resnext": ResNeXtBottleneck}


class ResNet3D(VideoClassifier):
    """3D ResNet / ResNeXt, kenshohara layout. ``block`` is "basic", "bottleneck" or "resnext"."""

    def __init__(
        self,
        num_classes: int,
        block: str,
        layers: tuple[int, int, int, int] | list[int],
        widths: tuple[int, int, int, int] | list[int] = (64, 128, 256, 512),
        stem_width: int = 64,
        shortcut: str = "B",
        cardinality: int = 1,
        conv1_t_size: int = 7,
        conv1_t_stride: int = 1,
    ):
        super().__init__()
        if shortcut not in ("A", "B"):
            raise ValueError(f"shortcut must be 'A' or 'B', got {shortcut!r}")
        Block = BLOCKS[block]
        self.conv1 = nn.Conv3d(
            3, stem_width, kernel_size=(conv1_t_size, 7, 7), stride=(conv1_t_stride, 2, 2),
            padding=(conv1_t_size // 2, 3, 3), bias=False,
        )
        self.bn1 = nn.BatchNorm3d(stem_width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool3d(kernel_size=3, stride=2, padding=1)
        cin = stem_width
        for i, (planes, n) in enumerate(zip(widths, layers)):
            stride = 1 if i == 0 else 2
            cout = planes * Block.expansion
            downsample = None
            if stride != 1 or cin != cout:
                downsample = ShortcutA(cout, stride) if shortcut == "A" else nn.Sequential(
                    _conv1(cin, cout, stride), nn.BatchNorm3d(cout))
            blocks = [Block(cin, planes, stride, downsample, cardinality)]
            blocks += [Block(cout, planes, 1, None, cardinality) for _ in range(1, n)]
            self.add_module(f"layer{i + 1}", nn.Sequential(*blocks))
            cin = cout
        self.avgpool = nn.AdaptiveAvgPool3d(1)
        self.feature_dim = cin
        self.fc = nn.Linear(cin, num_classes)

        for m in self.modules():
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm3d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(self.avgpool(x), 1)


def _builder(**arch):
    def build(num_classes: int, **kwargs) -> ResNet3D:
        return ResNet3D(num_classes, **arch, **kwargs)

    return build


_KWARGS = {"shortcut": "B", "conv1_t_size": 7, "conv1_t_stride": 1}


def _k2017(filename: str, **kwargs) -> PretrainedWeights:
    return PretrainedWeights(filename, 400, KENSHOHARA_2017, MappingProxyType(kwargs), _SRC_2017)


# 2020 release: suffix → number of classes (K Kinetics-700, M Moments in Time, S STAIR-Actions)
_2020_CLASSES = {"K": 700, "KM": 1039, "KMS": 1139, "KS": 800, "M": 339, "MS": 439, "S": 100}


def _k2020(depth: int, *datasets: str) -> tuple[PretrainedWeights, ...]:
    return tuple(
        PretrainedWeights(f"r3d{depth}_{d}_200ep.pth", _2020_CLASSES[d], KENSHOHARA_2020, MappingProxyType({}),
                          _SRC_2020)
        for d in datasets
    )


def _register(name, arch, description, norm, pretrained=(), kwargs=_KWARGS):
    register(ModelSpec(name, "resnet3d", _builder(**arch), MappingProxyType(dict(kwargs)), norm, description,
                       tuple(pretrained)))


_register(
    "resnet3d_18", {"block": "basic", "layers": (2, 2, 2, 2)}, "3D ResNet-18 (kenshohara layout)", KENSHOHARA_2020,
    (_k2017("resnet-18-kinetics.pth", shortcut="A"),) + _k2020(18, "K", "KM"),
)
_register(
    "resnet3d_34", {"block": "basic", "layers": (3, 4, 6, 3)}, "3D ResNet-34 (kenshohara layout)", KENSHOHARA_2020,
    (_k2017("resnet-34-kinetics.pth", shortcut="A"),) + _k2020(34, "K", "KM"),
)
_register(
    "resnet3d_50", {"block": "bottleneck", "layers": (3, 4, 6, 3)}, "3D ResNet-50 (kenshohara layout)", KENSHOHARA_2020,
    (_k2017("resnet-50-kinetics.pth"),) + _k2020(50, "K", "KM", "KMS", "KS", "M", "MS", "S"),
)
_register(
    "resnet3d_101", {"block": "bottleneck", "layers": (3, 4, 23, 3)}, "3D ResNet-101 (kenshohara layout)",
    KENSHOHARA_2020, (_k2017("resnet-101-kinetics.pth"),) + _k2020(101, "K", "KM"),
)
_register(
    "resnext3d_101",
    {"block": "resnext", "layers": (3, 4, 23, 3), "widths": (128, 256, 512, 1024), "cardinality": 32},
    "3D ResNeXt-101 32x (kenshohara layout; the Décalcomanie paper's backbone)", KENSHOHARA_2017,
    (_k2017("resnext-101-kinetics.pth"), _k2017("resnext-101-64f-kinetics.pth")),
)
_register(
    "resnet3d_tiny",
    {"block": "basic", "layers": (1, 1, 1, 1), "widths": (8, 16, 32, 64), "stem_width": 8},
    "tiny 3D ResNet (one BasicBlock per stage, widths 8-64) for CPU tests and smoke runs", KENSHOHARA_2020,
    kwargs={**_KWARGS, "conv1_t_size": 3},
)
