"""The five steps of ``python -m training.gpu_check``, in order. Each takes its :class:`~.report.Step` (figures,
checks, skipped parts) and the run's :class:`Context`; an exception ends the step (the runner records it) and the next
one starts."""

from __future__ import annotations

import contextlib
import csv
import importlib
import os
import platform
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import numpy as np

from .loso_child import NONDETERMINISTIC, deterministic
from .report import Step

ROOT = Path(__file__).resolve().parents[2]
SAME_PROB_TOL = 1e-3  # |Δ fused probability| allowed between the uninterrupted and the killed-and-resumed run
FACE_MATRIX_TOL = 0.05  # tests/test_face.py::test_cuda_matches_cpu: max |Δ| of the crop matrices, CUDA vs CPU
ORT_GPU_WHEEL = ("the onnxruntime-gpu 1.31.1 wheel for Python 3.12 (CUDA 13) is 244 MiB, over the device's 64 MiB "
                 "carry limit: see tools/device_wheels.py")
TARGETS = {"speedup": 5.0, "mfu": 0.20, "smic_loso_min": 10.0, "ort_clips_per_s": 200.0, "ort_vs_eager": 3.0}


class NoCuda(Exception):
    """The step needs CUDA (run with --dry-run for the CPU version)."""


@dataclass(frozen=True)
class Sizes:
    model: str
    frames: int  # network input: frames × size²
    size: int
    crop: int  # cached face crops
    batch: int
    bench_steps: int
    bench_clips: int
    subjects: tuple[int, ...]  # LOSO subjects (one fold each)
    clips_per_class: int
    clip_frames: tuple[int, int]
    frame_size: tuple[int, int]  # the recordings the cache is cropped from
    epochs: int
    throughput_batch: int
    repeat: int
    face_frames: int
    matmul: int  # side of the bf16 matrix product timed in step 1 (0: none)


FULL = Sizes(model="resnext3d_101", frames=34, size=112, crop=128, batch=10, bench_steps=10, bench_clips=64,
             subjects=(1, 2), clips_per_class=4, clip_frames=(30, 50), frame_size=(480, 640), epochs=2,
             throughput_batch=32, repeat=3, face_frames=34, matmul=8192)
DRY = Sizes(model="resnet3d_tiny", frames=8, size=48, crop=56, batch=4, bench_steps=2, bench_clips=8,
            subjects=(1, 2), clips_per_class=2, clip_frames=(9, 12), frame_size=(120, 160), epochs=2,
            throughput_batch=4, repeat=1, face_frames=6, matmul=1024)


@dataclass
class Context:
    sizes: Sizes
    device: str  # "cuda" / "cuda:N" / "cpu"
    dry: bool
    work: Path  # scratch: caches, runs, the package
    out: Path  # the report folder (logs go there too)
    workers: int
    figures: dict = field(default_factory=dict)  # what later steps use: the matmul rate, the model, the caches

    @property
    def cuda(self) -> bool:
        return self.device.startswith("cuda")

    def require_device(self) -> None:
        if not self.cuda and not self.dry:
            raise NoCuda("no CUDA (run with --dry-run for the small CPU version of this step)")


def _version(module: str) -> str:
    try:
        m = importlib.import_module(module)
    except Exception as e:  # noqa: BLE001 — missing or broken: either way the step reports it
        return f"missing ({type(e).__name__})"
    try:
        return str(getattr(m, "__version__", None) or metadata.version(module.replace("_", "-")))
    except metadata.PackageNotFoundError:
        return "installed (no version)"


def _nvidia_smi() -> str:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total,clocks.max.sm",
                              "--format=csv,noheader"], capture_output=True, text=True, timeout=20)
        return out.stdout.strip() or out.stderr.strip()
    except (OSError, subprocess.SubprocessError) as e:
        return f"n/a ({type(e).__name__})"


