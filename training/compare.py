"""``python -m training.compare``: a suite of LOSO configs → one comparison table, resumable.

A *suite* (``training/configs/suites/<NAME>.yaml``, or any YAML file) lists experiment configs::

    description: what the suite compares
    overrides: [train.device=auto]        # applied to every run (optional)
    runs:
      - name: ststnet                     # the run's label in the table (default: the config's file name)
        config: ../peers/ststnet.yaml     # relative to the suite file
        overrides: [train.epochs=500]     # this run only (optional)
    pairs: [[ststnet-sbml-OLR, ststnet]]  # paired comparisons on the same seeds: (with, without) (optional)

``--data CACHE…`` gives the data: each run trains on the caches whose input kind (``cache.json``'s ``inputs``;
a flow-image set is ``flow_image``) is the one its config names (``data.inputs``), so one command can compare RGB
and flow models on the same clips (``--data cache/smic cache/smic-flow``). ``--seeds N`` trains every config with
seeds 0 … N−1. Every (run, seed) is an ordinary LOSO run folder (:func:`training.loso.run`) under ``--out``::

    <out>/<run>/seed_<s>/            the honest run: each fold's model is its last epoch
    <out>/table.md, table.csv, table.png, runs.csv, pairs.csv, summary.json

Resumable: a finished run (its ``results.json`` and the same resolved config) is read, not retrained; a
half-finished one continues from its last checkpoint (the LOSO runner's resume); a folder that holds a run of a
different config is refused. The table gives UF1 / UAR / WAR as mean ± standard deviation over seeds (sample
standard deviation; none with one seed), the protocol and the selection rule, the training time (wall seconds of
the LOSO run, summed over the invocations that ran it; unknown for a run trained outside this command) and the
parameter count of a fold's model. A pair ``[A, B]`` adds the per-seed differences A − B (mean ± std over the
seeds, and on how many seeds A's UF1 is higher), reported whichever way they fall.

The oracle figure is what the reference codes report: each fold's epoch chosen by its accuracy on the held-out
subject. It is optimistic and not comparable with honest LOSO. Every run of a suite records each epoch's
predictions on its held-out subject (``train.oracle: true``; the test subject is a few clips, so this costs one
small evaluation per epoch and changes nothing in the training: evaluation draws no random numbers), so the oracle
figure is read from the honest run itself (:func:`training.report.oracle_scores`, ``results.json`` ``oracle``) —
no second training. It is shown only with ``--oracle``, in its own labelled columns.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import yaml

from inference.errors import InputError, cli
from inference.files import write_atomic, write_json_atomic

from .config import load_config
from .report import ORACLE_LABEL, _write_csv

SUITES = Path(__file__).resolve().parent / "configs" / "suites"
METRICS = ("uf1", "uar", "war")


# ---------------------------------------------------------------------------------------------- suites and data


def suite_names() -> list[str]:
    return sorted(p.stem for p in SUITES.glob("*.yaml"))


def load_suite(suite: str | Path) -> dict:
    """A suite by name (``training/configs/suites/NAME.yaml``) or path: ``{"name", "description", "path",
    "runs": [{"name", "config", "overrides"}]}`` with config paths resolved and every config file present."""
    path = Path(suite)
    if not path.suffix:
        path = SUITES / f"{suite}.yaml"
    if not path.is_file():
        raise InputError(f"no suite {suite!r}: give a YAML file or one of {', '.join(suite_names())}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise InputError(f"{path}: not valid YAML ({e})") from None
    if not isinstance(data, dict) or not isinstance(data.get("runs"), list) or not data["runs"]:
        raise InputError(f"{path}: a suite is a mapping with a non-empty list 'runs' of {{config, name, overrides}}")
    common = _overrides(path, data.get("overrides"), "overrides")
    runs, names = [], set()
    for i, r in enumerate(data["runs"]):
        if isinstance(r, str):
            r = {"config": r}
        if not isinstance(r, dict) or not r.get("config"):
            raise InputError(f"{path}: runs[{i}] needs a config (a path relative to the suite file)")
        config = (path.parent / str(r["config"])).resolve()
        if not config.is_file():
            raise InputError(f"{path}: runs[{i}]: no config file {config}")
        name = str(r.get("name") or config.stem)
        if name in names or "/" in name:
            raise InputError(f"{path}: runs[{i}]: the run name {name!r} is used twice or holds a '/'")
        names.add(name)
        runs.append({"name": name, "config": config,
                     "overrides": common + _overrides(path, r.get("overrides"), f"runs[{i}].overrides")})
    pairs = data.get("pairs") or []
    if not isinstance(pairs, list) or not all(isinstance(x, list) and len(x) == 2 and set(map(str, x)) <= names
                                              for x in pairs):
        raise InputError(f"{path}: pairs must be a list of [with, without] run names from: {', '.join(sorted(names))}")
    return {"name": path.stem, "description": str(data.get("description") or ""), "path": path, "runs": runs,
            "pairs": [[str(a), str(b)] for a, b in pairs]}


def _overrides(path: Path, value, where: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) and "=" in v for v in value):
        raise InputError(f"{path}: {where} must be a list of key=value strings, e.g. [train.epochs=3]")
    return list(value)


def cache_kind(path: str | Path) -> str:
    """The input kind a cache (or a flow-image set) holds."""
    from .cache import Cache

    return Cache.open(path).inputs["kind"]


def caches_for(kind: str, data: dict[str, str]) -> list[str]:
    """The ``--data`` caches (path → kind) that a config of input kind ``kind`` trains on."""
    mine = [p for p, k in data.items() if k == kind]
    if not mine:
        held = ", ".join(f"{p} ({k})" for p, k in data.items())
        raise InputError(f"a run trains on {kind} inputs, but --data holds none: {held}; add a {kind} cache "
                         f"(python -m training.prepare … --inputs {kind})")
    return mine


# ---------------------------------------------------------------------------------------------- runs


def run_config(run: dict, caches: list[str], seed: int, folder: Path) -> dict:
    """The resolved config of one (run, seed); it records each epoch's test-subject predictions (the oracle)."""
    overrides = [*run["overrides"], f"data.caches={json.dumps(caches)}", f"train.seed={seed}",
                 f"name={run['name']}-seed{seed}", f"out={json.dumps(str(folder))}", "train.oracle=true"]
    return load_config(run["config"], overrides)


