"""``python -m training.nstep``: an N-step pre-training chain, e.g. Kinetics → UCF101 → Macro → micro LOSO.

A chain config names one backbone and its stages, in order. A stage trains on its data (one or more aligned
caches; "Macro" is the CK+ and Oulu-CASIA caches together, with the union of their labels) with its own
recipe, starting from:

- ``scratch``: random initialisation;
- ``file``: a local weights file (kenshohara's Kinetics ``.pth``, a torchvision state dict, one of ours);
- ``imagenet2d``: torchvision ImageNet 2D ResNet weights, inflated to 3D (I3D-style);
- ``previous``: the backbone the stage before produced (the default after the first stage).

Between stages the classifier is replaced by a freshly initialised one and only the backbone carries over.
The last stage is a LOSO run (``loso:``, any Décalcomanie scheme and views), so a chain ends in the same
reports as ``training.loso``. Each stage is resumable and skipped once finished. The chain's provenance —
stages, data, epochs, the source weights with their SHA-256, and the backbone's digest entering and leaving
every stage — is stored in every checkpoint it produces, and export copies it into the model card.

Example config::

    name: smic_kinetics_ucf_macro
    model: {name: resnet3d_50}
    stages:
      - {name: ucf101, data: {caches: [cache/ucf101]}, init: {kind: file, path: weights/r3d50_K_200ep.pth},
         train: {epochs: 30, milestones: [13, 18, 22], batch_size: 30, n_frames: 16}}
      - {name: macro, data: {caches: [cache/ckplus, cache/oulu]}, train: {epochs: 30, milestones: [13, 18, 22]}}
      - {name: micro, loso: {base: ../paper_smic.yaml, scheme: {type: sbml, train_views: OLR}}}
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

import numpy as np
import yaml

from inference.errors import InputError, cli
from inference.files import file_sha256, write_json_atomic

from .config import DEFAULTS, apply_override, check_config, deep_update, merge, read_yaml
from .engine import Trainer, backbone_digest, seed_for
from .loso import run
from .schemes import save_view_model

INIT_KINDS = ("scratch", "file", "imagenet2d", "previous")
# The paper's pre-training recipe (3D-ResNet-50, Adam 1e-4, 30 epochs, x0.1 at 13/18/22, batch 30, 112 px).
PRETRAIN_RECIPE = {"epochs": 30, "lr": 1.0e-4, "milestones": [13, 18, 22], "gamma": 0.1, "batch_size": 30,
                   "size": 112, "n_frames": 16, "checkpoint_every": 1}


def load_chain(path: str | Path, overrides: list[str] = ()) -> dict:
    path = Path(path)
    chain = read_yaml(path)
    for key in chain:
        if key not in ("base", "name", "out", "model", "stages"):
            raise InputError(f"{path}: unknown key {key!r} in a chain config; known: name, out, model, stages")
    stages = chain.get("stages")
    if not isinstance(stages, list) or not stages:
        raise InputError(f"{path}: a chain needs a list of stages")
    chain["name"] = chain.get("name") or path.stem
    chain["model"] = merge(DEFAULTS["model"], chain.get("model") or {}, f"{path}: model")
    names = set()
    for i, st in enumerate(stages):
        where = f"{path}: stage {i + 1}"
        if not isinstance(st, dict) or not st.get("name"):
            raise InputError(f"{where}: every stage needs a name")
        if st["name"] in names:
            raise InputError(f"{where}: two stages are named {st['name']!r}")
        names.add(st["name"])
        init = st.setdefault("init", {"kind": "scratch" if i == 0 else "previous"})
        if init.get("kind") not in INIT_KINDS:
            raise InputError(f"{where}: init.kind must be one of {', '.join(INIT_KINDS)}, got {init.get('kind')!r}")
        if init["kind"] == "previous" and i == 0:
            raise InputError(f"{where}: the first stage has no previous stage to start from")
        if init["kind"] in ("file", "imagenet2d") and not init.get("path"):
            raise InputError(f"{where}: init.kind={init['kind']} needs init.path (a local weights file)")
        if "loso" in st:
            if i != len(stages) - 1:
                raise InputError(f"{where}: only the last stage can be a LOSO run")
            loso = st["loso"]
            if isinstance(loso, str):
                loso = {"base": loso}
            st["loso"] = _deep_base(loso, path.parent)
        elif not (st.get("data") or {}).get("caches"):
            raise InputError(f"{where}: a pre-training stage needs data.caches")
    for o in overrides:  # stage.N.key=value or model.key=value
        key, _, value = o.partition("=")
        parts = key.split(".")
        if parts[0] == "stage" and len(parts) >= 3 and parts[1].isdigit():
            idx = int(parts[1]) - 1
            if not 0 <= idx < len(stages):
                raise InputError(f"override {o!r}: there are {len(stages)} stages")
            st = stages[idx]
            cfg = st["loso"] if "loso" in st else _stage_config(chain, st)
            apply_override(cfg, ".".join(parts[2:]) + "=" + value)
            if "loso" in st:
                st["loso"] = cfg
            else:
                st["_config"] = cfg
        elif parts[0] in ("model", "name", "out"):
            if parts[0] == "model":
                apply_override({"model": chain["model"]}, o)
            else:
                chain[parts[0]] = yaml.safe_load(value)
        else:
            raise InputError(f"override {o!r}: use stage.<number>.<key>=value (e.g. stage.1.epochs=3) "
                             f"or model.<key>=value")
    for i, st in enumerate(stages):  # every stage's values checked now, not when the chain reaches it
        check_config(st["loso"] if "loso" in st else _stage_config(chain, st), f"{path}: stage {i + 1}")
    return chain


def _deep_base(loso: dict, folder: Path) -> dict:
    """A LOSO stage's config: its own keys over the file named by ``base`` (relative to the chain file)."""
    base = loso.get("base")
    merged = read_yaml((folder / base).resolve()) if base else {}
    merged = deep_update(merged, {k: v for k, v in loso.items() if k != "base"})
    return merge(DEFAULTS, merged, "loso stage")


