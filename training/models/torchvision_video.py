"""torchvision's video classifiers behind the registry interface.

Built with ``weights=None`` (never a download); a local torchvision state dict is loaded with
:func:`training.models.checkpoint.load_pretrained`. The torchvision modules are kept under their
torchvision names, so a torchvision state dict loads as it is; only swin3d's classifier ``head``
is called ``fc`` here (``pretrained_key_map`` renames it while loading).

The published weights files and their normalisation are read from torchvision's own weights
enums (their URLs and ``transforms()`` presets), nothing is copied by hand: the ResNets use
torchvision's Kinetics mean/std, swin3d ImageNet's, both on 0-1 pixels.
"""

from __future__ import annotations

import os
from types import MappingProxyType

import torch
from torchvision.models import video as tvv

from .registry import ModelSpec, Normalisation, PretrainedWeights, VideoClassifier, register


class TorchvisionVideo(VideoClassifier):
    """A torchvision video model: its children minus the classifier, plus ``fc``."""

    def __init__(self, builder, num_classes: int):
        super().__init__()
        net = builder(weights=None, num_classes=num_classes)
        self.is_swin = isinstance(net, tvv.SwinTransformer3d)
        head_name = "head" if self.is_swin else "fc"
        for child_name, child in net.named_children():
            if child_name != head_name:
                self.add_module(child_name, child)
        self.fc = getattr(net, head_name)
        self.feature_dim = self.fc.in_features
        if self.is_swin:
            self.pretrained_key_map = MappingProxyType({"head.": "fc."})

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        if self.is_swin:  # torchvision SwinTransformer3d.forward without the head
            x = self.norm(self.features(self.pos_drop(self.patch_embed(x))))  # (N, T', H', W', C)
            x = x.permute(0, 4, 1, 2, 3)
        else:  # VideoResNet.forward without the head
            x = self.layer4(self.layer3(self.layer2(self.layer1(self.stem(x)))))
        return torch.flatten(self.avgpool(x), 1)


def _norm(weights_enum) -> Normalisation:
    t = weights_enum.transforms()
    return Normalisation(tuple(t.mean), tuple(t.std), 1, f"torchvision {weights_enum}")


def _register(name: str, weights_cls, description: str) -> None:
    builder = getattr(tvv, name)
    pretrained = tuple(
        PretrainedWeights(
            os.path.basename(w.url), len(w.meta["categories"]), _norm(w), MappingProxyType({}), f"torchvision {w}")
        for w in weights_cls
    )

    def build(num_classes: int) -> TorchvisionVideo:
        return TorchvisionVideo(builder, num_classes)

    register(ModelSpec(name, "torchvision", build, MappingProxyType({}), _norm(weights_cls.DEFAULT), description,
                       pretrained))


_register("r3d_18", tvv.R3D_18_Weights, "torchvision R3D-18 (3D ResNet-18, Kinetics-400 weights available)")
_register("r2plus1d_18", tvv.R2Plus1D_18_Weights, "torchvision R(2+1)D-18 (Kinetics-400 weights available)")
_register("swin3d_t", tvv.Swin3D_T_Weights, "torchvision Video Swin-T (Kinetics-400 weights available)")
_register("swin3d_s", tvv.Swin3D_S_Weights, "torchvision Video Swin-S (Kinetics-400 weights available)")
_register("swin3d_b", tvv.Swin3D_B_Weights, "torchvision Video Swin-B (Kinetics-400 / IN-22K weights available)")
