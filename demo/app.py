"""The Gradio app: upload (or record) a clip → aligned face → Décalcomanie views → OLR verdict.

The pipeline of :mod:`inference.recognise` (the batch command's and the Python API's, with their defaults) decides,
in auto mode, whether a clip is one expression (classified whole) or a recording to *spot* first (the rule:
:data:`inference.recognise.AUTO_RULE`; the visitor may force spot or whole); the summary says which and why. A spotted
recording gets a timeline of the motion signal with the face's presence, the spotted intervals coloured by their
predicted class and the peaks the spotter left out (dashed, with the reason), a table of the intervals, and the chosen
interval's aligned O/L/R frames and per-view probabilities. The verdict, its reliability and the timeline sit on the
first screen (1366×768, or a phone's, scrolled into view); every note is said once, in one block. An upload the browser
cannot play (an AVI, …) is shown as an H.264 preview (:func:`browser_preview`); the analysis reads the upload.

A motion package (flow image, flow clip, grey + flow clip, magnified) shows beside the verdict the input its model
saw (:func:`motion_sheet`): the optical flow in colour (hue: direction, brightness: magnitude) with the optical strain
(or the grey level), or the magnified face; for a spotted recording, the chosen interval's. A model trained on real
data shows, in place of the synthetic-weights warning, the card's provenance line (:func:`provenance_markdown`: what it
was trained on, how many subjects, how it is served, its honest LOSO figure and protocol). An FSB fold package takes
the views choice as test-time views (each view through every fold).

:class:`Analyser` is the work behind the page, usable without a browser: ``Analyser(predictor).analyse(path)``
returns everything the page shows. :func:`build_app` lays the page out around it; ``python -m demo`` starts it.
Only ``inference`` is imported: the demo runs on a serving box without the training stack.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import signal
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from inference.errors import InputError
from inference.inputs import kind as input_kind
from inference.recognise import AUTO_RULE, DEFAULT_MODE, MODES, NO_MICRO, STILL, Recogniser, Recognition
from inference.runtime import Prediction, Predictor
from inference.spotting import SpotParams
from inference.views import make_view

ROOT = Path(__file__).resolve().parent
DEFAULT_MODEL = ROOT / "default_model"
EXAMPLES = ROOT / "examples"
VIEW_CHOICES = ["O", "OL", "OR", "LR", "OLR"]
STAGES = {"decode": (0.05, "decoding the clip"), "face": (0.3, "finding and aligning the face"),
          "spot": (0.6, "spotting micro-expressions"), "model": (0.85, "running the model")}
# colours of the classes on the timeline (in the package's label order); macro-expressions are not classified
PALETTE = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (255, 127, 14), (148, 103, 189), (140, 86, 75),
           (227, 119, 194), (23, 190, 207)]
MACRO_COLOUR = (170, 170, 170)
REJECTED_COLOUR = (120, 120, 120)  # motion peaks the spotter left out: a dashed outline and the reason
INTERVAL_COLUMNS = ["#", "start s", "apex s", "end s", "kind", "score", "label", "probability"]
MODE_WORDS = {"auto": "auto (the clip decides)", "spot": "spot (search a recording)",
              "whole": "whole (one expression)"}
SHOWN_FRAMES = 4  # frames shown per view
SHOWN_SIZE = 128  # px per shown frame

TIMELINE_LABEL = "Timeline: motion, face presence, spotted intervals (dashed: left out)"
PAGE_CSS = """
#intro p { margin: 0 0 4px 0; }
#intervals table { table-layout: auto; }
#intervals th, #intervals td { white-space: nowrap; }
"""
# after an analysis: bring the verdict to the top of the screen when it is not all in view (a phone's narrow page
# stacks the clip above it)
SCROLL_TO_VERDICT = """() => {
  const top = document.querySelector('#synthetic-warning');
  const shown = ['#timeline', '#label'].map(q => document.querySelector(q)).filter(e => e && e.offsetParent);
  if (!top || !shown.length) return;
  const a = top.getBoundingClientRect();
  const b = {bottom: Math.max(...shown.map(e => e.getBoundingClientRect().bottom))};
  if (a.top < 0 || b.bottom > window.innerHeight) window.scrollBy(0, a.top - 4);
}"""
# the browser's own "Video not playable" toast, raised the moment an AVI is put in a <video> element, before the
# page's playable preview (browser_preview) replaces it: not shown (the preview plays; the analysis reads the upload)
PAGE_HEAD = """<script>
new MutationObserver(() => {
  for (const t of document.querySelectorAll('.toast-body')) {
    if (t.innerText.includes('Video not playable')) t.remove();
  }
}).observe(document.documentElement, {childList: true, subtree: true});
</script>"""
TEMP_ROOT_NAME = "micro-expression-demo"  # this app's folder inside Gradio's temporary folder: one sub-folder per run
SYNTHETIC_WARNING = ("⚠ **Demo weights trained on synthetic faces only**: this verdict shows the pipeline working; "
                     "it is not a reading of a real person's expression.")

log = logging.getLogger("demo")


@dataclass
class Limits:
    """What the demo accepts and how much work it takes on at once."""

    max_upload_mb: float = 50.0
    max_seconds: float = 60.0  # a recording is spotted for its micro-expressions (decoding keeps memory bounded)
    max_frames: int = 3600  # 60 s at 60 fps
    queue_size: int = 8  # waiting requests beyond the running ones; more are turned away with a message
    concurrency: int = 1  # analyses at once (each uses every core)
    keep_files_s: int = 1800  # uploads and results older than this are deleted (checked every min(600, this) s)


@dataclass(repr=False)
class Analysis:
    """Everything the page shows for one clip. Spotted recordings: ``spot`` holds the intervals and signals, and
    ``prediction`` is the chosen micro-expression's (``chosen``: its index in ``spot.micro``; None and no prediction
    when there is none)."""

    prediction: Prediction | None
    sheets: dict[str, np.ndarray]  # "O", "L", "R" → an (H, W, 3) uint8 contact sheet of the aligned view
    per_view: list[dict] = field(default_factory=list)  # rows: view, label, probability (SBML only)
    notes: list[str] = field(default_factory=list)
    spot: Recognition | None = None
    chosen: int | None = None
    timings: dict[str, float] = field(default_factory=dict)
    motion: np.ndarray | None = None  # motion packages: the prediction's model input as an image (motion_sheet)

    def __repr__(self) -> str:  # a summary: the sheets and the clip are arrays of thousands of values
        shown = f"{self.prediction.top} {float(np.max(self.prediction.probs)):.3f}" if self.prediction else None
        return (f"Analysis(mode={self.mode!r}, shown={shown}, chosen={self.chosen}, notes={len(self.notes)}, "
                f"spot={self.spot!r})")

    @property
    def fused(self) -> dict[str, float]:
        """Fused probabilities by label, as the page's Label takes them ({} when nothing was classified)."""
        if self.prediction is None:
            return {}
        return {k: float(p) for k, p in zip(self.prediction.labels, self.prediction.probs)}

    @property
    def mode(self) -> str:
        return self.spot.mode if self.spot is not None else "whole"

    def interval_rows(self) -> list[dict]:
        """The table of spotted intervals: seconds of the recording, kind, score, predicted class."""
        if self.spot is None or self.spot.mode != "spot":
            return []
        fps, first = self.spot.prepared.fps, self.spot.first_frame
        rows = []
        for i, p in enumerate(self.spot.intervals):
            row = p.as_dict(fps, first)
            rows.append({"#": i + 1, "start s": round(row["start_s"], 2), "apex s": round(row["apex_s"], 2),
                         "end s": round(row["end_s"], 2),
                         "kind": row["kind"], "score": row["score"], "label": row.get("label", ""),
                         "probability": round(max(row["probs"].values()), 3) if "probs" in row else None})
        return rows

    def choices(self) -> list[str]:
        """One name per micro-expression found (the interval chooser's entries), in ``spot.micro`` order."""
        return [f"#{r['#']} · {r['start s']:.2f}–{r['end s']:.2f} s · {r['label']}" for r in self.interval_rows()
                if r["kind"] == "micro"]


