"""The model card (a package's ``README.md``) and the LOSO figures it reports.

:func:`render_card` fills ``model_cards/default.md`` from a :class:`inference.package.ModelPackage`, with a Hub
metadata block (:func:`card_metadata`) that ``huggingface_hub`` parses; :func:`loso_metrics` finds the LOSO
figures that belong to a checkpoint.
"""

from __future__ import annotations

import json
import string
from pathlib import Path

import yaml

from inference.inputs import kind
from inference.package import CONFIG_FILE, LosoMetrics, ModelPackage

from .calibrate import card_section

ROOT = Path(__file__).resolve().parent.parent
CARD_TEMPLATE = ROOT / "model_cards" / "default.md"
DATASET_NAMES = {"smic": "SMIC-HS", "casme2": "CASME II", "samm": "SAMM",
                 "composite": "MEGC2019 composite (SMIC-HS + CASME II + SAMM)",
                 "mmew": "MMEW", "ckplus": "CK+", "oulu": "Oulu-CASIA", "ucf101": "UCF101"}
STEM_NOTES = {"int8": "; first convolution folded and in int8", "float": "; first convolution in float"}


def dataset_name(protocol: str | None) -> str | None:
    """``"casme2"`` → ``"CASME II"``; an unknown protocol is returned as it is."""
    return DATASET_NAMES.get(protocol, protocol)


def loso_metrics(checkpoint: Path, loso: dict | None) -> LosoMetrics | None:
    """The LOSO figures that belong to this model: stored in a --final checkpoint's record (``loso``), or the run's
    results.json for a fold's model (folds/subject_<s>/model.pt)."""
    if loso:
        return LosoMetrics.from_json(dict(loso), str(checkpoint))
    results = checkpoint.resolve().parent.parent.parent / "results.json"
    if checkpoint.parent.parent.name == "folds" and results.exists():
        r = json.loads(results.read_text())
        return LosoMetrics.from_json({k: r[k] for k in ("uf1", "uar", "war", "n", "protocol")}
                                     | ({"warning": r["warning"]} if "warning" in r else {}), str(results))
    return None


def card_metadata(pkg: ModelPackage) -> dict:
    """The card's Hub metadata: library, pipeline tag, license, tags and the LOSO results as a model-index."""
    meta = {"library_name": "onnx", "pipeline_tag": "video-classification", "license": pkg.license,
            "tags": ["onnx", "micro-expression", "facial-expression-recognition", "decalcomanie",
                     "video-classification"]}
    meta["tags"] += list(kind(pkg.input.kind).tags)
    if pkg.synthetic:
        meta["tags"].append("synthetic-data")
    loso = pkg.loso
    if loso:
        proto = loso.protocol
        name = DATASET_NAMES.get(proto.get("dataset_protocol", pkg.protocol), pkg.protocol)
        selection = proto.get("selection", "last")
        suffix = " (test-set epoch selection)" if selection == "test_set_best" else ""
        meta["model-index"] = [{
            "name": pkg.name,
            "results": [{
                "task": {"type": "video-classification", "name": "Micro-expression recognition"},
                "dataset": {"name": f"{name} ({'synthetic copy' if pkg.synthetic else 'leave-one-subject-out'})",
                            "type": proto.get("dataset_protocol", pkg.protocol)},
                "metrics": [
                    {"type": "uf1", "value": round(float(loso.uf1), 4), "name": f"UF1, LOSO pooled{suffix}"},
                    {"type": "uar", "value": round(float(loso.uar), 4), "name": f"UAR, LOSO pooled{suffix}"},
                    {"type": "accuracy", "value": round(float(loso.war), 4), "name": f"WAR, LOSO pooled{suffix}"},
                ],
            }],
        }]
    return meta


