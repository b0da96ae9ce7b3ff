"""``python -m training.prepare``: a dataset as distributed → aligned, cached clips + manifest.

Every clip (onset → offset where annotated) goes through the clip path that serves uploads
(:class:`inference.preprocess.Preparer`, with every frame kept), so training never sees crops that differ
from serving's. Resumable: a second run skips
finished clips, a killed run loses at most the clip in flight; one bad clip is recorded with its reason
and never stops the run.
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
from inference.preprocess import Preparer
from inference.video import Clip, VideoLimits, read_clip, read_frames

from .cache import CacheWriter
from .datasets.base import ClipRecord
from .datasets.registry import DATASETS, FACELESS, dataset_module


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


def prepare(dataset: str, root: Path, out: Path, size: int = 128, margin: float = 0.1, variant: str = "auto",
            device: str = "cpu", limits: VideoLimits = VideoLimits(), retry_failed: bool = False,
            progress: bool = True, log=print) -> dict:
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
                               "crop": crop.to_dict() if faces else None, "synthetic": synthetic})
    done = writer.open()
    todo = [r for r in result.records
            if r.clip not in done or (retry_failed and done[r.clip]["status"] != "ok")]
    if len(todo) < len(result.records):
        log(f"resuming: {len(result.records) - len(todo)} clips already in {out}")
    preparer = Preparer(crop, n_frames=None, limits=limits, device=device)  # every frame kept
    counts = Counter(ok=0, failed=0)
    from tqdm import tqdm

    t0 = time.perf_counter()
    bar = tqdm(todo, desc=f"prepare {module.NAME}", unit="clip", disable=not progress)
    for rec in bar:
        row = {"dataset": module.NAME, "subject": rec.subject, "clip": rec.clip, "label": rec.emotion,
               "composite": rec.composite or "", "onset": rec.onset, "apex": rec.apex, "offset": rec.offset,
               "fps": rec.fps, "source": str(rec.video or (rec.frames[0].parent if rec.frames else ""))}
        try:
            clip = load_clip(rec, limits)
            if faces:
                prepared = preparer(clip)
                row.update(faces_seen=prepared.faces_seen, mode=prepared.face["mode"])
                frames = prepared.frames
            else:
                frames = centre_square(clip.frames, crop.size)
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


@cli
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m training.prepare",
        description="Align every clip of a dataset (as its owners distribute it) with the serving face alignment "
                    "and write a compact uint8 cache that training memory-maps in one call, with manifest.csv "
                    "(subject, clip, label, n_frames, status, …). Run it again with the same --out to resume.",
        epilog="Example: python -m training.prepare --dataset casme2 --root /data/CASME2 --out cache/casme2",
    )
    p.add_argument("--dataset", required=True, help=f"one of {', '.join(DATASETS)}")
    p.add_argument("--root", required=True, type=Path, help="the dataset's top folder, as distributed")
    p.add_argument("--out", required=True, type=Path, help="cache folder (created; resumed when it exists)")
    p.add_argument("--size", type=int, default=128, help="side of the square face crop (default 128)")
    p.add_argument("--margin", type=float, default=CropSettings.margin,
                   help="crop margin, fraction of face size (default 0.1)")
    p.add_argument("--variant", default="auto", help="raw, cropped, … (default auto: what the folder holds)")
    p.add_argument("--device", default="cpu", help="face detector device: cpu, cuda, auto (default cpu)")
    p.add_argument("--retry-failed", action="store_true", help="try again the clips that failed before")
    p.add_argument("--max-frames", type=int, default=VideoLimits.max_frames, help="refuse clips longer than this")
    args = p.parse_args(argv)
    s = prepare(args.dataset, args.root, args.out, args.size, args.margin, args.variant, args.device,
                VideoLimits(max_frames=args.max_frames), args.retry_failed)
    print(f"{s['prepared']} clips prepared, {s['failed']} failed (reasons in {args.out}/manifest.csv), "
          f"{s['skipped_done']} already done, {s['dropped_by_loader']} dropped by the loader; {s['seconds']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