def _stage_config(chain: dict, stage: dict) -> dict:
    """A pre-training stage as a training config: plain O-view training on all of its data's labels."""
    if "_config" in stage:
        return stage["_config"]
    cfg = copy.deepcopy(DEFAULTS)
    cfg["name"] = stage["name"]
    cfg["model"] = copy.deepcopy(chain["model"])
    cfg["data"] = {"caches": list(stage["data"]["caches"]), "protocol": "all"}
    cfg["scheme"] = merge(DEFAULTS["scheme"], {"type": "sbml", "train_views": "O", **(stage.get("scheme") or {})},
                          "scheme")
    cfg["train"] = merge(DEFAULTS["train"], {**PRETRAIN_RECIPE, **(stage.get("train") or {})},
                         f"stage {stage['name']}: train")
    return cfg


def _apply_init(cfg: dict, init: dict, previous: Path | None) -> dict:
    """Point ``cfg['model']`` at the stage's starting weights; return the provenance of those weights."""
    kind = init["kind"]
    if kind == "scratch":
        cfg["model"]["pretrained"], cfg["model"]["init"] = None, "file"
        return {"kind": "scratch"}
    path = previous if kind == "previous" else Path(init["path"])
    if not Path(path).is_file():
        raise InputError(f"starting weights {path} not found; "
                         + ("download them and put them there, or change init" if kind != "previous"
                            else "run the chain from the start"))
    cfg["model"]["pretrained"] = str(path)
    cfg["model"]["init"] = "inflate2d" if kind == "imagenet2d" else "file"
    return {"kind": kind, "path": str(path), "sha256": file_sha256(path)}


