"""A synthetic SMIC-HS cache written straight from the face renderer, without running a face detector.

:class:`training.synth.faces.FaceSource` knows each subject's five landmarks exactly, so the serving crop
(:func:`inference.face.output_crop_matrix` + :func:`inference.face.warp`, the geometry ``training.prepare`` gets from
MTCNN) is taken from the true landmarks. The GPU check needs no facenet-pytorch for its training and export steps, and
the cache is the format ``training.prepare`` writes (:class:`training.cache.CacheWriter`), marked synthetic.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from inference.face import CropSettings, output_crop_matrix, warp

from ..cache import CacheWriter
from ..labels import PROTOCOLS
from ..synth.faces import FaceSource


def synthetic_smic_cache(out: Path, subjects: list[int], clips_per_class: int, frames: tuple[int, int], crop: int,
                         frame_size: tuple[int, int] = (480, 640), seed: int = 0) -> Path:
    """Write a cache of ``clips_per_class`` micro-expressions of each SMIC class (negative, positive, surprise) for
    every subject, ``frames`` = (min, max) frames each, recorded at ``frame_size`` like SMIC-HS's 640×480 and cropped
    to ``crop`` px. The same arguments write the same cache. Returns ``out``."""
    settings = CropSettings(size=crop)
    writer = CacheWriter(out, {"dataset": "smic", "variant": "synthetic", "root": "rendered by training.gpu_check",
                               "size": crop, "margin": settings.margin, "faces": True, "crop": settings.to_dict(),
                               "synthetic": True, "inputs": {"kind": "rgb"}})
    done = writer.open()
    source = FaceSource(frame_size, seed=seed)
    rng = np.random.default_rng(seed)
    for subject in subjects:
        m = output_crop_matrix(source.identity(subject).landmarks, settings)
        for label in PROTOCOLS["smic"]:
            for k in range(clips_per_class):
                name = f"s{subject:02d}_{label}_{k}"
                n = int(rng.integers(frames[0], frames[1] + 1))
                clip = source.micro(subject, label, n, rng)  # drawn even when done: the same rng sequence on resume
                if name in done:
                    continue
                row = {"dataset": "smic", "subject": subject, "clip": name, "label": label, "composite": "",
                       "onset": clip.onset, "apex": clip.apex, "offset": clip.offset, "fps": 100.0, "faces_seen": 1,
                       "mode": "known landmarks", "source": "synthetic"}
                writer.add(row, np.stack([warp(f, m, crop) for f in clip.frames]))
    return out
