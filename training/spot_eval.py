"""``python -m training.spot_eval``: spotting evaluated as MEGC does it, on long-video datasets.

    python -m training.spot_eval --dataset casme_sq --data data/casme_sq --out runs/spot-casme_sq
    python -m training.spot_eval --dataset casme_sq --data data/casme_sq --out runs/spot-str --model demo/default_model

Every recording of the dataset (CAS(ME)², SAMM Long Videos, or a synthetic copy of their layouts from
``python -m training.synth long``) goes through the serving pipeline (:class:`inference.recognise.Recogniser`, the one
the demo and the batch command run, in spot mode): decoded, its face aligned, the training-free spotter
(:mod:`inference.spotting`) run on it, and with ``--model`` each spotted micro-expression classified by the package
(spot, then recognise). Then the figures, as the MEGC spotting challenges count them:

- a spotted interval is a **hit** (TP) when its IoU with a ground-truth interval of the same kind is ≥ 0.5 (frames
  counted inclusively; each ground truth matched at most once, best IoU first); FP = spotted − TP, FN = truth − TP;
- precision, recall and F1 pooled **over all videos**, for micro- and macro-expressions separately and overall;
- **spot-then-recognise**: a hit whose predicted class is the ground truth's class; precision over the spotted
  micro-expressions, recall over the ground-truth micro-expressions that have a class the model knows.

``--spotter SPOTTER`` spots with a learned spotter (``spotter.json`` or the package folder ``spotter/`` from ``python -m
training.spot_learn``, or ``hf://OWNER/NAME@REV``) instead of the training-free threshold and rules.

``--predictions FILE`` evaluates a file of spotted (and classified) intervals instead of running the spotter: CSV or
JSONL with the columns ``video, onset, offset, kind`` and optionally ``label`` (frame indices from 0).

Work is saved per recording in ``OUT/videos/<video>.json`` (written atomically); run the same command again and
finished recordings are skipped. The figures go to ``OUT/summary.json`` and the intervals to ``OUT/intervals.csv``.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from inference.errors import InputError, cli
from inference.files import write_atomic, write_json_atomic
from inference.spotting import KINDS, interval_iou

# ---------------------------------------------------------------- what the long-video loaders return


@dataclass(frozen=True)
class Truth:
    """One annotated expression in a long recording: frame indices (0-based, inclusive) of the recording."""

    onset: int
    apex: int
    offset: int
    kind: str  # "micro" or "macro"
    emotion: str | None = None  # the dataset's label, normalised (None where the sheet gives none)
    row: str = ""  # where it came from (sheet row), for messages


@dataclass
class LongVideo:
    dataset: str  # registry name: casme_sq, samm_lv
    subject: int
    video: str  # unique within the dataset: 15_0101disgustingteeth, 006_1
    fps: float
    frames: tuple[Path, ...] = ()  # frame images in numeric order (empty when the recording is a video file)
    file: Path | None = None  # the video file
    truths: list[Truth] = field(default_factory=list)

    @property
    def source(self) -> Path:
        return self.file if self.file is not None else self.frames[0].parent


@dataclass
class LongLoadResult:
    videos: list[LongVideo]
    dropped: list[tuple[str, str]] = field(default_factory=list)  # (sheet row or folder, reason)

    def summary(self) -> str:
        kinds = Counter(t.kind for v in self.videos for t in v.truths)
        subjects = len({v.subject for v in self.videos})
        text = (f"{len(self.videos)} recordings from {subjects} subjects, {kinds.get('micro', 0)} micro- and "
                f"{kinds.get('macro', 0)} macro-expressions annotated")
        if self.dropped:
            reasons = Counter(reason for _, reason in self.dropped)
            text += f"; dropped {len(self.dropped)}: " + "; ".join(f"{n} × {r}" for r, n in reasons.most_common(3))
        return text


def frame_index(numbers: dict[int, int] | None, number: int | None) -> int | None:
    """A sheet's frame number → 0-based index: through the frame files' numbers, or ``number - 1`` for a video."""
    if number is None:
        return None
    if numbers is None:
        return number - 1 if number >= 1 else None
    return numbers.get(number)


def make_truth(numbers: dict[int, int] | None, onset, apex, offset, kind: str, emotion: str | None,
               row: str) -> Truth | str:
    """A :class:`Truth` from sheet frame numbers, or the reason the row cannot be used. A missing offset (0 in
    CAS(ME)²) is taken as the apex, a missing apex as the middle."""
    if onset is None:
        return f"no onset frame ({row})"
    if offset is None:
        offset = apex
    if offset is None:
        return f"neither offset nor apex frame ({row})"
    if offset < onset:
        return f"offset {offset} is before onset {onset} ({row})"
    if apex is None or not onset <= apex <= offset:
        apex = (onset + offset) // 2
    idx = [frame_index(numbers, n) for n in (onset, apex, offset)]
    if any(i is None for i in idx):
        return f"frames {onset}–{offset} are not all in the recording ({row})"
    return Truth(idx[0], idx[1], idx[2], kind, emotion, row)


# ---------------------------------------------------------------- evaluation


@dataclass(frozen=True)
class Spotted:
    video: str
    onset: int
    offset: int
    kind: str
    apex: int | None = None
    score: float | None = None
    label: str | None = None


def match(truths: list[Truth], spotted: list[Spotted], threshold: float = 0.5) -> list[tuple[int, int, float]]:
    """One-to-one hits ``(truth index, spotted index, IoU)``: pairs of the same kind with IoU ≥ ``threshold``,
    best IoU first."""
    pairs = sorted(((interval_iou((t.onset, t.offset), (s.onset, s.offset)), i, j)
                    for i, t in enumerate(truths) for j, s in enumerate(spotted) if t.kind == s.kind),
                   reverse=True)
    used_t, used_s, hits = set(), set(), []
    for iou, i, j in pairs:
        if iou < threshold:
            break
        if i not in used_t and j not in used_s:
            used_t.add(i), used_s.add(j)
            hits.append((i, j, iou))
    return hits


def prf(tp: int, n_spotted: int, n_truth: int) -> dict:
    p = tp / n_spotted if n_spotted else 0.0
    r = tp / n_truth if n_truth else 0.0
    f1 = 2 * p * r / (p + r) if p + r else 0.0
    return {"tp": tp, "fp": n_spotted - tp, "fn": n_truth - tp, "precision": round(p, 4), "recall": round(r, 4),
            "f1": round(f1, 4)}


def truth_class(dataset: str, emotion: str | None, labels: list[str] | None) -> str | None:
    """The ground truth's class in the model's label set: the emotion itself, or its MEGC composite class
    (negative / positive / surprise) when the model is a composite one; None when it has none there."""
    from training.labels import composite_label

    if emotion is None or not labels:
        return None
    if emotion in labels:
        return emotion
    composite = composite_label("samm" if dataset == "samm_lv" else "casme2", emotion)
    return composite if composite in labels else None


def evaluate(videos: list[LongVideo], spotted: dict[str, list[Spotted]], labels: list[str] | None = None) -> dict:
    """The MEGC figures over all ``videos`` (see the module docstring); ``labels``: the classes the predictions use
    (spot-then-recognise is scored when given)."""
    counts = {kind: Counter() for kind in KINDS}
    str_tp = str_truth = str_spotted = 0
    for v in videos:
        found = spotted.get(v.video, [])
        hits = match(v.truths, found)
        for kind in KINDS:
            counts[kind]["truth"] += sum(t.kind == kind for t in v.truths)
            counts[kind]["spotted"] += sum(s.kind == kind for s in found)
            counts[kind]["tp"] += sum(v.truths[i].kind == kind for i, _, _ in hits)
        if labels:
            str_truth += sum(t.kind == "micro" and truth_class(v.dataset, t.emotion, labels) is not None
                             for t in v.truths)
            str_spotted += sum(s.kind == "micro" for s in found)
            str_tp += sum(v.truths[i].kind == "micro" and found[j].label is not None
                          and found[j].label == truth_class(v.dataset, v.truths[i].emotion, labels)
                          for i, j, _ in hits)
    out = {kind: prf(c["tp"], c["spotted"], c["truth"]) for kind, c in counts.items()}
    out["overall"] = prf(sum(c["tp"] for c in counts.values()), sum(c["spotted"] for c in counts.values()),
                         sum(c["truth"] for c in counts.values()))
    if labels:
        out["spot_then_recognise"] = {**prf(str_tp, str_spotted, str_truth), "labels": list(labels)}
    out["videos"] = len(videos)
    return out


# ---------------------------------------------------------------- predictions files

PREDICTION_COLUMNS = ("video", "onset", "apex", "offset", "kind", "score", "label")


def read_predictions(path: Path) -> dict[str, list[Spotted]]:
    """Spotted intervals from a CSV or JSONL file with the columns video, onset, offset, kind (label optional)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such predictions file")
    text = path.read_text(encoding="utf-8")
    rows = ([json.loads(line) for line in text.splitlines() if line.strip()] if path.suffix.lower() == ".jsonl"
            else list(csv.DictReader(io.StringIO(text))))
    out: dict[str, list[Spotted]] = {}
    for n, row in enumerate(rows, start=1):
        missing = [c for c in ("video", "onset", "offset", "kind") if row.get(c) in (None, "")]
        if missing:
            raise InputError(f"{path} row {n}: no {', '.join(missing)}; a predictions file needs the columns "
                             f"video, onset, offset, kind (frame indices from 0) and optionally label")
        kind = str(row["kind"]).strip().lower()
        if kind not in KINDS:
            raise InputError(f"{path} row {n}: kind {row['kind']!r} is not one of {', '.join(KINDS)}")
        try:
            onset, offset = int(float(row["onset"])), int(float(row["offset"]))
        except ValueError:
            raise InputError(f"{path} row {n}: onset and offset must be frame numbers") from None
        label = row.get("label")
        out.setdefault(str(row["video"]), []).append(
            Spotted(str(row["video"]), onset, offset, kind, label=str(label) if label not in (None, "") else None))
    return out


