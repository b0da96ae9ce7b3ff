"""What ``python -m export`` builds a model package from, and how: the clips for the parity check, the served
inputs, the package's description of a checkpoint's trained-model record, the graph and its variants
(:func:`export_package`). The command (:mod:`export.__main__`) and the fold packages (:mod:`export.convert`) both use
it."""


from __future__ import annotations

import datetime as _dt
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from inference.calibration import DEFAULT_FLOOR
from inference.errors import InputError
from inference.face import CropSettings
from inference.files import file_sha256, write_json_atomic
from inference.inputs import kind, recipe_inputs
from inference.motion import flow_params
from inference.package import (
    CARD_FILE,
    CONFIG_FILE,
    MODEL_FILE,
    VARIANT_FILES,
    ModelPackage,
    Parity,
    SourceCheckpoint,
    Variant,
    crop_settings,
)

from .calibrate import FIGURE_FILE, loso_calibration, reliability_figure
from .card import dataset_name, loso_metrics, render_card
from .package import (
    OPSET,
    STEM_CHOICES,
    VARIANT_TARGETS,
    PackagedModel,
    assemble,
    check_parity,
    embed_metadata,
    export_onnx,
    make_fp16,
    make_int8,
    predict_onnx,
    variant_agreement,
    versions,
)

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "astronaut.mp4"
CHECK_CLIPS = 16  # clips the parity check and the variants' agreement are measured on
CALIBRATION_CLIPS = 32  # clips int8 is calibrated on
MOTION_KEYS = ("kind", "method", "params", "scaling", "reference")  # what a check cache must share with the model


# ---------------------------------------------------------------- clips for the checks


def cache_clips(path: Path, pkg: ModelPackage, limit: int):
    """Up to ``limit`` clips of a cache (evenly spread), resampled to the package's frame count, with their class
    indices. The cache must hold the package's input (kind and, for motion, made the same way). The clips are those
    the model's label protocol uses (``training.labels.protocol_entry``, the rule training applies); a cache the
    protocol does not use at all still gives clips, without labels (None)."""
    from inference.temporal import resample
    from training.cache import Cache, frame_size
    from training.labels import protocol_entry

    cache = Cache.open(path)
    made, want = cache.inputs, (pkg.motion or {}).get("trained_on") or pkg.motion or {"kind": "rgb"}
    diff = [k for k in MOTION_KEYS if made.get(k) != want.get(k)]
    if diff:
        raise InputError(f"{path} holds {made['kind']} inputs made otherwise than the model's "
                         f"({'; '.join(f'{k}: {made.get(k)!r} there, {want.get(k)!r} in the model' for k in diff)}); "
                         f"check the export on a cache of the model's own kind, or on video clips")
    if frame_size(cache.settings) != pkg.input.height:
        raise InputError(f"{path}: {made['kind']} frames of {frame_size(cache.settings)} px, but the model was "
                         f"trained on {pkg.input.height} px ones")
    labels = pkg.labels
    entries = [protocol_entry(pkg.protocol, r.get("dataset") or cache.settings["dataset"], r["label"], r["subject"],
                              r.get("composite") or None) for r in cache.rows]
    used = [i for i, e in enumerate(entries) if e is not None and e[0] in labels]
    rows = used or list(range(len(cache)))
    picked = [rows[k] for k in np.linspace(0, len(rows) - 1, min(len(rows), limit)).round().astype(int)]
    clips = np.stack([resample(np.asarray(cache.clip(i)), pkg.n_frames) for i in picked])
    return clips, (np.array([labels.index(entries[i][0]) for i in picked]) if used else None)


def video_clips(paths: list[Path], pkg: ModelPackage):
    """Video files through the runtime's path: aligned with the package's crop, then its input made as serving
    makes it (:meth:`ModelPackage.build_input`: the motion input for a motion package)."""
    from inference.preprocess import Preparer

    prepare = Preparer(pkg.crop_settings(), pkg.aligned_frames)
    prepared = [prepare(p) for p in paths]
    return np.stack([pkg.build_input(c.frames, c.fps)[0] for c in prepared]), None


def is_cache(path) -> bool:
    """A cache of training.prepare, or a published flow-image set (read as one)."""
    from training.datasets import flowset

    return (Path(path) / "cache.json").exists() or (Path(path).is_dir() and flowset.is_flowset(Path(path)))


