"""The registry's types and functions (:mod:`training.models` re-exports them and imports the model files, which
register themselves here): :class:`ModelSpec`, :class:`VideoClassifier`, :func:`register`, :func:`create_model`.
A model file imports this module, never the package, so the package and its model files form no import circle."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import torch
from torch import nn

from inference.errors import InputError


@dataclass(frozen=True)
class Normalisation:
    """How pixels are turned into network input: ``(x01 * pixel_scale - mean) / std`` for pixels
    ``x01`` in 0-1.

    ``pixel_scale`` is the pixel range that ``mean`` and ``std`` refer to: 255 means the network
    was trained on raw 0-255 values (kenshohara 2017), 1 on 0-1 values. As a plain dict
    (:meth:`to_dict`, what configs and checkpoints hold) the keys are ``mean``, ``std``,
    ``pixel_scale`` and ``source``, the arguments of ``training.data.normalise``; a model applies it through its
    :class:`inference.inputs.Preprocessing` (``training.data.network_input``, the export graph).
    """

    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    pixel_scale: float
    source: str = ""

    def to_dict(self) -> dict:
        return {"mean": list(self.mean), "std": list(self.std), "pixel_scale": self.pixel_scale, "source": self.source}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Normalisation":
        return cls(tuple(d["mean"]), tuple(d["std"]), d.get("pixel_scale", 1), d.get("source", ""))


@dataclass(frozen=True)
class PretrainedWeights:
    """A published weights file this architecture loads, with what it needs to be used right."""

    filename: str  # the name it is published under (matched on a path's basename)
    num_classes: int  # classes of its classifier (dropped when fine-tuning to other classes)
    norm: Normalisation
    kwargs: Mapping[str, Any] = field(default_factory=dict)  # constructor kwargs it needs
    source: str = ""


@dataclass(frozen=True)
class ModelSpec:
    name: str
    family: str  # "resnet3d" (kenshohara layout) or "torchvision"
    builder: Callable[..., "VideoClassifier"] = field(repr=False)
    default_kwargs: Mapping[str, Any]
    norm: Normalisation  # used when no weights file says otherwise
    description: str
    pretrained: tuple[PretrainedWeights, ...] = ()

    def weights_for(self, path: str | os.PathLike | None) -> PretrainedWeights | None:
        """The known published weights file with this path's file name, if any."""
        if path is None:
            return None
        base = os.path.basename(os.fspath(path))
        return next((w for w in self.pretrained if w.filename == base), None)

    def norm_for(self, weights: str | os.PathLike | None = None) -> Normalisation:
        """The normalisation for this model initialised from ``weights`` (a path or published file
        name): the known file's, else the spec's default :attr:`norm`."""
        known = self.weights_for(weights)
        return known.norm if known is not None else self.norm

    def normalisation_for(self, weights: str | os.PathLike | None = None) -> dict:
        """:meth:`norm_for` as a plain dict (``mean``, ``std``, ``pixel_scale``, ``source``)."""
        return self.norm_for(weights).to_dict()

    @property
    def normalisation(self) -> dict:
        """The default normalisation as a plain dict; use :meth:`normalisation_for` when the
        weights file is known (the 2017 and 2020 kenshohara files differ)."""
        return self.norm.to_dict()


class VideoClassifier(nn.Module):
    """Base of every registered model: a backbone with ``forward_features`` and a linear ``fc``."""

    feature_dim: int
    fc: nn.Linear
    spec: ModelSpec
    config: dict
    # prefixes renamed when loading a foreign state dict (e.g. torchvision swin's "head." → "fc.")
    pretrained_key_map: Mapping[str, str] = MappingProxyType({})

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.forward_features(x))

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the head by a freshly initialised ``nn.Linear(feature_dim, num_classes)``."""
        old = self.fc.weight
        self.fc = nn.Linear(self.feature_dim, num_classes).to(device=old.device, dtype=old.dtype)
        if getattr(self, "config", None) is not None:
            self.config["num_classes"] = num_classes


_REGISTRY: dict[str, ModelSpec] = {}


def register(spec: ModelSpec) -> ModelSpec:
    if spec.name in _REGISTRY:
        raise ValueError(f"model {spec.name!r} registered twice")
    _REGISTRY[spec.name] = spec
    return spec


def model_names() -> list[str]:
    return sorted(_REGISTRY)


def model_spec(name: str) -> ModelSpec:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise InputError(f"unknown model {name!r}; choose one of: {', '.join(model_names())}") from None


def create_model(
    name: str, num_classes: int, pretrained: str | os.PathLike | None = None, **kwargs: Any
) -> VideoClassifier:
    """Build the model ``name`` with a ``num_classes`` head.

    ``kwargs`` override the spec's ``default_kwargs`` (only the names listed there are accepted).
    ``pretrained``, a local weights file, is loaded with
    :func:`~training.models.checkpoint.load_pretrained` (strict on the backbone; a classifier of
    another size is replaced by a fresh one); its report is kept as ``model.pretrained_report``.
    The weights path is not part of ``model.config``: a saved checkpoint holds the weights.
    """
    spec = model_spec(name)
    unknown = sorted(set(kwargs) - set(spec.default_kwargs))
    if unknown:
        takes = ", ".join(sorted(spec.default_kwargs)) or "no arguments"
        raise InputError(f"model {name!r} does not take {', '.join(unknown)}; it takes: {takes}")
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1:
        raise InputError(f"num_classes must be a positive integer, got {num_classes!r}")
    merged = {**spec.default_kwargs, **kwargs}
    model = spec.builder(num_classes=num_classes, **merged)
    model.spec = spec
    model.config = {"name": name, "num_classes": num_classes, "kwargs": dict(merged)}
    if pretrained is not None:
        from .checkpoint import load_pretrained

        model.pretrained_report = load_pretrained(model, pretrained)
    return model
