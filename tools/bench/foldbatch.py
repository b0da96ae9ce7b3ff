"""``python -m tools.bench.training ststnet-loso``: STSTNet's whole LOSO on the CPU, the sequential runner's epochs
against every fold at once (``train.fold_batch``, :mod:`training.foldbatch`), on a random flow-image set of the
composite set's size. Run through :mod:`tools.bench.training`, which hands it the arguments after ``ststnet-loso``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from training.engine import Trainer, seed_for
from training.foldbatch import FoldAdam, FoldStep, compile_kernels, stack_of, train_epoch, use_compiled, wants_compile

ROOT = Path(__file__).resolve().parents[2]  # the repository


def composite_like_set(root: Path, subjects: int = 68, samples: int = 442, size: int = 28, seed: int = 0) -> Path:
    """A random flow-image set in the published layout (:func:`training.datasets.flowset.write_set`) of the
    composite set's size: ``subjects`` subjects over SMIC, CASME II and SAMM, ``samples`` clips dealt round-robin.
    Each image is a random smooth flow field and its optical strain, min-max scaled as published (so the reader's
    check that the strain channel is the strain of u and v passes)."""
    import cv2

    from inference.motion import FlowScaling
    from training.datasets.flowset import write_set

    rng = np.random.default_rng(seed)
    scaling = FlowScaling("minmax")

    def image() -> np.ndarray:
        uv = cv2.GaussianBlur(rng.normal(size=(size, size, 2)).astype(np.float32), (0, 0), 2.0)
        return scaling.encode(uv)

    names = [("smic", "s{}"), ("casme2", "sub{:02d}"), ("samm", "{:03d}")]
    subs = [(names[i % 3][0], names[i % 3][1].format(i // 3 + 1)) for i in range(subjects)]
    classes = ("negative", "positive", "surprise")
    clips = [{"dataset": subs[i % subjects][0], "sub": subs[i % subjects][1], "clip": f"c{i:04d}",
              "label": classes[int(rng.integers(3))], "image": image()}
             for i in range(samples)]
    write_set(root, clips)
    return root


def _timed(run, epochs: int) -> tuple[float, float]:
    """Wall and CPU (all threads) seconds per epoch of ``run(epoch)`` over ``epochs`` epochs."""
    import time

    w, c = time.perf_counter(), time.process_time()
    for e in range(epochs):
        run(e)
    return (time.perf_counter() - w) / epochs, (time.process_time() - c) / epochs


def bench(args, log=print) -> dict:
    """``python -m tools.bench.training ststnet-loso``: STSTNet's LOSO recipe (ststnet.yaml) on a random set of the
    composite size, the sequential runner's epoch (a few folds, extrapolated to every fold) against the fold-batched
    epoch (every fold), and the whole run's extrapolated time."""
    import tempfile
    import time

    from training.config import load_config

    with tempfile.TemporaryDirectory() as tmp:
        root = composite_like_set(Path(tmp) / "set", args.subjects, args.samples)
        cfg = load_config(args.config, [f"data.caches=[{root}]", "device=cpu", f"epochs={args.epochs}"])
        trainer = Trainer(cfg, Path(tmp) / "run", log=lambda *_: None, progress=False)
    subjects = sorted(set(trainer.bank.subjects.tolist()))
    t, bank = cfg["train"], trainer.bank
    out = {"config": str(args.config), "subjects": len(subjects), "samples": len(bank), "epochs": args.epochs,
           "threads": torch.get_num_threads(),
           "batch": t["batch_size"], "seq_folds": min(args.seq_folds, len(subjects))}
    # sequential: the engine's own epoch (Trainer.train_one_epoch) of a few folds
    seq = []
    for s in subjects[:args.seq_folds]:
        model = trainer.new_model(seed_for(t["seed"], "fold", int(s)))
        opt = torch.optim.Adam(model.parameters(), lr=t["lr"])
        clips, labels, zeros = trainer.training_set(np.flatnonzero(bank.subjects != s), 0)
        model.class_weight = trainer.class_weights(labels)  # train.class_weights, as the runner sets it

        def epoch(e, model=model, opt=opt, clips=clips, labels=labels, zeros=zeros):
            trainer.train_one_epoch(model, opt, clips, labels, torch.Generator().manual_seed(e), zeros)

        epoch(0)  # warm-up
        seq.append(_timed(epoch, args.seq_epochs))
        log(f"sequential fold {s}: {seq[-1][0]:.3f} s/epoch wall, {seq[-1][1]:.3f} s CPU")
    out["sequential_epoch_s"] = [float(np.mean([x[i] for x in seq])) for i in (0, 1)]
    # every fold at once
    c0 = time.perf_counter()
    models = [trainer.new_model(seed_for(t["seed"], "fold", int(s))) for s in subjects]
    stack = stack_of(models)  # FSB: with the folds' fused heads
    step_compiled = args.step != "autograd" and use_compiled(trainer, stack, log)
    if args.step == "compiled" and not step_compiled:
        raise SystemExit("--step compiled: the compiled step is not available here (see the line above)")
    on = not step_compiled and compile_kernels(
        wants_compile(trainer, len(subjects)) if args.compile == "auto" else args.compile == "on", log)
    opt = FoldAdam(stack, t["lr"])
    held = torch.as_tensor(np.array(subjects))[:, None]
    every = torch.as_tensor(bank.subjects)

    class_w = FoldStep.class_weights_of(trainer, subjects)

    def batched(e):
        train_epoch(trainer, stack, models[0], opt, held, every, torch.Generator().manual_seed(e), step_compiled,
                    class_w)

    batched(0)  # warm-up, and the compiling
    out["compile_s"] = time.perf_counter() - c0
    out["compiled"] = on
    out["step"] = "compiled (training/foldkernel.c)" if step_compiled else "autograd"
    out["batched_epoch_s"] = list(_timed(batched, args.timed_epochs))
    log(f"{len(subjects)} folds at once: {out['batched_epoch_s'][0]:.3f} s/epoch wall, "
        f"{out['batched_epoch_s'][1]:.3f} s CPU")
    n = len(subjects) * args.epochs
    out["sequential_run_min"] = [x * n / 60 for x in out["sequential_epoch_s"]]
    out["batched_run_min"] = [x * args.epochs / 60 + out["compile_s"] / 60 * (i == 0)
                              for i, x in enumerate(out["batched_epoch_s"])]
    out["speedup"] = out["sequential_epoch_s"][0] * len(subjects) / out["batched_epoch_s"][0]
    return out


