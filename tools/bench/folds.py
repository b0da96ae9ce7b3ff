"""A fold package's two targets, measured and printed (never timed tests).

``python -m tools.bench.folds --model PKG --data SET [--threads 2] [--repeat 50]``:

- ``python -m inference.evaluate``'s whole work on SET (read and check the set, load the package, run every clip,
  score, write the reports) per engine, in seconds, beside its target (the 442-clip composite set: ≤ 10 s on 2
  cores);
- one interval's answer: the graph on one flow image (batch 1; all the package's folds and their mean), the median
  over ``--repeat`` calls after a warm-up, per engine, beside its target (a 68-fold package: ≤ 50 ms on the CPU).
Serving only (ONNX Runtime, OpenVINO): no PyTorch.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time

import numpy as np

from inference.errors import cli
from inference.evaluate import evaluate, session_for
from inference.package import ModelPackage
from inference.runtime import openvino_available

EVALUATE_TARGET_S = 10.0
INTERVAL_TARGET_MS = 50.0


@cli
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.bench.folds", description=__doc__.split("\n\n")[1])
    p.add_argument("--model", required=True, help="a (fold) package folder")
    p.add_argument("--data", required=True, help="a labelled flow-image set (python -m inference.evaluate's --data)")
    p.add_argument("--threads", type=int, default=2, help="CPU threads for the runtime (default 2)")
    p.add_argument("--repeat", type=int, default=50, help="calls timed for one interval (median)")
    args = p.parse_args(argv)
    pkg = ModelPackage.load(args.model)
    folds = len(pkg.folds.subjects) if pkg.folds else 1
    engines = ["onnxruntime"] + (["openvino"] if openvino_available() else [])
    print(f"{pkg.name}: {folds} fold(s); {args.threads} threads")
    for engine in engines:
        with tempfile.TemporaryDirectory() as out:
            t0 = time.perf_counter()
            report = evaluate(args.model, args.data, out, engine, args.threads, log=lambda *_: None)
            took = time.perf_counter() - t0
        print(f"  evaluate   {engine:12s} {report['n']} clips in {took:6.2f} s  (target ≤ {EVALUATE_TARGET_S:g} s "
              f"for 442: {'met' if took * 442 / max(report['n'], 1) <= EVALUATE_TARGET_S else 'MISSED'}); "
              f"UF1 {report['overall']['uf1']:.4f} UAR {report['overall']['uar']:.4f}")
    from pathlib import Path

    from inference.hub import resolve_package
    from inference.views import view_indices

    folder = Path(resolve_package(args.model))
    clip = np.random.default_rng(0).integers(0, 256, (1, pkg.n_frames, pkg.input.height, pkg.input.width, 3),
                                             dtype=np.uint8)
    feeds = {"clips": clip, **({"views": view_indices(pkg.test_views)} if pkg.sbml else {})}
    for engine in engines:
        session, _ = session_for(folder, engine, args.threads)
        session.run(None, feeds)
        times = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            session.run(None, feeds)
            times.append((time.perf_counter() - t0) * 1000)
        ms = statistics.median(times)
        print(f"  1 interval {engine:12s} {ms:7.2f} ms median of {args.repeat}  (target ≤ {INTERVAL_TARGET_MS:g} ms: "
              f"{'met' if ms <= INTERVAL_TARGET_MS else 'MISSED'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
