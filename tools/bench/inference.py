"""Benchmarks that print ratios taken in one run (never timed tests).

``python -m tools.bench.inference face [--clip PATH] [--repeat N]``: the face stage (find + align a whole clip)
of our aligner against the naive way, MTCNN on every frame with a per-frame crop, on the same decoded
clip, with the crop jitter each leaves (frame-to-frame shift of the aligned face).

``python -m tools.bench.inference runtime --model PKG [--clip PATH] [--batch B]``: per-stage latency of one clip end to
end (decode, face, resample, model, fuse) with the engine and variant given (default: the runtime's choice), peak
resident memory, and the model's time in ONNX Runtime and OpenVINO (when installed), fp32 and int8 (when the package
has it; on a GPU: ONNX Runtime's CUDA provider, fp32 and fp16), all on the same input, one clip or ``--batch B``
copies of it per call (clips/s: the GPU throughput figure). PyTorch eager against the same engines, from the training
checkpoint, is ``python -m tools.bench.export`` (it needs the training requirements, which a serving box does not
have). This one needs only the serving requirements: it imports ``inference`` and nothing else from the repository.

``python -m tools.bench.inference motion [--clip PATH] [--frames N] [--size S] [--tim N] [--repeat N]``: the motion
inputs of one aligned clip (first N frames, S px): the apex estimate, TV-L1 onset → apex and TIM to ``--tim`` frames,
against TV-L1 flow for every consecutive frame pair (and Farneback for every pair), with the ratio, in one run.

``python -m tools.bench.inference recordings [--seconds 30] [--frames 34] [--repeat N]``: a generated 1080p 30 fps clip
with two shots (built once into ``--work``), three ways, each in a fresh process with its peak resident memory: the
decode floor (PyAV decoding every frame, nothing else), today's path (``inference/`` as it was at ``--today``, taken
with ``git archive``: decode everything at full size, then align; killed past ``--today-limit-gb``) and the new path end
to end (decode at the working size, track, align), with the ratios to the floor; then its parts: ``read_clip`` alone,
and the first write of as many bytes as the decoded clip holds; and "spot + recognise" (``Predictor.spot_and_classify``
with ``--model``, the bundled demo package by default: decode, track, align every frame of the segment, spot, classify
each micro-expression) with its ratio to the new path of the same run (target ≤ 1.3×).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from inference.device import DEVICE_CHOICES
from inference.errors import InputError, cli
from inference.face import CropSettings, FaceAligner, frame_shifts, output_crop_matrix, warp
from inference.runtime import ENGINES, VARIANT_CHOICES, VARIANT_FILES, Predictor, openvino_available
from inference.track import track_and_align
from inference.video import VideoLimits, read_clip, write_video

ROOT = Path(__file__).resolve().parents[2]  # the repository
DEFAULT_CLIP = ROOT / "examples" / "astronaut.mp4"
DEMO_PACKAGE = ROOT / "demo" / "default_model"  # a folder (nothing is imported)


def naive_align(aligner: FaceAligner, frames: np.ndarray, crop: CropSettings, batch: int = 16) -> np.ndarray:
    """MTCNN on every frame, each frame cropped with its own landmarks (largest face)."""
    out = np.empty((len(frames), crop.size, crop.size, 3), np.uint8)
    last = None
    for s in range(0, len(frames), batch):
        boxes, _, points, _ = aligner.detect(frames[s:s + batch])
        for j, (b, lm) in enumerate(zip(boxes, points)):
            if len(b):
                areas = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
                last = lm[int(np.argmax(areas))]
            if last is None:
                raise InputError("naive baseline: no face in the first frames")
            out[s + j] = warp(frames[s + j], output_crop_matrix(last, crop), crop.size)
    return out


def bench_face(clip_path: Path, repeat: int, size: int, max_frames: int | None = None) -> None:
    import onnxruntime

    clip = read_clip(clip_path)
    frames = clip.frames[:max_frames] if max_frames else clip.frames
    crop = CropSettings(size=size)
    ours = FaceAligner()
    ours.align(frames[:4], crop)  # load weights, warm up
    t_ours, t_naive = [], []
    for _ in range(repeat):
        t = time.perf_counter()
        a, _ = track_and_align(frames, ours, crop, clip.fps, str(clip_path))  # the clip path's face stage
        t_ours.append(time.perf_counter() - t)
        t = time.perf_counter()
        n = naive_align(ours, frames, crop)
        t_naive.append(time.perf_counter() - t)
    d_ours, d_naive = frame_shifts(a.frames), frame_shifts(n)
    mo, mn = statistics.median(t_ours), statistics.median(t_naive)
    T, H, W = frames.shape[:3]
    print(f"face stage, {clip_path.name}: {T} frames {W}x{H} at {clip.fps:g} fps → {size}x{size}; "
          f"median of {repeat}; {os.cpu_count()} cores, {platform.processor() or platform.machine()}, "
          f"MTCNN on ONNX Runtime {onnxruntime.__version__} (one thread)")
    print(f"{'':44s}{'time s':>8s}{'ms/frame':>10s}{'drift mean px':>15s}{'drift max px':>14s}")
    looked = len(a.meta["track"]["looked_at"])
    print(f"{f'ours: track ({looked} looked at), align, ' + a.meta['mode']:44s}{mo:8.3f}{1000 * mo / T:10.2f}"
          f"{d_ours.mean():15.3f}{d_ours.max():14.3f}")
    print(f"{'naive: MTCNN on every frame':44s}{mn:8.3f}{1000 * mn / T:10.2f}{d_naive.mean():15.3f}"
          f"{d_naive.max():14.3f}")
    print(f"ratio: ours is {mn / mo:.1f}x faster, with {d_naive.mean() / max(d_ours.mean(), 1e-9):.1f}x less mean "
          f"drift; "
          f"stages {a.meta['timings_s']}; target face stage <= 0.30 s: {'met' if mo <= 0.30 else 'NOT met'}")


def describe_package(predictor: Predictor) -> str:
    """``package NAME: BACKBONE SCHEME VIEWS, TxS^2``: a benchmark's header."""
    c = predictor.package
    return f"package {c.name}: {c.backbone['name']} {c.scheme.upper()} {predictor.views}, {c.n_frames}x{c.size}^2"


