"""``python -m training.loso``: one leave-one-subject-out experiment from a YAML config, resumable.

Per fold a fresh model is trained on every other subject and tested on the held-out one. The fold's model is
the last epoch's (``train.selection: last``, the default): nothing about the test subject is used to choose it.
The reference code's choice, the epoch that scores best *on the test subject*, exists only as
``train.selection: test_set_best``, and every output made with it says so.

Run folder (``out``, default ``runs/<name>``)::

    config.yaml            the resolved config
    folds/subject_<s>/     state.pt (resumable training state), model.pt (the fold's model), result.json
    predictions.csv        one row per clip: subject, clip, label, pred, fold, score per class
    results.json           UF1 / UAR / WAR pooled over folds, per-class scores, confusion, protocol
    per_subject.csv        accuracy per held-out subject
    confusion.png, report.md, tensorboard/
    final/model.pt         with --final: the deployable model, trained on all subjects with the same recipe

Killed at any moment, the same command continues from the last checkpoint of the fold in flight and
finishes with the same metrics (on CPU, bit for bit: every epoch draws its random numbers from a
generator seeded by (seed, fold, epoch)). Under ``torchrun --nproc-per-node K`` the folds are split
across the ranks (and nodes, given a shared run folder); rank 0 writes the report.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import hashlib
import json
import os
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from inference.errors import InputError, cli

from .config import load_config
from .data import ClipBank, augment, normalise
from .metrics import scores
from .models import model_spec
from .schemes import ViewModel, save_view_model
from .smote import smote_plan

SELECTION_WARNING = ("selection=test_set_best: each fold's epoch was chosen by its score on the held-out subject "
                     "(as the reference code does). These figures are optimistic and not comparable to honest LOSO.")


# ---------------------------------------------------------------- small utilities


def _seed(*parts) -> int:
    return int.from_bytes(hashlib.sha256(repr(parts).encode()).digest()[:8], "little") % (2**63)


def _atomic_json(path: Path, data) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, path)


def _atomic_save(obj, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _device(name: str) -> torch.device:
    if name == "auto":
        local = int(os.environ.get("LOCAL_RANK", 0))
        return torch.device(f"cuda:{local % torch.cuda.device_count()}" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"train.device={name} but no CUDA GPU is visible; use train.device=cpu")
    return torch.device(name)


class Trainer:
    """Everything one experiment shares across its folds: data on the device, recipe, normalisation."""

    def __init__(self, cfg: dict, out: Path, log=print, progress: bool = True):
        self.cfg, self.out, self.log, self.progress = cfg, out, log, progress
        t = cfg["train"]
        self.device = _device(str(t["device"]))
        self.cuda = self.device.type == "cuda"
        amp = str(t["amp"]).lower()
        self.amp_dtype = torch.bfloat16 if (amp == "bf16" or (amp == "auto" and self.cuda)) else None
        cl = t["channels_last"]
        self.channels_last = self.cuda if cl == "auto" else bool(cl)
        if not self.cuda:
            torch.use_deterministic_algorithms(True, warn_only=True)
        protocol = cfg["data"]["protocol"]
        if protocol is None:
            from .cache import Cache

            protocol = Cache.open(cfg["data"]["caches"][0]).settings["dataset"]
        self.protocol = protocol
        self.bank = ClipBank.from_caches(cfg["data"]["caches"], protocol, int(t["n_frames"]), self.device)
        self.norm = input_normalisation(cfg["model"])
        self.model_config = {"name": cfg["model"]["name"], **(cfg["model"]["kwargs"] or {})}

    # ------------------------------------------------------------ pieces of a fold
    def new_model(self, fold_seed: int) -> ViewModel:
        s, m = self.cfg["scheme"], self.cfg["model"]
        torch.manual_seed(fold_seed)
        model = ViewModel(self.model_config, len(self.bank.classes), s["type"], str(s["train_views"]),
                          s["view_weights"], s["test_views"] and str(s["test_views"]), s["fsb_head"], s["fsb_hidden"])
        if m["pretrained"]:
            from .models.checkpoint import inflate_2d, load_pretrained

            load = inflate_2d if m["init"] == "inflate2d" else load_pretrained
            report = load(model.backbone, m["pretrained"])
            # a fresh classifier at every step, even when the file's head has the same shape
            model.backbone.reset_classifier(len(self.bank.classes))
            self.log(f"{m['pretrained']}: {len(report['loaded'])} tensors loaded ({m['init']}), fresh head")
        self.init_backbone_sha256 = backbone_digest(model)  # what this model starts from (N-step provenance)
        model = model.to(self.device)
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last_3d)
        return model

    def batch(self, idx: torch.Tensor, clips: torch.Tensor, generator: torch.Generator | None, train: bool) -> torch.Tensor:
        t = self.cfg["train"]
        x = augment(clips[idx.to(clips.device)], int(t["size"]), generator,
                    rotation=float(t["rotation"]) if train else 0.0, scale=float(t["scale"]) if train else 1.0,
                    flip=bool(t["flip"]) and train)
        x = normalise(x, self.norm["mean"], self.norm["std"], self.norm.get("pixel_scale", 1.0))
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last_3d)
        return x

    def autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def evaluate(self, model: ViewModel, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        model.eval()
        fused, per_view = [], []
        bs = int(self.cfg["train"]["eval_batch_size"])
        with torch.no_grad(), self.autocast():
            for s in range(0, len(idx), bs):
                x = self.batch(torch.as_tensor(idx[s:s + bs]), self.bank.clips, None, train=False)
                p, pv = model.predict(x)
                fused.append(p.cpu().numpy())
                if pv is not None:
                    per_view.append(pv.cpu().numpy())
        return np.concatenate(fused), (np.concatenate(per_view, axis=1) if per_view else None)

    def training_set(self, train_idx: np.ndarray, fold_seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Clips and labels a fold trains on: its training subjects' clips, plus SMOTE clips mixed only
        from those (never from the held-out subject)."""
        clips, labels = self.bank.clips[torch.as_tensor(train_idx, device=self.device)], self.bank.labels[train_idx]
        if not self.cfg["train"]["smote"]:
            return clips, labels
        rng = np.random.default_rng(_seed("smote", fold_seed))
        all_labels = self.bank.labels.cpu().numpy()
        plan = smote_plan(all_labels, self.bank.subjects, set(self.bank.subjects[train_idx].tolist()), rng)
        if not plan:
            return clips, labels
        a = self.bank.clips[torch.as_tensor([p.first for p in plan], device=self.device)].float()
        b = self.bank.clips[torch.as_tensor([p.second for p in plan], device=self.device)].float()
        lam = torch.tensor([p.lam for p in plan], device=self.device).view(-1, 1, 1, 1, 1)
        mixed = (lam * a + (1 - lam) * b).round_().clamp_(0, 255).to(torch.uint8)
        extra = torch.tensor([int(p.label) for p in plan], dtype=torch.int64, device=self.device)
        return torch.cat([clips, mixed]), torch.cat([labels, extra])

    def epoch_order(self, labels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        n = len(labels)
        if not self.cfg["train"]["balanced"]:
            return torch.randperm(n, generator=generator)
        counts = torch.bincount(labels.cpu(), minlength=len(self.bank.classes)).float()
        weights = (1.0 / counts.clamp(min=1))[labels.cpu()]
        return torch.multinomial(weights, n, replacement=True, generator=generator)

    # ------------------------------------------------------------ one fold (or the final all-subject model)
    def train_model(self, name: str, folder: Path, train_idx: np.ndarray, test_idx: np.ndarray | None,
                    fold_seed: int) -> dict:
        """Train (resuming from ``folder/state.pt``), save the chosen model, return what was chosen."""
        from torch.utils.tensorboard import SummaryWriter

        t = self.cfg["train"]
        folder.mkdir(parents=True, exist_ok=True)
        model = self.new_model(fold_seed)
        opt = torch.optim.Adam(model.parameters(), lr=float(t["lr"]))
        sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=list(t["milestones"]), gamma=float(t["gamma"]))
        start, best, history = 0, None, []
        state_path = folder / "state.pt"
        if state_path.exists():
            state = torch.load(state_path, map_location=self.device, weights_only=True)
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
            sched.load_state_dict(state["scheduler"])
            start, best, history = state["epoch"], state.get("best"), state["history"]
            self.log(f"{name}: resuming at epoch {start}")
        clips, labels = self.training_set(train_idx, fold_seed)
        epochs, bs = int(t["epochs"]), int(t["batch_size"])
        tb = SummaryWriter(log_dir=str(self.out / "tensorboard" / name), purge_step=start)
        from tqdm import tqdm

        bar = tqdm(range(start, epochs), desc=name, unit="epoch", initial=start, total=epochs,
                   disable=not self.progress, leave=False)
        for epoch in bar:
            gen = torch.Generator().manual_seed(_seed(fold_seed, epoch))
            order = self.epoch_order(labels, gen)
            model.train()
            total, correct, loss_sum = 0, 0, 0.0
            for s in range(0, len(order), bs):
                idx = order[s:s + bs]
                if len(idx) < 2 and len(order) > 1:  # BatchNorm needs two samples; fold a lone one in
                    continue
                x = self.batch(idx, clips, gen, train=True)
                y = labels[idx.to(labels.device)]
                with self.autocast():
                    loss, logits = model.loss(x, y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                loss_sum += loss.item() * len(idx)
                correct += int((logits.argmax(-1) == y).sum())
                total += len(idx)
            sched.step()
            record = {"epoch": epoch + 1, "loss": loss_sum / max(total, 1), "train_acc": correct / max(total, 1),
                      "lr": opt.param_groups[0]["lr"]}
            if t["selection"] == "test_set_best" and test_idx is not None:
                probs, _ = self.evaluate(model, test_idx)
                acc = float((probs.argmax(1) == self.bank.labels[test_idx].cpu().numpy()).mean())
                record["test_subject_acc"] = acc
                if best is None or acc > best["acc"]:
                    best = {"acc": acc, "epoch": epoch + 1,
                            "model": {k: v.detach().clone() for k, v in model.state_dict().items()}}
            history.append(record)
            for k, v in record.items():
                if k != "epoch":
                    tb.add_scalar(k, v, epoch + 1)
            bar.set_postfix(loss=f"{record['loss']:.3f}", acc=f"{record['train_acc']:.2f}")
            if (epoch + 1) % int(t["checkpoint_every"]) == 0 or epoch + 1 == epochs:
                _atomic_save({"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                              "epoch": epoch + 1, "best": best, "history": history}, state_path)
        tb.close()
        chosen_epoch = epochs
        if t["selection"] == "test_set_best" and best is not None:
            model.load_state_dict(best["model"])
            chosen_epoch = best["epoch"]
        return {"model": model, "epoch": chosen_epoch, "history": history}

    def fold(self, k: int, subject: int) -> dict:
        folder = self.out / "folds" / f"subject_{subject}"
        result_path = folder / "result.json"
        if result_path.exists():
            return json.loads(result_path.read_text())
        test_idx = np.flatnonzero(self.bank.subjects == subject)
        train_idx = np.flatnonzero(self.bank.subjects != subject)
        fold_seed = _seed(int(self.cfg["train"]["seed"]), "fold", int(subject))
        trained = self.train_model(f"subject_{subject}", folder, train_idx, test_idx, fold_seed)
        model = trained["model"]
        probs, per_view = self.evaluate(model, test_idx)
        save_view_model(folder / "model.pt", model, self.bank.classes, self.model_extra(f"LOSO fold, held-out subject {subject}", trained["epoch"]))
        rows = []
        for j, i in enumerate(test_idx):
            row = {"subject": int(subject), "clip": self.bank.ids[i], "label": self.bank.classes[int(self.bank.labels[i])],
                   "pred": self.bank.classes[int(probs[j].argmax())], "fold": int(k),
                   "scores": [round(float(p), 6) for p in probs[j]]}
            if per_view is not None:
                row["view_scores"] = {v: [round(float(p), 6) for p in per_view[vi, j]] for vi, v in enumerate(model.test_views)}
            rows.append(row)
        result = {"subject": int(subject), "fold": int(k), "selected_epoch": trained["epoch"], "rows": rows,
                  "history": trained["history"], "backbone_in": self.init_backbone_sha256}
        _atomic_json(result_path, result)
        (folder / "state.pt").unlink(missing_ok=True)  # the fold is done; its model.pt is what export needs
        return result

    def model_extra(self, what: str, epoch: int) -> dict:
        c = self.cfg
        return {"what": what, "epoch": epoch, "protocol": self.protocol, "run": c["name"],
                "n_frames": int(c["train"]["n_frames"]), "size": int(c["train"]["size"]),
                "normalisation": self.norm, "selection": c["train"]["selection"],
                "caches": [str(x) for x in c["data"]["caches"]], "crop": _cache_setting(c["data"]["caches"][0], "crop"),
                "synthetic": any(bool(_cache_setting(x, "synthetic")) for x in c["data"]["caches"]),
                "init": {"pretrained": c["model"]["pretrained"] and str(c["model"]["pretrained"]), "kind": c["model"]["init"]},
                "provenance": list(c["provenance"] or [])}


def backbone_digest(model: ViewModel) -> str:
    """SHA-256 of the backbone's weights without its classifier: what an N-step stage carries over."""
    h = hashlib.sha256()
    for k, v in sorted(model.backbone.state_dict().items()):
        if not k.startswith("fc."):
            h.update(k.encode())
            h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def input_normalisation(model_cfg: dict) -> dict:
    """The pixel normalisation the backbone's starting weights expect: ImageNet's for inflated 2D weights,
    the stored one for our own checkpoints (so an N-step chain keeps its first stage's), else the known
    file's (kenshohara 2017 and 2020 differ) or the architecture's default."""
    path = model_cfg["pretrained"]
    if path and model_cfg["init"] == "inflate2d":
        from .models.checkpoint import imagenet_normalisation

        return imagenet_normalisation()
    if path and Path(path).is_file():
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
        except Exception:  # noqa: BLE001 — not ours; load_pretrained will say what is wrong with it
            payload = None
        if isinstance(payload, dict) and payload.get("kind") == "view_model":
            return dict(payload["extra"]["normalisation"])
    return model_spec(model_cfg["name"]).normalisation_for(path)


def _cache_setting(path, key: str):
    try:
        return json.loads((Path(path) / "cache.json").read_text()).get(key)
    except (OSError, ValueError):
        return None


# ---------------------------------------------------------------- reports


def write_reports(trainer: Trainer, results: list[dict]) -> dict:
    out, cfg, classes = trainer.out, trainer.cfg, trainer.bank.classes
    rows = [r for res in sorted(results, key=lambda r: r["subject"]) for r in res["rows"]]
    y_true = [classes.index(r["label"]) for r in rows]
    y_pred = [classes.index(r["pred"]) for r in rows]
    metrics = scores(y_true, y_pred, len(classes))
    with open(out / ".predictions.csv.tmp", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["subject", "clip", "label", "pred", "fold", *[f"score_{c}" for c in classes]])
        for r in rows:
            w.writerow([r["subject"], r["clip"], r["label"], r["pred"], r["fold"], *r["scores"]])
    os.replace(out / ".predictions.csv.tmp", out / "predictions.csv")
    per_subject = []
    for res in sorted(results, key=lambda r: r["subject"]):
        n = len(res["rows"])
        ok = sum(r["label"] == r["pred"] for r in res["rows"])
        per_subject.append({"subject": res["subject"], "clips": n, "correct": ok, "accuracy": round(ok / n, 4) if n else 0.0,
                            "selected_epoch": res["selected_epoch"]})
    with open(out / ".per_subject.csv.tmp", "w", newline="") as f:
        w = csv.DictWriter(f, list(per_subject[0]))
        w.writeheader()
        w.writerows(per_subject)
    os.replace(out / ".per_subject.csv.tmp", out / "per_subject.csv")
    s, t = cfg["scheme"], cfg["train"]
    protocol = {
        "evaluation": "leave-one-subject-out, predictions pooled over all folds (UF1/UAR composite style)",
        "dataset_protocol": trainer.protocol, "classes": list(classes), "subjects": len(results), "clips": len(rows),
        "scheme": s["type"], "train_views": str(s["train_views"]), "test_views": str(s["test_views"] or s["train_views"]),
        "fsb_head": s["fsb_head"] if s["type"] == "fsb" else None, "backbone": cfg["model"]["name"],
        "pretrained": cfg["model"]["pretrained"], "epochs": t["epochs"], "n_frames": t["n_frames"], "size": t["size"],
        "selection": t["selection"], "smote": t["smote"], "balanced": t["balanced"], "seed": t["seed"],
    }
    results_json = {"uf1": metrics["uf1"], "uar": metrics["uar"], "war": metrics["war"], "n": metrics["n"],
                    "protocol": protocol, "per_class": metrics["per_class"], "confusion": metrics["confusion"],
                    "run": cfg["name"]}
    if t["selection"] == "test_set_best":
        results_json["warning"] = SELECTION_WARNING
    _atomic_json(out / "results.json", results_json)
    _confusion_png(out / "confusion.png", np.array(metrics["confusion"]), classes, metrics)
    _report_md(out / "report.md", results_json, per_subject)
    return results_json


def _confusion_png(path: Path, m: np.ndarray, classes, metrics) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(1.2 * len(classes) + 2.5, 1.1 * len(classes) + 2))
    ax.imshow(m, cmap="Blues")
    ax.set_xticks(range(len(classes)), classes, rotation=35, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(len(classes)):
        for j in range(len(classes)):
            ax.text(j, i, int(m[i, j]), ha="center", va="center", color="white" if m[i, j] > m.max() / 2 else "black")
    ax.set_title(f"UF1 {metrics['uf1']:.3f}  UAR {metrics['uar']:.3f}  WAR {metrics['war']:.3f}")
    fig.tight_layout()
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)


def _report_md(path: Path, res: dict, per_subject: list[dict]) -> None:
    p = res["protocol"]
    lines = [f"# {res['run']}", ""]
    if "warning" in res:
        lines += [f"> **Warning.** {res['warning']}", ""]
    lines += [
        f"{p['evaluation']}; {p['dataset_protocol']} protocol ({', '.join(p['classes'])}), {p['subjects']} subjects, "
        f"{p['clips']} clips.",
        "",
        "| UF1 | UAR | WAR |", "| --- | --- | --- |", f"| {res['uf1']:.4f} | {res['uar']:.4f} | {res['war']:.4f} |", "",
        f"Scheme **{p['scheme'].upper()}**{' (' + p['fsb_head'] + ' head)' if p['fsb_head'] else ''}: train views "
        f"{p['train_views']}, test views {p['test_views']}; backbone {p['backbone']}"
        f"{' from ' + str(p['pretrained']) if p['pretrained'] else ' from scratch'}; {p['epochs']} epochs, "
        f"{p['n_frames']} frames at {p['size']} px; model selection: {p['selection']}; SMOTE: {p['smote']}; "
        f"balanced sampling: {p['balanced']}; seed {p['seed']}.",
        "", "![confusion](confusion.png)", "", "| class | F1 | recall | support |", "| --- | --- | --- | --- |",
    ]
    pc = res["per_class"]
    for c, f1, rc, n in zip(p["classes"], pc["f1"], pc["recall"], pc["support"]):
        lines.append(f"| {c} | {f1:.3f} | {rc:.3f} | {n} |")
    lines += ["", "| subject | clips | correct | accuracy | epoch |", "| --- | --- | --- | --- | --- |"]
    for s in per_subject:
        lines.append(f"| {s['subject']} | {s['clips']} | {s['correct']} | {s['accuracy']:.3f} | {s['selected_epoch']} |")
    path.write_text("\n".join(lines) + "\n")


# ---------------------------------------------------------------- the whole experiment


def run(cfg: dict, final: bool = False, log=print, progress: bool = True, wait_seconds: float = 7 * 24 * 3600) -> dict:
    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    out = Path(cfg["out"] or Path("runs") / cfg["name"])
    out.mkdir(parents=True, exist_ok=True)
    seed = int(cfg["train"]["seed"])
    random.seed(seed)
    np.random.seed(seed % (2**32))
    trainer = Trainer(cfg, out, log=log, progress=progress and rank == 0)
    subjects = sorted(set(trainer.bank.subjects.tolist()))
    if len(subjects) < 2:
        raise InputError(f"LOSO needs at least two subjects; the data has {len(subjects)}")
    if rank == 0:
        (out / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
        log(f"{cfg['name']}: {len(trainer.bank)} clips, {len(subjects)} subjects, classes {', '.join(trainer.bank.classes)}; "
            f"device {trainer.device}{', bf16' if trainer.amp_dtype else ''}; folds on {world} rank(s); out {out}")
    t0 = time.perf_counter()
    mine = [(k, s) for k, s in enumerate(subjects) if k % world == rank]
    for k, subject in mine:
        res = trainer.fold(k, subject)
        if rank == 0 or world == 1:
            n = len(res["rows"])
            ok = sum(r["label"] == r["pred"] for r in res["rows"])
            log(f"fold {k + 1}/{len(subjects)} subject {subject}: {ok}/{n} correct")
    if rank != 0:
        return {}
    results = _gather(out, subjects, wait_seconds)
    summary = write_reports(trainer, results)
    log(f"UF1 {summary['uf1']:.4f}  UAR {summary['uar']:.4f}  WAR {summary['war']:.4f}  ({summary['n']} clips, "
        f"{time.perf_counter() - t0:.1f} s){'  [' + SELECTION_WARNING + ']' if 'warning' in summary else ''}")
    if final:
        all_idx = np.arange(len(trainer.bank))
        fseed = _seed(seed, "final")
        trained = trainer.train_model("final", out / "final", all_idx, None, fseed)
        save_view_model(out / "final" / "model.pt", trained["model"], trainer.bank.classes,
                        {**trainer.model_extra("trained on all subjects (--final)", trained["epoch"]),
                         "loso": {k: summary[k] for k in ("uf1", "uar", "war", "n", "protocol")}})
        (out / "final" / "state.pt").unlink(missing_ok=True)
        log(f"final model (all subjects): {out / 'final' / 'model.pt'}")
    return summary


def _gather(out: Path, subjects: list[int], wait_seconds: float) -> list[dict]:
    """Every fold's result, waiting for the other ranks' folds to land in the shared run folder."""
    deadline = time.time() + wait_seconds
    paths = [out / "folds" / f"subject_{s}" / "result.json" for s in subjects]
    while True:
        missing = [p for p in paths if not p.exists()]
        if not missing:
            return [json.loads(p.read_text()) for p in paths]
        if time.time() > deadline:
            raise InputError(f"gave up waiting for {len(missing)} folds (first: {missing[0].parent.name}); "
                             f"run the same command again to finish them")
        time.sleep(2)


@cli
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m training.loso",
        description="Run a leave-one-subject-out experiment (SBML or FSB Décalcomanie training) from a YAML config. "
                    "Resumable: run the same command again after an interruption.",
        epilog="Examples: python -m training.loso --config training/configs/tiny.yaml data.caches=[cache/smic-synth] epochs=3 | "
               "torchrun --nproc-per-node 4 -m training.loso --config training/configs/paper/table2_smic_sbml_train-OLR_test-OLR.yaml",
    )
    p.add_argument("--config", required=True, type=Path, help="YAML experiment config (see training/configs/)")
    p.add_argument("overrides", nargs="*", help="key=value overrides, e.g. train.epochs=3 test_views=OL")
    p.add_argument("--out", type=Path, default=None, help="run folder (default: the config's out, else runs/<name>)")
    p.add_argument("--final", action="store_true", help="also train the deployable model on all subjects")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = p.parse_args(argv)
    cfg = load_config(args.config, args.overrides)
    if args.out:
        cfg["out"] = str(args.out)
    run(cfg, final=args.final, progress=not args.no_progress)
    return 0


if __name__ == "__main__":
    sys.exit(main())