def onnxruntime_facts() -> dict:
    """Which ONNX Runtime imports (a --target install of onnxruntime-gpu must shadow the CPU one) and its providers.
    torch is imported first: onnxruntime-gpu's CUDA provider then reuses the CUDA and cuDNN libraries torch loaded from
    its nvidia-* wheels when their major versions match (ONNX Runtime's maintainers, microsoft/onnxruntime#23674; the
    1.31 wheel is built for CUDA 13.0 and cuDNN 9, as torch 2.11+cu130 is). ``preload_dlls()`` is not called: it is
    for processes without torch, and could load a second copy of those libraries."""
    import torch  # noqa: F401 — loads CUDA and cuDNN first: onnxruntime-gpu then uses the same libraries

    # isort: split
    import onnxruntime as ort

    facts = {"version": ort.__version__, "file": str(Path(ort.__file__).parent)}
    try:
        from onnxruntime.capi import build_and_package_info as info

        facts.update(package=getattr(info, "package_name", "?"), cuda_version=getattr(info, "cuda_version", None))
    except ImportError:
        facts["package"] = "onnxruntime (no build info)"
    facts["providers"] = ort.get_available_providers()
    return facts


# ---------------------------------------------------------------------------------------------------- 1. environment


def environment(step: Step, ctx: Context) -> None:
    import torch

    step.figure("python", f"{platform.python_version()} ({sys.executable})")
    step.figure("cpu", f"{os.cpu_count()} cores, {platform.machine()}")
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") if hasattr(os, "sysconf") else 0
    shm = shutil.disk_usage("/dev/shm").total if os.path.isdir("/dev/shm") else 0
    step.figure("memory", f"{ram / 2**30:.1f} GiB RAM, /dev/shm {shm / 2**30:.1f} GiB (DataLoader workers pass "
                          f"batches through it: step 2's baseline)")
    step.figure("torch", f"{torch.__version__}, CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}")
    step.figure("cuda_available", torch.cuda.is_available())
    step.figure("device", ctx.device)
    if ctx.cuda:
        p = torch.cuda.get_device_properties(torch.device(ctx.device))
        step.figure("gpu", f"{p.name}, capability {p.major}.{p.minor}, {p.multi_processor_count} SMs, "
                           f"{p.total_memory / 2**30:.1f} GiB")
        step.figure("nvidia_smi", _nvidia_smi())
        step.figure("bf16_supported", torch.cuda.is_bf16_supported())
        n = ctx.sizes.matmul
        a, b = (torch.randn(n, n, device=ctx.device, dtype=torch.bfloat16) for _ in range(2))
        for _ in range(3):
            a @ b
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(10):
            a @ b
        end.record()
        torch.cuda.synchronize()
        tflops = 2 * n**3 * 10 / (start.elapsed_time(end) / 1000) / 1e12
        ctx.figures["matmul_tflops"] = tflops
        step.figure(f"bf16_matmul_{n}", tflops, "TFLOP/s (random normal data, mean of 10 after 3 warm-ups)")
        del a, b
    else:
        step.skip("GPU, driver, bf16 support, bf16 matrix-product rate", "no CUDA")
    try:
        ort = onnxruntime_facts()
        step.figure("onnxruntime", f"{ort['version']} ({ort.get('package')}, CUDA {ort.get('cuda_version')}) "
                                   f"from {ort['file']}")
        step.figure("onnxruntime_providers", ort["providers"])
        step.figure("onnxruntime_cuda_provider", "CUDAExecutionProvider" in ort["providers"])
    except ImportError as e:
        step.figure("onnxruntime", f"missing ({e})")
    for module in ("onnx", "onnxconverter_common", "cv2", "skimage", "tensorboard", "yaml"):
        step.figure(module, _version(module))
    step.figure("CUBLAS_WORKSPACE_CONFIG", os.environ.get("CUBLAS_WORKSPACE_CONFIG", "unset"))


# ---------------------------------------------------------------------------------------------------- 2. training step


