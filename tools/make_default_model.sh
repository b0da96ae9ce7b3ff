#!/usr/bin/env bash
# Rebuild the demo's bundled default package, demo/default_model/, from nothing but this repository:
# synthetic SMIC-HS clips → aligned cache → LOSO evaluation + the --final model on all subjects → ONNX package.
#
#     tools/make_default_model.sh       # needs requirements/train.txt and serve-cpu.txt
#
# Fixed seeds throughout (the data's --seed 1, the config's train.seed 0). Everything but the package goes to
# runs/default-model/ (git-ignored): data (about 4.5 GB of frames; delete it when done), cache and the LOSO run.
# The LOSO folds run in two single-threaded processes (torchrun splits the folds between them): for a network this
# small that beats one process with two threads, by far so when the CPU is shared.
# Stopped, the same command carries on where it was (the dataset, once written, is kept; prepare and LOSO resume).
# After changing the config or a command here, delete runs/default-model/ first, and update model_cards/demo.md,
# which quotes these commands (tests/test_default_model.py checks that it does).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}

[ -f runs/default-model/data/SYNTHETIC.md ] || "$PY" -m training.synth --layout smic --variant raw --out runs/default-model/data --subjects 16 --clips-per-subject 12 --seed 1
"$PY" -m training.prepare --dataset smic --root runs/default-model/data --out runs/default-model/cache --size 64
"$PY" -m torch.distributed.run --standalone --nproc-per-node 2 -m training.loso --config training/configs/demo.yaml --final
"$PY" -m export --checkpoint runs/default-model/loso/final/model.pt --out demo/default_model --name decalcomanie-demo-synthetic --notes model_cards/demo.md
