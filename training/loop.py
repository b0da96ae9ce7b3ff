"""The one training loop: epochs, learning-rate schedule, evaluation hook, seeds, checkpoint / resume, TensorBoard.

:func:`train_epochs` runs the recipe's epochs (the config's ``train`` section) of a *step*, an object that trains
one epoch of one or several models at once. Two steps exist:

- :class:`training.engine.AutogradStep`: one model, ``torch.optim.Adam`` and autograd (a LOSO fold, the ``--final``
  model, an N-step stage; :meth:`training.engine.Trainer.train_model`);
- :class:`training.foldbatch.FoldStep`: every fold of a LOSO run in one module, :class:`~training.foldbatch.FoldAdam`,
  the compiled (``training/foldkernel.c``) or autograd fold-batched step (:func:`training.foldbatch.train_folds`).

What the loop does for both, in this order, every epoch: the step's generator for the epoch (the step seeds it, and
any global generator it draws from), the learning rate of :func:`lr_at` for the epoch, one epoch of the step (per
model its mean loss and training accuracy), the record ``{"epoch", "loss", "train_acc", "lr"}`` (``lr``: the rate
after the epoch, what ``MultiStepLR`` reports); with ``selection: test_set_best`` or ``oracle: true`` and held-out
clips, the evaluation hook (each model's predicted classes on its held-out clips → ``test_subject_acc``,
``test_pred`` with the oracle, the best epoch's weights with ``test_set_best``; it draws no random numbers, so the
trajectory is unchanged); one TensorBoard event per model (every scalar of the record but ``epoch`` and
``test_pred``, at step ``epoch``); every ``checkpoint_every`` epochs and at the last, the state (atomic). A stopped
run resumes from the state, bit for bit on the CPU, and its TensorBoard curves are the uninterrupted run's (the
steps a stopped session wrote past its last checkpoint are purged; before, a resumed fold also lost the checkpoint's
own epoch from its curves).

The step's interface (duck-typed; see the two steps):

``names``          one name per model: its TensorBoard folder under ``tensorboard`` (``subject_3``, ``final``, …)
``stacked``        whether the state keeps per-model lists of history and best (False: one model, its own)
``label``, ``desc``  the log lines' name (``<label>: resuming at epoch N``) and the progress bar's
``map_location``   where the state's tensors are loaded
``truth``          per model the labels of its held-out clips (the evaluation hook), or None (no hook)
``generator(epoch)`` → ``torch.Generator``; ``train_epoch(gen, lr)`` → per model ``{"loss", "train_acc"}``;
``predict()`` → per model its predicted classes on its held-out clips; ``snapshot(i)`` → model i's weights to keep as
its best; ``state_dict()`` / ``load_state_dict(state, path)``: the models and the optimiser; ``model(i, weights)`` →
model i, its weights replaced by ``weights`` (a snapshot) when given.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from inference.files import write_atomic


def lr_at(t: dict, epochs_done: int) -> float:
    """The learning rate after ``epochs_done`` epochs of the recipe ``t`` (``lr``, ``milestones``, ``gamma``): at each
    milestone the rate is multiplied by ``gamma`` (once per time the milestone is listed), in the order and with the
    float arithmetic of ``torch.optim.lr_scheduler.MultiStepLR``, so the rates are that scheduler's to the bit."""
    lr = t["lr"]
    for epoch in range(1, epochs_done + 1):
        times = sum(1 for m in t["milestones"] if m == epoch)
        if times:
            lr = lr * t["gamma"] ** times
    return lr


