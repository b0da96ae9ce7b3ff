"""``python -m training.gpu_check.loso_child --config C --out D``: ``training.loso`` under :func:`deterministic`,
the run the GPU check kills mid-fold. The check's uninterrupted and resumed runs go through the same context in its
own process, so all three runs use the same algorithms."""

from __future__ import annotations

import contextlib
import os
import re
import sys
import warnings

NONDETERMINISTIC = re.compile(r"(\S+) does not have a deterministic implementation")
CUBLAS_WORKSPACE = ":4096:8"  # what cuBLAS needs for reproducible results (CUDA's and PyTorch's docs)


@contextlib.contextmanager
def deterministic(found: set[str] | None = None):
    """Deterministic algorithms on (warn-only: an op without a deterministic CUDA kernel runs and warns, and its name
    is added to ``found``), cuDNN autotuning off; the previous settings come back after."""
    import torch

    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)
    before = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
              torch.backends.cudnn.benchmark)
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False
    try:
        with warnings.catch_warnings(record=found is not None) as caught:
            if found is not None:
                warnings.simplefilter("always")
            yield
    finally:
        torch.use_deterministic_algorithms(before[0], warn_only=before[1])
        torch.backends.cudnn.benchmark = before[2]
        for w in caught or []:
            m = NONDETERMINISTIC.search(str(w.message))
            if m:
                found.add(m.group(1))
            else:
                warnings.showwarning(w.message, w.category, w.filename, w.lineno)


def main(argv: list[str] | None = None) -> int:
    from training.loso import main as loso_main

    with deterministic():
        return loso_main(argv)


if __name__ == "__main__":
    sys.exit(main())
