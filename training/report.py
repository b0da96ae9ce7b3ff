"""A LOSO run's reports, from its folds' results: every file is written atomically (a reader never sees half).

- ``predictions.csv``: one row per clip: subject, clip, label, pred, fold, score per class;
- ``per_subject.csv``: clips, correct, accuracy and selected epoch per held-out subject;
- ``results.json``: UF1 / UAR / WAR pooled over folds, per-class scores, confusion, protocol (and the warning
  when the folds' epochs were chosen on their test subjects); for a model with an AU head, ``au_f1`` (mean over the
  AUs present of the per-AU F1, pooled over the folds' clips that have AU codes; clips without codes are left out
  and counted) beside UF1 / UAR / WAR, and ``au_f1_per_au``;
- ``confusion.png`` and ``report.md``.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from inference.files import write_atomic, write_json_atomic

from .metrics import scores

ORACLE_LABEL = "epoch chosen on the test subject: optimistic, not comparable with honest LOSO"
SELECTION_WARNING = ("selection=test_set_best: each fold's epoch was chosen by its score on the held-out subject "
                     "(as the reference code does). These figures are optimistic and not comparable to honest LOSO.")


def write_reports(out: Path, cfg: dict, protocol: str, classes, results: list[dict]) -> dict:
    """Write the run's reports into ``out`` from the folds' ``result.json`` contents; returns results.json's."""
    classes = list(classes)
    results = sorted(results, key=lambda r: r["subject"])
    rows = [r for res in results for r in res["rows"]]
    metrics = scores([classes.index(r["label"]) for r in rows], [classes.index(r["pred"]) for r in rows],
                     len(classes))
    aus = results[0].get("aus")  # the AU vocabulary of a model with an AU head
    au_cols = ["aus", "au_pred"] if aus else []
    _write_csv(out / "predictions.csv",
               ["subject", "clip", "label", "pred", "fold", *[f"score_{c}" for c in classes], *au_cols],
               [[r["subject"], r["clip"], r["label"], r["pred"], r["fold"], *r["scores"],
                 *[_au_text(r[k]) for k in au_cols]] for r in rows])
    per_subject = []
    for res in results:
        n = len(res["rows"])
        ok = sum(r["label"] == r["pred"] for r in res["rows"])
        per_subject.append({"subject": res["subject"], "clips": n, "correct": ok,
                            "accuracy": round(ok / n, 4) if n else 0.0, "selected_epoch": res["selected_epoch"],
                            **({"au_f1": res.get("au_f1")} if aus else {})})
    _write_csv(out / "per_subject.csv", list(per_subject[0]), [list(s.values()) for s in per_subject])
    s, t = cfg["scheme"], cfg["train"]
    described = {
        "evaluation": "leave-one-subject-out, predictions pooled over all folds (UF1/UAR composite style)",
        "dataset_protocol": protocol, "classes": classes, "subjects": len(results), "clips": len(rows),
        "scheme": s["type"], "train_views": s["train_views"], "test_views": s["test_views"] or s["train_views"],
        "fsb_head": s["fsb_head"] if s["type"] == "fsb" else None, "backbone": cfg["model"]["name"],
        "pretrained": cfg["model"]["pretrained"], "epochs": t["epochs"], "n_frames": t["n_frames"], "size": t["size"],
        "selection": t["selection"], "smote": t["smote"], "balanced": t["balanced"],
        "class_weights": t.get("class_weights", "none"), "seed": t["seed"],
    }
    results_json = {"uf1": metrics["uf1"], "uar": metrics["uar"], "war": metrics["war"], "n": metrics["n"],
                    "protocol": described, "per_class": metrics["per_class"], "confusion": metrics["confusion"],
                    "run": cfg["name"]}
    if aus:
        results_json.update(au_scores(rows, aus), au_threshold=t.get("au_threshold", 0.5))
    oracle = oracle_scores(results, classes)
    if oracle is not None:
        results_json["oracle"] = oracle
        for row, epoch in zip(per_subject, oracle["epochs"].values()):
            row["oracle_epoch"] = epoch
    if t["selection"] == "test_set_best":
        results_json["warning"] = SELECTION_WARNING
    write_json_atomic(out / "results.json", results_json)
    confusion_png(out / "confusion.png", np.array(metrics["confusion"]), classes, metrics)
    text = report_markdown(results_json, per_subject)
    write_atomic(out / "report.md", lambda f: f.write(text.encode("utf-8")))
    return results_json


