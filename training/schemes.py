"""Décalcomanie training schemes over one shared backbone.

- **SBML** (shared backbone, multiple losses): every view goes through the same backbone and classifier;
  the loss is the weighted sum of the per-view cross-entropies (paper: O/L/R 0.4/0.4/0.2, pairs 0.5/0.5).
  At test time the logits of the chosen test views are summed, then softmaxed; test views are chosen
  independently of the training views.
- **FSB** (fusion with shared backbone): the views' features are concatenated and classified by a linear
  or MLP (hidden 256) head; the same views in training and at test time.
- Plain ``O``-only training is SBML with the single view O (the baseline).

Views are built from the (augmented, normalised) O batch inside :meth:`ViewModel.forward` with one gather
each, so all views of a batch run through the backbone in one call.

On flow inputs (``inputs``: flow_image, flow_clip: channels u, v, strain; grey_flow_clip: grey, u, v) the mirrored
half of the L and R views has its horizontal motion negated (:class:`inference.views.FlowChannels`): the engine
centres flow on its zero-motion value, so in the normalised batch zero motion is 0 and the mirror is a plain
negation of the u channel (0, or 1 for grey + flow).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from inference.errors import InputError
from inference.inputs import kind
from inference.views import FlowChannels, make_views, parse_views

from .models import create_model
from .models.checkpoint import write_checkpoint

DEFAULT_WEIGHTS = {1: (1.0,), 2: (0.5, 0.5), 3: (0.4, 0.4, 0.2)}
CHECKPOINT_FORMAT = 1


class ViewModel(nn.Module):
    def __init__(self, backbone: dict, num_classes: int, scheme: str = "sbml", train_views: str = "OLR",
                 view_weights=None, test_views: str | None = None, fsb_head: str = "linear", fsb_hidden: int = 256,
                 inputs: str = "rgb"):
        super().__init__()
        kind(inputs)  # a registered input kind (inference.inputs), or an InputError naming them
        scheme = scheme.lower()
        if scheme not in ("sbml", "fsb"):
            raise InputError(f"unknown scheme {scheme!r}; use sbml or fsb")
        train_views = parse_views(train_views)
        test_views = parse_views(test_views or train_views)
        if scheme == "fsb" and test_views != train_views:
            raise InputError(f"FSB classifies the concatenated features of its training views ({train_views}); "
                             f"test views must be the same, got {test_views}")
        weights = tuple(float(w) for w in (view_weights or DEFAULT_WEIGHTS[len(train_views)]))
        if len(weights) != len(train_views):
            raise InputError(f"{len(train_views)} training views ({train_views}) but {len(weights)} view weights")
        if fsb_head not in ("linear", "mlp"):
            raise InputError(f"unknown FSB head {fsb_head!r}; use linear or mlp")
        self.config = {"backbone": dict(backbone), "num_classes": int(num_classes), "scheme": scheme,
                       "train_views": train_views, "view_weights": list(weights), "test_views": test_views,
                       "fsb_head": fsb_head, "fsb_hidden": int(fsb_hidden), "inputs": inputs}
        kwargs = {k: v for k, v in backbone.items() if k not in ("name", "num_classes")}
        self.backbone = create_model(backbone["name"], num_classes, **kwargs)
        self.scheme, self.train_views, self.test_views, self.view_weights = scheme, train_views, test_views, weights
        self.inputs = inputs
        self.class_weight: torch.Tensor | None = None  # the loss's weight per class (Trainer.class_weights), if any
        if scheme == "fsb":
            d = self.backbone.feature_dim * len(train_views)
            self.head = nn.Linear(d, num_classes) if fsb_head == "linear" else nn.Sequential(
                nn.Linear(d, fsb_hidden), nn.ReLU(inplace=True), nn.Linear(fsb_hidden, num_classes))

    def views(self, x: torch.Tensor, views: str) -> list[torch.Tensor]:
        """The Décalcomanie views of a normalised O batch ``(N, C, T, H, W)``; flow inputs negate u where mirrored."""
        u = kind(self.inputs).u  # the input kind's row says which channel holds u
        if u is None:
            return make_views(x, views)
        return make_views(x, views, flow=FlowChannels(u=u, axis=1, zero=0.0))

    def features(self, x: torch.Tensor, views: str) -> torch.Tensor:
        """Backbone features of each view: ``(V, N, D)`` for an O batch ``(N, C, T, H, W)``."""
        stacked = torch.cat(self.views(x, views), dim=0)
        f = self.backbone.forward_features(stacked)
        return f.reshape(len(views), x.shape[0], -1)

    def forward(self, x: torch.Tensor, views: str | None = None) -> torch.Tensor:
        """SBML: per-view logits ``(V, N, K)``; FSB: fused logits ``(N, K)``."""
        views = parse_views(views or (self.train_views if self.training else self.test_views))
        f = self.features(x, views)
        if self.scheme == "fsb":
            return self.head(f.permute(1, 0, 2).reshape(x.shape[0], -1))
        return self.backbone.fc(f)

    @property
    def multitask(self) -> bool:
        """Whether the backbone has an AU head (``features_and_aus`` / ``forward_multi`` and its ``multitask_loss``)."""
        return hasattr(self.backbone, "features_and_aus")

    def _multi(self, x: torch.Tensor, views: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Emotion logits as :meth:`forward` gives them and AU logits ``(V, N, A)`` of each view."""
        f, au = self.backbone.features_and_aus(torch.cat(self.views(x, views), dim=0))
        f, au = f.reshape(len(views), x.shape[0], -1), au.reshape(len(views), x.shape[0], -1)
        if self.scheme == "fsb":
            return self.head(f.permute(1, 0, 2).reshape(x.shape[0], -1)), au
        return self.backbone.fc(f), au

    def loss(self, x: torch.Tensor, y: torch.Tensor,
             au: tuple[torch.Tensor, torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Training loss and the fused training logits ``(N, K)`` (for accuracy logging). ``au`` (targets ``(N, A)``,
        mask ``(N,)``) trains a backbone with an AU head by its ``multitask_loss`` (weights from its config): SBML
        weighs each view's emotion + AU loss by the view weights; FSB adds the AU loss of the views' mean AU logits.
        A mirrored view keeps the clip's AU targets (the codes' sides are dropped)."""
        if au is not None:
            out, au_logits = self._multi(x, self.train_views)
            b = self.backbone
            weights = {"au_weight": b.au_weight, "emotion_weight": b.emotion_weight}
            if self.scheme == "fsb":
                return b.multitask_loss(out, au_logits.mean(0), y, *au, **weights)[0], out
            loss = sum(w * b.multitask_loss(o, a, y, *au, **weights)[0]
                       for w, o, a in zip(self.view_weights, out, au_logits))
            return loss, out.sum(0)
        out = self(x, self.train_views)
        cw = self.class_weight
        if self.scheme == "fsb":
            return F.cross_entropy(out, y, weight=cw), out
        loss = sum(w * F.cross_entropy(o, y, weight=cw) for w, o in zip(self.view_weights, out))
        return loss, out.sum(0)

    @torch.no_grad()
    def predict(self, x: torch.Tensor, views: str | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Fused probabilities ``(N, K)`` and, for SBML, per-view probabilities ``(V, N, K)``."""
        views = parse_views(views or self.test_views)
        out = self(x, views)
        if self.scheme == "fsb":
            return out.float().softmax(-1), None
        return out.float().sum(0).softmax(-1), out.float().softmax(-1)


    @torch.no_grad()
    def predict_aus(self, x: torch.Tensor, views: str | None = None) -> torch.Tensor:
        """AU probabilities ``(N, A)``: the mean over the test views of each view's sigmoid."""
        views = parse_views(views or self.test_views)
        return torch.sigmoid(self._multi(x, views)[1].float()).mean(0)


def save_view_model(path: str | Path, model: ViewModel, labels, extra: dict | None = None) -> None:
    """The project's one checkpoint format: what :func:`load_view_model` rebuilds (export reads it, and
    ``load_pretrained`` takes its backbone for the next step of an N-step chain). Written atomically;
    ``torch.load(weights_only=True)`` reads it."""
    labels = [str(x) for x in labels]
    if len(labels) != model.config["num_classes"]:
        raise ValueError(f"{len(labels)} labels for a model with {model.config['num_classes']} classes")
    extra = dict(extra or {})
    if "record" in extra:  # a trained model's record (training.record): written only when it reads back as one
        from .record import TrainedModel

        extra = TrainedModel.from_parts(model.config, labels, extra, str(path)).extra()
    state = {k: v.detach().to("cpu", copy=True).contiguous() for k, v in model.state_dict().items()}
    write_checkpoint(path, {"format": CHECKPOINT_FORMAT, "kind": "view_model", "config": model.config,
                            "state_dict": state, "labels": labels, "extra": extra})


def load_view_model(path: str | Path, device: str | torch.device = "cpu") -> tuple[ViewModel, dict]:
    try:
        payload = torch.load(Path(path), map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise InputError(f"{path}: no such checkpoint") from None
    except Exception as e:  # noqa: BLE001 — pickle, zip and unsupported-type errors all mean "not ours"
        raise InputError(f"{path}: not a readable checkpoint ({type(e).__name__}: {e})") from None
    if not isinstance(payload, dict) or payload.get("kind") != "view_model":
        raise InputError(f"{path}: not a checkpoint written by training.loso (no view-model config inside)")
    model = ViewModel(**payload["config"])
    model.load_state_dict(payload["state_dict"])
    meta = {"labels": payload["labels"], "extra": payload["extra"], "config": payload["config"]}
    return model.to(device).eval(), meta
