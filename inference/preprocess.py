"""The clip path: a recording → decoded → face aligned → resampled in time, as one named result.

:class:`Preparer` is the one entry. ``Preparer(crop, n_frames)(clip)`` returns a :class:`PreparedClip` (the
aligned uint8 frames, the aligner's meta, stage timings, where the clip came from). The runtime prepares every
clip it classifies with it (``Predictor.prepare``, and the batch command's worker processes: a
:class:`Preparer` and its result pickle), and ``python -m training.prepare`` builds the training cache with it
(``n_frames=None``: all frames kept), so the crops a model is trained on never differ from the ones it is served.

``python -m inference.preprocess CLIP --out DIR [--size 112] [--frames N]`` shows what the model sees: it writes
``O.npy``, ``L.npy``, ``R.npy`` (uint8 ``(T, S, S, 3)``), ``preview.png`` (frames of the three views) and
``meta.json`` (boxes, landmarks, the transform, frames used, faces seen, timings).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .device import resolve_device
from .errors import InputError, cli
from .face import CropSettings, FaceAligner, shared_aligner
from .files import write_atomic, write_json_atomic
from .temporal import resample, sample_positions
from .track import Quality, WithQuality, track_and_align
from .video import Clip, VideoLimits, read_clip
from .views import make_views, parse_views


@dataclass(frozen=True)
class PreparedClip(WithQuality):
    """A clip made ready for a model: its face aligned and its length resampled. Plain arrays and dicts, so it
    pickles (worker processes hand it back)."""

    frames: np.ndarray  # uint8 (T, S, S, 3): the aligned face, resampled to the asked frame count
    face: dict  # the aligner's meta: crop, mode, faces_seen, boxes, landmarks, transform, head roll, its timings
    timings: dict[str, float]  # seconds per stage: decode, face, resample
    source: str  # the file or folder (or the name the caller gave the clip)
    fps: float | None  # the decoded clip's frame rate (None: a folder of frames without a known rate)
    rotation: int = 0  # degrees the decoder turned the frames to honour the file's display matrix
    input_frames: int = 0  # frames decoded
    input_size: tuple[int, int] = (0, 0)  # (width, height) of the decoded frames
    quality: Quality | None = None  # the face track's verdict: coverage, shots, faces seen, frames used and dropped

    @property
    def faces_seen(self) -> int:
        return int(self.face.get("faces_seen", 0))

    @property
    def n_frames(self) -> int:
        return int(self.frames.shape[0])

    @property
    def frames_used(self) -> list[float]:
        """The input position (fractional frame index in the decoded clip) of each output frame."""
        first, last = self.quality.frames_used if self.quality else (0, self.input_frames - 1)
        return [round(first + float(p), 4) for p in sample_positions(last - first + 1, self.n_frames)]


@dataclass(frozen=True)
class Preparer:
    """Decode (unless given a decoded :class:`Clip`) → track the face over the whole clip and align the chosen
    person's segment (:func:`inference.track.track_and_align`) → resample it to ``n_frames`` (None keeps every
    frame of the segment). ``whole``: refuse a clip the segment does not cover entirely (``training.prepare``: an
    annotated dataset clip must not lose frames silently). A small frozen object: worker processes get a copy and
    prepare clips while the model runs."""

    crop: CropSettings = CropSettings()
    n_frames: int | None = None
    limits: VideoLimits = VideoLimits()
    device: str = "cpu"  # where the face aligner runs: cpu, cuda, cuda:N or auto (resolved on construction)
    find_frames: int = FaceAligner.FIND_FRAMES
    keyframes: int = FaceAligner.KEYFRAMES
    whole: bool = False

    def __post_init__(self):
        object.__setattr__(self, "device", resolve_device(self.device, onnxruntime_only=True))  # the face stage's

    def __call__(self, clip: str | os.PathLike | Clip, fps: float | None = None,
                 on_stage: Callable[[str], None] | None = None) -> PreparedClip:
        """``on_stage(name)`` is called as each stage starts ("decode", "face"), e.g. to drive a progress bar."""
        stage = on_stage or (lambda _name: None)
        t0 = time.perf_counter()
        stage("decode")
        if not isinstance(clip, Clip):
            clip = read_clip(clip, self.limits, fps=fps)
        t1 = time.perf_counter()
        stage("face")
        aligner = shared_aligner(self.device, find_frames=self.find_frames, keyframes=self.keyframes)
        aligned, quality = track_and_align(clip.frames, aligner, self.crop, clip.fps, clip.source, self.n_frames,
                                           self.whole, clip.scale, clip.notes)
        t2 = time.perf_counter()
        frames = resample(aligned.frames, self.n_frames) if self.n_frames else aligned.frames
        t3 = time.perf_counter()
        return PreparedClip(frames=frames, face=aligned.meta, timings={"decode": t1 - t0, "face": t2 - t1,
                                                                        "resample": t3 - t2},
                            source=clip.source, fps=clip.fps, rotation=clip.rotation, input_frames=clip.n_frames,
                            input_size=(int(clip.frames.shape[2]), int(clip.frames.shape[1])), quality=quality)


def add_decoding_options(p: argparse.ArgumentParser) -> None:
    """``--working-size`` and ``--max-megabytes``: how large decoded frames and a decoded clip may be."""
    p.add_argument("--working-size", type=int, default=VideoLimits.working_size,
                   help="decode frames with their longer side at most this many pixels (0: full size; default "
                        "%(default)s; a long clip may be reduced further to fit --max-megabytes)")
    p.add_argument("--max-megabytes", type=int, default=VideoLimits.max_bytes // 2 ** 20,
                   help="memory for the decoded frames of one clip, MiB (default %(default)s)")


def decoding_options(args: argparse.Namespace) -> dict:
    """The :class:`VideoLimits` fields the options of :func:`add_decoding_options` set."""
    if args.working_size < 0 or args.max_megabytes < 1:
        raise InputError("--working-size must be ≥ 0 and --max-megabytes ≥ 1")
    return {"working_size": args.working_size, "max_bytes": args.max_megabytes * 2 ** 20}


@dataclass
class Preprocessed:
    views: dict[str, np.ndarray]  # letter → uint8 (T, S, S, 3)
    meta: dict = field(default_factory=dict)


def preprocess(clip: str | os.PathLike | Clip, crop: CropSettings = CropSettings(), n_frames: int | None = None,
               views: str = "OLR", device: str = "cpu", limits: VideoLimits = VideoLimits(),
               fps: float | None = None, find_frames: int = FaceAligner.FIND_FRAMES,
               keyframes: int = FaceAligner.KEYFRAMES) -> Preprocessed:
    """The clip through :class:`Preparer`, then its Décalcomanie views, with the meta that ``meta.json`` holds."""
    views = parse_views(views)
    if n_frames is not None and not (1 <= int(n_frames) <= 10_000):
        raise InputError(f"--frames must be between 1 and 10000, got {n_frames}")
    prepared = Preparer(crop, int(n_frames) if n_frames else None, limits, device, find_frames, keyframes)(clip, fps)
    t0 = time.perf_counter()
    out = dict(zip(views, make_views(prepared.frames, views)))
    t_views = time.perf_counter()
    face = prepared.face
    meta = {
        "source": prepared.source,
        "fps": prepared.fps,
        "rotation_applied_deg": prepared.rotation,
        "input_frames": prepared.input_frames,
        "input_size": list(prepared.input_size),
        "output_frames": prepared.n_frames,
        "frames_used": prepared.frames_used,
        "views": views,
        **{k: v for k, v in face.items() if k not in ("source", "timings_s")},
        "quality": prepared.quality.to_dict(),
        "timings_s": {
            "decode": round(prepared.timings["decode"], 4),
            "face": round(prepared.timings["face"], 4),
            **{f"face_{k}": v for k, v in face["timings_s"].items()},
            "resample": round(prepared.timings["resample"], 4),
            "views": round(t_views - t0, 4),
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
    for letter, clip in result.views.items():
        written.append(write_atomic(out_dir / f"{letter}.npy",
                                    lambda f, clip=clip: np.save(f, np.ascontiguousarray(clip))))
    written.append(write_atomic(out_dir / "preview.png",
                                lambda f: preview_image(result.views, preview_columns).save(f, format="PNG")))
    written.append(write_json_atomic(out_dir / "meta.json", result.meta))
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
    p.add_argument("--device", default="cpu",
                   help="where the face detector runs: cpu, cuda, cuda:N or auto (default cpu)")
    p.add_argument("--fps", type=float, default=None, help="frame rate of a folder of frames (recorded in meta.json)")
    p.add_argument("--find-frames", type=int, default=FaceAligner.FIND_FRAMES,
                   help="frames spread over the clip that the face track's detector looks at first, at least "
                        "(default %(default)s: about one a second, up to 16, and both ends of every shot)")
    p.add_argument("--keyframes", type=int, default=FaceAligner.KEYFRAMES,
                   help="frames whose landmarks are refined (default %(default)s)")
    p.add_argument("--max-frames", type=int, default=VideoLimits.max_frames,
                   help="refuse longer clips (default %(default)s)")
    p.add_argument("--max-seconds", type=float, default=VideoLimits.max_seconds,
                   help="refuse longer clips (default %(default)s)")
    p.add_argument("--max-pixels", type=int, default=VideoLimits.max_pixels,
                   help="refuse larger frames (default %(default)s)")
    add_decoding_options(p)
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
        limits=VideoLimits(args.max_frames, args.max_seconds, args.max_pixels, **decoding_options(args)),
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
    q = m["quality"]
    print(f"face coverage {q['face_coverage']:.0%} (frames {q['frames_used'][0]}–{q['frames_used'][1]} used)"
          + "".join(f"\n  note: {note}" for note in q["notes"]))
    print(f"wrote {args.out}/{{{','.join(m['views'])}}}.npy, preview.png, meta.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
