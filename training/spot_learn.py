"""``python -m training.spot_learn``: the optional learned spotter, trained on long recordings, evaluated LOSO.

    python -m training.spot_learn --dataset casme_sq --data data/casme_sq --out runs/spotlearn-casme_sq
    python -m training.spot_eval --dataset casme_sq --data data/other --spotter runs/spotlearn-casme_sq/spotter.json

The training-free spotter (:mod:`inference.spotting`) finds peaks of a motion contrast above a threshold and drops
blinks, head motion and talking by hand-made rules. The learned spotter keeps its signals and its way of growing a
peak into an interval, and replaces the threshold and the rules with a small classifier of every working frame —
inside a micro-expression, inside a macro-expression, or neither — on the signals around it
(:func:`inference.learned_spotter.frame_features`: each facial region's feature difference, F(t), the contrast, the
head's motion, at offsets of ±3 FD windows, and their highest and mean value within ±1 s): standardised features, one
ReLU layer (``--hidden``), softmax, trained here with numpy (class-weighted cross-entropy, Adam). Peaks of its
expression probability above ``--threshold`` are the spotted movements.

1. **Features**: every recording is decoded, its face aligned through the serving path (as ``training.spot_eval``
   does) and its motion signals computed once; they go to ``OUT/features/<video>.npz`` (written atomically, with the
   training-free spotter's intervals on the same recording). A finished recording is not done again.
2. **LOSO**: one fold per subject: a model trained on the other subjects' recordings spots the held-out subject's;
   ``OUT/folds/subject_<s>/`` holds its ``spotter.json`` and ``fold.json`` (the training and test recordings, the
   fold's figures, its intervals). The figures are MEGC's (``training.spot_eval``: IoU ≥ 0.5 hits, precision, recall,
   F1, micro and macro apart), pooled over the folds, beside the training-free spotter's on the same recordings:
   ``OUT/loso.json``, ``OUT/loso.txt``.
3. **Final model**: trained on every subject, ``OUT/spotter.json`` — JSON weights, the only kind the runtime loads:
   ``SpotParams(spotter=PATH)`` in Python, ``--spotter PATH`` for ``training.spot_eval``, the batch command and the
   demo — and the same model as a package, ``OUT/spotter/`` (``config.json``: that JSON; ``README.md``: its card with
   the LOSO figures and Hub metadata), for ``python -m export.push OUT/spotter --repo OWNER/NAME --revision v1`` and
   ``--spotter hf://OWNER/NAME@v1`` (:mod:`inference.learned_spotter`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from inference.errors import InputError, cli
from inference.files import write_atomic, write_json_atomic
from inference.learned_spotter import (
    LEARNED_CLASSES,
    LEARNED_SETTINGS,
    LearnedSpotter,
    feature_names,
    frame_features,
    mlp,
    write_spotter_package,
)
from inference.recognise import spot_settings
from inference.spotting import Signals, SpotParams, describe, motion_signals, spot_signals, to_rows
from training.spot_eval import (
    LongVideo,
    add_recording_options,
    aligned_recording,
    evaluate,
    first_frame,
    shift_rows,
    spotted_of,
)

SIGNAL_ARRAYS = ("grey", "blocks_difference", "difference", "contrast", "head")

# ---------------------------------------------------------------- features, once per recording


def plain(value):
    """``value`` as it reads back from JSON (tuples become lists), so that settings stamps compare equal."""
    return json.loads(json.dumps(value))


@dataclass
class Recording:
    """One recording's cached signals (:class:`inference.spotting.Signals`) and what is known about it."""

    video: str
    subject: int
    fps: float  # the prepared clip's frame rate
    n_frames: int  # frames of the prepared clip
    first: int  # the recording's frame that the prepared clip's frame 0 is
    signals: Signals
    labels: np.ndarray  # (T,) index into LEARNED_CLASSES per working frame
    free: list[dict]  # the training-free spotter's intervals (rows, frames of the recording)

    def record(self, rows: list[dict]) -> dict:
        return {"video": self.video, "intervals": rows}


def frame_labels(video: LongVideo, first: int, step: int, n_work: int) -> np.ndarray:
    """The class of every working frame: working frame ``i`` is the recording's frame ``first + i * step`` (its
    middle given frame when ``step`` > 1); inside an annotated interval → its kind."""
    frames = first + np.arange(n_work) * step + step // 2
    labels = np.zeros(n_work, np.int64)
    for t in video.truths:
        labels[(frames >= t.onset) & (frames <= t.offset)] = LEARNED_CLASSES.index(t.kind)
    return labels


