"""Probabilities you can trust: temperature scaling fitted on out-of-subject predictions, its reliability figures,
and the confidence floor below which a verdict is called "uncertain".

A network's softmax is usually over-confident (or, trained on few subjects with heavy regularisation, under-
confident). Temperature scaling (Guo et al., ICML 2017) divides the logits by one number ``T`` fitted to minimise
the negative log-likelihood (NLL) of held-out predictions; it never changes the top class. Here the held-out
predictions are *honest*: a LOSO run's pooled out-of-fold probabilities (``predictions.csv``: every clip scored by the
model of the fold that held its subject out, so no clip is scored by a model that saw its subject).

The graph outputs probabilities ``p = softmax(z)``; ``softmax(log p / T) = softmax(z / T)``, so ``T`` is applied to
the probabilities (:meth:`Calibration.apply`) — in one place, :meth:`inference.runtime.Predictor.classify`, the path
every entry point takes (``Recogniser``, the batch command, the demo, ``predict``). A fold package's per-fold
probabilities get the same ``T`` (it was fitted on single folds' held-out predictions); the fused average is the
average of the calibrated folds.

- :func:`fit_temperature` — ``T`` minimising the NLL (golden-section search on ``log T`` in ``[0.05, 20]``; the NLL
  of temperature scaling is unimodal in ``log T``).
- :func:`ece` — expected calibration error: confidences (top probability) in ``bins`` equal-width bins, the
  clip-weighted mean of ``|accuracy − mean confidence|`` per bin; :func:`reliability` gives the bins themselves (the
  reliability diagram's bars).
- :class:`Calibration` — what a package records (``config.json`` ``"calibration"``): ``T``, the ECE and NLL before
  and after, the reliability bins, the confidence floor and what it means on the held-out predictions, where they
  came from. numpy only (the runtime imports this module).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .errors import InputError

BINS = 10
DEFAULT_FLOOR = 0.5  # below this calibrated confidence a verdict is "uncertain": wrong about as often as right
FIGURE_FILE = "reliability.png"  # the reliability diagram beside config.json (made at export time)
T_RANGE = (0.05, 20.0)


def _check(probs, labels) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(probs, np.float64)
    y = np.asarray(labels)
    if p.ndim != 2 or p.shape[1] < 2 or len(p) == 0:
        raise InputError(f"calibration needs probabilities (N, K) with K >= 2 and N >= 1, got shape {p.shape}")
    if y.shape != (len(p),) or not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() >= p.shape[1]:
        raise InputError(f"calibration needs one class index per row (0 … {p.shape[1] - 1}), got {y!r}")
    if not np.all(np.isfinite(p)) or p.min() < 0:
        raise InputError("calibration needs finite, non-negative probabilities")
    return p, y.astype(np.int64)


def scale(probs, temperature: float) -> np.ndarray:
    """``softmax(log p / T)`` along the last axis (float32 in, float32 out; any leading shape)."""
    p = np.asarray(probs, np.float64)
    z = np.log(np.clip(p, 1e-12, None)) / float(temperature)
    z -= z.max(-1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(-1, keepdims=True)).astype(np.float32)


def nll(probs, labels) -> float:
    """Mean negative log-likelihood of the true classes."""
    p, y = _check(probs, labels)
    return float(-np.mean(np.log(np.clip(p[np.arange(len(p)), y], 1e-12, None))))


def fit_temperature(probs, labels) -> float:
    """The temperature ``T`` (in ``T_RANGE``) that minimises the NLL of ``scale(probs, T)``."""
    p, y = _check(probs, labels)
    f = lambda lt: nll(scale(p, math.exp(lt)), y)  # noqa: E731
    lo, hi = math.log(T_RANGE[0]), math.log(T_RANGE[1])
    g = (math.sqrt(5) - 1) / 2
    a, b = hi - g * (hi - lo), lo + g * (hi - lo)
    fa, fb = f(a), f(b)
    for _ in range(80):
        if fa < fb:
            hi, b, fb = b, a, fa
            a = hi - g * (hi - lo)
            fa = f(a)
        else:
            lo, a, fa = a, b, fb
            b = lo + g * (hi - lo)
            fb = f(b)
    return float(math.exp((lo + hi) / 2))


def reliability(probs, labels, bins: int = BINS) -> list[dict]:
    """The reliability diagram's bins: for each of ``bins`` equal-width confidence bins, its range, how many clips,
    their mean confidence and accuracy (None for an empty bin)."""
    p, y = _check(probs, labels)
    conf, right = p.max(1), p.argmax(1) == y
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, bins - 1)
    out = []
    for b in range(bins):
        m = which == b
        out.append({"lo": round(float(edges[b]), 4), "hi": round(float(edges[b + 1]), 4), "clips": int(m.sum()),
                    "confidence": round(float(conf[m].mean()), 4) if m.any() else None,
                    "accuracy": round(float(right[m].mean()), 4) if m.any() else None})
    return out


def ece(probs, labels, bins: int = BINS) -> float:
    """Expected calibration error (equal-width bins, weighted by clips)."""
    n = len(np.asarray(probs))
    return float(sum(b["clips"] / n * abs(b["accuracy"] - b["confidence"]) for b in reliability(probs, labels, bins)
                     if b["clips"]))


@dataclass(frozen=True)
class Calibration:
    """A package's calibration (``config.json`` ``"calibration"``; see the module docstring)."""

    temperature: float
    floor: float = DEFAULT_FLOOR  # calibrated confidence below which a verdict is "uncertain"
    ece_before: float | None = None
    ece_after: float | None = None
    nll_before: float | None = None
    nll_after: float | None = None
    clips: int = 0  # held-out predictions it was fitted on
    bins: int = BINS
    reliability: dict = field(default_factory=dict)  # {"before": [bins], "after": [bins]}
    below_floor: dict = field(default_factory=dict)  # held-out: share of clips below the floor, accuracy below/above
    source: str = ""  # where the held-out predictions came from
    figure: str | None = None  # the reliability diagram's file in the package, when written

    def __post_init__(self):
        if not (isinstance(self.temperature, (int, float)) and T_RANGE[0] <= self.temperature <= T_RANGE[1]):
            raise InputError(f"a calibration temperature must be a number in {T_RANGE}, got {self.temperature!r}")
        if not 0 <= self.floor < 1:
            raise InputError(f"the confidence floor must be in [0, 1), got {self.floor!r}")

    @classmethod
    def fit(cls, probs, labels, source: str = "", floor: float = DEFAULT_FLOOR, bins: int = BINS) -> Calibration:
        """Fit on held-out predictions ``(N, K)`` with their true classes ``(N,)``."""
        p, y = _check(probs, labels)
        t = fit_temperature(p, y)
        after = scale(p, t)
        conf, right = after.max(1), after.argmax(1) == y
        low = conf < floor
        below = {"share": round(float(low.mean()), 4),
                 "accuracy_below": round(float(right[low].mean()), 4) if low.any() else None,
                 "accuracy_at_or_above": round(float(right[~low].mean()), 4) if (~low).any() else None}
        return cls(temperature=round(t, 4), floor=float(floor), ece_before=round(ece(p, y, bins), 4),
                   ece_after=round(ece(after, y, bins), 4), nll_before=round(nll(p, y), 4),
                   nll_after=round(nll(after, y), 4), clips=int(len(p)), bins=int(bins),
                   reliability={"before": reliability(p, y, bins), "after": reliability(after, y, bins)},
                   below_floor=below, source=str(source))

    def apply(self, probs) -> np.ndarray:
        """Calibrated probabilities (any leading shape, classes last)."""
        return scale(probs, self.temperature)

    def uncertain(self, probs) -> bool:
        """Whether a calibrated prediction's top probability is below the floor."""
        return bool(float(np.max(probs)) < self.floor)

    def to_json(self) -> dict:
        return {"temperature": self.temperature, "floor": self.floor, "ece_before": self.ece_before,
                "ece_after": self.ece_after, "nll_before": self.nll_before, "nll_after": self.nll_after,
                "clips": self.clips, "bins": self.bins, "below_floor": self.below_floor, "source": self.source,
                "figure": self.figure, "reliability": self.reliability}

    @classmethod
    def from_json(cls, data, where: str = "config.json") -> Calibration:
        if not isinstance(data, dict) or "temperature" not in data:
            raise InputError(f"{where}: 'calibration' must be an object with a 'temperature', got {data!r}; "
                             f"re-export the model (python -m export)")
        try:
            return cls(temperature=float(data["temperature"]), floor=float(data.get("floor", DEFAULT_FLOOR)),
                       ece_before=data.get("ece_before"), ece_after=data.get("ece_after"),
                       nll_before=data.get("nll_before"), nll_after=data.get("nll_after"),
                       clips=int(data.get("clips", 0)), bins=int(data.get("bins", BINS)),
                       reliability=dict(data.get("reliability") or {}), below_floor=dict(data.get("below_floor") or {}),
                       source=str(data.get("source") or ""), figure=data.get("figure"))
        except (TypeError, ValueError) as e:
            raise InputError(f"{where}: calibration: {e}; re-export the model (python -m export)") from None


def fold_spread(fold_probs) -> np.ndarray | None:
    """Per class, the standard deviation of the folds' probabilities ``(F, K)`` (None without folds)."""
    if fold_probs is None:
        return None
    f = np.asarray(fold_probs, np.float64)
    return f.std(axis=0).astype(np.float32) if f.ndim == 2 and len(f) > 1 else None