def timed(fn: Callable[[], object], repeat: int) -> float:
    """Median seconds of ``repeat`` calls of ``fn``, after one call to warm it up."""
    fn()
    ts = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def compare_engines(predictor: Predictor, model: str, device: str, clip: np.ndarray, batch: int, repeat: int,
                    extra: Callable[[np.ndarray], dict[str, Callable[[], object]]] | None = None) -> dict[str, float]:
    """Time the package's graph on one batch — the prepared ``clip`` (T, S, S, 3), ``batch`` times — in ONNX Runtime
    and OpenVINO (when installed), fp32 and the reduced-precision variant of where it runs (int8 on the CPU, fp16 on
    a GPU) when the package has it, and in whatever ``extra(batch_clips)`` adds (name → a call to time, e.g. PyTorch
    eager). Prints each as seconds, clips/s and a ratio of ONNX Runtime fp32, all from this one run."""
    batch_clips = np.repeat(clip[None], batch, axis=0)  # the same clip B times: a batch as the batch command could send
    on_gpu = predictor.provider == "CUDAExecutionProvider"
    low = "fp16" if on_gpu else "int8"  # the reduced-precision variant for where the model runs
    has_low = (predictor.folder / VARIANT_FILES[low]).exists()
    engines = [("ONNX Runtime", "onnxruntime")] + ([("OpenVINO", "openvino")] if openvino_available() else [])
    timings = {}
    for title, engine in engines if not on_gpu else [("ONNX Runtime", "auto")]:
        for variant in ("fp32", low) if has_low else ("fp32",):
            p = Predictor(model, device=device, variant=variant, engine=engine)
            timings[f"{title} {variant}"] = timed(lambda p=p: p.run(batch_clips), repeat)
    for name, fn in (extra(batch_clips) if extra else {}).items():
        timings[name] = timed(fn, repeat)
    base = timings["ONNX Runtime fp32"]
    stem = predictor.package.variants["int8"].stem if "int8" in predictor.package.variants else None
    print(f"  model time for a batch of {batch} clip{'s' if batch > 1 else ''}, {predictor.views}"
          + (f" (int8 variant: first convolution in {stem})" if low == "int8" and has_low and stem else "") + ":")
    for k, v in timings.items():
        print(f"  model {k:22s} {v:.3f} s  {batch / v:8.1f} clips/s  ({base / v:.2f}x of ONNX Runtime fp32)")
    return timings


