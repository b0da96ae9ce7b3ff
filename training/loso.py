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

This module is the command; the fold lifecycle (train, write, resume, gather) is :mod:`training.folds`, the
training itself :mod:`training.engine` and :mod:`training.loop`, the reports :mod:`training.report`.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from pathlib import Path

import numpy as np
import yaml

from inference.errors import InputError, cli

from .config import load_config
from .engine import Trainer, seed_for
from .folds import train_rank_folds
from .report import SELECTION_WARNING, write_reports
from .schemes import save_view_model


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
    results = train_rank_folds(trainer, subjects, log, rank, world, wait_seconds)
    if results is None:
        return {}
    summary = write_reports(out, cfg, trainer.protocol, trainer.bank.classes, results)
    log(f"UF1 {summary['uf1']:.4f}  UAR {summary['uar']:.4f}  WAR {summary['war']:.4f}  ({summary['n']} clips, "
        f"{time.perf_counter() - t0:.1f} s){'  [' + SELECTION_WARNING + ']' if 'warning' in summary else ''}")
    if final and (out / "final" / "model.pt").exists() and not (out / "final" / "state.pt").exists():
        log(f"final model (all subjects): {out / 'final' / 'model.pt'} (already trained; kept)")
    elif final:
        trained = trainer.train_model("final", out / "final", np.arange(len(trainer.bank)), None,
                                      seed_for(seed, "final"))
        save_view_model(out / "final" / "model.pt", trained["model"], trainer.bank.classes,
                        {**trainer.model_extra("trained on all subjects (--final)", trained["epoch"]),
                         "loso": {k: summary[k] for k in ("uf1", "uar", "war", "n", "protocol")}})
        (out / "final" / "state.pt").unlink(missing_ok=True)
        log(f"final model (all subjects): {out / 'final' / 'model.pt'}")
    return summary


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
