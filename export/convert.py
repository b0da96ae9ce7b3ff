"""``python -m export.convert``: published weights → a *fold package* in the project's package format.

    python -m export.convert ststnet WEIGHTS_DIR --out PKG [--name NAME] [--calibrate-on SET [--confidence-floor P]]

``ststnet``: the per-fold ``state_dict`` files STSTNet's authors publish (public repository christy1206/STSTNet,
``STSTNet_Weights/*.pth``; not redistributed by this project), one per LOSO fold of the MEGC2019 composite protocol,
named by the held-out subject as its dataset names it (``sub01`` CASME II, ``s01`` SMIC-HS, ``006`` SAMM).

Each file holds the authors' layout: three streams of 3, 5 and 8 3×3 convolutions (padding 2), each conv → ReLU →
BN → max-pool 3/3 pad 1 → dropout; concatenated; average-pool 2×2; fc 400 → 3 (:data:`AUTHORS_KEYS`). The streams
fold exactly into the project's one-convolution STSTNet (:func:`fold_streams`: the convolutions' and the batch
norms' channels stacked in stream order, the classifier as it is). A missing, extra or odd-shaped key, a file name
the composite protocol has no subject for, or two files for one subject are refused, naming the key and the file.

The package: one ``model.onnx`` holding every fold (:class:`FoldModel`): ``probs`` the mean of the folds' softmax,
``fold_logits`` ``(F, N, K)`` each fold's logits, keyed by held-out subject in ``config.json``'s ``folds``
(:class:`inference.package.Folds`: the composite subject ids of :mod:`training.labels`). The input convention is
recorded exactly as the authors fed their networks: the ``cv2.imread`` array of the published flow image (input kind
:data:`inference.inputs.PUBLISHED_FLOW_IMAGE`: strain, v, u) as float 0–255, no scaling
(:data:`inference.inputs.RAW_NORMALISATION`), done inside the graph, so ONNX Runtime and OpenVINO are fed the same
numbers. The graph is checked against the authors' own three-stream network in PyTorch on random images before the
package is written. The card names where the weights came from, each file's sha256 and the authors' figure.

Serving from a video makes the flow image with the ``megc2019-composite`` recipe (:mod:`inference.recipe`) on a
:data:`FACE_CROP` px aligned crop at the recipe's margin; the recipe's image is strain, v, u — the row's order — so
it reaches the graph as the recipe makes it (the one reorder rule: ``inference.inputs._flow_image_as``).

``--calibrate-on SET`` (:func:`set_calibration`) fits the package's temperature on the labelled set the folds were
trained on, each clip scored by the fold that held its subject out; the card shows the ECE before and after, the
reliability diagram and the confidence floor. ``python -m export --folds RUN`` (:func:`export_run_folds`) fits it on
the run's pooled out-of-fold predictions.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import re
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from inference.calibration import DEFAULT_FLOOR, FIGURE_FILE, Calibration
from inference.errors import InputError, cli
from inference.files import file_sha256, write_json_atomic
from inference.inputs import PUBLISHED_FLOW_IMAGE, RAW_NORMALISATION, kind, recipe_inputs
from inference.motion import FlowScaling
from inference.package import (
    CARD_FILE,
    CONFIG_FILE,
    FOLD_OUTPUT,
    MODEL_FILE,
    Folds,
    InputSpec,
    LosoMetrics,
    ModelPackage,
    Parity,
)
from inference.recipe import MEGC2019_COMPOSITE
from training.models.ststnet import AuthorsSTSTNet, check_authors_state, fold_streams

from .calibrate import card_section, loso_calibration, reliability_figure
from .package import OPSET, RTOL, assemble, embed_metadata, versions

CONVERTERS = ("ststnet",)
LABELS = ["negative", "positive", "surprise"]  # the composite protocol's classes, the authors' label coding 0, 1, 2
SIZE = 28
FACE_CROP = 112  # the aligned face crop serving computes the recipe's flow on (at the recipe's margin, 0.25)
SOURCE = "https://github.com/christy1206/STSTNet (STSTNet_Weights/*.pth)"
FLOW_SET = "https://github.com/wangzhifengharrison/HTNet (datasets/STSNet_whole_norm_u_v_os/)"
AUTHORS_FIGURE = {"uf1": 0.7209, "uar": 0.725, "source": "the authors' log (STSTNet_python_logfile.txt): LOSO on the "
                  "MEGC2019 composite set, 442 clips, each fold scored on its held-out subject"}
_SUBJECT = re.compile(r"^(sub|s)?(\d+)$")


# ---------------------------------------------------------------- reading the authors' files


def subject_of(path: Path) -> tuple[str, int]:
    """``(dataset, composite subject id)`` of a fold file named by its held-out subject: ``sub01`` CASME II → 2001,
    ``s01`` SMIC → 1001, ``006`` SAMM → 3006; an ``InputError`` naming the file otherwise."""
    from training.labels import COMPOSITE_SUBJECT_BASE

    m = _SUBJECT.match(path.stem)
    if not m:
        raise InputError(f"{path}: the file name {path.stem!r} names no subject of the composite protocol; the "
                         f"authors' files are named by the held-out subject (sub01 CASME II, s01 SMIC-HS, 006 SAMM)")
    dataset = {"sub": "casme2", "s": "smic", None: "samm"}[m.group(1)]
    return dataset, COMPOSITE_SUBJECT_BASE[dataset] + int(m.group(2))


def read_fold(path: Path) -> dict[str, torch.Tensor]:
    """One authors' fold file, checked key by key against :data:`AUTHORS_KEYS` (``weights_only`` loading)."""
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 — torch raises many types for a file that is not a state_dict
        raise InputError(f"{path}: cannot be read as a PyTorch state_dict ({type(e).__name__}: {e})") from None
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise InputError(f"{path}: not a state_dict (a dict of tensors); expected the authors' per-fold files")
    return check_authors_state(sd, path)