def bench_runtime(model: str, clip_path: Path, repeat: int, device: str, engine: str = "auto", variant: str = "auto",
                  batch: int = 1) -> None:
    import resource

    predictor = Predictor(model, device=device, engine=engine, variant=variant)
    predictor.predict(clip_path)  # warm up: weights, first-call initialisation
    stages: dict[str, list[float]] = {}
    for _ in range(repeat):
        pred = predictor.predict(clip_path)
        for k, v in pred.timings.items():
            stages.setdefault(k, []).append(v)
    med = {k: statistics.median(v) for k, v in stages.items()}
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"runtime, {clip_path.name}, {describe_package(predictor)}; {predictor.variant} on {predictor.provider}; "
          f"{os.cpu_count()} cores; median of {repeat}")
    print("  " + "  ".join(f"{k} {v:.3f} s" for k, v in med.items()) + f"  | peak RSS {rss:.0f} MiB")
    compare_engines(predictor, model, device, pred.aligned, batch, repeat)


def bench_motion(clip_path: Path, n_frames: int, size: int, n_tim: int, repeat: int) -> None:
    import cv2

    from inference import motion

    clip = read_clip(clip_path)
    if n_frames < 2 or len(clip.frames) < n_frames:
        raise InputError(f"--frames must be between 2 and the clip's {len(clip.frames)} frames, got {n_frames}")
    frames = FaceAligner().align(clip.frames[:n_frames], CropSettings(size=size), source=str(clip_path)).frames
    scaling = motion.FIXED

    def apex_flow_tim():
        apex = motion.estimate_apex(frames)
        return motion.flow_image(frames[0], frames[apex], None, "tvl1", scaling), motion.tim(frames, n_tim)

    def every_pair(method):
        return lambda: motion.flow_clip(frames, method, scaling)

    parts = {"apex estimate (frame difference)": lambda: motion.estimate_apex(frames),
             "TV-L1 onset -> apex, one pair": lambda: motion.flow_image(frames[0], frames[-1], None, "tvl1", scaling),
             f"TIM {n_frames} -> {n_tim} frames": lambda: motion.tim(frames, n_tim),
             f"TIM to {n_tim}, then TV-L1 of its {n_tim - 1} pairs": lambda: motion.flow_clip(
                 motion.tim(frames, n_tim)),
             f"Farneback, every pair ({n_frames - 1})": every_pair("farneback")}
    t_ours = timed(apex_flow_tim, repeat)
    t_all = timed(every_pair("tvl1"), repeat)
    print(f"motion inputs, {clip_path.name}: {n_frames} frames aligned to {size}x{size}; median of {repeat}; "
          f"{os.cpu_count()} cores, OpenCV {cv2.__version__} ({cv2.getNumThreads()} threads)")
    for name, fn in parts.items():
        print(f"  {name:44s} {timed(fn, repeat):8.3f} s")
    print(f"  {'ours: apex + TV-L1 onset->apex + TIM':44s} {t_ours:8.3f} s")
    print(f"  {f'TV-L1 for every pair ({n_frames - 1})':44s} {t_all:8.3f} s")
    print(f"ratio: onset->apex + TIM is {t_all / t_ours:.1f}x faster than TV-L1 on every pair "
          f"({1000 * t_all / (n_frames - 1):.0f} ms per pair)")


