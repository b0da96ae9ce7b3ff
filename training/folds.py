"""The fold lifecycle of a LOSO run: train a fold (or every fold at once), write its folder, resume, report.

A fold's folder, ``folds/subject_<s>/`` of the run folder, is written by :func:`write_fold` whichever engine trained
it: ``model.pt`` (the fold's model), ``result.json`` (the held-out subject's predictions, the per-epoch history, the
selected epoch, where its backbone started); its resumable ``state.pt`` goes once the fold is written. A fold whose
``result.json`` exists is done and read back (:func:`run_fold`), so a stopped run continues with its unfinished folds:
one by one (:func:`run_fold`: :meth:`~training.engine.Trainer.train_model`, resumable from the fold's ``state.pt``) or
every one at once (:func:`run_folds`: :func:`training.foldbatch.train_folds`, resumable from ``foldbatch/state.pt``).
:func:`train_rank_folds` is what the LOSO command runs on each rank: this rank's folds, one line per fold, then
(rank 0) every fold's result, waiting for the other ranks' (:func:`gather`); the reports are
:func:`training.report.write_reports`'.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from inference.errors import InputError
from inference.files import write_json_atomic

from .engine import Trainer, seed_for
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


def run_folds(trainer: Trainer, subjects: list[int], log=print, world: int = 1) -> bool:
    """The LOSO runner's hook (``train.fold_batch: true``): train every unfinished fold of ``subjects`` at once and
    write each fold's folder as :func:`run_fold` does. False (and one line to ``log``) when the config
    cannot be fold-batched: the runner then trains the folds one by one."""
    from .foldbatch import train_folds, unsupported

    why = unsupported(trainer, world)
    if why is not None:
        log(f"train.fold_batch: {why}; training the folds one by one")
        return False
    out = trainer.out
    todo = [(k, s) for k, s in enumerate(subjects) if not (out / "folds" / f"subject_{s}" / "result.json").exists()]
    if not todo:
        return True
    log(f"training {len(todo)} folds at once (train.fold_batch)")
    trained = train_folds(trainer, [s for _, s in todo], out / "foldbatch")
    for k, s in todo:  # their TensorBoard scalars were written as they trained (training.loop)
        write_fold(trainer, k, s, trained[s])
    (out / "foldbatch" / "state.pt").unlink(missing_ok=True)
    (out / "foldbatch").rmdir()  # every fold is written: nothing of the joint training is left to resume
    return True


def train_rank_folds(trainer: Trainer, subjects: list[int], log=print, rank: int = 0, world: int = 1,
                     wait_seconds: float = 7 * 24 * 3600) -> list[dict] | None:
    """This rank's folds of a LOSO run over held-out ``subjects`` (fold k on rank k mod ``world``; with
    ``train.fold_batch`` every unfinished fold at once first, :func:`run_folds`), one line per fold to ``log``; then
    on rank 0 every fold's result (waiting for the other ranks', :func:`gather`), None on the others."""
    mine = [(k, s) for k, s in enumerate(subjects) if k % world == rank]
    if trainer.cfg["train"]["fold_batch"]:  # every fold at once (training.foldbatch); the loop below then reads them
        run_folds(trainer, subjects, log, world)
    for k, subject in mine:
        res = run_fold(trainer, k, subject)
        if rank == 0 or world == 1:
            n = len(res["rows"])
            ok = sum(r["label"] == r["pred"] for r in res["rows"])
            log(f"fold {k + 1}/{len(subjects)} subject {subject}: {ok}/{n} correct")
    if rank != 0:
        return None
    return gather(trainer.out, subjects, wait_seconds)


def gather(out: Path, subjects: list[int], wait_seconds: float) -> list[dict]:
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