def run_chain(chain: dict, log=print, progress: bool = True) -> dict:
    out = Path(chain.get("out") or Path("runs") / chain["name"])
    out.mkdir(parents=True, exist_ok=True)
    (out / "chain.yaml").write_text(yaml.safe_dump({k: v for k, v in chain.items()}, sort_keys=False))
    provenance: list[dict] = []
    previous: Path | None = None
    summary = {}
    for i, stage in enumerate(chain["stages"]):
        folder = out / f"stage{i + 1}_{stage['name']}"
        done = folder / "done.json"
        last = i == len(chain["stages"]) - 1
        if "loso" in stage:
            cfg = copy.deepcopy(stage["loso"])
            cfg["model"]["name"], cfg["model"]["kwargs"] = chain["model"]["name"], chain["model"]["kwargs"]
            init = _apply_init(cfg, stage["init"], previous)
            cfg["name"] = f"{chain['name']}/{stage['name']}"
            cfg["out"] = str(folder)
            cfg = check_config(cfg, f"stage {stage['name']}")
            cfg["provenance"] = provenance + [{"stage": stage["name"], "kind": "loso", "init": init,
                                               "data": cfg["data"]["caches"], "protocol": cfg["data"]["protocol"],
                                               "epochs": cfg["train"]["epochs"], "scheme": cfg["scheme"]["type"],
                                               "train_views": cfg["scheme"]["train_views"]}]
            log(f"stage {i + 1}/{len(chain['stages'])} {stage['name']}: LOSO from {init['kind']}")
            summary = run(cfg, final=bool(stage.get("final")), log=log, progress=progress)
            provenance = cfg["provenance"]
            continue
        if done.exists():
            entry = json.loads(done.read_text())
            provenance.append(entry)
            previous = folder / "model.pt"
            log(f"stage {i + 1}/{len(chain['stages'])} {stage['name']}: done before, skipped")
            continue
        cfg = _stage_config(chain, stage)
        init = _apply_init(cfg, stage["init"], previous)
        cfg = check_config(cfg, f"stage {stage['name']}")
        cfg["provenance"] = list(provenance)
        cfg["out"] = str(folder)
        t0 = time.perf_counter()
        trainer = Trainer(cfg, folder, log=log, progress=progress)
        classes = trainer.bank.classes
        log(f"stage {i + 1}/{len(chain['stages'])} {stage['name']}: {len(trainer.bank)} clips, {len(classes)} "
            f"classes, from {init['kind']}")
        seed = seed_for(cfg["train"]["seed"], "stage", stage["name"])
        trained = trainer.train_model(stage["name"], folder, np.arange(len(trainer.bank)), None, seed)
        entry = {"stage": stage["name"], "kind": "pretrain", "init": init, "data": cfg["data"]["caches"],
                 "datasets": sorted({i.split(":")[0] for i in trainer.bank.ids}), "clips": len(trainer.bank),
                 "classes": list(classes), "epochs": cfg["train"]["epochs"], "lr": float(cfg["train"]["lr"]),
                 "backbone_in": trainer.init_backbone_sha256,
                 "backbone_out": backbone_digest(trained["model"]),
                 "final_train_acc": trained["history"][-1]["train_acc"] if trained["history"] else None,
                 "seconds": round(time.perf_counter() - t0, 1)}
        provenance.append(entry)
        save_view_model(folder / "model.pt", trained["model"], classes,
                        {**trainer.model_extra(f"N-step stage {stage['name']}", trained["epoch"]),
                         "provenance": list(provenance)})
        write_json_atomic(done, entry)
        (folder / "state.pt").unlink(missing_ok=True)
        previous = folder / "model.pt"
        if last:
            summary = {"model": str(previous)}
    return summary


@cli
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m training.nstep",
        description="Run an N-step pre-training chain (e.g. Kinetics → UCF101 → Macro → micro-expression LOSO): "
                    "each stage starts from the previous stage's backbone with a fresh classifier. Resumable: "
                    "finished stages are skipped and the stage in flight continues from its last checkpoint.",
        epilog="Example: python -m training.nstep --config training/configs/nstep/table1_smic_kinetics-ucf-macro.yaml "
               "stage.1.epochs=3",
    )
    p.add_argument("--config", required=True, type=Path, help="chain config (see training/configs/nstep/)")
    p.add_argument("overrides", nargs="*", help="stage.<n>.<key>=value or model.<key>=value")
    p.add_argument("--out", type=Path, default=None, help="chain folder (default runs/<name>)")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    chain = load_chain(args.config, args.overrides)
    if args.out:
        chain["out"] = str(args.out)
    run_chain(chain, progress=not args.no_progress)
    return 0


if __name__ == "__main__":
    sys.exit(main())
