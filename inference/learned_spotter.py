"""The optional learned spotter and its file format: a small classifier of every working frame (inside a
micro-expression, a macro-expression, or neither) on the training-free spotter's signals
(:func:`inference.facemotion.motion_signals`), trained by ``python -m training.spot_learn`` and written as JSON (the
runtime loads JSON and ONNX only, never pickles). :func:`inference.spotting.spot_signals` takes the peaks of its
expression probability when ``SpotParams(spotter=FILE)`` names one (:func:`load_spotter`).

**A package kind.** The learned spotter leaves training as the model package does: a folder (and a Hub repository
with the same files) holding ``config.json`` — the spotter's JSON document below, weights included (a few thousand
numbers: no ONNX graph is needed for a two-layer network that numpy runs) — and ``README.md``, its card with Hub
metadata (``python -m training.spot_learn`` writes both: ``OUT/spotter/``). ``python -m export.push OUT/spotter --repo
OWNER/NAME --revision v1`` publishes it and ``--spotter hf://OWNER/NAME@v1`` (or ``SpotParams(spotter=…)``) pulls it,
through the same code as a model package (:func:`inference.hub.resolve_package` with :data:`SPOTTER_FILES`). Wherever
a spotter is named, a JSON file, a package folder or a Hub reference is accepted (:func:`spotter_file`); a spotter
file written before packages existed is read as it always was.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import InputError
from .facemotion import _REGIONS, Signals, SpotParams, _shifted
from .files import write_atomic, write_json_atomic
from .hub import resolve_package
from .package import CARD_FILE, CONFIG_FILE

LEARNED_FORMAT = "microexpr-learned-spotter"
LEARNED_VERSION = 1
LEARNED_CLASSES = ("none", "micro", "macro")  # what the model says of every working frame: inside which, if any
BASE_FEATURES = (*_REGIONS, "difference", "contrast", "head")
CONTEXT_K = (-3.0, -2.0, -1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 2.0, 3.0)  # the features at these offsets (× k)
SPAN_S = 1.0  # and their highest and mean value within ± this (talking repeats; a macro-expression's hold)
LEARNED_SETTINGS = ("window_s", "work_fps", "work_size")  # the signals' settings a learned spotter is tied to


def feature_names() -> list[str]:
    """The names of :func:`frame_features`' columns, in order (a learned spotter file lists them)."""
    return ([f"{n}@{o:+g}k" for o in CONTEXT_K for n in BASE_FEATURES]
            + [f"{n}:{what}{SPAN_S:g}s" for what in ("max", "mean", "swing") for n in BASE_FEATURES])


def frame_features(sig: Signals) -> np.ndarray:
    """``(T, D)`` features of every working frame, from what the training-free spotter computed: each facial region's
    feature difference (mean of its blocks), ``F(t)`` and the head's motion in units of the recording's median
    ``F``, the contrast in units of its noise (all ``log1p``-compressed); taken at :data:`CONTEXT_K` × k frames around
    the frame, plus their highest and mean value within ± :data:`SPAN_S` and their swing there (the sum of the
    frame-to-frame changes over the highest value: a movement out and back swings a few times its height, talking
    many times). Columns: :func:`feature_names`."""
    names = np.array(sig.blocks)
    scale = max(float(np.median(sig.difference)), 1e-6)
    base = np.stack([sig.blocks_difference[:, names == r].mean(1) for r in _REGIONS]
                    + [sig.difference, sig.contrast * scale / sig.noise, sig.head], -1)
    base = np.log1p(np.maximum(base, 0.0) / scale)
    span = max(1, int(round(SPAN_S * sig.fps)))
    windows = np.lib.stride_tricks.sliding_window_view(np.pad(base, ((span, span), (0, 0)), mode="edge"),
                                                       2 * span + 1, axis=0)
    shifted = [_shifted(base, int(round(o * sig.k))) for o in CONTEXT_K]
    high = windows.max(-1)
    swing = np.abs(np.diff(windows, axis=-1)).sum(-1) / (high + 0.05)
    return np.concatenate([*shifted, high, windows.mean(-1), swing], -1).astype(np.float32)