def gather_clips(sources: list[str], pkg: ModelPackage, limit: int):
    """Clips (uint8 ``(N, T, S, S, 3)``) from caches and video files, with class indices when every clip has one."""
    caches = [Path(s) for s in sources if is_cache(s)]
    videos = [Path(s) for s in sources if not is_cache(s)]
    for v in videos:
        if not v.exists():
            raise InputError(f"{v}: no such clip or cache")
    parts = [cache_clips(c, pkg, limit) for c in caches]
    if videos:
        parts.append(video_clips(videos, pkg))
    if not parts:
        raise InputError("no clips to check the export on")
    labels_known = all(y is not None for _, y in parts)
    return np.concatenate([x for x, _ in parts]), (np.concatenate([y for _, y in parts]) if labels_known else None)


def default_sources(record) -> list[str]:
    """The clips the checks run on by default: the training caches the record names, where they are here (their
    clips, not their settings: what the model is comes from the record alone), else the bundled example clip."""
    caches = [c for c in record.caches if is_cache(c)]
    return caches or [str(EXAMPLE)]


# ---------------------------------------------------------------- the steps


def check_options(config: dict, views: str | None, int8: bool, calibrate: str | None, int8_stem: str) -> str:
    """The options a user gave, checked before any work; returns the package's default test views."""
    from inference.views import parse_views

    if config["scheme"] == "sbml":
        test_views = parse_views(views or config["test_views"])
    else:
        test_views = config["train_views"]
        if views and parse_views(views) != test_views:
            raise InputError(f"an FSB model classifies the features of its training views ({test_views}); "
                             f"--views {views} cannot change that")
    if int8 and not calibrate:
        raise InputError("--int8 needs --calibrate CACHE: training clips to calibrate the quantisation on")
    if int8_stem not in ("auto", *STEM_CHOICES):
        raise InputError(f"--int8-stem must be auto, {' or '.join(STEM_CHOICES)}, not {int8_stem!r}")
    return test_views


def served_inputs(checkpoint: Path, record, serve_flow: str | None, face_crop: int | None,
                  flow_recipe: str | None = None) -> tuple[dict, dict]:
    """The motion inputs serving computes and the face crop it aligns to: the record's, or — for a model trained on
    flow images this project cannot make (a published flow-image set: ``method`` "published", no crop) —
    ``serve_flow`` on a ``face_crop`` px crop, the rest (kind, scaling, size) as in training, the training inputs kept
    under ``trained_on``. That is an approximation of the set's own preprocessing, and the package says so. With
    ``flow_recipe`` (a named :mod:`inference.recipe`, e.g. "megc2019-composite") the flow images are made by that
    recipe instead — the set's own face window, size, scaling — on a ``face_crop`` px crop (default 112) at the
    recipe's margin, stored in the order of the model's input kind (the order this project's caches hold)."""
    inputs, crop = dict(record.inputs), record.crop
    row = kind(inputs["kind"])
    if flow_recipe:
        from inference.recipe import recipe

        if not row.single_frame or row.computable(inputs):
            raise InputError(f"--flow-recipe is for models trained on a published flow-image set; {checkpoint} "
                             f"records how its {row.name} inputs were made, and serving makes them the same way")
        if serve_flow:
            raise InputError("give --flow-recipe or --serve-flow, not both")
        r = replace(recipe(flow_recipe), channels=row.channels, size=int(record.frame_size))
        return ({**recipe_inputs(r, row.name), "trained_on": inputs},
                CropSettings(size=int(face_crop or 112), margin=r.crop_margin).to_dict())
    if row.computable(inputs):
        if serve_flow or face_crop:
            raise InputError("--serve-flow and --face-crop are for models trained on a published flow-image set; "
                             f"{checkpoint} records how its inputs were made, and serving makes them the same way")
        return inputs, crop
    if not (serve_flow and face_crop):
        raise InputError(f"{checkpoint}: this model was trained on flow images made by {inputs.get('method')!r} (e.g. "
                         f"a published flow-image set, made from its authors' own face crops), which serving cannot "
                         f"compute the same way from a video. Export it with --serve-flow tvl1 --face-crop SIZE to "
                         f"serve it on flow computed here (an approximation, recorded in the package), or train on a "
                         f"cache of python -m training.prepare --inputs {inputs['kind']}")
    served = {**inputs, "method": serve_flow, "params": flow_params(serve_flow), "apex": "estimated",
              "trained_on": inputs}
    if row.single_frame:  # a flow image: made at the side the model was trained on
        served["size"] = record.frame_size
    return served, crop or CropSettings(size=int(face_crop)).to_dict()


