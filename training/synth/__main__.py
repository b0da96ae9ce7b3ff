"""``python -m training.synth``: write a synthetic dataset in a real dataset's on-disk layout, or (``--layout
flowset``) a flow-image set in the published MEGC2019 layout (:mod:`training.synth.flowset`)."""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from inference.errors import InputError, cli

from ..datasets.registry import DATASETS, dataset_module
from .cli import _finish, _size, _staging, range_type
from .faces import FaceSource

# Frame sizes (height, width) like the real recordings; the large ones halved to keep the copies small.
FRAME_SIZES = {
    "smic": (480, 640), "casme2": (480, 640), "samm": (544, 1020), "mmew": (540, 960),
    "ckplus": (490, 640), "oulu": (240, 320), "ucf101": (240, 320),
}
GREY = ("ckplus", "samm")  # CK+ and SAMM are (mostly) greyscale recordings


class _Counting:
    """Wraps a clip source to tick a progress bar for each clip rendered."""

    def __init__(self, source, bar):
        self._source, self._bar = source, bar
        self.frame_size = source.frame_size

    def _tick(self, clip):
        self._bar.update(1)
        return clip

    def micro(self, *a, **k):
        return self._tick(self._source.micro(*a, **k))

    def macro(self, *a, **k):
        return self._tick(self._source.macro(*a, **k))

    def action(self, *a, **k):
        return self._tick(self._source.action(*a, **k))


_range = range_type(int, "N or MIN-MAX such as 20-40", 3, "frame counts must be at least 3, and MIN <= MAX")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m training.synth",
        description="Write a synthetic dataset in the on-disk layout of a real one (folders, file names, "
                    "annotation sheets), so the real loaders and `python -m training.prepare` read it. Faces are "
                    "a real public-domain portrait with per-subject identity (geometry, skin tone, lighting) "
                    "showing subtle, asymmetric, AU-like motion with onset/apex/offset; the UCF101 layout gets "
                    "short non-face action clips.",
        epilog="Example: python -m training.synth --layout casme2 --out data/casme2-synth --subjects 6 "
               "--clips-per-subject 5 --seed 0. Long recordings for spotting (CAS(ME)², SAMM Long Videos): "
               "python -m training.synth long --help",
    )
    p.add_argument("--layout", required=True, choices=(*DATASETS, "flowset"),
                   help="which dataset's layout to write; flowset: onset→apex flow images of SMIC-HS, CASME II and "
                        "SAMM subjects in the layout STSTNet/HTNet publish (--subjects per dataset)")
    p.add_argument("--out", required=True, type=Path, help="output folder (must not exist or be empty)")
    p.add_argument("--subjects", type=int, default=8, help="number of subjects (default 8)")
    p.add_argument("--clips-per-subject", type=int, default=6, help="clips per subject (default 6)")
    p.add_argument("--seed", type=int, default=0, help="random seed: the same seed writes the same dataset")
    p.add_argument("--variant", default=None,
                   help="layout variant, e.g. raw or cropped (default: the writer's, cropped where the dataset "
                        "has both)")
    p.add_argument("--frames", type=_range, default=(20, 40), help="frames per clip, N or MIN-MAX (default 20-40)")
    p.add_argument("--frame-size", type=_size, default=None,
                   help="HEIGHTxWIDTH of the frames (default: like the real recordings, e.g. 480x640)")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it already holds files")
    return p


@cli
def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["long"]:  # python -m training.synth long …: long recordings for spotting (see .long)
        from .long import main as long_main

        return long_main(argv[1:])
    args = build_parser().parse_args(argv)
    from tqdm import tqdm

    if args.subjects < 1 or args.clips_per_subject < 1:
        raise InputError("--subjects and --clips-per-subject must be at least 1")
    if args.layout == "flowset":
        return _flowset(args, argv)
    module = dataset_module(args.layout)
    variant = args.variant
    if variant is not None and variant not in module.VARIANTS:
        raise InputError(f"--variant {variant!r} is not a {args.layout} variant; choose one of "
                         f"{', '.join(module.VARIANTS)}")
    options = {} if variant is None else {"variant": variant}
    out: Path = args.out
    tmp = _staging(out, args.overwrite)
    size = args.frame_size or FRAME_SIZES[module.NAME]
    source = FaceSource(size, seed=args.seed, grey=module.NAME in GREY)
    t0 = time.perf_counter()
    try:
        total = args.subjects * args.clips_per_subject
        with tqdm(total=total, desc=f"{args.layout} {variant or ''}".strip(), unit="clip") as bar:
            module.write_synthetic(tmp, _Counting(source, bar), args.subjects, args.clips_per_subject,
                                   np.random.default_rng(args.seed), n_frames=args.frames, **options)
        _finish(tmp, out, args, argv)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    result = module.load(out, variant=variant or "auto")
    print(f"wrote {out} in {time.perf_counter() - t0:.1f} s: {result.summary()}")
    return 0


def _flowset(args, argv) -> int:
    from tqdm import tqdm

    from ..datasets import flowset
    from .flowset import DATASETS as SOURCES
    from .flowset import write_flowset

    t0 = time.perf_counter()
    tmp = _staging(args.out, args.overwrite)
    try:
        with tqdm(total=len(SOURCES) * args.subjects * args.clips_per_subject, desc="flowset", unit="clip") as bar:
            write_flowset(tmp, args.subjects, args.clips_per_subject, args.seed, args.frame_size or (240, 320),
                          args.frames, on_clip=bar.update)
        _finish(tmp, args.out, args, argv)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    rows, _, _ = flowset.read_rows(args.out)
    print(f"wrote {args.out} in {time.perf_counter() - t0:.1f} s: {len(rows)} flow images of "
          f"{len({(r['dataset'], r['subject']) for r in rows})} subjects")
    return 0


if __name__ == "__main__":
    sys.exit(main())
