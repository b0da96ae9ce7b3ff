"""The model package: one typed description of what ``python -m export`` writes and everything else reads.

A package is a folder (and a Hub repository with the same files):

- ``model.onnx``: the network, uint8 clips in (aligned face clips, or the motion input made from them: see the
  rows of :mod:`inference.inputs`), probabilities out; the key facts (format version, labels, frame count, input
  kind, layout and motion parameters, scheme, views) are also in its ONNX metadata (:func:`read_onnx_metadata`),
  so a bare ``model.onnx`` says what it is;
- ``config.json``: :class:`ModelPackage` — everything inference needs and nothing it must guess;
- ``README.md``: the model card;
- optional variants beside ``model.onnx`` (:data:`VARIANT_FILES`), named in the config.

``ModelPackage.load(folder)`` reads and checks ``config.json`` (an ``InputError`` that says what to do for a missing
or unreadable file, a missing field, or a format this runtime does not read); ``to_json()`` gives the dict that
export writes. Only ``inference`` modules are imported here: the runtime reads packages without the training stack.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .calibration import FIGURE_FILE, Calibration
from .errors import InputError
from .face import CropSettings
from .inputs import KINDS, Preprocessing, build_input, kind
from .views import VIEW_INDEX, parse_views, view_batch

FORMAT_VERSION = 1  # the package format this project writes and reads; bump it when a reader must change
# What the graph's uint8 (N, T, H, W, 3) input holds: an input kind, a row of inference.inputs (its package name:
# rgb_clip, flow_image, flow_clip, magnified, grey_flow_clip), made from the aligned face clip by
# inference.inputs.build_input with the recipe the package records (InputSpec.motion: the training cache's cache.json
# "inputs"). Motion kinds were added within format 1: a runtime that predates them refuses such a package by its input
# kind (InputSpec.from_json), so an older reader cannot misread one.
SCHEMES = ("sbml", "fsb")
OUTPUTS = {"sbml": ["probs", "view_logits"], "fsb": ["probs", "logits"]}  # the graph's outputs per scheme

CONFIG_FILE = "config.json"
CARD_FILE = "README.md"
VARIANT_FILES = {"fp32": "model.onnx", "fp16": "model.fp16.onnx", "int8": "model.int8.onnx"}
VARIANT_CHOICES = ("auto", *VARIANT_FILES)  # auto: fp16 on a GPU when the package has it, else fp32
MODEL_FILE = VARIANT_FILES["fp32"]
REQUIRED_FILES = (CONFIG_FILE, MODEL_FILE)  # what the runtime needs
HUB_FILES = (*REQUIRED_FILES, CARD_FILE)  # what a package published on the Hub needs: its model card as well
PACKAGE_FILES = (*VARIANT_FILES.values(), CONFIG_FILE, CARD_FILE, FIGURE_FILE)  # everything that belongs to a package

_REEXPORT = "re-export the model (python -m export) or re-download the package"


def missing_files(folder: Path, names: tuple[str, ...] = REQUIRED_FILES) -> list[str]:
    """The files of ``names`` that ``folder`` lacks."""
    return [name for name in names if not (Path(folder) / name).is_file()]


def crop_settings(crop: dict, where: str = "the model") -> CropSettings:
    """The face crop recorded in a checkpoint or a package (``CropSettings.to_dict()``) → :class:`CropSettings`:
    the one place it is rebuilt from its dict."""
    try:
        return CropSettings(size=int(crop["size"]), margin=float(crop["margin"]))
    except (KeyError, TypeError, ValueError, InputError) as e:
        raise InputError(f"{where}: face-crop settings {crop!r} are incomplete or malformed ({e}); "
                         f"{_REEXPORT}") from None


def check_format(version, where: str) -> int:
    """``version`` if this runtime reads it, else an ``InputError`` that says what to do."""
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise InputError(f"{where}: unknown package format {version!r}; this runtime reads format {FORMAT_VERSION}. "
                         f"Update the project or re-export the model.")
    if version > FORMAT_VERSION:
        raise InputError(f"{where}: package format {version} is newer than this runtime's; this runtime reads format "
                         f"{FORMAT_VERSION}. Update the project or re-export the model.")
    return version


@dataclass(frozen=True)
class InputSpec:
    """The graph's clip input: ``kind`` says what the tensor holds (a row of :mod:`inference.inputs`, by its package
    name); for a motion kind, ``motion`` is how it is made from the aligned face clip — the training cache's
    ``inputs`` (kind, method, params, scaling, size, apex source, reference), which
    :func:`inference.inputs.build_input` takes as it is."""

    height: int
    width: int
    views_input: str | None  # SBML: the name of the int64 view-index input; FSB: None
    name: str = "clips"
    dtype: str = "uint8"
    layout: str = "NTHWC"
    color: str = "RGB"  # flow kinds: "u,v,strain"
    kind: str = "rgb_clip"
    motion: dict | None = None  # motion kinds: the cache's inputs dict; rgb_clip: None

    def to_json(self) -> dict:
        out = {"name": self.name, "dtype": self.dtype, "layout": self.layout, "color": self.color,
               "height": self.height, "width": self.width, "views_input": self.views_input, "kind": self.kind}
        if self.motion is not None:
            out["motion"] = self.motion
        return out

    @classmethod
    def from_json(cls, data: dict, where: str) -> InputSpec:
        data = _mapping(data, "input", where)
        spec = cls(height=int(_get(data, "height", where, "input")), width=int(_get(data, "width", where, "input")),
                   views_input=data.get("views_input"), name=data.get("name", "clips"),
                   dtype=data.get("dtype", "uint8"), layout=data.get("layout", "NTHWC"),
                   color=data.get("color", "RGB"), kind=data.get("kind", "rgb_clip"), motion=data.get("motion"))
        try:
            row = kind(spec.kind)
        except InputError:
            row = None
        if row is None or row.package != spec.kind:
            raise InputError(f"{where}: input kind {spec.kind!r} is not one this runtime reads "
                             f"({', '.join(k.package for k in KINDS.values())}); update the project")
        if row.motion:
            motion = _mapping(_get(data, "motion", where, "input"), "input.motion", where)
            try:
                made = kind(str(motion.get("kind")))
            except InputError:
                made = None
            if made is not row:
                raise InputError(f"{where}: input kind {spec.kind!r} but its motion parameters are for "
                                 f"{motion.get('kind')!r}; {_REEXPORT}")
            try:  # checked now, not at the first clip
                row.check(motion)
            except InputError as e:
                raise InputError(f"{where}: input.motion: {e}; update the project or {_REEXPORT}") from None
        elif spec.motion is not None:
            raise InputError(f"{where}: an {spec.kind} input has no motion parameters, got {spec.motion!r}; "
                             f"{_REEXPORT}")
        return spec


@dataclass(frozen=True)
class Variant:
    """A variant graph beside ``model.onnx``: its file, what it is for, its measured agreement with fp32."""

    file: str
    target: str  # "for" in config.json: e.g. "GPU (CUDA execution provider)"
    agreement: dict
    stem: str | None = None  # int8: "int8" (folded first convolution) or "float"
    calibration: dict | None = None  # int8: {"source", "clips"}

    def to_json(self) -> dict:
        out = {"file": self.file, "for": self.target}
        if self.stem is not None:
            out["stem"] = self.stem
        out["agreement"] = self.agreement
        if self.calibration is not None:
            out["calibration"] = self.calibration
        return out

    @classmethod
    def from_json(cls, data: dict, where: str) -> Variant:
        data = _mapping(data, "variant", where)
        return cls(file=str(_get(data, "file", where, "variant")), target=str(data.get("for", "")),
                   agreement=dict(data.get("agreement") or {}), stem=data.get("stem"),
                   calibration=data.get("calibration"))


@dataclass(frozen=True)
class Parity:
    """The export's check of ``model.onnx`` in ONNX Runtime against PyTorch."""

    clips: int
    views: str
    max_abs_logit_diff: float
    rtol: float
    atol: float
    same_argmax: bool

    def to_json(self) -> dict:
        return {"clips": self.clips, "views": self.views, "max_abs_logit_diff": self.max_abs_logit_diff,
                "rtol": self.rtol, "atol": self.atol, "same_argmax": self.same_argmax}

    @classmethod
    def from_json(cls, data: dict, where: str) -> Parity:
        data = _mapping(data, "parity", where)
        return cls(clips=int(data.get("clips", 0)), views=str(data.get("views", "")),
                   max_abs_logit_diff=float(data.get("max_abs_logit_diff", float("nan"))),
                   rtol=float(data.get("rtol", float("nan"))), atol=float(data.get("atol", float("nan"))),
                   same_argmax=bool(data.get("same_argmax", False)))