def describe(checkpoint: Path, record, test_views: str, name: str, license: str,
             serve_flow: str | None = None, face_crop: int | None = None,
             flow_recipe: str | None = None) -> ModelPackage:
    """The package's config from the checkpoint's record (:class:`training.record.TrainedModel`, mapped one to one by
    its ``package_fields``), before the graph exists (no parity or variants yet)."""
    inputs, crop = served_inputs(checkpoint, record, serve_flow, face_crop, flow_recipe)
    if not crop:
        raise InputError(f"{checkpoint}: this model was not trained on aligned face crops (no crop settings); "
                         f"only face models make packages")
    crop_settings(crop, str(checkpoint))
    fields = record.package_fields(inputs, crop)
    sbml = record.scheme == "sbml"
    protocol, synthetic, labels = record.protocol, record.synthetic, list(record.labels)
    return ModelPackage(
        **{**fields, "loso": loso_metrics(checkpoint, record.loso)}, name=name, test_views=test_views,
        training_data=(f"{'synthetic clips in the layout of ' if synthetic else ''}{dataset_name(protocol)}"
                       f"{' (python -m training.synth)' if synthetic else ''}; "
                       f"caches {', '.join(map(str, record.caches))}"),
        summary=(f"An {'SBML' if sbml else 'FSB'} Décalcomanie micro-expression classifier ({', '.join(labels)}) "
                 f"{kind(inputs['kind']).words}, exported as ONNX."
                 + (" Synthetic-data demo weights." if synthetic else "")),
        opset=OPSET,
        source_checkpoint=SourceCheckpoint(str(checkpoint), file_sha256(checkpoint)),
        exported_at=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        versions=versions(), license=license,
    )


def write_graph(packaged: PackagedModel, folder: Path, pkg: ModelPackage, check_x: np.ndarray, log) -> Parity:
    """``model.onnx`` with the package's facts in its metadata, checked against PyTorch."""
    path = folder / MODEL_FILE
    export_onnx(packaged, path, pkg.n_frames, pkg.input.height)
    embed_metadata(path, pkg.onnx_metadata("fp32"))
    parity = check_parity(packaged, path, check_x, pkg.test_views)
    log(f"{MODEL_FILE}: ONNX Runtime matches PyTorch on {parity.clips} clips "
        f"(max |Δlogit| {parity.max_abs_logit_diff:.2e})")
    return parity


def _agreement_line(agree: dict) -> str:
    return f", UF1 drop {agree['uf1_drop']}" if "uf1_drop" in agree else ""


