"""AU-fusion: flow features of facial regions plus an action-unit (AU) detection branch, fused for the emotion
(the issue's ICASSP 2024 peer; its exact layers could not be consulted here, so this is our construction of what
the issue describes, with the magnification and interpolation it names replaced as it allows).

Input: a flow clip, float ``(N, 3, T, H, W)`` with channels u, v, strain (input kind ``flow_clip``; a one-frame
flow image works too), computed from magnified frames (the paper magnifies with a learned magnifier and
interpolates frames with RIFE; here: the linear Eulerian magnifier and TIM of :mod:`inference.motion`).

- **Regions** of the aligned face (eye line level, midline at x = W/2; boxes as fractions of the crop,
  :data:`REGIONS`: the two eye-and-brow areas, the nose and the mouth) are cut out and resized to
  ``region_size``², each encoded by one shared small 3D CNN (conv 3→16, 16→32, BatchNorm, ReLU, pooled) plus a
  learned per-region offset.
- **AU branch**: the region features → ``au_hidden`` → one logit per AU in ``aus`` (multi-label, trained with
  binary cross-entropy on the datasets' own AU codes: :func:`parse_aus`, :func:`au_targets`).
- **Fusion**: the region features and the AU probabilities → a ``fusion_dim`` feature (``forward_features``) →
  ``fc`` (the emotion). :meth:`AUFusion.forward_multi` returns both heads; :func:`multitask_loss` is the training
  loss (``emotion_weight`` × emotion cross-entropy + ``au_weight`` × AU binary cross-entropy over the clips that have
  AU codes; both weights are model kwargs, so the config sets them) and :func:`au_f1` the AU figure reported beside
  UF1/UAR. The LOSO engine trains it so: ``training.prepare`` keeps each clip's AU cell (manifest ``action_units``),
  the data bank makes the targets (``ClipBank.au``, ``au_mask``) and ``training.schemes.ViewModel.loss`` calls
  :meth:`AUFusion.features_and_aus` and :func:`multitask_loss` for every view.
"""

from __future__ import annotations

import re
from types import MappingProxyType

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from inference.errors import InputError

from .peers_flow import FLOW_IMAGE_NORM
from .registry import ModelSpec, VideoClassifier, register

# (top, bottom, left, right) as fractions of the aligned crop, image left/right
REGIONS = {
    "eye_brow_left": (0.10, 0.50, 0.05, 0.50),
    "eye_brow_right": (0.10, 0.50, 0.50, 0.95),
    "nose": (0.35, 0.70, 0.25, 0.75),
    "mouth": (0.60, 0.95, 0.20, 0.80),
}
# AUs coded in both CASME II and SAMM often enough to learn (upper face 1, 2, 4, 5, 6, 7; lower face 9-26)
DEFAULT_AUS = (1, 2, 4, 5, 6, 7, 9, 10, 12, 14, 15, 17, 20, 23, 24, 25, 26)
_AU = re.compile(r"(\d+)")


def parse_aus(text) -> set[int]:
    """AU numbers of a sheet's "Action Units" cell: ``"4+L10"`` → {4, 10}; ``"R12+R15"`` → {12, 15}; ``"AU1+2"`` →
    {1, 2}; ``"12B"`` (intensity) → {12}. Side (L/R) and intensity letters are dropped; an empty cell → empty set."""
    if text is None or (isinstance(text, float) and text != text):
        return set()
    aus = set()
    for token in re.split(r"[+,/;\s]+", str(text)):
        m = _AU.search(token)
        if m:
            aus.add(int(m.group(1)))
    return aus


def au_targets(cells, aus=DEFAULT_AUS) -> tuple[np.ndarray, np.ndarray]:
    """Multi-hot targets ``(N, len(aus))`` for the AU cells of N clips, and a mask ``(N,)``: False for a clip with no
    AU code at all (its AU loss is left out rather than read as "no AU active")."""
    sets = [parse_aus(c) for c in cells]
    targets = np.array([[a in s for a in aus] for s in sets], dtype=np.float32).reshape(len(sets), len(aus))
    return targets, np.array([bool(s) for s in sets])


def multitask_loss(emotion_logits: torch.Tensor, au_logits: torch.Tensor, labels: torch.Tensor,
                   au_target: torch.Tensor, au_mask: torch.Tensor | None = None,
                   au_weight: float = 1.0, emotion_weight: float = 1.0) -> tuple[torch.Tensor, dict]:
    """``emotion_weight`` × the emotion cross-entropy + ``au_weight`` × the AU binary cross-entropy (mean over AUs
    and over the clips whose ``au_mask`` is set: a clip without AU codes adds nothing to the AU part); returns the loss
    and its two parts."""
    ce = F.cross_entropy(emotion_logits.float(), labels)
    mask = torch.ones(len(labels), dtype=torch.bool, device=labels.device) if au_mask is None else au_mask.bool()
    if mask.any():
        bce = F.binary_cross_entropy_with_logits(au_logits[mask].float(), au_target[mask].float())
    else:
        bce = au_logits.sum() * 0.0
    return emotion_weight * ce + au_weight * bce, {"emotion": float(ce.detach()), "au": float(bce.detach())}