def mlp(x: np.ndarray, layers: Sequence[tuple[np.ndarray, np.ndarray]]) -> list[np.ndarray]:
    """Every layer's output for inputs ``x``: ``x @ w + b``, ReLU between layers, softmax at the end."""
    outs = []
    for i, (w, b) in enumerate(layers):
        x = x @ w + b
        if i < len(layers) - 1:
            x = np.maximum(x, 0.0)
        else:
            x = np.exp(x - x.max(-1, keepdims=True))
            x = x / x.sum(-1, keepdims=True)
        outs.append(x)
    return outs


@dataclass(frozen=True)
class LearnedSpotter:
    """A small classifier of every working frame (inside a micro-expression, a macro-expression, or neither) on
    :func:`frame_features`: standardised features, a ReLU layer, softmax. ``python -m training.spot_learn`` trains it
    and writes it as JSON (the runtime loads JSON and ONNX only, never pickles); :func:`spot_signals` takes the peaks
    of its expression probability above ``threshold`` and grows them into intervals as the training-free spotter
    does."""

    mean: np.ndarray  # (D,)
    std: np.ndarray  # (D,)
    layers: tuple[tuple[np.ndarray, np.ndarray], ...]  # (weight (in, out), bias (out,)) per layer
    threshold: float = 0.5
    settings: dict = field(default_factory=dict)  # LEARNED_SETTINGS the signals were computed with
    info: dict = field(default_factory=dict)  # how it was trained (dataset, subjects, videos, figures)

    def probabilities(self, sig: Signals) -> np.ndarray:
        """``(T, 3)`` probabilities of :data:`LEARNED_CLASSES` for every working frame."""
        return mlp((frame_features(sig) - self.mean) / self.std, self.layers)[-1]

    def expression(self, sig: Signals) -> np.ndarray:
        """``(T,)`` probability that the frame is inside an expression (micro or macro)."""
        return 1.0 - self.probabilities(sig)[:, 0]

    def to_json(self) -> dict:
        return {"format": LEARNED_FORMAT, "version": LEARNED_VERSION, "classes": list(LEARNED_CLASSES),
                "features": feature_names(), "settings": dict(self.settings), "threshold": float(self.threshold),
                "mean": [float(v) for v in self.mean], "std": [float(v) for v in self.std],
                "layers": [{"weight": np.asarray(w, np.float64).round(6).tolist(),
                            "bias": np.asarray(b, np.float64).round(6).tolist()} for w, b in self.layers],
                "info": self.info}

    @classmethod
    def from_json(cls, data, where: str = "the learned spotter") -> LearnedSpotter:
        """Checked: a file of another kind, another feature set or broken weights is an :class:`InputError`."""
        retrain = "train one with python -m training.spot_learn"
        if not isinstance(data, dict) or data.get("format") != LEARNED_FORMAT:
            raise InputError(f"{where} is not a learned spotter file (no \"format\": \"{LEARNED_FORMAT}\"); {retrain}")
        if data.get("version") != LEARNED_VERSION or data.get("classes") != list(LEARNED_CLASSES):
            raise InputError(f"{where} is a learned spotter of version {data.get('version')!r} with classes "
                             f"{data.get('classes')!r}; this code reads version {LEARNED_VERSION} "
                             f"({', '.join(LEARNED_CLASSES)}): {retrain}")
        if data.get("features") != feature_names():
            raise InputError(f"{where} was trained on other features than this code computes "
                             f"({len(data.get('features') or [])} against {len(feature_names())}); {retrain}")
        try:
            mean, std = (np.asarray(data[k], np.float32) for k in ("mean", "std"))
            layers = tuple((np.asarray(la["weight"], np.float32), np.asarray(la["bias"], np.float32))
                           for la in data["layers"])
            settings = {k: float(data["settings"][k]) for k in LEARNED_SETTINGS}
            threshold = float(data["threshold"])
        except (KeyError, TypeError, ValueError) as e:
            raise InputError(f"{where} is damaged: {type(e).__name__} {e}; {retrain}") from None
        width = len(feature_names())
        shapes_ok = bool(layers) and mean.shape == std.shape == (width,) and layers[-1][0].shape[-1:] == (3,)
        for w, b in layers:
            shapes_ok = shapes_ok and w.ndim == 2 and w.shape[0] == width and b.shape == (w.shape[1],)
            width = w.shape[1] if w.ndim == 2 else -1
        arrays = [mean, std, *(a for la in layers for a in la)]
        if not shapes_ok or not all(np.isfinite(a).all() for a in arrays) or not (std > 0).all():
            raise InputError(f"{where} is damaged: its weights do not fit {len(feature_names())} features → "
                             f"{len(LEARNED_CLASSES)} classes, or are not finite; {retrain}")
        if not 0 < threshold < 1:
            raise InputError(f"{where}: threshold {threshold} is not a probability between 0 and 1")
        return cls(mean, std, layers, threshold, settings, dict(data.get("info") or {}))

    def check(self, params: SpotParams, where: str = "the learned spotter") -> None:
        """The signals must be computed as they were for training: same window, working rate and size."""
        wrong = [k for k in LEARNED_SETTINGS if not math.isclose(getattr(params, k), self.settings[k])]
        if wrong:
            raise InputError(f"{where} was trained on signals with "
                             f"{', '.join(f'{k}={self.settings[k]:g}' for k in LEARNED_SETTINGS)}; these settings "
                             f"have {', '.join(f'{k}={getattr(params, k):g}' for k in wrong)}: spot with the "
                             f"file's settings (leave --window at its default) or retrain")


