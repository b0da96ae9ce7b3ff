"""Clip → what the model sees: aligned face, resampled in time, as Décalcomanie views.

``python -m inference.preprocess CLIP --out DIR [--size 112] [--frames N]`` writes ``O.npy``, ``L.npy``,
``R.npy`` (uint8 ``(T, S, S, 3)``), ``preview.png`` (frames of the three views) and ``meta.json``
(boxes, landmarks, the transform, frames used, faces seen, timings). The same :func:`preprocess`
function serves the runtime and builds the training cache, so crops never differ between the two.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import InputError, cli
from .face import CropSettings, align_clip
from .temporal import resample, sample_positions
from .video import Clip, VideoLimits, read_clip
from .views import make_views, parse_views


@dataclass
class Preprocessed:
    views: dict[str, np.ndarray]  # letter → uint8 (T, S, S, 3)
    meta: dict = field(default_factory=dict)


def resolve_device(device: str) -> str:
    """``cpu``, ``cuda`` or ``cuda:N``; ``auto`` picks CUDA when torch sees a GPU."""
    import torch

    device = (device or "cpu").lower()
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"device {device!r} asked for, but no CUDA GPU is visible to PyTorch; use --device cpu")
    if device != "cpu" and not device.startswith("cuda"):
        raise InputError(f"unknown device {device!r}; use cpu, cuda, cuda:N or auto")
    return device


def preprocess(clip: str | os.PathLike | Clip, crop: CropSettings = CropSettings(), n_frames: int | None = None,
               views: str = "OLR", device: str = "cpu", limits: VideoLimits = VideoLimits(),
               fps: float | None = None, **aligner_options) -> Preprocessed:
    """Decode (unless given a :class:`Clip`), align, resample to ``n_frames`` (None keeps all), build views."""
    views = parse_views(views)
    if n_frames is not None and not (1 <= int(n_frames) <= 10_000):
        raise InputError(f"--frames must be between 1 and 10000, got {n_frames}")
    t0 = time.perf_counter()
    if not isinstance(clip, Clip):
        clip = read_clip(clip, limits=limits, fps=fps)
    t_decode = time.perf_counter()
    aligned = align_clip(clip.frames, crop, device=resolve_device(device), source=clip.source, **aligner_options)
    t_face = time.perf_counter()
    n_out = int(n_frames) if n_frames else clip.n_frames
    frames = resample(aligned.frames, n_out)
    t_resample = time.perf_counter()
    out = dict(zip(views, make_views(frames, views)))
    t_views = time.perf_counter()
    meta = {
        "source": clip.source,
        "fps": clip.fps,
        "rotation_applied_deg": clip.rotation,
        "input_frames": clip.n_frames,
        "input_size": [int(clip.frames.shape[2]), int(clip.frames.shape[1])],
        "output_frames": n_out,
        "frames_used": [round(float(p), 4) for p in sample_positions(clip.n_frames, n_out)],
        "views": views,
        **{k: v for k, v in aligned.meta.items() if k not in ("source", "timings_s")},
        "timings_s": {
            "decode": round(t_decode - t0, 4),
            "face": round(t_face - t_decode, 4),
            **{f"face_{k}": v for k, v in aligned.meta["timings_s"].items()},
            "resample": round(t_resample - t_face, 4),
            "views": round(t_views - t_resample, 4),
        },
    }
    return Preprocessed(views=out, meta=meta)


def preview_image(views: dict[str, np.ndarray], n_columns: int = 8, scale: int = 2):
    """A PIL image: one row per view, ``n_columns`` evenly spaced frames, labelled."""
    from PIL import Image, ImageDraw

    first = next(iter(views.values()))
    t, s = first.shape[0], first.shape[1]
    cols = sorted({int(round(p)) for p in np.linspace(0, t - 1, min(n_columns, t))})
    cell, label_w, head_h, gap = s * scale, 28, 18, 2
    width = label_w + len(cols) * (cell + gap)
    height = head_h + len(views) * (cell + gap)
    img = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    for c, fi in enumerate(cols):
        draw.text((label_w + c * (cell + gap) + 4, 3), f"frame {fi}", fill=(0, 0, 0))
    for r, (letter, clip) in enumerate(views.items()):
        y = head_h + r * (cell + gap)
        draw.text((8, y + cell // 2 - 6), letter, fill=(0, 0, 0))
        for c, fi in enumerate(cols):
            tile = Image.fromarray(clip[fi]).resize((cell, cell), Image.NEAREST)
            img.paste(tile, (label_w + c * (cell + gap), y))
    return img


def write_outputs(result: Preprocessed, out_dir: str | os.PathLike, preview_columns: int = 8) -> list[Path]:
    """Write ``<view>.npy``, ``preview.png`` and ``meta.json`` into ``out_dir``, each file atomically
    (written beside its place, then renamed). ``meta.json`` comes last: when it is there, all are."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []

    def put(name: str, write) -> None:
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", dir=out_dir)
        try:
            with os.fdopen(fd, "wb") as f:
                write(f)
            os.replace(tmp, out_dir / name)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        written.append(out_dir / name)

    for letter, clip in result.views.items():
        put(f"{letter}.npy", lambda f, clip=clip: np.save(f, np.ascontiguousarray(clip)))
    put("preview.png", lambda f: preview_image(result.views, preview_columns).save(f, format="PNG"))
    put("meta.json", lambda f: f.write(json.dumps(result.meta, indent=2).encode()))
    return written


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m inference.preprocess",
        description="Show what the model sees: find and align the face in a clip (eyes level, facial midline at "
                    "the centre column), resample it in time and write the Décalcomanie views O, L and R.",
        epilog="Outputs in --out: O.npy, L.npy, R.npy (uint8, frames x size x size x 3, RGB), preview.png, meta.json. "
               "Example: python -m inference.preprocess examples/astronaut.mp4 --out out/astronaut --frames 34",
    )
    p.add_argument("clip", help="a video file (.mp4 .avi .mov .mkv .webm) or a folder of frame images (.bmp .jpg .png)")
    p.add_argument("--out", required=True, help="output folder (created if missing; files in it are replaced)")
    p.add_argument("--size", type=int, default=112, help="side of the square face crop in pixels (default 112)")
    p.add_argument("--frames", type=int, default=None,
                   help="resample to this many frames by linear interpolation (default: keep the clip's count; "
                        "the paper uses SMIC 34, CASME II 66, SAMM 74)")
    p.add_argument("--margin", type=float, default=CropSettings.margin,
                   help="extra room around the face, as a fraction of its size on each side (default 0.1)")
    p.add_argument("--views", default="OLR", help="which views to write (default OLR)")
    p.add_argument("--device", default="cpu", help="where the face detector runs: cpu, cuda, cuda:N or auto (default cpu)")
    p.add_argument("--fps", type=float, default=None, help="frame rate of a folder of frames (recorded in meta.json)")
    p.add_argument("--find-frames", type=int, default=2, help="frames the full face detector looks at (default 2)")
    p.add_argument("--keyframes", type=int, default=8, help="frames whose landmarks are refined (default 8)")
    p.add_argument("--max-frames", type=int, default=VideoLimits.max_frames, help="refuse longer clips (default %(default)s)")
    p.add_argument("--max-seconds", type=float, default=VideoLimits.max_seconds, help="refuse longer clips (default %(default)s)")
    p.add_argument("--max-pixels", type=int, default=VideoLimits.max_pixels, help="refuse larger frames (default %(default)s)")
    p.add_argument("--preview-frames", type=int, default=8, help="frames shown per view in preview.png (default 8)")
    return p


@cli
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result = preprocess(
        args.clip,
        crop=CropSettings(size=args.size, margin=args.margin),
        n_frames=args.frames,
        views=args.views,
        device=args.device,
        limits=VideoLimits(args.max_frames, args.max_seconds, args.max_pixels),
        fps=args.fps,
        find_frames=args.find_frames,
        keyframes=args.keyframes,
    )
    write_outputs(result, args.out, args.preview_frames)
    m = result.meta
    print(f"{m['source']}: {m['input_frames']} frames {m['input_size'][0]}x{m['input_size'][1]} → "
          f"{m['output_frames']} frames {args.size}x{args.size}, views {m['views']}; "
          f"faces seen {m['faces_seen']}, {m['mode']} crop, head roll {m['head_roll_deg']:+.1f}°; "
          f"face stage {m['timings_s']['face']:.2f} s")
    print(f"wrote {args.out}/{{{','.join(m['views'])}}}.npy, preview.png, meta.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
