"""Published flow-image sets: the MEGC2019 composite (SMIC-HS + CASME II + SAMM, negative / positive / surprise) as
onset → apex flow images, one small picture per clip, in the layout HTNet publishes for STSTNet's images
(wangzhifengharrison/HTNet: ``combined_3_class2_for_optical_flow.csv`` and ``datasets/STSNet_whole_norm_u_v_os/``).

What the reader expects under the set's folder ``ROOT``::

    ROOT/<name>.csv  or  ROOT/label/<name>.csv       exactly one CSV, with a header row holding at least
                                                      dataset, sub, filename_o, label (other columns are ignored:
                                                      the published file also has apex, imagename, sub_filename)
    ROOT/STSNet_whole_norm_u_v_os/  or  ROOT/datasets/STSNet_whole_norm_u_v_os/
        {sub}_{filename_o} .png                       one image per CSV row (the published names have a space
                                                      before ".png"; "{sub}_{filename_o}.png" is accepted too)

- ``dataset``: smic, casme2 or samm (any spelling the dataset registry knows: "CASME II", "SMIC-HS" …);
- ``sub``: the dataset's own subject id (s01, sub01, 006): its number is the subject, kept apart per source dataset
  by the composite protocol's rule (:data:`training.labels.COMPOSITE_SUBJECT_BASE`: SMIC s3 → 1003, CASME II sub03 →
  2003, SAMM 006 → 3006), so a LOSO fold never mixes two people;
- ``filename_o``: the clip's name in its dataset (EP02_01f, s01_ne_01, 006_1_2), unique per subject (CASME II
  reuses names across subjects); the cache's clip id is ``{sub}/{filename_o}``;
- ``label``: 0 negative, 1 positive, 2 surprise (the published coding), or those names;
- each image: 8-bit, three channels, all the same square size (28×28 as published), whose channels *as OpenCV loads
  them* (``cv2.imread``, array order) are u, v and optical strain — how HTNet's code writes them (``cv2.imwrite`` of
  an array ``[u, v, strain]``); each channel min-max scaled on its own (:class:`inference.motion.FlowScaling`
  "minmax": zero motion is not stored; the bank measures it on each image).

A set whose CSV and images disagree — a row without its image, an image without its row, an unreadable or
odd-sized image, an unknown dataset, a subject without a number, a label outside the three classes, a clip listed
twice — is refused with an :class:`~inference.errors.InputError` that names the row or the file.

Used two ways: ``Cache.open(ROOT)`` (so ``data.caches: [ROOT]`` trains on the set with no other step) reads it into
memory (:func:`load`), and ``python -m training.prepare --dataset flowset --root ROOT --out CACHE`` copies it into
an ordinary cache (:func:`training.prepare.write_flowset_cache`). :func:`write_set` writes the layout
(``python -m training.synth flowset``). This module reads and writes the layout only: it imports nothing of
:mod:`training.cache` (which opens a set through it).
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np

from inference.errors import InputError

from ..labels import COMPOSITE_SUBJECT_BASE, PROTOCOLS, normalise

NAME = "flowset"
IMAGE_DIR = "STSNet_whole_norm_u_v_os"
CSV_PLACES = (".", "label")
IMAGE_PLACES = (IMAGE_DIR, f"datasets/{IMAGE_DIR}")
COLUMNS = ("dataset", "sub", "filename_o", "label")
CLASSES = PROTOCOLS["composite"]  # label 0, 1, 2
LAYOUT = (f"a CSV with columns {', '.join(COLUMNS)} in the folder or its label/ folder, and one image per row in "
          f"{IMAGE_DIR}/ or datasets/{IMAGE_DIR}/")
_NUMBER = re.compile(r"(\d+)")


def _find(root: Path) -> tuple[list[Path], Path | None]:
    csvs = sorted(p for place in CSV_PLACES if (root / place).is_dir() for p in (root / place).glob("*.csv"))
    images = next((root / p for p in IMAGE_PLACES if (root / p).is_dir()), None)
    return csvs, images


def is_flowset(root: str | Path) -> bool:
    """Whether ``root`` looks like a flow-image set (a CSV and the image folder), before any checking."""
    csvs, images = _find(Path(root))
    return bool(csvs) and images is not None


def image_name(sub: str, clip: str) -> str:
    """The published file name of a clip's image (with its space before the extension)."""
    return f"{sub}_{clip} .png"


def _dataset(text: str, where: str) -> str:
    from .registry import dataset_module

    try:
        name = dataset_module(str(text).replace(" ", "")).NAME
    except InputError:
        name = None
    if name not in COMPOSITE_SUBJECT_BASE:
        raise InputError(f"{where}: dataset {text!r} is not part of the composite set; use one of "
                         f"{', '.join(COMPOSITE_SUBJECT_BASE)}")
    return name


def _label(text: str, where: str) -> str:
    t = str(text).strip()
    if t.isdigit() and int(t) < len(CLASSES):
        return CLASSES[int(t)]
    name = normalise(t)
    if name not in CLASSES:
        raise InputError(f"{where}: label {text!r} is not one of 0, 1, 2 ({', '.join(CLASSES)}) or their names")
    return name