def training_step(step: Step, ctx: Context) -> None:
    ctx.require_device()
    from tools.bench.training import build_parser, measure

    s = ctx.sizes
    argv = ["--model", s.model, "--frames", s.frames, "--size", s.size, "--cache-size", s.crop, "--batch", s.batch,
            "--steps", s.bench_steps, "--clips", s.bench_clips, "--workers", ctx.workers, "--device", ctx.device]
    r = measure(build_parser().parse_args([str(a) for a in argv]), log=step.note)
    step.figure("setup", f"{r['model']} SBML {r['views']}, batch {r['batch']} x {r['frames']}x{r['size']}^2 from "
                         f"{s.crop}^2 crops, on {r['device']}; {r['steps']} timed steps after 3 warm-ups")
    for label in ("ours", "baseline"):
        f = r[label]
        step.figure(f"{label}_clips_per_s", f["clips_per_s"], f"clips/s ({f['s_per_step'] * 1000:.1f} ms/step; "
                                                                f"{f['how']})")
        step.figure(f"{label}_tflops", f["tflops"], "TFLOP/s (model FLOPs: 3 x forward, FlopCounterMode)")
    step.figure("speedup", r["speedup"], "x (ours over the reference-style step)")
    step.figure("smic_loso_min", r["smic_loso_min"], f"min ({r['smic_formula']})")
    step.figure("peak_tflops", r["peak_tflops"], f"TFLOP/s: {r['peak_source']}")
    mfu = r["ours"]["mfu"]
    if mfu is not None:
        step.figure("ours_mfu", mfu, "(model FLOP/s over the bf16 dense peak)")
        step.figure("baseline_mfu", r["baseline"]["mfu"])
        if ctx.figures.get("matmul_tflops"):
            step.figure("ours_vs_measured_matmul", r["ours"]["tflops"] / ctx.figures["matmul_tflops"],
                        "(of step 1's measured bf16 matrix-product rate)")
    elif ctx.cuda:
        step.skip("MFU", f"{r['peak_source']} ({r['device']})")
    else:
        step.skip("MFU", "no CUDA: no bf16 peak for a CPU")
    if ctx.dry:
        step.skip("targets (>= 5x, >= 20 % MFU, SMIC LOSO <= 10 min)", "dry run: the tiny model's figures")
        return
    step.check("speed-up over the reference-style step", r["speedup"] >= TARGETS["speedup"], r["speedup"],
               f">= {TARGETS['speedup']:g}x", kind="target")
    if mfu is not None:
        step.check("MFU", mfu >= TARGETS["mfu"], mfu, f">= {TARGETS['mfu']:.0%}", kind="target")
    step.check("full SMIC-HS LOSO (min)", r["smic_loso_min"] <= TARGETS["smic_loso_min"], r["smic_loso_min"],
               f"<= {TARGETS['smic_loso_min']:g} min", kind="target")


# ---------------------------------------------------------------------------------------------------- 3. LOSO resume


def _predictions(run: Path) -> list[dict]:
    with open(run / "predictions.csv", newline="") as f:
        return list(csv.DictReader(f))


def _scores(row: dict) -> np.ndarray:
    return np.array([float(v) for k, v in sorted(row.items()) if k.startswith("score_")])


def loso_config(ctx: Context, cache: Path) -> Path:
    """The experiment of step 3 as a YAML config file (the paper's recipe at these sizes, from scratch)."""
    import yaml

    s = ctx.sizes
    cfg = {"name": "gpu-check", "data": {"caches": [str(cache)], "protocol": "smic"}, "model": {"name": s.model},
           "scheme": {"type": "sbml", "train_views": "OLR"},
           "train": {"epochs": s.epochs, "milestones": [s.epochs], "batch_size": s.batch, "n_frames": s.frames,
                     "size": s.size, "device": ctx.device, "checkpoint_every": 1}}
    path = ctx.work / "loso.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def _logger(path: Path):
    f = open(path, "a", buffering=1, encoding="utf-8")  # noqa: SIM115 — closed by the caller

    def log(*parts):
        f.write(" ".join(str(p) for p in parts) + "\n")

    return log, f


