"""``python -m tools.bench.training``: our training step against a reference-code-style step, in one run.

- **ours**: the training engine's own step (:meth:`training.engine.Trainer.train_step`, what every LOSO fold and
  N-step stage runs): the clips live on the device as uint8; one batched ``grid_sample`` augments the whole batch
  there; the Décalcomanie views are gathers on the device; bf16 autocast (CUDA, or ``--amp bf16`` on CPU) and
  channels-last-3d;
- **baseline** (the reference code's way): fp32, contiguous tensors, and a ``DataLoader`` whose worker
  processes augment clip by clip, frame by frame on the CPU, then copy each batch to the device.

Both run the same network, scheme (SBML, ``--views``) and optimiser on random clips. Printed: clips per second,
model-FLOP utilisation against the device's peak (H100/H200 bf16 dense 989 TFLOP/s; elsewhere give
``--peak-tflops``), the speed-up, and what one full SMIC LOSO (16 folds × 100 epochs of ≈154 training clips)
would take at our rate.

``python -m tools.bench.training ststnet-loso [--help]``: STSTNet's whole LOSO on the CPU, the sequential runner's
epochs against every fold at once (``train.fold_batch``; :mod:`tools.bench.foldbatch`).
"""

from __future__ import annotations

import argparse
import copy
import math
import os
import sys
import time

import numpy as np
import torch

from inference.device import resolve_device
from inference.errors import cli
from training.config import DEFAULTS, check_config
from training.data import ClipBank, normalise
from training.engine import Trainer
from training.schemes import ViewModel

# Dense (no sparsity) bf16 tensor-core peaks from NVIDIA's datasheets, matched against the device name in this order
# (the PCIe and NVL H100s are slower parts than the SXM one that reports itself as "NVIDIA H100 80GB HBM3").
PEAKS_TFLOPS = {"H100 PCIe": 756.0, "H100 NVL": 835.0, "H100": 989.0, "H200": 989.0, "A100": 312.0, "L40S": 362.0,
                "RTX 4090": 165.0}
PEAKS_SOURCE = "NVIDIA datasheets, dense bf16 tensor-core peak (H100/H200 SXM 989, H100 NVL 835, H100 PCIe 756 TFLOP/s)"


def forward_flops(model: ViewModel, t: int, size: int) -> float:
    """FLOPs of one view of one clip through the backbone (multiply-add = 2)."""
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.zeros(1, 3, t, size, size)
    backbone = model.backbone.to("cpu").float().eval()  # batch statistics need no second clip
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        backbone(x)
    return float(counter.get_total_flops())


class _ReferenceStyleClips(torch.utils.data.Dataset):
    """Per-sample CPU augmentation, frame by frame with OpenCV, as the reference code's loaders do."""

    def __init__(self, clips: np.ndarray, labels: np.ndarray, size: int, seed: int):
        self.clips, self.labels, self.size, self.seed = clips, labels, size, seed

    def __len__(self):
        return len(self.clips)

    def __getitem__(self, i):
        import cv2

        rng = np.random.default_rng((self.seed, i, os.getpid()))
        clip = self.clips[i]
        s = clip.shape[1]
        angle, zoom, flip = rng.uniform(-30, 30), rng.uniform(1.0, 1.1), rng.random() < 0.5
        m = cv2.getRotationMatrix2D(((s - 1) / 2, (s - 1) / 2), angle, zoom)
        out = np.empty((len(clip), self.size, self.size, 3), np.float32)
        for k, frame in enumerate(clip):
            f = cv2.warpAffine(frame, m, (s, s), borderMode=cv2.BORDER_REPLICATE)
            f = cv2.resize(f, (self.size, self.size), interpolation=cv2.INTER_LINEAR)
            out[k] = (f[:, ::-1] if flip else f).astype(np.float32) / 255.0
        return torch.from_numpy(out).permute(3, 0, 1, 2), int(self.labels[i])


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m tools.bench.training", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="resnext3d_101")
    p.add_argument("--views", default="OLR")
    p.add_argument("--frames", type=int, default=34)
    p.add_argument("--size", type=int, default=112)
    p.add_argument("--cache-size", type=int, default=128, help="side of the cached crops the batch is augmented from")
    p.add_argument("--batch", type=int, default=10)
    p.add_argument("--steps", type=int, default=10, help="timed steps of each (after 3 warm-up steps)")
    p.add_argument("--clips", type=int, default=64, help="random clips in the pool")
    p.add_argument("--workers", type=int, default=4, help="DataLoader workers of the baseline")
    p.add_argument("--device", default="auto")
    p.add_argument("--amp", default="auto", choices=("auto", "bf16", "none"),
                   help="ours: bf16 | none | auto (bf16 on CUDA)")
    p.add_argument("--peak-tflops", type=float, default=None, help="the device's peak for the MFU figure")
    return p


@cli
def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["ststnet-loso"]:  # STSTNet's whole LOSO, folds one by one vs all at once (training.foldbatch)
        from .foldbatch import bench_main

        return bench_main(argv[1:])
    report(build_parser().parse_args(argv))
    return 0


def _timed(step, n: int, sync) -> float:
    for _ in range(3):
        step()
    sync()
    t = time.perf_counter()
    for _ in range(n):
        step()
    sync()
    return (time.perf_counter() - t) / n


def engine_config(args) -> dict:
    """The training config whose step is timed: the paper's augmentation (±30°, zoom 1.1, flip), Adam 1e-4."""
    cfg = copy.deepcopy(DEFAULTS)
    cfg["name"] = "bench"
    cfg["data"].update(caches=[], protocol="all")  # the other data settings keep their defaults
    cfg["model"]["name"] = args.model
    cfg["scheme"].update(type="sbml", train_views=args.views)
    cfg["train"].update(n_frames=args.frames, size=args.size, batch_size=args.batch, device=args.device, amp=args.amp,
                        rotation=30.0, scale=1.1, flip=True, lr=1e-4)
    return check_config(cfg)


