"""Test material made from real public-domain faces (scikit-image's astronaut: NASA, public domain).

The placed, shaken clips themselves (:func:`animate`) live in :mod:`training.synth.still`, which also builds the
bundled example clip; what only the tests need is here."""

from __future__ import annotations

import math

import cv2
import numpy as np

from training.synth.still import animate, astronaut, placement  # noqa: F401 — animate, astronaut: for the tests


def apply(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
    return np.asarray(pts, np.float64) @ m[:, :2].T + m[:, 2]


def eye_angle_deg(lm: np.ndarray) -> float:
    d = lm[1] - lm[0]
    return math.degrees(math.atan2(d[1], d[0]))


def midline_x(lm: np.ndarray) -> float:
    """x of the facial midline as the aligner defines it, for a face whose eye line is level."""
    return float(((lm[0] + lm[1]) / 2 + (lm[3] + lm[4]) / 2)[0] / 2)


def two_faces(image: np.ndarray, frame_size=(480, 720)) -> tuple[np.ndarray, np.ndarray]:
    """One frame with two copies of the face: a big one on the left, a smaller head on the right.
    Returns the frame and the big copy's placement matrix."""
    h, w = frame_size
    big = placement(angle_deg=8, scale=1.1, shift=(-150, 0), frame_size=(h, w))
    small = placement(angle_deg=-5, scale=0.7, shift=(190, 30), frame_size=(h, w))
    canvas = cv2.warpAffine(image, big, (w, h), borderMode=cv2.BORDER_CONSTANT, borderValue=(200, 200, 200))
    mask = np.zeros(image.shape[:2], np.uint8)
    mask[10:260, 100:350] = 255  # the small copy: just the head
    small_img = cv2.warpAffine(image, small, (w, h))
    small_mask = cv2.warpAffine(mask, small, (w, h)) > 0
    canvas[small_mask] = small_img[small_mask]
    return canvas, big


class DyingPreparer:
    """Stands in for ``inference.preprocess.Preparer`` in worker processes, to test how the batch command's pool
    survives them: the process exits on clips named ``crash*``, raises on ``bad*``, takes a minute on ``slow*`` (a
    long recording), and otherwise returns a small prepared clip filled with the length of the file's name."""

    def __call__(self, path, fps=None):
        import os
        from pathlib import Path

        name = Path(path).name
        if name.startswith("crash"):
            os._exit(3)
        if name.startswith("bad"):
            raise ValueError(f"{name} is unreadable")
        if name.startswith("slow"):
            import time

            time.sleep(60)
        from inference.preprocess import PreparedClip

        return PreparedClip(np.full((2, 4, 4, 3), len(name), np.uint8), {"faces_seen": 1}, {"decode": 0.0}, str(path),
                            None, input_frames=2, input_size=(4, 4))


def calibrated(predictor, probs) -> np.ndarray:
    """``probs`` through the package's temperature (inference.calibration), as Predictor.classify gives them; as they
    are for a package without calibration."""
    cal = predictor.package.calibration
    return np.asarray(probs) if cal is None else cal.apply(np.asarray(probs))
