"""The dataset registry: every loader by name, loaded lazily (``training.datasets.<name>``)."""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

from inference.errors import InputError

from .base import LoadResult

DATASETS = ("smic", "casme2", "samm", "mmew", "ckplus", "oulu", "ucf101")
FACELESS = ("ucf101",)  # action videos: frames are resized, not face-aligned


def dataset_module(name: str) -> ModuleType:
    key = str(name).strip().lower().replace("-", "").replace("_", "").replace("+", "plus")
    key = {"casmeii": "casme2", "smichs": "smic", "ck": "ckplus", "oulucasia": "oulu"}.get(key, key)
    if key not in DATASETS:
        raise InputError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    return importlib.import_module(f"training.datasets.{key}")


def load_dataset(name: str, root: str | Path, variant: str = "auto", **options) -> LoadResult:
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root}: no such folder; point --root at the dataset's top folder as distributed")
    return dataset_module(name).load(root, variant=variant, **options)
