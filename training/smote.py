"""Extended SMOTE for clips (Wu et al.; the Décalcomanie paper's oversampling), leak-free.

A synthetic clip is ``x_new = λ·x1 + (1 − λ)·x2`` element by element, with ``λ ~ U(0, 1)`` and ``x1``, ``x2``
two clips of the same class. Each class is topped up to the majority class's count. Both clips are drawn
**only from the training subjects of the current fold**: the reference code drew them from the whole
dataset, so the held-out subject's clips leaked into training.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Sequence

import numpy as np


@dataclass(frozen=True)
class SmotePair:
    first: int  # indices into the dataset's clip list
    second: int
    lam: float
    label: object


def smote_plan(labels: Sequence, subjects: Sequence[int], train_subjects, rng: np.random.Generator) -> list[SmotePair]:
    """The synthetic clips that balance the classes of the clips whose subject is in ``train_subjects``."""
    if len(labels) != len(subjects):
        raise ValueError("labels and subjects must have one entry per clip")
    train_subjects = set(int(s) for s in train_subjects)
    by_class: dict[object, list[int]] = defaultdict(list)
    for i, (y, s) in enumerate(zip(labels, subjects)):
        if int(s) in train_subjects:
            by_class[y].append(i)
    if not by_class:
        return []
    target = max(len(v) for v in by_class.values())
    plan = []
    for y in sorted(by_class, key=str):
        members = by_class[y]
        for _ in range(target - len(members)):
            a, b = rng.choice(len(members), size=2, replace=len(members) < 2)
            plan.append(SmotePair(members[int(a)], members[int(b)], float(rng.uniform(0.0, 1.0)), y))
    return plan


def smote_clip(x1: np.ndarray, x2: np.ndarray, lam: float) -> np.ndarray:
    """``λ·x1 + (1 − λ)·x2``; uint8 clips are rounded back to uint8. Clips must have the same shape
    (resample them to the model's frame count first)."""
    if x1.shape != x2.shape:
        raise ValueError(f"SMOTE needs clips of one shape, got {x1.shape} and {x2.shape}")
    mixed = lam * x1.astype(np.float32) + (1.0 - lam) * x2.astype(np.float32)
    if np.issubdtype(x1.dtype, np.integer):
        return np.clip(np.rint(mixed), 0, 255).astype(x1.dtype)
    return mixed.astype(x1.dtype)
