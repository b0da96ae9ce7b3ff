"""The Gradio app: upload (or record) a clip → aligned face → Décalcomanie views → OLR verdict.

:class:`Analyser` is the work behind the page, usable without a browser: ``Analyser(predictor).analyse(path)``
returns everything the page shows. :func:`build_app` lays the page out around it; ``python -m demo`` starts it.
Only ``inference`` is imported: the demo runs on a serving box without the training stack.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from inference.errors import InputError
from inference.runtime import Prediction, Predictor
from inference.views import make_view

ROOT = Path(__file__).resolve().parent
DEFAULT_MODEL = ROOT / "default_model"
EXAMPLES = ROOT / "examples"
VIEW_CHOICES = ["O", "OL", "OR", "LR", "OLR"]
STAGES = {"decode": (0.05, "decoding the clip"), "face": (0.3, "finding and aligning the face"),
          "model": (0.85, "running the model")}
SHOWN_FRAMES = 4  # frames shown per view
SHOWN_SIZE = 128  # px per shown frame

TEMP_ROOT_NAME = "micro-expression-demo"  # this app's folder inside Gradio's temporary folder: one sub-folder per run
SYNTHETIC_WARNING = ("⚠ **Demo weights trained on synthetic faces only**: this verdict shows the pipeline working; "
                     "it is not a reading of a real person's expression.")

log = logging.getLogger("demo")


@dataclass
class Limits:
    """What the demo accepts and how much work it takes on at once."""

    max_upload_mb: float = 50.0
    max_seconds: float = 10.0  # a micro-expression lasts about half a second; ten seconds is plenty of context
    max_frames: int = 1000
    queue_size: int = 8  # waiting requests beyond the running ones; more are turned away with a message
    concurrency: int = 1  # analyses at once (each uses every core)
    keep_files_s: int = 1800  # uploads and results older than this are deleted (checked every min(600, this) s)


@dataclass
class Analysis:
    """Everything the page shows for one clip."""

    prediction: Prediction
    sheets: dict[str, np.ndarray]  # "O", "L", "R" → an (H, W, 3) uint8 contact sheet of the aligned view
    per_view: list[dict] = field(default_factory=list)  # rows: view, label, probability (SBML only)
    notes: list[str] = field(default_factory=list)

    @property
    def fused(self) -> dict[str, float]:
        """Fused probabilities by label, as the page's Label takes them."""
        return {k: float(p) for k, p in zip(self.prediction.labels, self.prediction.probs)}


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


class Analyser:
    """One model, one clip at a time: ``analyse(path, views)`` → :class:`Analysis`, or :class:`InputError`."""

    def __init__(self, predictor: Predictor):
        self.predictor = predictor

    @property
    def sbml(self) -> bool:
        return self.predictor.sbml

    def analyse(self, path: str | os.PathLike | None, views: str | None = None, on_stage=None) -> Analysis:
        if not path:
            raise InputError("No clip was given. Upload a short video of one face (or record one with the webcam), "
                             "or click one of the examples.")
        if views and not self.sbml and views != self.predictor.views:
            views = None  # an FSB package always uses its own views; the page says so beside the choice
        try:
            pred = self.predictor.predict(path, views=views or None, on_stage=on_stage)
        except InputError as e:  # name the upload by its file name, not the server's temporary path
            raise InputError(str(e).replace(str(path), Path(path).name)) from None
        labels = pred.labels
        sheets = {v: contact_sheet(make_view(pred.aligned, v)) for v in "OLR"}
        rows = [{"view": v, "label": k, "probability": float(p)}
                for v, probs in pred.per_view.items() for k, p in zip(labels, probs)]
        notes = []
        if pred.faces_seen > 1:
            notes.append(f"{pred.faces_seen} faces were found; the largest one was analysed. For a reliable "
                         f"result, upload a clip with one face.")
        if pred.face.get("mode") == "tracked":
            notes.append("The head moved during the clip, so the face was tracked frame by frame.")
        # the face track's verdict (coverage, shots, dropped frames …), less what the note above already says
        notes += [n[:1].upper() + n[1:] for n in pred.notes if not (pred.faces_seen > 1 and "faces were" in n)]
        return Analysis(pred, sheets, rows, notes)

    def warm_up(self, clip: str | os.PathLike | None) -> None:
        """Load the face detector and the model's kernels once, so the first visitor does not wait for that."""
        if clip and Path(clip).exists():
            try:
                self.analyse(clip)
            except InputError as e:
                log.warning("warm-up on %s failed: %s", clip, e)


# --------------------------------------------------------------------------- text for the page
def card_facts(predictor: Predictor, source: str) -> str:
    """The model card's key facts as Markdown: what the model is, what it was trained on, how it scored."""
    c = predictor.package
    lines = []
    if c.synthetic:
        lines.append("> **Demo weights trained on synthetic faces only** (the project's generator, "
                     "`python -m training.synth`). They show the pipeline working end to end; they are not a "
                     "micro-expression recogniser for real people.\n")
    lines += [f"**{c.name}** — {c.summary}", "",
              "| fact | value |", "| --- | --- |",
              f"| classes | {', '.join(predictor.labels)} |",
              f"| scheme | {c.scheme.upper()}, trained on views {c.train_views}, test views {c.test_views} |",
              f"| backbone | {c.backbone.get('name', '?')}, {c.n_frames} frames of {c.size or '?'} px |",
              f"| training data | {c.training_data or 'not recorded'} |"]
    if c.loso:
        loso, proto = c.loso, c.loso.protocol
        lines.append(f"| LOSO | UF1 {loso.uf1:.3f} · UAR {loso.uar:.3f} · WAR {loso.war:.3f} "
                     f"({proto.get('subjects', '?')} subjects, {proto.get('clips', loso.n or '?')} clips, "
                     f"{proto.get('dataset_protocol', c.protocol or '?')} protocol, predictions pooled over "
                     f"folds, selection: {proto.get('selection', '?')}) |")
    else:
        lines.append("| LOSO | not evaluated |")
    lines.append(f"| runs on | {predictor.variant} graph on {predictor.provider} |")
    lines.append(f"| package | {package_name(source)} |")
    return "\n".join(lines)


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


