"""A real face placed in a frame by a known similarity transform, optionally shaken: clips whose true geometry
is known exactly.

The face is NASA's astronaut portrait (scikit-image's ``astronaut``, public domain), as in :mod:`.faces`. The
face-alignment tests compose their clips (shifts, rotations, scales, jitter) from it, and
``tools/make_examples.py`` builds the bundled example ``examples/astronaut.mp4`` with it.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from .faces import base_face

FACE_CENTRE = (224.0, 120.0)  # roughly between the astronaut's eyes and mouth, in skimage.data.astronaut()


def astronaut() -> np.ndarray:
    """The astronaut portrait, uint8 (512, 512, 3) RGB; a copy the caller may change."""
    return base_face().copy()


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