def read_rows(root: str | Path) -> tuple[list[dict], Path, Path]:
    """The set's clips, checked against its images: rows with ``dataset``, ``subject`` (the dataset's own number),
    ``clip``, ``label``, ``composite`` and ``image`` (a path); and the CSV and image folder used."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root}: no such folder; point at the flow-image set's top folder ({LAYOUT})")
    csvs, folder = _find(root)
    if len(csvs) != 1 or folder is None:
        found = f"CSV files: {', '.join(p.name for p in csvs) or 'none'}; image folder: {folder or 'none'}"
        raise InputError(f"{root} is not a flow-image set: expected {LAYOUT} ({found})")
    sheet = csvs[0]
    with open(sheet, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        header = [h.strip() for h in (reader.fieldnames or [])]
        missing = [c for c in COLUMNS if c not in header]
        if missing:
            raise InputError(f"{sheet}: no column {', '.join(missing)}; the header must hold {', '.join(COLUMNS)} "
                             f"(it has {', '.join(header) or 'nothing'})")
        raw = [{(k or "").strip(): (v or "").strip() for k, v in r.items()} for r in reader]
    if not raw:
        raise InputError(f"{sheet}: no rows")
    files = {p.name: p for p in folder.iterdir() if p.is_file()}
    rows, seen, used = [], {}, set()
    for n, r in enumerate(raw, start=2):  # line 1 is the header
        where = f"{sheet.name} line {n} ({r['dataset']}, {r['sub']}, {r['filename_o']})"
        dataset = _dataset(r["dataset"], where)
        digits = _NUMBER.findall(r["sub"])
        if not digits:
            raise InputError(f"{where}: subject {r['sub']!r} has no number")
        if not r["filename_o"]:
            raise InputError(f"{where}: no clip name (filename_o)")
        key = (dataset, int(digits[-1]), r["filename_o"])
        if key in seen:
            raise InputError(f"{where}: clip {r['filename_o']} of {dataset} subject {r['sub']} is listed twice (also "
                             f"line {seen[key]})")
        seen[key] = n
        label = _label(r["label"], where)
        name = image_name(r["sub"], r["filename_o"])
        name = name if name in files else name.replace(" .png", ".png")
        if name not in files:
            raise InputError(f"{where}: no image {image_name(r['sub'], r['filename_o'])!r} in {folder}")
        used.add(name)
        rows.append({"dataset": dataset, "subject": int(digits[-1]), "clip": f"{r['sub']}/{r['filename_o']}",
                     "label": label,
                     "composite": label, "image": files[name]})
    extra = sorted(set(files) - used)
    if extra:
        more = f" and {len(extra) - 1} more" if len(extra) > 1 else ""
        raise InputError(f"{folder / extra[0]}{more}: no row in {sheet.name} names this image; a set's CSV and "
                         f"images must match one to one")
    return rows, sheet, folder


def read_image(path: Path) -> np.ndarray:
    """One flow image as stored (u, v, strain in OpenCV's array order), uint8 ``(S, S, 3)``."""
    import cv2

    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise InputError(f"{path}: cannot be read as an image")
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3 or img.shape[0] != img.shape[1]:
        raise InputError(f"{path}: a flow image must be square, 8-bit with three channels (u, v, strain); this one "
                         f"is {img.dtype} of shape {img.shape}")
    return img


def settings_of(root: Path, size: int) -> dict:
    """``cache.json`` settings for a set: kind flow_image made by the set's authors ("published": serving cannot
    compute it the same way from a video), min-max scaling, apex frames as they chose them."""
    from inference.motion import FlowScaling

    return {"dataset": "composite", "variant": NAME, "root": str(Path(root).resolve()), "size": int(size),
            "margin": None, "faces": True, "crop": None, "synthetic": (Path(root) / "SYNTHETIC.md").exists(),
            "inputs": {"kind": "flow_image", "method": "published", "params": {},
                       "scaling": FlowScaling("minmax").to_dict(), "apex": "as published"}}


def load(root: str | Path) -> tuple[list[dict], np.ndarray, dict]:
    """Rows (as a cache's manifest has them), images ``(N, S, S, 3)`` uint8 and cache settings of a set."""
    rows, sheet, folder = read_rows(root)
    images = [read_image(r.pop("image")) for r in rows]
    sizes = {im.shape for im in images}
    if len(sizes) != 1:
        first = images[0].shape
        odd = next(i for i, im in enumerate(images) if im.shape != first)
        raise InputError(f"{folder}: images differ in size ({rows[0]['clip']} is {first[0]}×{first[1]}, "
                         f"{rows[odd]['clip']} is {images[odd].shape[0]}×{images[odd].shape[1]}); a set's images "
                         f"share one size")
    for i, r in enumerate(rows):
        r.update(n_frames=1, start=i, status="ok", source=str(sheet))
    return rows, np.stack(images), settings_of(Path(root), images[0].shape[0])


def write_set(root: str | Path, clips: list[dict]) -> Path:
    """Write a set in the layout above: ``clips`` hold ``dataset``, ``sub`` (the dataset's own id, e.g. "s01"),
    ``clip``, ``label`` (a class name) and ``image`` (uint8 ``(S, S, 3)``, channels u, v, strain). Returns the CSV."""
    import cv2

    root = Path(root)
    folder = root / IMAGE_DIR
    folder.mkdir(parents=True, exist_ok=True)
    sheet = root / "combined_3_class2_for_optical_flow.csv"
    with open(sheet, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow([*COLUMNS, "apex", "imagename", "sub_filename"])
        for c in clips:
            w.writerow([c["dataset"], c["sub"], c["clip"], CLASSES.index(c["label"]), "",
                        f"{c['sub']}_{c['clip']}.jpg", ""])
            if not cv2.imwrite(str(folder / image_name(c["sub"], c["clip"])), np.ascontiguousarray(c["image"])):
                raise OSError(f"could not write {folder / image_name(c['sub'], c['clip'])}")
    return sheet