def peak_for(name: str, override: float | None = None) -> tuple[float | None, str]:
    """The bf16 dense peak (TFLOP/s) for a device name, and where the figure comes from (None: unknown device)."""
    if override:
        return override, "given (--peak-tflops)"
    peak = next((v for k, v in PEAKS_TFLOPS.items() if k in name), None)
    return peak, (PEAKS_SOURCE if peak else "unknown device: no peak, MFU not computed")


def measure(args, log=None) -> dict:
    """Time our step and the baseline (``args`` from :func:`build_parser`); the figures as a dict. ``log(line)``
    hears each timing as it is taken."""
    cfg = engine_config(args)
    device = torch.device(resolve_device(args.device))
    rng = np.random.default_rng(0)
    pool = rng.integers(0, 256, (args.clips, args.frames, args.cache_size, args.cache_size, 3), dtype=np.uint8)
    labels = rng.integers(0, 3, args.clips)
    bank = ClipBank(torch.from_numpy(pool).to(device), torch.from_numpy(labels).to(device), np.zeros(args.clips, int),
                    [f"random:{i}" for i in range(args.clips)], ("a", "b", "c"))
    trainer = Trainer(cfg, log=lambda *_: None, progress=False, bank=bank)
    cuda, amp, norm = trainer.cuda, trainer.amp_dtype, trainer.norm
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    torch.manual_seed(0)

    # ours: the engine's training step
    model = trainer.new_model(0)
    opt = torch.optim.Adam(model.parameters(), lr=cfg["train"]["lr"])
    gen = torch.Generator().manual_seed(0)

    def ours():
        idx = torch.randint(0, args.clips, (args.batch,), generator=gen)
        trainer.train_step(model, opt, idx, bank.clips, bank.labels, gen)

    t_ours = _timed(ours, args.steps, sync)
    if log:
        log(f"ours: {t_ours * 1000:.1f} ms/step, {args.batch / t_ours:.1f} clips/s")
    del model, opt
    # baseline
    model = ViewModel({"name": args.model}, 3, "sbml", args.views).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    loader = torch.utils.data.DataLoader(_ReferenceStyleClips(pool, labels, args.size, 0), batch_size=args.batch,
                                         shuffle=True, num_workers=args.workers, drop_last=True,
                                         persistent_workers=args.workers > 0, pin_memory=cuda)
    batches = iter(())

    def baseline():
        nonlocal batches
        try:
            x, y = next(batches)
        except StopIteration:
            batches = iter(loader)
            x, y = next(batches)
        x = normalise(x.to(device, non_blocking=True), norm["mean"], norm["std"], norm.get("pixel_scale", 1.0))
        loss, _ = model.loss(x, y.to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    t_base = _timed(baseline, args.steps, sync)
    if log:
        log(f"baseline: {t_base * 1000:.1f} ms/step, {args.batch / t_base:.1f} clips/s")
    flops = forward_flops(model, args.frames, args.size) * 3 * len(args.views) * args.batch  # fwd + bwd ≈ 3× fwd
    name = torch.cuda.get_device_name(device) if cuda else f"CPU ({os.cpu_count()} cores)"
    peak, peak_source = peak_for(name, args.peak_tflops)
    smic_clips = 16 * 100 * math.ceil(154 / args.batch) * args.batch
    out = {"model": args.model, "views": args.views, "batch": args.batch, "frames": args.frames, "size": args.size,
           "steps": args.steps, "workers": args.workers, "device": name, "flops_per_step": flops,
           "peak_tflops": peak, "peak_source": peak_source, "speedup": t_base / t_ours,
           "smic_loso_clips": smic_clips, "smic_loso_min": smic_clips / (args.batch / t_ours) / 60,
           "smic_formula": f"16 folds x 100 epochs x ceil(154/{args.batch})*{args.batch} training clips (SMIC-HS: "
                           f"164 clips, ~154 outside the held-out subject) / our clips/s; evaluation not counted"}
    for label, t, how in (("ours", t_ours, f"uint8 on device, batched aug, {'bf16' if amp else 'fp32'}"
                                           f"{', channels-last-3d' if trainer.channels_last else ''}"),
                          ("baseline", t_base, f"fp32, {args.workers} DataLoader workers, per-sample CPU aug")):
        out[label] = {"s_per_step": t, "clips_per_s": args.batch / t, "tflops": flops / t / 1e12,
                      "mfu": flops / t / (peak * 1e12) if peak else None, "how": how}
    return out


def report(args) -> None:
    r = measure(args)
    print(f"training step: {r['model']}, SBML {r['views']}, batch {r['batch']} x {r['frames']}x{r['size']}^2, "
          f"on {r['device']}; {r['steps']} timed steps each")
    for label in ("ours", "baseline"):
        f = r[label]
        mfu = (f"{100 * f['mfu']:5.1f} % of {r['peak_tflops']:g} TFLOP/s" if r["peak_tflops"]
               else "n/a (give --peak-tflops)")
        print(f"  {label:9s} {f['s_per_step'] * 1000:9.1f} ms/step {f['clips_per_s']:9.1f} clips/s  "
              f"{f['tflops']:7.2f} TFLOP/s  MFU {mfu}  [{f['how']}]")
    print(f"  speed-up: {r['speedup']:.2f}x")
    print(f"  a full SMIC LOSO (16 folds x 100 epochs x ~154 training clips) at our rate: {r['smic_loso_min']:.1f} min")

if __name__ == "__main__":
    sys.exit(main())
