"""The model registry: every network is chosen by name, built by :func:`create_model`.

In the spirit of timm's ``create_model``: model files hold architecture only and register
themselves here with a :class:`ModelSpec`; pretrained weights are resolved separately
(:func:`training.models.checkpoint.load_pretrained`), and the normalisation a weights file was
trained with is recorded next to the architecture (:attr:`ModelSpec.pretrained`), so training and
export feed the network the pixels it expects.

Every model built here is a :class:`VideoClassifier`:

- input float ``(N, 3, T, H, W)``, any frame count and image size the architecture allows;
- ``forward_features(x) -> (N, feature_dim)``; ``fc = nn.Linear(feature_dim, num_classes)``;
  ``forward(x) == fc(forward_features(x))``;
- ``reset_classifier(num_classes)`` installs a freshly initialised head;
- ``config`` holds ``{"name", "num_classes", "kwargs"}``: enough to rebuild it
  (``create_model(c["name"], c["num_classes"], **c["kwargs"])``), and ``spec`` its :class:`ModelSpec`.
"""

from __future__ import annotations

from .registry import (
    ModelSpec,
    Normalisation,
    PretrainedWeights,
    VideoClassifier,
    create_model,
    model_names,
    model_spec,
    register,
)

__all__ = [
    "Normalisation",
    "PretrainedWeights",
    "ModelSpec",
    "VideoClassifier",
    "register",
    "create_model",
    "model_names",
    "model_spec",
]

# The model files register their specs on import (they import training.models.registry).
# peers_flow: SSSN, DSSN, OFF-ApexNet; ststnet: STSTNet (flow images); late_fusion: grey + flow video streams;
# au_fusion: facial-region flow + AU detection
from . import au_fusion, late_fusion, peers_flow, resnet3d, ststnet, torchvision_video  # noqa: F401
