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

This module is the command and the fold loop; the training itself is :mod:`training.engine`, the reports
:mod:`training.report`.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

import numpy as np
import yaml

from inference.errors import InputError, cli
from inference.files import write_json_atomic

from .config import load_config
from .engine import Trainer, seed_for
from .report import SELECTION_WARNING, write_reports
from .schemes import save_view_model


def run_fold(trainer: Trainer, k: int, subject: int) -> dict:
    """Fold ``k``: train on every subject but ``subject``, test on it; its ``result.json`` (read back when the
    fold finished before). The fold's folder keeps model.pt; its resumable state.pt goes once the fold is done."""
    folder = trainer.out / "folds" / f"subject_{subject}"
    result_path = folder / "result.json"
    if result_path.exists():
        return json.loads(result_path.read_text())
    bank = trainer.bank
    test_idx = np.flatnonzero(bank.subjects == subject)
    train_idx = np.flatnonzero(bank.subjects != subject)
    fold_seed = seed_for(trainer.cfg["train"]["seed"], "fold", int(subject))
    trained = trainer.train_model(f"subject_{subject}", folder, train_idx, test_idx, fold_seed)
    return write_fold(trainer, k, subject, trained)


def write_fold(trainer: Trainer, k: int, subject: int, trained: dict) -> dict:
    """Fold ``k``'s folder from its trained model (``trained``: what :meth:`Trainer.train_model` returns, and
    ``backbone_in`` when the fold was trained elsewhere, :mod:`training.foldbatch`): model.pt, the held-out
    subject's predictions in result.json; its state.pt goes."""
    folder = trainer.out / "folds" / f"subject_{subject}"
    bank = trainer.bank
    test_idx = np.flatnonzero(bank.subjects == subject)
    model = trained["model"]
    probs, per_view = trainer.evaluate(model, test_idx)
    save_view_model(folder / "model.pt", model, bank.classes,
                    trainer.model_extra(f"LOSO fold, held-out subject {subject}", trained["epoch"]))
    rows = []
    for j, i in enumerate(test_idx):
        row = {"subject": int(subject), "clip": bank.ids[i], "label": bank.classes[int(bank.labels[i])],
               "pred": bank.classes[int(probs[j].argmax())], "fold": int(k),
               "scores": [round(float(p), 6) for p in probs[j]]}
        if per_view is not None:
            row["view_scores"] = {v: [round(float(p), 6) for p in per_view[vi, j]]
                                  for vi, v in enumerate(model.test_views)}
        rows.append(row)
    result = {"subject": int(subject), "fold": int(k), "selected_epoch": trained["epoch"], "rows": rows,
              "history": trained["history"], "backbone_in": trained.get("backbone_in", trainer.init_backbone_sha256),
              **trainer.fold_aus(model, test_idx, rows)}  # AU codes / predictions / AU F1 (models with an AU head)
    write_json_atomic(folder / "result.json", result)
    (folder / "state.pt").unlink(missing_ok=True)  # the fold is done; its model.pt is what export needs
    return result


def run(cfg: dict, final: bool = False, log=print, progress: bool = True, wait_seconds: float = 7 * 24 * 3600) -> dict:
    """The whole experiment for a loaded config (:func:`training.config.load_config`): this rank's folds, then
    (rank 0) the reports and, with ``final``, the model trained on all subjects. Returns results.json's contents
    (``{}`` on other ranks)."""
    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    out = Path(cfg["out"] or Path("runs") / cfg["name"])
    out.mkdir(parents=True, exist_ok=True)
    seed = cfg["train"]["seed"]
    random.seed(seed)
    np.random.seed(seed % (2**32))
    trainer = Trainer(cfg, out, log=log, progress=progress and rank == 0)
    subjects = sorted(set(trainer.bank.subjects.tolist()))
    if len(subjects) < 2:
        raise InputError(f"LOSO needs at least two subjects; the data has {len(subjects)}")
    if rank == 0:
        (out / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
        log(f"{cfg['name']}: {len(trainer.bank)} clips, {len(subjects)} subjects, classes "
            f"{', '.join(trainer.bank.classes)}; device {trainer.device}{', bf16' if trainer.amp_dtype else ''}; "
            f"folds on {world} rank(s); out {out}")
    t0 = time.perf_counter()
    mine = [(k, s) for k, s in enumerate(subjects) if k % world == rank]
    if cfg["train"]["fold_batch"]:  # every fold at once (training.foldbatch); the loop below then reads them back
        from .foldbatch import run_folds

        run_folds(trainer, subjects, log, world)
    for k, subject in mine:
        res = run_fold(trainer, k, subject)
        if rank == 0 or world == 1:
            n = len(res["rows"])
            ok = sum(r["label"] == r["pred"] for r in res["rows"])
            log(f"fold {k + 1}/{len(subjects)} subject {subject}: {ok}/{n} correct")
    if rank != 0:
        return {}
    results = _gather(out, subjects, wait_seconds)
    summary = write_reports(out, cfg, trainer.protocol, trainer.bank.classes, results)
    log(f"UF1 {summary['uf1']:.4f}  UAR {summary['uar']:.4f}  WAR {summary['war']:.4f}  ({summary['n']} clips, "
        f"{time.perf_counter() - t0:.1f} s){'  [' + SELECTION_WARNING + ']' if 'warning' in summary else ''}")
    if final:
        trained = trainer.train_model("final", out / "final", np.arange(len(trainer.bank)), None,
                                      seed_for(seed, "final"))
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
        epilog="Examples: python -m training.loso --config training/configs/tiny.yaml data.caches=[cache/smic-synth] "
               "epochs=3 | torchrun --nproc-per-node 4 -m training.loso "
               "--config training/configs/paper/table2_smic_sbml_train-OLR_test-OLR.yaml",
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
