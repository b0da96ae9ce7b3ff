"""``python -m export``: a training checkpoint → a parity-checked ONNX model package.

    python -m export --checkpoint runs/smic/final/model.pt --out packages/smic [--views OLR] [--fp16]
                     [--int8 --calibrate cache/smic [--int8-stem auto|int8|float]] [--clips cache/smic | clip.mp4 …]
                     [--notes NOTES.md] [--confidence-floor 0.5]
                     [--flow-recipe megc2019-composite --face-crop 112]   # a model trained on a published flow set
    python -m export --folds runs/composite-flow --out packages/composite-folds [--flow-recipe megc2019-composite]
                                                                                   (a fold package: every fold)
    python -m export.train composite-flow --data SET --out DIR    (train LOSO + final, export the folds: one command)

Checkpoints from LOSO folds, from ``--final`` all-subject training and from N-step chains all export: they
are the same format (``training.schemes.save_view_model``) and carry the crop, frame count, normalisation,
provenance and, where known, the LOSO metrics with their protocol. A LOSO run's checkpoint also gets a temperature
fitted on the run's out-of-subject predictions, a reliability diagram (``reliability.png``) and a confidence floor
(:mod:`export.calibrate`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from inference.calibration import DEFAULT_FLOOR
from inference.errors import InputError, cli
from inference.motion import METHODS

from .build import export_package
from .package import STEM_CHOICES


@cli
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m export",
        description="Turn a training checkpoint (a LOSO fold's, a --final model, or an N-step stage's) into a model "
                    "package: model.onnx + config.json + README.md (model card); or, with --folds, every fold of a "
                    "LOSO run into one fold package. The ONNX graph is checked with onnx.checker and against PyTorch "
                    "in ONNX Runtime before the package is written. Published weights: python -m export.convert.",
        epilog="Example: python -m export --checkpoint runs/smic/final/model.pt --out packages/smic --fp16 "
               "--int8 --calibrate cache/smic",
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", type=Path, help="a model.pt written by training.loso or training.nstep")
    src.add_argument("--folds", type=Path, default=None, metavar="RUN",
                     help="a LOSO run's folder (training.loso's out): every fold's model in one fold package, keyed "
                          "by held-out subject and served as their mean (the format export.convert writes); "
                          "python -m inference.evaluate scores each clip with the fold that held its subject out")
    p.add_argument("--out", required=True, type=Path, help="package folder (replaced if it exists)")
    p.add_argument("--views", default=None,
                   help="default test views for SBML models (O, OL, OR, LR, OLR; default: training's)")
    p.add_argument("--fp16", action="store_true", help="also write model.fp16.onnx (for GPUs)")
    p.add_argument("--int8", action="store_true", help="also write model.int8.onnx (static QDQ; needs --calibrate)")
    p.add_argument("--calibrate", default=None, help="a cache of training clips to calibrate int8 on")
    p.add_argument("--int8-stem", default="auto", choices=("auto", *STEM_CHOICES),
                   help="the first convolution in the int8 variant: int8 (folded so CPUs have an int8 kernel for it; "
                        "~1.2x faster for 3D-ResNeXt-101 in OpenVINO), float (as accurate as the rest allows), or auto "
                        "(default: int8 unless the variant then misses the agreement targets with fp32, then float)")
    p.add_argument("--clips", nargs="*", default=None,
                   help="caches or video files to check parity and variant agreement on (default: the training caches "
                        "recorded in the checkpoint if present, else the bundled example clip)")
    p.add_argument("--serve-flow", default=None, choices=METHODS,
                   help="only for a model trained on a published flow-image set (flow made elsewhere, from the "
                        "set's own face crops): the optical flow serving computes from videos, with --face-crop. An "
                        "approximation of the set's preprocessing; config.json and the card say so")
    p.add_argument("--face-crop", type=int, default=None,
                   help="with --serve-flow: the side of the aligned face crop the flow is computed on (e.g. 128)")
    p.add_argument("--flow-recipe", default=None, metavar="NAME",
                   help="only for a model trained on a published flow-image set: serve it on flow images made by this "
                        "named recipe (megc2019-composite: the MEGC2019 composite set's face window, 28 px, min-max), "
                        "on a --face-crop px crop (default 112) at the recipe's margin; with --checkpoint or --folds")
    p.add_argument("--confidence-floor", type=float, default=DEFAULT_FLOOR,
                   help=f"calibrated top probability below which the verdict is shown as uncertain (default "
                        f"{DEFAULT_FLOOR}); the temperature is fitted on the LOSO run's out-of-subject predictions")
    p.add_argument("--name", default=None, help="the model's name in the card (default: the --out folder's name)")
    p.add_argument("--license", default="other", help="license in the card's metadata (default: other)")
    p.add_argument("--notes", default=None, type=Path,
                   help="a markdown file added to the model card after the results, e.g. how this model was made "
                        "(see model_cards/demo.md)")
    args = p.parse_args(argv)
    notes = ""
    if args.notes:
        try:
            notes = args.notes.read_text()
        except OSError as e:
            raise InputError(f"--notes {args.notes}: cannot read it ({e.strerror or e})") from None
    if args.folds is not None:
        if args.fp16 or args.int8:
            raise InputError("--fp16 and --int8 are for one model; a fold package (--folds) is written in fp32")
        from .convert import export_run_folds

        export_run_folds(args.folds, args.out, args.views, args.name, args.license, notes, args.clips,
                         args.serve_flow, args.face_crop, confidence_floor=args.confidence_floor,
                         flow_recipe=args.flow_recipe)
        return 0
    export_package(args.checkpoint, args.out, args.views, args.fp16, args.int8, args.calibrate, args.clips,
                   args.name, args.license, notes, int8_stem=args.int8_stem, serve_flow=args.serve_flow,
                   face_crop=args.face_crop, flow_recipe=args.flow_recipe, confidence_floor=args.confidence_floor)
    return 0


if __name__ == "__main__":
    sys.exit(main())