def write_predictions(path: Path, spotted: dict[str, list[Spotted]]) -> Path:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(PREDICTION_COLUMNS))
    w.writeheader()
    for video in sorted(spotted):
        for s in spotted[video]:
            w.writerow({c: getattr(s, c) for c in PREDICTION_COLUMNS})
    data = buf.getvalue().encode("utf-8")
    return write_atomic(path, lambda f: f.write(data))


# ---------------------------------------------------------------- running the spotter over a dataset

def recording_preparer(crop, device: str = "cpu"):
    """How a dataset's recordings are decoded and aligned: the serving path (:class:`inference.preprocess.Preparer`)
    with the package's crop (or ``crop``), no length limit."""
    from inference.preprocess import Preparer
    from inference.video import VideoLimits

    return Preparer(crop, None, VideoLimits(max_frames=10 ** 7, max_seconds=10 ** 6), device)


def aligned_recording(video: LongVideo, crop, device: str = "cpu"):
    """Decode a recording and align its face as the pipeline does in spot mode, for the demo and the batch command
    too (:class:`inference.recognise.ModePreparer`: the face track, then alignment of the person's segment), every
    frame kept: a ``PreparedClip``."""
    from inference.recognise import ModePreparer

    return ModePreparer(recording_preparer(crop, device), "spot")(video.source, fps=video.fps)[1]