def oracle_scores(results: list[dict], classes) -> dict | None:
    """The oracle figure of a run that recorded each epoch's test-subject predictions (``train.oracle``): per fold,
    the epoch with the best accuracy on its held-out subject (the first such, as ``selection: test_set_best``
    picks), its predictions pooled over the folds into UF1 / UAR / WAR, labelled :data:`ORACLE_LABEL`. None when a
    fold has no record. The run's own (honest) figures are untouched."""
    classes = list(classes)
    labels, preds, epochs = [], [], {}
    for res in results:
        recorded = [h for h in res["history"] if "test_pred" in h]
        if not recorded or len(recorded) != len(res["history"]):
            return None
        best = max(recorded, key=lambda h: h["test_subject_acc"])  # max keeps the first of equal ones
        epochs[str(res["subject"])] = best["epoch"]
        labels += [classes.index(r["label"]) for r in res["rows"]]
        preds += best["test_pred"]
    m = scores(labels, preds, len(classes))
    return {"uf1": m["uf1"], "uar": m["uar"], "war": m["war"], "label": ORACLE_LABEL, "epochs": epochs}


def _au_text(value) -> str:
    return "" if value is None else "+".join(str(a) for a in value)


def au_scores(rows: list[dict], aus) -> dict:
    """AU F1 pooled over the rows whose clip has AU codes (``row["aus"]`` not None; the others are counted in
    ``au_clips_without_codes``): the mean over the AUs present of the per-AU F1 of the rows' predicted AUs
    (``row["au_pred"]``: each fold's rule, ``train.au_threshold``)."""
    from .models.au_fusion import au_f1

    coded = [r for r in rows if r.get("aus") is not None]
    result = {"au_f1": None, "au_f1_per_au": {}, "au_clips": len(coded),
              "au_clips_without_codes": len(rows) - len(coded), "aus": list(aus)}
    if coded:
        target = np.array([[a in r["aus"] for a in aus] for r in coded])
        pred = np.array([[a in r["au_pred"] for a in aus] for r in coded])
        f = au_f1(target, pred, aus)
        result.update(au_f1=None if f["mean"] != f["mean"] else f["mean"], au_f1_per_au=f["per_au"])
    return result


def au_rule(setting) -> str:
    """How the AUs were predicted, in words, from ``train.au_threshold``."""
    if setting == "train_f1":
        return ("predicted at each AU's threshold with the best F1 on its fold's training subjects, "
                "train.au_threshold: train_f1")
    return f"predicted at probability ≥ {setting:g}"


def _write_csv(path: Path, header: list, rows: list[list]) -> None:
    buf = io.StringIO(newline="")
    w = csv.writer(buf)
    w.writerow(header)
    w.writerows(rows)
    write_atomic(path, lambda f: f.write(buf.getvalue().encode("utf-8")))