def _results(pkg: ModelPackage) -> tuple[str, str]:
    """The card's results paragraph and its evaluation line."""
    loso = pkg.loso
    if loso:
        p = loso.protocol
        data = dataset_name(p.get("dataset_protocol"))
        results = (f"Leave-one-subject-out on {'a synthetic copy of ' if pkg.synthetic else ''}{data}"
                   f" ({p.get('subjects')} subjects, {p.get('clips')} clips; predictions pooled over folds): "
                   f"**UF1 {loso.uf1:.4f}, UAR {loso.uar:.4f}, WAR {loso.war:.4f}**. Model selection: "
                   f"{p.get('selection')}; train views {p.get('train_views')}, test views {p.get('test_views')}"
                   + ("; each fold's loss weighted per class on its own training clips"
                      if p.get("class_weights", "none") == "balanced" else "") + ".")
        what = pkg.trained.get("what") or ""
        if what.startswith("LOSO fold"):
            results += (f" This package holds the model of one fold ({what}); the figures are the "
                        f"whole LOSO run's. The deployable model is the run's --final model, trained on all subjects.")
        if loso.warning:
            results += f"\n\n> **Warning.** {loso.warning}"
        evaluation = f"LOSO, UF1 / UAR / WAR pooled over folds, selection: {p.get('selection')}"
    else:
        results = "This checkpoint carries no leave-one-subject-out evaluation (e.g. a pre-training stage)."
        evaluation = "none recorded"
    if pkg.synthetic:
        results += ("\n\n**These are synthetic-data demo weights**: trained on clips made by this project's synthetic "
                    "micro-expression generator, not on real people. They show the pipeline working; they say nothing "
                    "about real micro-expressions.")
    return results, evaluation


def _provenance(pkg: ModelPackage) -> tuple[str, str]:
    """The N-step provenance table and the pre-training line."""
    if not pkg.provenance:
        return "Trained in one step (no N-step chain recorded).", pkg.init
    lines = ["| step | starts from | data | epochs |", "| --- | --- | --- | --- |"]
    for st in pkg.provenance:
        init = st.get("init", {})
        src = init.get("kind", "?") + (f" `{Path(init['path']).name}` (sha256 `{init['sha256'][:16]}…`)"
                                       if init.get("sha256") else "")
        data = ", ".join(map(str, st.get("datasets") or st.get("data") or []))
        lines.append(f"| {st.get('stage')} | {src} | {data} | {st.get('epochs')} |")
    return "\n".join(lines), " → ".join(st.get("stage", "?") for st in pkg.provenance)


def _variants(pkg: ModelPackage) -> str:
    text = ""
    for name, v in pkg.variants.items():
        agree = v.agreement
        stem = STEM_NOTES.get(v.stem, "")
        text += (f"\n`{v.file}` ({name}, for {v.target}{stem}): top-1 agreement with fp32 "
                 f"{agree.get('top1_agreement')} on {agree.get('clips')} clips"
                 + (f", largest probability difference {agree['max_abs_prob_diff']}" if "max_abs_prob_diff" in agree
                    else "")
                 + (f", UF1 drop {agree['uf1_drop']}" if "uf1_drop" in agree else "") + ".")
    return text


def _scaling_words(scaling: dict) -> str:
    if scaling.get("mode") == "fixed":
        return (f"stored as 128 + {scaling['gain']:g}·u and 128 + {scaling['gain']:g}·v (pixels), "
                f"{scaling['strain_gain']:g}·strain")
    return "each channel min-max scaled per image"


def input_words(pkg: ModelPackage) -> dict[str, str]:
    """What the card says about the graph's input and how the runtime makes it: ``input_line`` (the facts table),
    ``input_steps`` (after "aligns the face …") and ``graph_input`` (the graph's ``clips`` input)."""
    crop, side, n = pkg.face_crop.get("size", pkg.input.height), pkg.input.height, pkg.n_frames
    face = f"face crop {crop} px (eyes level, facial midline centred)"
    m, row = pkg.motion, kind(pkg.input.kind)
    if not m:
        return {"input_line": f"{n} frames, {face}, network input {pkg.size} px",
                "input_steps": f"resamples the clip to {n} frames",
                "graph_input": f"uint8 `(N, {n}, {side}, {side}, 3)` RGB aligned face crops"}
    if not row.flow:  # magnified faces
        p = m.get("params", {})
        made = (f"linear Eulerian magnification (α {p.get('alpha')}, {p.get('low_hz')}–{p.get('high_hz')} Hz, "
                f"{p.get('levels')} levels) at the clip's frame rate")
        return {"input_line": f"{n} frames of the {face} after {made}; network input {pkg.size} px",
                "input_steps": f"magnifies its motion ({made}) and resamples it to {n} frames",
                "graph_input": f"uint8 `(N, {n}, {side}, {side}, 3)` motion-magnified RGB aligned face crops"}
    channels = ", ".join("optical strain" if c == "strain" else c for c in row.channels)
    flow = f"{m.get('method')} optical flow, channels {channels}, {_scaling_words(m.get('scaling', {}))}"
    trained = m.get("trained_on")
    if trained:  # a published flow-image set: served on flow made here, an approximation
        face += (f"; **an approximation**: trained on flow images made by {trained.get('method')!r} from the set's own "
                 f"face crops, served on {m.get('method')} flow of this crop")
    if row.single_frame:  # a flow image
        return {"input_line": f"one onset → apex flow image of {side} px ({flow}) from the {face}; network input "
                              f"{pkg.size} px; apex in training: {(trained or m).get('apex')}{_recipe_words(pkg)}",
                "input_steps": ("computes the onset → apex flow image with the recorded parameters (onset: the first "
                                "aligned frame; apex: the frame of largest motion from it, estimated as training "
                                "estimated unannotated apexes)"),
                "graph_input": f"uint8 `(N, 1, {side}, {side}, 3)` onset → apex flow images ({flow})"}
    pairs = "consecutive frames" if m.get("reference", "consecutive") == "consecutive" else "each frame and the first"
    return {"input_line": f"{n} flow frames between {pairs} ({flow}) of the {face}; network input {pkg.size} px",
            "input_steps": f"computes the flow between {pairs} with the recorded parameters and resamples it to {n} "
                           f"frames",
            "graph_input": f"uint8 `(N, {n}, {side}, {side}, 3)` flow clips ({flow})"}


