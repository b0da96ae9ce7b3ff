"""``python -m training.prepare``: a dataset as distributed → aligned, cached clips + manifest.

Every clip (onset → offset where annotated) goes through the clip path that serves uploads
(:class:`inference.preprocess.Preparer`, with every frame kept), so training never sees crops that differ
from serving's. Resumable: a second run skips
finished clips, a killed run loses at most the clip in flight; one bad clip is recorded with its reason
and never stops the run.

``--inputs`` chooses what the cache holds (:mod:`training.cache`), made from those aligned faces by
:mod:`inference.motion` (what serving computes too):

- ``rgb`` (default): the aligned frames;
- ``flow_image``: one onset → apex flow image per clip (u, v, strain; "fixed" scaling, zero motion at 128), at
  ``--flow-size`` (default: the crop size). The apex is the annotated one where the dataset gives it (the frame of
  that number in the clip), else :func:`inference.motion.estimate_apex`; the manifest's ``input_apex`` says which;
- ``flow_clip``: the flow of consecutive frames (``--flow-reference onset``: of every frame against the first);
- ``magnified``: the frames after linear Eulerian magnification (``--magnify-alpha``, ``--magnify-band``, at the
  clip's frame rate);
- ``grey_flow_clip``: the late-fusion model's grey + flow clip (channels grey, u, v: each frame's grey level beside
  the flow ending at it, u and v "fixed"-scaled, zero at 128), from the frames after TIM to ``--tim`` frames
  (default 17: 16 grey + flow frames).

``--tim N`` (``flow_clip``, ``grey_flow_clip``): the temporal interpolation model brings each clip to N frames
before the flow. ``--magnify-first`` (flow kinds): the frames are magnified (``--magnify-*``) before TIM and the
flow. Every kind is made by :func:`inference.inputs.build_input` from the settings ``cache.json`` records, the
function serving calls too.

``cache.json`` records the kind, method and parameters; a second run into the same folder with other settings is
refused. ``--dataset flowset`` copies a published flow-image set (:mod:`training.datasets.flowset`) into a cache.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

from inference.errors import InputError, cli
from inference.face import CropSettings
from inference.inputs import GREY_FLOW_TIM, KINDS, build_input, kind
from inference.motion import METHODS
from inference.preprocess import Preparer
from inference.video import Clip, VideoLimits, read_clip, read_frames

from .cache import CacheWriter
from .datasets import flowset
from .datasets.base import ClipRecord, frame_number
from .datasets.registry import DATASETS, FACELESS, dataset_module


@dataclasses.dataclass(frozen=True)
class MotionOptions:
    """How ``training.prepare`` turns aligned faces into its ``--inputs`` kind (recorded in ``cache.json``)."""

    kind: str = "rgb"
    method: str = "tvl1"  # optical flow: tvl1 | farneback
    flow_size: int | None = None  # flow_image side (None: the crop size)
    gain: float = 16.0  # "fixed" scaling: stored units per pixel of u and v
    strain_gain: float = 512.0  # … per unit of strain
    reference: str = "consecutive"  # flow_clip: consecutive pairs | every frame against the onset
    alpha: float = 10.0  # magnified: amplification
    band: tuple[float, float] = (0.5, 5.0)  # magnified: temporal pass band, Hz
    levels: int = 4  # magnified: pyramid levels
    tim: int | None = None  # flow_clip / grey_flow_clip: TIM to this many frames first (grey_flow_clip: 17 if None)
    magnify_first: bool = False  # flow kinds: magnify the frames (alpha, band, levels above) before TIM and the flow

    def __post_init__(self):
        if self.kind not in KINDS:
            raise InputError(f"unknown --inputs {self.kind!r}; choose one of {', '.join(KINDS)}")
        row = kind(self.kind)
        if self.tim is not None and (not row.tim or self.tim < 2):
            raise InputError(f"--tim {self.tim}: TIM normalises {' and '.join(k for k, r in KINDS.items() if r.tim)} "
                             f"inputs to at least 2 frames (got --inputs {self.kind})")
        if self.magnify_first and not row.magnify:
            raise InputError(f"--magnify-first magnifies the frames before the flow of a flow kind; for --inputs "
                             f"{self.kind} use --inputs magnified (magnified frames) or a flow kind")

    def scaling(self):
        from inference.motion import FlowScaling

        return FlowScaling("fixed", self.gain, self.strain_gain)

    def settings(self, size: int, apex: str | None) -> dict:
        """``cache.json``'s ``inputs`` for crops of ``size`` (``apex``: where flow images' apexes come from): the
        recipe of the kind's row (:mod:`inference.inputs`)."""
        return kind(self.kind).recipe(dataclasses.asdict(self), size, apex)


