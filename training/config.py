"""Experiment configs: a YAML file of plain values, a ``base:`` file it extends, and ``key=value`` overrides.

Every key has a default here, so a config names only what differs. Overrides take dotted keys
(``train.epochs=3``) or bare ones when the name is unique (``epochs=3``); values are read as YAML
(``milestones=[1,2]``, ``smote=true``, ``train_views=OL``).
"""

from __future__ import annotations

import copy
from pathlib import Path

import yaml

from inference.errors import InputError

DEFAULTS: dict = {
    "name": None,  # the run's name (default: the config file's name)
    "out": None,  # run folder (default: runs/<name>)
    "data": {
        "caches": [],  # aligned caches from `python -m training.prepare` (three for the composite protocol)
        "protocol": None,  # smic | casme2 | samm | composite | all (every label in the caches; pre-training)
    },
    "model": {
        "name": "resnext3d_101",
        "kwargs": {},
        "pretrained": None,  # a local weights file (kenshohara .pth, torchvision state dict, or ours)
        "init": "file",  # file: load `pretrained` as it is | inflate2d: ImageNet 2D ResNet weights inflated to 3D
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
        "smote": False,  # extended SMOTE from the fold's training subjects
        "selection": "last",  # last | test_set_best (the reference code's: picks the epoch on the test subject)
        "device": "auto",
        "amp": "auto",  # bf16 | none | auto (bf16 on CUDA)
        "channels_last": "auto",
        "seed": 0,
        "checkpoint_every": 1,  # epochs between resumable checkpoints
        "eval_batch_size": 32,
    },
    "provenance": [],  # the N-step chain that led here (filled in by training.nstep; kept in every checkpoint)
}


def _merge(base: dict, update: dict, where: str) -> dict:
    out = copy.deepcopy(base)
    for k, v in (update or {}).items():
        if k == "base":
            continue
        if k not in base:
            raise InputError(f"{where}: unknown key {k!r}; known keys: {', '.join(base)}")
        out[k] = _merge(base[k], v, f"{where}.{k}") if isinstance(base[k], dict) and isinstance(v, dict) else v
    return out


def _read(path: Path, seen: tuple = ()) -> dict:
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
        parent = _read((path.parent / data["base"]).resolve(), seen + (path.resolve(),))
        return _deep_update(parent, data)
    return data


def _deep_update(base: dict, update: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in update.items():
        if k == "base":
            continue
        out[k] = _deep_update(out[k], v) if isinstance(out.get(k), dict) and isinstance(v, dict) else v
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
            raise InputError(f"override {key!r}: {'no such key' if not owners else 'ambiguous, say ' + ' or '.join(f'{o}.{key}' for o in owners)}")
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
    cfg = _merge(DEFAULTS, _read(Path(path)) if path else {}, str(path or "config"))
    for o in overrides:
        apply_override(cfg, o)
    if not cfg["name"]:
        cfg["name"] = Path(path).stem if path else "run"
    if not cfg["data"]["caches"]:
        raise InputError("no data: set data.caches to one or more folders made by python -m training.prepare")
    if isinstance(cfg["data"]["caches"], str):
        cfg["data"]["caches"] = [cfg["data"]["caches"]]
    if cfg["train"]["selection"] not in ("last", "test_set_best"):
        raise InputError(f"train.selection must be last or test_set_best, got {cfg['train']['selection']!r}")
    return cfg
