"""``python -m export``: a training checkpoint → a parity-checked ONNX model package.

    python -m export --checkpoint runs/smic/final/model.pt --out packages/smic [--views OLR] [--fp16]
                     [--int8 --calibrate cache/smic [--int8-stem auto|int8|float]] [--clips cache/smic | clip.mp4 …]
                     [--notes NOTES.md]

Checkpoints from LOSO folds, from ``--final`` all-subject training and from N-step chains all export: they
are the same format (``training.schemes.save_view_model``) and carry the crop, frame count, normalisation,
provenance and, where known, the LOSO metrics with their protocol.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import string
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

from inference.errors import InputError, cli

from .package import (FORMAT_VERSION, OPSET, STEM_CHOICES, PackagedModel, VARIANT_TARGETS, assemble, check_parity, export_onnx,
                      make_fp16, make_int8, predict_onnx, sha256, variant_agreement, versions, write_json)

ROOT = Path(__file__).resolve().parent.parent
CARD_TEMPLATE = ROOT / "model_cards" / "default.md"
EXAMPLE = ROOT / "examples" / "astronaut.mp4"
DATASET_NAMES = {"smic": "SMIC-HS", "casme2": "CASME II", "samm": "SAMM", "composite": "MEGC2019 composite (SMIC-HS + CASME II + SAMM)",
                 "mmew": "MMEW", "ckplus": "CK+", "oulu": "Oulu-CASIA", "ucf101": "UCF101"}


# ---------------------------------------------------------------- clips for the checks


def cache_clips(path: Path, labels: list[str], n_frames: int, crop_size: int, limit: int):
    """Up to ``limit`` clips of a cache (evenly spread), resampled to the
    package's frame count, with their class indices where the label is one of the package's."""
    from inference.temporal import resample
    from training.cache import Cache

    cache = Cache.open(path)
    if int(cache.settings["size"]) != crop_size:
        raise InputError(f"{path}: crops of {cache.settings['size']} px, but the model was trained on {crop_size} px crops")
    order = np.linspace(0, len(cache) - 1, min(len(cache), limit)).round().astype(int)
    clips, y = [], []
    for i in order:
        row = cache.rows[i]
        clips.append(resample(np.asarray(cache.clip(i)), n_frames))
        label = row["composite"] if "composite" in labels and row["composite"] in labels else row["label"]
        y.append(labels.index(label) if label in labels else -1)
    y = np.array(y)
    return np.stack(clips), (y if (y >= 0).all() else None)


def video_clips(paths: list[Path], crop: dict, n_frames: int):
    from inference.face import CropSettings
    from inference.preprocess import preprocess

    settings = CropSettings(size=int(crop["size"]), margin=float(crop["margin"]))
    return np.stack([preprocess(p, settings, n_frames=n_frames, views="O").views["O"] for p in paths]), None


def gather_clips(sources: list[str], labels: list[str], n_frames: int, crop: dict, limit: int):
    caches = [Path(s) for s in sources if (Path(s) / "cache.json").exists()]
    videos = [Path(s) for s in sources if not (Path(s) / "cache.json").exists()]
    for v in videos:
        if not v.exists():
            raise InputError(f"{v}: no such clip or cache")
    parts, ys = [], []
    for c in caches:
        x, y = cache_clips(c, labels, n_frames, int(crop["size"]), limit)
        parts.append(x)
        ys.append(y)
    if videos:
        x, y = video_clips(videos, crop, n_frames)
        parts.append(x)
        ys.append(y)
    if not parts:
        raise InputError("no clips to check the export on")
    labels_known = all(y is not None for y in ys)
    return np.concatenate(parts), (np.concatenate(ys) if labels_known else None)


def default_sources(extra: dict) -> list[str]:
    caches = [c for c in extra.get("caches", []) if (Path(c) / "cache.json").exists()]
    return caches or [str(EXAMPLE)]


# ---------------------------------------------------------------- metrics and card


def loso_metrics(checkpoint: Path, extra: dict) -> dict | None:
    """The LOSO figures that belong to this model: stored in a --final checkpoint, or the run's results.json
    for a fold's model (folds/subject_<s>/model.pt)."""
    if extra.get("loso"):
        return dict(extra["loso"])
    results = checkpoint.resolve().parent.parent.parent / "results.json"
    if checkpoint.parent.parent.name == "folds" and results.exists():
        r = json.loads(results.read_text())
        return {k: r[k] for k in ("uf1", "uar", "war", "n", "protocol")} | ({"warning": r["warning"]} if "warning" in r else {})
    return None


