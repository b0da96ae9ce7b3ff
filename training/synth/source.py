"""Where synthetic clips come from: the interface the layout writers call.

A layout writer (one per dataset, in ``training/datasets/<name>.py``) decides subjects, clip ids, file
names and annotation sheets; a :class:`ClipSource` renders the pictures. :class:`FlatSource` renders
tiny plain frames, for tests of the layouts alone; ``training.synth.faces.FaceSource`` renders real
faces with subtle, asymmetric, AU-like motion.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass
class SynthClip:
    frames: np.ndarray  # (T, H, W, 3) uint8 RGB
    onset: int  # 0-based frame indices within ``frames``
    apex: int
    offset: int
    label: str  # what was rendered (the emotion or action asked for)
    side: str = "none"  # "left" / "right": the side of the image that moves more; "none" for actions
    face_box: tuple[int, int, int, int] | None = None  # x0, y0, x1, y1 of the face (for "cropped" layouts)
    aus: tuple[int, ...] = ()  # the action units rendered (faces), for the sheets' "Action Units" cell


class ClipSource(Protocol):
    frame_size: tuple[int, int]  # (height, width)

    def micro(self, subject: int, emotion: str, n_frames: int, rng: np.random.Generator) -> SynthClip:
        """A micro-expression (a few pixels of motion) of ``emotion`` on subject ``subject``'s face."""

    def macro(self, subject: int, emotion: str, n_frames: int, rng: np.random.Generator) -> SynthClip:
        """A macro-expression (larger, longer motion), for the CK+ and Oulu-CASIA layouts."""

    def action(self, action: str, n_frames: int, rng: np.random.Generator) -> SynthClip:
        """A short non-face action clip, for the UCF101 layout."""


def envelope(n_frames: int, rng: np.random.Generator, micro: bool = True) -> tuple[int, int, int, np.ndarray]:
    """Onset, apex, offset frame indices and the motion amplitude (0…1) of every frame (at least 3)."""
    n = int(n_frames)
    if n < 3:
        raise ValueError(f"a synthetic clip needs at least 3 frames, got {n_frames}")
    onset = int(rng.integers(0, max(1, n // 6)))
    offset = int(n - 1 - rng.integers(0, max(1, n // 6)))
    apex = int(round(onset + (offset - onset) * rng.uniform(0.35, 0.6)))
    apex = min(max(apex, onset + 1), offset - 1) if offset - onset >= 2 else onset
    t = np.arange(n, dtype=np.float64)
    amp = np.zeros(n)
    rise = (t >= onset) & (t <= apex)
    fall = (t > apex) & (t <= offset)
    if apex > onset:
        amp[rise] = 0.5 - 0.5 * np.cos(np.pi * (t[rise] - onset) / (apex - onset))
    amp[t == apex] = 1.0
    if offset > apex:
        amp[fall] = 0.5 + 0.5 * np.cos(np.pi * (t[fall] - apex) / (offset - apex))
    if not micro:  # a macro-expression holds its apex (CK+ sequences end at the apex)
        amp[t >= apex] = 1.0
    return onset, apex, offset, amp


class FlatSource:
    """Plain frames whose grey level follows the motion envelope: fast, for layout tests only."""

    def __init__(self, frame_size: tuple[int, int] = (8, 8)):
        self.frame_size = tuple(frame_size)

    def _clip(self, label: str, n_frames: int, rng: np.random.Generator, micro: bool, side: str) -> SynthClip:
        onset, apex, offset, amp = envelope(n_frames, rng, micro)
        h, w = self.frame_size
        frames = np.empty((len(amp), h, w, 3), np.uint8)
        frames[:] = (100 + 50 * amp)[:, None, None, None].astype(np.uint8)
        return SynthClip(frames, onset, apex, offset, label, side, face_box=(0, 0, w, h))

    def micro(self, subject, emotion, n_frames, rng):
        return self._clip(emotion, n_frames, rng, True, str(rng.choice(["left", "right"])))

    def macro(self, subject, emotion, n_frames, rng):
        return self._clip(emotion, n_frames, rng, False, "none")

    def action(self, action, n_frames, rng):
        return self._clip(action, n_frames, rng, True, "none")