def _same(stored: dict, cfg: dict) -> bool:
    return json.dumps(stored, sort_keys=True, default=str) == json.dumps(cfg, sort_keys=True, default=str)


def train_or_read(cfg: dict, log=print, progress: bool = True) -> dict:
    """``results.json`` of the LOSO run ``cfg`` describes (its ``out`` folder): read when finished with this config,
    else trained (or continued). ``compare.json`` beside it keeps the training time, updated after every fold."""
    from .loso import run

    out = Path(cfg["out"])
    stored = out / "config.yaml"
    if stored.exists() and not _same(yaml.safe_load(stored.read_text()), cfg):
        raise InputError(f"{out} holds a run of another config (its config.yaml differs from this suite's); give "
                         f"another --out or delete that folder")
    timing_path = out / "compare.json"
    timing = json.loads(timing_path.read_text()) if timing_path.exists() else {"seconds": 0.0 if not stored.exists()
                                                                               else None}
    if (out / "results.json").exists():
        return {**json.loads((out / "results.json").read_text()), "seconds": timing["seconds"]}
    base, t0 = timing["seconds"], time.perf_counter()

    def logged(msg):
        if base is not None:  # a run begun elsewhere has no known start: its time stays unknown
            write_json_atomic(timing_path, {"seconds": round(base + time.perf_counter() - t0, 3)})
        log(msg)

    summary = run(cfg, log=logged, progress=progress)
    logged(f"{cfg['name']}: done")
    return {**summary, "seconds": json.loads(timing_path.read_text())["seconds"] if base is not None else None}


