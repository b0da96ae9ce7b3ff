"""Real clips through a package, against the published flow-image set: the local check of issue 27.

    python -m tools.check_real_clips --model PKG --data SET --clips FOLDER [--fps 200] [--coded CODED.csv]

``FOLDER`` holds one clip per entry — a folder of frames or a video — named ``<dataset>_<sub>_<clip>`` as a row of
the set ``SET`` (``python -m inference.evaluate``'s layout), e.g. ``casme2_sub01_EP02_01f``. Each clip is served as
the batch command serves it (auto mode, ``--fps`` for frame folders) and the tool prints, per clip:

- the dataset's label and the served label with its probabilities;
- for a fold package, the fold that held the clip's subject out, alone (the others were trained on the published
  image of this very clip: that fold's answer is the honest one);
- the apex frame used, and per channel the Pearson r of the served flow image against the set's image of the same
  clip (in the package's channel order);
- with ``--coded`` (a CSV with columns ``name, onset, apex``: frame numbers, the clip's first frame being the onset),
  the same at the coded apex.

Real clips and the published set are licensed data: run this on your machine, never commit them or its output.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np

from inference.errors import InputError, cli
from inference.evaluate import read_set
from inference.inputs import kind
from inference.runtime import Predictor


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
    if a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def channel_r(served: np.ndarray, published: np.ndarray) -> list[float]:
    """Pearson r of each channel of two ``(S, S, 3)`` images (nan where one is constant)."""
    return [_pearson(served[..., c], published[..., c]) for c in range(3)]


def read_coded(path: Path) -> dict[str, tuple[int, int]]:
    """``name → (onset, apex)`` frame numbers from a CSV with columns name, onset, apex."""
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        if not {"name", "onset", "apex"} <= set(reader.fieldnames or []):
            raise InputError(f"{path}: the header must hold name, onset, apex (frame numbers)")
        return {r["name"].strip(): (int(r["onset"]), int(r["apex"])) for r in reader}


def check(model: str, data: str, clips: str, fps: float | None = None, coded: str | None = None,
          engine: str = "auto") -> tuple[tuple[str, ...], list[dict]]:
    """The package's input channels and one result per clip of ``clips`` (see the module docstring); a clip not in
    the set, or where nothing was classified, is reported in its result, not fatal."""
    predictor = Predictor(model, engine=engine)
    pkg = predictor.package
    images, rows, _ = read_set(data, pkg)
    published = {f"{r['dataset']}_{r['sub']}_{r['clip'].split('/')[-1]}": (images[i, 0], r)
                 for i, r in enumerate(rows)}
    coded_apex = read_coded(Path(coded)) if coded else {}
    folder = Path(clips)
    if not folder.is_dir():
        raise InputError(f"{folder}: no such folder; give a folder of clips named <dataset>_<sub>_<clip>")
    out = []
    for entry in sorted(folder.iterdir()):
        name = entry.stem if entry.is_file() else entry.name
        if name not in published:
            out.append({"name": name, "error": "no row of the set has this name (<dataset>_<sub>_<clip>)"})
            continue
        image, row = published[name]
        result = predictor.analyse(entry, fps=fps)
        pred = result.whole if result.mode == "whole" else (
            max(result.micro, key=lambda p: p.interval.score).prediction if result.micro else None)
        item = {"name": name, "label": pkg.labels[row["label"]], "mode": result.mode}
        if pred is None:
            item["error"] = "; ".join(result.notes[:1]) or "nothing classified"
            out.append(item)
            continue
        item.update(served=pred.top, probs=dict(zip(pkg.labels, map(float, pred.probs))), apex=pred.apex,
                    r=channel_r(pred.motion[0], image))
        if pkg.folds and pred.fold_probs is not None:
            f = list(pkg.folds.subjects).index(row["subject"])
            item["held_out_fold"] = dict(zip(pkg.labels, map(float, pred.fold_probs[f])))
        if name in coded_apex:  # the aligned frames already made: from the face track's first frame on
            onset, apex = coded_apex[name]
            at_frame = apex - onset - result.first_frame
            if 0 <= at_frame < result.prepared.n_frames:
                at = predictor.classify([result.prepared], apexes=[at_frame])[0]
                item["coded"] = {"apex": apex - onset, "served": at.top, "r": channel_r(at.motion[0], image)}
        out.append(item)
    return kind(pkg.input.kind).channels, out


def _r(values: list[float]) -> str:
    return " / ".join(f"{v:.2f}" for v in values)


def _probs(probs: dict) -> str:
    return ", ".join(f"{k} {v:.2f}" for k, v in probs.items())


@cli
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.check_real_clips", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="a model package (a fold package gives the held-out fold too)")
    p.add_argument("--data", required=True, help="the labelled flow-image set the clips belong to")
    p.add_argument("--clips", required=True, help="a folder of clips named <dataset>_<sub>_<clip>")
    p.add_argument("--fps", type=float, default=None, help="frame rate of frame folders (CASME II 200, SMIC-HS 100)")
    p.add_argument("--coded", default=None, help="CSV name, onset, apex: also serve each clip at its coded apex")
    p.add_argument("--engine", default="auto", choices=("auto", "onnxruntime", "openvino"))
    args = p.parse_args(argv)
    channels, results = check(args.model, args.data, args.clips, args.fps, args.coded, args.engine)
    names = "/".join(channels)
    right = 0
    for item in results:
        if "error" in item:
            print(f"{item['name']}: {item['error']}")
            continue
        right += item["served"] == item["label"]
        line = (f"{item['name']} [{item['label']}]: served {item['served']} ({_probs(item['probs'])}; apex: frame "
                f"{item['apex']} of the clip), r {names} {_r(item['r'])}")
        if "held_out_fold" in item:
            line += f"; held-out fold: {_probs(item['held_out_fold'])}"
        if "coded" in item:
            c = item["coded"]
            line += f"; at the coded apex {c['apex']}: {c['served']}, r {_r(c['r'])}"
        print(line)
    done = [i for i in results if "error" not in i]
    print(f"{right} of {len(done)} clips served with their dataset's label")
    return 0


if __name__ == "__main__":
    sys.exit(main())
