"""UF1, UAR and WAR on predictions pooled over all LOSO folds (the composite protocol of MEGC2019), with
scikit-learn, as MEB and most micro-expression code compute them.

- **UF1**: the mean over classes of F1 = 2·TP / (2·TP + FP + FN), counts pooled over every fold;
- **UAR**: the mean over classes of recall TP / (TP + FN);
- **WAR**: plain accuracy.

Classes that never occur in the ground truth are left out of UF1 and UAR (their recall is undefined); their
per-class F1 and recall are reported as 0.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def confusion(y_true: Sequence[int], y_pred: Sequence[int], n_classes: int) -> np.ndarray:
    """Rows: true class; columns: predicted class (class indices ``0 … n_classes − 1``)."""
    from sklearn.metrics import confusion_matrix

    if len(y_true) == 0:
        return np.zeros((n_classes, n_classes), np.int64)
    return confusion_matrix(y_true, y_pred, labels=list(range(n_classes))).astype(np.int64)


def scores(y_true: Sequence[int], y_pred: Sequence[int], n_classes: int) -> dict:
    """UF1, UAR, WAR and the per-class F1 / recall / support from pooled predictions."""
    from sklearn.metrics import f1_score, recall_score

    labels = list(range(n_classes))
    m = confusion(y_true, y_pred, n_classes)
    support = m.sum(axis=1)
    present = support > 0
    if present.any():
        f1 = f1_score(y_true, y_pred, labels=labels, average=None, zero_division=0)
        recall = recall_score(y_true, y_pred, labels=labels, average=None, zero_division=0)
    else:
        f1 = recall = np.zeros(n_classes)
    total = int(support.sum())
    return {
        "uf1": float(f1[present].mean()) if present.any() else 0.0,
        "uar": float(recall[present].mean()) if present.any() else 0.0,
        "war": float(np.trace(m) / total) if total else 0.0,
        "n": total,
        "per_class": {"f1": [float(x) for x in f1], "recall": [float(x) for x in recall],
                      "support": support.astype(int).tolist()},
        "confusion": m.tolist(),
    }