def parameter_count(out: Path) -> int | None:
    """Parameters of a fold's model of the run in ``out`` (backbone and any fusion head)."""
    from .schemes import load_view_model

    model_path = next(iter(sorted((out / "folds").glob("subject_*/model.pt"))), None)
    if model_path is None:
        return None
    model, _ = load_view_model(model_path)
    return sum(p.numel() for p in model.parameters())


def compare(suite: dict, data: list[str], seeds: int = 1, oracle: bool = False, out: Path | None = None,
            log=print, progress: bool = True) -> dict:
    """Train (or read) every run of ``suite`` on ``data`` for ``seeds`` seeds; write and return the table."""
    if seeds < 1:
        raise InputError(f"--seeds must be at least 1, got {seeds}")
    if not data:
        raise InputError("no data: give --data and one or more caches (or a flow-image set)")
    kinds = {str(p): cache_kind(p) for p in data}
    out = Path(out or Path("runs") / "compare" / suite["name"])
    per_seed = []
    for r in suite["runs"]:
        probe = load_config(r["config"], [*r["overrides"], f"data.caches={json.dumps(list(kinds))}"])
        caches = caches_for(probe["data"].get("inputs", "rgb"), kinds)
        for s in range(seeds):
            folder = out / r["name"] / f"seed_{s}"
            log(f"[{r['name']} seed {s}] {folder}")
            cfg = run_config(r, caches, s, folder)
            res = train_or_read(cfg, log, progress)
            row = {"run": r["name"], "seed": s, "config": str(r["config"]), "model": cfg["model"]["name"],
                   "inputs": cfg["data"].get("inputs", "rgb"), "protocol": res["protocol"]["dataset_protocol"],
                   "scheme": f"{cfg['scheme']['type']} {cfg['scheme']['train_views']}", "n": res["n"],
                   "selection": res["protocol"]["selection"], "seconds": res["seconds"],
                   "params": parameter_count(folder), **{k: res[k] for k in METRICS},
                   "au_f1": res.get("au_f1")}  # models with an AU head (AU-fusion); None for the others
            if oracle:
                if "oracle" not in res:
                    raise InputError(f"{folder} was trained without recording its per-epoch test predictions (an "
                                     f"older run), so its oracle figure cannot be read; delete it or give another "
                                     f"--out")
                row.update({f"oracle_{k}": res["oracle"][k] for k in METRICS})
            per_seed.append(row)
    table = summarise(per_seed, oracle)
    pairs = paired(per_seed, suite.get("pairs", []))
    write_tables(out, suite, table, per_seed, oracle, pairs)
    return {"out": str(out), "rows": table, "per_seed": per_seed, "pairs": pairs}


# ---------------------------------------------------------------------------------------------- the table


def mean_std(values: list[float]) -> tuple[float, float | None]:
    m = sum(values) / len(values)
    if len(values) < 2:
        return m, None
    return m, math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1))


def summarise(per_seed: list[dict], oracle: bool) -> list[dict]:
    """One row per run: metrics as mean and standard deviation over its seeds."""
    rows = []
    for name in dict.fromkeys(r["run"] for r in per_seed):
        mine = [r for r in per_seed if r["run"] == name]
        first = mine[0]
        row = {k: first[k] for k in ("run", "config", "model", "inputs", "protocol", "scheme", "selection", "n",
                                     "params")}
        row["seeds"] = len(mine)
        keys = [*METRICS, *(f"oracle_{k}" for k in METRICS)] if oracle else list(METRICS)
        for k in keys:
            row[f"{k}_mean"], row[f"{k}_std"] = mean_std([r[k] for r in mine])
        au = [r.get("au_f1") for r in mine]
        row["au_f1_mean"], row["au_f1_std"] = (None, None) if None in au else mean_std(au)
        secs = [r["seconds"] for r in mine]
        row["train_seconds"] = None if any(s is None for s in secs) else sum(secs) / len(secs)
        rows.append(row)
    return rows