def confusion_png(path: Path, m: np.ndarray, classes, metrics: dict) -> None:
    """The confusion matrix as an image, UF1 / UAR / WAR in its title."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(1.2 * len(classes) + 2.5, 1.1 * len(classes) + 2))
    ax.imshow(m, cmap="Blues")
    ax.set_xticks(range(len(classes)), classes, rotation=35, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(len(classes)):
        for j in range(len(classes)):
            ax.text(j, i, int(m[i, j]), ha="center", va="center", color="white" if m[i, j] > m.max() / 2 else "black")
    ax.set_title(f"UF1 {metrics['uf1']:.3f}  UAR {metrics['uar']:.3f}  WAR {metrics['war']:.3f}")
    fig.tight_layout()
    try:
        write_atomic(path, lambda f: fig.savefig(f, format="png", dpi=110))
    finally:
        plt.close(fig)


def report_markdown(res: dict, per_subject: list[dict]) -> str:
    """``report.md``: the scores, the recipe, the confusion image, per-class and per-subject tables."""
    p = res["protocol"]
    lines = [f"# {res['run']}", ""]
    if "warning" in res:
        lines += [f"> **Warning.** {res['warning']}", ""]
    lines += [
        f"{p['evaluation']}; {p['dataset_protocol']} protocol ({', '.join(p['classes'])}), {p['subjects']} subjects, "
        f"{p['clips']} clips.",
        "",
        *_score_table(res), "",
        f"Scheme **{p['scheme'].upper()}**{' (' + p['fsb_head'] + ' head)' if p['fsb_head'] else ''}: train views "
        f"{p['train_views']}, test views {p['test_views']}; backbone {p['backbone']}"
        f"{' from ' + str(p['pretrained']) if p['pretrained'] else ' from scratch'}; {p['epochs']} epochs, "
        f"{p['n_frames']} frames at {p['size']} px; model selection: {p['selection']}; SMOTE: {p['smote']}; "
        f"balanced sampling: {p['balanced']}; seed {p['seed']}.",
        "", "![confusion](confusion.png)", "", "| class | F1 | recall | support |", "| --- | --- | --- | --- |",
    ]
    pc = res["per_class"]
    for c, f1, rc, n in zip(p["classes"], pc["f1"], pc["recall"], pc["support"]):
        lines.append(f"| {c} | {f1:.3f} | {rc:.3f} | {n} |")
    if "oracle" in res:
        o = res["oracle"]
        lines += ["", f"Oracle figure ({o['label']}): each fold's epoch chosen by its accuracy on the held-out "
                      f"subject, read from this run's per-epoch test predictions. Not this run's result.", "",
                  "| oracle UF1 | oracle UAR | oracle WAR |", "| --- | --- | --- |",
                  f"| {o['uf1']:.4f} | {o['uar']:.4f} | {o['war']:.4f} |"]
    has_au = "au_f1" in res
    if has_au:
        lines += ["", f"AU F1 (action units, {au_rule(res.get('au_threshold', 0.5))}): mean over the AUs present in "
                      f"{res['au_clips']} clips with AU codes ({res['au_clips_without_codes']} clips without codes "
                      f"left out).", "", "| AU | F1 |", "| --- | --- |",
                  *(f"| {au} | {f:.3f} |" for au, f in res["au_f1_per_au"].items())]
    lines += ["", f"| subject | clips | correct | accuracy | epoch |{' AU F1 |' if has_au else ''}",
              "| --- | --- | --- | --- | --- |" + (" --- |" if has_au else "")]
    for s in per_subject:
        lines.append(f"| {s['subject']} | {s['clips']} | {s['correct']} | {s['accuracy']:.3f} "
                     f"| {s['selected_epoch']} |" + (f" {_f(s['au_f1'])} |" if has_au else ""))
    return "\n".join(lines) + "\n"


def _f(value) -> str:
    return "—" if value is None else f"{value:.4f}"


def _score_table(res: dict) -> list[str]:
    """The scores' markdown table: UF1 / UAR / WAR, and AU F1 when the model detects AUs."""
    names, values = ["UF1", "UAR", "WAR"], [res["uf1"], res["uar"], res["war"]]
    if "au_f1" in res:
        names, values = [*names, "AU F1"], [*values, res["au_f1"]]
    return ["| " + " | ".join(names) + " |", "|" + " --- |" * len(names), "| " + " | ".join(map(_f, values)) + " |"]
