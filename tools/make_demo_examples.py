"""Regenerate the demo's example clips (needs the training requirements: the synthetic face generator).

    python tools/make_demo_examples.py

One micro-expression clip per SMIC-HS class — ``negative.mp4``, ``positive.mp4``, ``surprise.mp4`` — made by the
generator the bundled default model was trained on (``training.synth.faces.FaceSource``), with a seed that training
never used (training: seed 1, here: seed 7), so the faces are new to the model. Each is 640×480 at SMIC-HS's 100 fps,
cut from the onset to the offset of the expression as the HS clips are, about half a second, H.264: the demo's auto
mode classifies each whole. And ``recording.mp4``: a 6 s recording to spot (``training.synth.long``, 480×360 at
30 fps): a neutral face with a blink, a head turn and two micro-expressions, which auto mode searches.
The bundled model's answer for each is printed afterwards.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from inference.video import write_video  # noqa: E402
from training.synth.faces import FaceSource  # noqa: E402

OUT = ROOT / "demo" / "examples"
SEED = 7
FPS = 100
LABELS = ("negative", "positive", "surprise")
RECORDING = "recording.mp4"


def write_recording(out: Path) -> Path:
    """A 6 s recording to spot: blink, micro-expression, head turn, micro-expression, in that order."""
    from training.synth.long import LongEvent, render

    events = [LongEvent("blink", 20, 23, 27), LongEvent("micro", 50, 55, 61, "surprise"),
              LongEvent("head", 85, 100, 115), LongEvent("micro", 135, 140, 146, "positive")]
    rec = render(FaceSource((360, 480), seed=SEED), 4, events, 180, 30.0, np.random.default_rng(SEED))
    write_video(out / RECORDING, rec.frames, fps=30.0, crf=23)
    return out / RECORDING


def main() -> None:
    source = FaceSource((480, 640), seed=SEED)
    rng = np.random.default_rng(SEED)
    OUT.mkdir(parents=True, exist_ok=True)
    for subject, label in enumerate(LABELS, start=1):
        clip = source.micro(subject, label, int(rng.integers(45, 56)), rng)
        write_video(OUT / f"{label}.mp4", clip.frames[clip.onset:clip.offset + 1], fps=FPS, crf=20)
    write_recording(OUT)
    from inference.runtime import Predictor

    predictor = Predictor(ROOT / "demo" / "default_model", device="cpu")
    for label in LABELS:
        p = predictor.predict(OUT / f"{label}.mp4")
        size = (OUT / f"{label}.mp4").stat().st_size
        print(f"{label}.mp4 ({size // 1024} KB): the default model says {p.top} ({p.probs.max():.2f})")
    print(f"{RECORDING}: {predictor.analyse(OUT / RECORDING)!r}")


if __name__ == "__main__":
    main()