def two_shot_clip(path: Path, seconds: float, size: tuple[int, int] = (1080, 1920), fps: float = 30.0) -> Path:
    """A clip in the shape of a real recording for the ``recordings`` bench, built once: two shots of
    ``seconds / 2`` each from the bundled example (the astronaut, 640x480): first large on the left of a warm room,
    then mirrored, smaller and tinted on the right of a cool one; the example's frames run back and forth, with
    sensor noise (so the file has a camera's bit rate, not a cartoon's)."""
    import cv2

    if path.exists():
        return path
    h, w = size
    src = read_clip(DEFAULT_CLIP).frames
    loop = np.concatenate([src, src[::-1]])
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    shade = (1.1 - 0.4 * np.hypot(xs / w - 0.3, ys / h - 0.2))[..., None]
    shots = []
    for wall, scale, x_centre, flip, tint in (((200, 185, 160), 1.5, 0.35, False, (1.0, 1.0, 1.0)),
                                              ((120, 150, 190), 1.1, 0.7, True, (0.92, 0.75, 0.65))):
        room = np.clip(np.asarray(wall, np.float32) * shade, 0, 255).astype(np.uint8)
        fw, fh = int(src.shape[2] * scale * h / 1080), int(src.shape[1] * scale * h / 1080)
        x0, y0 = int(x_centre * w - fw / 2), (h - fh) // 2
        shots.append((room, fw, fh, x0, y0, flip, np.asarray(tint, np.float32)))
    n = int(round(seconds * fps))
    noise = np.random.default_rng(0).normal(0, 4, (4, 2, h, w, 3)).clip(0, 255).astype(np.uint8)  # sensor noise

    def frames():
        for i in range(n):
            room, fw, fh, x0, y0, flip, tint = shots[0 if i < n // 2 else 1]
            face = cv2.resize(loop[i % len(loop)], (fw, fh), interpolation=cv2.INTER_LINEAR)
            if flip:
                face = np.clip(face[:, ::-1] * tint, 0, 255).astype(np.uint8)
            img = room.copy()
            img[y0:y0 + fh, x0:x0 + fw] = face
            yield cv2.subtract(cv2.add(img, noise[i % 4, 0]), noise[i % 4, 1])

    write_video(path, frames(), fps, crf=20, preset="veryfast")
    return path


_CHILD = r"""
import json, sys, time
mode, path, n_frames, warm, working = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
model = sys.argv[6]
out = {}
if mode == "floor":
    import av
    t = time.perf_counter()
    with av.open(path) as c:
        stream = c.streams.video[0]
        stream.thread_type = "AUTO"
        out["frames"] = sum(1 for _ in c.decode(stream))
    out["seconds"] = time.perf_counter() - t
elif mode == "pieces":  # the floor again, decoded as read_clip does: in pieces at once (one per core), nothing else
    import threading
    import av
    from inference.video import VideoLimits, _pieces
    t = time.perf_counter()
    with av.open(path) as c:
        plan = _pieces(path, c, c.streams.video[0], VideoLimits(), None)
    counts = []
    def piece(j):
        counts.append(sum(1 for _ in plan.frames(path, 0, j)))
    threads = [threading.Thread(target=piece, args=(j,)) for j in range(len(plan.starts))]
    [th.start() for th in threads]
    [th.join() for th in threads]
    out["frames"] = sum(counts)
    out["seconds"] = time.perf_counter() - t
elif mode == "read":  # the new path's decode stage alone
    from inference.video import read_clip
    t = time.perf_counter()
    out["input"] = list(read_clip(path).frames.shape)
    out["seconds"] = time.perf_counter() - t
elif mode == "touch":  # write as many bytes as the decoded clip holds, frame by frame, into the clip's fresh memory
    from inference.video import FrameBuffer, VideoLimits
    t = time.perf_counter()
    held = FrameBuffer(VideoLimits(), "touch", 1920, 1080, n_frames)
    for _ in range(n_frames):
        held.slot().fill(1)
    out["seconds"] = time.perf_counter() - t
elif mode == "spot":  # spot, then recognise: every frame of the face segment aligned, spotted, each micro classified
    from inference.runtime import Predictor
    from inference.video import VideoLimits
    limits = VideoLimits(working_size=working) if working >= 0 else VideoLimits()
    predictor = Predictor(model, device="cpu", limits=limits)
    predictor.predict(warm)  # a serving process: the detector's weights loaded, the model compiled for one clip
    predictor.spot_and_classify(warm, mode="spot")  # and the spotter's kernels warm
    t = time.perf_counter()
    r = predictor.spot_and_classify(path, mode="spot")
    out["seconds"] = time.perf_counter() - t
    out["stages"] = {k: round(v, 3) for k, v in r.prepared.timings.items()}
    out["input"] = [r.prepared.input_frames, *r.prepared.input_size]
    out["used"] = list(r.prepared.quality.frames_used)
    out["intervals"] = [p.interval.kind for p in r.intervals]
else:
    from inference.preprocess import Preparer
    from inference.video import VideoLimits
    limits = VideoLimits(working_size=working) if working >= 0 else VideoLimits()  # -1: the code's own defaults
    prepare = Preparer(n_frames=n_frames, limits=limits)
    prepare(warm)  # MTCNN's weights loaded, kernels warm: what a serving process has
    t = time.perf_counter()
    p = prepare(path)
    out["seconds"] = time.perf_counter() - t
    out["stages"] = {k: round(v, 3) for k, v in p.timings.items()}
    out["input"] = [p.input_frames, *p.input_size]
    q = getattr(p, "quality", None)
    if q is not None:
        out["used"] = list(q.frames_used)
        out["shots"] = len(q.shots)
out["peak"] = next(int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith("VmHWM:"))
print(json.dumps(out))
"""


def run_measured(mode: str, clip: Path, n_frames: int, limit: int, tree: Path, working: int = -1,
                 model: Path = DEMO_PACKAGE) -> dict:
    """One measurement in a fresh process (its own peak resident memory, VmHWM), run from ``tree`` (the code to
    measure); killed when its resident memory passes ``limit`` bytes (then ``{"killed": seconds}``)."""
    import json
    import subprocess

    env = {**os.environ, "PYTHONPATH": str(tree)}
    cmd = [sys.executable, "-c", _CHILD, mode, str(clip), str(n_frames), str(DEFAULT_CLIP), str(working), str(model)]
    proc = subprocess.Popen(cmd, cwd=tree, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    t0, peak = time.perf_counter(), 0
    while proc.poll() is None:
        try:
            with open(f"/proc/{proc.pid}/status") as f:
                rss = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:"))
        except (OSError, StopIteration):
            rss = 0
        peak = max(peak, rss)
        if rss > limit:
            proc.kill()
            proc.wait()
            return {"killed": time.perf_counter() - t0, "peak": peak}
        time.sleep(0.05)
    out, err = proc.communicate()
    if proc.returncode:
        raise RuntimeError(f"{mode} measurement failed:\n{err[-3000:]}")
    return json.loads(out.splitlines()[-1])


def checkout(rev: str, folder: Path) -> Path | None:
    """``inference/`` as it was at ``rev`` (git archive), for the 'today' row; None outside a git checkout."""
    import io
    import subprocess
    import tarfile

    if (folder / "inference").exists():
        return folder
    res = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "inference"], capture_output=True)
    if res.returncode:
        return None
    with tarfile.open(fileobj=io.BytesIO(res.stdout)) as tar:
        tar.extractall(folder, filter="data")
    return folder


