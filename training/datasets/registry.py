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


# Subject ids in the composite protocol: each dataset's own ids shifted into a block of its own,
# so that subject 1 of SMIC and subject 1 of CASME II stay two people (SMIC s3 → 1003, CASME II sub03 → 2003).
COMPOSITE_SUBJECT_BASE = {"smic": 1000, "casme2": 2000, "samm": 3000}


def load_composite(roots: dict[str, str | Path], variant: str = "auto") -> LoadResult:
    """The MEGC2019 composite set: SMIC-HS, CASME II and SAMM (whichever are given), clips with a composite
    label only, subject ids made unique across datasets (see :data:`COMPOSITE_SUBJECT_BASE`)."""
    from dataclasses import replace

    unknown = set(roots) - set(COMPOSITE_SUBJECT_BASE)
    if unknown or not roots:
        raise InputError(f"the composite protocol combines {', '.join(COMPOSITE_SUBJECT_BASE)}; got {', '.join(sorted(roots)) or 'nothing'}")
    records, dropped = [], []
    for name, root in roots.items():
        result = load_dataset(name, root, variant)
        dropped += [(f"{name}:{clip}", why) for clip, why in result.dropped]
        for r in result.records:
            if r.composite is None:
                dropped.append((f"{name}:{r.clip}", f"{r.emotion!r} has no composite label"))
            else:
                records.append(replace(r, subject=COMPOSITE_SUBJECT_BASE[name] + r.subject,
                                       extra={**r.extra, "dataset_subject": r.subject}))
    return LoadResult(records, dropped)


def protocol_records(result: LoadResult, protocol: str) -> tuple[list, list[int], tuple[str, ...]]:
    """The records a protocol uses, their class indices, and the class names (the model's output order)."""
    from ..labels import PROTOCOLS

    if protocol not in PROTOCOLS:
        raise InputError(f"unknown protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}")
    classes = PROTOCOLS[protocol]
    key = (lambda r: r.composite) if protocol == "composite" else (lambda r: r.emotion)
    picked = [r for r in result.records if key(r) in classes]
    return picked, [classes.index(key(r)) for r in picked], classes