def _recipe_words(pkg: ModelPackage) -> str:
    """The card's words on a flow-image recipe (:mod:`inference.recipe`), or ""."""
    r = (pkg.motion or {}).get("recipe")
    if not r:
        return ""
    return (f"; flow-image recipe **{r['name']}**: face window {r['width']:g} inter-ocular distances wide, "
            f"{r['height']:g} eye-to-mouth distances tall, its top {r['top']:g} of them above the eye line, squashed "
            f"to {r['size']} px; flow computed on the window grown by {r['context']:g} of its sides, then cut; "
            f"channels {', '.join(r['channels'])}")


def render_card(pkg: ModelPackage, notes: str = "", model_ref: str | None = None) -> str:
    """The model card: ``model_cards/default.md`` filled in from the package's config, with ``notes`` (markdown,
    e.g. how this particular model was made) as sections of their own after the results."""
    results, evaluation = _results(pkg)
    provenance, pretraining = _provenance(pkg)
    graph_io = ("Input `views`: int64 indices of the Décalcomanie views to run (O=0, L=1, R=2), any subset. "
                "Outputs `probs` `(N, K)` (softmax of the summed view logits) and `view_logits` `(V, N, K)`."
                if pkg.sbml else
                f"Outputs `probs` `(N, K)` and `logits`; the views {pkg.train_views} are built inside the graph.")
    scheme_line = (f"SBML, trained on views {pkg.train_views} (weights {pkg.view_weights}), default test views "
                   f"{pkg.test_views}" if pkg.sbml else f"FSB ({pkg.fsb_head} head) on views {pkg.train_views}")
    parity, source = pkg.parity, pkg.source_checkpoint
    values = {
        "title": pkg.name, "labels": ", ".join(pkg.labels), "backbone": pkg.backbone["name"],
        "scheme_line": scheme_line, "n_frames": pkg.n_frames, "crop_size": pkg.face_crop.get("size", pkg.input.height),
        "size": pkg.size, **input_words(pkg),
        "pretraining": pretraining, "training_data": pkg.training_data, "evaluation": evaluation,
        "files": ", ".join(pkg.files() + [CONFIG_FILE]),
        "results": results, "model_ref": model_ref or "path/to/this/package", "graph_io": graph_io,
        "opset": pkg.opset, "checkpoint_name": Path(source.path).name, "checkpoint_sha": source.sha256[:16] + "…",
        "parity_clips": parity.clips,
        "parity_diff": f"{parity.max_abs_logit_diff:.2e}", "parity_rtol": f"{parity.rtol:g}",
        "parity_atol": f"{parity.atol:.2g}", "variants": _variants(pkg), "provenance": provenance,
        "summary": pkg.summary, "notes": f"\n{notes.strip()}\n" if notes.strip() else "",
        "calibration": card_section(pkg.calibration),
    }
    body = string.Template(CARD_TEMPLATE.read_text()).safe_substitute(values)
    return "---\n" + yaml.safe_dump(card_metadata(pkg), sort_keys=False, allow_unicode=True) + "---\n\n" + body