def timings_markdown(timings: dict[str, float]) -> str:
    order = ["decode", "face", "resample", "model", "fuse", "total"]
    cells = [f"{k} {timings[k] * 1000:.0f} ms" for k in order if k in timings]
    return "**Timings:** " + " · ".join(cells)


# --------------------------------------------------------------------------- the page
def build_app(predictor: Predictor, limits: Limits = Limits(), source: str = "", examples: list[str] | None = None):
    """The Gradio Blocks app around ``predictor``. Call ``.launch()`` on it (``python -m demo`` does)."""
    import gradio as gr
    import pandas as pd

    analyser = Analyser(predictor)
    if examples is None:
        examples = sorted(str(p) for p in EXAMPLES.glob("*.mp4"))

    def run(video, views, progress=gr.Progress()):
        def on_stage(name):
            frac, desc = STAGES.get(name, (None, name))
            progress(frac, desc=desc)

        try:
            result = analyser.analyse(video, views, on_stage=on_stage)
        except InputError as e:  # the visitor's mistake: one line in the log, the message on the page
            log.info("refused: %s", e)  # the message names the upload (never the server's path)
            raise gr.Error(str(e), title="This clip cannot be analysed", print_exception=False) from None
        except Exception as e:  # noqa: BLE001 — the page gets a message, the log gets the traceback
            log.exception("analysis of %s failed", video)
            raise gr.Error(f"The clip could not be analysed ({type(e).__name__}: {e}). Try another clip; if this "
                           f"one should work, please report it with the clip.", title="Something went wrong") from None
        for note in result.notes:
            gr.Warning(note)
        p = result.prediction
        chart = pd.DataFrame(result.per_view, columns=["view", "label", "probability"])
        summary = (f"**{p.top}** ({result.fused[p.top]:.0%}) from views **{p.views}**; {quality_markdown(p)}."
                   + "".join(f"\n\n⚠ {n}" for n in result.notes))
        return (result.fused, result.sheets["O"], result.sheets["L"], result.sheets["R"],
                gr.update(value=chart, visible=analyser.sbml), summary, timings_markdown(p.timings))

    title = "Décalcomanie micro-expression recognition"
    delete_cache = (min(600, limits.keep_files_s), limits.keep_files_s)
    with gr.Blocks(title=title, analytics_enabled=False, delete_cache=delete_cache) as app:
        gr.Markdown(f"# {title}\nUpload a short clip of one face (or record one with the webcam). The app finds and "
                    "aligns the face, splits it at the facial midline into the Décalcomanie views — **O** (original), "
                    "**L** (left half mirrored), **R** (right half mirrored) — and classifies the expression. "
                    f"Clips up to {limits.max_seconds:g} s and {limits.max_upload_mb:g} MB.")
        with gr.Row():
            with gr.Column(scale=1):
                video = gr.Video(label="Clip", sources=["upload", "webcam"], include_audio=True, elem_id="clip")
                views = gr.Radio(VIEW_CHOICES, value=predictor.views, label="Test views",
                                 info=("Which views vote (their logits are summed)." if analyser.sbml else
                                       f"This FSB package always fuses {predictor.views}."),
                                 interactive=analyser.sbml, elem_id="views")
                button = gr.Button("Analyse", variant="primary", elem_id="analyse")
                if examples:
                    gr.Examples(examples=[[e] for e in examples], inputs=[video], label="Examples (synthetic clips)"
                                if predictor.package.synthetic else "Examples")
            with gr.Column(scale=1):
                if predictor.package.synthetic:  # beside the verdict, where a visitor reads it
                    gr.Markdown(SYNTHETIC_WARNING, elem_id="synthetic-warning")
                label = gr.Label(num_top_classes=len(predictor.labels), label="Fused probabilities", elem_id="label")
                summary = gr.Markdown(label="Summary", elem_id="summary")
                chart = gr.BarPlot(x="view", y="probability", color="label", y_lim=[0, 1], sort=["O", "L", "R"],
                                   label="Per-view probabilities (SBML: each view's own softmax)",
                                   visible=analyser.sbml, elem_id="per-view")
                timing = gr.Markdown(label="Timings", elem_id="timings")
        with gr.Row():
            face = gr.Image(label="Aligned face (O)", elem_id="view-o", interactive=False)
            left = gr.Image(label="L view (left half + its mirror)", elem_id="view-l", interactive=False)
            right = gr.Image(label="R view (right half + its mirror)", elem_id="view-r", interactive=False)
        with gr.Accordion("About the model", open=True):
            gr.Markdown(card_facts(predictor, source or str(predictor.folder)), elem_id="card")
        button.click(run, [video, views], [label, face, left, right, chart, summary, timing], api_name="analyse",
                     concurrency_limit=limits.concurrency)
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
                      footer_links=["api"], allowed_paths=[str(EXAMPLES)])
