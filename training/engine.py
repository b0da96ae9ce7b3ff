"""The training engine: what LOSO folds, N-step stages and the training bench share.

A :class:`Trainer` holds one experiment's data on the training device (a :class:`~training.data.ClipBank`), its
recipe (the config's ``train`` section), the input normalisation and the device set-up: bf16 autocast on CUDA,
channels-last-3d, deterministic algorithms on the CPU. Its pieces are plain methods, in the spirit of torchvision's
``references/video_classification/train.py``:

- :meth:`Trainer.train_step`: one optimiser step on a batch of clip indices (what ``tools.bench.training`` times);
- :meth:`Trainer.train_one_epoch`: one pass over a training set, returns the mean loss and training accuracy;
- :meth:`Trainer.evaluate`: fused (and per-view) probabilities of clips;
- :meth:`Trainer.train_model`: a model trained for the recipe's epochs, resumable from ``state.pt`` in its folder:
  the one training loop (:func:`training.loop.train_epochs`) of the autograd step (:class:`AutogradStep`), as the
  fold-batched runner (:mod:`training.foldbatch`) runs it of its own step.

Random numbers: every epoch draws from a generator seeded by :func:`seed_for` (seed, fold or stage, epoch), so a
run killed at any moment and resumed gives the same model (on the CPU, bit for bit).

Input kinds (``data.inputs``, the rows of :mod:`inference.inputs`): the bank holds one kind, and a saved model records
it (with how the inputs were made) in its record (:class:`training.record.TrainedModel`); a model of one kind refuses
to start from weights trained on another. The trainer's :class:`inference.inputs.Preprocessing` (``preprocessing``:
the resize and normalisation of the kind's row — flow centred on each clip's stored zero motion) is the one an
exported package's graph applies.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from pathlib import Path

import numpy as np
import torch

from inference.device import resolve_device
from inference.errors import InputError
from inference.inputs import Preprocessing, kind

from .cache import input_settings
from .config import NORMALISATIONS
from .data import ClipBank, network_input
from .loop import train_epochs
from .models import model_spec
from .record import RECORD_FORMAT
from .schemes import ViewModel
from .smote import smote_plan


def balanced_weights(counts: torch.Tensor) -> torch.Tensor:
    """Per-class loss weights n / (K · n_c) from class counts ``(..., K)`` (float; 0 where a class has no clip): every
    class then weighs as much in the loss as the others, whatever its share of the clips."""
    counts = counts.double()
    present = (counts > 0).sum(-1, keepdim=True).clamp_min(1)
    w = counts.sum(-1, keepdim=True) / (present * counts.clamp_min(1))
    return torch.where(counts > 0, w, 0.0).float()


def seed_for(*parts) -> int:
    """A 63-bit seed from ``parts`` (SHA-256 of their ``repr``): ``seed_for(seed, "fold", subject)``,
    ``seed_for(fold_seed, epoch)``. The same parts give the same seed on every machine and in every process."""
    return int.from_bytes(hashlib.sha256(repr(parts).encode()).digest()[:8], "little") % (2**63)


def backbone_digest(model: ViewModel) -> str:
    """SHA-256 of the backbone's weights without its classifier: what an N-step stage carries over."""
    h = hashlib.sha256()
    for k, v in sorted(model.backbone.state_dict().items()):
        if not k.startswith("fc."):
            h.update(k.encode())
            h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def pretrained_payload(path) -> dict | None:
    """Our own checkpoint (``save_view_model``) at ``path``, loaded, or None for any other file."""
    if not (path and Path(path).is_file()):
        return None
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 — not ours; load_pretrained will say what is wrong with it
        return None
    return payload if isinstance(payload, dict) and payload.get("kind") == "view_model" else None


def input_normalisation(model_cfg: dict, inputs: str = "rgb") -> dict:
    """The pixel normalisation the backbone's starting weights expect: ImageNet's for inflated 2D weights,
    the stored one for our own checkpoints (so an N-step chain keeps its first stage's), else the known
    file's (kenshohara 2017 and 2020 differ) or the architecture's default; an input kind with a default
    normalisation of its own (flow: :data:`inference.inputs.FLOW_NORMALISATION`), without our own checkpoint: that.
    A named ``normalisation`` (:data:`training.config.NORMALISATIONS`: ``raw``) replaces all of these."""
    named = model_cfg.get("normalisation")
    if named is not None:
        return dict(NORMALISATIONS[named])
    path = model_cfg["pretrained"]
    if path and model_cfg["init"] == "inflate2d":
        from .models.checkpoint import imagenet_normalisation

        return imagenet_normalisation()
    payload = pretrained_payload(path)
    if payload is not None:
        return dict(payload["extra"]["normalisation"])
    row = kind(inputs)
    if row.normalisation is not None:
        return dict(row.normalisation)
    return model_spec(model_cfg["name"]).normalisation_for(path)