def first_frame(prepared) -> int:
    """The recording's frame that the prepared clip's frame 0 is (the face track may start after frame 0)."""
    return int(prepared.quality.frames_used[0]) if prepared.quality else 0


def shift_rows(rows: list[dict], first: int, fps: float) -> list[dict]:
    """Interval rows (:func:`inference.spotting.to_rows`) from the prepared clip's frames to the recording's."""
    for r in rows:
        for key in ("onset", "apex", "offset", "clip_start", "clip_end"):
            if key in r:
                r[key] += first
        for key in ("start_s", "apex_s", "end_s"):
            if key in r:
                r[key] = round(r[key] + first / fps, 4)
    return rows


def spot_video(video: LongVideo, recogniser) -> dict:
    """One recording through ``recogniser`` (:class:`inference.recognise.Recogniser`, spot mode): aligned, spotted,
    and with a model every micro-expression classified. A plain dict (the per-video file's content)."""
    result = recogniser(video.source, fps=video.fps)
    prepared = result.prepared
    rows = [p.as_dict(prepared.fps, result.first_frame) for p in result.intervals]
    for r in rows:
        r.pop("per_view", None)
    return {"video": video.video, "subject": video.subject, "fps": prepared.fps, "frames": prepared.n_frames,
            "truths": [asdict(t) for t in video.truths], "intervals": rows,
            "timings_s": {k: round(v, 3) for k, v in result.timings.items() if k != "total"},
            "face_mode": prepared.face.get("mode"),
            "frames_used": list(prepared.quality.frames_used) if prepared.quality else [0, prepared.n_frames - 1]}