def card_metadata(cfg: dict) -> dict:
    meta = {"library_name": "onnx", "pipeline_tag": "video-classification", "license": cfg["license"],
            "tags": ["onnx", "micro-expression", "facial-expression-recognition", "decalcomanie", "video-classification"]}
    if cfg["synthetic"]:
        meta["tags"].append("synthetic-data")
    loso = cfg.get("loso")
    if loso:
        proto = loso.get("protocol", {})
        name = DATASET_NAMES.get(proto.get("dataset_protocol", cfg["protocol"]), cfg["protocol"])
        selection = proto.get("selection", "last")
        suffix = " (test-set epoch selection)" if selection == "test_set_best" else ""
        meta["model-index"] = [{
            "name": cfg["name"],
            "results": [{
                "task": {"type": "video-classification", "name": "Micro-expression recognition"},
                "dataset": {"name": f"{name} ({'synthetic copy' if cfg['synthetic'] else 'leave-one-subject-out'})",
                            "type": proto.get("dataset_protocol", cfg["protocol"])},
                "metrics": [
                    {"type": "uf1", "value": round(float(loso["uf1"]), 4), "name": f"UF1, LOSO pooled{suffix}"},
                    {"type": "uar", "value": round(float(loso["uar"]), 4), "name": f"UAR, LOSO pooled{suffix}"},
                    {"type": "accuracy", "value": round(float(loso["war"]), 4), "name": f"WAR, LOSO pooled{suffix}"},
                ],
            }],
        }]
    return meta