def shown_row(row: dict) -> dict:
    """An interval row as the page's table shows it: seconds to two decimals, the probability in percent."""
    out = {**row, **{k: f"{row[k]:.2f}" for k in ("start s", "apex s", "end s")}, "score": f"{row['score']:.1f}"}
    out["probability"] = f"{row['probability']:.0%}" if row.get("probability") is not None else ""
    return out


def contact_sheet(frames: np.ndarray, n: int = SHOWN_FRAMES, size: int = SHOWN_SIZE, gap: int = 4) -> np.ndarray:
    """``n`` evenly spaced frames of a ``(T, S, S, 3)`` clip, scaled to ``size`` px, in a square-ish grid read
    left to right, top to bottom (2×2 for four frames)."""
    import cv2

    idx = np.linspace(0, len(frames) - 1, min(n, len(frames))).round().astype(int)
    cols = int(np.ceil(np.sqrt(len(idx))))
    rows = int(np.ceil(len(idx) / cols))
    sheet = np.full((rows * (size + gap) - gap, cols * (size + gap) - gap, 3), 255, np.uint8)
    for k, i in enumerate(idx):
        r, c = divmod(k, cols)
        sheet[r * (size + gap):r * (size + gap) + size, c * (size + gap):c * (size + gap) + size] = cv2.resize(
            frames[i], (size, size), interpolation=cv2.INTER_CUBIC)
    return sheet