def au_f1(target: np.ndarray, predicted: np.ndarray, aus=DEFAULT_AUS) -> dict:
    """F1 per AU over clips (multi-label, binary per AU) and their mean over the AUs present in ``target`` (an AU
    no clip has is left out of the mean: its F1 is undefined)."""
    from sklearn.metrics import f1_score

    target, predicted = np.asarray(target).astype(bool), np.asarray(predicted).astype(bool)
    per = {}
    for j, au in enumerate(aus):
        if target[:, j].any():
            per[f"AU{au}"] = float(f1_score(target[:, j], predicted[:, j], zero_division=0))
    return {"per_au": per, "mean": float(np.mean(list(per.values()))) if per else float("nan")}


class AUFusion(VideoClassifier):
    def __init__(self, num_classes: int, aus=DEFAULT_AUS, regions=tuple(REGIONS), region_size: int = 24,
                 width: int = 32, au_hidden: int = 64, fusion_dim: int = 128, dropout: float = 0.3,
                 au_weight: float = 1.0, emotion_weight: float = 1.0):
        super().__init__()
        # the multi-task loss's weights (model.kwargs in the config); training.schemes.ViewModel reads them
        self.au_weight, self.emotion_weight = float(au_weight), float(emotion_weight)
        unknown = [r for r in regions if r not in REGIONS]
        if unknown or not regions:
            raise InputError(f"unknown face region(s) {', '.join(unknown) or '(none given)'}; choose from "
                             f"{', '.join(REGIONS)}")
        if not aus:
            raise InputError("aus must list the action units to detect, e.g. [1, 2, 4, 12]")
        self.aus, self.regions, self.region_size = tuple(int(a) for a in aus), tuple(regions), int(region_size)
        self.encoder = nn.Sequential(
            nn.Conv3d(3, width // 2, 3, padding=1), nn.BatchNorm3d(width // 2), nn.ReLU(inplace=True),
            nn.MaxPool3d((1, 2, 2)),
            nn.Conv3d(width // 2, width, 3, padding=1), nn.BatchNorm3d(width), nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool3d(1),
        )
        self.region_offset = nn.Parameter(torch.zeros(len(self.regions), width))
        d = width * len(self.regions)
        self.au_head = nn.Sequential(nn.Dropout(dropout), nn.Linear(d, au_hidden), nn.ReLU(inplace=True),
                                     nn.Linear(au_hidden, len(self.aus)))
        self.fuse = nn.Sequential(nn.Dropout(dropout), nn.Linear(d + len(self.aus), fusion_dim), nn.ReLU(inplace=True))
        self.feature_dim = fusion_dim
        self.fc = nn.Linear(fusion_dim, num_classes)

    def crops(self, x: torch.Tensor) -> torch.Tensor:
        """The regions of ``(N, 3, T, H, W)`` resized to ``region_size``: ``(R, N, 3, T, s, s)``."""
        t, h, w = (int(d) for d in x.shape[2:])  # plain ints: the crop boxes are constants of an exported graph
        out = []
        for name in self.regions:
            top, bottom, left, right = REGIONS[name]
            part = x[..., round(top * h):max(round(bottom * h), round(top * h) + 1),
                     round(left * w):max(round(right * w), round(left * w) + 1)]
            out.append(F.interpolate(part, size=(t, self.region_size, self.region_size), mode="trilinear",
                                     align_corners=False))
        return torch.stack(out)

    def region_features(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, R * width)``: every region through the shared encoder in one batch, plus its offset."""
        r = self.crops(x)
        f = self.encoder(r.flatten(0, 1)).flatten(1).view(len(self.regions), x.shape[0], -1)
        return (f + self.region_offset[:, None]).permute(1, 0, 2).flatten(1)

    multitask_loss = staticmethod(multitask_loss)  # the training loss of forward_multi's two heads

    def features_and_aus(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The fused feature ``(N, fusion_dim)`` (what ``fc`` classifies) and the AU logits ``(N, len(aus))``."""
        f = self.region_features(x)
        au = self.au_head(f)
        return self.fuse(torch.cat([f, torch.sigmoid(au)], 1)), au

    def forward_multi(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Emotion logits ``(N, classes)`` and AU logits ``(N, len(aus))``."""
        f, au = self.features_and_aus(x)
        return self.fc(f), au

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features_and_aus(x)[0]


def _build(num_classes: int, **kwargs) -> AUFusion:
    return AUFusion(num_classes, **kwargs)


register(ModelSpec(
    "au_fusion", "flow", _build,
    MappingProxyType({"aus": list(DEFAULT_AUS), "regions": list(REGIONS), "region_size": 24, "width": 32,
                      "au_hidden": 64, "fusion_dim": 128, "dropout": 0.3, "au_weight": 1.0,
                      "emotion_weight": 1.0}),
    FLOW_IMAGE_NORM,
    "AU-fusion: facial-region flow features + an AU-detection branch, fused for the emotion (multi-task)",
))