def render_card(cfg: dict, notes: str = "") -> str:
    """The model card: ``model_cards/default.md`` filled in from the package's config, with ``notes`` (markdown,
    e.g. how this particular model was made) as sections of their own after the results."""
    loso = cfg.get("loso")
    if loso:
        p = loso.get("protocol", {})
        data = DATASET_NAMES.get(p.get("dataset_protocol"), p.get("dataset_protocol"))
        results = (f"Leave-one-subject-out on {'a synthetic copy of ' if cfg['synthetic'] else ''}{data}"
                   f" ({p.get('subjects')} subjects, {p.get('clips')} clips; predictions pooled over folds): "
                   f"**UF1 {loso['uf1']:.4f}, UAR {loso['uar']:.4f}, WAR {loso['war']:.4f}**. Model selection: "
                   f"{p.get('selection')}; train views {p.get('train_views')}, test views {p.get('test_views')}.")
        if cfg["trained"].get("what", "").startswith("LOSO fold"):
            results += (f" This package holds the model of one fold ({cfg['trained']['what']}); the figures are the "
                        f"whole LOSO run's. The deployable model is the run's --final model, trained on all subjects.")
        if loso.get("warning"):
            results += f"\n\n> **Warning.** {loso['warning']}"
        evaluation = f"LOSO, UF1 / UAR / WAR pooled over folds, selection: {p.get('selection')}"
    else:
        results = "This checkpoint carries no leave-one-subject-out evaluation (e.g. a pre-training stage)."
        evaluation = "none recorded"
    if cfg["synthetic"]:
        results += ("\n\n**These are synthetic-data demo weights**: trained on clips made by this project's synthetic "
                    "micro-expression generator, not on real people. They show the pipeline working; they say nothing "
                    "about real micro-expressions.")
    prov = cfg["provenance"]
    if prov:
        lines = ["| step | starts from | data | epochs |", "| --- | --- | --- | --- |"]
        for st in prov:
            init = st.get("init", {})
            src = init.get("kind", "?") + (f" `{Path(init['path']).name}` (sha256 `{init['sha256'][:16]}…`)" if init.get("sha256") else "")
            lines.append(f"| {st.get('stage')} | {src} | {', '.join(map(str, st.get('datasets') or st.get('data') or []))} | {st.get('epochs')} |")
        provenance = "\n".join(lines)
        pretraining = " → ".join(st.get("stage", "?") for st in prov)
    else:
        provenance = "Trained in one step (no N-step chain recorded)."
        pretraining = cfg["init"]
    variants = ""
    for name, v in cfg["variants"].items():
        agree = v.get("agreement", {})
        stem = {"int8": "; first convolution folded and in int8", "float": "; first convolution in float"}.get(v.get("stem"), "")
        variants += (f"\n`{v['file']}` ({name}, for {v['for']}{stem}): top-1 agreement with fp32 {agree.get('top1_agreement')} on "
                     f"{agree.get('clips')} clips" + (f", largest probability difference {agree['max_abs_prob_diff']}"
                                                      if "max_abs_prob_diff" in agree else "")
                     + (f", UF1 drop {agree['uf1_drop']}" if "uf1_drop" in agree else "") + ".")
    graph_io = ("Input `views`: int64 indices of the Décalcomanie views to run (O=0, L=1, R=2), any subset. "
                "Outputs `probs` `(N, K)` (softmax of the summed view logits) and `view_logits` `(V, N, K)`."
                if cfg["scheme"] == "sbml" else
                f"Outputs `probs` `(N, K)` and `logits`; the views {cfg['train_views']} are built inside the graph.")
    scheme_line = (f"SBML, trained on views {cfg['train_views']} (weights {cfg['view_weights']}), default test views {cfg['test_views']}"
                   if cfg["scheme"] == "sbml" else f"FSB ({cfg['fsb_head']} head) on views {cfg['train_views']}")
    values = {
        "title": cfg["name"], "labels": ", ".join(cfg["labels"]), "backbone": cfg["backbone"]["name"],
        "scheme_line": scheme_line, "n_frames": cfg["n_frames"], "crop_size": cfg["input"]["height"], "size": cfg["size"],
        "pretraining": pretraining, "training_data": cfg["training_data"], "evaluation": evaluation,
        "files": ", ".join(["model.onnx"] + [v["file"] for v in cfg["variants"].values()] + ["config.json"]),
        "results": results, "model_ref": cfg.get("hub_ref") or "path/to/this/package", "graph_io": graph_io,
        "opset": cfg["opset"], "checkpoint_name": Path(cfg["source_checkpoint"]["path"]).name,
        "checkpoint_sha": cfg["source_checkpoint"]["sha256"][:16] + "…", "parity_clips": cfg["parity"]["clips"],
        "parity_diff": f"{cfg['parity']['max_abs_logit_diff']:.2e}", "parity_rtol": f"{cfg['parity']['rtol']:g}",
        "parity_atol": f"{cfg['parity']['atol']:.2g}", "variants": variants, "provenance": provenance,
        "summary": cfg["summary"], "notes": f"\n{notes.strip()}\n" if notes.strip() else "",
    }
    body = string.Template(CARD_TEMPLATE.read_text()).safe_substitute(values)
    return "---\n" + yaml.safe_dump(card_metadata(cfg), sort_keys=False, allow_unicode=True) + "---\n\n" + body


# ---------------------------------------------------------------- the command