def read_folds(folder: Path) -> list[dict]:
    """Every ``*.pth`` of ``folder``, read and checked: ``[{file, dataset, subject, name, sha256, state}]`` in
    subject order."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: no such folder; point at the authors' STSTNet_Weights folder ({SOURCE})")
    files = sorted(folder.glob("*.pth"))
    if not files:
        raise InputError(f"{folder}: no .pth files; point at the authors' STSTNet_Weights folder ({SOURCE})")
    folds, seen = [], {}
    for f in files:
        dataset, subject = subject_of(f)
        if subject in seen:
            raise InputError(f"{f}: subject {subject} ({dataset}) has a fold file already: {seen[subject]}")
        seen[subject] = f
        folds.append({"file": f.name, "dataset": dataset, "subject": subject, "name": f.stem,
                      "sha256": file_sha256(f), "state": read_fold(f)})
    return sorted(folds, key=lambda x: x["subject"])


# ---------------------------------------------------------------- the fold graph


class FoldModel(nn.Module):
    """What a fold package's ``model.onnx`` computes: the uint8 input ``(N, T, S, S, 3)`` through the package's
    preprocessing once (:class:`export.package.PackagedModel`'s ``prepare``), then through every fold's network
    (FSB: its fused logits; SBML: the logits of the views ``views`` — an int64 input as in any SBML package —
    summed). Outputs ``probs`` ``(N, K)`` — the mean over folds of their softmax — and
    :data:`inference.package.FOLD_OUTPUT` ``(F, N, K)``."""

    def __init__(self, view_models: list, preprocessing):
        super().__init__()
        from .package import PackagedModel

        self.first = PackagedModel(view_models[0], preprocessing)  # its prepare: the one preprocessing
        self.folds = nn.ModuleList(vm.eval() for vm in view_models)
        self.sbml = view_models[0].scheme == "sbml"
        self.eval()

    def forward(self, clips: torch.Tensor, views: torch.Tensor | None = None):
        x = self.first.prepare(clips)
        n = x.shape[0]
        logits = []
        if self.sbml:
            chosen = torch.stack(self.folds[0].views(x, "OLR")).index_select(0, views)
            v = chosen.shape[0]
            chosen = chosen.reshape((v * n,) + tuple(x.shape[1:]))
        for vm in self.folds:
            if self.sbml:
                logits.append(vm.backbone.fc(vm.backbone.forward_features(chosen)).reshape(v, n, -1).sum(0))
            else:
                logits.append(vm(x, vm.train_views))
        stacked = torch.stack(logits)  # (F, N, K)
        return stacked.softmax(-1).mean(0), stacked


def _fold_args(model: FoldModel, clips: torch.Tensor, views: str) -> tuple:
    from inference.views import view_indices

    return (clips, torch.from_numpy(view_indices(views))) if model.sbml else (clips,)


def export_folds(model: FoldModel, path: Path, n_frames: int, side: int) -> None:
    import warnings

    clips = torch.zeros((2, n_frames, side, side, 3), dtype=torch.uint8)
    names, dyn = ["clips"], {"clips": {0: "batch"}, "probs": {0: "batch"}, FOLD_OUTPUT: {1: "batch"}}
    if model.sbml:
        names.append("views")
        dyn["views"] = {0: "views"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, _fold_args(model, clips, "OLR"), str(path), dynamo=False, opset_version=OPSET,
                          input_names=names, output_names=["probs", FOLD_OUTPUT], dynamic_axes=dyn,
                          do_constant_folding=True)


def check_folds(model: FoldModel, path: Path, clips: np.ndarray, reference: np.ndarray | None = None,
                views: str = "O") -> Parity:
    """The graph in ONNX Runtime against ``reference`` fold logits ``(F, N, K)`` (default: ``model`` in PyTorch);
    an ``InputError`` on a mismatch."""
    import onnx
    import onnxruntime as ort

    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    from inference.views import view_indices

    feeds = {"clips": clips, **({"views": view_indices(views)} if model.sbml else {})}
    probs, got = session.run(None, feeds)
    if reference is None:
        with torch.no_grad():
            reference = model(*_fold_args(model, torch.from_numpy(clips), views))[1].numpy()
    diff = float(np.abs(got - reference).max())
    atol = 1e-4 * max(1.0, float(np.abs(reference).max()))
    same = bool((got.argmax(-1) == reference.argmax(-1)).all())
    if not np.allclose(got, reference, rtol=RTOL, atol=atol) or not same:
        raise InputError(f"{path}: the fold graph disagrees with the reference network (max |Δlogit| {diff:.3g}, "
                         f"same argmax: {same}); the conversion is wrong — please report it")
    return Parity(clips=int(len(clips)), views=views, max_abs_logit_diff=diff, rtol=RTOL, atol=atol, same_argmax=same)


# ---------------------------------------------------------------- the package


def ststnet_package(folds: list[dict], name: str, weights_dir: Path) -> ModelPackage:
    """``config.json`` of a converted STSTNet fold package (before the graph's parity is known)."""
    from training.labels import COMPOSITE_SUBJECT_BASE

    row = kind(PUBLISHED_FLOW_IMAGE)
    trained_on = {"kind": row.name, "method": "published", "params": {}, "scaling": FlowScaling("minmax").to_dict(),
                  "apex": "as published", "size": SIZE, "set": FLOW_SET}
    # how serving makes the image from a video: the megc2019-composite recipe (the set's face window, 28 px, TV-L1,
    # min-max, strain, v, u: this row's order, so the image is fed as the recipe makes it), on a FACE_CROP px aligned
    # crop at the recipe's margin; trained_on keeps what the folds were trained on
    recipe = replace(MEGC2019_COMPOSITE, size=SIZE)
    served = {**recipe_inputs(recipe, row.name), "trained_on": trained_on}
    counts = {d: sum(f["dataset"] == d for f in folds) for d in ("smic", "casme2", "samm")}
    return ModelPackage(
        labels=list(LABELS), n_frames=1, size=SIZE,
        input=InputSpec(height=SIZE, width=SIZE, views_input=None, color=row.color, kind=row.package, motion=served),
        scheme="fsb", train_views="O", test_views="O",
        face_crop={"size": FACE_CROP, "margin": recipe.crop_margin},
        name=name, outputs=["probs", FOLD_OUTPUT], normalisation=dict(RAW_NORMALISATION),
        backbone={"name": "ststnet", "image_size": SIZE, "converted_from": "authors' three-stream layout"},
        protocol="composite",
        init="converted", training_data=f"the MEGC2019 composite flow-image set ({FLOW_SET}); folds: "
                                        f"{counts['smic']} SMIC-HS, {counts['casme2']} CASME II, {counts['samm']} SAMM",
        trained={"what": f"{len(folds)} LOSO folds, converted from the authors' weights", "selection": "authors'"},
        summary=(f"STSTNet (Liong et al. 2019), the authors' {len(folds)} LOSO fold models converted to one fold "
                 f"package ({', '.join(LABELS)}) {row.words}; served as the mean of the folds."),
        opset=OPSET, exported_at=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        versions=versions(), license="other",
        folds=Folds(subjects=[f["subject"] for f in folds], names=[f["name"] for f in folds], protocol="composite",
                    bases=dict(COMPOSITE_SUBJECT_BASE),
                    source={"kind": "converted", "converter": "ststnet", "from": SOURCE,
                            "folder": str(Path(weights_dir).resolve()), "redistributed": False,
                            "authors_figure": AUTHORS_FIGURE,
                            "files": [{"file": f["file"], "subject": f["subject"], "sha256": f["sha256"]}
                                      for f in folds]}),
    )


def set_calibration(folder: Path, pkg: ModelPackage, data: Path, floor: float = DEFAULT_FLOOR,
                    log=print) -> Calibration:
    """A temperature for a fold package fitted on a labelled flow-image set ``data`` (:mod:`inference.evaluate`'s
    layout), honestly: each clip scored by the fold that held its subject out (its held-out-fold prediction, the
    graph in ONNX Runtime, uncalibrated, views O); a clip whose subject no fold held out was in every fold's training
    data and is left out. ``floor``: the confidence floor the card states."""
    from inference import evaluate as ev

    clips, rows, skipped = ev.read_set(data, pkg)
    session, _ = ev.session_for(folder, "onnxruntime")
    probs, by = ev.predict(session, pkg, clips, rows, "O", calibrated=False)
    held = np.array([b["by"] == "fold" for b in by])
    if not held.any():
        raise InputError(f"--calibrate-on {data}: no clip of the set belongs to a subject one of the folds held out; "
                         f"calibrate on the set the folds were trained on (LOSO)")
    truth = np.array([r["label"] for r in rows])
    source = (f"{Path(data).name}: {int(held.sum())} clips, each scored by the fold that held its subject out"
              + (f"; {int((~held).sum())} clips of subjects no fold held out left out" if (~held).any() else "")
              + (f"; {len(skipped)} rows skipped" if skipped else ""))
    cal = Calibration.fit(probs[held], truth[held], source, floor)
    reliability_figure(cal, folder / FIGURE_FILE)
    log(f"calibration: T = {cal.temperature:g} on {cal.clips} held-out-fold predictions, ECE {cal.ece_before} → "
        f"{cal.ece_after}, NLL {cal.nll_before} → {cal.nll_after}; {FIGURE_FILE}")
    return replace(cal, figure=FIGURE_FILE)


def fold_card(pkg: ModelPackage) -> str:
    """The converted package's model card: provenance, the files' sha256, the authors' figure, the input
    convention, and that the weights are not redistributed."""
    f = pkg.folds
    rows = "\n".join(f"| {x['file']} | {x['subject']} | `{x['sha256']}` |" for x in f.source.get("files", []))
    return f"""---
license: other
tags: [micro-expression, optical-flow, ststnet, fold-package]
---
# {pkg.name}

{pkg.summary}

**Where the weights come from.** The per-fold `state_dict` files STSTNet's authors publish: {SOURCE}, trained on
the MEGC2019 composite flow-image set ({FLOW_SET}), which is derived from SMIC-HS, CASME II and SAMM under their own
licences. This package was converted from them with `python -m export.convert ststnet` on the user's machine; the
weights and the set are **not redistributed** by this project, and neither carries a licence of its own.

**The authors' figure.** UF1 {AUTHORS_FIGURE['uf1']} / UAR {AUTHORS_FIGURE['uar']} ({AUTHORS_FIGURE['source']}).
Reproduce it from this package alone: `python -m inference.evaluate --model PKG --data SET` (each clip through the
fold that held its subject out).

**Input convention.** One 28×28 onset → apex flow image per clip, fed as the authors fed it: the `cv2.imread` array
of a published image (channels strain, v, u — the PNG stores u, v, strain in R, G, B), float 0–255, no scaling or
centring; done inside the graph, so every runtime (ONNX Runtime, OpenVINO) is fed the same numbers.

**Serving.** `probs` is the mean of the {len(f.subjects)} folds' softmax; `{f.output}` holds each fold's logits,
keyed by held-out subject in `config.json` (`folds.subjects`: composite ids, SMIC s3 → 1003, CASME II sub03 → 2003,
SAMM 006 → 3006). From a video, serving makes the onset → apex image with the flow-image recipe
`megc2019-composite` (the set's face window measured on its images, 28 px, TV-L1, min-max per channel, stored
strain, v, u — the order the folds take, so it is fed as made) on a {FACE_CROP} px aligned face crop at margin
{MEGC2019_COMPOSITE.crop_margin}: a reconstruction of the set's own preprocessing (`input.motion.trained_on` records
the set's).

## Calibration

{card_section(pkg.calibration) if pkg.calibration else "No calibration: convert with `--calibrate-on SET` (the "
 "labelled flow-image set the folds were trained on) to fit a temperature on each clip's held-out-fold prediction. "
 "The probabilities are the folds' softmax as it is."}

## Files converted ({len(f.subjects)} folds)

| file | held-out subject | sha256 |
| --- | --- | --- |
{rows}
"""


def convert_ststnet(weights_dir: Path, out: Path, name: str | None = None, log=print,
                    calibrate_on: Path | None = None, confidence_floor: float = DEFAULT_FLOOR) -> ModelPackage:
    """The authors' folder of fold files → a fold package at ``out`` (replaced only once written and checked).
    ``calibrate_on``: a labelled flow-image set to fit the package's temperature on (:func:`set_calibration`), with
    ``confidence_floor`` the card's floor."""
    from training.schemes import ViewModel

    t0 = time.perf_counter()
    if not 0 <= confidence_floor < 1:
        raise InputError(f"--confidence-floor must be a probability in [0, 1), got {confidence_floor}")
    weights_dir, out = Path(weights_dir), Path(out)
    if calibrate_on is not None and not Path(calibrate_on).is_dir():
        raise InputError(f"--calibrate-on {calibrate_on}: no such folder; point it at the labelled flow-image set "
                         f"the folds were trained on")
    folds = read_folds(weights_dir)
    log(f"read {len(folds)} fold files from {weights_dir}")
    pkg = ststnet_package(folds, name or out.name, weights_dir)
    models, authors = [], []
    for f in folds:
        vm = ViewModel({"name": "ststnet", "image_size": SIZE}, len(LABELS), "fsb", "O", inputs=PUBLISHED_FLOW_IMAGE)
        vm.backbone.load_state_dict(fold_streams(f["state"]), strict=True)
        with torch.no_grad():  # FSB with one view: its head is the authors' classifier
            vm.head.weight.copy_(vm.backbone.fc.weight)
            vm.head.bias.copy_(vm.backbone.fc.bias)
        models.append(vm.eval())
        a = AuthorsSTSTNet()
        a.load_state_dict(f["state"], strict=True)
        authors.append(a.eval())
    graph = FoldModel(models, pkg.preprocessing())
    # the check: random uint8 images fed to the authors' own network as they fed it (float 0–255, cv2.imread order)
    clips = np.random.default_rng(0).integers(0, 256, (8, 1, SIZE, SIZE, 3), dtype=np.uint8)
    raw = torch.from_numpy(clips[:, 0]).permute(0, 3, 1, 2).float()
    with torch.no_grad():
        reference = torch.stack([a(raw) for a in authors]).numpy()
    with tempfile.TemporaryDirectory(prefix=f".{out.name}.", dir=out.parent if out.parent.exists() else None) as tmp:
        folder = Path(tmp) / "package"
        folder.mkdir()
        path = folder / MODEL_FILE
        export_folds(graph, path, 1, SIZE)
        embed_metadata(path, {**pkg.onnx_metadata("fp32"), "folds": str(len(folds))})
        parity = check_folds(graph, path, clips, reference)
        log(f"{MODEL_FILE}: {len(folds)} folds; ONNX Runtime matches the authors' network on {parity.clips} images "
            f"(max |Δlogit| {parity.max_abs_logit_diff:.2e})")
        pkg = replace(pkg, parity=parity)
        if calibrate_on is not None:
            pkg = replace(pkg, calibration=set_calibration(folder, pkg, Path(calibrate_on), confidence_floor, log))
        write_json_atomic(folder / CONFIG_FILE, pkg.to_json())
        (folder / CARD_FILE).write_text(fold_card(pkg))
        assemble(folder, out)
    log(f"wrote {out} in {time.perf_counter() - t0:.1f} s")
    return pkg


# ---------------------------------------------------------------- a project LOSO run's folds


def run_folds(run: Path) -> list[tuple[int, Path]]:
    """``(subject, model.pt)`` of a LOSO run's folds (``RUN/folds/subject_<s>/model.pt``), in subject order."""
    run = Path(run)
    found = sorted((int(p.parent.name.split("_", 1)[1]), p) for p in run.glob("folds/subject_*/model.pt")
                   if p.parent.name.split("_", 1)[1].isdigit())
    if not found:
        raise InputError(f"{run}: no folds/subject_<s>/model.pt; point --folds at a LOSO run's folder (python -m "
                         f"training.loso's out)")
    return found


def export_run_folds(run: Path, out: Path, views: str | None = None, name: str | None = None,
                     license: str = "other", notes: str = "", clips: list[str] | None = None,
                     serve_flow: str | None = None, face_crop: int | None = None, log=print,
                     confidence_floor: float = DEFAULT_FLOOR, flow_recipe: str | None = None) -> ModelPackage:
    """A LOSO run's fold models → a fold package at ``out``, in the same format as converted weights: one graph
    with every fold, keyed by held-out subject; its LOSO figure the run's ``results.json``; its temperature fitted
    on the run's pooled out-of-fold predictions (``predictions.csv``: each clip scored by the fold that held its
    subject out), with ``confidence_floor`` the card's floor and a reliability diagram. ``serve_flow`` /
    ``face_crop`` / ``flow_recipe``: how serving makes the flow images of a model trained on a published flow-image
    set (:func:`export.build.served_inputs`)."""
    import json

    from training.labels import COMPOSITE_SUBJECT_BASE
    from training.record import TrainedModel
    from training.schemes import load_view_model

    from .build import check_options, default_sources, describe, gather_clips
    from .card import render_card

    t0 = time.perf_counter()
    run, out = Path(run), Path(out)
    found = run_folds(run)
    models, records = [], []
    for subject, path in found:
        vm, meta = load_view_model(path)
        models.append(vm.eval())
        records.append(TrainedModel.read(meta, path))
    first, record = found[0][1], records[0]
    for (subject, path), r in zip(found, records):
        if (r.model, r.labels, r.inputs, r.normalisation, r.crop, r.frame_size) != \
                (record.model, record.labels, record.inputs, record.normalisation, record.crop, record.frame_size):
            raise InputError(f"{path}: this fold's model differs from {first}'s (architecture, labels, inputs, "
                             f"normalisation or crop); a fold package holds folds of one run")
    if not 0 <= confidence_floor < 1:
        raise InputError(f"--confidence-floor must be a probability in [0, 1), got {confidence_floor}")
    test_views = check_options(record.model, views, False, None, "auto")
    calibration = loso_calibration(first, list(record.labels), confidence_floor)
    pkg = describe(first, record, test_views, name or out.name, license, serve_flow, face_crop, flow_recipe)
    results = run / "results.json"
    loso = None
    if results.exists():
        r = json.loads(results.read_text())
        loso = LosoMetrics.from_json({k: r[k] for k in ("uf1", "uar", "war", "n", "protocol")}
                                     | ({"warning": r["warning"]} if "warning" in r else {}), str(results))
    ran_on = loso.protocol.get("test_views") if loso else None
    if ran_on and test_views != ran_on:  # the run's figure and out-of-fold scores are of other views than served
        calibration = None
        log(f"calibration: none; the run's out-of-fold predictions are of views {ran_on}, this package serves "
            f"{test_views} (train with scheme.test_views={test_views}, the same models, to calibrate it)")
        loso = replace(loso, warning=" ".join(filter(None, [
            loso.warning, f"This figure is the run's on test views {ran_on}; the package serves views {test_views} "
                          f"(python -m inference.evaluate --model PKG --data SET measures them)."])))
    protocol = record.protocol
    bases = dict(COMPOSITE_SUBJECT_BASE) if protocol == "composite" else \
        ({protocol: 0} if protocol in COMPOSITE_SUBJECT_BASE else {})
    pkg = replace(pkg, outputs=["probs", FOLD_OUTPUT], loso=loso,
                  trained={**pkg.trained, "what": f"{len(found)} LOSO folds of {run}"},
                  folds=Folds(subjects=[s for s, _ in found], names=[str(s) for s, _ in found], protocol=protocol,
                              bases=bases,
                              source={"kind": "loso run", "run": str(run.resolve()),
                                      "files": [{"file": str(p.relative_to(run)), "subject": s,
                                                 "sha256": file_sha256(p)} for s, p in found]}))
    graph = FoldModel(models, pkg.preprocessing())
    check_x, _ = gather_clips(clips or default_sources(record), pkg, limit=16)
    with tempfile.TemporaryDirectory(prefix=f".{out.name}.", dir=out.parent if out.parent.exists() else None) as tmp:
        folder = Path(tmp) / "package"
        folder.mkdir()
        path = folder / MODEL_FILE
        export_folds(graph, path, pkg.n_frames, pkg.input.height)
        embed_metadata(path, {**pkg.onnx_metadata("fp32"), "folds": str(len(found))})
        parity = check_folds(graph, path, check_x, views=pkg.test_views)
        log(f"{MODEL_FILE}: {len(found)} folds; ONNX Runtime matches PyTorch on {parity.clips} clips "
            f"(max |Δlogit| {parity.max_abs_logit_diff:.2e})")
        if calibration is not None:
            reliability_figure(calibration, folder / FIGURE_FILE)
            calibration = replace(calibration, figure=FIGURE_FILE)
            log(f"calibration: T = {calibration.temperature:g} on {calibration.clips} out-of-fold predictions, "
                f"ECE {calibration.ece_before} → {calibration.ece_after}; {FIGURE_FILE}")
        pkg = replace(pkg, parity=parity, calibration=calibration)
        write_json_atomic(folder / CONFIG_FILE, pkg.to_json())
        folds_note = (f"\n\n## Folds\n\nA fold package: {len(found)} LOSO fold models of `{run}` in one graph, keyed "
                      f"by held-out subject ({', '.join(str(s) for s, _ in found)}); `probs` is their mean. "
                      f"`python -m inference.evaluate --model PKG --data SET` scores each clip with the fold that "
                      f"held its subject out.\n")
        (folder / CARD_FILE).write_text(render_card(pkg, notes + folds_note))
        assemble(folder, out)
    log(f"wrote {out} in {time.perf_counter() - t0:.1f} s")
    return pkg


@cli
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m export.convert",
        description="Convert published weights into a fold package (one model per LOSO fold, keyed by held-out "
                    "subject, served as their mean) in the project's package format.",
        epilog="Example: python -m export.convert ststnet STSTNet_Weights --out packages/ststnet-authors  "
               f"(the weights: {SOURCE}; not redistributed by this project)")
    p.add_argument("converter", choices=CONVERTERS, help="whose weights: ststnet (the authors' per-fold state_dicts)")
    p.add_argument("weights", type=Path, help="the folder of the published weight files (STSTNet_Weights)")
    p.add_argument("--out", required=True, type=Path, help="package folder (replaced if it exists)")
    p.add_argument("--name", default=None, help="the model's name in the card (default: the --out folder's name)")
    p.add_argument("--calibrate-on", type=Path, default=None, metavar="SET",
                   help="a labelled flow-image set (the one the folds were trained on, e.g. HTNet's "
                        "STSNet_whole_norm_u_v_os with its CSV): fit the package's temperature on each clip's "
                        "held-out-fold prediction (no clip scored by a fold that saw its subject); the card shows the "
                        "ECE before and after and a reliability diagram (reliability.png)")
    p.add_argument("--confidence-floor", type=float, default=DEFAULT_FLOOR,
                   help=f"with --calibrate-on: calibrated top probability below which a verdict is shown as "
                        f"uncertain (default {DEFAULT_FLOOR})")
    args = p.parse_args(argv)
    convert_ststnet(args.weights, args.out, args.name, calibrate_on=args.calibrate_on,
                    confidence_floor=args.confidence_floor)
    return 0


if __name__ == "__main__":
    sys.exit(main())
