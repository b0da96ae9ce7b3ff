"""A synthetic flow-image set in the published MEGC2019 layout (:mod:`training.datasets.flowset`), for the tests and
for anyone without the licensed data: ``python -m training.synth --layout flowset --out DIR``.

Each of the three source datasets (SMIC-HS, CASME II, SAMM) gets ``subjects`` people of its own (identities drawn
from a per-dataset seed, subject ids in the dataset's style: s01, sub01, 006) and ``clips_per_subject`` clips whose
labels cycle negative, positive, surprise. A clip is a rendered micro-expression on the public-domain face
(:class:`training.synth.faces.FaceSource`); its onset and apex frames are cut to the rendered face box, resized to
``crop`` pixels, and turned into a ``size``² flow image (:func:`inference.motion.flow_image`: TV-L1 flow and optical
strain, min-max scaled per channel as the published images are). The face box stands in for the published sets'
face crop: no face detector runs, so a set is quick to make.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from ..datasets.flowset import CLASSES, write_set
from .faces import FaceSource

DATASETS = ("smic", "casme2", "samm")


def subject_id(dataset: str, n: int) -> str:
    """A subject id in the dataset's own style: SMIC s01, CASME II sub01, SAMM 006 (SAMM numbers start at 6)."""
    return {"smic": f"s{n:02d}", "casme2": f"sub{n:02d}", "samm": f"{n + 5:03d}"}[dataset]


def clip_id(dataset: str, sub: str, label: str, k: int) -> str:
    """A clip name in the dataset's style (s01_ne_01, EP02_01f, 006_1_2)."""
    if dataset == "smic":
        return f"{sub}_{ {'negative': 'ne', 'positive': 'po', 'surprise': 'sur'}[label]}_{k:02d}"
    if dataset == "casme2":
        return f"EP{k:02d}_{CLASSES.index(label) + 1:02d}f"
    return f"{sub}_{CLASSES.index(label) + 1}_{k}"


def write_flowset(out: str | Path, subjects: int = 2, clips_per_subject: int = 3, seed: int = 0,
                  frame_size: tuple[int, int] = (240, 320), n_frames: tuple[int, int] = (10, 14), crop: int = 64,
                  size: int = 28, method: str = "tvl1", on_clip=None) -> list[dict]:
    """Write the set under ``out``; returns its clips (dataset, sub, clip, label, image). ``on_clip()`` is called
    after each clip (a progress bar's update)."""
    from inference.motion import FlowScaling, flow_image

    scaling = FlowScaling("minmax")
    clips = []
    for d, dataset in enumerate(DATASETS):
        source = FaceSource(frame_size, seed=seed * 10 + d)
        rng = np.random.default_rng([seed, d])
        for n in range(1, subjects + 1):
            sub = subject_id(dataset, n)
            for k in range(clips_per_subject):
                label = CLASSES[k % len(CLASSES)]
                clip = source.micro(n, label, int(rng.integers(n_frames[0], n_frames[1] + 1)), rng)
                x0, y0, x1, y1 = clip.face_box
                onset, apex = (cv2.resize(clip.frames[i][y0:y1, x0:x1], (crop, crop), interpolation=cv2.INTER_AREA)
                               for i in (clip.onset, clip.apex))
                image = flow_image(onset, apex, size, method, scaling)
                clips.append({"dataset": dataset, "sub": sub, "clip": clip_id(dataset, sub, label, k + 1),
                              "label": label, "image": image})
                if on_clip is not None:
                    on_clip()
    write_set(out, clips)
    return clips