def spotted_of(record: dict) -> list[Spotted]:
    """A per-video record's intervals (``{"video", "intervals": rows}``) as :class:`Spotted`."""
    return [Spotted(record["video"], int(r["onset"]), int(r["offset"]), r["kind"], r.get("apex"), r.get("score"),
                    r.get("label") if r["kind"] == "micro" else None) for r in record["intervals"]]


def run(dataset: str, data: Path, out: Path, params, crop=None, model: str | None = None, variant: str = "auto",
        device: str = "cpu", limit: int | None = None, progress: bool = True, log=print) -> dict:
    """Spot (and recognise, with ``model``) every recording of a dataset; resumable per recording. Returns the
    figures (also in ``out/summary.json``)."""
    from tqdm import tqdm

    from inference.face import CropSettings
    from inference.recognise import Recogniser
    from inference.spotting import describe
    from training.datasets.registry import long_dataset_module

    loaded = long_dataset_module(dataset).load(Path(data), variant=variant)
    videos = loaded.videos[:limit] if limit else loaded.videos
    if not videos:
        raise InputError(f"{data}: no recordings found; {loaded.summary()}")
    log(f"{dataset}: {loaded.summary()}")
    predictor = None
    if model:
        from inference.runtime import Predictor

        predictor = Predictor(model, device="cpu" if device == "cpu" else "auto")
        crop = predictor.crop
    crop = crop or CropSettings(size=64)
    # the serving pipeline in spot mode (the regions sit where this crop puts the face: Recogniser applies the rule)
    recogniser = Recogniser(predictor, params, "spot", recording_preparer(crop, device))
    settings = {"spotting": describe(recogniser.params), "crop": crop.to_dict(), "model": str(model) if model else None}
    folder = Path(out) / "videos"
    folder.mkdir(parents=True, exist_ok=True)
    records = []
    for video in tqdm(videos, desc=f"spotting {dataset}", unit="video", disable=not progress):
        path = folder / f"{video.video}.json"
        if path.is_file():
            record = json.loads(path.read_text(encoding="utf-8"))
            if record.get("settings") == settings:
                records.append(record)
                continue
        record = {**spot_video(video, recogniser), "settings": settings}
        write_json_atomic(path, record)
        records.append(record)
    spotted = {r["video"]: spotted_of(r) for r in records}
    figures = evaluate(videos, spotted, predictor.labels if predictor else None)
    summary = {"dataset": dataset, "data": str(data), **settings, "figures": figures,
               "dropped": [list(d) for d in loaded.dropped],
               "seconds": round(sum(sum(r["timings_s"].values()) for r in records), 1)}
    write_predictions(Path(out) / "intervals.csv", spotted)
    write_json_atomic(Path(out) / "summary.json", summary)
    return summary