def flow_colour(u: np.ndarray, v: np.ndarray, top: float) -> np.ndarray:
    """A flow field as an RGB image: hue = direction (0° = rightwards), brightness = magnitude over ``top``."""
    import cv2

    hsv = np.empty(u.shape + (3,), np.uint8)
    hsv[..., 0] = np.round(np.degrees(np.arctan2(v, u)) % 360 / 2).astype(np.uint8) % 180
    hsv[..., 1] = 255
    hsv[..., 2] = np.clip(np.round(np.hypot(u, v) / top * 255), 0, 255).astype(np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


def motion_sheet(motion: np.ndarray, kind: str, recipe: dict | None = None, n: int = SHOWN_FRAMES,
                 size: int = SHOWN_SIZE, gap: int = 4) -> np.ndarray:
    """A motion package's graph input ``(T, H, W, 3)`` uint8 (``Prediction.motion``) as an image a visitor reads:
    a kind without motion vectors (``magnified``) as :func:`contact_sheet`; the flow kinds as up to ``n`` evenly
    spaced frames side by side (one for a flow image), the flow in colour (:func:`flow_colour`, brightness relative to
    the largest motion shown) above the third channel (optical strain, or the grey level). Which channel holds u, v and
    the rest, and where zero motion lies (``recipe``: the package's motion recipe, its scaling), is the input kind's
    row's (:mod:`inference.inputs`)."""
    import cv2

    row = input_kind(kind)
    if not row.vectors:
        return contact_sheet(motion, n, size, gap)
    x = np.asarray(motion)[np.linspace(0, len(motion) - 1, min(n, len(motion))).round().astype(int)]
    rest = next(c for c in range(3) if c not in row.uv)
    if row.strain is None:  # a scalar image beside the flow (grey levels): shown as it is
        zero = row.zeros(recipe, x)[:, None, None, :]
        u, v = (x[..., c].astype(np.float32) - zero[..., c] for c in row.uv)
        below = x[..., rest]
    else:
        zero = row.zeros(recipe, x)[:, None, None, :]
        u, v, s = (x[..., c].astype(np.float32) - zero[..., c] for c in (*row.uv, row.strain))
        below = np.clip(np.round(s / max(float(s.max()), 1e-6) * 255), 0, 255).astype(np.uint8)
    top = max(float(np.hypot(u, v).max()), 1e-6)
    sheet = np.full((2 * size + gap, len(x) * (size + gap) - gap, 3), 255, np.uint8)
    for i in range(len(x)):
        tiles = (flow_colour(u[i], v[i], top), np.repeat(below[i][..., None], 3, axis=-1))
        for r, tile in enumerate(tiles):  # nearest: a 28 px flow image's pixels stay visible as they are
            sheet[r * (size + gap):r * (size + gap) + size, i * (size + gap):i * (size + gap) + size] = cv2.resize(
                tile, (size, size), interpolation=cv2.INTER_NEAREST)
    return sheet


REJECTED_WORDS = {"short": "too short", "blink": "blink", "head": "head moved", "talking": "talking",
                  "threshold": "below threshold", "edge": "at the edge"}


def timeline_image(spot: Recognition, labels: list[str], width: int = 960, height: int = 240) -> np.ndarray:
    """The recording's timeline as an RGB image (PIL, no plotting library): the spotter's motion signal (contrast)
    and its threshold over the decoded frames, a band below it with the face's presence (green: the face segment
    analysed, red: frames left out), and the spotted intervals shaded in their predicted class's colour (grey:
    macro-expressions, not classified), numbered as in the table."""
    from PIL import Image, ImageDraw

    prepared, sig, first = spot.prepared, spot.signals, spot.first_frame
    n = max(int(prepared.input_frames), first + len(prepared.frames))
    fps = prepared.fps
    left, right, top, band, bottom = 48, 12, 26, 12, 34
    plot_h = height - top - band - bottom - 6
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img, "RGBA")
    x_of = lambda f: left + (width - left - right) * f / max(n, 1)  # noqa: E731 — frame → pixel
    values = sig.at_given(sig.contrast, len(prepared.frames))
    vmax = max(float(values.max()), sig.threshold) * 1.15 or 1.0
    y_of = lambda v: top + plot_h * (1 - v / vmax)  # noqa: E731
    colours = {k: PALETTE[i % len(PALETTE)] for i, k in enumerate(labels)}
    for number, p in enumerate(spot.intervals, 1):
        a, b = x_of(p.interval.onset + first), x_of(p.interval.offset + first + 1)
        colour = colours[p.prediction.top] if p.prediction is not None else MACRO_COLOUR
        draw.rectangle([a, top, max(b, a + 2), top + plot_h], fill=(*colour, 90), outline=(*colour, 255))
        draw.text((a + 2, top + 2), f"#{number}", fill=(*colour, 255))
    for r in spot.rejected:  # left out by the spotter: a dashed outline, the reason in a word
        a, b = x_of(r.onset + first), max(x_of(r.offset + first + 1), x_of(r.onset + first) + 2)
        for y0 in range(top, top + plot_h, 6):
            draw.line([(a, y0), (a, min(y0 + 3, top + plot_h))], fill=(*REJECTED_COLOUR, 255))
            draw.line([(b, y0), (b, min(y0 + 3, top + plot_h))], fill=(*REJECTED_COLOUR, 255))
        draw.text((a + 2, top + plot_h - 12), REJECTED_WORDS.get(r.reason, r.reason), fill=(*REJECTED_COLOUR, 255))
    draw.line([(x_of(first + i), y_of(float(v))) for i, v in enumerate(values)], fill=(20, 20, 20), width=1)
    y = y_of(sig.threshold)
    for x in range(left, width - right, 8):
        draw.line([(x, y), (min(x + 4, width - right), y)], fill=(200, 0, 0), width=1)
    draw.text((width - right - 60, y - 12), "threshold", fill=(200, 0, 0))
    band_y = top + plot_h + 6
    draw.rectangle([left, band_y, width - right, band_y + band], fill=(235, 235, 235))
    for a, b, _reason in (prepared.quality.dropped if prepared.quality else []):
        draw.rectangle([x_of(a), band_y, x_of(b + 1), band_y + band], fill=(230, 120, 120))
    draw.rectangle([x_of(first), band_y, x_of(first + len(prepared.frames)), band_y + band], fill=(110, 190, 110))
    draw.text((4, band_y), "face", fill=(60, 60, 60))
    draw.text((4, top), "motion", fill=(60, 60, 60))
    seconds = n / fps
    step = next(s for s in (0.5, 1, 2, 5, 10, 20, 30, 60) if seconds / s <= 12)
    for k in range(int(seconds / step) + 1):
        x = x_of(k * step * fps)
        draw.line([(x, band_y + band), (x, band_y + band + 4)], fill=(60, 60, 60))
        draw.text((x - 8, band_y + band + 6), f"{k * step:g} s", fill=(60, 60, 60))
    legend = [*colours.items(), ("macro (not classified)", MACRO_COLOUR)]
    if spot.rejected:
        legend.append(("left out (dashed)", REJECTED_COLOUR))  # above the plot, on the right (the
    x = width - right - sum(24 + int(draw.textlength(k)) for k, _ in legend)  # page's image label sits top left)
    for k, c in legend:
        draw.rectangle([x, 6, x + 10, 16], fill=c)
        draw.text((x + 14, 5), k, fill=(40, 40, 40))
        x += 24 + int(draw.textlength(k))
    return np.asarray(img)


