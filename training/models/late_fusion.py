"""Late fusion of a grey-level clip stream and an optical-flow clip stream (Hong, Lee, Jung, "Late Fusion-Based
Video Transformer for Facial Micro-Expression Recognition", Appl. Sci. 2022, 12(3), 1169).

Each stream is a video backbone from the registry (``backbone``: ``swin3d_t`` as in the paper, or any other, e.g.
``resnext3d_101``), built without its classifier; each stream has its own linear classifier, and the two are fused
late (``fusion``):

- ``logits``: the mean of the two streams' logits. That is one linear layer on the concatenated features (the
  registry contract's ``fc``), so SBML/FSB and export see an ordinary model.
- ``probs``: the mean of the two streams' class probabilities; ``fc`` returns its logarithm, so a softmax of the
  output is exactly that mean and the cross-entropy is its negative log-likelihood.

The paper's section 3.3 could not be consulted here, so which of the two it uses is left to the config
(``training/configs/peers/late_fusion_*.yaml`` say so); both streams are trained together on the fused output
(not one after the other).

Input (the one-input contract, float ``(N, 3, T, H, W)``): ``layout`` names what the three channels hold, in order:

- ``[r, g, b]``: an RGB clip (input kind ``rgb``); the grey level is 0.299 R + 0.587 G + 0.114 B;
- ``[u, v, strain]``: a flow clip (input kind ``flow_clip``: the flow of frame pairs, T − 1 frames);
- ``[grey, u, v]``: a grey + flow clip (input kind ``grey_flow_clip``, :func:`inference.motion.grey_flow_clip`:
  each frame's grey level beside the flow that ends at it, over TIM-normalised frames) — the layout the grey+flow
  option needs; the grey and flow options can read it too.

``features`` chooses the streams: ``grey`` (the grey level repeated on three channels), ``flow`` (u, v and the
strain, or the flow magnitude when the layout has no strain) or ``grey+flow`` (both, fused late). Starting weights:
:meth:`LateFusion.load_stream_weights` loads each stream from its own backbone file (e.g. Kinetics Video Swin-T for
the grey stream, a flow-pretrained one for the flow stream), the files' classifiers left out; the LOSO engine calls it
for the config's ``model.stream_pretrained: {grey: PATH, flow: PATH}`` (a stream not named starts from scratch).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

import torch
import torch.nn.functional as F
from torch import nn

from inference.errors import InputError

# torchvision_video first: it registers swin3d_t, whose normalisation is this model's default
from . import torchvision_video  # noqa: F401
from .registry import ModelSpec, VideoClassifier, create_model, model_spec, register

LAYOUTS = {("r", "g", "b"), ("u", "v", "strain"), ("grey", "u", "v")}
FEATURES = ("grey", "flow", "grey+flow")
FUSIONS = ("logits", "probs")
GREY_WEIGHTS = (0.299, 0.587, 0.114)


class LateFusionHead(nn.Module):
    """One linear classifier per stream on its part of the concatenated features, fused by mean logits or mean
    probabilities (returned as log-probabilities)."""

    def __init__(self, dims: tuple[int, ...], num_classes: int, fusion: str):
        super().__init__()
        self.dims, self.fusion = tuple(dims), fusion
        self.heads = nn.ModuleList(nn.Linear(d, num_classes) for d in dims)
        self.in_features, self.out_features = sum(dims), num_classes

    @property
    def weight(self) -> torch.Tensor:  # what reset_classifier reads for device and dtype
        return self.heads[0].weight

    def stream_logits(self, f: torch.Tensor) -> list[torch.Tensor]:
        return [h(part) for h, part in zip(self.heads, torch.split(f, self.dims, dim=-1))]

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        z = self.stream_logits(f)
        if self.fusion == "logits":
            return torch.stack(z).mean(0)
        return torch.logsumexp(torch.stack([F.log_softmax(x.float(), -1) for x in z]), 0) - torch.log(
            torch.tensor(float(len(z)), device=f.device))


class LateFusion(VideoClassifier):
    def __init__(self, num_classes: int, backbone: str = "swin3d_t", features: str = "grey+flow",
                 fusion: str = "logits", layout=("grey", "u", "v"), backbone_kwargs=None):
        super().__init__()
        layout = tuple(str(c) for c in layout)
        if layout not in LAYOUTS:
            raise InputError(f"layout {list(layout)} is not one of {', '.join(str(list(x)) for x in sorted(LAYOUTS))}")
        if features not in FEATURES:
            raise InputError(f"unknown features {features!r}; choose one of {', '.join(FEATURES)}")
        if fusion not in FUSIONS:
            raise InputError(f"unknown fusion {fusion!r}; choose one of {', '.join(FUSIONS)}")
        has_grey, has_flow = layout != ("u", "v", "strain"), layout != ("r", "g", "b")
        if ("grey" in features and not has_grey) or ("flow" in features and not has_flow):
            raise InputError(f"features {features!r} need channels that layout {list(layout)} does not hold")
        model_spec(backbone)  # an unknown name is a clear error
        self.layout, self.features, self.fusion = layout, features, fusion
        self.stream_names = tuple(features.split("+"))
        self.streams = nn.ModuleDict()
        for name in self.stream_names:
            net = create_model(backbone, num_classes, **dict(backbone_kwargs or {}))
            net.fc = nn.Identity()  # the fusion head holds the classifiers
            self.streams[name] = net
        dims = tuple(self.streams[n].feature_dim for n in self.stream_names)
        self.feature_dim = sum(dims)
        self.fc = self._head(num_classes, dims)

    def _head(self, num_classes: int, dims: tuple[int, ...]) -> nn.Module:
        return nn.Linear(dims[0], num_classes) if len(dims) == 1 else LateFusionHead(dims, num_classes, self.fusion)

    def reset_classifier(self, num_classes: int) -> None:
        device = self.fc.weight.device
        self.fc = self._head(num_classes, tuple(self.streams[n].feature_dim for n in self.stream_names)).to(device)
        if getattr(self, "config", None) is not None:
            self.config["num_classes"] = num_classes

    def load_stream_weights(self, paths) -> dict:
        """Load backbone weights files into the streams: ``paths`` maps stream names (``grey``, ``flow``) to files,
        or is one file for every stream. Each file is read with ``torch.load(..., weights_only=True)``
        (:func:`~training.models.checkpoint.load_pretrained`): a missing file, a file of another architecture or
        shape fails naming the keys; the file's classifier (``fc.*``, e.g. Kinetics' 400 classes) is left out, as
        the fusion head holds the classifiers. Returns a report per stream (``loaded``, ``unexpected``: the keys
        left out)."""
        from .checkpoint import load_pretrained

        if not isinstance(paths, Mapping):
            paths = {name: paths for name in self.stream_names}
        unknown = sorted(set(paths) - set(self.stream_names))
        if unknown:
            raise InputError(f"no stream named {', '.join(map(repr, unknown))} in this late-fusion model (features "
                             f"{self.features!r}); its streams are {', '.join(self.stream_names)}")
        return {name: load_pretrained(self.streams[name], path) for name, path in paths.items()}

    def stream_inputs(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """The three-channel input of each stream from the ``(N, 3, T, H, W)`` clip."""
        c = dict(zip(self.layout, x.unbind(1)))
        out = {}
        if "grey" in self.stream_names:
            grey = c["grey"] if "grey" in c else sum(w * c[k] for w, k in zip(GREY_WEIGHTS, "rgb"))
            out["grey"] = torch.stack([grey] * 3, 1)
        if "flow" in self.stream_names:
            third = c["strain"] if "strain" in c else torch.sqrt(c["u"] ** 2 + c["v"] ** 2 + 1e-12)
            out["flow"] = torch.stack([c["u"], c["v"], third], 1)
        return out

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        inputs = self.stream_inputs(x)
        return torch.cat([self.streams[n].forward_features(inputs[n]) for n in self.stream_names], 1)


def _build(num_classes: int, **kwargs) -> LateFusion:
    return LateFusion(num_classes, **kwargs)


register(ModelSpec(
    "late_fusion", "fusion", _build,
    MappingProxyType({"backbone": "swin3d_t", "features": "grey+flow", "fusion": "logits",
                      "layout": ["grey", "u", "v"], "backbone_kwargs": {}}),
    model_spec("swin3d_t").norm,
    "late fusion of a grey-clip stream and a flow-clip stream, each a registry video backbone (Hong et al. 2022)",
))
