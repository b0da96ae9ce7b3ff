"""``python -m export.train``: one command from a flow-image set (a synthetic one in the published layout) to a
served fold package — honest LOSO plus the final all-subject model, the fold package with the run's LOSO figure and
calibration in its card, the ``python -m demo`` line printed — and the same command again resumes."""

import json

import pytest

from export.train import main
from inference.runtime import Predictor
from tests.test_foldpackage import flow_set  # noqa: F401 — the fixture: a small set in the published layout


def test_one_command_trains_exports_and_prints_the_demo_line_then_resumes(flow_set, tmp_path, capsys):  # noqa: F811
    out = tmp_path / "work"
    argv = ["composite-flow", "--data", str(flow_set), "--out", str(out), "epochs=2", "batch_size=8", "device=cpu",
            "--no-progress"]
    assert main(argv) == 0
    said = capsys.readouterr().out
    package = out / "package"
    assert f"python -m demo --model {package}" in said
    assert f"python -m export --checkpoint {out / 'run' / 'final' / 'model.pt'}" in said
    results = json.loads((out / "run" / "results.json").read_text())
    assert (out / "run" / "final" / "model.pt").exists()
    config = json.loads((package / "config.json").read_text())
    assert config["loso"]["uf1"] == results["uf1"] and config["loso"]["protocol"]["subjects"] == 6
    assert config["loso"]["protocol"]["selection"] == "last" and config["loso"]["protocol"]["epochs"] == 2
    assert config["folds"]["subjects"] == [1001, 1002, 2001, 2002, 3006, 3007]
    assert config["input"]["motion"]["recipe"]["name"] == "megc2019-composite"  # served as the set was made
    # the project's recipe: losses weighted per class, O/L/R views at test time (the run's figure and the package's)
    assert config["test_views"] == "OLR" and results["protocol"]["class_weights"] == "balanced"
    assert config["calibration"]["clips"] == 18 and (package / "reliability.png").exists()
    card = (package / "README.md").read_text()
    assert f"UF1 {results['uf1']:.4f}" in card and f"T = {config['calibration']['temperature']:g}" in card
    assert "test views OLR; each fold's loss weighted per class on its own training clips." in card
    Predictor(package)  # it loads as the demo loads it
    final = (out / "run" / "final" / "model.pt").stat().st_mtime_ns
    fold = (out / "run" / "folds" / "subject_1001" / "model.pt").stat().st_mtime_ns
    assert main(argv) == 0  # again: folds and the final model kept, the package written again, the same figure
    said = capsys.readouterr().out
    assert "already trained; kept" in said and f"python -m demo --model {package}" in said
    assert (out / "run" / "final" / "model.pt").stat().st_mtime_ns == final
    assert (out / "run" / "folds" / "subject_1001" / "model.pt").stat().st_mtime_ns == fold
    assert json.loads((package / "config.json").read_text())["loso"]["uf1"] == results["uf1"]


def test_bad_input_is_refused_in_a_line(tmp_path, capsys):
    assert main(["composite-flow", "--data", str(tmp_path / "none"), "--out", str(tmp_path / "w")]) == 2
    err = capsys.readouterr().err
    assert "no such folder" in err and "Traceback" not in err
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "resumable" in capsys.readouterr().out.lower()
