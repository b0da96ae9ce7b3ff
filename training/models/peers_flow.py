"""Shallow flow-image networks: SSSN / DSSN (Khor et al., ICIP 2019) and OFF-ApexNet (Gan et al., 2019).

All three read one onset→apex *flow image* (the ``flow_image`` input kind: a one-frame clip whose three channels
are u, v and optical strain) through the registry's contract, a float ``(N, 3, 1, H, W)``; each stream takes the
channels its config names:

- ``u``, ``v``, ``strain``: the stored channels (after the input normalisation, zero motion at 0);
- ``magnitude``: ``sqrt(u² + v²)`` computed from them (the flow magnitude the DSSN paper streams on).

A grey-level stream (also used by the DSSN paper) is not part of a flow image; it is left out here.

Stream architectures (``stream``):

- ``alexnet2`` (SSSN/DSSN): AlexNet truncated after its second convolution, as the authors' code builds it
  (IcedDoggie/DSSN-MER, Keras): conv 96×11×11 stride 4 + ReLU, max-pool 3/2, local response normalisation
  (n 5, α 1e-4 without the 1/n of PyTorch's form, β 0.75, k 2), conv 256×5×5 padding 2 in two groups + ReLU,
  max-pool 3/2, local response normalisation; 227×227 input → 256×13×13 features. The authors flattened after
  one more zero padding (256×15×15, zeros that carry nothing); here it is left out, so the classifier has
  169/225 of their weights. Their streams started from ImageNet AlexNet weights; these start from scratch.
- ``lenet`` (OFF-ApexNet): conv 6×5×5 ("same") + ReLU, max-pool 2; conv 16×5×5 ("same") + ReLU, max-pool 2;
  28×28 input → 16×7×7 features per stream.

Streams are merged by ``combine``: ``add``, ``multiply`` (element-wise on the streams' feature maps; DSSN's
add and multiply modes) or ``concat``; then ``hidden`` fully connected ReLU layers (OFF-ApexNet: 1024, 1024;
SSSN/DSSN: none) with dropout before each linear layer, and the classifier ``fc``. With ``stream: lenet``,
``streams: [[u], [v]]``, ``combine: concat`` and ``hidden: [1024, 1024]`` the network has 2,664,475 parameters
for 3 classes, the 2.66 M that published comparisons list for OFF-ApexNet (e.g. the Off-TANet README).
"""

from __future__ import annotations

from types import MappingProxyType

import torch
from torch import nn

from inference.errors import InputError

from .registry import ModelSpec, VideoClassifier, register
from .ststnet import FLOW_NORM, flow_image_batch

# The flow-image models' default normalisation (zero motion → 0) is STSTNet's; training on a flow cache uses
# training.engine's flow normalisation (the same values, centred on each image's own zeros for min-max sets).
FLOW_IMAGE_NORM = FLOW_NORM
CHANNELS = ("u", "v", "strain")
DERIVED = ("magnitude",)
COMBINE = ("add", "multiply", "concat")


def _alexnet2(cin: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, 96, 11, stride=4), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
        nn.LocalResponseNorm(5, alpha=5e-4, beta=0.75, k=2.0),  # PyTorch divides alpha by n; Keras' layer did not
        nn.Conv2d(96, 256, 5, padding=2, groups=2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
        nn.LocalResponseNorm(5, alpha=5e-4, beta=0.75, k=2.0),
    )


def _lenet(cin: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, 6, 5, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(2),
    )


STREAMS = {"alexnet2": _alexnet2, "lenet": _lenet}


def select_channels(x: torch.Tensor, names) -> torch.Tensor:
    """``(N, 3, H, W)`` flow image (u, v, strain) → ``(N, len(names), H, W)`` with the named channels."""
    out = []
    for name in names:
        if name == "magnitude":
            out.append(torch.sqrt(x[:, 0] ** 2 + x[:, 1] ** 2 + 1e-12))
        else:
            out.append(x[:, CHANNELS.index(name)])
    return torch.stack(out, 1)


class ShallowFlowNet(VideoClassifier):
    """One or more shallow 2D CNN streams on channels of a flow image, merged, then a small classifier."""

    def __init__(self, num_classes: int, streams, stream: str = "alexnet2", combine: str = "concat",
                 hidden=(), dropout: float = 0.5, image_size: int = 227):
        super().__init__()
        streams = [[str(c) for c in ([s] if isinstance(s, str) else s)] for s in streams]
        known = CHANNELS + DERIVED
        if not streams or any(not s for s in streams):
            raise InputError("streams must list one or more streams, each a list of channels, e.g. [[magnitude], "
                             "[strain]]")
        bad = sorted({c for s in streams for c in s if c not in known})
        if bad:
            raise InputError(f"unknown flow-image channel(s) {', '.join(bad)}; choose from {', '.join(known)}")
        if stream not in STREAMS:
            raise InputError(f"unknown stream architecture {stream!r}; choose one of {', '.join(STREAMS)}")
        if combine not in COMBINE:
            raise InputError(f"unknown combine mode {combine!r}; choose one of {', '.join(COMBINE)}")
        self.streams, self.combine, self.image_size = streams, combine, int(image_size)
        self.branches = nn.ModuleList(STREAMS[stream](len(s)) for s in streams)
        with torch.no_grad():
            probe = self.branches[0](torch.zeros(1, len(streams[0]), self.image_size, self.image_size))
        width = probe.numel() * (len(streams) if combine == "concat" else 1)
        layers: list[nn.Module] = []
        for h in hidden:
            layers += [nn.Dropout(dropout), nn.Linear(width, int(h)), nn.ReLU(inplace=True)]
            width = int(h)
        layers.append(nn.Dropout(dropout))
        self.head = nn.Sequential(*layers)
        self.feature_dim = width
        self.fc = nn.Linear(width, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        img = flow_image_batch(x, self.image_size, type(self).__name__)
        maps = [branch(select_channels(img, names)) for branch, names in zip(self.branches, self.streams)]
        if self.combine == "concat":
            f = torch.cat([m.flatten(1) for m in maps], 1)
        else:
            f = maps[0]
            for m in maps[1:]:
                f = f + m if self.combine == "add" else f * m
            f = f.flatten(1)
        return self.head(f)


def _build(num_classes: int, **kwargs) -> ShallowFlowNet:
    return ShallowFlowNet(num_classes, **kwargs)


def _register(name: str, description: str, **kwargs) -> None:
    defaults = {"streams": None, "stream": "alexnet2", "combine": "concat", "hidden": [], "dropout": 0.5,
                "image_size": 227}
    defaults.update(kwargs)
    register(ModelSpec(name, "flow", _build, MappingProxyType(defaults), FLOW_IMAGE_NORM, description))


_register("sssn", "SSSN (Khor et al. 2019): one truncated-AlexNet stream on a flow-image channel set (227 px)",
          streams=[["strain"]])
_register("dssn", "DSSN (Khor et al. 2019): two truncated-AlexNet streams (flow magnitude, strain) merged by "
          "add, multiply or concat (227 px)", streams=[["magnitude"], ["strain"]], combine="multiply")
_register("off_apexnet", "OFF-ApexNet (Gan et al. 2019): two LeNet-like streams on horizontal and vertical "
          "onset→apex flow, concatenated, FC 1024-1024 (28 px)", streams=[["u"], ["v"]], stream="lenet",
          combine="concat", hidden=[1024, 1024], image_size=28)