def _kill_mid_fold(proc: subprocess.Popen, run: Path, deadline: float) -> Path | None:
    """Wait until a fold of ``run`` has written its checkpoint and has not finished, then SIGKILL the process.
    Returns that fold's folder (None: the process ended or the deadline passed first)."""
    while time.time() < deadline and proc.poll() is None:
        for state in run.glob("folds/*/state.pt"):
            if not (state.parent / "result.json").exists():
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
                return state.parent
        time.sleep(0.005)
    return None


def loso_resume(step: Step, ctx: Context) -> None:
    ctx.require_device()
    from ..config import load_config
    from ..loso import run
    from .synthetic import synthetic_smic_cache

    s = ctx.sizes
    t = time.perf_counter()
    cache = synthetic_smic_cache(ctx.work / "smic-synth", list(s.subjects), s.clips_per_class, s.clip_frames, s.crop,
                                 s.frame_size)
    n_clips = len(s.subjects) * 3 * s.clips_per_class
    step.figure("cache", f"{n_clips} clips ({len(s.subjects)} subjects x 3 classes x {s.clips_per_class}), "
                         f"{s.clip_frames[0]}-{s.clip_frames[1]} frames of {s.frame_size[1]}x{s.frame_size[0]} "
                         f"cropped to {s.crop}^2 at the true landmarks (no MTCNN), in {time.perf_counter() - t:.1f} s")
    ctx.figures["cache"] = cache
    config = loso_config(ctx, cache)
    step.figure("experiment", f"{s.model} SBML OLR, {len(s.subjects)} folds x {s.epochs} epochs, batch {s.batch}, "
                              f"{s.frames}x{s.size}^2, checkpoint every epoch, deterministic algorithms on")
    found: set[str] = set()
    log, logf = _logger(ctx.out / "loso.log")
    try:
        # the run to be killed goes in a subprocess, beside the uninterrupted one in this process
        reference, killed = ctx.work / "loso-uninterrupted", ctx.work / "loso-killed"
        import torch

        env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": str(torch.get_num_threads())}
        cmd = [sys.executable, "-m", "training.gpu_check.loso_child", "--config", str(config), "--out", str(killed),
               "--no-progress"]
        t = time.perf_counter()
        with open(ctx.out / "loso-child.log", "w") as child_log:
            proc = subprocess.Popen(cmd, cwd=ROOT, stdout=child_log, stderr=subprocess.STDOUT, env=env)
            killer: dict = {}

            def watch():
                killer["fold"] = _kill_mid_fold(proc, killed, time.time() + 600)
                killer["seconds"] = time.perf_counter() - t

            watcher = threading.Thread(target=watch, daemon=True)
            watcher.start()
            try:
                log("== uninterrupted run (in process; the run to be killed is a subprocess: loso-child.log)")
                with deterministic(found):
                    run(load_config(config, [f"out={reference}"]), log=log, progress=False)
                step.figure("uninterrupted_s", time.perf_counter() - t, "s")
                ctx.figures["checkpoint"] = reference / "folds" / f"subject_{s.subjects[0]}" / "model.pt"
                while watcher.is_alive():
                    watcher.join(0.05)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
        fold = killer.get("fold")
        if "seconds" in killer:
            step.figure("killed_after_s", killer["seconds"], "s")
        mid_fold = fold is not None and (fold / "state.pt").exists() and not (fold / "result.json").exists()
        step.check("killed (SIGKILL) mid-fold, after a checkpoint", mid_fold,
                   fold.name if fold else f"not killed (exit status {proc.returncode})",
                   "a fold's state.pt written, its result.json not")
        if not mid_fold:
            raise RuntimeError(f"the run to be killed ended first (exit status {proc.returncode}); see loso-child.log")
        for line in (ctx.out / "loso-child.log").read_text().splitlines():
            m = NONDETERMINISTIC.search(line)
            if m:
                found.add(m.group(1))
        lines: list[str] = []

        def tee(*parts):
            lines.append(" ".join(str(p) for p in parts))
            log(*parts)

        log("== resumed (in process)")
        t = time.perf_counter()
        with deterministic(found):
            run(load_config(config, [f"out={killed}"]), log=tee, progress=False)
        step.figure("resumed_s", time.perf_counter() - t, "s")
        resumed = [x for x in lines if "resuming at epoch" in x]
        step.check("resumed from the checkpoint", bool(resumed), resumed[0] if resumed else "no resume line",
                   "'resuming at epoch N' in the log")
    finally:
        logf.close()
    a, b = _predictions(reference), _predictions(killed)
    same_clips = [r["clip"] for r in a] == [r["clip"] for r in b]
    same_pred = same_clips and all(x["pred"] == y["pred"] for x, y in zip(a, b))
    diff = max(float(np.abs(_scores(x) - _scores(y)).max()) for x, y in zip(a, b)) if same_clips else float("inf")
    step.figure("clips_compared", len(a))
    step.figure("bit_identical", a == b, "(predictions.csv rows equal, scores to 6 decimals)")
    step.figure("max_abs_prob_diff", diff)
    step.figure("nondeterministic_ops", sorted(found), "(ops that warned under deterministic algorithms)")
    step.check("same predictions as the uninterrupted run", same_pred and diff <= SAME_PROB_TOL,
               {"same_class": same_pred, "max_abs_prob_diff": diff},
               f"every clip's predicted class identical and max |dp| <= {SAME_PROB_TOL:g}")