class ScalarLog:
    """One TensorBoard event file per model (``root/<name>``): per epoch one event with every scalar of the record
    (sorted by name) at step ``epoch`` (1 for the first). Opened after ``start`` epochs it purges the steps after
    ``start`` (what a stopped session wrote past its last checkpoint), as ``SummaryWriter(purge_step=start + 1)``
    does, so a resumed run's curves are the uninterrupted run's: every epoch once."""

    def __init__(self, root: Path, names: list[str], start: int):
        from tensorboard.compat.proto.event_pb2 import Event, SessionLog
        from torch.utils.tensorboard.writer import FileWriter

        self.writers = []
        for name in names:
            writer = FileWriter(str(Path(root) / name))
            writer.add_event(Event(step=start + 1, file_version="brain.Event:2"))
            writer.add_event(Event(step=start + 1, session_log=SessionLog(status=SessionLog.START)))
            self.writers.append(writer)

    def add(self, i: int, record: dict) -> None:
        from tensorboard.compat.proto.summary_pb2 import Summary

        keys = sorted(set(record) - {"epoch", "test_pred"})
        self.writers[i].add_summary(Summary(value=[Summary.Value(tag=k, simple_value=float(record[k])) for k in keys]),
                                    record["epoch"])

    def close(self) -> None:
        for writer in self.writers:
            writer.close()


def train_epochs(step, t: dict, state_path: Path, tensorboard: Path, log=print, progress: bool = True) -> list[dict]:
    """Train ``step`` (see the module's docstring) for the recipe ``t``'s epochs, resuming from ``state_path``
    (written every ``checkpoint_every`` epochs and at the last); returns per model its chosen weights' model
    (``model``), the chosen epoch (``epoch``: the last, or the best on the held-out clips with
    ``selection: test_set_best``) and the per-epoch history (``history``)."""
    from tqdm import tqdm

    n = len(step.names)
    start, histories, best = 0, [[] for _ in range(n)], [None] * n
    state_path = Path(state_path)
    if state_path.exists():
        state = torch.load(state_path, map_location=step.map_location, weights_only=True)
        step.load_state_dict(state, state_path)
        start = state["epoch"]
        histories, best = (state["history"], state["best"]) if step.stacked else ([state["history"]],
                                                                                  [state.get("best")])
        log(f"{step.label}: resuming at epoch {start}")
    epochs = t["epochs"]
    watch = (t["selection"] == "test_set_best" or t["oracle"]) and step.truth is not None
    scalars = ScalarLog(tensorboard, step.names, start)
    bar = tqdm(range(start, epochs), desc=step.desc, unit="epoch", initial=start, total=epochs,
               disable=not progress, leave=False)
    for epoch in bar:
        gen = step.generator(epoch)
        stats = step.train_epoch(gen, lr_at(t, epoch))
        for h, s in zip(histories, stats):
            h.append({"epoch": epoch + 1, "loss": s["loss"], "train_acc": s["train_acc"], "lr": lr_at(t, epoch + 1)})
        if watch:  # the evaluation hook: draws no random numbers, so the trajectory is unchanged
            for i, (pred, truth) in enumerate(zip(step.predict(), step.truth)):
                acc = float((pred == truth).mean())
                histories[i][-1]["test_subject_acc"] = acc
                if t["oracle"]:  # the oracle figure is read from these (training.report.oracle_scores)
                    histories[i][-1]["test_pred"] = pred.tolist()
                if t["selection"] == "test_set_best" and (best[i] is None or acc > best[i]["acc"]):
                    best[i] = {"acc": acc, "epoch": epoch + 1, "model": step.snapshot(i)}
        for i, h in enumerate(histories):
            scalars.add(i, h[-1])
        bar.set_postfix(loss=f"{np.mean([h[-1]['loss'] for h in histories]):.3f}",
                        acc=f"{np.mean([h[-1]['train_acc'] for h in histories]):.2f}")
        if (epoch + 1) % t["checkpoint_every"] == 0 or epoch + 1 == epochs:
            state = {**step.state_dict(), "epoch": epoch + 1,
                     "best": best if step.stacked else best[0], "history": histories if step.stacked else histories[0]}
            write_atomic(state_path, lambda f: torch.save(state, f))
    scalars.close()
    out = []
    for i, h in enumerate(histories):
        chosen = best[i] if t["selection"] == "test_set_best" else None
        out.append({"model": step.model(i, None if chosen is None else chosen["model"]),
                    "epoch": epochs if chosen is None else chosen["epoch"], "history": h})
    return out
