import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.helpers import animate, apply, astronaut  # noqa: E402


@pytest.fixture(scope="session")
def face_image() -> np.ndarray:
    return astronaut()


@pytest.fixture(scope="session")
def aligner():
    from inference.face import FaceAligner

    return FaceAligner()


@pytest.fixture(scope="session")
def reference_landmarks(face_image, aligner) -> np.ndarray:
    """The astronaut's 5 landmarks in the source image, as the aligner finds them on an upright,
    unshifted, unscaled clip. Every other placement must give the same face geometry."""
    from inference.face import CropSettings

    frames, mats = animate(face_image, 4)
    lm_frame = np.array(aligner.align(frames, CropSettings()).meta["landmarks"])
    to_source = np.linalg.inv(np.vstack([mats[0], [0, 0, 1]]))[:2]
    return apply(to_source, lm_frame)
