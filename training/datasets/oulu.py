"""Oulu-CASIA NIR&VIS (Zhao et al. 2011): posed macro-expressions, neutral face → apex, 25 fps, 320×240.

As distributed, one frame folder per subject and expression, for each camera and illumination::

    OriginalImg/VL/Strong/P001/Anger/000.jpeg 001.jpeg …
                 VL|NI   Strong|Weak|Dark  P001…P080  Anger Disgust Fear Happiness Sadness Surprise

``root`` may be the folder holding ``OriginalImg`` (or another image set with the same inner layout,
chosen with ``image_set=``), ``OriginalImg`` itself, or one of its camera folders. There is no
annotation file: the expression is the folder name, sequences start neutral and end at the apex (the
last frame), so ``onset``/``apex``/``offset`` stay empty.

``variant`` picks camera and illumination: ``"VL/Strong"`` (the default, "auto"), ``"VL/Weak"``,
``"VL/Dark"``, ``"NI/…"``, with ``all`` for either part (``"VL/all"`` is the paper's VL Strong + Weak +
Dark). Clip ids name the subset (``VL_Strong_P001_Anger``), so clips of several subsets never collide.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from inference.errors import InputError
from training.datasets.base import ClipRecord, LoadResult, frames_of, subject_id
from training.labels import composite_label, normalise
from training.synth.source import ClipSource

NAME = "oulu"
FPS = 25.0
CAMERAS = ("VL", "NI")
ILLUMINATIONS = ("Strong", "Weak", "Dark")
VARIANTS = (*(f"{c}/{i}" for c in CAMERAS for i in ILLUMINATIONS), "VL/all", "NI/all", "all")
DEFAULT_VARIANT = "VL/Strong"
EXPRESSIONS = ("Anger", "Disgust", "Fear", "Happiness", "Sadness", "Surprise")
IMAGE_SET = "OriginalImg"
_SUBJECT = re.compile(r"^P\d+$", re.IGNORECASE)


def load(root: Path, variant: str = "auto", image_set: str | None = None) -> LoadResult:
    """Every expression folder of the chosen camera/illumination subsets as one clip."""
    images = _locate(Path(root), image_set)
    records, dropped = [], []
    for camera, illumination, folder in _subsets(images, variant):
        for subject_dir in _subdirs(folder, _SUBJECT):
            for expression_dir in _subdirs(subject_dir):
                clip = f"{camera}_{illumination}_{subject_dir.name}_{expression_dir.name}"
                emotion = normalise(expression_dir.name)
                frames = frames_of(expression_dir)
                if emotion not in _KNOWN:
                    dropped.append((clip, "not one of the six expression folders"))
                elif not frames:
                    dropped.append((clip, "no frames"))
                else:
                    records.append(ClipRecord(
                        dataset=NAME, subject=subject_id(subject_dir.name), clip=clip, emotion=emotion,
                        frames=frames, fps=FPS, composite=composite_label(NAME, emotion),
                        extra={"camera": camera, "illumination": illumination,
                               "subject_folder": subject_dir.name}))
    return LoadResult(records, dropped)


_KNOWN = {normalise(e) for e in EXPRESSIONS}


def parse_variant(variant: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``"VL/Strong"`` → (("VL",), ("Strong",)); ``"vl-all"`` → (("VL",), ("Strong", "Weak", "Dark"))."""
    text = DEFAULT_VARIANT if variant in ("auto", "", None) else str(variant)
    parts = [p for p in re.split(r"[/\\_\-\s]+", text.strip()) if p]
    if len(parts) == 1 and parts[0].lower() == "all":
        parts = ["all", "all"]
    if len(parts) != 2:
        raise InputError(_variant_help(variant))
    cameras = _pick(parts[0], CAMERAS, variant)
    illuminations = _pick(parts[1], ILLUMINATIONS, variant)
    return cameras, illuminations


def _pick(part: str, names: tuple[str, ...], variant: str) -> tuple[str, ...]:
    if part.lower() == "all":
        return names
    for name in names:
        if part.lower() == name.lower():
            return (name,)
    raise InputError(_variant_help(variant))


def _variant_help(variant) -> str:
    return (f"Oulu-CASIA has no subset {variant!r}. Give camera/illumination: one of "
            f"{', '.join(VARIANTS)} ('all' for either part).")