def paired(per_seed: list[dict], pairs: list[list[str]]) -> list[dict]:
    """For each (with, without) pair: the per-seed differences of UF1 / UAR / WAR, their mean ± std, and on how many
    seeds ``with`` has the higher UF1."""
    out = []
    for a, b in pairs:
        ra = {r["seed"]: r for r in per_seed if r["run"] == a}
        rb = {r["seed"]: r for r in per_seed if r["run"] == b}
        seeds = sorted(set(ra) & set(rb))
        row = {"with": a, "without": b, "seeds": len(seeds)}
        for k in METRICS:
            d = [ra[s][k] - rb[s][k] for s in seeds]
            row[f"d_{k}"] = [round(x, 6) for x in d]
            row[f"d_{k}_mean"], row[f"d_{k}_std"] = mean_std(d)
        row["uf1_higher"] = sum(x > 0 for x in row["d_uf1"])
        out.append(row)
    return out


def _pm(m: float, s: float | None) -> str:
    return f"{m:.4f}" if s is None else f"{m:.4f} ± {s:.4f}"


def _secs(s: float | None) -> str:
    return "unknown" if s is None else (f"{s:.0f} s" if s < 600 else f"{s / 60:.1f} min")


def table_markdown(suite: dict, rows: list[dict], oracle: bool, pairs: list[dict] = ()) -> str:
    head = ["run", "model", "inputs", "scheme", "protocol", "selection", "seeds", "UF1", "UAR", "WAR"]
    if oracle:
        head += ["oracle UF1", "oracle UAR", "oracle WAR"]
    has_au = any(r.get("au_f1_mean") is not None for r in rows)
    if has_au:
        head += ["AU F1"]
    head += ["train time / seed", "parameters"]
    lines = [f"# Comparison: {suite['name']}", ""]
    if suite["description"]:
        lines += [suite["description"], ""]
    lines += ["Leave-one-subject-out, predictions pooled over all folds. Honest model selection: each fold's model is "
              "its last epoch (nothing about the test subject is used). UF1 / UAR / WAR: mean ± sample standard "
              "deviation over seeds.", ""]
    if any(r.get("au_f1_mean") is not None for r in rows):
        lines += ["AU F1 (models with an AU-detection head): per-AU F1 over the clips with AU codes, mean over the AUs "
                  "present; — for models without one.", ""]
    if oracle:
        lines += ["> **Oracle columns**: each fold's epoch was chosen by its accuracy on the held-out subject, as the "
                  "reference codes do. Optimistic, not comparable with honest LOSO; shown beside published figures "
                  "only.", ""]
    lines += ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for r in rows:
        cells = [r["run"], r["model"], r["inputs"], r["scheme"], r["protocol"], r["selection"], str(r["seeds"]),
                 *(_pm(r[f"{k}_mean"], r[f"{k}_std"]) for k in METRICS)]
        if oracle:
            cells += [_pm(r[f"oracle_{k}_mean"], r[f"oracle_{k}_std"]) for k in METRICS]
        if has_au:
            cells += ["—" if r["au_f1_mean"] is None else _pm(r["au_f1_mean"], r["au_f1_std"])]
        cells += [_secs(r["train_seconds"]), "unknown" if r["params"] is None else f"{r['params']:,}"]
        lines.append("| " + " | ".join(cells) + " |")
    if pairs:
        lines += ["", "Paired comparisons: differences on the same seeds (with − without), mean ± sample standard "
                  "deviation over seeds; honest selection.", "",
                  "| with | without | seeds | ΔUF1 | ΔUAR | ΔWAR | seeds with higher UF1 |",
                  "|" + " --- |" * 7]
        for p in pairs:
            d = [f"{p[f'd_{k}_mean']:+.4f}" + ("" if p[f"d_{k}_std"] is None else f" ± {p[f'd_{k}_std']:.4f}")
                 for k in METRICS]
            lines.append(f"| {p['with']} | {p['without']} | {p['seeds']} | {' | '.join(d)} | "
                         f"{p['uf1_higher']} of {p['seeds']} |")
    lines += ["", "![UF1 per run](table.png)"]
    return "\n".join(lines) + "\n"