_LOADED: dict[tuple, LearnedSpotter] = {}


def load_spotter(path: str | Path, params: SpotParams | None = None) -> LearnedSpotter:
    """A learned spotter (a JSON file, a package folder or ``hf://OWNER/NAME@REV``: :func:`spotter_file`), read once
    per version of the file and checked against ``params``."""
    path = spotter_file(path)
    if not path.is_file():
        raise InputError(f"{path}: no such learned spotter file; python -m training.spot_learn writes one "
                         f"(OUT/spotter.json, and the package folder OUT/spotter/)")
    stat = path.stat()
    key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size)
    if key not in _LOADED:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise InputError(f"{path} is not a learned spotter file (not JSON: {e}); train one with "
                             f"python -m training.spot_learn") from None
        if len(_LOADED) >= 8:
            _LOADED.clear()
        _LOADED[key] = LearnedSpotter.from_json(data, str(path))
    spotter = _LOADED[key]
    if params is not None:
        spotter.check(params, str(path))
    return spotter


# ---------------------------------------------------------------- the learned spotter as a package

SPOTTER_FILES = (CONFIG_FILE, CARD_FILE)  # a learned spotter package: its JSON document as config.json, its card


def spotter_file(ref: str | Path) -> Path:
    """The JSON file of a learned spotter named as a file, a package folder (its ``config.json``) or a Hub reference
    ``hf://OWNER/NAME[@REV]`` (downloaded once into the Hub cache, as a model package is)."""
    if str(ref).strip().lower().startswith("hf:"):
        return resolve_package(str(ref), required=(CONFIG_FILE,)) / CONFIG_FILE
    path = Path(ref).expanduser()
    if path.is_dir():
        if not (path / CONFIG_FILE).is_file():
            raise InputError(f"{path}: not a learned spotter package ({CONFIG_FILE} missing); give the folder "
                             f"python -m training.spot_learn wrote (OUT/spotter/) or its spotter.json")
        return path / CONFIG_FILE
    return path


def is_spotter_package(folder: str | Path) -> bool:
    """Whether ``folder`` holds a learned spotter package (its ``config.json`` says so)."""
    config = Path(folder) / CONFIG_FILE
    try:
        data = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(data, dict) and data.get("format") == LEARNED_FORMAT


def write_spotter_package(folder: str | Path, spotter: LearnedSpotter, card: str) -> Path:
    """The package folder: ``config.json`` (:meth:`LearnedSpotter.to_json`) and ``README.md`` (``card``: Markdown
    with a YAML metadata block, as the Hub wants), each written atomically, the card first."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    data = card.encode("utf-8")
    write_atomic(folder / CARD_FILE, lambda f: f.write(data))
    write_json_atomic(folder / CONFIG_FILE, spotter.to_json(), indent=None)
    return folder