@dataclass(frozen=True)
class LosoMetrics:
    """UF1 / UAR / WAR pooled over leave-one-subject-out folds, with the protocol that produced them."""

    uf1: float
    uar: float
    war: float
    n: int | None = None
    protocol: dict = field(default_factory=dict)  # dataset_protocol, subjects, clips, selection, views, …
    warning: str | None = None  # e.g. the model was selected on the test subjects

    def to_json(self) -> dict:
        out = {"uf1": self.uf1, "uar": self.uar, "war": self.war, "n": self.n, "protocol": self.protocol}
        if self.warning:
            out["warning"] = self.warning
        return out

    @classmethod
    def from_json(cls, data: dict, where: str) -> LosoMetrics:
        data = _mapping(data, "loso", where)
        return cls(uf1=float(_get(data, "uf1", where, "loso")), uar=float(_get(data, "uar", where, "loso")),
                   war=float(data.get("war", float("nan"))), n=data.get("n"), protocol=dict(data.get("protocol") or {}),
                   warning=data.get("warning"))


@dataclass(frozen=True)
class SourceCheckpoint:
    path: str
    sha256: str

    def to_json(self) -> dict:
        return {"path": self.path, "sha256": self.sha256}


FOLD_OUTPUT = "fold_logits"  # a fold package's second output: (F, N, K), one row of logits per LOSO fold