class Analyser:
    """One model, one clip at a time: ``analyse(path, views)`` → :class:`Analysis`, or :class:`InputError`."""

    def __init__(self, predictor: Predictor, spot: SpotParams = SpotParams()):
        self.predictor, self.spot = predictor, spot  # spot: the spotter's settings (a learned spotter file, or none)
        self.recogniser = Recogniser(predictor, spot)  # the one pipeline (inference.recognise)

    @property
    def sbml(self) -> bool:
        return self.predictor.sbml

    @property
    def views_choosable(self) -> bool:
        """SBML packages vote with the chosen views in their graph; a fold package of single-view FSB folds takes them
        as test-time views (:meth:`inference.package.ModelPackage.test_time_views`: each view through every fold,
        averaged); FSB-OLR folds always fuse their own three."""
        return self.sbml or self.predictor.package.views_outside

    def analyse(self, path: str | os.PathLike | None, views: str | None = None, on_stage=None,
                mode: str | None = DEFAULT_MODE) -> Analysis:
        """``mode`` auto (:data:`inference.recognise.AUTO_RULE`: a short clip holding one expression is classified
        whole, a recording spotted), spot or whole; the strongest micro-expression found is shown first
        (:meth:`choose` shows another)."""
        if not path:
            raise InputError("No clip was given. Upload a short video of one face (or record one with the webcam), "
                             "or click one of the examples.")
        if views and not self.views_choosable and views != self.predictor.views:
            views = None  # an FSB package always uses its own views; the page says so beside the choice
        try:
            result = self.recogniser(path, None, on_stage, views or None, mode or DEFAULT_MODE)
        except InputError as e:  # name the upload by its file name, not the server's temporary path
            raise InputError(str(e).replace(str(path), Path(path).name)) from None
        prepared = result.prepared
        notes = []
        if prepared.face.get("mode") == "tracked":
            notes.append("The head moved during the clip, so the face was tracked frame by frame.")
        # peaks left out, the face track (the summary line says "no micro-expression" and "nothing to classify")
        notes += [n[:1].upper() + n[1:] for n in result.notes if n not in (NO_MICRO, STILL)]
        if result.mode == "whole":
            return replace(self._shown(Analysis(result.whole, {}, notes=notes, spot=result)),
                           timings=result.timings)
        micro = result.micro
        chosen = max(range(len(micro)), key=lambda i: micro[i].interval.score) if micro else None
        return self.choose(Analysis(None, {}, notes=notes, spot=result, timings=result.timings), chosen)

    def choose(self, analysis: Analysis, chosen: int | None) -> Analysis:
        """The analysis showing micro-expression ``chosen`` (an index into ``analysis.spot.micro``; None: the whole
        face segment, nothing classified)."""
        if chosen is None:
            return self._shown(replace(analysis, prediction=None, chosen=None))
        return self._shown(replace(analysis, prediction=analysis.spot.micro[chosen].prediction, chosen=chosen))

    def _shown(self, analysis: Analysis) -> Analysis:
        """Its prediction's aligned O/L/R frames, per-view probabilities and (motion packages) the model's motion
        input (no prediction: the face segment's frames, no motion)."""
        pred = analysis.prediction
        frames = pred.aligned if pred is not None else analysis.spot.prepared.frames
        sheets = {v: contact_sheet(make_view(frames, v)) for v in "OLR"}
        rows = [] if pred is None else [{"view": v, "label": k, "probability": float(p)}
                                        for v, probs in pred.per_view.items() for k, p in zip(pred.labels, probs)]
        package = self.predictor.package
        motion = None if pred is None or pred.motion is None else motion_sheet(
            pred.motion, package.input.kind, package.motion)
        return replace(analysis, sheets=sheets, per_view=rows, motion=motion)

    def warm_up(self, clip: str | os.PathLike | None) -> None:
        """Load the face detector and the model's kernels once, so the first visitor does not wait for that."""
        if clip and Path(clip).exists():
            try:
                self.analyse(clip)
            except InputError as e:
                log.warning("warm-up on %s failed: %s", clip, e)


# --------------------------------------------------------------------------- a preview the browser plays
PLAYABLE_CONTAINERS = {".mp4", ".m4v", ".webm", ".ogg", ".ogv", ".mov"}  # what browsers open (with the codecs below)
PLAYABLE_CODECS = {"h264", "vp8", "vp9", "av1", "theora"}
PREVIEW_SIDE = 640  # a preview's longer side at most, px


def browser_plays(path: str | os.PathLike) -> bool:
    """Whether a browser can play the file as it is: a container and a video codec every current browser opens.
    An unreadable file answers True: the analysis refuses it with the reason."""
    import av

    if Path(path).suffix.lower() not in PLAYABLE_CONTAINERS:
        return False
    try:
        with av.open(str(path)) as container:
            codecs = [s.codec_context.name for s in container.streams.video]
    except Exception:  # noqa: BLE001 — not ours to judge here: the analysis says what is wrong with it
        return True
    return bool(codecs) and codecs[0] in PLAYABLE_CODECS