def train_f1_thresholds(probs: np.ndarray, target: np.ndarray, default: float = 0.5) -> np.ndarray:
    """Per column (AU) of ``probs`` ``(N, A)``, the threshold ``t`` (predicted: probability ≥ t) among the column's
    own values that maximises F1 against ``target`` ``(N, A)`` bool; of equal F1 the highest ``t``. An AU that no
    row has keeps ``default`` (its F1 is undefined)."""
    out = np.full(probs.shape[1], float(default))
    for j in range(probs.shape[1]):
        pos = np.asarray(target[:, j], bool)
        if not pos.any():
            continue
        order = np.argsort(-probs[:, j], kind="stable")
        p, tp = probs[order, j], np.cumsum(pos[order])
        last = np.r_[p[1:] != p[:-1], True]  # predicting down to a value predicts all its ties
        f1 = np.where(last, 2 * tp / (np.arange(1, len(p) + 1) + pos.sum()), -1.0)
        out[j] = float(p[int(np.argmax(f1))])
    return out


def au_vocabulary(model_config: dict) -> tuple[int, ...] | None:
    """The AU vocabulary of a model with an AU head (its registry defaults name ``aus``; the config's
    ``model.kwargs.aus`` overrides them), None for other models."""
    spec = model_spec(model_config["name"])
    if "aus" not in spec.default_kwargs:
        return None
    return tuple(int(a) for a in model_config.get("aus", spec.default_kwargs["aus"]))


def cache_setting(path, key: str):
    """One setting from a cache's ``cache.json`` (None when the file or the key is missing)."""
    try:
        return json.loads((Path(path) / "cache.json").read_text()).get(key)
    except (OSError, ValueError):
        return None


class AutogradStep:
    """The autograd step of one model (:func:`training.loop.train_epochs`' step): a fresh model from ``seed``
    (:meth:`Trainer.new_model`), ``torch.optim.Adam``, epochs of :meth:`Trainer.train_one_epoch` over the bank's clips
    ``train_idx`` (with SMOTE's clips, :meth:`Trainer.training_set`), each drawing from a generator seeded by
    (``seed``, epoch); held-out clips ``test_idx`` (or None) for the evaluation hook. TensorBoard folder ``name``."""

    stacked = False

    def __init__(self, trainer: Trainer, name: str, train_idx: np.ndarray, test_idx: np.ndarray | None, seed: int):
        self.trainer, self.seed, self.test_idx = trainer, seed, test_idx
        self.names, self.label, self.desc, self.map_location = [name], name, name, trainer.device
        self.net = trainer.new_model(seed)
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=trainer.cfg["train"]["lr"])
        self.clips, self.labels, self.zeros = trainer.training_set(train_idx, seed)
        self.au = trainer.training_aus(train_idx, len(self.clips))
        self.net.class_weight = trainer.class_weights(self.labels)
        self.truth = None if test_idx is None else [trainer.bank.labels[test_idx].cpu().numpy()]

    def generator(self, epoch: int) -> torch.Generator:
        return torch.Generator().manual_seed(seed_for(self.seed, epoch))

    def train_epoch(self, gen: torch.Generator, lr: float) -> list[dict]:
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        return [self.trainer.train_one_epoch(self.net, self.optimizer, self.clips, self.labels, gen, self.zeros,
                                             self.au)]

    def predict(self) -> list[np.ndarray]:
        probs, _ = self.trainer.evaluate(self.net, self.test_idx)
        return [probs.argmax(1)]

    def snapshot(self, i: int) -> dict:
        return {k: v.detach().clone() for k, v in self.net.state_dict().items()}

    def state_dict(self) -> dict:
        return {"model": self.net.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict, path: Path) -> None:
        self.net.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])  # a state.pt written with a scheduler: its rates are ours

    def model(self, i: int, weights: dict | None) -> ViewModel:
        if weights is not None:
            self.net.load_state_dict(weights)
        return self.net