@dataclass(frozen=True)
class Folds:
    """A *fold package*: ``model.onnx`` holds one model per LOSO fold; its ``probs`` are the mean of the folds'
    softmax, its second output :data:`FOLD_OUTPUT` ``(F, N, K)`` each fold's logits, in the order of ``subjects``.

    ``subjects`` are the held-out subjects (the protocol's subject ids: for the composite protocol
    ``training.labels``' composite ids, SMIC s3 → 1003, CASME II sub03 → 2003, SAMM 006 → 3006), ``names`` the same
    subjects as their datasets name them (``sub03``), ``bases`` how a dataset's subject number becomes its id
    (``{"smic": 1000, "casme2": 2000, "samm": 3000}``), ``protocol`` the label protocol of the folds, ``source`` where
    the folds came from (``{"kind": "converted", "files": [{"file", "sha256", "subject"}], …}`` or a LOSO run's
    folder). ``python -m inference.evaluate`` scores each clip with the fold that held its subject out."""

    subjects: list[int]
    names: list[str]
    protocol: str
    output: str = FOLD_OUTPUT
    source: dict = field(default_factory=dict)
    bases: dict = field(default_factory=dict)  # dataset → what its subject numbers are shifted by in ``subjects``

    def __post_init__(self):
        if len(self.subjects) != len(self.names) or len(set(self.subjects)) != len(self.subjects):
            raise InputError(f"a fold package names each held-out subject once, with its name: got subjects "
                             f"{self.subjects} and names {self.names}")

    def fold_of(self, subject: int) -> int | None:
        """The index of the fold that held ``subject`` out, or None."""
        return self.subjects.index(subject) if subject in self.subjects else None

    def to_json(self) -> dict:
        return {"subjects": list(self.subjects), "names": list(self.names), "protocol": self.protocol,
                "bases": dict(self.bases), "output": self.output, "source": self.source}

    @classmethod
    def from_json(cls, data: dict, where: str) -> Folds:
        data = _mapping(data, "folds", where)
        try:
            return cls(subjects=[int(x) for x in _get(data, "subjects", where, "folds")],
                       names=[str(x) for x in data.get("names") or _get(data, "subjects", where, "folds")],
                       protocol=str(data.get("protocol") or ""), output=str(data.get("output") or FOLD_OUTPUT),
                       source=dict(data.get("source") or {}),
                       bases={str(k): int(v) for k, v in (data.get("bases") or {}).items()})
        except (TypeError, ValueError) as e:
            raise InputError(f"{where}: folds: {e}; {_REEXPORT}") from None


