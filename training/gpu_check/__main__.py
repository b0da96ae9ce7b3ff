"""``python -m training.gpu_check``: see the package's docstring (``python -m training.gpu_check --help``)."""

from __future__ import annotations

import argparse
import gc
import importlib
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

from inference.device import DEVICE_CHOICES, resolve_device
from inference.errors import InputError, cli

from . import __doc__ as DOC
from .loso_child import CUBLAS_WORKSPACE
from .report import MD_FILE, Report, overview
from .steps import DRY, FULL, STEPS, Context, NoCuda

DEFINITIONS = {
    "same predictions (step 3)": "deterministic algorithms on, same seeds, same GPU: every clip's predicted class "
                                 "identical and max |dp| <= 1e-3 between the uninterrupted and the killed-and-resumed "
                                 "run; bit-identity reported beside it",
    "MFU (step 2)": "model FLOPs of a training step (3 x the forward FLOPs counted by torch's FlopCounterMode) per "
                    "second over the GPU's dense bf16 peak from NVIDIA's datasheet (H100/H200 SXM 989 TFLOP/s)",
    "budget": "seconds each step may take on one H100/H200, after the libraries are imported; a step still running "
              "at its budget is stopped and recorded as failed, and the next one starts (a dry run allows 10x)",
}


class StepTimeout(BaseException):
    """Raised in the main thread at a step's budget. Not an Exception, so that no ``except Exception`` on the way
    (an optional import's guard, a per-item error handler) takes it for an ordinary failure and carries on."""


def _alarm(_signum, _frame):
    raise StepTimeout()


PRELOAD = ("numpy", "cv2", "torch", "torchvision", "onnx", "onnxruntime", "skimage.data", "sklearn.metrics",
           "torch.utils.tensorboard", "inference.runtime", "training.loso")


def preload() -> float:
    """Import the heavy libraries before any step's clock starts: a fresh machine's first imports are slow, and a
    step stopped in the middle of an import would leave a half-imported module to the next steps. One that does not
    import is left to the step that needs it to report. Returns the seconds it took."""
    t = time.perf_counter()
    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001, S112 — reported by the step that needs it
            continue
    return time.perf_counter() - t


def run_steps(report: Report, ctx: Context, only: set[int] | None) -> int:
    """Every step in order, each in its own try; returns how many failed."""
    timer = threading.current_thread() is threading.main_thread() and hasattr(signal, "setitimer")
    failed = 0
    for n, name, title, budget, fn in STEPS:
        if only and n not in only:
            continue
        step = report.step(n, name, title, budget)
        print(f"[{n}/{len(STEPS)}] {title} (budget {budget} s)", flush=True)
        t0 = time.perf_counter()
        limit = budget * (10 if ctx.dry else 1)
        previous = signal.signal(signal.SIGALRM, _alarm) if timer else None
        status = "ok"
        try:
            try:
                if timer:
                    signal.setitimer(signal.ITIMER_REAL, limit)
                fn(step, ctx)
            finally:  # disarmed before any handler below runs
                if timer:
                    signal.setitimer(signal.ITIMER_REAL, 0)
                    signal.signal(signal.SIGALRM, previous)
            if step.failed_asserts:
                status = "failed"
        except NoCuda as e:
            status = "skipped"
            step.skip("the whole step", str(e))
        except StepTimeout as e:
            status = "failed"
            step.fail(e, f"stopped at its budget of {limit:g} s")
        except Exception as e:  # noqa: BLE001 — the next steps must still run; the failure is recorded in full
            status = "failed"
            step.fail(e)
            print(f"  error: {type(e).__name__}: {e}", flush=True)
        failed += status == "failed"
        step.finish(status, time.perf_counter() - t0)
        _release(ctx)
    return failed


def imported_distributions() -> list[str]:
    """The distributions of every third-party module this process imported: what the check needs on a device."""
    from importlib.metadata import packages_distributions

    found = packages_distributions()
    top = {name.partition(".")[0] for name in list(sys.modules)}
    return sorted({d for m in top - set(sys.stdlib_module_names) for d in found.get(m, [])})


def _release(ctx: Context) -> None:
    gc.collect()
    if ctx.cuda:
        import torch

        torch.cuda.empty_cache()


def _steps(text: str) -> set[int]:
    try:
        picked = {int(x) for x in text.split(",") if x.strip()}
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected step numbers such as 1,3,4, got {text!r}") from None
    if not picked or not picked <= {n for n, *_ in STEPS}:
        raise argparse.ArgumentTypeError(f"steps are 1 to {len(STEPS)}, got {text!r}")
    return picked


@cli
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.gpu_check", description=DOC,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, type=Path, help="report folder (gpu_check.json, gpu_check.md, logs)")
    p.add_argument("--dry-run", action="store_true",
                   help="the same steps with the tiny model at tiny sizes (CPU unless --device says otherwise)")
    p.add_argument("--device", default=None, choices=DEVICE_CHOICES,
                   help="default: auto (CUDA when there is a GPU); with --dry-run: cpu")
    p.add_argument("--only", type=_steps, default=None,
                   help="run only these steps, e.g. 3,4 (step 4 exports the model step 3 trains)")
    p.add_argument("--work", type=Path, default=None,
                   help="scratch folder for caches, runs and the package (default: a temporary folder, removed after)")
    args = p.parse_args(argv)
    # before any CUDA work: cuBLAS reads it when its first handle is made (step 3's deterministic runs need it)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)
    device = resolve_device(args.device or ("cpu" if args.dry_run else "auto"))
    if args.work and args.work.exists() and any(args.work.iterdir()):
        raise InputError(f"--work {args.work} already holds files; give an empty or new folder")
    work = (args.work or Path(tempfile.mkdtemp(prefix="gpu_check."))).resolve()  # child commands run elsewhere
    work.mkdir(parents=True, exist_ok=True)
    ctx = Context(sizes=DRY if args.dry_run else FULL, device=device, dry=args.dry_run, work=work, out=args.out,
                  workers=1 if args.dry_run else min(8, os.cpu_count() or 1))
    name = device
    if ctx.cuda:
        import torch

        name = torch.cuda.get_device_name(torch.device(device))
    command = "python -m training.gpu_check " + " ".join(sys.argv[1:] if argv is None else argv)
    report = Report(args.out, {"command": command, "mode": "dry-run" if args.dry_run else "full", "device": name,
                               "budget_s": sum(b for n, _, _, b, _ in STEPS if not args.only or n in args.only),
                               "sizes": ctx.sizes.__dict__, "work": str(work), "definitions": DEFINITIONS})
    print(f"GPU check ({report.data['mode']}) on {name}; report in {args.out}", flush=True)
    t0 = time.perf_counter()
    if ctx.cuda or ctx.dry or not args.only or 1 in args.only:  # else every step is skipped: nothing to import
        report.data["preload_s"] = round(preload(), 1)
        print(f"libraries imported in {report.data['preload_s']} s", flush=True)
    try:
        failed = run_steps(report, ctx, args.only)
    finally:
        report.data["imported"] = imported_distributions()
        report.finish(time.perf_counter() - t0)
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    print("", *overview(report.data), "", f"(every figure: {args.out / MD_FILE})", sep="\n", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
