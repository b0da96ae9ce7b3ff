"""A package's calibration, made at export time: the temperature fitted on its LOSO run's out-of-subject predictions
and the reliability diagram (:mod:`inference.calibration` holds the numbers and applies them when serving).

The held-out predictions are the run's ``predictions.csv`` (``training.report``): one row per clip, scored by the
model of the fold that held its subject out, probabilities in ``score_<class>`` columns. A fold's checkpoint
(``RUN/folds/subject_S/model.pt``) and a ``--final`` one (``RUN/final/model.pt``) both find them in ``RUN``;
:func:`fold_predictions` takes them from anywhere else (e.g. a converted fold package's own LOSO predictions).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from inference.calibration import DEFAULT_FLOOR, FIGURE_FILE, Calibration
from inference.errors import InputError


def run_folder(checkpoint: Path) -> Path | None:
    """The LOSO run a checkpoint belongs to (the folder of its ``predictions.csv``), or None."""
    checkpoint = Path(checkpoint).resolve()
    for run in (checkpoint.parent.parent.parent, checkpoint.parent.parent):
        if (run / "predictions.csv").is_file() and (run / "results.json").is_file():
            if checkpoint.parent.parent.name == "folds" or checkpoint.parent.name == "final":
                return run
    return None


def read_predictions(path: Path, labels: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """``predictions.csv`` → probabilities ``(N, K)`` in ``labels``' order and the true class indices ``(N,)``."""
    path = Path(path)
    try:
        with path.open(newline="") as f:
            rows = list(csv.DictReader(f))
    except OSError as e:
        raise InputError(f"{path}: cannot read it ({e.strerror or e})") from None
    columns = [f"score_{k}" for k in labels]
    if not rows or any(c not in rows[0] for c in columns) or "label" not in rows[0]:
        raise InputError(f"{path}: expected one row per clip with a label and the columns {', '.join(columns)} "
                         f"(a LOSO run's predictions.csv for the classes {', '.join(labels)})")
    try:
        probs = np.array([[float(r[c]) for c in columns] for r in rows], np.float64)
        y = np.array([labels.index(r["label"]) for r in rows], np.int64)
    except ValueError as e:
        raise InputError(f"{path}: a row does not read ({e}); is it this model's run?") from None
    return probs, y


def fold_predictions(probs, labels_idx, source: str, floor: float = DEFAULT_FLOOR) -> Calibration:
    """A :class:`Calibration` from out-of-subject predictions given directly (e.g. a fold package: each clip through
    the fold that held its subject out)."""
    return Calibration.fit(probs, labels_idx, source, floor)


def loso_calibration(checkpoint: Path, labels: list[str], floor: float = DEFAULT_FLOOR) -> Calibration | None:
    """The calibration of a checkpoint from its LOSO run's pooled out-of-fold predictions; None when the checkpoint
    belongs to no LOSO run (e.g. an N-step pre-training stage)."""
    run = run_folder(checkpoint)
    if run is None:
        return None
    probs, y = read_predictions(run / "predictions.csv", list(labels))
    results = json.loads((run / "results.json").read_text())
    source = (f"{run.name}/predictions.csv: {len(y)} clips, each scored by the model of the LOSO fold that held its "
              f"subject out (selection: {results.get('selection', (results.get('protocol') or {}).get('selection'))})")
    if results.get("warning"):
        source += f". {results['warning']}"
    return Calibration.fit(probs, y, source, floor)


def reliability_figure(cal: Calibration, path: Path) -> Path:
    """The reliability diagram (before and after the temperature) as a PNG: per confidence bin, the accuracy of the
    held-out predictions against their mean confidence; the diagonal is perfect calibration."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(8, 4), sharey=True)
    for ax, key, title in ((axes[0], "before", "before"), (axes[1], "after", f"after (T = {cal.temperature:g})")):
        bins = cal.reliability.get(key) or []
        ece = cal.ece_before if key == "before" else cal.ece_after
        centres = [(b["lo"] + b["hi"]) / 2 for b in bins]
        acc = [b["accuracy"] if b["accuracy"] is not None else 0.0 for b in bins]
        width = (bins[0]["hi"] - bins[0]["lo"]) if bins else 0.1
        ax.bar(centres, acc, width=width * 0.95, color="#4c72b0", edgecolor="black", linewidth=0.5,
               label="accuracy")
        conf = [(c, b["confidence"]) for c, b in zip(centres, bins) if b["confidence"] is not None]
        if conf:
            ax.plot(*zip(*conf), "o", color="#dd8452", label="mean confidence")
        ax.plot([0, 1], [0, 1], "--", color="grey", linewidth=1)
        ax.axvline(cal.floor, color="#c44e52", linewidth=1, linestyle=":", label=f"floor {cal.floor:g}")
        ax.set_xlim(0, 1), ax.set_ylim(0, 1)
        ax.set_xlabel("confidence (top probability)")
        ax.set_title(f"{title}: ECE {ece:.3f}")
    axes[0].set_ylabel("accuracy")
    axes[1].legend(loc="upper left", fontsize=8)
    fig.suptitle(f"Reliability on {cal.clips} out-of-subject LOSO predictions", fontsize=10)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def card_section(cal: Calibration | None) -> str:
    """The card's calibration paragraph."""
    if cal is None:
        return ("No calibration: this model belongs to no leave-one-subject-out run, so there were no out-of-subject "
                "predictions to fit a temperature on. Its probabilities are the network's softmax as it is.")
    below = cal.below_floor or {}
    text = (f"The probabilities are temperature-scaled: **T = {cal.temperature:g}**, fitted by minimising the negative "
            f"log-likelihood of {cal.clips} out-of-subject predictions ({cal.source}). Expected calibration error "
            f"({cal.bins} bins): **{cal.ece_before} before, {cal.ece_after} after**; NLL {cal.nll_before} → "
            f"{cal.nll_after}. The temperature never changes the top class.\n\n"
            f"**Confidence floor: {cal.floor:g}.** A verdict whose calibrated top probability is below it is shown "
            f"as *uncertain* (the batch command's `uncertain` column, the demo's verdict line).")
    if below:
        text += (f" On the held-out predictions {below.get('share', 0):.0%} of the clips fall below it; their "
                 f"accuracy is {below.get('accuracy_below')}, against {below.get('accuracy_at_or_above')} at or "
                 f"above it.")
    if cal.figure:
        text += f"\n\n![Reliability diagram]({cal.figure})"
    return text


__all__ = ["FIGURE_FILE", "card_section", "fold_predictions", "loso_calibration", "read_predictions",
           "reliability_figure", "run_folder"]
