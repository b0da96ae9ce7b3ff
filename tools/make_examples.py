"""Regenerate the bundled example clips (needs the training requirements: scikit-image).

    python tools/make_examples.py

``astronaut.mp4``: NASA's public-domain astronaut portrait (scikit-image's ``astronaut``) as a 2 s,
640×480, 100 fps clip with a 6° head roll, a small offset and sub-pixel per-frame shake — the size
of a SMIC-HS recording. The benchmark ``python -m tools.bench.inference face`` uses it by default.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from inference.video import write_video  # noqa: E402
from training.synth.still import animate, astronaut  # noqa: E402


def main() -> None:
    frames, _ = animate(astronaut(), 200, angle=6.0, scale=1.0, shift=(18.0, -10.0), jitter=0.3, seed=7)
    write_video(ROOT / "examples" / "astronaut.mp4", frames, fps=100, crf=26)


if __name__ == "__main__":
    main()
