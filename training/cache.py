"""The aligned dataset cache: every clip's aligned face frames in one uint8 file, plus a manifest.

Layout of a cache folder::

    cache.json     settings it was built with (dataset, variant, crop size and margin, input kind, format version)
    frames.u8      all clips' frames back to back, raw uint8 (total_frames, S, S, 3): one np.memmap call
    manifest.csv   one row per clip: subject, clip, label, n_frames, status, start, … (status "ok" or the reason)

Whatever the input kind (a row of :mod:`inference.inputs`), a clip is uint8 ``(T, S, S, 3)``; ``cache.json`` says
what its channels hold under ``inputs`` (:func:`input_settings`): ``{"kind": "rgb"}`` for aligned faces (a cache
without the key is read as that), or a motion kind with how it was made, e.g. ``{"kind": "flow_image", "method":
"tvl1", "params": {…}, "scaling": {…}, "apex": "annotated"}``:

- ``rgb``: the aligned face frames;
- ``flow_image``: one frame per clip, onset → apex flow; channels u, v, optical strain, stored as ``scaling`` says
  (:class:`inference.motion.FlowScaling`; our own caches: "fixed", zero motion at 128);
- ``flow_clip``: T-1 frames of u, v, strain (:func:`inference.motion.flow_clip`);
- ``magnified``: the aligned face frames after Eulerian motion magnification (RGB channels);
- ``grey_flow_clip``: T-1 frames of grey, u, v (:func:`inference.motion.grey_flow_clip`: each frame's grey level
  as it is beside the flow ending at it, u and v "fixed"-scaled with zero at 128), from the frames after TIM to
  ``inputs.tim`` frames — the late-fusion model's grey + flow input.

A folder holding a published flow-image set (:mod:`training.datasets.flowset`) opens as a cache too, read in memory.

The writer appends a clip's frames, syncs them, then appends its manifest row as one complete line. After a
kill at any moment, :meth:`CacheWriter.open` drops a torn last line and any frame bytes no row accounts for,
so a resumed run redoes at most the clip that was in flight. When a clip appears twice (a failed clip retried),
the last row wins.
"""

from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from inference.errors import InputError

FORMAT = 1
COLUMNS = ("dataset", "subject", "clip", "label", "composite", "n_frames", "status", "start",
           "onset", "apex", "offset", "fps", "faces_seen", "mode", "source", "input_apex", "action_units")
# input_apex: for motion inputs, the frame (0-based, onset = 0) used as apex, and where it came from ("3 annotated")
# action_units: the dataset sheet's AU cell as written there ("4+L10", "R12+R15"; empty where the dataset codes none)

# The input kinds a cache may hold, their channels and how they are made: the rows of inference.inputs.


def frame_size(settings: dict) -> int:
    """Side of the stored frames: the crop size, or a flow image's own size (``inputs.size``)."""
    return int(input_settings(settings).get("size") or settings["size"])


def input_settings(settings: dict) -> dict:
    """What a cache's clips hold: its ``cache.json``'s ``inputs`` (``{"kind": "rgb"}`` for caches made before
    motion inputs existed)."""
    return dict(settings.get("inputs") or {"kind": "rgb"})


def _read_rows(path: Path) -> tuple[list[dict], int]:
    """Complete manifest rows and the byte length they occupy (a torn last line is left out)."""
    if not path.exists():
        return [], 0
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1
    text = data[:end].decode("utf-8")
    rows = list(csv.DictReader(io.StringIO(text)))
    return rows, end


def _latest(rows: list[dict]) -> dict[str, dict]:
    latest: dict[str, dict] = {}
    for r in rows:
        latest[r["clip"]] = r
    return latest


