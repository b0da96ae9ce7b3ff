"""``python -m inference``: offline batch prediction over clips, to CSV or JSONL, resumable and shardable.

    python -m inference --input clips/ more.mp4 --recursive --output predictions.csv
    python -m inference --model packages/smic --input clips/ --output predictions.csv

``--model`` defaults to the bundled synthetic-data demo package (``demo/default_model``), as ``python -m demo`` does.

Inputs are video files and folders of frame images (a folder that holds frames is one clip). Every input gets
one row: its top label, probabilities, faces seen, per-stage timings and the quality of the face track (face_coverage:
the fraction of the frames used; notes: what was left out and why, in words) — or an error row with the reason;
one bad file never stops the run. Run the same command again and inputs already in the output are skipped.
``--mode auto|spot|whole`` (auto by default; the rule: ``inference.recognise.AUTO_RULE`` — a clip under 1 s, a frame
folder without ``--fps``, or a clip up to 3 s holding one expression is classified whole, the rest spotted; each row's
``mode`` and ``why`` say which was applied and why): a spotted recording gets one row per interval
found (row "interval": its onset, apex and offset in frames of the recording and in seconds, kind micro or macro,
spotting score, and for a micro-expression its label and probabilities) and one row "summary" for the recording
(intervals: micro-expressions found, "no micro-expression found" in its notes when there is none, face_coverage,
notes, and the motion peaks the spotter left out, with the reason); a clip classified whole gets one row "clip". A
recording's rows are appended together; a resumed run does not redo a recording whose summary is written.
Each row is appended with a single write, so a kill never leaves a torn row. ``--shard I/N`` takes the inputs
whose path hashes to I modulo N: N machines with the same inputs cover each exactly once. Inputs are only read.
``--workers N`` decodes and aligns clips in N processes while the model runs, ``--batch-size B`` sends B clips per
model call; Ctrl-C stops cleanly, and the same command goes on from there.
A calibrated package (its card states a temperature and a confidence floor) gives calibrated probabilities, and its
rows say ``uncertain`` (True) where the top probability is below the floor; a fold package adds ``fold_spread``, the
standard deviation of the top class's probability over its folds.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import os
import sys
import time
from collections import Counter
from pathlib import Path

from .device import DEVICE_CHOICES
from .errors import InputError, cli
from .package import VARIANT_CHOICES
from .pipeline import prepared_clips
from .preprocess import PreparedClip, add_decoding_options, decoding_options
from .recognise import DEFAULT_MODE, MODES, NO_MICRO, STILL, Recogniser
from .runtime import ENGINES
from .spotting import SpotParams, load_spotter
from .video import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, VideoLimits, natural_key

BASE_COLUMNS = ["path", "status", "label", "faces_seen", "views", "provider", "t_decode", "t_face", "t_resample",
                "t_model", "t_total", "error"]
QUALITY_COLUMNS = ["face_coverage", "notes"]  # after the others: an output written before them is still resumed
SPOT_COLUMNS = ["mode", "row", "intervals", "onset", "apex", "offset", "start_s", "apex_s", "end_s", "kind", "score"]
# a calibrated package (inference.calibration): "uncertain" when the calibrated top probability is below the floor its
# card states; a fold package: the fold ensemble's spread (standard deviation) of the top class's probability. Last,
# so an output written before them is still resumed.
CALIBRATION_COLUMNS = ["uncertain", "confidence_floor", "fold_spread"]
WHY_COLUMNS = ["why"]  # why the mode was applied (auto mode's rule, in words); last: older outputs are still resumed
BUNDLED_MODEL = Path(__file__).resolve().parent.parent / "demo" / "default_model"  # the demo's default package too
NOTE_SEPARATOR = " | "  # between a row's notes in a CSV cell (JSONL rows hold a list)


def find_inputs(paths: list[str], recursive: bool) -> list[Path]:
    """Video files and frame folders named by ``paths`` (folders searched one level, or all the way down)."""
    found: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if not p.exists():
            raise InputError(f"{p}: no such file or folder")
        if p.is_file():
            found.append(p)
            continue
        if _holds_frames(p):
            found.append(p)
            continue
        walker = p.rglob("*") if recursive else p.iterdir()
        for q in walker:
            if q.is_file() and q.suffix.lower() in VIDEO_EXTENSIONS:
                found.append(q)
            elif q.is_dir() and _holds_frames(q):
                found.append(q)
    unique = sorted(set(found), key=lambda q: natural_key(str(q)))
    return unique


def _holds_frames(folder: Path) -> bool:
    return any(f.suffix.lower() in IMAGE_EXTENSIONS for f in folder.iterdir() if f.is_file())


def shard_of(path: Path, n: int) -> int:
    return int.from_bytes(hashlib.sha1(str(path).encode()).digest()[:8], "big") % n


def parse_shard(text: str | None) -> tuple[int, int]:
    if not text:
        return 0, 1
    try:
        i, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise InputError(f"--shard {text!r}: write I/N, e.g. 0/4 (this machine takes part 0 of 4)") from None
    if n < 1 or not 0 <= i < n:
        raise InputError(f"--shard {text!r}: need 0 <= I < N")
    return i, n


class RowWriter:
    """Appends rows to a CSV or JSONL file, one complete line per write; reads back what is already done."""

    def __init__(self, path: Path, labels: list[str]):
        self.path, self.labels = path, labels
        self.jsonl = path.suffix.lower() == ".jsonl"
        if not self.jsonl and path.suffix.lower() != ".csv":
            raise InputError(f"--output {path}: use a .csv or .jsonl file")
        self.columns = (BASE_COLUMNS[:3] + [f"prob_{k}" for k in labels] + BASE_COLUMNS[3:] + QUALITY_COLUMNS
                        + SPOT_COLUMNS + CALIBRATION_COLUMNS + WHY_COLUMNS)

    def done(self) -> set[str]:
        """Paths already in the output (a torn last line, if any, is cut off first). A recording counts once its
        summary row is there; interval rows without one (a run killed while writing them) are removed."""
        if not self.path.exists():
            return set()
        data = self.path.read_bytes()
        end = data.rfind(b"\n") + 1
        if end != len(data):
            with open(self.path, "r+b") as f:
                f.truncate(end)
            data = data[:end]
        text = data.decode("utf-8")
        if self.jsonl:
            rows = [(json.loads(line), line) for line in text.splitlines() if line.strip()]
            done = {r["path"] for r, _ in rows if r.get("row") != "interval"}
            kept = [line + "\n" for r, line in rows if r["path"] in done]
        else:
            table = list(csv.reader(io.StringIO(text)))
            if table and table[0] != self.columns:
                base = len(BASE_COLUMNS) + len(self.labels)
                if len(table[0]) >= base and table[0] == self.columns[:len(table[0])]:
                    self.columns = table[0]  # written before the newer columns: go on in its own layout
                else:
                    raise InputError(f"{self.path} was written for other labels or columns; use another --output")
            at = self.columns.index("row") if "row" in self.columns else None
            rows = [r for r in table[1:] if r]
            done = {r[0] for r in rows if at is None or len(r) <= at or r[at] != "interval"}
            kept = [self._csv_line(table[0])] + [self._csv_line(r) for r in rows if r[0] in done]
        if len(kept) < len(rows) + (not self.jsonl):  # interval rows of a recording left unfinished
            from .files import write_atomic

            kept_bytes = "".join(kept).encode("utf-8")
            write_atomic(self.path, lambda f: f.write(kept_bytes))
        return done

    def _append(self, line: str) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode("utf-8"))
        finally:
            os.close(fd)

    def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not self.jsonl and (not self.path.exists() or self.path.stat().st_size == 0):
            self._append(self._csv_line(self.columns))
        self.path.touch()  # a shard with nothing to do still leaves its (empty) output: the run finished

    def _csv_line(self, values) -> str:
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerow(values)
        return buf.getvalue()

    def write(self, row: dict) -> None:
        self.write_many([row])

    def write_many(self, rows: list[dict]) -> None:
        """The rows in one append (a recording's interval rows and its summary go together)."""
        self._append("".join(self._line(row) for row in rows))

    def _line(self, row: dict) -> str:
        if self.jsonl:
            return json.dumps(row, ensure_ascii=False) + "\n"
        flat = {**row, **{f"prob_{k}": v for k, v in (row.get("probs") or {}).items()}}
        flat["notes"] = NOTE_SEPARATOR.join(row.get("notes") or [])
        spread = row.get("fold_spread")
        flat["fold_spread"] = spread.get(row.get("label"), "") if isinstance(spread, dict) else ""
        for stage in ("decode", "face", "resample", "model", "total"):
            flat[f"t_{stage}"] = (row.get("timings_s") or {}).get(stage, "")
        return self._csv_line([flat.get(c, "") for c in self.columns])


def recording_fields(result) -> dict:
    """What a row says of the recording as a whole (a spotted recording's summary row, a still clip's row): why its
    mode, the faces, the face coverage, the notes and the timings."""
    prepared = result.prepared
    return {"why": result.why, "faces_seen": prepared.faces_seen, "face_coverage": round(prepared.face_coverage, 4),
            "notes": result.notes, "timings_s": {k: round(v, 4) for k, v in result.timings.items()}}


def spot_rows(path: str, result, base: dict) -> list[dict]:
    """A spotted recording's rows (:class:`inference.recognise.Recognition`): one per interval (frames and seconds of
    the recording), then the summary."""
    prepared, first = result.prepared, result.first_frame
    rows = []
    for p in result.intervals:
        row = p.as_dict(prepared.fps, first)
        for key in ("face_coverage", "notes", "per_view", "faces_seen"):
            row.pop(key, None)  # the recording's, on its summary row
        rows.append({"path": path, **base, "status": "ok", "mode": "spot", "row": "interval", **row})
    rows.append({"path": path, **base, "status": "ok", "mode": "spot", "row": "summary",
                 "intervals": len(result.micro), **recording_fields(result)})
    return rows


def default_workers() -> int:
    """Cores beyond two, up to 8: on a 2-core machine the model's threads already use both cores."""
    return max(0, min(8, (os.cpu_count() or 1) - 2))


@cli
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m inference", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=str(BUNDLED_MODEL),
                   help="a model package folder or hf://OWNER/NAME[@REV] (default: the bundled synthetic-data demo "
                        "package, demo/default_model, as python -m demo)")
    p.add_argument("--input", nargs="+", required=True, help="video files, frame folders, or folders of clips")
    p.add_argument("--recursive", action="store_true", help="search input folders all the way down")
    p.add_argument("--output", required=True, type=Path, help="results file, .csv or .jsonl (appended to; resumable)")
    p.add_argument("--views", default=None,
                   help="test views for SBML packages and fold packages: O, OL, OR, LR or OLR (default: the "
                        "package's); a fold package's views are made outside its graph, u reflected about its "
                        "measured zero in the mirrored halves")
    p.add_argument("--shard", default=None, help="I/N: process only this machine's share of the inputs")
    p.add_argument("--device", default="auto", choices=DEVICE_CHOICES,
                   help="where the model runs (default auto)")
    p.add_argument("--engine", default="auto", choices=ENGINES,
                   help="CPU engine for the ONNX graph (default auto: OpenVINO when installed, else ONNX Runtime)")
    p.add_argument("--variant", default="auto", choices=VARIANT_CHOICES, help="which graph of the package")
    p.add_argument("--workers", type=int, default=None,
                   help="processes that decode and align clips while the model runs (default: one per core beyond "
                        "two, at most 8; 0 prepares in this process)")
    p.add_argument("--batch-size", type=int, default=None,
                   help="prepared clips per model call (default: 16 on a GPU, 1 on a CPU)")
    p.add_argument("--mode", default=DEFAULT_MODE, choices=MODES,
                   help="spot: find the micro-expressions in each recording and classify each; whole: classify each "
                        "clip as one expression; auto (default): whole for a clip under 1 s, a frame folder without "
                        "--fps, or a clip up to 3 s that holds one expression (motion rising from its start and "
                        "falling back inside it, as the datasets' clips); spot for the rest. Each row's mode and "
                        "why columns say which was applied and why")
    p.add_argument("--spotter", default=None, metavar="SPOTTER",
                   help="a learned spotter instead of the training-free one: its JSON file or package folder (written "
                        "by python -m training.spot_learn) or hf://OWNER/NAME@REV")
    p.add_argument("--fps", type=float, default=None,
                   help="frame rate of frame folders (recorded; needed to spot in a folder of frames)")
    p.add_argument("--max-frames", type=int, default=VideoLimits.max_frames, help="refuse longer clips")
    p.add_argument("--max-seconds", type=float, default=VideoLimits.max_seconds, help="refuse longer clips")
    add_decoding_options(p)
    args = p.parse_args(argv)
    from tqdm import tqdm

    from .runtime import Predictor

    shard, shards = parse_shard(args.shard)
    if args.spotter:
        load_spotter(args.spotter, SpotParams(spotter=args.spotter))  # a wrong file: refused before anything is read
    inputs = [q for q in find_inputs(args.input, args.recursive) if shard_of(q, shards) == shard]
    predictor = Predictor(args.model, device=args.device, variant=args.variant, views=args.views,
                          limits=VideoLimits(max_frames=args.max_frames, max_seconds=args.max_seconds,
                                             **decoding_options(args)), engine=args.engine)
    recogniser = Recogniser(predictor, SpotParams(spotter=args.spotter), args.mode)  # the demo's and the API's path
    on_gpu = predictor.provider == "CUDAExecutionProvider"
    workers = default_workers() if args.workers is None else args.workers
    batch_size = (16 if on_gpu else 1) if args.batch_size is None else args.batch_size
    if workers < 0 or batch_size < 1:
        raise InputError("--workers must be ≥ 0 and --batch-size ≥ 1")
    writer = RowWriter(args.output, predictor.labels)
    done = writer.done()
    todo = [q for q in inputs if str(q) not in done]
    writer.start()
    print(f"{predictor.describe()}\n{len(inputs)} inputs in shard {shard}/{shards}, {len(inputs) - len(todo)} "
          f"already in "
          f"{args.output}, {len(todo)} to do; {workers or 'no'} preparing worker{'s' if workers != 1 else ''}, "
          f"model batches of {batch_size}")
    counts, reasons = Counter(), Counter()
    noted = [0]  # predictions whose face track has something to say (partial coverage, cuts, …)
    still = [0]  # whole clips whose face does not move at all: nothing classified
    t0 = time.perf_counter()
    bar = tqdm(total=len(todo), unit="clip", desc="predict")
    base = {"views": predictor.views, "provider": predictor.provider}

    def error(q: Path, reason: str, key: str) -> None:
        writer.write({"path": str(q), **base, "status": "error", "error": reason})
        reasons[key] += 1
        bar.update()

    batch: list[tuple[Path, object, PreparedClip]] = []  # path, ModeChoice, prepared clip
    spotted = Counter()  # recordings spotted, micro-expressions found, recordings with none

    def spot(q: Path, choice, prepared: PreparedClip) -> None:
        try:
            result = recogniser.finish(choice, prepared)
        except Exception as e:  # noqa: BLE001 — one bad recording never stops the run; its reason is in its row
            error(q, f"spot: {type(e).__name__}: {e}", type(e).__name__)
            return
        writer.write_many(spot_rows(str(q), result, base))
        spotted.update(recordings=1, micro=len(result.micro), none=int(not result.micro))
        counts.update(p.prediction.top for p in result.micro)
        noted[0] += bool(prepared.notes)
        bar.update()

    def classify() -> None:
        try:
            results = recogniser.finish_many([(choice, prepared) for _, choice, prepared in batch])
        except Exception as e:  # noqa: BLE001 — the model failing on a batch is reported on its rows
            for q, _, _ in batch:
                error(q, f"model: {type(e).__name__}: {e}", type(e).__name__)
        else:
            for (q, _, _), result in zip(batch, results):
                pred = result.whole
                if pred is None:  # the face does not move at all: no label, said in the notes
                    writer.write({"path": str(q), **base, "status": "ok", "mode": "whole", "row": "clip",
                                  "label": "", **recording_fields(result)})
                    still[0] += 1
                    bar.update()
                    continue
                writer.write({"path": str(q), **base, "status": "ok", "mode": "whole", "row": "clip",
                              **pred.as_dict(), "why": result.why})
                counts[pred.top] += 1
                noted[0] += bool(pred.notes)
                bar.update()
        batch.clear()

    try:
        for q, status, payload in prepared_clips(todo, recogniser.preparing, args.fps, workers):
            if status == "error":
                error(q, payload, payload.split(": ", 1)[-1][:80])
                continue
            choice, prepared = payload
            if choice.mode == "spot":
                spot(q, choice, prepared)
                continue
            batch.append((q, choice, prepared))
            if len(batch) >= batch_size:
                classify()
        if batch:
            classify()
    except KeyboardInterrupt:
        bar.close()
        print(f"interrupted: {bar.n} of {len(todo)} rows written to {args.output}; run the same command again to "
              f"go on from there", file=sys.stderr)
        return 130
    bar.close()
    ok = sum(counts.values()) - spotted["micro"] + spotted["recordings"] + still[0]
    print(f"{ok} predicted ({', '.join(f'{k} {v}' for k, v in counts.most_common()) or 'none'}), "
          f"{sum(reasons.values())} errors in {time.perf_counter() - t0:.1f} s → {args.output}")
    if spotted["recordings"]:
        print(f"  {spotted['recordings']} recordings spotted: {spotted['micro']} micro-expressions found, "
              f"{spotted['none']} with {NO_MICRO} (rows \"interval\" and \"summary\")")
    if still[0]:
        print(f"  {still[0]} clips where {STILL} (label left empty; see the notes column)")
    if noted[0]:
        print(f"  {noted[0]} of the predictions carry notes on the face track (frames left out, shot cuts, …): see "
              f"the face_coverage and notes columns")
    for reason, n in reasons.most_common(5):
        print(f"  {n} × {reason}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