def apex_index(rec: ClipRecord, n_frames: int) -> int | None:
    """The annotated apex as an index into the clip's cached frames (onset = 0), or None when not annotated."""
    if rec.apex is None:
        return None
    if rec.frames:
        numbers = [frame_number(f) for f in rec.segment()]
        i = numbers.index(rec.apex) if rec.apex in numbers else None
    else:
        i = rec.apex - rec.onset if rec.onset is not None else None
    return i if i is not None and 0 <= i < n_frames else None


def au_cell(value) -> str:
    """The manifest's ``action_units``: a sheet's AU cell as written there (CASME II ``4+L10``, SAMM ``R12+R15``), or
    CK+'s (AU, intensity) pairs as ``1+2+25``; empty when the dataset codes none."""
    if isinstance(value, (list, tuple)):
        return "+".join(str(int(v[0] if isinstance(v, (list, tuple)) else v)) for v in value)
    return "" if value is None else str(value).strip()


def apex_source(records: list[ClipRecord]) -> str:
    given = sum(r.apex is not None for r in records)
    if given == len(records):
        return "annotated"
    return "annotated where given, else estimated" if given else "estimated"


def motion_input(frames: np.ndarray, rec: ClipRecord, opts: MotionOptions) -> tuple[np.ndarray, str]:
    """The aligned clip turned into ``opts.kind`` (uint8 ``(T', S', S', 3)``) and the manifest's ``input_apex``."""
    row = kind(opts.kind)
    if not row.motion:
        return frames, ""
    if (row.fps or opts.magnify_first) and not rec.fps:
        raise InputError(f"{rec.clip}: magnification needs the clip's frame rate, and the dataset gives none")
    given = apex_index(rec, len(frames)) if row.single_frame else None
    clip, apex = build_input(frames, opts.settings(frames.shape[1], None), rec.fps, given)
    if not row.single_frame:
        return clip, ""
    return clip, f"{apex} {'annotated' if given is not None else 'estimated'}"


def centre_square(frames: np.ndarray, size: int) -> np.ndarray:
    """Resize so the shorter side is ``size`` and cut the centre square (for clips without faces)."""
    import cv2

    h, w = frames.shape[1:3]
    k = size / min(h, w)
    nh, nw = max(size, round(h * k)), max(size, round(w * k))
    y0, x0 = (nh - size) // 2, (nw - size) // 2
    interp = cv2.INTER_AREA if k < 1 else cv2.INTER_LINEAR
    return np.stack([cv2.resize(f, (nw, nh), interpolation=interp)[y0:y0 + size, x0:x0 + size] for f in frames])


def load_clip(record: ClipRecord, limits: VideoLimits) -> Clip:
    """The record's frames (its annotated segment), decoded, named after the record."""
    if record.video is not None:
        clip = read_clip(record.video, limits=limits, fps=record.fps)
    else:
        frames = record.segment()
        if not frames:
            raise InputError(f"{record.clip}: no frames")
        clip = read_frames(list(frames), limits, record.fps, source=str(Path(frames[0]).parent))
    return dataclasses.replace(clip, source=record.clip)


def write_flowset_cache(root: str | Path, out: str | Path) -> dict:
    """Copy a set into an ordinary cache folder (``training.prepare --dataset flowset``); resumable like any cache."""
    rows, images, settings = flowset.load(root)
    writer = CacheWriter(Path(out), settings)
    done = writer.open()
    todo = [i for i, r in enumerate(rows) if r["clip"] not in done]
    for i in todo:
        row = {k: v for k, v in rows[i].items() if k not in ("start", "n_frames", "status")}
        writer.add(row, images[i][None])
    return {"dataset": flowset.NAME, "clips": len(rows), "prepared": len(todo), "failed": 0,
            "skipped_done": len(rows) - len(todo), "dropped_by_loader": 0}


