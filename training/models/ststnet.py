"""STSTNet (Liong, See, Wong, Phan 2019, "Shallow Triple Stream Three-dimensional CNN (STSTNet) for
micro-expression recognition", FG 2019 / MEGC2019): three shallow convolution streams on one onset→apex flow image
of 28×28 whose channels are u, v and optical strain, concatenated, pooled, and a linear classifier.

Layer sizes as the authors' published PyTorch port lists them (christy1206/STSTNet ``main.py``; the paper's Matlab
network is the same): every stream reads all three channels —

- stream 1: conv 3×3, 3 filters, padding 2 → ReLU → BatchNorm → max-pool 3×3 stride 3 padding 1 → dropout 0.5;
- stream 2: the same with 5 filters; stream 3: with 8 filters;
- concatenated (16 channels, 10×10 for a 28×28 input) → average-pool 2×2 stride 2 → 16×5×5 = 400 features → fc.

1,683 learnable parameters for 3 classes (convolutions 448, batch norms 32, classifier 1,203). The authors trained
with Adam, lr 5e-5, batch 256 (Matlab: 5 epochs in ``main.m``; the PyTorch port: 800) and no augmentation.

The three streams read the same input and every layer after their convolutions works channel by channel (ReLU,
batch norm, max-pool, dropout), so they run here as one convolution of 3 + 5 + 8 = 16 filters (stream 1 is output
channels 0–2, stream 2 channels 3–7, stream 3 channels 8–15): the same network, the same initialisation
distribution (fan-in 27 for every filter), in one call instead of three (about 1.6× faster to train on a CPU).

Input through the registry's contract: float ``(N, 3, 1, H, W)`` — the ``flow_image`` input kind, one frame per clip,
``H = W = image_size`` (28 as published). The engine centres flow on its zero-motion value, so a channel's 0 is "no
motion" (:data:`inference.inputs.FLOW_NORMALISATION`).
"""

from __future__ import annotations

from types import MappingProxyType

import torch
from torch import nn

from inference.errors import InputError

from .registry import ModelSpec, Normalisation, VideoClassifier, register

STREAM_WIDTHS = (3, 5, 8)
FLOW_NORM = Normalisation(mean=(128 / 255, 128 / 255, 0.0), std=(0.5, 0.5, 0.5), pixel_scale=1,
                          source="flow image (u, v, strain): zero motion → 0 (fixed scaling: 128, 128, 0)")


class STSTNet(VideoClassifier):
    def __init__(self, num_classes: int, image_size: int = 28, dropout: float = 0.5):
        super().__init__()
        self.image_size = int(image_size)
        if self.image_size < 4:
            raise InputError(f"STSTNet needs flow images of at least 4×4 pixels, got image_size={image_size}")
        width = sum(STREAM_WIDTHS)  # the three streams' filters, side by side
        self.streams = nn.Sequential(nn.Conv2d(3, width, 3, padding=2), nn.ReLU(), nn.BatchNorm2d(width),
                                     nn.MaxPool2d(3, stride=3, padding=1), nn.Dropout(dropout))
        self.pool = nn.AvgPool2d(2, stride=2)
        side = (self.image_size + 4 - 3) // 3 + 1  # conv (padding 2) grows the side by 2; max-pool 3/3 padding 1
        self.feature_dim = width * (side // 2) ** 2
        self.fc = nn.Linear(self.feature_dim, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.streams(flow_image_batch(x, self.image_size, "STSTNet"))).flatten(1)


def flow_image_batch(x: torch.Tensor, image_size: int, name: str) -> torch.Tensor:
    """The ``(N, 3, H, W)`` flow images of a one-frame batch ``(N, 3, 1, H, W)``, or a clear error for another shape
    or another size than the network ``name`` was built for (``image_size``): the flow-image models' input check."""
    if x.dim() != 5 or x.shape[1] != 3 or x.shape[2] != 1:
        raise InputError(f"{name} reads one flow image per clip, (N, 3, 1, H, W), got {tuple(x.shape)}: "
                         f"train on a flow_image cache with train.n_frames=1")
    if x.shape[-2:] != (image_size, image_size):
        raise InputError(f"this {name} was built for {image_size}×{image_size} flow images, got "
                         f"{x.shape[-2]}×{x.shape[-1]}: set train.size={image_size} (or the model's "
                         f"image_size to the size you train at)")
    return x[:, :, 0]


def _build(num_classes: int, **kwargs) -> STSTNet:
    return STSTNet(num_classes, **kwargs)


register(ModelSpec("ststnet", "flow", _build, MappingProxyType({"image_size": 28, "dropout": 0.5}), FLOW_NORM,
                   "STSTNet (Liong et al. 2019): three shallow conv streams (3, 5, 8 filters) on a 28×28 flow image "
                   "(u, v, strain), concatenated, average-pooled, linear classifier"))