def bench_main(argv: list[str]) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="python -m tools.bench.training ststnet-loso",
                                description="STSTNet's full LOSO (ststnet.yaml) on the CPU: the sequential runner's "
                                            "epochs (a few folds, extrapolated) against every fold at once "
                                            "(train.fold_batch), on a random flow-image set of the composite size.")
    p.add_argument("--config", type=Path, default=ROOT / "training" / "configs" / "peers" / "ststnet.yaml",
                   help="the LOSO config (default ststnet.yaml; e.g. ststnet_fsb_OLR.yaml, ststnet_balanced.yaml)")
    p.add_argument("--subjects", type=int, default=68)
    p.add_argument("--samples", type=int, default=442)
    p.add_argument("--epochs", type=int, default=800, help="the recipe's epochs (the extrapolation's)")
    p.add_argument("--seq-folds", type=int, default=2, help="sequential folds timed")
    p.add_argument("--seq-epochs", type=int, default=3, help="timed epochs per sequential fold (after a warm-up)")
    p.add_argument("--timed-epochs", type=int, default=3, help="timed fold-batched epochs (after a warm-up)")
    p.add_argument("--step", choices=("auto", "compiled", "autograd"), default="auto",
                   help="the fold-batched step: compiled (training/foldkernel.c; auto: when it can be built here) or "
                        "PyTorch's autograd")
    p.add_argument("--compile", choices=("auto", "on", "off"), default="auto",
                   help="torch.compile the autograd step's element-wise kernels")
    p.add_argument("--threads", type=int, default=None, help="math threads (default: PyTorch's, one per core)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    r = bench(args)
    wall, cpu = r["batched_run_min"]
    print(f"STSTNet LOSO, {r['subjects']} folds x {r['epochs']} epochs, {r['samples']} clips, batch {r['batch']}, "
          f"{Path(r['config']).name}, CPU, {r['threads']} threads (epochs timed, the run extrapolated: sequential from "
          f"{r['seq_folds']} folds; evaluation and writing the folds not counted)")
    print(f"  sequential: {r['sequential_epoch_s'][0]:.3f} s per fold-epoch -> {r['sequential_run_min'][0]:.1f} min "
          f"({r['sequential_run_min'][1]:.1f} CPU-min)")
    print(f"  all folds at once, step {r['step']}{', torch.compile' if r['compiled'] else ''}: "
          f"{r['batched_epoch_s'][0]:.2f} s per epoch "
          f"-> {wall:.1f} min incl. {r['compile_s']:.0f} s warm-up/compile ({cpu:.1f} CPU-min)")
    print(f"  speed-up {r['speedup']:.1f}x; full run <= 10 min: {'yes' if wall <= 10 else 'no'}")
    return 0