def extract(video: LongVideo, params: SpotParams, crop, device: str = "cpu") -> dict:
    """Align a recording (serving path), compute its motion signals and run the training-free spotter on them:
    the arrays and facts a cache file holds."""
    prepared = aligned_recording(video, crop, device)
    sig = motion_signals(prepared.frames, prepared.fps, params)
    first = first_frame(prepared)
    free = shift_rows(to_rows(spot_signals(sig, prepared.n_frames, prepared.fps, params), prepared.fps), first,
                      prepared.fps)
    meta = {"video": video.video, "subject": video.subject, "fps": prepared.fps, "n_frames": prepared.n_frames,
            "first": first, "step": sig.step, "work_fps": sig.fps, "k": sig.k, "blocks": sig.blocks,
            "threshold": sig.threshold, "noise": sig.noise, "free": free}
    return {"meta": meta, **{name: getattr(sig, name) for name in SIGNAL_ARRAYS}}


def save_features(path: Path, content: dict, settings: dict) -> Path:
    arrays = {k: v for k, v in content.items() if k != "meta"}
    meta = json.dumps({**content["meta"], "settings": settings})

    def write(f):
        np.savez_compressed(f, meta=np.array(meta), **arrays)

    return write_atomic(path, write)


def load_features(path: Path, video: LongVideo, settings: dict) -> Recording | None:
    """A cache file made with the same settings, or None (missing, other settings, unreadable)."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            arrays = {name: z[name] for name in SIGNAL_ARRAYS}
    except (OSError, ValueError, KeyError):
        return None
    if meta.get("settings") != settings:
        return None
    sig = Signals(meta["step"], meta["work_fps"], meta["k"], meta["blocks"], arrays["grey"],
                  arrays["blocks_difference"], arrays["difference"], arrays["contrast"], meta["threshold"],
                  meta["noise"], arrays["head"])
    return Recording(video.video, video.subject, meta["fps"], meta["n_frames"], meta["first"], sig,
                     frame_labels(video, meta["first"], meta["step"], len(arrays["difference"])), meta["free"])


def features(videos: list[LongVideo], folder: Path, params: SpotParams, crop, device: str = "cpu",
             progress: bool = True, log=print) -> list[Recording]:
    """Every recording's signals, from the cache or computed (and cached); resumable per recording."""
    from tqdm import tqdm

    folder.mkdir(parents=True, exist_ok=True)
    settings = plain({"spotting": describe(params), "crop": crop.to_dict()})
    out, done = [], 0
    for video in tqdm(videos, desc="features", unit="video", disable=not progress):
        path = folder / f"{video.video}.npz"
        rec = load_features(path, video, settings)
        if rec is None:
            save_features(path, extract(video, params, crop, device), settings)
            rec = load_features(path, video, settings)
        else:
            done += 1
        out.append(rec)
    if done:
        log(f"features: {done} of {len(videos)} recordings from {folder} (cached)")
    return out


# ---------------------------------------------------------------- the classifier


@dataclass(frozen=True)
class TrainSettings:
    hidden: int = 32  # units of the ReLU layer
    steps: int = 1500  # Adam steps of `batch` frames
    batch: int = 256
    lr: float = 3e-3
    weight_decay: float = 1e-2  # chosen on a development set (seed 4041), as was the swing feature
    threshold: float = 0.5  # expression probability a peak must reach
    seed: int = 0


