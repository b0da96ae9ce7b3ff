"""``python -m inference.evaluate``: a model package scored on a labelled set.

    python -m inference.evaluate --model PKG --data SET [--out DIR] [--engine auto|onnxruntime|openvino] [--views OLR]

``SET`` is a labelled flow-image set in the published MEGC2019 layout (:mod:`inference.flowset`: a CSV with dataset,
sub, filename_o, label and one image per row; e.g. HTNet's ``STSNet_whole_norm_u_v_os`` or ``python -m training.synth
--layout flowset``). Its images are read as the files store them, checked (the channel read as strain must behave
like the strain of the other two) and fed in the channel order the package's input kind names.

- A *fold package* (``config.json`` ``folds``): each clip goes through the fold that held its subject out — the LOSO
  figure, reproduced from the package alone. A clip whose subject no fold held out was in no fold's training data:
  it is scored by the mean of the folds, and counted as such.
- Any other package: every clip through the one model (its default views).
- ``--views`` (a fold package of FSB folds): O/L/R test-time ensembling outside the graph — each fold's probability
  the mean of its views' softmax, ``u`` reflected about its measured zero in the mirrored halves
  (:meth:`inference.package.ModelPackage.test_time_views`).
- Probabilities are scored *as served*: through the package's temperature (each fold's, as
  :meth:`inference.runtime.Predictor.classify` applies it); the report gives their ECE and NLL, and without the
  temperature for a calibrated package.

Printed, and written under ``--out`` (atomically): ``evaluation.json`` (overall, per dataset and per class: UF1, UAR,
WAR, support; the confusion matrix; every clip's prediction and the fold that scored it; what was skipped and why),
``evaluation.md`` and the confusion matrix as a picture, ``confusion.png`` (drawn with OpenCV). Metrics as training
computes them (:mod:`training.metrics`): F1 and recall per class pooled over clips, UF1 / UAR their means over the
classes present, WAR the accuracy. numpy, OpenCV and the package's runtime only (no training code).
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
import time
from pathlib import Path

import numpy as np

from .errors import InputError, cli
from .files import write_atomic, write_json_atomic
from .flowset import LAYOUT, _find, check_channels, image_name, read_image
from .inputs import PUBLISHED_FLOW_IMAGE, kind, reorder
from .package import MODEL_FILE, ModelPackage
from .views import parse_views, view_indices

ENGINES = ("auto", "onnxruntime", "openvino")
_DATASETS = {"casme2": "casme2", "casmeii": "casme2", "smic": "smic", "smichs": "smic", "samm": "samm"}
_NUMBER = re.compile(r"(\d+)")


# ---------------------------------------------------------------- metrics (as training.metrics computes them)


def scores(y_true, y_pred, n_classes: int) -> dict:
    """UF1, UAR, WAR, per-class F1 / recall / support and the confusion matrix (rows: truth)."""
    y_true, y_pred = np.asarray(y_true, int), np.asarray(y_pred, int)
    m = np.zeros((n_classes, n_classes), np.int64)
    np.add.at(m, (y_true, y_pred), 1)
    tp, support, predicted = np.diag(m), m.sum(1), m.sum(0)
    denom = support + predicted
    f1 = np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 0.0)
    recall = np.where(support > 0, tp / np.maximum(support, 1), 0.0)
    present = support > 0
    total = int(support.sum())
    return {"uf1": float(f1[present].mean()) if present.any() else 0.0,
            "uar": float(recall[present].mean()) if present.any() else 0.0,
            "war": float(np.trace(m) / total) if total else 0.0, "n": total,
            "per_class": {"f1": f1.tolist(), "recall": recall.tolist(), "support": support.tolist()},
            "confusion": m.tolist()}


# ---------------------------------------------------------------- the set


def _dataset(text: str) -> str | None:
    return _DATASETS.get(re.sub(r"[\s_\-]", "", str(text)).lower())


def _label(text: str, labels: list[str]) -> int | None:
    t = str(text).strip()
    if t.isdigit():
        return int(t) if int(t) < len(labels) else None
    low = [x.lower() for x in labels]
    return low.index(t.lower()) if t.lower() in low else None


def read_set(root: str | Path, pkg: ModelPackage) -> tuple[np.ndarray, list[dict], list[dict]]:
    """A labelled flow-image set for ``pkg``: clips ``(N, 1, S, S, 3)`` uint8 in the channel order of the package's
    input kind, their rows (dataset, sub, clip, label index, subject id: the folds' numbering for a fold package),
    and the rows skipped, each with why."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root}: no such folder; point --data at a labelled flow-image set ({LAYOUT})")
    row_kind = kind(pkg.input.kind)
    stored = kind(PUBLISHED_FLOW_IMAGE)
    if not row_kind.single_frame or sorted(row_kind.channels) != sorted(stored.channels):
        raise InputError(f"{pkg.name} takes {row_kind.name} inputs; a flow-image set holds one flow image per clip "
                         f"(u, v, strain): evaluate this package on a set of its own kind")
    csvs, folder = _find(root)
    if len(csvs) != 1 or folder is None:
        raise InputError(f"{root} is not a labelled flow-image set: expected {LAYOUT} (CSV files: "
                         f"{', '.join(p.name for p in csvs) or 'none'}; image folder: {folder or 'none'})")
    with open(csvs[0], newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        missing = [c for c in ("dataset", "sub", "filename_o", "label") if c not in (reader.fieldnames or [])]
        if missing:
            raise InputError(f"{csvs[0]}: no column {', '.join(missing)}; the header must hold dataset, sub, "
                             f"filename_o, label")
        raw = [{k.strip(): (v or "").strip() for k, v in r.items() if k} for r in reader]
    files = {p.name: p for p in folder.iterdir() if p.is_file()}
    bases = pkg.folds.bases if pkg.folds else {}
    rows, images, skipped = [], [], []
    side = pkg.input.height
    for n, r in enumerate(raw, start=2):
        clip = f"{r['dataset']}:{r['sub']}/{r['filename_o']}"

        def skip(why: str):
            skipped.append({"line": n, "clip": clip, "why": why})

        dataset, label = _dataset(r["dataset"]), _label(r["label"], pkg.labels)
        digits = _NUMBER.findall(r["sub"])
        name = image_name(r["sub"], r["filename_o"])
        name = name if name in files else name.replace(" .png", ".png")
        if label is None:
            skip(f"label {r['label']!r} is not one of the package's classes ({', '.join(pkg.labels)}) or their "
                 f"indices")
        elif dataset is None or not digits:
            skip(f"dataset {r['dataset']!r} / subject {r['sub']!r}: not a dataset and numbered subject of the "
                 f"composite set (smic, casme2, samm)")
        elif pkg.folds and dataset not in bases:
            skip(f"dataset {dataset}: none of the package's folds is from it ({', '.join(bases)})")
        elif name not in files:
            skip(f"no image {image_name(r['sub'], r['filename_o'])!r} in {folder}")
        else:
            try:
                img = read_image(files[name])
            except InputError as e:
                skip(str(e))
                continue
            if img.shape[:2] != (side, side):
                skip(f"{files[name].name} is {img.shape[0]}×{img.shape[1]}, the package takes {side}×{side}")
                continue
            images.append(img)
            rows.append({"clip": clip, "dataset": dataset, "sub": r["sub"], "label": label,
                         "subject": bases.get(dataset, 0) + int(digits[-1])})
    if not rows:
        raise InputError(f"{root}: no clip could be scored ({len(skipped)} skipped; the first: "
                         f"{skipped[0]['why'] if skipped else 'the CSV has no rows'})")
    stored_images = np.stack(images)
    check_channels(stored_images, folder)
    clips = reorder(stored_images, stored.channels, row_kind.channels)[:, None]
    return clips, rows, skipped


# ---------------------------------------------------------------- running the package


def session_for(folder: Path, engine: str, threads: int | None = None):
    """The package's ``model.onnx`` in ONNX Runtime (CPU) or OpenVINO (CPU); ``auto``: OpenVINO when installed."""
    from .runtime import OpenVINOSession, openvino_available

    if engine not in ENGINES:
        raise InputError(f"unknown engine {engine!r}; use {', '.join(ENGINES)}")
    if engine == "openvino" or (engine == "auto" and openvino_available()):
        if not openvino_available():
            raise InputError("--engine openvino: the openvino package is not installed; install "
                             "requirements/serve-cpu.txt, or use --engine onnxruntime")
        return OpenVINOSession(folder / MODEL_FILE, threads), "openvino"
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = int(threads)
    return ort.InferenceSession(str(folder / MODEL_FILE), options, providers=["CPUExecutionProvider"]), "onnxruntime"


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def fold_probabilities(session, pkg: ModelPackage, clips: np.ndarray, views: str = "O") -> np.ndarray:
    """A fold package's per-fold probabilities ``(F, N, K)`` (uncalibrated): the softmax of its ``fold_logits``;
    with ``views`` other than ``O`` each fold's is the mean of its views' softmax, the views made outside the graph
    (:meth:`inference.package.ModelPackage.test_time_views`: u reflected about its zero in the mirrored halves) —
    for FSB folds; an SBML fold package is fed ``views`` as its graph's input."""
    x = np.ascontiguousarray(clips, np.uint8)
    outside = views != "O" and pkg.views_outside  # SBML and FSB-OLR fold packages fuse their views in the graph
    if outside:
        x = pkg.test_time_views(x, views)
    v = len(views) if outside else 1
    n = len(clips)
    feeds = {"clips": np.ascontiguousarray(x.reshape((v * n,) + x.shape[-4:]))}
    if pkg.sbml:
        feeds["views"] = view_indices(views)
    outputs = session.run(None, feeds)
    names = list(pkg.outputs)
    second = outputs[names.index(pkg.folds.output)] if pkg.folds.output in names and \
        len(outputs) == len(names) else outputs[1]
    fold = np.asarray(second, np.float64)
    if pkg.folds.output != "fold_probs":
        fold = _softmax(fold)
    if fold.ndim != 3 or fold.shape[0] != len(pkg.folds.subjects):
        raise InputError(f"{pkg.name}: the graph's {pkg.folds.output} has shape {fold.shape}, the config "
                         f"names {len(pkg.folds.subjects)} folds; re-export the package")
    return fold.reshape((fold.shape[0], v, n, -1)).mean(1)


def predict(session, pkg: ModelPackage, clips: np.ndarray, rows: list[dict], views: str | None = None,
            calibrated: bool = True) -> tuple[np.ndarray, list[dict]]:
    """Probabilities ``(N, K)``, each clip's through the fold that held its subject out (fold packages), and per clip
    which model scored it. ``views``: a fold package's test-time views (default: the package's); ``calibrated``:
    through the package's temperature as serving applies it (each fold's probabilities, then their mean for a clip
    no fold held out)."""
    views = pkg.chosen_views(views)
    cal = pkg.calibration if calibrated else None
    if not pkg.folds:
        feeds = {"clips": np.ascontiguousarray(clips, np.uint8)}
        if pkg.sbml:
            feeds["views"] = view_indices(views)
        probs = np.asarray(session.run(None, feeds)[0], np.float64)
        if cal is not None:
            probs = cal.apply(probs).astype(np.float64)
        return probs, [{"by": "model"} for _ in rows]
    fold = fold_probabilities(session, pkg, clips, views)
    if cal is not None:
        fold = cal.apply(fold).astype(np.float64)
    out, by = fold.mean(0), []
    for i, r in enumerate(rows):
        f = pkg.folds.fold_of(r["subject"])
        if f is None:
            by.append({"by": "mean of the folds (no fold held this subject out)"})
            continue
        out[i] = fold[f, i]
        by.append({"by": "fold", "fold": pkg.folds.names[f], "subject": r["subject"]})
    return out, by


def calibration_figures(probs, truth) -> dict:
    """ECE (:data:`inference.calibration.BINS` bins) and NLL of probabilities ``(N, K)`` against the true classes."""
    from .calibration import ece, nll

    return {"ece": round(ece(probs, truth), 4), "nll": round(nll(probs, truth), 4)}


# ---------------------------------------------------------------- reports


def confusion_picture(matrix, labels: list[str], title: str) -> np.ndarray:
    """The confusion matrix as a BGR picture (rows: truth, columns: prediction; cells shaded by row share)."""
    import cv2

    m = np.asarray(matrix, np.float64)
    k, cell, left, top = len(labels), 90, 120, 70
    img = np.full((top + k * cell + 40, left + k * cell + 20, 3), 255, np.uint8)
    share = m / np.maximum(m.sum(1, keepdims=True), 1)
    font = cv2.FONT_HERSHEY_SIMPLEX
    cv2.putText(img, title[:48], (10, 22), font, 0.55, (0, 0, 0), 1, cv2.LINE_AA)
    for i in range(k):
        for j in range(k):
            x, y = left + j * cell, top + i * cell
            shade = int(255 - 200 * share[i, j])
            cv2.rectangle(img, (x, y), (x + cell, y + cell), (255, shade, shade), -1)
            cv2.rectangle(img, (x, y), (x + cell, y + cell), (120, 120, 120), 1)
            colour = (255, 255, 255) if share[i, j] > 0.6 else (0, 0, 0)
            cv2.putText(img, str(int(m[i, j])), (x + 30, y + 52), font, 0.7, colour, 2, cv2.LINE_AA)
        cv2.putText(img, labels[i][:10], (8, top + i * cell + 50), font, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
        cv2.putText(img, labels[i][:10], (left + i * cell + 8, top - 10), font, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(img, "rows: truth, columns: predicted", (left, top + k * cell + 28), font, 0.45, (60, 60, 60), 1,
                cv2.LINE_AA)
    return img


def markdown(report: dict) -> str:
    labels = report["labels"]
    lines = [f"# {report['model']} on {report['data']}", "",
             f"Engine: {report['engine']}; {report['n']} clips scored, {len(report['skipped'])} skipped; "
             f"{report['how']}.", "",
             "| | clips | UF1 | UAR | WAR |", "| --- | --- | --- | --- | --- |"]
    for name, s in [("overall", report["overall"]), *report["per_dataset"].items()]:
        lines.append(f"| {name} | {s['n']} | {s['uf1']:.4f} | {s['uar']:.4f} | {s['war']:.4f} |")
    cal = report.get("calibration") or {}
    if cal.get("served"):
        t = f"temperature {cal['temperature']:g}" if cal.get("temperature") else "no temperature"
        lines += ["", f"Calibration as served ({t}): "
                      f"ECE {cal['served']['ece']:.4f}, NLL {cal['served']['nll']:.4f}" +
                  (f" (without the temperature: ECE {cal['uncalibrated']['ece']:.4f}, NLL "
                   f"{cal['uncalibrated']['nll']:.4f})" if cal.get("uncalibrated") else "") + "."]
    pc = report["overall"]["per_class"]
    lines += ["", "| class | support | F1 | recall |", "| --- | --- | --- | --- |"]
    lines += [f"| {c} | {pc['support'][i]} | {pc['f1'][i]:.4f} | {pc['recall'][i]:.4f} |" for i, c in enumerate(labels)]
    lines += ["", "Confusion matrix (rows: truth, columns: predicted):", "",
              "| | " + " | ".join(labels) + " |", "|" + " --- |" * (len(labels) + 1)]
    lines += [f"| {c} | " + " | ".join(str(x) for x in row) + " |"
              for c, row in zip(labels, report["overall"]["confusion"])]
    if report["skipped"]:
        lines += ["", "Skipped:", ""] + [f"- {s['clip']} (line {s['line']}): {s['why']}" for s in report["skipped"]]
    return "\n".join(lines) + "\n"


def evaluate(model: str | Path, data: str | Path, out: str | Path | None = None, engine: str = "auto",
             threads: int | None = None, log=print, views: str | None = None) -> dict:
    """Score package ``model`` on the labelled set ``data``; the report (written under ``out`` when given).
    ``views``: a fold package's test-time views (O, OLR, …; default the package's)."""
    from .runtime import resolve_package

    t0 = time.perf_counter()
    folder = resolve_package(model)
    pkg = ModelPackage.load(folder)
    views = parse_views(views or pkg.test_views)
    clips, rows, skipped = read_set(data, pkg)
    session, used = session_for(folder, engine, threads)
    probs, by = predict(session, pkg, clips, rows, views)
    pred = probs.argmax(1)
    truth = np.array([r["label"] for r in rows])
    calibration = {"served": calibration_figures(probs, truth),
                   "temperature": pkg.calibration.temperature if pkg.calibration else None}
    if pkg.calibration is not None:
        raw, _ = predict(session, pkg, clips, rows, views, calibrated=False)
        calibration["uncalibrated"] = calibration_figures(raw, truth)
    k = len(pkg.labels)
    overall = scores(truth, pred, k)
    per_dataset = {}
    for d in sorted({r["dataset"] for r in rows}):
        idx = [i for i, r in enumerate(rows) if r["dataset"] == d]
        per_dataset[d] = scores(truth[idx], pred[idx], k)
    folded = sum(b["by"] == "fold" for b in by)
    how = (f"fold package: {folded} clips through the fold that held their subject out, "
           f"{len(rows) - folded} through the mean of the folds; views {views}" if pkg.folds else
           f"every clip through the one model (views {views})")
    report = {"model": str(model), "data": str(data), "engine": used, "labels": list(pkg.labels), "n": len(rows),
              "views": views, "how": how, "overall": overall, "per_dataset": per_dataset,
              "calibration": calibration,
              "clips": [{**r, "label": pkg.labels[r["label"]], "pred": pkg.labels[int(p)],
                         "probs": [round(float(x), 6) for x in pr], **b}
                        for r, p, pr, b in zip(rows, pred, probs, by)],
              "skipped": skipped, "seconds": round(time.perf_counter() - t0, 3)}
    log(f"{pkg.name} on {data} ({used}): {len(rows)} clips, {len(skipped)} skipped; {how}")
    for name, s in [("overall", overall), *per_dataset.items()]:
        log(f"  {name:8s} n={s['n']:4d}  UF1 {s['uf1']:.4f}  UAR {s['uar']:.4f}  WAR {s['war']:.4f}")
    t = calibration["temperature"]
    log(f"  calibration as served ({f'temperature {t:g}' if t else 'no temperature'}): ECE "
        f"{calibration['served']['ece']:.4f}  NLL {calibration['served']['nll']:.4f}" +
        (f" (without it: ECE {calibration['uncalibrated']['ece']:.4f}  NLL {calibration['uncalibrated']['nll']:.4f})"
         if "uncalibrated" in calibration else ""))
    for i, c in enumerate(pkg.labels):
        pc = overall["per_class"]
        log(f"  {c:10s} support {pc['support'][i]:4d}  F1 {pc['f1'][i]:.4f}  recall {pc['recall'][i]:.4f}")
    for s in skipped[:10]:
        log(f"  skipped {s['clip']}: {s['why']}")
    if len(skipped) > 10:
        log(f"  … and {len(skipped) - 10} more skipped (listed in evaluation.json)")
    if out is not None:
        import cv2

        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        write_json_atomic(out / "evaluation.json", report)
        write_atomic(out / "evaluation.md", lambda f: f.write(markdown(report).encode()))
        ok, png = cv2.imencode(".png", confusion_picture(overall["confusion"], pkg.labels,
                                                         f"{pkg.name}: UF1 {overall['uf1']:.4f}"))
        write_atomic(out / "confusion.png", lambda f: f.write(png.tobytes()))
        log(f"wrote {out / 'evaluation.json'}, evaluation.md and confusion.png")
    return report


@cli
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m inference.evaluate",
        description="Score a model package on a labelled flow-image set: UF1 / UAR / WAR overall, per dataset and per "
                    "class, the confusion matrix, and what was skipped and why. A fold package scores each clip "
                    "with the fold that held its subject out (its LOSO figure, from the package alone).",
        epilog="Example: python -m inference.evaluate --model packages/ststnet-authors --data HTNet --out eval/")
    p.add_argument("--model", required=True, help="a package folder (or hf://OWNER/NAME[@REV])")
    p.add_argument("--data", required=True, type=Path,
                   help=f"a labelled flow-image set in the published MEGC2019 layout ({LAYOUT})")
    p.add_argument("--out", type=Path, default=None,
                   help="folder for evaluation.json, evaluation.md and confusion.png (written atomically)")
    p.add_argument("--engine", default="auto", choices=ENGINES,
                   help="runtime: onnxruntime, openvino, or auto (OpenVINO when installed)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for the runtime (default: its own)")
    p.add_argument("--views", default=None,
                   help="test-time views: for a fold package O (default) or OLR etc. — Décalcomanie views made "
                        "outside the graph, u reflected about its measured zero in the mirrored halves, each fold's "
                        "probability the mean of its views'; for an SBML package the views its graph fuses")
    args = p.parse_args(argv)
    evaluate(args.model, args.data, args.out, args.engine, args.threads, views=args.views)
    return 0


if __name__ == "__main__":
    sys.exit(main())