def write_variants(folder: Path, pkg: ModelPackage, check_x: np.ndarray, check_y: np.ndarray | None, fp16: bool,
                   int8: bool, calibrate: str | None, int8_stem: str, log) -> dict[str, Variant]:
    """The fp16 and int8 variants beside ``model.onnx``, each with its agreement with fp32 on the check clips."""
    if not (fp16 or int8):
        return {}
    reference = predict_onnx(folder / MODEL_FILE, check_x, pkg.sbml, pkg.test_views)

    def measured(variant: str) -> dict:
        path = folder / VARIANT_FILES[variant]
        embed_metadata(path, pkg.onnx_metadata(variant))
        return variant_agreement(reference, predict_onnx(path, check_x, pkg.sbml, pkg.test_views), check_y,
                                 len(pkg.labels))

    variants = {}
    if fp16:
        make_fp16(folder / MODEL_FILE, folder / VARIANT_FILES["fp16"])
        agree = measured("fp16")
        variants["fp16"] = Variant(VARIANT_FILES["fp16"], "GPU (CUDA execution provider)", agree)
        log(f"{VARIANT_FILES['fp16']}: top-1 agreement {agree['top1_agreement']}{_agreement_line(agree)}")
    if int8:
        calib, _ = gather_clips([calibrate], pkg, limit=CALIBRATION_CLIPS)
        # auto: the int8 stem (fast on CPUs) unless it costs agreement with fp32; then the float stem.
        for asked in ("int8", "float") if int8_stem == "auto" else (int8_stem,):
            stem = make_int8(folder / MODEL_FILE, folder / VARIANT_FILES["int8"], calib, pkg.sbml, pkg.test_views,
                             stem=asked)
            agree = measured("int8")
            log(f"{VARIANT_FILES['int8']} ({stem} stem): top-1 agreement {agree['top1_agreement']}, max |Δp| "
                f"{agree['max_abs_prob_diff']}{_agreement_line(agree)}")
            if agree["meets_target"] or stem == "float":  # float is as far as it goes
                break
        variants["int8"] = Variant(VARIANT_FILES["int8"], "CPU (static QDQ, per-channel)", agree, stem=stem,
                                   calibration={"source": str(calibrate), "clips": int(len(calib))})
    for v in variants.values():
        if not v.agreement["meets_target"]:
            log(f"warning: {v.file} misses the targets (top-1 agreement ≥ {VARIANT_TARGETS['top1_agreement']}, "
                f"UF1 drop ≤ {VARIANT_TARGETS['uf1_drop']}): {v.agreement}")
    return variants


# ---------------------------------------------------------------- the command


def export_package(checkpoint: Path, out: Path, views: str | None = None, fp16: bool = False, int8: bool = False,
                   calibrate: str | None = None, clips: list[str] | None = None, name: str | None = None,
                   license: str = "other", notes: str = "", log=print, int8_stem: str = "auto",
                   serve_flow: str | None = None, face_crop: int | None = None, flow_recipe: str | None = None,
                   confidence_floor: float = DEFAULT_FLOOR) -> ModelPackage:
    """Checkpoint → package folder ``out`` (replaced if it exists, only once everything is written and checked).
    A checkpoint of a LOSO run (a fold's or the --final one) gets a temperature fitted on the run's out-of-subject
    predictions and a reliability diagram (:mod:`export.calibrate`), with ``confidence_floor`` as its floor."""
    from training.record import TrainedModel
    from training.schemes import load_view_model

    t0 = time.perf_counter()
    if not 0 <= confidence_floor < 1:
        raise InputError(f"--confidence-floor must be a probability in [0, 1), got {confidence_floor}")
    checkpoint, out = Path(checkpoint), Path(out)
    vm, meta = load_view_model(checkpoint)
    record = TrainedModel.read(meta, checkpoint)  # all that export learns about the model
    test_views = check_options(record.model, views, int8, calibrate, int8_stem)
    pkg = describe(checkpoint, record, test_views, name or out.name, license, serve_flow, face_crop, flow_recipe)
    calibration = loso_calibration(checkpoint, list(record.labels), confidence_floor)
    packaged = PackagedModel(vm, pkg.preprocessing())  # the graph: the package's preprocessing, then the network
    check_x, check_y = gather_clips(clips or default_sources(record), pkg, limit=CHECK_CLIPS)
    with tempfile.TemporaryDirectory(prefix=f".{out.name}.", dir=out.parent if out.parent.exists() else None) as tmp:
        folder = Path(tmp) / "package"
        folder.mkdir()
        parity = write_graph(packaged, folder, pkg, check_x, log)
        variants = write_variants(folder, pkg, check_x, check_y, fp16, int8, calibrate, int8_stem, log)
        if calibration is not None:
            reliability_figure(calibration, folder / FIGURE_FILE)
            calibration = replace(calibration, figure=FIGURE_FILE)
            log(f"calibration: T = {calibration.temperature:g} on {calibration.clips} out-of-subject predictions, "
                f"ECE {calibration.ece_before} → {calibration.ece_after}; {FIGURE_FILE}")
        pkg = replace(pkg, parity=parity, variants=variants, calibration=calibration)
        write_json_atomic(folder / CONFIG_FILE, pkg.to_json())
        (folder / CARD_FILE).write_text(render_card(pkg, notes))
        assemble(folder, out)
    log(f"wrote {out} ({', '.join(sorted(p.name for p in out.iterdir()))}) in {time.perf_counter() - t0:.1f} s")
    return pkg
