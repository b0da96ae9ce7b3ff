import os
import sys
from pathlib import Path

# Under pytest-xdist (pyproject: -n 2) two worker processes share the machine's cores: one math thread each (set
# before torch is imported), and every command a test starts inherits it, so in-process and subprocess runs compare.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")

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


def _smic_cache(root, subjects: int, seed: int, pronounced: bool = False):
    from training.datasets import smic
    from training.prepare import prepare
    from training.synth.faces import FaceSource

    class Pronounced(FaceSource):
        micro = FaceSource.macro  # macro-expression amplitudes in the micro-expression layout

    source = (Pronounced if pronounced else FaceSource)((240, 320), seed=seed)
    plan = [(s, c) for s in range(1, subjects + 1) for c in ("negative", "positive", "surprise") for _ in range(3)]
    smic.write_synthetic(root / "data", source, subjects=subjects, clips_per_subject=9,
                         rng=np.random.default_rng(seed), variant="raw", n_frames=(10, 14), plan=plan)
    prepare("smic", root / "data", root / "cache", size=56, progress=False, log=lambda *_: None)
    return root / "cache"


@pytest.fixture(scope="session")
def smic_cache(tmp_path_factory):
    """A synthetic SMIC-HS (6 subjects × 3 clips of each class, real faces), prepared at 56 px.

    Its expressions move with macro-expression amplitudes (about 2-4 px in the 56 px crop rather than under 1 px), so
    the learning check sees the recipe learn in 8 epochs on one thread (UAR 0.94 measured) instead of scraping past
    its bar after 24 epochs on a thread count it depends on; the other tests do not depend on the amplitude."""
    return _smic_cache(tmp_path_factory.mktemp("smic"), 6, 11, pronounced=True)


@pytest.fixture(scope="session")
def smic_heldout_cache(tmp_path_factory):
    """Two more synthetic subjects, other identities: a held-out set for exported models."""
    return _smic_cache(tmp_path_factory.mktemp("smic_heldout"), 2, 99)


@pytest.fixture(scope="session")
def tiny_run(smic_cache, tmp_path_factory):
    """The tiny config's SBML-OLR LOSO on the synthetic SMIC-HS, 8 epochs; (folder, results)."""
    from training.config import load_config
    from training.loso import run

    out = tmp_path_factory.mktemp("tiny_run")
    cfg = load_config(ROOT / "training" / "configs" / "tiny.yaml", [f"data.caches=[{smic_cache}]", f"out={out}",
                                                                     "train.epochs=8", "train.milestones=[6]"])
    return out, run(cfg, log=lambda *_: None, progress=False)


@pytest.fixture(scope="session")
def small_run(smic_heldout_cache, tmp_path_factory):
    """The tiny config's SBML-OLR LOSO on the two held-out subjects (2 folds), with its --final model; (folder,
    results). The cheap trained model the export, runtime and Hub tests package: they need a real checkpoint of
    each kind (a fold's, a --final one with LOSO figures), not a good recogniser."""
    from training.config import load_config
    from training.loso import run

    out = tmp_path_factory.mktemp("small_run")
    cfg = load_config(ROOT / "training" / "configs" / "tiny.yaml",
                      [f"data.caches=[{smic_heldout_cache}]", f"out={out}", "train.epochs=4", "train.milestones=[3]"])
    return out, run(cfg, final=True, log=lambda *_: None, progress=False)