def prepare(dataset: str, root: Path, out: Path, size: int = 128, margin: float = 0.1, variant: str = "auto",
            device: str = "cpu", limits: VideoLimits = VideoLimits(), retry_failed: bool = False,
            progress: bool = True, log=print, motion: MotionOptions = MotionOptions()) -> dict:
    if str(dataset).strip().lower() == flowset.NAME:
        t0 = time.perf_counter()
        return {**write_flowset_cache(root, out), "seconds": round(time.perf_counter() - t0, 2)}
    module = dataset_module(dataset)
    result = module.load(Path(root), variant=variant)
    log(f"{module.NAME} at {root}: {result.summary()}")
    for clip, reason in result.dropped[:20]:
        log(f"  dropped {clip}: {reason}")
    if len(result.dropped) > 20:
        log(f"  … and {len(result.dropped) - 20} more dropped")
    faces = module.NAME not in FACELESS
    crop = CropSettings(size=size, margin=margin)
    synthetic = (Path(root) / "SYNTHETIC.md").exists()  # written by python -m training.synth
    writer = CacheWriter(out, {"dataset": module.NAME, "variant": variant, "root": str(Path(root).resolve()),
                               "size": crop.size, "margin": crop.margin if faces else None, "faces": faces,
                               "crop": crop.to_dict() if faces else None, "synthetic": synthetic,
                               "inputs": motion.settings(crop.size, apex_source(result.records))})
    done = writer.open()
    todo = [r for r in result.records
            if r.clip not in done or (retry_failed and done[r.clip]["status"] != "ok")]
    if len(todo) < len(result.records):
        log(f"resuming: {len(result.records) - len(todo)} clips already in {out}")
    # every frame kept; a clip whose face is not usable on every frame is refused, its reason in its manifest row
    preparer = Preparer(crop, n_frames=None, limits=limits, device=device, whole=True)
    counts = Counter(ok=0, failed=0)
    from tqdm import tqdm

    t0 = time.perf_counter()
    bar = tqdm(todo, desc=f"prepare {module.NAME}", unit="clip", disable=not progress)
    for rec in bar:
        row = {"dataset": module.NAME, "subject": rec.subject, "clip": rec.clip, "label": rec.emotion,
               "composite": rec.composite or "", "onset": rec.onset, "apex": rec.apex, "offset": rec.offset,
               "fps": rec.fps, "source": str(rec.video or (rec.frames[0].parent if rec.frames else "")),
               "action_units": au_cell(rec.extra.get("action_units"))}
        try:
            clip = load_clip(rec, limits)
            if faces:
                prepared = preparer(clip)
                row.update(faces_seen=prepared.faces_seen, mode=prepared.face["mode"])
                frames = prepared.frames
            else:
                frames = centre_square(clip.frames, crop.size)
            frames, row["input_apex"] = motion_input(frames, rec, motion)
            writer.add(row, frames)
            counts["ok"] += 1
        except InputError as e:
            writer.add(row, None, status=str(e).replace("\n", " "))
            counts["failed"] += 1
        except Exception as e:  # noqa: BLE001 — one bad clip must not stop the run; its reason is kept
            writer.add(row, None, status=f"{type(e).__name__}: {e}".replace("\n", " "))
            counts["failed"] += 1
        bar.set_postfix(counts)
    summary = {"dataset": module.NAME, "clips": len(result.records), "prepared": counts["ok"],
               "failed": counts["failed"], "skipped_done": len(result.records) - len(todo),
               "dropped_by_loader": len(result.dropped), "seconds": round(time.perf_counter() - t0, 2)}
    return summary


