"""What the synthetic-data commands share (``python -m training.synth`` and ``python -m training.synth long``): the
command-line value types, and writing into a staging folder renamed to ``--out`` at the end with its marker file."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

from inference.errors import InputError

SYNTHETIC_MARKER = "SYNTHETIC.md"  # prepare records it in the cache; models and packages say so


def _size(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
        return h, w
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HEIGHTxWIDTH such as 480x640, got {text!r}") from None


def range_type(cast, expected: str, smallest, rule: str):
    """An argparse type for "N" or "MIN-MAX" (``cast`` each end; MIN at least ``smallest``, MIN <= MAX)."""
    def parse(text: str):
        try:
            lo, _, hi = text.partition("-")
            lo, hi = cast(lo), cast(hi or lo)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        if lo < smallest or hi < lo:
            raise argparse.ArgumentTypeError(rule)
        return lo, hi
    return parse


def _staging(out: Path, overwrite: bool) -> Path:
    """A folder beside ``out`` to write into; renamed to ``out`` at the end, so a stopped run leaves no half set."""
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise InputError(f"{out} already holds files; choose a new --out or pass --overwrite")
    out.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))


def _finish(tmp: Path, out: Path, args, argv) -> None:
    (tmp / SYNTHETIC_MARKER).write_text(
        f"# Synthetic data\n\n"
        f"Made by `python -m training.synth {' '.join(sys.argv[1:] if argv is None else argv)}`: "
        f"a real public-domain face with generated identities and motion, in the {args.layout} layout. "
        f"Not recordings of people. Caches and models made from it are marked synthetic.\n")
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp, out)