def train(recordings: list[Recording], settings: TrainSettings, params: SpotParams, info: dict) -> LearnedSpotter:
    """A :class:`inference.spotting.LearnedSpotter` fitted to every working frame of ``recordings``: cross-entropy
    with classes weighted by 1/sqrt(frequency) (micro-expression frames are a few in a hundred), Adam, weight decay;
    the same seed gives the same model."""
    x = np.concatenate([frame_features(r.signals) for r in recordings]).astype(np.float64)
    y = np.concatenate([r.labels for r in recordings])
    if not len(x):
        raise InputError("no frames to train the learned spotter on")
    mean, std = x.mean(0), np.maximum(x.std(0), 1e-2)
    x = (x - mean) / std
    counts = np.bincount(y, minlength=len(LEARNED_CLASSES)).astype(np.float64)
    weights = np.where(counts > 0, 1.0 / np.sqrt(np.maximum(counts, 1) / len(y)), 0.0)
    rng = np.random.default_rng(settings.seed)
    sizes = [x.shape[1], settings.hidden, len(LEARNED_CLASSES)]
    layers = [(rng.normal(0, np.sqrt(2 / a), (a, b)), np.zeros(b)) for a, b in zip(sizes, sizes[1:])]
    params_flat = [p for la in layers for p in la]
    m = [np.zeros_like(p) for p in params_flat]
    v = [np.zeros_like(p) for p in params_flat]
    onehot = np.eye(len(LEARNED_CLASSES))
    for step in range(1, settings.steps + 1):
        idx = rng.integers(0, len(x), min(settings.batch, len(x)))
        xb, yb = x[idx], y[idx]
        hidden, probs = mlp(xb, layers)
        w = weights[yb]
        d_logits = (probs - onehot[yb]) * (w / w.sum())[:, None]
        d_hidden = (d_logits @ layers[1][0].T) * (hidden > 0)
        grads = [xb.T @ d_hidden, d_hidden.sum(0), hidden.T @ d_logits, d_logits.sum(0)]
        for i, (p, g) in enumerate(zip(params_flat, grads)):
            if p.ndim == 2:
                g = g + settings.weight_decay * p
            m[i] = 0.9 * m[i] + 0.1 * g
            v[i] = 0.999 * v[i] + 0.001 * g * g
            p -= settings.lr * (m[i] / (1 - 0.9 ** step)) / (np.sqrt(v[i] / (1 - 0.999 ** step)) + 1e-8)
    spotter = LearnedSpotter(mean.astype(np.float32), std.astype(np.float32),
                             tuple((w.astype(np.float32), b.astype(np.float32)) for w, b in layers),
                             settings.threshold, {k: float(getattr(params, k)) for k in LEARNED_SETTINGS},
                             {**info, "training": asdict(settings), "frames": {c: int(n) for c, n in
                                                                             zip(LEARNED_CLASSES, counts)}})
    return spotter


def write_spotter(path: Path, spotter: LearnedSpotter) -> Path:
    return write_json_atomic(path, spotter.to_json(), indent=None)


def spotter_card(spotter: LearnedSpotter) -> str:
    """The learned spotter package's card (``README.md``): Hub metadata, what it is, how it was trained and scored
    (its LOSO figures beside the training-free spotter's), how to use it, and what the figures do not say."""
    info = spotter.info
    lines = ["---", "license: mit", "library_name: numpy", "tags:", "- micro-expression", "- spotting",
             "- learned-spotter", "- megc", "---", "",
             f"# Learned micro-expression spotter ({info.get('dataset', '?')})", "",
             "A small classifier of every frame of a recording (inside a micro-expression, a macro-expression, or "
             "neither) on the training-free spotter's motion signals (optical flow on facial regions, head motion "
             "removed); the peaks of its expression probability are grown into intervals. Trained with "
             "`python -m training.spot_learn`; weights are plain JSON in `config.json` (no pickle, no ONNX needed).",
             "", "| fact | value |", "| --- | --- |",
             f"| trained on | {info.get('dataset', '?')}: {len(info.get('videos', []))} recordings of subjects "
             f"{', '.join(map(str, info.get('subjects', [])))} |",
             f"| features | {len(feature_names())} per working frame; signals at window "
             f"{spotter.settings.get('window_s', '?')} s, {spotter.settings.get('work_fps', '?')} fps, "
             f"{spotter.settings.get('work_size', '?')} px |",
             f"| threshold | expression probability {spotter.threshold:g} |"]
    loso = info.get("loso")
    if loso:
        for key in ("micro", "macro"):
            lines.append(f"| LOSO {key} F1 | learned {loso['learned'][key]['f1']:.3f} · training-free "
                         f"{loso['training_free'][key]['f1']:.3f} (MEGC counting, IoU ≥ 0.5, pooled over folds) |")
    lines += ["", "Use it with `--spotter hf://OWNER/NAME@REV` (`python -m inference`, `python -m demo`, "
              "`python -m training.spot_eval`) or `Predictor(pkg).analyse(path, spotter=...)`.", "",
              "Figures on synthetic recordings do not transfer to real ones: evaluate on your own data first.", ""]
    return "\n".join(lines)


def spot_with(path: Path, rec: Recording, params: SpotParams) -> list[dict]:
    """A recording's intervals (rows, frames of the recording) from the learned spotter file at ``path``, loaded as
    the runtime loads it."""
    found = spot_signals(rec.signals, rec.n_frames, rec.fps, replace(params, spotter=str(path)))
    return shift_rows(to_rows(found, rec.fps), rec.first, rec.fps)


# ---------------------------------------------------------------- LOSO