def export_package(checkpoint: Path, out: Path, views: str | None = None, fp16: bool = False, int8: bool = False,
                   calibrate: str | None = None, clips: list[str] | None = None, name: str | None = None,
                   license: str = "other", notes: str = "", log=print, int8_stem: str = "auto") -> dict:
    from inference.views import parse_views
    from training.schemes import load_view_model

    t0 = time.perf_counter()
    vm, meta = load_view_model(checkpoint)
    extra, config, labels = meta["extra"], meta["config"], list(meta["labels"])
    crop = extra.get("crop")
    if not crop:
        raise InputError(f"{checkpoint}: this model was not trained on aligned face crops (no crop settings); "
                         f"only face models make packages")
    n_frames, size = int(extra["n_frames"]), int(extra["size"])
    if config["scheme"] == "sbml":
        test_views = parse_views(views or config["test_views"])
    else:
        test_views = config["train_views"]
        if views and parse_views(views) != test_views:
            raise InputError(f"an FSB model classifies the features of its training views ({test_views}); --views {views} cannot change that")
    packaged = PackagedModel(vm, extra["normalisation"], size)
    if int8 and not calibrate:
        raise InputError("--int8 needs --calibrate CACHE: training clips to calibrate the quantisation on")
    if int8_stem not in ("auto", *STEM_CHOICES):
        raise InputError(f"--int8-stem must be auto, {' or '.join(STEM_CHOICES)}, not {int8_stem!r}")
    check_x, check_y = gather_clips(clips or default_sources(extra), labels, n_frames, crop, limit=16)
    synthetic = bool(extra.get("synthetic"))
    with tempfile.TemporaryDirectory(prefix=f".{out.name}.", dir=out.parent if out.parent.exists() else None) as tmp:
        folder = Path(tmp) / "package"
        folder.mkdir()
        export_onnx(packaged, folder / "model.onnx", n_frames, int(crop["size"]))
        parity = check_parity(packaged, folder / "model.onnx", check_x, test_views)
        log(f"model.onnx: ONNX Runtime matches PyTorch on {parity['clips']} clips (max |Δlogit| {parity['max_abs_logit_diff']:.2e})")
        variants = {}
        sbml = config["scheme"] == "sbml"
        reference = predict_onnx(folder / "model.onnx", check_x, sbml, test_views) if (fp16 or int8) else None
        if fp16:
            make_fp16(folder / "model.onnx", folder / "model.fp16.onnx")
            agree = variant_agreement(reference, predict_onnx(folder / "model.fp16.onnx", check_x, sbml, test_views), check_y, len(labels))
            variants["fp16"] = {"file": "model.fp16.onnx", "for": "GPU (CUDA execution provider)", "agreement": agree}
            log(f"model.fp16.onnx: top-1 agreement {agree['top1_agreement']}" + (f", UF1 drop {agree['uf1_drop']}" if "uf1_drop" in agree else ""))
        if int8:
            calib, _ = gather_clips([calibrate], labels, n_frames, crop, limit=32)
            # auto: the int8 stem (fast on CPUs) unless it costs agreement with fp32; then the float stem.
            for asked in ("int8", "float") if int8_stem == "auto" else (int8_stem,):
                stem = make_int8(folder / "model.onnx", folder / "model.int8.onnx", calib, sbml, test_views, stem=asked)
                agree = variant_agreement(reference, predict_onnx(folder / "model.int8.onnx", check_x, sbml, test_views),
                                          check_y, len(labels))
                log(f"model.int8.onnx ({stem} stem): top-1 agreement {agree['top1_agreement']}, max |Δp| "
                    f"{agree['max_abs_prob_diff']}" + (f", UF1 drop {agree['uf1_drop']}" if "uf1_drop" in agree else ""))
                if agree["meets_target"] or stem == "float":  # float is as far as it goes
                    break
            variants["int8"] = {"file": "model.int8.onnx", "for": "CPU (static QDQ, per-channel)", "stem": stem,
                                "agreement": agree, "calibration": {"source": str(calibrate), "clips": int(len(calib))}}
        for v in variants.values():
            if not v["agreement"]["meets_target"]:
                log(f"warning: {v['file']} misses the targets (top-1 agreement ≥ {VARIANT_TARGETS['top1_agreement']}, "
                    f"UF1 drop ≤ {VARIANT_TARGETS['uf1_drop']}): {v['agreement']}")
        protocol = extra.get("protocol", "")
        cfg = {
            "format_version": FORMAT_VERSION,
            "name": name or out.name,
            "labels": labels,
            "n_frames": n_frames,
            "size": size,
            "input": {"name": "clips", "dtype": "uint8", "layout": "NTHWC", "color": "RGB",
                      "height": int(crop["size"]), "width": int(crop["size"]),
                      "views_input": "views" if sbml else None},
            "outputs": ["probs", "view_logits"] if sbml else ["probs", "logits"],
            "normalisation": dict(extra["normalisation"], applied="inside the graph"),
            "scheme": config["scheme"], "train_views": config["train_views"], "view_weights": config["view_weights"],
            "test_views": test_views, "fsb_head": config["fsb_head"] if not sbml else None,
            "view_index": {"O": 0, "L": 1, "R": 2},
            "face_crop": crop,
            "backbone": config["backbone"],
            "protocol": protocol,
            "provenance": extra.get("provenance", []),
            "loso": loso_metrics(checkpoint, extra),
            "init": "scratch" if not (extra.get("init") or {}).get("pretrained") else
                    f"{extra['init']['kind']}: {Path(extra['init']['pretrained']).name}",
            "training_data": (f"{'synthetic clips in the layout of ' if synthetic else ''}{DATASET_NAMES.get(protocol, protocol)}"
                              f"{' (python -m training.synth)' if synthetic else ''}; "
                              f"caches {', '.join(map(str, extra.get('caches', [])))}"),
            "trained": {"what": extra.get("what"), "epoch": extra.get("epoch"), "selection": extra.get("selection")},
            "synthetic": bool(synthetic),
            "summary": (f"An {'SBML' if sbml else 'FSB'} Décalcomanie micro-expression classifier ({', '.join(labels)}) "
                        f"exported as ONNX." + (" Synthetic-data demo weights." if synthetic else "")),
            "opset": OPSET,
            "variants": variants,
            "parity": parity,
            "source_checkpoint": {"path": str(checkpoint), "sha256": sha256(Path(checkpoint))},
            "exported_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "versions": versions(),
        }
        cfg["license"] = license
        write_json(folder / "config.json", cfg)
        (folder / "README.md").write_text(render_card(cfg, notes))
        assemble(folder, out)
    log(f"wrote {out} ({', '.join(sorted(p.name for p in out.iterdir()))}) in {time.perf_counter() - t0:.1f} s")
    return cfg


