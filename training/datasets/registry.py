"""The dataset registry: every loader by name, loaded lazily (``training.datasets.<name>``)."""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

from inference.errors import InputError

from ..labels import COMPOSITE_SUBJECT_BASE, PROTOCOLS, protocol_entry
from .base import LoadResult

DATASETS = ("smic", "casme2", "samm", "mmew", "ckplus", "oulu", "ucf101")
FACELESS = ("ucf101",)  # action videos: frames are resized, not face-aligned


def dataset_module(name: str) -> ModuleType:
    key = str(name).strip().lower().replace("-", "").replace("_", "").replace("+", "plus")
    key = {"casmeii": "casme2", "smichs": "smic", "ck": "ckplus", "oulucasia": "oulu"}.get(key, key)
    if key not in DATASETS:
        raise InputError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    return importlib.import_module(f"training.datasets.{key}")


LONG_DATASETS = ("casme_sq", "samm_lv")  # long recordings annotated for spotting (training.spot_eval)


def long_dataset_module(name: str) -> ModuleType:
    """A long-video (spotting) loader by name: casme_sq (CAS(ME)²), samm_lv (SAMM Long Videos)."""
    key = "".join(c for c in str(name).strip().lower() if c.isalnum())
    key = {"casmesq": "casme_sq", "casme2sq": "casme_sq", "casmesquare": "casme_sq", "sammlv": "samm_lv",
           "sammlongvideos": "samm_lv"}.get(key, key)
    if key not in LONG_DATASETS:
        raise InputError(f"unknown long-video dataset {name!r}; choose one of {', '.join(LONG_DATASETS)}")
    return importlib.import_module(f"training.datasets.{key}")


def load_dataset(name: str, root: str | Path, variant: str = "auto", **options) -> LoadResult:
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root}: no such folder; point --root at the dataset's top folder as distributed")
    return dataset_module(name).load(root, variant=variant, **options)


def load_composite(roots: dict[str, str | Path], variant: str = "auto") -> LoadResult:
    """The MEGC2019 composite set: SMIC-HS, CASME II and SAMM (whichever are given), clips with a composite
    label only, subject ids made unique across datasets — all by :func:`training.labels.protocol_entry`, the rule
    the training data bank uses (the dataset's own subject id is kept in ``extra["dataset_subject"]``)."""
    from dataclasses import replace

    unknown = set(roots) - set(COMPOSITE_SUBJECT_BASE)
    if unknown or not roots:
        raise InputError(f"the composite protocol combines {', '.join(COMPOSITE_SUBJECT_BASE)}; "
                         f"got {', '.join(sorted(roots)) or 'nothing'}")
    records, dropped = [], []
    for name, root in roots.items():
        result = load_dataset(name, root, variant)
        dropped += [(f"{name}:{clip}", why) for clip, why in result.dropped]
        for r in result.records:
            entry = protocol_entry("composite", name, r.emotion, r.subject, r.composite)
            if entry is None:
                dropped.append((f"{name}:{r.clip}", f"{r.emotion!r} has no composite label"))
            else:
                records.append(replace(r, subject=entry[1], extra={**r.extra, "dataset_subject": r.subject}))
    return LoadResult(records, dropped)


def protocol_records(result: LoadResult, protocol: str) -> tuple[list, list[int], tuple[str, ...]]:
    """The records a protocol uses (:func:`training.labels.protocol_entry`), their class indices, and the class
    names (the model's output order)."""
    if protocol not in PROTOCOLS:
        raise InputError(f"unknown protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}")
    classes = PROTOCOLS[protocol]
    picked, labels = [], []
    for r in result.records:
        entry = protocol_entry(protocol, r.dataset, r.emotion, r.subject, r.composite)
        if entry is not None:
            picked.append(r)
            labels.append(classes.index(entry[0]))
    return picked, labels, classes