def loso(videos: list[LongVideo], recordings: list[Recording], out: Path, params: SpotParams,
         settings: TrainSettings, dataset: str, progress: bool = True, log=print) -> dict:
    """One fold per subject (resumable per fold); the figures pooled over folds, learned beside training-free."""
    from tqdm import tqdm

    subjects = sorted({r.subject for r in recordings})
    if len(subjects) < 2:
        raise InputError(f"LOSO needs recordings of at least 2 subjects; the data has {len(subjects)}")
    by_video = {v.video: v for v in videos}
    stamp = plain({"training": asdict(settings), "spotting": describe(params), "features": feature_names(),
                   "videos": sorted((r.subject, r.video) for r in recordings)})
    learned: dict[str, list] = {}
    folds = []
    for subject in tqdm(subjects, desc="LOSO", unit="fold", disable=not progress):
        folder = out / "folds" / f"subject_{subject}"
        path = folder / "fold.json"
        fold = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
        if fold is None or fold.get("stamp") != stamp:
            train_set = [r for r in recordings if r.subject != subject]
            test_set = [r for r in recordings if r.subject == subject]
            folder.mkdir(parents=True, exist_ok=True)
            model = write_spotter(folder / "spotter.json", train(
                train_set, settings, params, {"dataset": dataset, "held_out_subject": subject,
                                              "videos": [r.video for r in train_set]}))
            intervals = {r.video: spot_with(model, r, params) for r in test_set}
            test_videos = [by_video[r.video] for r in test_set]
            fold = {"subject": subject, "train_videos": [r.video for r in train_set],
                    "test_videos": [r.video for r in test_set], "intervals": intervals,
                    "figures": {"learned": evaluate(test_videos, {v: spotted_of({"video": v, "intervals": rows})
                                                                  for v, rows in intervals.items()}),
                                "training_free": evaluate(test_videos, {r.video: spotted_of(r.record(r.free))
                                                                        for r in test_set})},
                    "stamp": stamp}
            write_json_atomic(path, fold)
        folds.append(fold)
        for v, rows in fold["intervals"].items():
            learned[v] = spotted_of({"video": v, "intervals": rows})
    evaluated = [by_video[r.video] for r in recordings]
    figures = {"learned": evaluate(evaluated, learned),
               "training_free": evaluate(evaluated, {r.video: spotted_of(r.record(r.free)) for r in recordings})}
    summary = {"dataset": dataset, "subjects": subjects, "recordings": len(recordings), "figures": figures,
               "folds": [{"subject": f["subject"], "test_videos": f["test_videos"], "figures": f["figures"]}
                         for f in folds],
               "training": asdict(settings)}
    write_json_atomic(out / "loso.json", summary)
    text = format_table(summary)
    write_atomic(out / "loso.txt", lambda f: f.write(text.encode("utf-8")))
    log(text)
    return summary


def format_table(summary: dict) -> str:
    """The pooled LOSO figures, learned beside training-free, and each fold's micro / macro F1."""
    head = f"{'':20}{'TP':>5}{'FP':>5}{'FN':>5}{'P':>7}{'R':>7}{'F1':>7}"
    lines = [f"LOSO over {len(summary['subjects'])} subjects ({summary['recordings']} recordings), MEGC counting "
             f"(IoU >= 0.5), pooled over folds", f"{'':20}{'learned spotter':^36}   {'training-free spotter':^36}",
             f"{head}   {head[20:]}"]
    for key, name in (("micro", "micro-expressions"), ("macro", "macro-expressions"), ("overall", "overall")):
        cells = []
        for which in ("learned", "training_free"):
            f = summary["figures"][which][key]
            cells.append(f"{f['tp']:>5}{f['fp']:>5}{f['fn']:>5}{f['precision']:>7.3f}{f['recall']:>7.3f}"
                         f"{f['f1']:>7.3f}")
        lines.append(f"{name:20}{cells[0]}   {cells[1]}")
    lines.append("per fold (held-out subject): micro F1 / macro F1, learned vs training-free")
    for fold in summary["folds"]:
        f = fold["figures"]
        lines.append(f"  subject {fold['subject']:<6} {len(fold['test_videos'])} recordings   "
                     f"{f['learned']['micro']['f1']:.3f} / {f['learned']['macro']['f1']:.3f}   vs   "
                     f"{f['training_free']['micro']['f1']:.3f} / {f['training_free']['macro']['f1']:.3f}")
    return "\n".join(lines)


