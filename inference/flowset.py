"""The published MEGC2019 composite flow-image set's files (HTNet's ``STSNet_whole_norm_u_v_os`` layout): where the
CSV and the images are, the images' names, how one is read and the check that its channels are in the published
order. numpy and OpenCV only: the runtime's ``python -m inference.evaluate`` reads a set with it, and
:mod:`training.datasets.flowset` (which maps the rows onto the label protocols and the training cache) builds on it.

The images store u, v and optical strain in the PNG's R, G, B, so ``cv2.imread`` returns strain, v, u: the channels
of the input kind :data:`inference.inputs.PUBLISHED_FLOW_IMAGE`, the one statement of that order.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import InputError

IMAGE_DIR = "STSNet_whole_norm_u_v_os"
CSV_PLACES = (".", "label")
IMAGE_PLACES = (IMAGE_DIR, f"datasets/{IMAGE_DIR}")
COLUMNS = ("dataset", "sub", "filename_o", "label")
LAYOUT = (f"a CSV with columns {', '.join(COLUMNS)} in the folder or its label/ folder, and one image per row in "
          f"{IMAGE_DIR}/ or datasets/{IMAGE_DIR}/")
STRAIN_AGREEMENT = 0.4  # the least median correlation of recomputed and stored strain a set must show at load


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


def read_image(path: Path) -> np.ndarray:
    """One flow image as OpenCV reads it (the channels of :data:`inference.inputs.PUBLISHED_FLOW_IMAGE`: strain, v,
    u), uint8 ``(S, S, 3)``."""
    import cv2

    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise InputError(f"{path}: cannot be read as an image")
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3 or img.shape[0] != img.shape[1]:
        raise InputError(f"{path}: a flow image must be square, 8-bit with three channels (u, v, strain); this one "
                         f"is {img.dtype} of shape {img.shape}")
    return img


def to_flow_image(stored: np.ndarray) -> np.ndarray:
    """Images as the files hold them (OpenCV's order, :data:`inference.inputs.PUBLISHED_FLOW_IMAGE`) → the
    ``flow_image`` kind's channels (u, v, strain)."""
    from .inputs import PUBLISHED_FLOW_IMAGE, kind, reorder

    return reorder(stored, kind(PUBLISHED_FLOW_IMAGE).channels, kind("flow_image").channels)


def from_flow_image(images: np.ndarray) -> np.ndarray:
    """``flow_image`` channels (u, v, strain) → the order a file's array holds (what ``cv2.imwrite`` takes)."""
    from .inputs import PUBLISHED_FLOW_IMAGE, kind, reorder

    return reorder(images, kind("flow_image").channels, kind(PUBLISHED_FLOW_IMAGE).channels)


def check_channels(stored: np.ndarray, where) -> float:
    """The median strain agreement of images as OpenCV read them (:func:`inference.inputs.strain_agreement` at the
    published order); an ``InputError`` naming the channel that looks like strain when it is below
    :data:`STRAIN_AGREEMENT`."""
    from .inputs import PUBLISHED_FLOW_IMAGE, kind, strain_agreement

    expected = kind(PUBLISHED_FLOW_IMAGE).channels
    r = strain_agreement(stored, expected)
    if r >= STRAIN_AGREEMENT:
        return r
    names = ("B", "G", "R")  # what OpenCV's array channels are in the PNG
    tried = {}
    for s in range(3):
        uv = [c for c in range(3) if c != s]
        order = ["", "", ""]
        order[s], order[uv[0]], order[uv[1]] = "strain", "u", "v"
        tried[s] = (strain_agreement(stored, tuple(order)), tuple(order))
    best = max(tried, key=lambda c: tried[c][0])
    raise InputError(
        f"{where}: these flow images are not stored as the published set stores them (u, v, strain in the PNG's R, "
        f"G, B; OpenCV reads {', '.join(expected)}): the channel that should hold the optical strain (the PNG's "
        f"{names[expected.index('strain')]}, OpenCV channel {expected.index('strain')}) does not behave like the "
        f"strain of the other two (median correlation {r:.2f} over {len(stored)} images, needs "
        f"{STRAIN_AGREEMENT}). The strain looks like it is in "
        f"the PNG's {names[best]} channel (r = {tried[best][0]:.2f}): the likely order as OpenCV reads the files is "
        f"{', '.join(tried[best][1])} (u and v may be swapped). Write the set with u, v, strain in R, G, B "
        f"(cv2.imwrite of an array [strain, v, u]) or convert its images")
