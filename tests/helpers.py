"""Test material made from real public-domain faces (scikit-image's astronaut: NASA, public domain)."""

from __future__ import annotations

import math

import cv2
import numpy as np

FACE_CENTRE = (224.0, 120.0)  # roughly between the astronaut's eyes and mouth, in skimage.data.astronaut()


def astronaut() -> np.ndarray:
    from skimage import data

    return data.astronaut()


def placement(angle_deg: float = 0.0, scale: float = 1.0, shift=(0.0, 0.0), frame_size=(480, 640),
              base_scale: float = 1.5, centre=FACE_CENTRE) -> np.ndarray:
    """2×3 matrix that puts the source face centre at the frame centre + shift, rotated (counter-clockwise
    in the image, degrees) and scaled about it."""
    h, w = frame_size
    s = base_scale * scale
    a = math.radians(angle_deg)
    c, si = math.cos(a) * s, math.sin(a) * s
    lin = np.array([[c, si], [-si, c]])
    target = np.array([(w - 1) / 2 + shift[0], (h - 1) / 2 + shift[1]])
    return np.hstack([lin, (target - lin @ np.asarray(centre))[:, None]])


def animate(image: np.ndarray, n_frames: int, angle: float = 0.0, scale: float = 1.0, shift=(0.0, 0.0),
            jitter: float = 0.0, frame_size=(480, 640), seed: int = 0, base_scale: float = 1.5):
    """A clip of ``image`` placed by :func:`placement`, shaken by N(0, jitter) px per frame.

    Returns (frames uint8 (T,H,W,3), matrices (T,2,3) source → frame)."""
    rng = np.random.default_rng(seed)
    h, w = frame_size
    frames, mats = [], []
    for _ in range(n_frames):
        d = rng.normal(0, jitter, 2) if jitter else np.zeros(2)
        m = placement(angle, scale, (shift[0] + d[0], shift[1] + d[1]), frame_size, base_scale)
        frames.append(cv2.warpAffine(image, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT))
        mats.append(m)
    return np.stack(frames), np.stack(mats)


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
    """Stands in for ``inference.runtime.Preparer`` in worker processes, to test how the batch command's pool
    survives them: the process exits on clips named ``crash*``, raises on ``bad*``, and otherwise returns a small
    clip filled with the length of the file's name."""

    def __call__(self, path, fps=None):
        import os
        from pathlib import Path

        name = Path(path).name
        if name.startswith("crash"):
            os._exit(3)
        if name.startswith("bad"):
            raise ValueError(f"{name} is unreadable")
        return np.full((2, 4, 4, 3), len(name), np.uint8), {"faces_seen": 1}, {"decode": 0.0}
