"""The comparison command on the tiny suite: two configs × one seed of the tiny CPU model on two synthetic subjects."""

import csv
import json
from pathlib import Path

import pytest
import yaml

from inference.errors import InputError
from training.compare import compare, load_suite, main, mean_std, suite_names
from training.metrics import scores
from training.report import ORACLE_LABEL

ROOT = Path(__file__).resolve().parent.parent


def _folds(folder: Path) -> dict:
    return {p.parent.name: json.loads(p.read_text()) for p in sorted(folder.glob("folds/*/result.json"))}


def test_compare_writes_the_table_resumes_and_adds_the_oracle(smic_heldout_cache, tmp_path):
    suite = load_suite("tiny")
    out = tmp_path / "cmp"
    logs = []
    first = compare(suite, [str(smic_heldout_cache)], out=out, log=logs.append, progress=False)
    assert [r["run"] for r in first["rows"]] == ["tiny-O", "tiny-OLR"]
    for r in first["rows"]:
        res = json.loads((out / r["run"] / "seed_0" / "results.json").read_text())
        assert (r["uf1_mean"], r["uar_mean"], r["war_mean"]) == (res["uf1"], res["uar"], res["war"])
        assert r["uf1_std"] is None and r["seeds"] == 1 and r["selection"] == "last" and r["protocol"] == "smic"
        assert r["params"] > 0 and r["train_seconds"] > 0
    text = (out / "table.md").read_text()
    assert "| tiny-O | resnet3d_tiny | rgb | sbml O | smic | last | 1 |" in text and "oracle" not in text.lower()
    with open(out / "table.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["run"] for r in rows] == ["tiny-O", "tiny-OLR"] and "oracle_uf1_mean" not in rows[0]
    assert (out / "table.png").read_bytes()[:4] == b"\x89PNG"
    (pair,) = first["pairs"]  # Décalcomanie (OLR) against the O view alone, on the same seed
    uf1 = {r["run"]: r["uf1_mean"] for r in first["rows"]}
    assert pair["d_uf1_mean"] == pytest.approx(uf1["tiny-OLR"] - uf1["tiny-O"]) and pair["seeds"] == 1
    assert pair["uf1_higher"] == int(uf1["tiny-OLR"] > uf1["tiny-O"]) and "| tiny-OLR | tiny-O | 1 |" in text

    # a finished run is read, not retrained; the oracle figure is read from the honest run's per-epoch record
    honest = {r["run"]: _folds(out / r["run"] / "seed_0") for r in first["rows"]}
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("*/seed_0/folds/*/model.pt")}
    logs.clear()
    again = compare(suite, [str(smic_heldout_cache)], oracle=True, out=out, log=logs.append, progress=False)
    assert {p: p.stat().st_mtime_ns for p in out.glob("*/seed_0/folds/*/model.pt")} == stamps
    assert not any("seed0:" in m and "clips" in m for m in logs)  # nothing trained again
    assert not list(out.glob("*/seed_0_oracle"))  # no second training
    for r in again["rows"]:
        assert r["uf1_mean"] == next(x for x in first["rows"] if x["run"] == r["run"])["uf1_mean"]
        res = json.loads((out / r["run"] / "seed_0" / "results.json").read_text())
        classes = res["protocol"]["classes"]
        labels, preds = [], []
        for subject, fold in honest[r["run"]].items():
            h = fold["history"]
            # the last epoch's record is the honest fold's model: same predictions, same accuracy
            assert h[-1]["test_pred"] == [classes.index(x["pred"]) for x in fold["rows"]]
            acc = sum(x["label"] == x["pred"] for x in fold["rows"]) / len(fold["rows"])
            assert h[-1]["test_subject_acc"] == pytest.approx(acc)
            accs = [e["test_subject_acc"] for e in h]
            best = h[accs.index(max(accs))]
            assert max(accs) >= acc and res["oracle"]["epochs"][subject.split("_")[1]] == best["epoch"]
            labels += [classes.index(x["label"]) for x in fold["rows"]]
            preds += best["test_pred"]
        want = scores(labels, preds, len(classes))
        assert (r["oracle_uf1_mean"], r["oracle_uar_mean"], r["oracle_war_mean"]) == pytest.approx(
            (want["uf1"], want["uar"], want["war"]))
        assert res["protocol"]["selection"] == "last" and res["oracle"]["label"] == ORACLE_LABEL
        report = (out / r["run"] / "seed_0" / "report.md").read_text()
        assert "Oracle figure (epoch chosen on the test subject" in report
    text = (out / "table.md").read_text()
    assert "oracle UF1" in text and "chosen by its accuracy on the held-out subject" in text

    # a folder holding another config's run is refused
    with pytest.raises(InputError, match="another config"):
        compare(load_suite(_suite(tmp_path, ["train.epochs=3"])), [str(smic_heldout_cache)], out=out,
                log=logs.append, progress=False)


def _suite(tmp_path: Path, overrides: list[str]) -> Path:
    tiny = yaml.safe_load((ROOT / "training/configs/suites/tiny.yaml").read_text())
    tiny["overrides"] += overrides
    tiny["runs"] = [{**r, "config": str(ROOT / "training/configs/tiny.yaml")} for r in tiny["runs"]]
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(tiny))
    return path


def test_suites_and_their_errors(tmp_path, capsys):
    assert {"tiny", "composite-flow", "smic", "casme2", "samm"} <= set(suite_names())
    for name in suite_names():
        assert load_suite(name)["runs"]  # every shipped suite names existing configs
    with pytest.raises(InputError, match="no suite 'nope'"):
        load_suite("nope")
    bad = tmp_path / "bad.yaml"
    bad.write_text("runs: [{config: missing.yaml}]")
    with pytest.raises(InputError, match="no config file"):
        load_suite(bad)
    assert main(["--suite", "nope", "--data", str(tmp_path)]) == 2
    assert "no suite" in capsys.readouterr().err
    assert mean_std([0.5]) == (0.5, None)
    assert mean_std([0.4, 0.6])[0] == pytest.approx(0.5) and mean_std([0.4, 0.6])[1] == pytest.approx(0.1414, abs=1e-4)
