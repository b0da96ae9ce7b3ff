"""``python -m export.train``: one recipe from a published flow-image set to a served model, in one command.

    python -m export.train composite-flow --data SET --out DIR [key=value …] [--no-final]

``composite-flow``: STSTNet on the MEGC2019 composite flow-image set (HTNet's ``STSNet_whole_norm_u_v_os`` with its
CSV; :mod:`training.datasets.flowset` reads it), with the project's recipe (``training/configs/peers/
ststnet_balanced.yaml``: the authors' network, optimiser and 800 epochs, every fold trained at once, honest model
selection — the last epoch —, each fold's loss weighted per class on its own training clips, and O/L/R Décalcomanie
views at test time). The command

1. trains honest leave-one-subject-out (``python -m training.loso``; resumable) into ``DIR/run``, and with it the
   final all-subject model (``--final``, ``DIR/run/final/model.pt``; skipped with ``--no-final``);
2. exports every fold to one fold package ``DIR/package`` (``python -m export --folds DIR/run --flow-recipe
   megc2019-composite``): its card carries the run's honest LOSO figure and protocol and a temperature fitted on the
   run's out-of-subject predictions; serving makes the flow image of a video with the set's own recipe;
3. prints the ``python -m demo --model DIR/package`` line that serves it.

Killed at any moment, the same command continues where it stopped: the LOSO runner resumes its folds, a final model
already written is kept, and the package is written again (seconds). ``key=value`` overrides go to the training
config (e.g. ``epochs=3``; :func:`training.config.load_config`).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from inference.errors import InputError, cli

ROOT = Path(__file__).resolve().parent.parent
RECIPES = {  # name → (training config, flow-image recipe serving uses, what the model is trained on)
    "composite-flow": (ROOT / "training" / "configs" / "peers" / "ststnet_balanced.yaml", "megc2019-composite",
                       "the MEGC2019 composite flow-image set (HTNet's STSNet_whole_norm_u_v_os, or a set in its "
                       "layout)"),
}


def train_and_export(recipe: str, data: Path, out: Path, overrides: list[str] = (), final: bool = True,
                     log=print, progress: bool = True) -> dict:
    """The whole recipe (module docstring). Returns ``{"run", "package", "results", "demo"}``: the run folder, the
    fold package folder, the run's results.json contents and the command line that serves the package."""
    from training.config import load_config
    from training.loso import run

    from .convert import export_run_folds

    if recipe not in RECIPES:
        raise InputError(f"unknown recipe {recipe!r}; choose one of {', '.join(RECIPES)}")
    config, flow_recipe, _ = RECIPES[recipe]
    data, out = Path(data), Path(out)
    if not data.is_dir():
        raise InputError(f"--data {data}: no such folder; point it at the flow-image set (a folder with the set's "
                         f"CSV and its images, e.g. HTNet's datasets/ folder holding STSNet_whole_norm_u_v_os)")
    cfg = load_config(config, [f"data.caches=[{data}]", *overrides])
    cfg["out"] = str(out / "run")
    log(f"[1/3] LOSO training ({recipe}: {config.relative_to(ROOT)}){' + the final all-subject model' if final else ''}"
        f" → {out / 'run'}")
    results = run(cfg, final=final, log=log, progress=progress)
    package = out / "package"
    log(f"[2/3] fold package → {package}")
    export_run_folds(out / "run", package, name=f"{recipe}-folds", flow_recipe=flow_recipe, log=log)
    demo = f"python -m demo --model {shlex.quote(str(package))}"
    log(f"[3/3] serve it:\n\n    {demo}\n")
    if final:
        log(f"(the final all-subject model, one network instead of the folds' mean, exports with: python -m export "
            f"--checkpoint {shlex.quote(str(out / 'run' / 'final' / 'model.pt'))} --out "
            f"{shlex.quote(str(out / 'final-package'))} --flow-recipe {flow_recipe})")
    return {"run": out / "run", "package": package, "results": results, "demo": demo}


@cli
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m export.train",
        description="From a published flow-image set to a served model in one command: honest LOSO training (and "
                    "the final all-subject model), the fold package with its LOSO figure and calibration in the "
                    "card, and the python -m demo line that serves it. Resumable: run the same command again after "
                    "an interruption.",
        epilog="Example: python -m export.train composite-flow --data HTNet/datasets --out runs/composite  "
               "(recipes: " + "; ".join(f"{k}: {v[2]}, trained with {v[0].relative_to(ROOT)}"
                                         for k, v in RECIPES.items()) + ")")
    p.add_argument("recipe", choices=sorted(RECIPES), help="what to train (composite-flow: STSTNet on the MEGC2019 "
                                                           "composite flow-image set, the authors' network and "
                                                           "schedule, losses weighted per class, O/L/R views at test "
                                                           "time)")
    p.add_argument("--data", required=True, type=Path,
                   help="the labelled flow-image set (its CSV and image folder; python -m training.synth --layout "
                        "flowset writes a synthetic one)")
    p.add_argument("--out", required=True, type=Path,
                   help="work folder: run/ (the LOSO run, resumable), package/ (the fold package)")
    p.add_argument("overrides", nargs="*", help="training config overrides, key=value (e.g. epochs=3)")
    p.add_argument("--no-final", action="store_true", help="skip the final all-subject model (run/final/model.pt)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = p.parse_intermixed_args(argv)
    train_and_export(args.recipe, args.data, args.out, args.overrides, final=not args.no_final,
                     progress=not args.no_progress)
    return 0


if __name__ == "__main__":
    sys.exit(main())