def _band(text: str) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in text.split("-"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LOW-HIGH in Hz such as 0.5-5, got {text!r}") from None
    return lo, hi


@cli
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m training.prepare",
        description="Align every clip of a dataset (as its owners distribute it) with the serving face alignment "
                    "and write a compact uint8 cache that training memory-maps in one call, with manifest.csv "
                    "(subject, clip, label, n_frames, status, …). Run it again with the same --out to resume.",
        epilog="Example: python -m training.prepare --dataset casme2 --root /data/CASME2 --out cache/casme2",
    )
    p.add_argument("--dataset", required=True,
                   help=f"one of {', '.join(DATASETS)}, or {flowset.NAME} (a published flow-image set: copied)")
    p.add_argument("--root", required=True, type=Path, help="the dataset's top folder, as distributed")
    p.add_argument("--out", required=True, type=Path, help="cache folder (created; resumed when it exists)")
    p.add_argument("--size", type=int, default=128, help="side of the square face crop (default 128)")
    p.add_argument("--margin", type=float, default=CropSettings.margin,
                   help="crop margin, fraction of face size (default 0.1)")
    p.add_argument("--variant", default="auto", help="raw, cropped, … (default auto: what the folder holds)")
    p.add_argument("--device", default="cpu", help="face detector device: cpu, cuda, auto (default cpu)")
    p.add_argument("--retry-failed", action="store_true", help="try again the clips that failed before")
    p.add_argument("--max-frames", type=int, default=VideoLimits.max_frames, help="refuse clips longer than this")
    m = p.add_argument_group("motion inputs (--inputs other than rgb)")
    m.add_argument("--inputs", default="rgb", choices=tuple(KINDS),
                   help="what the cache holds: aligned frames (rgb, default), one onset→apex flow image per clip "
                        "(flow_image), the flow of consecutive frames (flow_clip), magnified frames (magnified), "
                        "grey level + flow of consecutive TIM-normalised frames (grey_flow_clip)")
    m.add_argument("--flow-method", default="tvl1", choices=METHODS, help="optical flow (default tvl1)")
    m.add_argument("--flow-size", type=int, default=None, help="flow_image side in pixels (default: --size)")
    m.add_argument("--flow-gain", type=float, default=MotionOptions.gain,
                   help="stored units per pixel of u and v, zero motion at 128 (default 16)")
    m.add_argument("--strain-gain", type=float, default=MotionOptions.strain_gain,
                   help="stored units per unit of optical strain (default 512)")
    m.add_argument("--flow-reference", default="consecutive", choices=("consecutive", "onset"),
                   help="flow_clip: flow of consecutive frames (default) or of every frame against the first")
    m.add_argument("--tim", type=int, default=None,
                   help=f"flow_clip, grey_flow_clip: TIM each clip to this many frames before the flow (default: "
                        f"none for flow_clip, {GREY_FLOW_TIM} for grey_flow_clip)")
    m.add_argument("--magnify-first", action="store_true",
                   help="flow kinds: magnify the aligned frames (--magnify-alpha/-band/-levels, at the clip's frame "
                        "rate) before TIM and the flow — the flow of magnified frames (the AU-fusion input)")
    m.add_argument("--magnify-alpha", type=float, default=MotionOptions.alpha, help="magnified: amplification (10)")
    m.add_argument("--magnify-band", type=_band, default=MotionOptions.band,
                   help="magnified: temporal pass band LOW-HIGH in Hz (default 0.5-5)")
    m.add_argument("--magnify-levels", type=int, default=MotionOptions.levels, help="magnified: pyramid levels (4)")
    args = p.parse_args(argv)
    motion = MotionOptions(args.inputs, args.flow_method, args.flow_size, args.flow_gain, args.strain_gain,
                           args.flow_reference, args.magnify_alpha, args.magnify_band, args.magnify_levels,
                           args.tim, args.magnify_first)
    s = prepare(args.dataset, args.root, args.out, args.size, args.margin, args.variant, args.device,
                VideoLimits(max_frames=args.max_frames), args.retry_failed, motion=motion)
    print(f"{s['prepared']} clips prepared, {s['failed']} failed (reasons in {args.out}/manifest.csv), "
          f"{s['skipped_done']} already done, {s['dropped_by_loader']} dropped by the loader; {s['seconds']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