@dataclass(frozen=True)
class ModelPackage:
    """``config.json``, typed. Field order is the file's key order."""

    labels: list[str]  # ordered: the graph's output classes
    n_frames: int
    size: int  # the network's input size (the graph resizes the face crop to it)
    input: InputSpec
    scheme: str  # "sbml" or "fsb"
    train_views: str
    test_views: str  # default views: SBML any subset, FSB its training views
    face_crop: dict  # CropSettings.to_dict(): size, margin, extent, centre, landmarks, midline
    format_version: int = FORMAT_VERSION
    name: str = "model"
    outputs: list[str] = field(default_factory=lambda: list(OUTPUTS["sbml"]))
    normalisation: dict = field(default_factory=dict)  # mean, std, pixel_scale, source; applied inside the graph
    view_weights: list[float] | None = None
    fsb_head: str | None = None
    backbone: dict = field(default_factory=dict)  # at least {"name": …}
    protocol: str = ""  # the label protocol the model was trained on (smic, casme2, samm, composite, all)
    provenance: list[dict] = field(default_factory=list)  # the N-step chain, one entry per stage
    loso: LosoMetrics | None = None
    init: str = "scratch"
    training_data: str = ""
    trained: dict = field(default_factory=dict)  # what, epoch, selection
    synthetic: bool = False
    summary: str = ""
    opset: int | None = None
    variants: dict[str, Variant] = field(default_factory=dict)  # "fp16" / "int8" → Variant
    parity: Parity | None = None
    source_checkpoint: SourceCheckpoint | None = None
    exported_at: str = ""
    versions: dict = field(default_factory=dict)
    license: str = "other"
    folds: Folds | None = None  # a fold package: one model per LOSO fold in model.onnx (None: one model)
    calibration: Calibration | None = None  # temperature fitted on out-of-subject LOSO predictions, confidence floor

    @property
    def sbml(self) -> bool:
        return self.scheme == "sbml"

    @property
    def views_outside(self) -> bool:
        """Whether test-time views other than O are made outside the graph (:meth:`test_time_views`): a fold package
        of FSB folds that classify the one view O (the converted authors' folds). FSB folds of several views (FSB-OLR)
        fuse their own views in the graph, as any FSB package; SBML packages take the views as an input."""
        return bool(self.folds) and not self.sbml and self.train_views == "O"

    def chosen_views(self, views: str | None) -> str:
        """The test-time views to serve (``views``, default the package's): an FSB package that fuses its own views
        (any but :attr:`views_outside`) takes no others, an InputError."""
        chosen = parse_views(views or self.test_views)
        if not self.sbml and not self.views_outside and chosen != self.test_views:
            raise InputError(f"{self.name} is FSB: it always classifies the views {self.test_views} together; --views "
                             f"applies to SBML packages and to fold packages of single-view (O) folds")
        return chosen

    def crop_settings(self) -> CropSettings:
        """The face crop to align clips with before they enter the graph."""
        return crop_settings(self.face_crop, self.name)

    @property
    def motion(self) -> dict | None:
        """How the graph's input is made from the aligned face clip (a motion kind's parameters), or None (RGB)."""
        return self.input.motion if kind(self.input.kind).motion else None

    @property
    def aligned_frames(self) -> int | None:
        """How many aligned face frames the runtime keeps: ``n_frames`` for RGB clips; for motion every frame (None),
        as training made its motion caches from whole clips and resampled only the result."""
        return None if self.motion else self.n_frames

    def preprocessing(self) -> Preprocessing:
        """What the graph does to its uint8 input before the backbone (resize, normalisation, zero motion, views):
        the one description training's evaluation and the export graph use too
        (:class:`inference.inputs.Preprocessing`)."""
        return Preprocessing.of(self.input.kind, self.motion, self.normalisation, self.size, self.input.height)

    def build_input(self, frames, fps: float | None = None, apex: int | None = None) -> tuple[np.ndarray, int | None]:
        """The graph's input ``(n_frames, H, W, 3)`` uint8 from an aligned face clip ``(T, S, S, 3)``, made as
        training made it: :func:`inference.inputs.build_input` with the recorded parameters (a flow image's apex:
        ``apex`` when given, else estimated from the onset = the first frame, as ``training.prepare`` does for a
        clip without an annotated apex), then resampled to ``n_frames`` (:func:`inference.temporal.resample`, as
        training's clip bank does). Returns the input and the apex used (flow images; else None)."""
        from .temporal import resample

        x, used = build_input(frames, self.motion, fps, apex)
        x = resample(x, self.n_frames)
        if x.shape[1:] != (self.input.height, self.input.width, 3):
            raise InputError(f"{self.name}: the {self.input.kind} input made from this clip is {x.shape[1:]}, the "
                             f"graph takes ({self.input.height}, {self.input.width}, 3); align the face with the "
                             f"package's crop settings ({self.face_crop.get('size')} px)")
        return x, used

    def test_time_views(self, clips, views: str) -> np.ndarray:
        """The graph inputs ``(N, T, H, W, 3)`` uint8 as Décalcomanie views ``(V, N, T, H, W, 3)`` for test-time
        ensembling outside the graph (a fold package: FSB folds trained on ``O``). Each view is split at the vertical
        midline, each half mirrored into a whole image (:mod:`inference.views`); for a flow input, ``u`` in the
        mirrored half is reflected about its zero motion *as this package's scaling defines it*
        (:meth:`inference.inputs.InputKind.zeros`): the recorded zero for "fixed" scaling, and for min-max images
        (the published set) the median of ``u`` over the image's central region (where a face barely moves) — not
        0, and not mid-grey. ``2 · zero − u`` is rounded and clipped to 0–255 (the graph takes uint8)."""
        views = parse_views(views)
        clips = np.asarray(clips)
        row = kind(self.input.kind)
        if row.u is None:
            return view_batch(clips, views)
        zeros = row.zeros(self.motion, clips)  # (N, T, 3)
        return view_batch(clips, views, row.u, zeros[..., row.u])

    def files(self) -> list[str]:
        """The package's graph files: ``model.onnx`` and its variants' files."""
        return [MODEL_FILE] + [v.file for v in self.variants.values()]

    # ------------------------------------------------------------ config.json
    def to_json(self) -> dict:
        """The dict ``config.json`` holds (JSON types only; keys in their documented order)."""
        return {
            "format_version": self.format_version, "name": self.name, "labels": list(self.labels),
            "n_frames": self.n_frames, "size": self.size, "input": self.input.to_json(), "outputs": list(self.outputs),
            "normalisation": self.normalisation, "scheme": self.scheme, "train_views": self.train_views,
            "view_weights": self.view_weights, "test_views": self.test_views, "fsb_head": self.fsb_head,
            "view_index": dict(VIEW_INDEX), "face_crop": self.face_crop, "backbone": self.backbone,
            "protocol": self.protocol, "provenance": self.provenance,
            "loso": self.loso.to_json() if self.loso else None, "init": self.init,
            "training_data": self.training_data, "trained": self.trained, "synthetic": self.synthetic,
            "summary": self.summary, "opset": self.opset,
            "variants": {k: v.to_json() for k, v in self.variants.items()},
            "parity": self.parity.to_json() if self.parity else None,
            "source_checkpoint": self.source_checkpoint.to_json() if self.source_checkpoint else None,
            "exported_at": self.exported_at, "versions": self.versions, "license": self.license,
            **({"folds": self.folds.to_json()} if self.folds else {}),
            **({"calibration": self.calibration.to_json()} if self.calibration else {}),  # last; only when fitted
        }

    @classmethod
    def from_json(cls, data, where: str = CONFIG_FILE) -> ModelPackage:
        """A ``config.json`` dict → :class:`ModelPackage`; ``InputError`` naming ``where`` for what is wrong."""
        data = _mapping(data, "config", where)
        check_format(_get(data, "format_version", where), where)
        labels = _get(data, "labels", where)
        if not isinstance(labels, list) or not labels or not all(isinstance(x, str) for x in labels):
            raise InputError(f"{where}: 'labels' must be a non-empty list of class names, got {labels!r}; {_REEXPORT}")
        scheme = _get(data, "scheme", where)
        if scheme not in SCHEMES:
            raise InputError(f"{where}: unknown scheme {scheme!r} (this runtime knows {', '.join(SCHEMES)}); "
                             f"update the project or {_REEXPORT}")
        view_index = data.get("view_index", VIEW_INDEX)
        if view_index != VIEW_INDEX:
            raise InputError(f"{where}: view indices {view_index!r}, but this runtime numbers the views {VIEW_INDEX}; "
                             f"{_REEXPORT}")
        try:
            n_frames, size = int(_get(data, "n_frames", where)), int(data.get("size", 0))
            test_views = parse_views(_get(data, "test_views", where))
            train_views = parse_views(data.get("train_views") or test_views)
        except (TypeError, ValueError, InputError) as e:
            raise InputError(f"{where}: {e}; {_REEXPORT}") from None
        if n_frames < 1:
            raise InputError(f"{where}: n_frames must be positive, got {n_frames}; {_REEXPORT}")
        face_crop = dict(_mapping(_get(data, "face_crop", where), "face_crop", where))
        crop_settings(face_crop, where)  # checked now, not at the first clip
        flow_recipe = (_mapping(data.get("input") or {}, "input", where).get("motion") or {}).get("recipe")
        if isinstance(flow_recipe, dict) and "crop_margin" in flow_recipe and \
                abs(float(flow_recipe["crop_margin"]) - float(face_crop["margin"])) > 1e-9:
            raise InputError(f"{where}: the flow recipe reads aligned crops of margin {flow_recipe['crop_margin']}, "
                             f"but face_crop.margin is {face_crop['margin']}; {_REEXPORT}")
        variants = _mapping(data.get("variants") or {}, "variants", where)
        unknown = sorted(set(variants) - set(VARIANT_FILES))
        if unknown:
            raise InputError(f"{where}: unknown variants {', '.join(unknown)} (this runtime knows "
                             f"{', '.join(VARIANT_FILES)}); update the project or {_REEXPORT}")
        source = data.get("source_checkpoint")
        return cls(
            labels=list(labels), n_frames=n_frames, size=size,
            input=InputSpec.from_json(_get(data, "input", where), where),
            scheme=scheme, train_views=train_views, test_views=test_views, face_crop=face_crop,
            format_version=data["format_version"], name=str(data.get("name") or "model"),
            outputs=list(data.get("outputs") or OUTPUTS[scheme]),
            normalisation=dict(data.get("normalisation") or {}), view_weights=data.get("view_weights"),
            fsb_head=data.get("fsb_head"), backbone=dict(data.get("backbone") or {}),
            protocol=str(data.get("protocol") or ""), provenance=list(data.get("provenance") or []),
            loso=LosoMetrics.from_json(data["loso"], where) if data.get("loso") else None,
            init=str(data.get("init") or "scratch"), training_data=str(data.get("training_data") or ""),
            trained=dict(data.get("trained") or {}), synthetic=bool(data.get("synthetic", False)),
            summary=str(data.get("summary") or ""), opset=data.get("opset"),
            variants={k: Variant.from_json(v, where) for k, v in variants.items()},
            parity=Parity.from_json(data["parity"], where) if data.get("parity") else None,
            source_checkpoint=SourceCheckpoint(str(source.get("path", "")), str(source.get("sha256", "")))
            if isinstance(source, dict) else None,
            exported_at=str(data.get("exported_at") or ""), versions=dict(data.get("versions") or {}),
            license=str(data.get("license") or "other"),
            folds=Folds.from_json(data["folds"], where) if data.get("folds") else None,
            calibration=Calibration.from_json(data["calibration"], where) if data.get("calibration") else None,
        )

    @classmethod
    def load(cls, folder: str | os.PathLike) -> ModelPackage:
        """Read ``folder/config.json``."""
        path = Path(folder) / CONFIG_FILE
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise InputError(f"{path}: no such file; a model package folder holds {' and '.join(REQUIRED_FILES)}. "
                             f"Export one with `python -m export …` or point to the folder it wrote.") from None
        except (OSError, ValueError) as e:
            raise InputError(f"{path} cannot be read ({e}); {_REEXPORT}") from None
        return cls.from_json(data, str(path))

    # ------------------------------------------------------------ ONNX metadata
    def onnx_metadata(self, variant: str = "fp32") -> dict[str, str]:
        """The key facts embedded into each graph file's ONNX ``metadata_props`` (string values; lists as JSON)."""
        return {
            "format_version": str(self.format_version), "name": self.name, "variant": variant,
            "labels": json.dumps(list(self.labels)), "n_frames": str(self.n_frames), "size": str(self.size),
            "input_kind": self.input.kind, "input_name": self.input.name, "input_dtype": self.input.dtype,
            "input_layout": self.input.layout, "input_color": self.input.color,
            "crop_size": str(self.face_crop.get("size", self.input.height)),
            "views_input": self.input.views_input or "", "view_index": json.dumps(VIEW_INDEX),
            "scheme": self.scheme, "train_views": self.train_views, "test_views": self.test_views,
            "outputs": json.dumps(list(self.outputs)),
            **({"input_motion": json.dumps(self.motion)} if self.motion else {}),
        }