@cli
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m export",
        description="Turn a training checkpoint (a LOSO fold's, a --final model, or an N-step stage's) into a model "
                    "package: model.onnx + config.json + README.md (model card). The ONNX graph is checked with "
                    "onnx.checker and against PyTorch in ONNX Runtime before the package is written.",
        epilog="Example: python -m export --checkpoint runs/smic/final/model.pt --out packages/smic --fp16 "
               "--int8 --calibrate cache/smic",
    )
    p.add_argument("--checkpoint", required=True, type=Path, help="a model.pt written by training.loso or training.nstep")
    p.add_argument("--out", required=True, type=Path, help="package folder (replaced if it exists)")
    p.add_argument("--views", default=None, help="default test views for SBML models (O, OL, OR, LR, OLR; default: training's)")
    p.add_argument("--fp16", action="store_true", help="also write model.fp16.onnx (for GPUs)")
    p.add_argument("--int8", action="store_true", help="also write model.int8.onnx (static QDQ; needs --calibrate)")
    p.add_argument("--calibrate", default=None, help="a cache of training clips to calibrate int8 on")
    p.add_argument("--int8-stem", default="auto", choices=("auto", *STEM_CHOICES),
                   help="the first convolution in the int8 variant: int8 (folded so CPUs have an int8 kernel for it; "
                        "~1.2x faster for 3D-ResNeXt-101 in OpenVINO), float (as accurate as the rest allows), or auto "
                        "(default: int8 unless the variant then misses the agreement targets with fp32, then float)")
    p.add_argument("--clips", nargs="*", default=None,
                   help="caches or video files to check parity and variant agreement on (default: the training caches "
                        "recorded in the checkpoint if present, else the bundled example clip)")
    p.add_argument("--name", default=None, help="the model's name in the card (default: the --out folder's name)")
    p.add_argument("--license", default="other", help="license in the card's metadata (default: other)")
    p.add_argument("--notes", default=None, type=Path,
                   help="a markdown file added to the model card after the results, e.g. how this model was made "
                        "(see model_cards/demo.md)")
    args = p.parse_args(argv)
    notes = ""
    if args.notes:
        try:
            notes = args.notes.read_text()
        except OSError as e:
            raise InputError(f"--notes {args.notes}: cannot read it ({e.strerror or e})") from None
    export_package(args.checkpoint, args.out, args.views, args.fp16, args.int8, args.calibrate, args.clips,
                   args.name, args.license, notes, int8_stem=args.int8_stem)
    return 0


if __name__ == "__main__":
    sys.exit(main())
