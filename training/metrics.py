"""UF1, UAR and WAR on predictions pooled over all LOSO folds (the composite protocol of MEGC2019).

- **UF1**: the mean over classes of F1 = 2·TP / (2·TP + FP + FN), counts pooled over every fold;
- **UAR**: the mean over classes of recall TP / (TP + FN);
- **WAR**: plain accuracy.

Classes that never occur in the ground truth are left out of UF1 and UAR (their recall is undefined).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def confusion(y_true: Sequence[int], y_pred: Sequence[int], n_classes: int) -> np.ndarray:
    """Rows: true class; columns: predicted class."""
    m = np.zeros((n_classes, n_classes), np.int64)
    for t, p in zip(y_true, y_pred):
        m[int(t), int(p)] += 1
    return m


def scores(y_true: Sequence[int], y_pred: Sequence[int], n_classes: int) -> dict:
    """UF1, UAR, WAR and the per-class F1 / recall / support from pooled predictions."""
    m = confusion(y_true, y_pred, n_classes)
    tp = np.diag(m).astype(float)
    support = m.sum(axis=1).astype(float)
    predicted = m.sum(axis=0).astype(float)
    present = support > 0
    f1 = np.divide(2 * tp, support + predicted, out=np.zeros(n_classes), where=(support + predicted) > 0)
    recall = np.divide(tp, support, out=np.zeros(n_classes), where=present)
    total = support.sum()
    return {
        "uf1": float(f1[present].mean()) if present.any() else 0.0,
        "uar": float(recall[present].mean()) if present.any() else 0.0,
        "war": float(tp.sum() / total) if total else 0.0,
        "n": int(total),
        "per_class": {"f1": f1.tolist(), "recall": recall.tolist(), "support": support.astype(int).tolist()},
        "confusion": m.tolist(),
    }
