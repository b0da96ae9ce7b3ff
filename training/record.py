"""What a trained model is: one typed record, written with every checkpoint and read by export.

A checkpoint (:func:`training.schemes.save_view_model`) holds the network's weights, its configuration
(``config``: ``ViewModel.config`` — the backbone's name and arguments, the scheme, the views, the input kind), its
class names (``labels``) and ``extra``: how it was made. :class:`TrainedModel` is those three read as one typed
record — model, labels, input kind and its recipe, frame counts and sizes (the stored frames' side included, so no
one has to open a training cache to learn it), normalisation, face crop, epoch selection, LOSO figures, provenance.

- Training writes it: :meth:`training.engine.Trainer.model_extra` gives its ``extra`` part (:meth:`TrainedModel.extra`,
  marked with ``"record": RECORD_FORMAT``), and ``save_view_model`` checks that the whole reads back as a record
  before the file is written.
- Export reads it and nothing else (:meth:`TrainedModel.read`), and maps it one to one onto the package's
  ``config.json`` (:meth:`TrainedModel.package_fields`: each record field has its package field).
- Checkpoints written before the record (an untyped ``extra`` dict) go through one converter,
  :meth:`TrainedModel.from_legacy`; what it cannot recover is refused with an ``InputError`` that says how to
  re-train and re-export.

It lives in ``training`` (export imports training, the runtime never sees a checkpoint), beside the checkpoint
format it types; the package config it maps onto is :class:`inference.package.ModelPackage`.
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path

from inference.errors import InputError
from inference.inputs import InputKind, Preprocessing, kind
from inference.package import OUTPUTS, InputSpec, LosoMetrics

RECORD_FORMAT = 2  # 1: the untyped ``extra`` dict of checkpoints written before the record
_RETRAIN = ("re-train it with this version of the project (python -m training.loso / training.nstep) and export the "
            "new model.pt (python -m export)")


@dataclass(frozen=True)
class TrainedModel:
    """A trained model, typed (see the module docstring). Field order is ``extra``'s key order."""

    model: dict  # ViewModel.config: backbone {name, arguments}, num_classes, scheme, views, FSB head, input kind
    labels: tuple[str, ...]  # ordered: the network's output classes
    what: str  # "LOSO fold, held-out subject 3", "trained on all subjects (--final)", "N-step stage micro"
    epoch: int  # the epoch the weights are from
    protocol: str  # the label protocol (smic, casme2, samm, composite, all)
    run: str  # the config's name
    n_frames: int  # frames per clip the network takes
    size: int  # the network's input side
    frame_size: int  # the stored frames' side (the package graph's input side)
    normalisation: dict  # mean, std, pixel_scale, source[, centre]
    selection: str  # how the epoch was chosen: last, test_set_best
    inputs: dict  # the input kind and its recipe (cache.json "inputs")
    caches: tuple[str, ...] = ()  # the training caches (where it was trained; export never opens them to learn)
    crop: dict | None = None  # the face crop (CropSettings.to_dict()), None for sets without one
    synthetic: bool = False
    init: dict = field(default_factory=dict)  # {pretrained, kind[, streams]}
    provenance: tuple[dict, ...] = ()  # the N-step chain, one entry per stage
    aus: tuple[int, ...] | None = None  # a model with an AU head: its AU vocabulary
    loso: dict | None = None  # a --final model: the LOSO figures of its run (uf1, uar, war, n, protocol)

    def __post_init__(self):
        kind(self.inputs.get("kind", "rgb"), "the model's inputs")
        if kind(self.inputs.get("kind", "rgb")).name != self.model.get("inputs", "rgb"):
            raise InputError(f"the model's network takes {self.model.get('inputs', 'rgb')} inputs, its record says "
                             f"{self.inputs.get('kind')}; {_RETRAIN}")
        if len(self.labels) != int(self.model.get("num_classes", len(self.labels))):
            raise InputError(f"{len(self.labels)} labels for a model with {self.model.get('num_classes')} classes")

    # ------------------------------------------------------------ derived
    @property
    def row(self) -> InputKind:
        """The input kind's row (:mod:`inference.inputs`)."""
        return kind(self.inputs.get("kind", "rgb"))

    @property
    def scheme(self) -> str:
        return self.model["scheme"]

    def preprocessing(self) -> Preprocessing:
        """What the model does to its stored clips before the backbone, as training's evaluation did it."""
        return Preprocessing.of(self.row.name, self.inputs, self.normalisation, self.size, self.frame_size)

    # ------------------------------------------------------------ the checkpoint's extra
    def extra(self) -> dict:
        """The checkpoint's ``extra`` (plain values; ``model`` and ``labels`` are stored beside it)."""
        out = {"record": RECORD_FORMAT}
        for f in fields(self):
            if f.name in ("model", "labels"):
                continue
            value = getattr(self, f.name)
            if f.name in ("aus", "loso") and value is None:
                continue
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    @classmethod
    def from_parts(cls, config: dict, labels, extra: dict, where: str = "the checkpoint") -> TrainedModel:
        """A record from a checkpoint's ``config``, ``labels`` and ``extra`` (:meth:`extra`'s form)."""
        if not isinstance(extra, dict):
            raise InputError(f"{where}: its record is not a dict; {_RETRAIN}")
        version = extra.get("record")
        if version is None:
            return cls.from_legacy(config, labels, extra, where)
        if version != RECORD_FORMAT:
            raise InputError(f"{where}: trained-model record format {version!r}, this project reads "
                             f"{RECORD_FORMAT}; update the project, or {_RETRAIN}")
        names = [f.name for f in fields(cls) if f.name not in ("model", "labels")]
        unknown = sorted(set(extra) - set(names) - {"record"})
        if unknown:
            raise InputError(f"{where}: unknown record fields {unknown}; update the project")
        required = [f.name for f in fields(cls) if f.name not in ("model", "labels")
                    and f.default is MISSING and f.default_factory is MISSING]
        missing = [k for k in required if k not in extra]
        if missing:
            raise InputError(f"{where}: the record lacks {', '.join(missing)}; {_RETRAIN}")
        try:
            return cls(
                model=dict(config), labels=tuple(str(x) for x in labels), what=str(extra["what"]),
                epoch=int(extra["epoch"]), protocol=str(extra["protocol"]), run=str(extra["run"]),
                n_frames=int(extra["n_frames"]), size=int(extra["size"]), frame_size=int(extra["frame_size"]),
                normalisation=dict(extra["normalisation"]), selection=str(extra["selection"]),
                inputs=dict(extra["inputs"]), caches=tuple(str(c) for c in extra.get("caches") or ()),
                crop=dict(extra["crop"]) if extra.get("crop") else None, synthetic=bool(extra.get("synthetic")),
                init=dict(extra.get("init") or {}), provenance=tuple(dict(p) for p in extra.get("provenance") or ()),
                aus=tuple(int(a) for a in extra["aus"]) if extra.get("aus") else None,
                loso=dict(extra["loso"]) if extra.get("loso") else None)
        except (TypeError, ValueError, KeyError) as e:
            raise InputError(f"{where}: a malformed record ({type(e).__name__}: {e}); {_RETRAIN}") from None

    @classmethod
    def from_legacy(cls, config: dict, labels, extra: dict, where: str = "the checkpoint") -> TrainedModel:
        """The one converter for checkpoints written before the record (``extra`` an untyped dict): the frame side
        they did not store is the flow image's recorded size, else the face crop's, else the network's input side
        (a published flow-image set's images are the network's size). Refused with an ``InputError`` that says how
        to re-train and re-export when a fact cannot be recovered."""
        missing = [k for k in ("n_frames", "size", "normalisation") if k not in extra]
        if missing:
            raise InputError(f"{where}: a checkpoint written before the trained-model record, without "
                             f"{', '.join(missing)}: it cannot say how its inputs are made; {_RETRAIN}")
        inputs = dict(extra.get("inputs") or {"kind": "rgb"})
        crop = extra.get("crop")
        size = int(extra["size"])
        row = kind(inputs.get("kind", "rgb"), where)
        if row.single_frame and inputs.get("size"):
            side = int(inputs["size"])
        elif crop:
            side = int(crop["size"])
        else:
            side = size
        return cls.from_parts(config, labels, {
            "record": RECORD_FORMAT, "what": str(extra.get("what") or "a model"), "epoch": int(extra.get("epoch") or 0),
            "protocol": str(extra.get("protocol") or ""), "run": str(extra.get("run") or ""),
            "n_frames": int(extra["n_frames"]), "size": size, "frame_size": side,
            "normalisation": dict(extra["normalisation"]), "selection": str(extra.get("selection") or "last"),
            "inputs": inputs, "caches": list(extra.get("caches") or []), "crop": crop,
            "synthetic": bool(extra.get("synthetic")), "init": dict(extra.get("init") or {}),
            "provenance": list(extra.get("provenance") or []),
            **({"aus": extra["aus"]} if extra.get("aus") else {}),
            **({"loso": extra["loso"]} if extra.get("loso") else {})}, where)

    @classmethod
    def read(cls, meta: dict, where: str | Path = "the checkpoint") -> TrainedModel:
        """The record of a loaded checkpoint (:func:`training.schemes.load_view_model`'s ``meta``)."""
        return cls.from_parts(meta["config"], meta["labels"], meta["extra"], str(where))

    # ------------------------------------------------------------ the package config
    def package_fields(self, inputs: dict | None = None, crop: dict | None = None) -> dict:
        """The :class:`inference.package.ModelPackage` fields this record fills, one record field to one config
        field (``inputs`` / ``crop``: what serving makes and aligns to, when export changes them — a published
        flow-image set served on flow made here). Export adds what the record does not know: the name, the default
        test views, the words of the summary and the card, the graph's parity and variants."""
        inputs = dict(inputs or self.inputs)
        row = kind(inputs.get("kind", "rgb"))
        sbml = self.scheme == "sbml"
        init = self.init
        return {
            "labels": list(self.labels), "n_frames": self.n_frames, "size": self.size,
            "input": InputSpec(height=self.frame_size, width=self.frame_size, views_input="views" if sbml else None,
                               kind=row.package, color=row.color, motion=inputs if row.motion else None),
            "outputs": list(OUTPUTS[self.scheme]),
            "normalisation": dict(self.normalisation, applied="inside the graph"),
            "scheme": self.scheme, "train_views": self.model["train_views"],
            "view_weights": list(self.model["view_weights"]), "fsb_head": None if sbml else self.model["fsb_head"],
            "face_crop": crop if crop is not None else self.crop, "backbone": dict(self.model["backbone"]),
            "protocol": self.protocol, "provenance": list(self.provenance),
            "loso": LosoMetrics.from_json(dict(self.loso), "the checkpoint's record") if self.loso else None,
            "init": "scratch" if not init.get("pretrained") else f"{init['kind']}: {Path(init['pretrained']).name}",
            "trained": {"what": self.what, "epoch": self.epoch, "selection": self.selection},
            "synthetic": self.synthetic,
        }