ONNX_METADATA_LISTS = ("labels", "view_index", "outputs", "input_motion")  # JSON values (input_motion: a dict)
ONNX_METADATA_INTS = ("format_version", "n_frames", "size", "crop_size")


def read_onnx_metadata(path: str | os.PathLike) -> dict:
    """What a bare ``model.onnx`` (or variant) says it is: :meth:`ModelPackage.onnx_metadata`'s facts, typed back
    (lists and ints); ``{}`` for a graph exported before the facts were embedded. Read with ONNX Runtime (the
    ``onnx`` package is not needed); the graph is not compiled."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    try:
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as e:  # noqa: BLE001 — ONNX Runtime raises its own exception types for unreadable files
        raise InputError(f"{path}: not a readable ONNX graph ({type(e).__name__}: {e})") from None
    meta: dict = dict(session.get_modelmeta().custom_metadata_map)
    for key in ONNX_METADATA_LISTS:
        if key in meta:
            meta[key] = json.loads(meta[key])
    for key in ONNX_METADATA_INTS:
        if key in meta:
            meta[key] = int(meta[key])
    return meta


# ---------------------------------------------------------------- validation helpers
def _mapping(data, what: str, where: str) -> dict:
    if not isinstance(data, dict):
        raise InputError(f"{where}: {what} must be a JSON object, got {type(data).__name__}; {_REEXPORT}")
    return data


def _get(data: dict, key: str, where: str, within: str | None = None):
    if key not in data:
        name = f"{within}.{key}" if within else key
        raise InputError(f"{where}: the field {name!r} is missing; {_REEXPORT}")
    return data[key]
