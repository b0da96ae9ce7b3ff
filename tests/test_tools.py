"""The developer tools (``tools/``): every benchmark command answers under its name in ``tools.bench``, the READMEs
name only commands that exist, and the STSTNet LOSO bench (moved out of ``training.foldbatch``) runs end to end."""

import contextlib
import importlib.util
import io
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCHES = {  # argv → the module that answers it
    ("inference", "--help"): "tools.bench.inference",
    ("inference", "runtime", "--help"): "tools.bench.inference runtime",
    ("export", "--help"): "tools.bench.export",
    ("training", "--help"): "tools.bench.training",
    ("training", "ststnet-loso", "--help"): "tools.bench.training ststnet-loso",
    ("folds", "--help"): "tools.bench.folds",
}


@pytest.mark.parametrize("argv", BENCHES, ids=" ".join)
def test_every_bench_answers_help_under_its_new_name(argv):
    module = importlib.import_module(f"tools.bench.{argv[0]}")
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as done:
        module.main(list(argv[1:]))
    assert done.value.code == 0
    assert out.getvalue().startswith(f"usage: python -m {BENCHES[argv]}"), out.getvalue()[:200]


def test_python_m_tools_bench_lists_the_commands():
    res = subprocess.run([sys.executable, "-m", "tools.bench"], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert res.returncode == 0, res.stderr
    for command in ("tools.bench.inference face|runtime|motion|recordings", "tools.bench.export --model",
                    "tools.bench.training ", "tools.bench.training ststnet-loso"):
        assert f"python -m {command}" in res.stdout, command


def test_the_docs_name_only_bench_commands_that_exist():
    readme, tools_readme = (ROOT / "README.md").read_text(), (ROOT / "tools" / "README.md").read_text()
    named = set(re.findall(r"python -m (tools\.bench[\w.]*)", readme + tools_readme))
    assert {"tools.bench.inference", "tools.bench.export", "tools.bench.training"} <= named
    assert all(importlib.util.find_spec(m) is not None for m in named), named
    for old in ("inference.bench", "export.bench", "training.bench"):  # moved: gone, and only named as what it was
        assert importlib.util.find_spec(old) is None, old
        assert f"-m {old}" not in readme
        assert all(f"| `python -m {old}" in line for line in tools_readme.splitlines() if f"-m {old}" in line)


@pytest.mark.parametrize("config", [None, "ststnet_fsb_OLR.yaml"])
def test_the_ststnet_loso_bench_runs_on_a_tiny_set(capsys, config):
    from tools.bench.training import main

    extra = ["--config", str(ROOT / "training" / "configs" / "peers" / config)] if config else []
    assert main(["ststnet-loso", "--subjects", "3", "--samples", "24", "--epochs", "2", "--seq-folds", "1",
                 "--seq-epochs", "1", "--timed-epochs", "1", "--step", "autograd", "--compile", "off", *extra]) == 0
    out = capsys.readouterr().out
    assert "STSTNet LOSO, 3 folds x 2 epochs, 24 clips" in out and "step autograd" in out
    assert (config or "ststnet.yaml") in out  # which recipe was timed
    # a ratio of two timings is printed (its value is the bench's business: on a loaded machine it can round to 0.0)
    assert re.search(r"speed-up [\d.]+x; full run <= 10 min: (yes|no)", out), out