def _subsets(images: Path, variant: str) -> list[tuple[str, str, Path]]:
    """(camera, illumination, folder) of every selected subset; a named subset that is missing is an error."""
    cameras, illuminations = parse_variant(variant)
    found, missing = [], []
    for camera in cameras:
        for illumination in illuminations:
            folder = _child(_child(images, camera), illumination)
            (found if folder.is_dir() else missing).append((camera, illumination, folder))
    if missing and (len(cameras) == 1 and len(illuminations) == 1 or not found):
        raise InputError(
            f"{images}: no {', '.join(f'{c}/{i}' for c, i, _ in missing)} subset (expected e.g. "
            f"{missing[0][2]}/P001/Anger/000.jpeg). Choose another variant or unpack that part.")
    return found


def _child(folder: Path, name: str) -> Path:
    """``folder/name``, matching the name's case as it is on disk."""
    exact = folder / name
    if exact.is_dir() or not folder.is_dir():
        return exact
    for p in folder.iterdir():
        if p.is_dir() and p.name.lower() == name.lower():
            return p
    return exact


def _subdirs(folder: Path, pattern: re.Pattern | None = None) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted((p for p in folder.iterdir() if p.is_dir() and (pattern is None or pattern.match(p.name))),
                  key=lambda p: p.name)


def _has_cameras(folder: Path) -> bool:
    return any(_child(folder, c).is_dir() for c in CAMERAS)


def _locate(root: Path, image_set: str | None) -> Path:
    """The image set folder (the one holding VL/ and NI/)."""
    if not root.is_dir():
        raise InputError(f"{root}: no such folder. Point at the unpacked Oulu-CASIA folder (the one holding "
                         f"{IMAGE_SET}/VL/Strong/P001/Anger/000.jpeg).")
    if root.name.upper() in CAMERAS and _has_cameras(root.parent):
        root = root.parent  # pointed at OriginalImg/VL
    candidates = [root, *(p for p in sorted(root.iterdir()) if p.is_dir())]
    found = [c for c in candidates if _has_cameras(c)]
    if image_set is not None:
        found = [c for c in found if c.name.lower() == image_set.lower()]
    if not found:
        wanted = image_set or IMAGE_SET
        raise InputError(
            f"{root}: not the Oulu-CASIA NIR&VIS dataset. Expected {wanted}/VL/Strong/P001/Anger/000.jpeg "
            f"(camera VL or NI, illumination Strong, Weak or Dark) here or in the folder below.")
    if len(found) > 1:
        preferred = [c for c in found if c.name.lower() == IMAGE_SET.lower()]
        if len(preferred) != 1:
            raise InputError(f"{root}: several image sets ({', '.join(c.name for c in found)}); choose one "
                             f"with image_set=.")
        found = preferred
    return found[0]


# ---------------------------------------------------------------------------------------------------
# Synthetic copy in the distributed layout


def write_synthetic(root: Path, source: ClipSource, subjects: int, clips_per_subject: int,
                    rng: np.random.Generator, variant: str = "all/all",
                    n_frames: tuple[int, int] = (12, 24)) -> None:
    """A small Oulu-CASIA under ``root/OriginalImg``: subjects P001…, ``clips_per_subject`` of the six
    expressions each (at most 6), in every selected camera/illumination subset (all six by default).

    Frames are ``000.jpeg``, ``001.jpeg`` … from the neutral face to the apex; the NI camera's frames are
    grey-level (stored as 3-channel JPEGs, as the near-infrared camera's are).
    """
    if not 1 <= clips_per_subject <= len(EXPRESSIONS):
        raise ValueError(f"Oulu-CASIA has {len(EXPRESSIONS)} expressions per subject, got {clips_per_subject}")
    cameras, illuminations = parse_variant(variant)
    images = Path(root) / IMAGE_SET
    for s in range(1, subjects + 1):
        expressions = sorted(rng.choice(EXPRESSIONS, size=clips_per_subject, replace=False).tolist())
        for camera in cameras:
            for illumination in illuminations:
                for expression in expressions:
                    folder = images / camera / illumination / f"P{s:03d}" / expression
                    _write_clip(folder, source, s, expression, camera == "NI", rng, n_frames)


def _write_clip(folder: Path, source: ClipSource, subject: int, expression: str, grey: bool,
                rng: np.random.Generator, n_frames: tuple[int, int]) -> None:
    import cv2

    n = int(rng.integers(n_frames[0], n_frames[1] + 1))
    synth = source.macro(subject, normalise(expression), n, rng)
    folder.mkdir(parents=True, exist_ok=True)
    for i, frame in enumerate(synth.frames[: synth.apex + 1]):  # sequences stop at the apex
        image = cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)
        if grey:
            image = cv2.cvtColor(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
        cv2.imwrite(str(folder / f"{i:03d}.jpeg"), image)
