"""Weights in and out: pretrained files into a registered model, and the writer of this project's checkpoints.

Every file is read with ``torch.load(path, map_location="cpu", weights_only=True)``: no pickled
code ever runs. Accepted as pretrained weights:

- kenshohara 3D-ResNets-PyTorch ``.pth``: ``{"state_dict", "arch"?, "epoch"?, "optimizer"?}``,
  keys possibly prefixed ``module.`` (DataParallel); 2017 files also lack BatchNorm's
  ``num_batches_tracked`` buffers, which are then kept as initialised;
- a torchvision state dict (or torchvision's reference-script checkpoint ``{"model": ...}``);
- one of our own checkpoints (``training.schemes.save_view_model``): its backbone's weights.

A classifier whose shape differs from the model's (400 Kinetics classes against ours) is dropped
and the model keeps its freshly initialised head. Everything else must match when
``strict_backbone`` is on: the wrong architecture for a file fails loudly, naming the keys.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from inference.errors import InputError

FORMAT = 1
_STRIP_PREFIXES = ("module.", "_orig_mod.")  # DataParallel / DistributedDataParallel, torch.compile
_SHOW = 5  # keys named in an error message
HEAD = "fc."  # every registered model's classifier


def _read(path: str | os.PathLike) -> Any:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"no weights file at {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated zip, text, pickle with code in it, ...
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise InputError(
            f"{path} is not a readable PyTorch checkpoint ({type(e).__name__}: {first[:200]}); "
            "give a .pth/.pt file saved with torch.save (a state dict or a dict holding one)"
        ) from None


def _is_state_dict(obj: Any) -> bool:
    return isinstance(obj, Mapping) and len(obj) > 0 and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())


def _state_dict_of(obj: Any, path: str | os.PathLike) -> dict[str, torch.Tensor]:
    for key in ("state_dict", "model"):
        if isinstance(obj, Mapping) and _is_state_dict(obj.get(key)):
            return dict(obj[key])
    if _is_state_dict(obj):
        return dict(obj)
    what = f"a dict with keys {sorted(map(str, obj))[:8]}" if isinstance(obj, Mapping) else type(obj).__name__
    raise InputError(f"{path} holds no state dict ({what}); expected a state dict or a dict with 'state_dict'")


def _clean_keys(sd: Mapping[str, torch.Tensor], key_map: Mapping[str, str]) -> dict[str, torch.Tensor]:
    out = {}
    for k, v in sd.items():
        changed = True
        while changed:
            changed = False
            for p in _STRIP_PREFIXES:
                if k.startswith(p):
                    k, changed = k[len(p):], True
        for old, new in key_map.items():
            if k.startswith(old):
                k = new + k[len(old):]
        out[k] = v
    return out


def load_pretrained(model: torch.nn.Module, path: str | os.PathLike, strict_backbone: bool = True) -> dict:
    """Load a weights file into ``model`` in place; return a report (plain types):

    ``loaded`` keys taken from the file, ``missing`` model keys the file lacks (kept as
    initialised), ``unexpected`` file keys the model lacks, ``mismatched`` ``[key, file_shape,
    model_shape]``, ``head_replaced`` (the model keeps a fresh classifier, not the file's),
    ``file_head_shape``, and the file's ``arch``/``epoch`` when it records them.

    With ``strict_backbone``, any missing, unexpected or mis-shaped key outside the classifier
    (BatchNorm ``num_batches_tracked`` counters aside) raises :class:`InputError`.
    """
    obj = _read(path)
    sd = _state_dict_of(obj, path)
    if isinstance(obj, Mapping) and obj.get("kind") == "view_model":  # ours: the shared backbone's weights
        sd = {k[len("backbone."):]: v for k, v in sd.items() if k.startswith("backbone.")}
    sd = _clean_keys(sd, getattr(model, "pretrained_key_map", {}))
    own = model.state_dict()
    head = HEAD

    def is_head(k: str) -> bool:
        return k.startswith(head)

    def is_counter(k: str) -> bool:
        return k.endswith("num_batches_tracked")

    mismatched = [[k, list(v.shape), list(own[k].shape)] for k, v in sd.items() if k in own and v.shape != own[k].shape]
    bad = {m[0] for m in mismatched}
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]

    head_keys = [k for k in own if is_head(k)]
    head_loadable = bool(head_keys) and all(k in sd and k not in bad for k in head_keys)
    file_head = sd.get(head + "weight")

    back_missing = [k for k in missing if not is_head(k) and not is_counter(k)]
    back_unexpected = [k for k in unexpected if not is_head(k)]
    back_mismatched = [m for m in mismatched if not is_head(m[0])]
    if strict_backbone and (back_missing or back_unexpected or back_mismatched):
        raise InputError(_mismatch_message(model, path, back_missing, back_unexpected, back_mismatched))

    take = {k: v for k, v in sd.items() if k in own and k not in bad and (not is_head(k) or head_loadable)}
    with torch.no_grad():
        model.load_state_dict(take, strict=False)
    report = {
        "path": os.fspath(path),
        "loaded": sorted(take),
        "missing": [k for k in own if k not in take],
        "unexpected": unexpected,
        "mismatched": mismatched,
        "head_replaced": not head_loadable,
        "file_head_shape": list(file_head.shape) if file_head is not None else None,
    }
    if isinstance(obj, Mapping):
        for key in ("arch", "epoch"):
            if isinstance(obj.get(key), (str, int)):
                report[key] = obj[key]
    return report


def _first_per_module(items: list, key=lambda x: x) -> list:
    """The first few entries, one per module (``layer1.0.bn1.weight`` stands for its bias and stats)."""
    seen, out = set(), []
    for item in items:
        module = key(item).rsplit(".", 1)[0]
        if module not in seen:
            seen.add(module)
            out.append(item)
        if len(out) == _SHOW:
            break
    return out


def _mismatch_message(model, path, missing, unexpected, mismatched) -> str:
    name = getattr(model, "config", {}).get("name", type(model).__name__)
    parts = []
    if mismatched:
        shown = ", ".join(f"{k} (file {tuple(a)}, model {tuple(b)})"
                          for k, a, b in _first_per_module(mismatched, key=lambda m: m[0]))
        parts.append(f"{len(mismatched)} tensors with another shape: {shown}")
    if missing:
        parts.append(f"{len(missing)} missing from the file: {', '.join(_first_per_module(missing))}")
    if unexpected:
        parts.append(f"{len(unexpected)} not in the model: {', '.join(_first_per_module(unexpected))}")
    hint = ""
    if missing and all(".downsample." in k for k in missing):
        hint = " The file has no downsample weights: it was trained with shortcut='A' (e.g. resnet-18/34-kinetics.pth)."
    elif unexpected and all(".downsample." in k for k in unexpected):
        hint = " The file has downsample weights: build the model with shortcut='B'."
    return (f"{path} does not fit model {name!r}: " + "; ".join(parts) + "." + hint
            + " Choose the model the file was trained as, or pass strict_backbone=False to load what fits.")


def _check_plain(x: Any, where: str) -> None:
    """Only types that ``torch.load(weights_only=True)`` reads back."""
    if x is None or isinstance(x, (bool, int, float, str, torch.Tensor)):
        return
    if isinstance(x, (list, tuple)):
        for i, v in enumerate(x):
            _check_plain(v, f"{where}[{i}]")
        return
    if isinstance(x, dict):
        for k, v in x.items():
            if not isinstance(k, (str, int)):
                raise TypeError(f"{where}: key {k!r} is {type(k).__name__}; use str or int keys")
            _check_plain(v, f"{where}[{k!r}]")
        return
    raise TypeError(f"{where} is {type(x).__name__}; checkpoints hold only tensors and plain Python values")


def write_checkpoint(path: str | os.PathLike, payload: dict) -> Path:
    """Write ``payload`` (tensors and plain Python values only, so ``weights_only=True`` reads it back)
    atomically: a temporary file in the same folder, synced, then renamed over ``path``."""
    _check_plain({k: v for k, v in payload.items() if k != "state_dict"}, "checkpoint")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def inflate_2d(model: torch.nn.Module, path: str | os.PathLike) -> dict:
    """Load ImageNet 2D ResNet weights (a torchvision ``resnet18/34/50/101`` state dict) into the 3D ResNet of
    the same depth, inflated as in I3D: each ``k×k`` kernel is repeated over the ``t`` frames of its 3D kernel
    and divided by ``t``, so a still clip gives the 2D network's activations. The classifier is not taken.
    Keys outside the classifier must all match (names and, but for the added time axis, shapes)."""
    sd = _clean_keys(_state_dict_of(_read(path), path), {})
    own = model.state_dict()
    take, mismatched, unexpected = {}, [], []
    for k, v in sd.items():
        if k.startswith(HEAD):
            continue
        if k not in own:
            unexpected.append(k)
            continue
        target = own[k]
        if v.dim() == 4 and target.dim() == 5 and tuple(v.shape) == tuple(target.shape[:2]) + tuple(target.shape[3:]):
            v = v.unsqueeze(2).repeat(1, 1, target.shape[2], 1, 1) / target.shape[2]
        if v.shape != target.shape:
            mismatched.append([k, list(v.shape), list(target.shape)])
            continue
        take[k] = v
    missing = [k for k in own if k not in take and not k.startswith(HEAD) and not k.endswith("num_batches_tracked")]
    if missing or unexpected or mismatched:
        message = _mismatch_message(model, path, missing, unexpected, mismatched).split(" Choose the model")[0]
        raise InputError(f"{message} Inflate a 2D ResNet into the 3D ResNet of the same depth "
                         f"(resnet50 → resnet3d_50).")
    with torch.no_grad():
        model.load_state_dict(take, strict=False)
    return {"path": os.fspath(path), "loaded": sorted(take), "inflated": sorted(k for k in take if own[k].dim() == 5),
            "head_replaced": True}


def imagenet_normalisation() -> dict:
    """What torchvision's ImageNet 2D weights expect (0–1 pixels)."""
    return {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225], "pixel_scale": 1.0,
            "source": "ImageNet (torchvision 2D weights, inflated to 3D)"}
