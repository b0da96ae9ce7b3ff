"""Experiment configs: a YAML file of plain values, a ``base:`` file it extends, and ``key=value`` overrides.

Every key has a default here, so a config names only what differs. Overrides take dotted keys
(``train.epochs=3``) or bare ones when the name is unique (``epochs=3``); values are read as YAML
(``milestones=[1,2]``, ``smote=true``, ``train_views=OL``).

:func:`load_config` casts and checks every value once (:func:`check_config`), so the code that uses a config reads
``cfg["train"]["epochs"]`` as an int, ``cfg["train"]["lr"]`` as a number, ``cfg["train"]["flip"]`` as a bool. A
whole number given for a real-valued key stays as written (``rotation: 30`` and ``rotation: 30.0`` mean the same),
so the run folder's ``config.yaml`` reads as the config did.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path

import yaml

from inference.errors import InputError
from inference.inputs import RAW_NORMALISATION
from inference.inputs import names as input_kinds
from inference.views import parse_views

from .labels import PROTOCOLS

# Named input normalisations a config can choose (model.normalisation), replacing the one the starting weights or the
# input kind give: "raw" feeds the stored uint8 values as float 0–255, nothing subtracted or divided (STSTNet's
# authors' port on the published composite flow set).
NORMALISATIONS: dict[str, dict] = {"raw": RAW_NORMALISATION}

CLASS_WEIGHTS = ("none", "balanced")  # train.class_weights: the loss's weight per class

DEFAULTS: dict = {
    "name": None,  # the run's name (default: the config file's name)
    "out": None,  # run folder (default: runs/<name>)
    "data": {
        "caches": [],  # aligned caches from `python -m training.prepare` (three for the composite protocol)
        "protocol": None,  # smic | casme2 | samm | composite | all (every label in the caches; pre-training)
        "inputs": "rgb",  # what the caches hold: rgb | flow_image | flow_clip | magnified (others are refused)
    },
    "model": {
        "name": "resnext3d_101",
        "kwargs": {},
        "pretrained": None,  # a local weights file (kenshohara .pth, torchvision state dict, or ours)
        "init": "file",  # file: load `pretrained` as it is | inflate2d: ImageNet 2D ResNet weights inflated to 3D
        "normalisation": None,  # None: the starting weights' or the input kind's | raw: 0–255 pixels as they come
        "stream_pretrained": None,  # models with streams (late_fusion): {stream: local weights file}, e.g. {grey: P}
    },
    "scheme": {
        "type": "sbml",  # sbml | fsb
        "train_views": "OLR",
        "view_weights": None,  # default: 1 view 1.0; 2 views 0.5/0.5; 3 views 0.4/0.4/0.2 (the paper's)
        "test_views": None,  # SBML: any of O, OL, OR, LR, OLR (default: the training views); FSB: the same
        "fsb_head": "linear",  # linear | mlp
        "fsb_hidden": 256,
    },
    "train": {
        "epochs": 100,
        "lr": 1.0e-4,
        "milestones": [30, 60, 80],
        "gamma": 0.1,
        "batch_size": 10,
        "n_frames": 34,
        "size": 112,
        "rotation": 30.0,
        "scale": 1.1,
        "flip": True,
        "balanced": False,  # class-balanced sampling
        "order": "shuffled",  # shuffled: a fresh random order every epoch | by_class: the same order every epoch, the
        # clips grouped by class (as an unshuffled loader reads class folders: STSTNet's authors' port)
        "smote": False,  # extended SMOTE from the fold's training subjects
        "class_weights": "none",  # none | balanced: class c's loss weighted n / (K · n_c), counted on the fold's own
        # training clips (UF1 and UAR are means over the classes; nothing is counted on the held-out subject)
        "selection": "last",  # last | test_set_best (the reference code's: picks the epoch on the test subject)
        "oracle": False,  # also record each epoch's test-subject predictions: reports add the labelled oracle figure
        "device": "auto",
        "amp": "auto",  # bf16 | none | auto (bf16 on CUDA)
        "channels_last": "auto",
        "seed": 0,
        "checkpoint_every": 1,  # epochs between resumable checkpoints
        "eval_batch_size": 32,
        "fold_batch": False,  # LOSO: train every fold at once in one module (training.foldbatch; STSTNet)
        "au_threshold": 0.5,  # AU head: a probability, or train_f1 (each AU's best-F1 threshold on the training clips)
    },
    "provenance": [],  # the N-step chain that led here (filled in by training.nstep; kept in every checkpoint)
}


def merge(base: dict, update: dict, where: str) -> dict:
    """``update`` over a copy of ``base``, section by section; a key ``base`` does not know is an InputError."""
    out = copy.deepcopy(base)
    for k, v in (update or {}).items():
        if k == "base":
            continue
        if k not in base:
            raise InputError(f"{where}: unknown key {k!r}; known keys: {', '.join(base)}")
        # an empty default mapping (model.kwargs) is free-form: the file's mapping is taken as it is
        nested = isinstance(base[k], dict) and bool(base[k]) and isinstance(v, dict)
        out[k] = merge(base[k], v, f"{where}.{k}") if nested else v
    return out


def read_yaml(path: Path, seen: tuple = ()) -> dict:
    """A YAML config file as a dict, with the file its ``base:`` names (relative to it) underneath."""
    if not path.is_file():
        raise InputError(f"{path}: no such config file")
    if path.resolve() in seen:
        raise InputError(f"{path}: a config's base chain loops back to itself")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise InputError(f"{path}: not valid YAML ({e})") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: a config is a mapping of keys to values")
    if data.get("base"):
        parent = read_yaml((path.parent / data["base"]).resolve(), seen + (path.resolve(),))
        return deep_update(parent, data)
    return data


def deep_update(base: dict, update: dict) -> dict:
    """``update`` over a copy of ``base``, nested dicts merged, any key accepted (``base`` itself left out)."""
    out = copy.deepcopy(base)
    for k, v in update.items():
        if k == "base":
            continue
        out[k] = deep_update(out[k], v) if isinstance(out.get(k), dict) and isinstance(v, dict) else v
    return out


def apply_override(cfg: dict, text: str) -> None:
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise InputError(f"override {text!r}: write key=value, e.g. train.epochs=3 or epochs=3")
    value = yaml.safe_load(raw) if raw.strip() else None
    parts = key.split(".")
    if len(parts) == 1 and key not in cfg:
        owners = [section for section, sub in cfg.items() if isinstance(sub, dict) and key in sub]
        if len(owners) != 1:
            why = "ambiguous, say " + " or ".join(f"{o}.{key}" for o in owners) if owners else "no such key"
            raise InputError(f"override {key!r}: {why}")
        parts = [owners[0], key]
    node = cfg
    for p in parts[:-1]:
        if not isinstance(node.get(p), dict):
            raise InputError(f"override {key!r}: no section {p!r}")
        node = node[p]
    if parts[-1] not in node:
        raise InputError(f"override {key!r}: no such key; known here: {', '.join(node)}")
    if parts[-1] in ("train_views", "test_views") and value is not None:
        value = str(value)
    node[parts[-1]] = value


def load_config(path: str | Path | None, overrides: list[str] = ()) -> dict:
    """A LOSO experiment's config: the file (and its ``base:`` chain) over :data:`DEFAULTS`, then the overrides,
    every value cast and checked (:func:`check_config`)."""
    cfg = merge(DEFAULTS, read_yaml(Path(path)) if path else {}, str(path or "config"))
    for o in overrides:
        apply_override(cfg, o)
    if not cfg["name"]:
        cfg["name"] = Path(path).stem if path else "run"
    if not cfg["data"]["caches"]:
        raise InputError("no data: set data.caches to one or more folders made by python -m training.prepare")
    return check_config(cfg)


# ---------------------------------------------------------------- casting and checking, once


def _fail(key: str, what: str, value) -> InputError:
    return InputError(f"{key} must be {what}, got {value!r}")


def _int(key: str, value, minimum: int | None = None) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    elif isinstance(value, str):
        try:
            value = int(value.strip())
        except ValueError:
            pass
    if minimum == 1:
        what = "a positive integer"
    else:
        what = "an integer" if minimum is None else f"an integer of at least {minimum}"
    if isinstance(value, bool) or not isinstance(value, int) or (minimum is not None and value < minimum):
        raise _fail(key, what, value)
    return value


def _real(key: str, value, minimum: float | None = None, positive: bool = False) -> int | float:
    """A finite number; a whole number stays an int (as written), text such as ``1e-4`` becomes a float."""
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            pass
    what = "a positive number" if positive else ("a number" if minimum is None else f"a number of at least {minimum:g}")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _fail(key, what, value)
    if (positive and value <= 0) or (minimum is not None and value < minimum):
        raise _fail(key, what, value)
    return value


def _bool(key: str, value) -> bool:
    if not isinstance(value, bool):
        raise _fail(key, "true or false", value)
    return value


def _choice(key: str, value, options: tuple, lower: bool = True):
    text = str(value).strip().lower() if lower and value is not None else value
    if text not in options:
        raise _fail(key, " or ".join(", ".join(map(str, options)).rsplit(", ", 1)), value)
    return text


def _text(key: str, value, optional: bool = False) -> str | None:
    if value is None and optional:
        return None
    if value is None or isinstance(value, (dict, list, bool)) or str(value).strip() == "":
        raise _fail(key, "a name or path" + (" (or null)" if optional else ""), value)
    return str(value)


def _views(key: str, value, optional: bool = False) -> str | None:
    if value is None and optional:
        return None
    try:
        parse_views(value)
    except InputError as e:
        raise InputError(f"{key}: {e}") from None
    return str(value)


def _list(key: str, value, item, what: str) -> list:
    if not isinstance(value, (list, tuple)):
        raise _fail(key, f"a list of {what}", value)
    return [item(f"{key}[{i}]", v) for i, v in enumerate(value)]


def check_config(cfg: dict, where: str = "") -> dict:
    """A copy of ``cfg`` (a :func:`merge` over :data:`DEFAULTS`) with every known key cast to its type and
    checked: ints, numbers, bools and names, with an :class:`InputError` that names the key for a bad value.

    ``where`` prefixes the messages (an N-step stage). Casting twice gives the same config."""
    cfg = copy.deepcopy(cfg)
    k = (lambda key: f"{where}: {key}") if where else (lambda key: key)
    d, m, s, t = cfg["data"], cfg["model"], cfg["scheme"], cfg["train"]
    cfg["name"] = _text(k("name"), cfg["name"], optional=True)
    cfg["out"] = _text(k("out"), cfg["out"], optional=True)
    cfg["provenance"] = list(cfg["provenance"] or [])
    caches = [d["caches"]] if isinstance(d["caches"], str) else d["caches"]
    d["caches"] = _list(k("data.caches"), caches, _text, "cache folders")
    d["protocol"] = None if d["protocol"] is None else _choice(k("data.protocol"), d["protocol"], (*PROTOCOLS, "all"))
    d["inputs"] = _choice(k("data.inputs"), d.get("inputs", "rgb"), input_kinds())
    m["name"] = _text(k("model.name"), m["name"])
    if not isinstance(m["kwargs"] or {}, dict):
        raise _fail(k("model.kwargs"), "a mapping of keyword arguments", m["kwargs"])
    m["kwargs"] = dict(m["kwargs"] or {})
    m["pretrained"] = _text(k("model.pretrained"), m["pretrained"], optional=True)
    m["init"] = _choice(k("model.init"), m["init"], ("file", "inflate2d"))
    m["normalisation"] = None if m.get("normalisation") is None else _choice(
        k("model.normalisation"), m["normalisation"], tuple(NORMALISATIONS))
    streams = m.get("stream_pretrained")
    if streams is not None:
        if not isinstance(streams, dict) or not streams:
            raise _fail(k("model.stream_pretrained"), "a mapping of stream names to weights files, e.g. "
                        "{grey: kinetics.pth, flow: flow.pth}", streams)
        streams = {str(n): _text(k(f"model.stream_pretrained.{n}"), v) for n, v in streams.items()}
        if m["pretrained"]:
            raise InputError(f"{k('model.pretrained')} and {k('model.stream_pretrained')} both name starting weights: "
                             "give the whole model's file or the streams' files, not both")
    m["stream_pretrained"] = streams
    s["type"] = _choice(k("scheme.type"), s["type"], ("sbml", "fsb"))
    s["train_views"] = _views(k("scheme.train_views"), s["train_views"])
    s["test_views"] = _views(k("scheme.test_views"), s["test_views"], optional=True)
    if s["view_weights"] is not None:
        s["view_weights"] = _list(k("scheme.view_weights"), s["view_weights"], _real, "numbers")
    s["fsb_head"] = _choice(k("scheme.fsb_head"), s["fsb_head"], ("linear", "mlp"))
    s["fsb_hidden"] = _int(k("scheme.fsb_hidden"), s["fsb_hidden"], 1)
    for key in ("epochs", "batch_size", "n_frames", "size", "checkpoint_every", "eval_batch_size"):
        t[key] = _int(k(f"train.{key}"), t[key], 1)
    t["seed"] = _int(k("train.seed"), t["seed"])
    t["milestones"] = _list(k("train.milestones"), t["milestones"], lambda key, v: _int(key, v, 1), "epoch numbers")
    for key in ("lr", "gamma", "scale"):
        t[key] = _real(k(f"train.{key}"), t[key], positive=True)
    t["rotation"] = _real(k("train.rotation"), t["rotation"], minimum=0)
    t["order"] = _choice(k("train.order"), t.get("order", "shuffled"), ("shuffled", "by_class"))
    t["class_weights"] = _choice(k("train.class_weights"), t.get("class_weights", "none"), CLASS_WEIGHTS)
    for key in ("flip", "balanced", "smote", "oracle", "fold_batch"):
        t[key] = _bool(k(f"train.{key}"), t[key])
    t["selection"] = _choice(k("train.selection"), t["selection"], ("last", "test_set_best"))
    threshold = t.get("au_threshold", 0.5)
    if str(threshold).strip().lower() == "train_f1":
        t["au_threshold"] = "train_f1"
    else:
        try:
            t["au_threshold"] = _real(k("train.au_threshold"), threshold)
        except InputError:
            t["au_threshold"] = None
        if t["au_threshold"] is None or not 0 < t["au_threshold"] < 1:
            raise _fail(k("train.au_threshold"), "a probability between 0 and 1, or train_f1", threshold)
    t["device"] = _text(k("train.device"), t["device"])
    t["amp"] = _choice(k("train.amp"), t["amp"], ("auto", "bf16", "none"))
    if t["channels_last"] != "auto":
        t["channels_last"] = _bool(k("train.channels_last"), t["channels_last"])
    return cfg