def format_figures(figures: dict) -> str:
    lines = [f"{'':22}{'TP':>5}{'FP':>5}{'FN':>5}{'precision':>11}{'recall':>8}{'F1':>7}"]
    names = [("micro", "micro-expressions"), ("macro", "macro-expressions"), ("overall", "overall"),
             ("spot_then_recognise", "spot-then-recognise")]
    for key, name in names:
        if key in figures:
            f = figures[key]
            lines.append(f"{name:22}{f['tp']:>5}{f['fp']:>5}{f['fn']:>5}{f['precision']:>11.3f}{f['recall']:>8.3f}"
                         f"{f['f1']:>7.3f}")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    from inference.spotting import SpotParams
    from training.datasets.registry import LONG_DATASETS

    p = argparse.ArgumentParser(
        prog="python -m training.spot_eval",
        description="Spot micro- and macro-expressions in every recording of a long-video dataset with the "
                    "training-free spotter and score it as MEGC does (IoU >= 0.5 hits; precision, recall, F1 over "
                    "all videos, micro and macro separately); with --model also spot-then-recognise; with "
                    "--spotter a learned spotter instead.",
        epilog="Example: python -m training.spot_eval --dataset casme_sq --data data/casme_sq --out runs/spot")
    p.add_argument("--dataset", required=True, choices=LONG_DATASETS, help="which dataset layout --data holds")
    p.add_argument("--data", required=True, type=Path, help="the dataset's folder, as distributed")
    p.add_argument("--out", type=Path, default=None, help="output folder (default runs/spot_eval-DATASET); "
                   "finished recordings in it are skipped when the command runs again")
    p.add_argument("--variant", default="auto", help="layout variant (CAS(ME)²: rawpic or rawvideo; default auto)")
    p.add_argument("--model", default=None,
                   help="model package folder or hf://OWNER/NAME@REV: classify each spotted micro-expression")
    p.add_argument("--predictions", type=Path, default=None,
                   help="evaluate this CSV/JSONL of intervals (video, onset, offset, kind[, label]) instead of "
                        "running the spotter")
    p.add_argument("--size", type=int, default=64, help="aligned face side in pixels when no --model (default 64)")
    p.add_argument("--window", type=float, default=SpotParams.window_s,
                   help="FD window k in seconds, about half a micro-expression (default %(default)s)")
    p.add_argument("--z", type=float, default=SpotParams.z,
                   help="threshold in robust standard deviations of the contrast (default %(default)s)")
    p.add_argument("--spotter", default=None, metavar="SPOTTER",
                   help="a learned spotter (spotter.json or the package folder spotter/ from python -m "
                        "training.spot_learn, or hf://OWNER/NAME@REV) instead of the training-free spotter's "
                        "threshold and rules")
    add_recording_options(p)
    return p


def add_recording_options(p: argparse.ArgumentParser) -> None:
    """The options of commands that read a long-video dataset's recordings (this one and training.spot_learn)."""
    p.add_argument("--device", default="cpu", help="where the face detector runs: cpu or auto (default cpu)")
    p.add_argument("--limit", type=int, default=None, help="only the first N recordings (a quick look)")


@cli
def main(argv: list[str] | None = None) -> int:
    from inference.face import CropSettings
    from inference.spotting import SpotParams

    args = build_parser().parse_args(argv)
    if args.predictions:
        from training.datasets.registry import long_dataset_module

        loaded = long_dataset_module(args.dataset).load(args.data, variant=args.variant)
        spotted = read_predictions(args.predictions)
        labels = sorted({s.label for v in spotted.values() for s in v if s.label}) or None
        figures = evaluate(loaded.videos, spotted, labels)
        print(f"{args.dataset}: {loaded.summary()}\n{format_figures(figures)}")
        if args.out:
            args.out.mkdir(parents=True, exist_ok=True)
            write_json_atomic(args.out / "summary.json", {"dataset": args.dataset, "predictions": str(args.predictions),
                                                          "figures": figures})
        return 0
    params = SpotParams(window_s=args.window, z=args.z, spotter=args.spotter)
    if args.spotter:
        from inference.spotting import load_spotter

        load_spotter(args.spotter, params)  # a wrong file is refused before anything is decoded
    out = args.out or Path("runs") / f"spot_eval-{args.dataset}"
    summary = run(args.dataset, args.data, out, params, CropSettings(size=args.size), args.model, args.variant,
                  args.device, args.limit)
    print(format_figures(summary["figures"]))
    print(f"{summary['figures']['videos']} recordings, {summary['seconds']:.1f} s of work; wrote {out}/summary.json "
          f"and {out}/intervals.csv")
    return 0


if __name__ == "__main__":
    sys.exit(main())