class Trainer:
    """Everything one experiment shares across its folds: data on the device, recipe, normalisation.

    ``cfg`` is a config from :func:`training.config.load_config` (values already cast). ``bank`` defaults to the
    clips of ``cfg["data"]["caches"]`` under the config's protocol (the first cache's dataset when none is named).
    """

    def __init__(self, cfg: dict, out: Path | None = None, log=print, progress: bool = True,
                 bank: ClipBank | None = None):
        self.cfg, self.out, self.log, self.progress = cfg, Path(out) if out is not None else None, log, progress
        t = cfg["train"]
        self.device = torch.device(resolve_device(t["device"]))
        self.cuda = self.device.type == "cuda"
        self.amp_dtype = torch.bfloat16 if (t["amp"] == "bf16" or (t["amp"] == "auto" and self.cuda)) else None
        self.channels_last = self.cuda if t["channels_last"] == "auto" else t["channels_last"]
        if not self.cuda:
            torch.use_deterministic_algorithms(True, warn_only=True)
        protocol = cfg["data"]["protocol"]
        if protocol is None:
            from .cache import Cache

            protocol = Cache.open(cfg["data"]["caches"][0]).settings["dataset"]
        self.protocol = protocol
        self.model_config = {"name": cfg["model"]["name"], **cfg["model"]["kwargs"]}
        # a model with an AU head (AU-fusion) trains on the AU codes of the caches for its AU vocabulary
        self.aus = au_vocabulary(self.model_config)
        if bank is None:
            bank = ClipBank.from_caches(cfg["data"]["caches"], protocol, t["n_frames"], self.device,
                                        cfg["data"]["inputs"], aus=self.aus)
        self.bank = bank
        self.inputs = bank.inputs["kind"]
        payload = pretrained_payload(cfg["model"]["pretrained"])
        if payload is not None:  # our own model: it must have been trained on the same kind of input
            was = input_settings(payload["extra"])["kind"]
            if was != self.inputs:
                raise InputError(f"{cfg['model']['pretrained']} was trained on {was} inputs; this run trains on "
                                 f"{self.inputs} (data.inputs): start from a {self.inputs} model")
        self.norm = input_normalisation(cfg["model"], self.inputs)
        # what the network's input goes through, the kind's row with this normalisation: an exported package's too
        self.preprocessing = Preprocessing.of(self.inputs, bank.inputs, self.norm, t["size"], bank.clips.shape[-2])
        self.init_backbone_sha256: str | None = None

    # ------------------------------------------------------------ model, batches, device
    def new_model(self, seed: int) -> ViewModel:
        """A fresh model for the config's scheme, initialised from ``seed`` (and the config's starting weights,
        with a fresh classifier), on the device."""
        s, m = self.cfg["scheme"], self.cfg["model"]
        torch.manual_seed(seed)
        model = ViewModel(self.model_config, len(self.bank.classes), s["type"], s["train_views"], s["view_weights"],
                          s["test_views"], s["fsb_head"], s["fsb_hidden"], inputs=self.inputs)
        if m["pretrained"]:
            from .models.checkpoint import inflate_2d, load_pretrained

            load = inflate_2d if m["init"] == "inflate2d" else load_pretrained
            report = load(model.backbone, m["pretrained"])
            # a fresh classifier at every step, even when the file's head has the same shape
            model.backbone.reset_classifier(len(self.bank.classes))
            self.log(f"{m['pretrained']}: {len(report['loaded'])} tensors loaded ({m['init']}), fresh head")
        if m.get("stream_pretrained"):
            self.load_streams(model, m["stream_pretrained"])
        self.init_backbone_sha256 = backbone_digest(model)  # what this model starts from (N-step provenance)
        model = model.to(self.device)
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last_3d)
        return model

    def load_streams(self, model: ViewModel, files: dict) -> dict:
        """``model.stream_pretrained``: each named stream of a model with streams (late fusion) starts from its own
        weights file (``torch.load(..., weights_only=True)``); logs what was loaded and which keys were left out."""
        load = getattr(model.backbone, "load_stream_weights", None)
        if load is None:
            raise InputError(f"model.stream_pretrained names streams, but {self.cfg['model']['name']} has none (a "
                             f"late_fusion model has grey and flow streams); use model.pretrained for its weights")
        reports = load(files)
        for stream, r in reports.items():
            left = r["unexpected"]
            self.log(f"{r['path']}: {len(r['loaded'])} tensors loaded into the {stream} stream"
                     + (f"; {len(left)} keys left out: {', '.join(left[:6])}{' …' if len(left) > 6 else ''}"
                        if left else ""))
        return reports

    def batch(self, idx: torch.Tensor, clips: torch.Tensor, generator: torch.Generator | None,
              train: bool, zeros: torch.Tensor | None = None) -> torch.Tensor:
        """The network input for clips ``idx`` of ``clips``: augmented (training) or resized, normalised. Flow clips
        need their zero-motion values ``zeros`` (``(N, T, 3)``, aligned with ``clips``; the bank's by default)."""
        t = self.cfg["train"]
        zero = None
        if self.bank.zeros is not None:
            zeros = self.bank.zeros if zeros is None else zeros
            if len(zeros) != len(clips):
                raise ValueError(f"{len(zeros)} zero-motion rows for {len(clips)} flow clips")
            zero = zeros[idx.to(zeros.device)]
        x = network_input(clips[idx.to(clips.device)], self.preprocessing, zero, generator,
                          rotation=t["rotation"] if train else 0.0, scale=t["scale"] if train else 1.0,
                          flip=t["flip"] and train)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last_3d)
        return x

    def autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    # ------------------------------------------------------------ training and evaluation
    def train_step(self, model: ViewModel, optimizer: torch.optim.Optimizer, idx: torch.Tensor,
                   clips: torch.Tensor, labels: torch.Tensor, generator: torch.Generator,
                   zeros: torch.Tensor | None = None, au: tuple[torch.Tensor, torch.Tensor] | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One optimiser step on the clips ``idx``: augmentation on the device, forward under autocast, backward.
        Returns the loss, the fused training logits and the labels (tensors on the device; nothing synchronises).
        ``au``: AU targets and mask aligned with ``clips`` (a model with an AU head: the multi-task loss)."""
        x = self.batch(idx, clips, generator, train=True, zeros=zeros)
        y = labels[idx.to(labels.device)]
        at = idx.to(labels.device)
        with self.autocast():
            loss, logits = model.loss(x, y, None if au is None else (au[0][at], au[1][at]))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss, logits, y

    def class_weights(self, labels: torch.Tensor) -> torch.Tensor | None:
        """The loss's weight per class for a model trained on ``labels`` (``train.class_weights``): None, or for
        ``balanced`` n / (K · n_c) over the classes (a class with no clip here: weight 0), on the labels' device."""
        if self.cfg["train"].get("class_weights", "none") == "none":
            return None
        if self.bank.au is not None:
            raise InputError("train.class_weights: models with an AU head weigh their emotion loss by their own "
                             "multi-task loss; set train.class_weights=none")
        return balanced_weights(torch.bincount(labels.long().flatten().cpu(), minlength=len(self.bank.classes)))\
            .to(labels.device)

    def epoch_order(self, labels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        n = len(labels)
        if self.cfg["train"].get("order") == "by_class":  # the same order every epoch: by class, then as stored
            return torch.sort(labels.cpu(), stable=True).indices
        if not self.cfg["train"]["balanced"]:
            return torch.randperm(n, generator=generator)
        counts = torch.bincount(labels.cpu(), minlength=len(self.bank.classes)).float()
        weights = (1.0 / counts.clamp(min=1))[labels.cpu()]
        return torch.multinomial(weights, n, replacement=True, generator=generator)

    def train_one_epoch(self, model: ViewModel, optimizer: torch.optim.Optimizer, clips: torch.Tensor,
                        labels: torch.Tensor, generator: torch.Generator, zeros: torch.Tensor | None = None,
                        au: tuple[torch.Tensor, torch.Tensor] | None = None) -> dict:
        """One pass over ``clips`` in an order drawn from ``generator``; the mean loss and training accuracy
        (``zeros``: the flow clips' zero-motion values, ``au``: AU targets and mask, each aligned with ``clips``)."""
        bs = self.cfg["train"]["batch_size"]
        order = self.epoch_order(labels, generator)
        model.train()
        total, correct, loss_sum = 0, 0, 0.0
        for s in range(0, len(order), bs):
            idx = order[s:s + bs]
            if len(idx) < 2 and len(order) > 1:  # BatchNorm needs two samples; fold a lone one in
                continue
            loss, logits, y = self.train_step(model, optimizer, idx, clips, labels, generator, zeros, au)
            loss_sum += loss.item() * len(idx)
            correct += int((logits.argmax(-1) == y).sum())
            total += len(idx)
        return {"loss": loss_sum / max(total, 1), "train_acc": correct / max(total, 1)}

    def evaluate(self, model: ViewModel, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Fused probabilities ``(N, K)`` of the bank's clips ``idx`` and, for SBML, per-view ones ``(V, N, K)``."""
        model.eval()
        fused, per_view = [], []
        bs = self.cfg["train"]["eval_batch_size"]
        with torch.no_grad(), self.autocast():
            for s in range(0, len(idx), bs):
                x = self.batch(torch.as_tensor(idx[s:s + bs]), self.bank.clips, None, train=False)
                p, pv = model.predict(x)
                fused.append(p.cpu().numpy())
                if pv is not None:
                    per_view.append(pv.cpu().numpy())
        return np.concatenate(fused), (np.concatenate(per_view, axis=1) if per_view else None)

    def evaluate_aus(self, model: ViewModel, idx: np.ndarray) -> np.ndarray:
        """AU probabilities ``(N, A)`` of the bank's clips ``idx`` (a model with an AU head)."""
        model.eval()
        out = []
        with torch.no_grad(), self.autocast():
            for s in range(0, len(idx), self.cfg["train"]["eval_batch_size"]):
                x = self.batch(torch.as_tensor(idx[s:s + self.cfg["train"]["eval_batch_size"]]), self.bank.clips,
                               None, train=False)
                out.append(model.predict_aus(x).cpu().numpy())
        return np.concatenate(out)

    def au_thresholds(self, model: ViewModel, test_idx: np.ndarray) -> np.ndarray:
        """Each AU's decision threshold for a fold whose held-out clips are ``test_idx``: ``train.au_threshold`` as
        given, or with ``train_f1`` the threshold that maximises each AU's F1 on the fold's training clips (every
        subject's but the held-out ones', as LOSO trains on; never a held-out clip) — :func:`train_f1_thresholds`."""
        setting = self.cfg["train"].get("au_threshold", 0.5)
        if setting != "train_f1":
            return np.full(len(self.bank.aus), float(setting))
        train_idx = np.flatnonzero(~np.isin(self.bank.subjects, np.unique(self.bank.subjects[test_idx])))
        mask = self.bank.au_mask[train_idx].cpu().numpy()
        if not mask.any():  # no training clip has AU codes: nothing to choose from
            return np.full(len(self.bank.aus), 0.5)
        return train_f1_thresholds(self.evaluate_aus(model, train_idx[mask]),
                                   self.bank.au[train_idx[mask]].cpu().numpy() > 0.5)

    def fold_aus(self, model: ViewModel, idx: np.ndarray, rows: list[dict]) -> dict:
        """For a bank with AU targets: each test row gets its AU codes (``aus``: the vocabulary's AUs it has, None
        when the clip has no codes), the predicted AUs (probability ≥ the AU's threshold, :meth:`au_thresholds`)
        and their probabilities; returns the fold's ``aus``, ``au_f1`` (over its clips with codes; None when none
        has), ``au_threshold`` (the setting) and ``au_thresholds`` (per AU). ``{}`` without AU targets."""
        if self.bank.au is None:
            return {}
        from .models.au_fusion import au_f1

        probs = self.evaluate_aus(model, idx)
        target, mask = self.bank.au[idx].cpu().numpy() > 0.5, self.bank.au_mask[idx].cpu().numpy()
        vocab = self.bank.aus
        thresholds = self.au_thresholds(model, idx)
        for j, row in enumerate(rows):
            row["aus"] = [a for a, on in zip(vocab, target[j]) if on] if mask[j] else None
            row["au_pred"] = [a for a, p, t in zip(vocab, probs[j], thresholds) if p >= t]
            row["au_scores"] = [round(float(p), 6) for p in probs[j]]
        f1 = au_f1(target[mask], probs[mask] >= thresholds, vocab)["mean"] if mask.any() else None
        return {"aus": list(vocab), "au_f1": None if f1 is None or f1 != f1 else f1,
                "au_threshold": self.cfg["train"].get("au_threshold", 0.5),
                "au_thresholds": {f"AU{a}": float(t) for a, t in zip(vocab, thresholds)}}

    def training_aus(self, train_idx: np.ndarray, n: int) -> tuple[torch.Tensor, torch.Tensor] | None:
        """AU targets and mask aligned with :meth:`training_set`'s ``n`` clips: the training subjects' own, then
        masked rows for SMOTE's mixed clips (a mixture of two clips has no AU codes of its own)."""
        if self.bank.au is None:
            return None
        at = torch.as_tensor(train_idx, device=self.bank.au.device)
        target, mask = self.bank.au[at], self.bank.au_mask[at]
        extra = n - len(train_idx)
        return (torch.cat([target, target.new_zeros(extra, target.shape[1])]),
                torch.cat([mask, mask.new_zeros(extra)]))

    def training_set(self, train_idx: np.ndarray,
                     fold_seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Clips, labels and (flow) zero-motion values a fold trains on: its training subjects' clips, plus SMOTE
        clips mixed only from those (never from the held-out subject)."""
        at = torch.as_tensor(train_idx, device=self.device)
        clips, labels = self.bank.clips[at], self.bank.labels[train_idx]
        zeros = self.bank.zeros[at] if self.bank.zeros is not None else None
        if not self.cfg["train"]["smote"]:
            return clips, labels, zeros
        rng = np.random.default_rng(seed_for("smote", fold_seed))
        all_labels = self.bank.labels.cpu().numpy()
        plan = smote_plan(all_labels, self.bank.subjects, set(self.bank.subjects[train_idx].tolist()), rng)
        if not plan:
            return clips, labels, zeros
        first = torch.as_tensor([p.first for p in plan], device=self.device)
        second = torch.as_tensor([p.second for p in plan], device=self.device)
        a, b = self.bank.clips[first].float(), self.bank.clips[second].float()
        lam = torch.tensor([p.lam for p in plan], device=self.device).view(-1, 1, 1, 1, 1)
        mixed = (lam * a + (1 - lam) * b).round_().clamp_(0, 255).to(torch.uint8)
        extra = torch.tensor([int(p.label) for p in plan], dtype=torch.int64, device=self.device)
        if zeros is not None:  # a mixed flow clip's zero is the same mixture of its parents' zeros
            lz = lam.view(-1, 1, 1)
            zeros = torch.cat([zeros, lz * self.bank.zeros[first] + (1 - lz) * self.bank.zeros[second]])
        return torch.cat([clips, mixed]), torch.cat([labels, extra]), zeros

    def train_model(self, name: str, folder: Path, train_idx: np.ndarray, test_idx: np.ndarray | None,
                    seed: int) -> dict:
        """Train on the bank's clips ``train_idx`` for the recipe's epochs, resuming from ``folder/state.pt``
        (written every ``checkpoint_every`` epochs); returns the chosen model, its epoch and the per-epoch
        history. With ``selection: test_set_best`` the epoch that scores best on ``test_idx`` is chosen. With
        ``oracle: true`` every epoch's record also holds the predicted classes of ``test_idx`` (``test_pred``) and
        their accuracy, so the oracle figure is read from this run; the chosen model is unchanged. The epochs are
        :func:`training.loop.train_epochs`' of an :class:`AutogradStep`."""
        folder.mkdir(parents=True, exist_ok=True)
        step = AutogradStep(self, name, train_idx, test_idx, seed)
        return train_epochs(step, self.cfg["train"], folder / "state.pt", self.out / "tensorboard", self.log,
                            self.progress)[0]

    def model_extra(self, what: str, epoch: int) -> dict:
        """What a saved model records about how it was made: the ``extra`` of its trained-model record
        (:class:`training.record.TrainedModel`; :func:`training.schemes.save_view_model` checks it reads back as one,
        with the network's config and labels)."""
        c = self.cfg
        caches = c["data"]["caches"]
        return {"record": RECORD_FORMAT, "what": what, "epoch": epoch, "protocol": self.protocol, "run": c["name"],
                "n_frames": c["train"]["n_frames"], "size": c["train"]["size"],
                "frame_size": int(self.bank.clips.shape[-2]), "normalisation": self.norm,
                "selection": c["train"]["selection"], "inputs": dict(self.bank.inputs),
                "caches": list(caches), "crop": cache_setting(caches[0], "crop"),
                "synthetic": any(bool(cache_setting(x, "synthetic")) for x in caches),
                "init": {"pretrained": c["model"]["pretrained"], "kind": c["model"]["init"],
                         **({"streams": streams} if (streams := c["model"].get("stream_pretrained")) else {})},
                "provenance": list(c["provenance"] or []), **({"aus": list(self.bank.aus)} if self.bank.aus else {})}