class CacheWriter:
    def __init__(self, folder: Path, settings: dict):
        self.folder = Path(folder)
        self.settings = {"format": FORMAT, **settings}
        self.size = frame_size(settings)
        self.frame_bytes = self.size * self.size * 3

    def open(self) -> dict[str, dict]:
        """Create or resume the cache; returns the clips already in it (clip id → last row)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        meta = self.folder / "cache.json"
        if meta.exists():
            old = json.loads(meta.read_text())
            old["inputs"] = input_settings(old)
            new = dict(self.settings, inputs=input_settings(self.settings))
            keys = ("format", "dataset", "variant", "size", "margin", "faces", "inputs")
            diff = [k for k in keys if old.get(k) != new.get(k)]
            if diff:
                raise InputError(
                    f"{self.folder} holds a cache built with other settings "
                    f"({'; '.join(f'{k}: {old.get(k)!r} there, {new.get(k)!r} now' for k in diff)}); "
                    f"use another --out, or the same settings to resume")
        else:
            tmp = meta.with_suffix(".json.tmp")
            tmp.write_text(json.dumps(self.settings, indent=2))
            os.replace(tmp, meta)
        manifest = self.folder / "manifest.csv"
        rows, end = _read_rows(manifest)
        self.columns = COLUMNS
        if not rows:
            with open(manifest, "w", encoding="utf-8", newline="") as f:
                f.write(",".join(COLUMNS) + "\n")
        else:
            with open(manifest, "r+b") as f:  # drop a torn last line
                f.truncate(end)
            self.columns = tuple(rows[0])  # a cache made before a column was added keeps its own header
        frames = self.folder / "frames.u8"
        used = max((int(r["start"]) + int(r["n_frames"]) for r in rows if r["status"] == "ok"), default=0)
        with open(frames, "ab") as f:
            f.truncate(used * self.frame_bytes)  # bytes of a clip whose row never made it
        self._next = used
        return _latest(rows)

    def _append_row(self, row: dict) -> None:
        buf = io.StringIO()
        csv.DictWriter(buf, self.columns, extrasaction="ignore", lineterminator="\n").writerow(row)
        with open(self.folder / "manifest.csv", "a", encoding="utf-8", newline="") as f:
            f.write(buf.getvalue())
            f.flush()
            os.fsync(f.fileno())

    def add(self, row: dict, frames: np.ndarray | None, status: str = "ok") -> None:
        """Append one clip: its frames (uint8 (T, S, S, 3)) when ``status`` is ok, else only the row."""
        row = dict(row, status=status, start=self._next if status == "ok" else "", n_frames=0)
        if status == "ok":
            frames = np.ascontiguousarray(frames, dtype=np.uint8)
            if frames.ndim != 4 or frames.shape[1:] != (self.size, self.size, 3):
                raise ValueError(f"frames must be (T, {self.size}, {self.size}, 3), got {frames.shape}")
            with open(self.folder / "frames.u8", "ab") as f:
                f.write(frames.tobytes())
                f.flush()
                os.fsync(f.fileno())
            row["n_frames"] = len(frames)
            self._next += len(frames)
        self._append_row(row)


@dataclass
class Cache:
    """A built cache, opened for reading: ``frames`` is one read-only memory map over every clip."""

    folder: Path
    settings: dict
    rows: list[dict]  # the usable clips (status ok), in manifest order, last row per clip
    failed: list[dict]
    frames: np.ndarray  # (total_frames, S, S, 3) uint8 memmap (an array for a flow-image set)

    @classmethod
    def open(cls, folder: str | Path) -> "Cache":
        """A cache made by ``training.prepare``, or a published flow-image set read as one, into memory with
        nothing written (:func:`training.datasets.flowset.load`)."""
        folder = Path(folder)
        if not (folder / "cache.json").exists() or not (folder / "manifest.csv").exists():
            from .datasets import flowset

            if flowset.is_flowset(folder):
                rows, images, settings = flowset.load(folder)
                return cls(folder, {"format": FORMAT, **settings}, rows, [], images)
            raise InputError(f"{folder}: not a dataset cache (no cache.json / manifest.csv) nor a flow-image set "
                             f"({flowset.LAYOUT}); build a cache with python -m training.prepare")
        settings = json.loads((folder / "cache.json").read_text())
        rows, _ = _read_rows(folder / "manifest.csv")
        latest = list(_latest(rows).values())
        ok = [r for r in latest if r["status"] == "ok"]
        for r in ok:
            r["subject"], r["n_frames"], r["start"] = int(r["subject"]), int(r["n_frames"]), int(r["start"])
        s = frame_size(settings)
        total = max((r["start"] + r["n_frames"] for r in ok), default=0)
        path = folder / "frames.u8"
        if path.stat().st_size < total * s * s * 3:
            raise InputError(f"{path} is shorter than its manifest says; the cache is damaged — run prepare again "
                             f"with the same --out to repair it")
        frames = (np.memmap(path, np.uint8, mode="r", shape=(total, s, s, 3)) if total
                  else np.zeros((0, s, s, 3), np.uint8))
        return cls(folder, settings, ok, [r for r in latest if r["status"] != "ok"], frames)

    @property
    def inputs(self) -> dict:
        """What the clips hold (:func:`input_settings`): ``kind`` and, for motion, how it was made."""
        return input_settings(self.settings)

    def clip(self, i: int) -> np.ndarray:
        r = self.rows[i]
        return self.frames[r["start"]:r["start"] + r["n_frames"]]

    def __len__(self) -> int:
        return len(self.rows)