def bench_recordings(seconds: float, n_frames: int, work: Path, today: str, today_limit_gb: float,
                     repeat: int, working_sizes: list[int], model: Path = DEMO_PACKAGE) -> None:
    work.mkdir(parents=True, exist_ok=True)
    clip = two_shot_clip(work / f"two_shots_{seconds:g}s_1080p30.mp4", seconds)
    here = ROOT
    old = checkout(today, work / f"inference-{today}")
    n_clip = int(round(seconds * 30))
    rows = {"decode floor: PyAV decodes every frame, nothing else": ("floor", here, 64 * 2 ** 30, -1, n_frames),
            "  the same in pieces at once, as read_clip decodes": ("pieces", here, 64 * 2 ** 30, -1, n_frames),
            f"today ({today}: read_clip + Preparer)": ("path", old, int(today_limit_gb * 2 ** 30), -1, n_frames)}
    for size in working_sizes:
        rows[f"new: decode at working size {size}, track, align (Preparer)"] = ("path", here, 64 * 2 ** 30, size,
                                                                               n_frames)
    rows["  part: read_clip alone (decoded to the working size, held)"] = ("read", here, 64 * 2 ** 30, -1, n_frames)
    rows["  part: first write of the held clip's bytes, no decoding"] = ("touch", here, 64 * 2 ** 30, -1, n_clip)
    spot = "spot + recognise: align every frame, spot, classify"
    rows[spot] = ("spot", here, 64 * 2 ** 30, working_sizes[0], n_frames)
    runs: dict[str, list[dict]] = {name: [] for name, row in rows.items() if row[1] is not None}
    for _ in range(repeat):  # rows interleaved, so that a machine's changing load falls on all of them alike
        for name in runs:
            mode, tree, limit, size, n = rows[name]
            runs[name].append(run_measured(mode, clip, n, limit, tree, size, model))
    results = {name: min(runs[name], key=lambda r: r.get("seconds", float("inf"))) if name in runs else None
               for name in rows}
    floor = results[next(iter(rows))]["seconds"]
    print(f"recordings: {clip.name} ({seconds:g} s, 1920x1080, 30 fps, two shots, {clip.stat().st_size / 1e6:.1f} MB); "
          f"best of {repeat}, each in a fresh process; {os.cpu_count()} cores, "
          f"{platform.processor() or platform.machine()}; crop resampled to {n_frames} frames")
    print(f"  {'':58s}{'time s':>8s}{'x floor':>9s}{'peak RSS MiB':>14s}")
    for name, r in results.items():
        if r is None:
            print(f"  {name:58s}  not measured: no git checkout to take {today} from")
        elif "killed" in r:
            print(f"  {name:58s}  killed after {r['killed']:.1f} s at {r['peak'] / 2 ** 20:.0f} MiB "
                  f"(--today-limit-gb {today_limit_gb:g})")
        else:
            extra = "".join(f"; {k} {v}" for k, v in r.items()
                            if k in ("stages", "input", "used", "shots", "intervals"))
            print(f"  {name:58s}{r['seconds']:8.2f}{r['seconds'] / floor:9.2f}{r['peak'] / 2 ** 20:14.0f}{extra}")
    new = results[list(rows)[3]]
    print(f"target (working size {working_sizes[0]}): new path <= 1.5x the decode floor: "
          f"{'met' if new['seconds'] <= 1.5 * floor else 'NOT met'} ({new['seconds'] / floor:.2f}x; "
          f"{new['seconds'] / results[list(rows)[1]]['seconds']:.2f}x the pieces floor); "
          f"peak RSS <= 2 GiB: {'met' if new['peak'] <= 2 ** 31 else 'NOT met'}")
    ratio = results[spot]["seconds"] / new["seconds"]
    print(f"target: spot + recognise <= 1.3x the new path of this run: {'met' if ratio <= 1.3 else 'NOT met'} "
          f"({ratio:.2f}x; {model.name if model == DEMO_PACKAGE else model})")