def run(dataset: str, data: Path, out: Path, params: SpotParams = SpotParams(), crop=None,
        settings: TrainSettings = TrainSettings(), variant: str = "auto", device: str = "cpu",
        limit: int | None = None, final: bool = True, progress: bool = True, log=print) -> dict:
    """Features, LOSO, and the final model on every subject (``out/spotter.json``). Returns the LOSO summary."""
    from inference.face import CropSettings
    from training.datasets.registry import long_dataset_module

    if params.spotter:
        raise InputError("the learned spotter is trained on the training-free spotter's signals; "
                         "give no spotter file to train a new one")
    loaded = long_dataset_module(dataset).load(Path(data), variant=variant)
    videos = loaded.videos[:limit] if limit else loaded.videos
    if not videos:
        raise InputError(f"{data}: no recordings found; {loaded.summary()}")
    log(f"{dataset}: {loaded.summary()}")
    crop = crop or CropSettings(size=64)
    params = spot_settings(params, crop)  # the pipeline's rule: the regions sit where this crop puts the face
    out = Path(out)
    t0 = time.perf_counter()
    recordings = features(videos, out / "features", params, crop, device, progress, log)
    t1 = time.perf_counter()
    summary = loso(videos, recordings, out, params, settings, dataset, progress, log)
    t2 = time.perf_counter()
    summary["seconds"] = {"features": round(t1 - t0, 1), "loso": round(t2 - t1, 1)}
    if final:
        spotter = train(recordings, settings, params, {"dataset": dataset, "subjects": summary["subjects"],
                                                       "videos": [r.video for r in recordings],
                                                       "loso": summary["figures"]})
        path = write_spotter(out / "spotter.json", spotter)
        summary["spotter"] = str(path)
        summary["spotter_package"] = str(write_spotter_package(out / "spotter", spotter, spotter_card(spotter)))
        summary["seconds"]["final"] = round(time.perf_counter() - t2, 1)
        log(f"wrote {path} and the package {out / 'spotter'} (trained on all {len(summary['subjects'])} subjects); "
            f"use it with --spotter {path} (python -m training.spot_eval, python -m inference, python -m demo) or "
            f"SpotParams(spotter=...); publish the package with python -m export.push {out / 'spotter'} --repo ...")
    write_json_atomic(out / "loso.json", summary)
    return summary


def build_parser() -> argparse.ArgumentParser:
    from training.datasets.registry import LONG_DATASETS

    d = TrainSettings()
    p = argparse.ArgumentParser(
        prog="python -m training.spot_learn",
        description="Train the optional learned spotter (a small per-frame classifier on the training-free "
                    "spotter's motion signals) on a long-video dataset, evaluate it leave-one-subject-out with "
                    "MEGC's counting beside the training-free spotter, and write the final model (JSON) trained on "
                    "every subject.",
        epilog="Example: python -m training.spot_learn --dataset casme_sq --data data/casme_sq "
               "--out runs/spotlearn-casme_sq")
    p.add_argument("--dataset", required=True, choices=LONG_DATASETS, help="which dataset layout --data holds")
    p.add_argument("--data", required=True, type=Path, help="the dataset's folder, as distributed")
    p.add_argument("--out", required=True, type=Path,
                   help="run folder: features/ (cached per recording), folds/, loso.json, loso.txt, spotter.json, "
                        "spotter/ (the same model as a package, for export.push); "
                        "the same command again reuses what is there")
    p.add_argument("--variant", default="auto", help="layout variant (CAS(ME)²: rawpic or rawvideo; default auto)")
    p.add_argument("--size", type=int, default=64, help="aligned face side in pixels (default 64)")
    p.add_argument("--hidden", type=int, default=d.hidden, help="units of the hidden layer (default %(default)s)")
    p.add_argument("--steps", type=int, default=d.steps, help="training steps per model (default %(default)s)")
    p.add_argument("--threshold", type=float, default=d.threshold,
                   help="expression probability a peak must reach to be spotted (default %(default)s)")
    p.add_argument("--seed", type=int, default=d.seed, help="random seed (default %(default)s)")
    p.add_argument("--no-final", action="store_true", help="LOSO only, no final model")
    add_recording_options(p)
    return p


@cli
def main(argv: list[str] | None = None) -> int:
    from inference.face import CropSettings

    args = build_parser().parse_args(argv)
    if args.hidden < 1 or args.steps < 1 or not 0 < args.threshold < 1:
        raise InputError("--hidden and --steps must be at least 1 and --threshold between 0 and 1")
    settings = TrainSettings(hidden=args.hidden, steps=args.steps, threshold=args.threshold, seed=args.seed)
    run(args.dataset, args.data, args.out, SpotParams(), CropSettings(size=args.size), settings, args.variant,
        args.device, args.limit, final=not args.no_final)
    return 0


if __name__ == "__main__":
    sys.exit(main())