# ---------------------------------------------------------------------------------------------------- 4. export


@contextlib.contextmanager
def exact_fp32():
    """TF32 off for PyTorch's convolutions and matrix products: the fp32 reference the ONNX graph is held to."""
    import torch

    before = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = before


def export_step(step: Step, ctx: Context) -> None:
    ctx.require_device()
    checkpoint = ctx.figures.get("checkpoint")
    if checkpoint is None or not Path(checkpoint).exists():
        raise RuntimeError("no model to export: step 3 did not train one")
    import torch

    from inference.package import ModelPackage
    from inference.runtime import Predictor
    from tools.bench.inference import timed

    from ..data import ClipBank, network_input
    from ..record import TrainedModel
    from ..schemes import load_view_model
    from .synthetic import synthetic_smic_cache

    s = ctx.sizes
    check = synthetic_smic_cache(ctx.work / "smic-check", [99], 1, s.clip_frames, s.crop, s.frame_size, seed=1)
    package = ctx.work / "package"
    cmd = [sys.executable, "-m", "export", "--checkpoint", str(checkpoint), "--out", str(package), "--fp16",
           "--clips", str(check)]
    t = time.perf_counter()
    with open(ctx.out / "export.log", "w") as f:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})
        try:
            rc = proc.wait()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    step.figure("export_s", time.perf_counter() - t, "s (python -m export --fp16: ONNX, checker, CPU parity, fp16)")
    if rc != 0:
        tail = (ctx.out / "export.log").read_text().splitlines()[-5:]
        raise RuntimeError(f"python -m export failed (exit status {rc}): {' | '.join(tail)}")
    pkg = ModelPackage.load(package)
    p = pkg.parity
    step.figure("cpu_parity", {"clips": p.clips, "max_abs_logit_diff": p.max_abs_logit_diff, "rtol": p.rtol,
                               "atol": p.atol, "same_argmax": p.same_argmax})
    step.figure("fp16_agreement_cpu", pkg.variants["fp16"].agreement)

    # PyTorch on the device, fp32 with TF32 off, through training's own evaluation path (training.data.network_input
    # with the checkpoint record's preprocessing: the resize and normalisation the package's graph has inside), on the
    # held-out check clips.
    model, meta = load_view_model(checkpoint, ctx.device)
    bank = ClipBank.from_caches([str(check)], "smic", s.frames, ctx.device)
    views = pkg.test_views
    with torch.no_grad(), exact_fp32():
        pre = TrainedModel.read(meta, checkpoint).preprocessing()
        x = network_input(bank.clips, pre, bank.zeros)
        logits = model(x, views).float().cpu().numpy()  # (V, N, K)
    fused = torch.from_numpy(logits.sum(0)).softmax(-1).numpy()
    clips = bank.clips.cpu().numpy()

    ort = onnxruntime_facts()
    ort_cuda = ctx.cuda and "CUDAExecutionProvider" in ort["providers"]
    where = "cuda" if ort_cuda else "cpu"
    if ctx.cuda and not ort_cuda:
        step.skip("ONNX Runtime on CUDA (parity there, clips/s, the no-fallback check)",
                  f"not measurable: onnxruntime {ort['version']} ({ort.get('package')}) has providers "
                  f"{', '.join(ort['providers'])}; {ORT_GPU_WHEEL}. Parity below is ONNX Runtime on the CPU against "
                  f"PyTorch on CUDA")
    elif not ctx.cuda:
        step.skip("ONNX Runtime CUDA provider", "no CUDA")
    sessions = {}
    for variant in ("fp32", "fp16"):
        pred = sessions[variant] = Predictor(package, device=where, variant=variant, engine="onnxruntime")
        if ort_cuda:
            step.check(f"{variant} session runs on CUDAExecutionProvider", pred.provider == "CUDAExecutionProvider",
                       pred.session.get_providers(), "CUDAExecutionProvider first (no silent CPU fallback)")
        probs, view_logits = pred.run(clips, views)
        if variant == "fp32":
            close = np.isclose(view_logits, logits, rtol=p.rtol, atol=p.atol)
            same = bool((probs.argmax(1) == fused.argmax(1)).all())
            step.check(f"fp32 ONNX ({pred.provider}) = PyTorch on {ctx.device} (fp32, TF32 off)",
                       bool(close.all()) and same,
                       {"clips": len(clips), "max_abs_logit_diff": float(np.abs(view_logits - logits).max()),
                        "same_argmax": same},
                       f"view logits within rtol {p.rtol:g} / atol {p.atol:.3g} (export's parity), same argmax")
        else:
            agree = float((probs.argmax(1) == fused.argmax(1)).mean())
            step.figure("fp16_vs_pytorch", {"top1_agreement": agree,
                                            "max_abs_prob_diff": float(np.abs(probs - fused).max()),
                                            "clips": len(clips), "provider": pred.provider})

    # clips/s on one batch: PyTorch eager (uint8 from the host, preprocessing and model on the device) and, where it
    # runs on the same device, ONNX Runtime
    batch = np.resize(clips, (s.throughput_batch,) + clips.shape[1:])

    batch_zeros = pre.zeros(batch)  # flow: each clip's zero motion (the kind's rule); None for RGB

    def eager(amp: bool):
        def call():
            autocast = torch.autocast(device_type=torch.device(ctx.device).type, dtype=torch.bfloat16)
            with torch.no_grad(), (autocast if amp else contextlib.nullcontext()):
                zeros = None if batch_zeros is None else torch.from_numpy(batch_zeros).to(ctx.device)
                xb = network_input(torch.from_numpy(batch).to(ctx.device), pre, zeros)
                model.predict(xb, views)[0].cpu()
        return call

    rates = {}
    for name, fn in (("pytorch_eager_fp32", eager(False)), ("pytorch_eager_bf16", eager(True))):
        if name.endswith("bf16") and not ctx.cuda:
            step.skip("PyTorch eager bf16", "no CUDA")
            continue
        rates[name] = len(batch) / timed(fn, s.repeat)
        how = "TF32 convolutions, PyTorch's default" if name.endswith("fp32") and ctx.cuda else "autocast"
        step.figure(f"{name}_clips_per_s", rates[name], f"clips/s (batch {len(batch)}, {ctx.device}, {how}, median "
                                                         f"of {s.repeat})")
    if ort_cuda or not ctx.cuda:
        for variant, pred in sessions.items():
            rate = len(batch) / timed(lambda pred=pred: pred.run(batch, views), s.repeat)
            rates[f"ort_{variant}"] = rate
            step.figure(f"onnxruntime_{variant}_clips_per_s", rate, f"clips/s ({pred.provider})")
        best = max(rates["ort_fp32"], rates["ort_fp16"])
        step.figure("onnxruntime_vs_eager_fp32", best / rates["pytorch_eager_fp32"], "x")
        if ort_cuda and not ctx.dry:
            step.check("ONNX Runtime CUDA clips/s", best >= TARGETS["ort_clips_per_s"], best,
                       f">= {TARGETS['ort_clips_per_s']:g}", kind="target")
            step.check("ONNX Runtime CUDA over PyTorch eager", best / rates["pytorch_eager_fp32"] >=
                       TARGETS["ort_vs_eager"], best / rates["pytorch_eager_fp32"], f">= {TARGETS['ort_vs_eager']:g}x",
                       kind="target")


