"""PyTorch eager against the exported package, on the same input, as ratios from one run.

``python -m tools.bench.export --model PKG --checkpoint CKPT [--clip PATH] [--batch B] [--repeat N] [--device D]``: the
clip is prepared as the runtime prepares it (decode, align, resample), repeated ``--batch`` times, and the model time
of the training checkpoint in PyTorch eager (the graph the package was exported from: preprocessing, views, backbone,
fusion; on the GPU when the package runs there) is printed beside the package's ONNX Runtime and OpenVINO times,
fp32 and the reduced-precision variant, each as clips/s and a ratio of ONNX Runtime fp32 (the timing code is
``tools.bench.inference``'s). Needs the training requirements (``requirements/train.txt``); the serving-side benchmark
without PyTorch is ``python -m tools.bench.inference runtime``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from inference.device import DEVICE_CHOICES, resolve_device
from inference.errors import cli
from inference.runtime import Predictor
from inference.views import view_indices

from .inference import DEFAULT_CLIP, check_batch, compare_engines, describe_package


def eager_model(checkpoint: Path, device: str):
    """The checkpoint as the package computes it (uint8 clips in, probabilities out), in eval mode on ``device``."""
    from export.package import PackagedModel
    from training.record import TrainedModel
    from training.schemes import load_view_model

    vm, meta = load_view_model(checkpoint)
    return PackagedModel(vm, TrainedModel.read(meta, checkpoint).preprocessing()).to(device).eval()


def bench_eager(model: str, checkpoint: Path, clip_path: Path, repeat: int, device: str,
                batch: int) -> dict[str, float]:
    import torch

    predictor = Predictor(model, device=device)
    on = resolve_device("auto") if predictor.provider == "CUDAExecutionProvider" else "cpu"  # beside the package
    packaged = eager_model(checkpoint, on)
    print(f"PyTorch eager vs the package, {clip_path.name}, {describe_package(predictor)}; eager on {on}, the package "
          f"on {predictor.provider}; median of {repeat}")

    def eager(batch_clips: np.ndarray) -> dict:
        x = torch.from_numpy(np.ascontiguousarray(batch_clips)).to(on)
        views = torch.from_numpy(view_indices(predictor.views)).to(on)

        def run() -> None:
            with torch.no_grad():
                packaged(x, views) if packaged.sbml else packaged(x)
            if on.startswith("cuda"):
                torch.cuda.synchronize()

        return {"PyTorch eager fp32": run}

    return compare_engines(predictor, model, device, predictor.prepare(clip_path).frames, batch, repeat, extra=eager)


@cli
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.bench.export", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="a model package folder or hf://OWNER/NAME@REV")
    p.add_argument("--checkpoint", required=True, type=Path,
                   help="the training checkpoint the package was exported from (model.pt)")
    p.add_argument("--clip", type=Path, default=DEFAULT_CLIP, help="clip to time (default: the bundled example)")
    p.add_argument("--batch", type=int, default=1, help="clips per model call (GPU throughput: e.g. 64)")
    p.add_argument("--repeat", type=int, default=3, help="timed runs of each (median reported)")
    p.add_argument("--device", default="auto", choices=DEVICE_CHOICES,
                   help="where the package runs; PyTorch eager runs there too (default auto)")
    args = p.parse_args(argv)
    check_batch(args.batch)
    bench_eager(args.model, args.checkpoint, args.clip, args.repeat, args.device, args.batch)
    return 0


if __name__ == "__main__":
    sys.exit(main())