def table_png(path: Path, rows: list[dict], oracle: bool) -> None:
    """UF1 per run, honest bars with their seed spread; oracle bars hatched beside them."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 0.55 * len(rows) + 2.0))
    y = list(range(len(rows)))
    h = 0.38 if oracle else 0.6
    ax.barh([i - (h / 2 if oracle else 0) for i in y], [r["uf1_mean"] for r in rows], height=h,
            xerr=[r["uf1_std"] or 0 for r in rows], color="#3b75af", label="UF1 (honest: last epoch)")
    if oracle:
        ax.barh([i + h / 2 for i in y], [r["oracle_uf1_mean"] for r in rows], height=h,
                xerr=[r["oracle_uf1_std"] or 0 for r in rows], color="#f2b880", hatch="//",
                label="UF1, oracle (epoch chosen on the test subject)")
    ax.set_yticks(y, [r["run"] for r in rows])
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("UF1 (mean ± std over seeds)")
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), fontsize="small", frameon=False)
    fig.tight_layout()
    try:
        write_atomic(path, lambda f: fig.savefig(f, format="png", dpi=110))
    finally:
        plt.close(fig)


def write_tables(out: Path, suite: dict, rows: list[dict], per_seed: list[dict], oracle: bool,
                 pairs: list[dict] = ()) -> None:
    out.mkdir(parents=True, exist_ok=True)
    text = table_markdown(suite, rows, oracle, pairs)
    write_atomic(out / "table.md", lambda f: f.write(text.encode("utf-8")))
    header = list(rows[0])
    _write_csv(out / "table.csv", header, [["" if r[k] is None else r[k] for k in header] for r in rows])
    seed_header = list(per_seed[0])
    _write_csv(out / "runs.csv", seed_header, [["" if r[k] is None else r[k] for k in seed_header] for r in per_seed])
    if pairs:
        pair_header = [k for k in pairs[0] if k not in ("d_uf1", "d_uar", "d_war")]
        _write_csv(out / "pairs.csv", pair_header, [["" if p[k] is None else p[k] for k in pair_header] for p in pairs])
    table_png(out / "table.png", rows, oracle)
    write_json_atomic(out / "summary.json", {"suite": suite["name"], "description": suite["description"],
                                             "oracle": ORACLE_LABEL if oracle else None, "rows": rows,
                                             "per_seed": per_seed, "pairs": list(pairs)})


@cli
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m training.compare",
        description="Run a suite of LOSO configs (resumable; each run an ordinary LOSO run folder) and write one "
                    "comparison table: UF1 / UAR / WAR mean ± std over seeds, protocol and selection rule, training "
                    "time, parameters (markdown, CSV and a plot).",
        epilog=f"Suites: {', '.join(suite_names())}. Example: python -m training.compare --suite composite-flow "
               f"--data PATH_TO_FLOW_SET --seeds 3",
    )
    p.add_argument("--suite", required=True, help="a suite name (training/configs/suites/) or a suite YAML file")
    p.add_argument("--data", nargs="+", required=True, metavar="CACHE",
                   help="caches or flow-image sets; each run takes those of its input kind")
    p.add_argument("--seeds", type=int, default=1, help="train every config with seeds 0..N-1 (default 1)")
    p.add_argument("--oracle", action="store_true",
                   help="also show the figure with each fold's epoch chosen on the test subject (the reference codes' "
                        "optimistic figure), read from the honest runs' recorded per-epoch test predictions (no "
                        "second training), in its own labelled columns")
    p.add_argument("--out", type=Path, default=None, help="output folder (default runs/compare/<suite>)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = p.parse_args(argv)
    result = compare(load_suite(args.suite), args.data, args.seeds, args.oracle, args.out,
                     progress=not args.no_progress)
    print((Path(result["out"]) / "table.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