def browser_preview(path: str | os.PathLike, limits: Limits = Limits(), folder: str | os.PathLike | None = None
                    ) -> Path | None:
    """An H.264 MP4 the browser plays, for an upload it cannot play (an AVI, MPEG-4 Part 2, …): the first video
    stream decoded frame by frame and encoded as it comes (memory: a frame or two), at most :data:`PREVIEW_SIDE` px,
    no longer than ``limits.max_seconds``, without sound. None when the file plays as it is or cannot be read (the
    analysis says why). Only the preview is new: the analysis reads the upload itself."""
    import av

    from inference.video import write_video

    if browser_plays(path):
        return None
    path = Path(path)
    out = Path(folder or path.parent) / f"{path.stem}.preview.mp4"
    try:
        with av.open(str(path)) as container:
            cover = av.stream.Disposition.attached_pic
            stream = next(s for s in container.streams.video if not (s.disposition & cover))
            fps = float(stream.average_rate or stream.guessed_rate or 25)
            w, h = stream.codec_context.width, stream.codec_context.height
            scale = min(1.0, PREVIEW_SIDE / max(w, h, 1))
            size = (max(2, int(w * scale) // 2 * 2), max(2, int(h * scale) // 2 * 2))
            most = int(limits.max_seconds * fps) + 1

            def frames():
                for i, frame in enumerate(container.decode(stream)):
                    if i >= most:
                        break
                    yield frame.reformat(width=size[0], height=size[1], format="rgb24").to_ndarray()

            write_video(out, frames(), fps, crf=26, preset="veryfast")
    except Exception as e:  # noqa: BLE001 — no preview is no reason to refuse: the analysis still reads the file
        log.info("no preview for %s: %s", path.name, e)
        return None
    return out


# --------------------------------------------------------------------------- text for the page
def _plain(text: str) -> str:
    """A config's words for a page: without the addresses in brackets (``(https://…)``, one nested bracket kept
    inside) and without the training caches' server paths (``; caches …``)."""
    text = text.split("; caches")[0]
    return re.sub(r"\s*\(https?://[^()\s]*(?:\s*\([^()]*\))?\)", "", text).strip()


def honest_figure(package) -> dict | None:
    """The model's honest leave-one-subject-out figure, from ``config.json``: the package's own LOSO metrics (a
    project run: ``loso``), else the figure the authors of converted weights published (``folds.source``'s
    ``authors_figure``); ``{uf1, uar, war | None, subjects, clips, protocol, by, warning}`` or None."""
    folds = package.folds
    if package.loso:
        loso, proto = package.loso, package.loso.protocol
        return {"uf1": loso.uf1, "uar": loso.uar, "war": loso.war,
                "subjects": proto.get("subjects") or (len(folds.subjects) if folds else None),
                "clips": proto.get("clips", loso.n), "protocol": proto.get("dataset_protocol", package.protocol),
                "selection": proto.get("selection"), "by": "measured when it was trained",
                "warning": getattr(loso, "warning", None)}
    authors = (folds.source or {}).get("authors_figure") if folds else None
    if authors:
        return {"uf1": float(authors["uf1"]), "uar": float(authors["uar"]), "war": None,
                "subjects": len(folds.subjects), "clips": None, "protocol": folds.protocol or package.protocol,
                "selection": None, "by": str(authors.get("source") or "the authors' figure").split(":")[0],
                "warning": None}
    return None


def provenance_markdown(package) -> str | None:
    """The card's provenance in a line, for a model trained on real data (None for synthetic demo weights): what it
    was trained on, how many subjects, how it is served (a fold package: its folds' mean), and its honest LOSO figure
    with the protocol that gave it (:func:`honest_figure`)."""
    if package.synthetic:
        return None
    folds, fig = package.folds, honest_figure(package)
    data = _plain(package.training_data or "") or "data not recorded"
    subjects = fig["subjects"] if fig else (len(folds.subjects) if folds else None)
    line = f"**Trained on** {data}" + (f"; {subjects} subjects" if subjects else "") + "."
    if folds:
        source = folds.source or {}
        where = str(source.get("from") or "published weights").split()[0]  # the address, without its file pattern
        origin = (f"the authors' {len(folds.subjects)} fold models ({where}), converted"
                  if source.get("kind") == "converted" else f"{len(folds.subjects)} fold models of one LOSO run")
        line += f" **Served as** the mean of {origin}."
    if fig:
        scores = f"UF1 {fig['uf1']:.4f} · UAR {fig['uar']:.4f}" + (f" · WAR {fig['war']:.4f}" if fig["war"] else "")
        protocol = ", ".join(x for x in (
            "leave-one-subject-out" + (f" on {fig['subjects']} subjects" if fig["subjects"] else ""),
            f"{fig['clips']} clips" if fig["clips"] else "", f"{fig['protocol']} protocol" if fig["protocol"] else "",
            f"selection: {fig['selection']}" if fig["selection"] else "") if x)
        line += f" **Honest figure:** {scores} ({protocol}; {fig['by']})."
        if fig["warning"]:
            line += f" ⚠ {fig['warning']}"
    else:
        line += " **Honest figure:** not measured."
    return line


def reliability_markdown(predictor: Predictor) -> str:
    """How far to trust a verdict, in a line beside it: the synthetic-data warning, or for a model trained on real
    data the card's provenance line (:func:`provenance_markdown`); and the model's score on people it never saw
    (LOSO UF1, in plain words)."""
    c = predictor.package
    chance = f"chance ≈ {1 / max(len(predictor.labels), 1):.0%}"
    if c.synthetic:
        measured = (f" **Reliability:** {c.loso.uf1:.0%} (UF1, {chance}) on synthetic faces it never saw; not "
                    f"measured on real people." if c.loso else "")
        return SYNTHETIC_WARNING + measured
    fig = honest_figure(c)
    if fig:
        right = f"{fig['war']:.0%} of the clips right, " if fig["war"] is not None else ""
        reliable = (f"**Reliability:** on people it never saw, {right}{fig['uf1']:.0%} balanced over the classes "
                    f"(UF1, {chance}).")
    else:
        reliable = "**Reliability:** not measured for this model."
    return f"{reliable}\n\n{provenance_markdown(c)}"


def card_facts(predictor: Predictor, source: str) -> str:
    """The model card as Markdown: in plain words first (what it recognises, how reliable, trained on what), then
    the facts in a details table (scheme, backbone, LOSO protocol, runtime)."""
    c = predictor.package
    lines = []
    if c.synthetic:
        lines.append("> **Demo weights trained on synthetic faces only** (the project's generator, "
                     "`python -m training.synth`). They show the pipeline working end to end; they are not a "
                     "micro-expression recogniser for real people.\n")
    labels = ", ".join(predictor.labels)
    fig = honest_figure(c)
    reliable = (f"Tested on people left out of its training, it got {c.loso.war:.0%} of the clips right, and "
                f"{c.loso.uf1:.0%} balanced over the classes (UF1)." if c.loso else
                f"Tested on people left out of its training, {fig['uf1']:.0%} balanced over the classes (UF1; "
                f"{fig['by']})." if fig else "Its accuracy was not measured.")
    lines += [f"**What it recognises:** the micro-expression in a face clip, as one of {len(predictor.labels)} "
              f"classes: {labels}.", "",
              f"**How reliable:** {reliable}", "",
              f"**Trained on:** {(c.training_data or 'not recorded').split('; caches')[0]}.", "",
              "| detail | value |", "| --- | --- |",
              f"| model | {c.name}: {c.summary} |",
              f"| training data | {(c.training_data or 'not recorded').split('; caches')[0]} |",
              f"| scheme | {c.scheme.upper()}, trained on views {c.train_views}, test views {c.test_views} |",
              f"| backbone | {c.backbone.get('name', '?')}, {c.n_frames} frames of {c.size or '?'} px |"]
    if c.loso:
        loso, proto = c.loso, c.loso.protocol
        lines.append(f"| LOSO | UF1 {loso.uf1:.3f} · UAR {loso.uar:.3f} · WAR {loso.war:.3f} "
                     f"({proto.get('subjects', '?')} subjects, {proto.get('clips', loso.n or '?')} clips, "
                     f"{proto.get('dataset_protocol', c.protocol or '?')} protocol, predictions pooled over "
                     f"folds, selection: {proto.get('selection', '?')}) |")
    elif fig:
        lines.append(f"| LOSO | UF1 {fig['uf1']:.4f} · UAR {fig['uar']:.4f} ({fig['subjects']} subjects, "
                     f"{fig['protocol']} protocol; {fig['by']}) |")
    else:
        lines.append("| LOSO | not evaluated |")
    if c.folds:
        lines.append(f"| folds | {len(c.folds.subjects)} LOSO fold models, keyed by held-out subject; the verdict is "
                     f"their mean |")
    cal = c.calibration
    if cal is not None:
        lines.append(f"| calibration | temperature {cal.temperature:g} fitted on {cal.clips} out-of-subject LOSO "
                     f"predictions; ECE {cal.ece_before} → {cal.ece_after}; below {cal.floor:.0%} confidence the "
                     f"verdict is shown as uncertain |")
    lines.append(f"| runs on | {predictor.variant} graph on {predictor.provider} |")
    lines.append(f"| package | {package_name(source)} |")
    return "\n".join(lines)


def example_name(path: str | os.PathLike) -> str:
    """An example's name on the page, from its file and its length: "recording.mp4" → "A recording to search
    (6.0 s)"; any other (the examples named after a class) → "One micro-expression: surprise (0.46 s)"."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    n, fps = cap.get(cv2.CAP_PROP_FRAME_COUNT), cap.get(cv2.CAP_PROP_FPS)
    cap.release()
    length = f" ({n / fps:.2f} s)" if n > 0 and fps > 0 else ""
    stem = Path(path).stem
    if stem == "recording":
        return f"A recording to search{length.replace('.00 s', ' s')}"
    return f"One micro-expression: {stem.replace('_', ' ')}{length}"


def package_name(source: str) -> str:
    """How the page names the package: a Hub reference as given, the bundled one as such, a folder by its name
    only (a visitor has no business with the server's file paths)."""
    if source.startswith("hf://"):
        return f"`{source}`"
    path = Path(source)
    if path.resolve() == DEFAULT_MODEL.resolve():
        return "the bundled demo package"
    return f"`{path.name or source}`"


def quality_markdown(prediction: Prediction) -> str:
    """What the verdict rests on, in a line: faces seen, face coverage and the frames used, shots."""
    q = prediction.quality
    text = f"faces seen: {prediction.faces_seen}"
    if q is not None:
        first, last = q.frames_used
        text += (f" · face coverage: {q.face_coverage:.0%} (frames {first}–{last} used) · "
                 f"shot{'s' if len(q.shots) != 1 else ''}: {len(q.shots)}")
    return text


def verdict_markdown(p: Prediction, fused: dict) -> str:
    """The label and its probability; "uncertain" below the package's confidence floor (a calibrated package), and
    the fold ensemble's spread (a fold package)."""
    text = f"**{p.top}** ({fused[p.top]:.0%})"
    if p.uncertain:
        text = f"**uncertain** — perhaps {p.top} ({fused[p.top]:.0%}, below the model's confidence floor " \
               f"{p.floor:.0%})"
    spread = p.spread
    if spread is not None:
        text += f", ±{float(spread[p.labels.index(p.top)]):.0%} across {len(p.fold_probs)} fold models"
    return text


def summary_markdown(result: Analysis) -> str:
    """The verdict in a line, the mode applied and why, what the verdict rests on; then every note once (the page's
    one place for warnings)."""
    p, spot = result.prediction, result.spot
    if result.mode == "spot":
        prepared = spot.prepared
        found = len(spot.micro)
        seconds = prepared.input_frames / prepared.fps
        head = (f"**{found} micro-expression{'s' if found != 1 else ''}** spotted in {seconds:.1f} s"
                if found else f"**No micro-expression found** in {seconds:.1f} s")
        if p is not None:
            number, when, _ = result.choices()[result.chosen].split(" · ")
            shown = f"showing it (row {number} of the table, {when})" if found == 1 else \
                f"showing row {number} of the table ({when})"
            head += f"; {shown}: {verdict_markdown(p, result.fused)}"
        text = f"{head}\n\n{quality_markdown(prepared)}"
    elif p is None:  # whole mode, the face does not move at all: nothing classified
        text = f"**Nothing to classify**: {STILL}\n\n{quality_markdown(spot.prepared)}"
    else:
        text = f"{verdict_markdown(p, result.fused)} from views **{p.views}**\n\n{quality_markdown(p)}"
    if spot is not None and spot.why:
        text += f" · **mode: {result.mode}** ({spot.why[:1].lower() + spot.why[1:]})"
    return text


def notes_markdown(result: Analysis) -> str:
    """The page's one place for warnings: every note once (the face track's, the motion peaks left out)."""
    return "\n\n".join(f"⚠ {n}" for n in result.notes)


def timings_markdown(timings: dict[str, float]) -> str:
    order = ["decode", "face", "resample", "motion", "spot", "model", "fuse", "total"]
    cells = [f"{k} {timings[k] * 1000:.0f} ms" for k in order if k in timings]
    return "**Timings:** " + " · ".join(cells)


# --------------------------------------------------------------------------- the page
def build_app(predictor: Predictor, limits: Limits = Limits(), source: str = "", examples: list[str] | None = None,
              spot: SpotParams = SpotParams()):
    """The Gradio Blocks app around ``predictor``. Call ``.launch()`` on it (``python -m demo`` does)."""
    import gradio as gr
    import pandas as pd

    analyser = Analyser(predictor, spot)
    if examples is None:
        examples = sorted(str(p) for p in EXAMPLES.glob("*.mp4"))

    def run(video, views, mode=DEFAULT_MODE, upload=None, progress=gr.Progress()):
        if upload and video and Path(video).name == upload["preview"]:
            video = upload["original"]  # the page plays our preview; the analysis reads what was uploaded

        def on_stage(name):
            frac, desc = STAGES.get(name, (None, name))
            progress(frac, desc=desc)

        try:
            result = analyser.analyse(video, views, on_stage=on_stage, mode=mode)
        except InputError as e:  # the visitor's mistake: one line in the log, the message on the page
            log.info("refused: %s", e)  # the message names the upload (never the server's path)
            raise gr.Error(str(e), title="This clip cannot be analysed", print_exception=False) from None
        except Exception as e:  # noqa: BLE001 — the page gets a message, the log gets the traceback
            log.exception("analysis of %s failed", video)
            raise gr.Error(f"The clip could not be analysed ({type(e).__name__}: {e}). Try another clip; if this "
                           f"one should work, please report it with the clip.", title="Something went wrong") from None
        return (*shown(result), summary_markdown(result), notes_markdown(result), timings_markdown(result.timings),
                result)

    def shown(result: Analysis):
        """The verdict's outputs: fused probabilities, the O/L/R frames, the per-view chart."""
        chart = pd.DataFrame(result.per_view, columns=["view", "label", "probability"])
        nothing = "no movement" if result.mode == "whole" else NO_MICRO
        return (result.fused or nothing, result.sheets["O"], result.sheets["L"], result.sheets["R"],
                gr.update(value=chart, visible=analyser.sbml and bool(result.per_view)))  # no empty chart

    def timeline(result: Analysis | None):
        spotted = result is not None and result.mode == "spot"
        table = pd.DataFrame([shown_row(r) for r in result.interval_rows()] if spotted else [],
                             columns=INTERVAL_COLUMNS)
        names = result.choices() if spotted else []
        chosen = names[result.chosen] if spotted and result.chosen is not None else None
        return (gr.update(value=timeline_image(result.spot, predictor.labels) if spotted else None, visible=spotted,
                          label=TIMELINE_LABEL),
                gr.update(value=table, visible=spotted),
                gr.update(choices=names, value=chosen, visible=spotted and bool(names)))

    def choose(name: str | None, result: Analysis | None):
        if result is None or result.mode != "spot" or name not in result.choices():
            raise gr.Error("Analyse a recording first, then choose one of its micro-expressions.",
                           title="Nothing to choose", print_exception=False)
        result = analyser.choose(result, result.choices().index(name))
        return (*shown(result), summary_markdown(result), notes_markdown(result), result)

    def motion_view(result: Analysis | None):
        return None if result is None else result.motion

    title = "Décalcomanie micro-expression recognition"
    delete_cache = (min(600, limits.keep_files_s), limits.keep_files_s)
    with gr.Blocks(title=title, analytics_enabled=False, delete_cache=delete_cache) as app:
        gr.Markdown(f"## {title}\nUpload a clip of one face (up to {limits.max_seconds:g} s and "
                    f"{limits.max_upload_mb:g} MB), or record one. A short clip holding one expression gets a verdict; "
                    "a longer recording is searched for micro-expressions first.", elem_id="intro")
        with gr.Row(equal_height=False):
            with gr.Column(scale=2, min_width=320):
                video = gr.Video(label="Clip", sources=["upload", "webcam"], include_audio=True, elem_id="clip",
                                 height=260)
                mode = gr.Radio([(MODE_WORDS[m], m) for m in MODES], value=DEFAULT_MODE, label="Mode",
                                info="auto: a short clip holding one expression gets one verdict; a longer recording "
                                     "is searched for micro-expressions first", elem_id="mode")
                with gr.Accordion("How auto mode decides", open=False, elem_id="auto-rule"):
                    gr.Markdown(AUTO_RULE)
                views = gr.Radio(VIEW_CHOICES, value=predictor.views, label="Test views",
                                 info=("Which views vote (their logits are summed)." if analyser.sbml else
                                       "Test-time views: each view goes through every fold (u reflected in the "
                                       "mirrored halves) and their probabilities are averaged." if
                                       analyser.views_choosable else
                                       f"This FSB package always fuses {predictor.views}."),
                                 interactive=analyser.views_choosable, elem_id="views")
                button = gr.Button("Analyse", variant="primary", elem_id="analyse")
                if examples:
                    gr.Examples(examples=[[e] for e in examples], inputs=[video], label="Examples (synthetic clips)"
                                if predictor.package.synthetic else "Examples", example_labels=[
                                    example_name(e) for e in examples], elem_id="examples")
            with gr.Column(scale=3, min_width=320):
                gr.Markdown(reliability_markdown(predictor), elem_id="synthetic-warning")
                summary = gr.Markdown(label="Summary", elem_id="summary")
                plot = gr.Image(label=TIMELINE_LABEL, elem_id="timeline", interactive=False, visible=False,
                                buttons=[], show_label=False)
                kind = predictor.package.input.kind if predictor.package.motion else None
                with gr.Row(equal_height=False):
                    label = gr.Label(num_top_classes=len(predictor.labels), label="Fused probabilities",
                                     elem_id="label", show_label=False, scale=3, min_width=200)
                    if kind:  # a motion model: the input it saw, beside the verdict
                        motion = gr.Image(label=input_kind(kind).shows or f"Motion input the model saw ({kind})",
                                          elem_id="motion", interactive=False, format="png",  # png: pixels exact
                                          scale=2, min_width=160, height=240, buttons=[])
                notes = gr.Markdown(label="Notes", elem_id="notes")
        with gr.Row():
            table = gr.Dataframe(headers=INTERVAL_COLUMNS, label="Spotted intervals", elem_id="intervals",
                                 interactive=False, visible=False, scale=3)
            choice = gr.Dropdown([], label="Show a micro-expression", elem_id="interval-choice", visible=False,
                                 info="its aligned O/L/R frames and per-view probabilities, below", scale=1,
                                 min_width=240)
        with gr.Row():
            face = gr.Image(label="Aligned face (O)", elem_id="view-o", interactive=False)
            left = gr.Image(label="L view (left half + its mirror)", elem_id="view-l", interactive=False)
            right = gr.Image(label="R view (right half + its mirror)", elem_id="view-r", interactive=False)
        chart = gr.BarPlot(x="view", y="probability", color="label", y_lim=[0, 1], sort=["O", "L", "R"],
                           label="Per-view probabilities (SBML: each view's own softmax)",
                           visible=False, elem_id="per-view")
        timing = gr.Markdown(label="Timings", elem_id="timings")
        state = gr.State(None)
        upload = gr.State(None)  # an upload the browser cannot play: {"original": its path, "preview": our MP4's name}
        with gr.Accordion("About the model", open=True):
            gr.Markdown(card_facts(predictor, source or str(predictor.folder)), elem_id="card")
        def previewed(path):
            """A browser-playable preview in place of an upload the browser cannot play (the upload is kept)."""
            preview = browser_preview(path, limits) if path else None
            if preview is None:
                return gr.update(), None
            return str(preview), {"original": path, "preview": preview.name}

        video.upload(previewed, [video], [video, upload], api_name="preview", concurrency_limit=limits.concurrency)
        analysed = button.click(run, [video, views, mode, upload],
                                [label, face, left, right, chart, summary, notes, timing, state],
                                api_name="analyse", concurrency_limit=limits.concurrency)
        analysed.then(timeline, [state], [plot, table, choice], api_name="timeline").then(
            None, None, None, js=SCROLL_TO_VERDICT)
        chosen = choice.input(choose, [choice, state], [label, face, left, right, chart, summary, notes, state],
                              api_name="interval")
        if kind:  # the motion image follows the verdict and each chosen interval
            analysed.then(motion_view, [state], [motion], api_name="motion")
            chosen.then(motion_view, [state], [motion], api_name="interval_motion")
    app.queue(max_size=limits.queue_size, default_concurrency_limit=limits.concurrency)
    app.analyser = analyser
    app.examples = examples
    app.limits = limits
    return app


class RunFolder:
    """This server's own temporary folder, ``<Gradio's temporary folder>/micro-expression-demo/<pid>-…``, locked (an
    flock on the folder) for as long as the server runs; Gradio puts the run's uploads and result images there
    (``GRADIO_TEMP_DIR`` points at it), and :meth:`close` removes it. Claiming one first removes the folders that
    earlier runs left behind (killed, crashed: nobody holds their lock), never one a running server holds. Create it
    before the app is built."""

    def __init__(self, base: str | os.PathLike | None = None):
        import fcntl

        base = base or os.environ.get("GRADIO_TEMP_DIR") or Path(tempfile.gettempdir()) / "gradio"
        self.root = Path(base) / TEMP_ROOT_NAME
        self.root.mkdir(parents=True, exist_ok=True)
        self.removed = self._remove_stale(fcntl)
        self.path = Path(tempfile.mkdtemp(prefix=f"{os.getpid()}-", dir=self.root))
        self._fd = os.open(self.path, os.O_RDONLY)
        fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.environ["GRADIO_TEMP_DIR"] = str(self.path)

    def _remove_stale(self, fcntl) -> list[Path]:
        removed = []
        for folder in self.root.iterdir():
            if not folder.is_dir():
                continue
            fd = os.open(folder, os.O_RDONLY)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:  # a running server holds it
                continue
            finally:
                os.close(fd)
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
        if removed:
            log.info("removed %d temporary folder(s) left by earlier runs in %s", len(removed), self.root)
        return removed

    def close(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
        os.close(self._fd)


def _stop(signum, _frame):
    raise KeyboardInterrupt(f"signal {signum}")


def launch(app, host: str = "127.0.0.1", port: int | None = None, share: bool = False, block: bool = True):
    """Start the server. ``block=False`` returns once it answers (tests, notebooks). A blocking server stops on
    SIGTERM as it does on Ctrl-C (Gradio closes it; the caller's clean-up runs)."""
    limits: Limits = app.limits
    if block:
        signal.signal(signal.SIGTERM, _stop)
    return app.launch(server_name=host, server_port=port, share=share, prevent_thread_lock=not block,
                      max_file_size=int(limits.max_upload_mb * 1024 * 1024), show_error=True, quiet=not block,
                      footer_links=["api"], allowed_paths=[str(EXAMPLES)], css=PAGE_CSS, head=PAGE_HEAD)