# ---------------------------------------------------------------------------------------------------- 5. face


def face_step(step: Step, ctx: Context) -> None:
    ctx.require_device()
    from inference.face import CropSettings, FaceAligner
    from tools.bench.inference import timed

    from ..synth.still import animate, astronaut

    s = ctx.sizes
    frames, _ = animate(astronaut(), s.face_frames, angle=9, shift=(10, 10))  # tests/test_face.py's CUDA case
    crop = CropSettings()
    step.figure("clip", f"{len(frames)} frames of {frames.shape[2]}x{frames.shape[1]}, the astronaut turned 9 "
                        f"degrees, shifted (10, 10) px; crop {crop.size}^2")
    from inference.device import onnxruntime_cuda

    ort_cuda = ctx.cuda and onnxruntime_cuda()  # the face stage runs on ONNX Runtime (inference/mtcnn.py)
    results = {}
    for device in ("cpu", ctx.device) if ort_cuda else ("cpu",):
        aligner = FaceAligner(device=device)
        results[device] = aligner.align(frames, crop)
        sec = timed(lambda aligner=aligner: aligner.align(frames, crop), s.repeat)
        step.figure(f"{device}_clips_per_s", 1 / sec, f"clips/s ({1000 * sec:.0f} ms a clip, "
                                                      f"{len(frames) / sec:.0f} frames/s)")
    if not ort_cuda:
        step.skip("MTCNN on CUDA, compared with the CPU",
                  "no CUDA" if not ctx.cuda else "no CUDA provider in ONNX Runtime (onnxruntime-gpu)")
        return
    a, b = results["cpu"], results[ctx.device]
    diff = float(np.abs(a.matrices - b.matrices).max())
    step.figure("max_abs_pixel_diff", int(np.abs(a.frames.astype(int) - b.frames.astype(int)).max()),
                "grey levels (aligned frames, CUDA vs CPU)")
    step.check("MTCNN alignment on CUDA = CPU", diff < FACE_MATRIX_TOL, diff,
               f"max |d crop matrix| < {FACE_MATRIX_TOL} (tests/test_face.py)")


STEPS = (  # n, name, title, budget on one H100/H200 (s, after the imports), function
    (1, "environment", "Environment", 30, environment),
    (2, "training_step", "Training step: ours vs the reference-style step", 90, training_step),
    (3, "loso_resume", "LOSO on a synthetic SMIC-HS, killed mid-fold and resumed", 160, loso_resume),
    (4, "export", "Export, parity on the GPU, ONNX Runtime vs PyTorch eager", 140, export_step),
    (5, "face", "MTCNN alignment on CUDA vs CPU", 40, face_step),
)