def check_batch(batch: int) -> None:
    if batch < 1:
        raise InputError(f"--batch must be at least 1, got {batch}")


@cli
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.bench.inference", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="what", required=True)
    f = sub.add_parser("face", help="face stage: ours vs MTCNN on every frame")
    f.add_argument("--clip", type=Path, default=DEFAULT_CLIP,
                   help="clip to time (default: the bundled 2 s 640x480 100 fps example)")
    f.add_argument("--repeat", type=int, default=3, help="timed runs of each (median reported)")
    f.add_argument("--size", type=int, default=112, help="crop size")
    f.add_argument("--max-frames", type=int, default=None, help="use only the clip's first N frames")
    r = sub.add_parser("runtime", help="one clip end to end, per stage; model time in ORT / OpenVINO fp32 / int8")
    r.add_argument("--model", required=True, help="a model package folder or hf://OWNER/NAME@REV")
    r.add_argument("--clip", type=Path, default=DEFAULT_CLIP, help="clip to time (default: the bundled example)")
    r.add_argument("--checkpoint", type=Path, default=None, help=argparse.SUPPRESS)  # moved: tools.bench.export
    r.add_argument("--repeat", type=int, default=3)
    r.add_argument("--device", default="auto", choices=DEVICE_CHOICES)
    r.add_argument("--batch", type=int, default=1,
                   help="clips per model call for the engine comparison (GPU throughput: e.g. 64)")
    r.add_argument("--engine", default="auto", choices=ENGINES, help="engine for the per-stage run")
    r.add_argument("--variant", default="auto", choices=VARIANT_CHOICES, help="variant for the per-stage run")
    m = sub.add_parser("motion", help="motion inputs: TV-L1 onset->apex + TIM vs TV-L1 on every frame pair")
    m.add_argument("--clip", type=Path, default=DEFAULT_CLIP,
                   help="clip to align and time (default: the bundled example)")
    m.add_argument("--frames", type=int, default=30, help="use the clip's first N frames")
    m.add_argument("--size", type=int, default=112, help="aligned crop size")
    m.add_argument("--tim", type=int, default=10, help="TIM to this many frames")
    m.add_argument("--repeat", type=int, default=1, help="timed runs of each, after one warm-up (median reported)")
    c = sub.add_parser("recordings", help="a 1080p two-shot clip: decode floor vs today's path vs the new path")
    c.add_argument("--seconds", type=float, default=30.0, help="length of the generated clip (default 30)")
    c.add_argument("--frames", type=int, default=34, help="frames the face crop is resampled to (default 34)")
    c.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "mer-bench",
                   help="folder for the generated clip and the old code (kept for the next run)")
    c.add_argument("--today", default="81106d6", help="the commit whose inference/ is 'today' (default 81106d6)")
    c.add_argument("--today-limit-gb", type=float, default=4.0,
                   help="stop today's path when it holds more than this (it decodes the whole clip at full size)")
    c.add_argument("--repeat", type=int, default=1, help="runs of each (best reported)")
    c.add_argument("--model", type=Path, default=DEMO_PACKAGE,
                   help="package for the spot + recognise row (default: the bundled demo package)")
    c.add_argument("--working-size", type=int, nargs="+", default=[VideoLimits.working_size],
                   help="working sizes to run the new path at (default: the decoder's, %(default)s)")
    args = p.parse_args(argv)
    if args.what == "recordings":
        bench_recordings(args.seconds, args.frames, args.work, args.today, args.today_limit_gb, args.repeat,
                         args.working_size, args.model)
    elif args.what == "motion":
        bench_motion(args.clip, args.frames, args.size, args.tim, args.repeat)
    elif args.what == "face":
        bench_face(args.clip, args.repeat, args.size, args.max_frames)
    else:
        if args.checkpoint is not None:
            raise InputError("tools.bench.inference runtime times the package only; PyTorch eager from a training "
                             f"checkpoint is timed by python -m tools.bench.export --model {args.model} --checkpoint "
                             f"{args.checkpoint} (needs requirements/train.txt)")
        check_batch(args.batch)
        bench_runtime(args.model, args.clip, args.repeat, args.device, args.engine, args.variant, args.batch)
    return 0


if __name__ == "__main__":
    sys.exit(main())
