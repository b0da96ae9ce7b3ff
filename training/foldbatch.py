"""Every fold of a LOSO run trained at once, in one module (``train.fold_batch: true``; STSTNet, SBML views).

A tiny network such as STSTNet (1,683 parameters) costs little per fold but a full composite LOSO is 68 folds × 800
epochs. Here one module, :class:`STSTNetFolds`, holds every fold's copy of the network (parameters stacked along a
leading fold axis, the first convolution's filters side by side: 68 × 16 = 1,088 filters over the same input), and one
step trains them all:

- **One shared batch.** Each epoch draws one random order of *all* the clips (a generator seeded by (seed,
  "foldbatch", epoch)) and cuts it into batches of ``train.batch_size``. Every fold sees the whole batch, but a clip of
  its held-out subject has weight 0 in its loss (the fold's loss is the mean over its own training clips of the
  batch) and is left out of its batch-norm statistics, so the held-out subject changes nothing in its fold's
  parameters (:mod:`tests.test_foldbatch` perturbs those clips and checks). A fold whose share of a batch has fewer
  than two clips skips that step, as the sequential runner skips a lone clip. So each fold trains on its own clips in
  the shared order, in batches that are the shared batches minus its held-out clips: with the composite set (442
  clips, batch 256) that is two steps per epoch, as sequentially, of 256 − (held-out clips in the batch) clips.
- **Separate optimisers.** The folds' losses are summed; each loss touches only its own fold's parameters, and
  :class:`FoldAdam` (the update of ``torch.optim.Adam``, element-wise) keeps a step count per fold, so every fold is
  trained exactly as its own optimiser would train it.
- **Two forms of one step.** On the CPU each step is compiled code (:mod:`training.foldkernel`, built from
  ``training/foldkernel.c`` on first use): every fold forward and backward, image by image while the image is in
  cache, with no activation map kept. Elsewhere (CUDA), or without a C compiler or AVX2, or with
  ``MER_FOLDBATCH_KERNEL=0``, :class:`STSTNetFolds` and autograd take the same step: the first layer fused into one
  autograd function (:class:`_ConvReluPool`: one GEMM of the batch's 3×3 patches against all folds' filters, ReLU,
  the per-clip sums batch norm needs, and the 3×3 max-pool; batch norm is an affine map per channel, so it is applied
  after the max-pool, a min-pool where its scale is negative), the 2×2 average pool folded into each fold's
  classifier; on the CPU its element-wise work can be ``torch.compile``'d (:func:`compile_kernels`;
  ``MER_FOLDBATCH_COMPILE=1`` / ``0``). Both draw the same dropout bytes and give the same gradients to float
  rounding (:mod:`tests.test_foldbatch`). The run says in one line which form it uses, and why.

Speed (``python -m tools.bench.training ststnet-loso``, 2 cores, 20 timed epochs): the composite set's 68 folds × 800
epochs take an estimated 9.1–9.8 min with the compiled step (0.68–0.74 s per epoch of all folds; up to 11.2 min in
runs while the machine was slower), against 73–110 min for the sequential runner in the same runs (7.7–11.6×); the
whole ``python -m training.loso`` run took 9:28–9:56. The autograd form took 55 min.

The run folder is the sequential runner's: each fold's model is taken out of the stack into an ordinary
:class:`~training.schemes.ViewModel` (initialised exactly as the sequential fold's: ``Trainer.new_model`` with the
fold's seed), evaluated and written by :func:`training.folds.write_fold`. The epochs, schedule, evaluation hook,
checkpoints and TensorBoard scalars are the sequential runner's loop (:func:`training.loop.train_epochs`) of the
fold-batched step (:class:`FoldStep`). Resumable: ``foldbatch/state.pt`` every ``train.checkpoint_every`` epochs
(atomic); folds already finished are left out. Dropout draws from the global
generator, reseeded per epoch, so a killed run resumes bit for bit (on the CPU). ``selection: test_set_best`` and
``oracle: true`` evaluate every fold on its held-out subject after each epoch (a grouped convolution over those clips
only). FSB with its linear head trains here too: the views' images go through the folds' networks in one batch (one
batch norm over them, as :meth:`~training.schemes.ViewModel.features` stacks them), each view's features read its own
block of the fold's fused head, and a clip's loss is that of its views' summed shares (:class:`STSTNetFolds`'
``heads``). ``train.class_weights: balanced`` weights each fold's loss per class, counted on that fold's own training
clips. Other configs (other models, FSB's MLP head, SMOTE, balanced sampling, AU heads, torchrun) run sequentially:
see :func:`unsupported`.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import foldkernel
from .engine import Trainer, seed_for
from .loop import train_epochs
from .models.ststnet import STSTNet, flow_image_batch

CHUNK = 8  # clips per chunk of the fused first layer: 8 × 900 positions × 1,088 filters ≈ 31 MB of activations


def unsupported(trainer: Trainer, world: int = 1) -> str | None:
    """Why the config cannot train its folds at once (None: it can)."""
    c = trainer.cfg
    t, s = c["train"], c["scheme"]
    if c["model"]["name"] != "ststnet":
        return f"model {c['model']['name']} has no fold-batched form (only ststnet)"
    if s["type"] == "fsb" and s["fsb_head"] != "linear":
        return "FSB's MLP head has no fold-batched form (the linear one has)"
    if t["smote"] or t["balanced"]:
        return "SMOTE and class-balanced sampling draw per fold"
    if trainer.bank.au is not None:
        return "models with an AU head train sequentially"
    if world > 1:
        return "under torchrun the folds are split across ranks"
    if trainer.amp_dtype is not None:
        return "bf16 autocast is not fold-batched"
    return None


# ---------------------------------------------------------------------------------------------- the fused first layer


def _sums_grad(r: torch.Tensor, g1: torch.Tensor, g2: torch.Tensor):
    """The gradient at the convolution of the sums' gradients ``g1``, ``g2`` ``(n, C)`` (zero where the ReLU is) and
    its sum over the positions (the bias's gradient)."""
    d = torch.where(r > 0, r * (2 * g2[:, None]) + g1[:, None], 0.0)
    return d, d.sum((0, 1))


def _forward_chunk(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, side: int, need_min: bool):
    """One chunk of :class:`_ConvReluPool`'s forward: patches ``x`` ``(n·P, K)`` → ReLU output ``(n, P, C)``, pools and
    arg-max / arg-min indices ``(n, C, q, q)``, sums ``(n, C)``."""
    z = torch.addmm(bias, x, weight.t())  # (n·P, C)
    c, p = weight.shape[0], side * side
    n = z.shape[0] // p
    grid = z.view(n, side, side, c).permute(0, 3, 1, 2)  # channels-last (n, C, side, side)
    vmax, imax = F.max_pool2d(grid, 3, 3, 1, return_indices=True)
    vmin, imin = F.max_pool2d(-grid, 3, 3, 1, return_indices=True) if need_min else (vmax[:0], imax[:0])
    r = z.relu_().view(n, p, c)  # plain ops: as fast here as a compiled loop (one BLAS call for the sum)
    s1, s2 = torch.bmm(r.new_ones(n, 1, p), r)[:, 0], (r * r).sum(1)
    return r, vmax.relu_(), imax, vmin.neg_().relu_(), imin, s1, s2


def _backward_chunk(r, x, g1, g2, g_max, imax, g_min, imin, pmax, pmin):
    """One chunk of :class:`_ConvReluPool`'s backward: the gradients of the filters ``(C, K)`` and biases ``(C,)``."""
    n, _, c = r.shape
    d, g_b = _kernel("sums_grad")(r, g1, g2)
    for g, i, v in ((g_max, imax, pmax), (g_min, imin, pmin)):
        if g.numel():  # a pool's gradient goes to its arg-max / arg-min position, unless the ReLU is 0 there
            g = g * (v > 0)
            d.scatter_add_(1, i.permute(0, 2, 3, 1).reshape(n, -1, c), g.permute(0, 2, 3, 1).reshape(n, -1, c))
            g_b += g.sum((0, 2, 3))
    return (x.t() @ d.view(-1, c)).t(), g_b


_COMPILED: dict = {}  # the compiled chunk functions, once compile_kernels succeeded and while they are in use


def compile_kernels(on: bool, log=print) -> bool:
    """Use ``torch.compile``'d element-wise functions (``on``) or the plain ones: the gradient of the batch-norm sums
    at the convolution, and batch norm + dropout on the pooled maps with its gradient, each as one fused loop (several
    times faster than the plain ops for those; compiling takes a minute or more per shape on first use, cached on disk
    by PyTorch). Returns whether the compiled ones are in use: False, and the plain functions kept, when compiling is
    not possible here (no C++ compiler)."""
    if not on:
        _COMPILED.clear()
        return False
    if not _COMPILED:
        try:
            compiled = {k: torch.compile(f, dynamic=False) for k, f in _KERNELS.items()}
            _probe(compiled)
        except Exception as e:  # noqa: BLE001 — any failure leaves the plain functions, which are correct
            log(f"fold-batched: torch.compile unavailable ({type(e).__name__}); running the plain functions")
            return False
        _COMPILED.update(compiled)
    return True


def _probe(compiled: dict) -> None:
    """Compile errors surface on the first call: one tiny call of each (its own shape, compiled and thrown away)."""
    r, s = torch.ones(1, 2, 2), torch.ones(1, 2)
    compiled["sums_grad"](r, s, s)


def _kernel(name: str):
    return _COMPILED.get(name, _KERNELS[name])


def wants_compile(trainer: Trainer, folds: int) -> bool:
    """Whether to compile: env ``MER_FOLDBATCH_COMPILE`` 1 / 0 decides; otherwise on the CPU when the run is big
    enough for the minute of compiling to pay (folds × clips ≥ 5,000: the composite set's 68 × 442 is 30,056)."""
    import os

    flag = os.environ.get("MER_FOLDBATCH_COMPILE", "auto").strip().lower()
    if flag in ("0", "1"):
        return flag == "1"
    return trainer.device.type == "cpu" and folds * len(trainer.bank) >= 5000


class _ConvReluPool(torch.autograd.Function):
    """``relu(conv(x))`` of shared patches ``cols`` ``(B, P, K)`` against filters ``weight`` ``(C, K)``, ``bias``
    ``(C,)`` on a ``side × side`` grid (P = side²): its 3×3/3 max-pool (padding 1), min-pool when ``need_min``, and per
    clip and channel the sum and the sum of squares over all P positions. Returns ``(pmax, pmin, s1, s2)``, pools
    ``(B, C, q, q)``; ``pmin`` is empty without ``need_min``. Works chunk by chunk (``CHUNK`` clips, the last padded
    with zero patches so every chunk has one shape); keeps the ReLU output for the backward pass."""

    @staticmethod
    def forward(ctx, cols, weight, bias, side, need_min):
        b, p, k = cols.shape
        pad = -b % CHUNK
        cols = F.pad(cols, (0, 0, 0, 0, 0, pad)) if pad else cols
        chunks = [_forward_chunk(cols[s:s + CHUNK].reshape(-1, k), weight, bias, side, need_min)
                  for s in range(0, len(cols), CHUNK)]
        kept, pmax, imax, pmin, imin, s1, s2 = (list(x) for x in zip(*chunks))
        ctx.b, ctx.n = b, len(kept)
        ctx.save_for_backward(cols, weight, *kept, *imax, *imin, *pmax, *pmin)
        pmax, pmin = torch.cat(pmax), torch.cat(pmin)
        return pmax[:b], pmin[:b] if need_min else cols.new_empty(0), torch.cat(s1)[:b], torch.cat(s2)[:b]

    @staticmethod
    def backward(ctx, g_max, g_min, g_s1, g_s2):
        cols, weight, *saved = ctx.saved_tensors
        kept, imax, imin, pmax, pmin = (saved[j * ctx.n:(j + 1) * ctx.n] for j in range(5))
        if g_min is None or not g_min.numel():
            g_min = g_max[:, :0]
        k = cols.shape[2]
        g_w, g_b = torch.zeros_like(weight), weight.new_zeros(weight.shape[0])
        for j, r in enumerate(kept):  # (n, P, C) ReLU outputs of each chunk
            s = slice(j * CHUNK, (j + 1) * CHUNK)
            gs = [g[s] for g in (g_s1, g_s2, g_max, g_min)]
            pad = CHUNK - len(gs[0])  # the last chunk's padding clips: zero gradients
            gs = [F.pad(g, (0, 0) * (g.dim() - 1) + (0, pad)) for g in gs] if pad else gs
            w, b = _backward_chunk(r, cols[s].reshape(-1, k), *gs[:3], imax[j], gs[3], imin[j], pmax[j], pmin[j])
            g_w += w
            g_b += b
        return None, g_w, g_b, None, None


def _affine_keep(x: torch.Tensor, up: torch.Tensor, shift: torch.Tensor, bits: torch.Tensor | None) -> torch.Tensor:
    """Batch norm's per-channel affine map of pooled maps ``x`` ``(n, P, C)`` and, with random bytes ``bits``, dropout
    0.5: each element kept (×2) where its bit of ``bits`` is 1 (8 elements per random byte)."""
    y = x * up + shift
    return y if bits is None else y * _keep(bits, x)


def _keep(bits: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    shifts = torch.arange(8, dtype=torch.uint8, device=bits.device)
    return (bits.view(-1, 1).bitwise_right_shift(shifts).bitwise_and(1)).view(like.shape).to(like.dtype) * 2.0


def _affine_keep_grad(g: torch.Tensor, x: torch.Tensor, up: torch.Tensor, bits: torch.Tensor | None):
    """The gradients of :func:`_affine_keep` for ``x``, ``up`` and ``shift``."""
    g = g if bits is None else g * _keep(bits, x)
    return g * up, (g * x).sum((0, 1)), g.sum((0, 1))


class _AffineDropout(torch.autograd.Function):
    """:func:`_affine_keep` with its gradient as one loop each (compiled like the first layer's chunks)."""

    @staticmethod
    def forward(ctx, x, up, shift, bits):
        ctx.save_for_backward(x, up, bits if bits is not None else x.new_empty(0))
        ctx.has_bits = bits is not None
        return _kernel("affine")(x, up, shift, bits)

    @staticmethod
    def backward(ctx, g):
        x, up, bits = ctx.saved_tensors
        g_x, g_up, g_shift = _kernel("affine_grad")(g.contiguous(), x, up, bits if ctx.has_bits else None)
        return g_x, g_up, g_shift, None


_KERNELS = {"sums_grad": _sums_grad, "affine": _affine_keep, "affine_grad": _affine_keep_grad}


def patches(x: torch.Tensor, padding: int) -> torch.Tensor:
    """3×3 patches of images ``(B, C, H, W)`` as ``(B, P, C·9)`` (the order of a conv weight's flattening)."""
    return F.unfold(x, 3, padding=padding).transpose(1, 2).contiguous()


# ---------------------------------------------------------------------------------------------- every fold's STSTNet


class STSTNetFolds(nn.Module):
    """The STSTNets of ``F`` folds in one module (``models``: their backbones, whose weights it copies). Parameters:
    ``conv_w`` ``(F·W, 27)``, ``conv_b``, ``bn_w``, ``bn_b`` ``(F·W,)`` (fold f's channels at f·W … f·W+W−1),
    ``fc_w`` ``(F, K, D)``, ``fc_b`` ``(F, K)``; batch-norm running statistics as buffers.

    ``heads`` (FSB): each fold's fused linear head ``(K, V·D)`` over its V views' features, taken instead of the
    backbones' own classifiers: ``fc_w`` is then ``(F, K, V·D)`` and :attr:`blocks` is V. A batch is then V·B images,
    view by view (as :meth:`~training.schemes.ViewModel.features` stacks them), image j of view j // B reading its
    view's block of the head; a clip's logits are the sum of its V images' shares (the bias in view 0's)."""

    def __init__(self, models: list[STSTNet], heads: list[nn.Linear] | None = None):
        super().__init__()
        first = models[0]
        conv, bn = first.streams[0], first.streams[2]
        self.folds, self.width, self.image_size = len(models), conv.out_channels, first.image_size
        self.momentum, self.eps, self.dropout = bn.momentum, bn.eps, first.streams[4].p

        def cat(get):
            return torch.cat([get(m).detach().reshape(conv.out_channels, -1).squeeze(-1) for m in models]).clone()

        self.conv_w = nn.Parameter(cat(lambda m: m.streams[0].weight))
        self.conv_b = nn.Parameter(cat(lambda m: m.streams[0].bias))
        self.bn_w = nn.Parameter(cat(lambda m: m.streams[2].weight))
        self.bn_b = nn.Parameter(cat(lambda m: m.streams[2].bias))
        fcs = heads if heads is not None else [m.fc for m in models]
        self.fc_w = nn.Parameter(torch.stack([m.weight.detach() for m in fcs]).clone())
        self.fc_b = nn.Parameter(torch.stack([m.bias.detach() for m in fcs]).clone())
        self.blocks = self.fc_w.shape[2] // first.fc.in_features  # 1, or FSB's views
        self.register_buffer("running_mean", cat(lambda m: m.streams[2].running_mean))
        self.register_buffer("running_var", cat(lambda m: m.streams[2].running_var))
        self.register_buffer("tracked", torch.stack([m.streams[2].num_batches_tracked for m in models]).clone())

    def unstack(self, f: int, model: STSTNet, head: nn.Linear | None = None) -> STSTNet:
        """Fold ``f``'s weights copied into ``model`` (an STSTNet of the same shape) and, for FSB, its classifier into
        ``head`` (the fold's fused head; ``model.fc`` is then left as it is, unused); returns ``model``."""
        w = slice(f * self.width, (f + 1) * self.width)
        conv, bn = model.streams[0], model.streams[2]
        with torch.no_grad():
            conv.weight.copy_(self.conv_w[w].view_as(conv.weight))
            conv.bias.copy_(self.conv_b[w])
            bn.weight.copy_(self.bn_w[w])
            bn.bias.copy_(self.bn_b[w])
            bn.running_mean.copy_(self.running_mean[w])
            bn.running_var.copy_(self.running_var[w])
            bn.num_batches_tracked.copy_(self.tracked[f])
            fc = head if head is not None else model.fc
            fc.weight.copy_(self.fc_w[f])
            fc.bias.copy_(self.fc_b[f])
        return model

    def _flat(self, pooled: torch.Tensor) -> torch.Tensor:
        """Pooled maps ``(n, F·W, q, q)`` as ``(n, pixel, F·W)``, cropped to the pixels the 2×2 average pool reads."""
        q = pooled.shape[-1] // 2 * 2
        return pooled[..., :q, :q].permute(0, 2, 3, 1).reshape(pooled.shape[0], q * q, -1)

    def _classify(self, x: torch.Tensor, block: int = 0) -> torch.Tensor:
        """Average pool and each fold's classifier (block ``block`` of an FSB head, the bias with block 0) on
        ``(n, pixel, F·W)`` (after batch norm and dropout) → logits ``(F, n, K)``: the 2×2 average pool is folded into
        the classifier, each weight spread over its four pixels."""
        n, pixels, _ = x.shape
        q = math.isqrt(pixels)
        k, d = self.fc_w.shape[1], self.fc_w.shape[2] // self.blocks
        w = self.fc_w[:, :, block * d:(block + 1) * d]
        w = w.reshape(self.folds, -1, self.width, q // 2, 1, q // 2, 1).expand(-1, -1, -1, -1, 2, -1, 2)
        w = w.reshape(self.folds, k, self.width, pixels).permute(0, 3, 2, 1).reshape(self.folds, -1, k)
        x = x.view(n, pixels, self.folds, self.width).permute(2, 0, 1, 3).reshape(self.folds, n, -1)
        bias = self.fc_b[:, None] if block == 0 else self.fc_b.new_zeros(self.folds, 1, k)
        return torch.baddbmm(bias, x, w, alpha=0.25)  # (F, n, K)

    def forward(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """Training: logits ``(F, B, K)`` of a shared batch ``x`` ``(B, 3, 1, H, W)``; ``weight`` ``(F, B)`` is 1 where
        the clip is in fold f's training set, 0 where it is not (its held-out subject): batch-norm statistics are
        taken over each fold's own clips only."""
        x = flow_image_batch(x, self.image_size, "STSTNet")
        side = x.shape[-1] + 2
        need_min = bool((self.bn_w <= 0).any())
        pmax, pmin, s1, s2 = _ConvReluPool.apply(patches(x, 2), self.conv_w, self.conv_b, side, need_min)
        w = weight.repeat_interleave(self.width, 0).t()  # (B, F·W)
        count = (w.sum(0) * side * side).clamp_min(1)  # a fold skipping the step: finite, unused statistics
        mean = (w * s1).sum(0) / count
        var = ((w * s2).sum(0) / count - mean.square()).clamp_min(0)
        scale = self.bn_w * torch.rsqrt(var + self.eps)
        shift = self.bn_b - mean * scale
        self.track(weight, mean.detach(), var.detach())
        pooled = self._flat(pmax if not need_min else torch.where(scale.view(1, -1, 1, 1) > 0, pmax, pmin))
        p = self.dropout if self.training else 0.0
        bits = self.dropout_bits(len(x), x.device) if p == 0.5 else None
        y = _AffineDropout.apply(pooled, scale, shift, bits)  # batch norm (after the pool), dropout 0.5
        y = y if p in (0.0, 0.5) else F.dropout(y, p, True)
        nb = len(y) // self.blocks  # FSB: each view's images read their own block of the head
        return torch.cat([self._classify(y[b * nb:(b + 1) * nb], b) for b in range(self.blocks)], 1)

    def dropout_bits(self, n: int, device=None) -> torch.Tensor | None:
        """Dropout 0.5's random bytes for ``n`` images' pooled maps ``(n, pixel, F·W)`` (one bit per element, drawn
        from the global generator), None without dropout: one call, so both forms of the step draw the same."""
        if self.dropout != 0.5:
            return None
        q = (self.image_size + 2 - 1) // 3 + 1
        nbytes = n * (q // 2 * 2) ** 2 * self.folds * self.width // 8  # a multiple of 8 ((q//2*2)² · 16 / 8)
        # 64-bit draws viewed as bytes: every bit uniform, several times faster than a draw per byte
        return torch.randint(-2 ** 63, 2 ** 63 - 1, (nbytes // 8,), dtype=torch.int64, device=device).view(torch.uint8)

    @torch.no_grad()
    def track(self, weight: torch.Tensor, mean: torch.Tensor, var: torch.Tensor) -> None:
        """Batch norm's running statistics after a training step: batch ``mean`` and biased ``var`` ``(F·W,)`` of
        the folds that take the step (two clips or more of ``weight`` ``(F, B)``), each over its ``count`` values."""
        m, side = self.momentum, self.image_size + 2
        took = weight.sum(1) >= 2
        on = took.repeat_interleave(self.width)
        count = weight.sum(1).repeat_interleave(self.width) * side * side
        unbiased = var * count / (count - 1).clamp_min(1)
        self.running_mean.copy_(torch.where(on, (1 - m) * self.running_mean + m * mean, self.running_mean))
        self.running_var.copy_(torch.where(on, (1 - m) * self.running_var + m * unbiased, self.running_var))
        self.tracked.add_(took.long())

    @torch.no_grad()
    def evaluate(self, x: torch.Tensor, block: int = 0) -> torch.Tensor:
        """Evaluation (running statistics): logits ``(F, m, K)`` of per-fold batches ``x`` ``(F, m, 3, 1, H, W)``
        (each fold its own clips: a grouped convolution); FSB: view ``block``'s share of them."""
        f, m = x.shape[:2]
        x = flow_image_batch(x.reshape(f * m, *x.shape[2:]), self.image_size, "STSTNet")
        x = x.view(f, m, *x.shape[1:]).transpose(0, 1).reshape(m, -1, *x.shape[2:])
        z = F.conv2d(x, self.conv_w.view(-1, 3, 3, 3), self.conv_b, padding=2, groups=f).relu_()
        z = F.batch_norm(z, self.running_mean, self.running_var, self.bn_w, self.bn_b, False, 0.0, self.eps)
        return self._classify(self._flat(F.max_pool2d(z, 3, 3, 1)), block)


# ---------------------------------------------------------------------------------------------- optimiser


class FoldAdam:
    """``torch.optim.Adam``'s update (no weight decay, not amsgrad) on parameters whose first axis (or, for the
    first layer's ``(F·W, …)`` tensors, blocks of ``width`` rows) is the fold; ``step(active)`` moves only the
    folds in ``active`` ``(F,)`` and counts steps per fold (a fold that skips a batch keeps its moments)."""

    def __init__(self, module: STSTNetFolds, lr: float, betas=(0.9, 0.999), eps: float = 1e-8):
        self.module, self.lr, self.betas, self.eps = module, lr, betas, eps
        self.params = [module.conv_w, module.conv_b, module.bn_w, module.bn_b, module.fc_w, module.fc_b]
        self.steps = torch.zeros(module.folds, dtype=torch.float64)
        self.exp_avg = [torch.zeros_like(p) for p in self.params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in self.params]

    def _per_row(self, values: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        rows = values if p.shape[0] == self.module.folds else values.repeat_interleave(self.module.width)
        return rows.view(-1, *[1] * (p.dim() - 1))

    @torch.no_grad()
    def step(self, active: torch.Tensor) -> None:
        b1, b2 = self.betas
        self.steps += active.double()
        t = self.steps.clamp_min(1)
        step_size = (self.lr / (1 - b1 ** t)).float()
        c2 = ((1 - b2 ** t) ** 0.5).float()
        for p, m, v in zip(self.params, self.exp_avg, self.exp_avg_sq):
            g = p.grad if p.grad is not None else torch.zeros_like(p)
            on = self._per_row(active, p)
            m.copy_(torch.where(on, m.lerp(g, 1 - b1), m))
            v.copy_(torch.where(on, v * b2 + (1 - b2) * g * g, v))
            denom = (v.sqrt() / self._per_row(c2, p)).add_(self.eps)
            p.sub_(torch.where(on, self._per_row(step_size, p) * m / denom, torch.zeros_like(p)))

    def state_dict(self) -> dict:
        return {"steps": self.steps, "exp_avg": self.exp_avg, "exp_avg_sq": self.exp_avg_sq, "lr": self.lr}

    def load_state_dict(self, state: dict) -> None:
        self.steps = state["steps"].clone()
        for mine, theirs in ((self.exp_avg, state["exp_avg"]), (self.exp_avg_sq, state["exp_avg_sq"])):
            for a, b in zip(mine, theirs):
                a.copy_(b)
        self.lr = state["lr"]


# ---------------------------------------------------------------------------------------------- the fold-batched run


def train_folds(trainer: Trainer, subjects: list[int], folder: Path) -> dict[int, dict]:
    """Train the folds of held-out ``subjects`` at once for the recipe's epochs, resuming from ``folder/state.pt``;
    returns per subject what :meth:`Trainer.train_model` returns (``model``, ``epoch``, ``history``) plus
    ``backbone_in`` (the digest of the fold's starting backbone). The epochs are :func:`training.loop.train_epochs`'
    (TensorBoard: ``tensorboard/subject_<s>`` of the trainer's run folder) of a :class:`FoldStep`."""
    folder.mkdir(parents=True, exist_ok=True)
    step = FoldStep(trainer, subjects)
    trained = train_epochs(step, trainer.cfg["train"], folder / "state.pt", trainer.out / "tensorboard", trainer.log,
                           trainer.progress)
    return {int(s): {**r, "backbone_in": d} for s, r, d in zip(subjects, trained, step.digests)}


class FoldStep:
    """The fold-batched step (:func:`training.loop.train_epochs`' step): every fold of held-out ``subjects`` in one
    :class:`STSTNetFolds` (each fold initialised as the sequential fold: :meth:`Trainer.new_model` with its seed),
    :class:`FoldAdam`, epochs of :func:`train_epoch` (compiled or autograd, :func:`use_compiled`) drawing from a
    generator seeded by (seed, "foldbatch", epoch) and dropout from the global one, reseeded by (seed,
    "foldbatch-dropout", epoch); each fold's held-out clips for the evaluation hook (:func:`predict_held_out`)."""

    stacked = True
    label, map_location = "fold-batched", "cpu"

    def __init__(self, trainer: Trainer, subjects: list[int]):
        self.trainer, self.subjects, self.seed = trainer, list(map(int, subjects)), trainer.cfg["train"]["seed"]
        bank = trainer.bank
        self.models, self.digests = [], []
        for s in subjects:  # each fold starts where the sequential fold would: its own seed
            self.models.append(trainer.new_model(seed_for(self.seed, "fold", int(s))))
            self.digests.append(trainer.init_backbone_sha256)
        self.template = self.models[0]
        self.stack = stack_of(self.models)
        self.compiled = use_compiled(trainer, self.stack, trainer.log)
        if not self.compiled and compile_kernels(wants_compile(trainer, len(subjects)), trainer.log):
            trainer.log("fold-batched: compiling the first layer's kernels (about a minute, once per shape)")
        self.optimizer = FoldAdam(self.stack, trainer.cfg["train"]["lr"])
        self.held = torch.as_tensor(np.array(subjects))[:, None]  # (F, 1)
        self.all_subjects = torch.as_tensor(bank.subjects)
        self.test_sets = [np.flatnonzero(bank.subjects == s) for s in subjects]
        self.truth = [bank.labels[idx].cpu().numpy() for idx in self.test_sets]
        self.names = [f"subject_{s}" for s in self.subjects]
        self.desc = f"{len(subjects)} folds at once"
        self.class_w = self.class_weights_of(trainer, self.subjects)

    @staticmethod
    def class_weights_of(trainer: Trainer, subjects: list[int]) -> torch.Tensor | None:
        """``(F, K)``: each fold's loss weight per class (``train.class_weights``), counted on its own training clips
        (every clip but its held-out subject's); None when the loss is not weighted."""
        labels, held = trainer.bank.labels.cpu(), trainer.bank.subjects
        per_fold = [trainer.class_weights(labels[torch.as_tensor(held != s)]) for s in subjects]
        return None if per_fold[0] is None else torch.stack(per_fold)

    def generator(self, epoch: int) -> torch.Generator:
        gen = torch.Generator().manual_seed(seed_for(self.seed, "foldbatch", epoch))
        torch.manual_seed(seed_for(self.seed, "foldbatch-dropout", epoch))
        return gen

    def train_epoch(self, gen: torch.Generator, lr: float) -> list[dict]:
        self.optimizer.lr = lr
        stats = train_epoch(self.trainer, self.stack, self.template, self.optimizer, self.held, self.all_subjects, gen,
                            self.compiled, self.class_w)
        return [{"loss": loss, "train_acc": acc} for loss, acc in zip(stats["loss"], stats["train_acc"])]

    def predict(self) -> list[np.ndarray]:
        return predict_held_out(self.trainer, self.stack, self.template, self.test_sets)

    def snapshot(self, i: int) -> dict:
        return {k: v.detach().clone() for k, v in self.stack.state_dict().items()}

    def state_dict(self) -> dict:
        return {"subjects": self.subjects, "model": self.stack.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict, path: Path) -> None:
        if state["subjects"] != self.subjects:
            raise ValueError(f"{path} holds other folds ({state['subjects']}); delete it to start over")
        self.stack.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])

    def model(self, i: int, weights: dict | None):
        chosen = self.stack
        if weights is not None:
            chosen = stack_of(self.models)
            chosen.load_state_dict(weights)
        chosen.unstack(i, self.models[i].backbone, getattr(self.models[i], "head", None))
        return self.models[i]


def stack_of(models: list) -> STSTNetFolds:
    """The folds' :class:`~training.schemes.ViewModel` s in one :class:`STSTNetFolds` (FSB: with their fused heads)."""
    fsb = models[0].scheme == "fsb"
    return STSTNetFolds([m.backbone for m in models], [m.head for m in models] if fsb else None)


def use_compiled(trainer: Trainer, stack: STSTNetFolds, log=print) -> bool:
    """Whether the folds' steps run compiled (:mod:`training.foldkernel`); one line to ``log`` either way."""
    why = foldkernel.why_not(stack, trainer.device)
    if why is None:
        log(f"fold-batched: each step compiled (training/foldkernel.c, {torch.get_num_threads()} threads)")
        return True
    log(f"fold-batched: each step by PyTorch's autograd ({why})")
    return False


def train_epoch(trainer: Trainer, stack: STSTNetFolds, template, opt: FoldAdam, held: torch.Tensor,
                all_subjects: torch.Tensor, gen: torch.Generator, compiled: bool = False,
                class_w: torch.Tensor | None = None) -> dict:
    """One pass over every clip in one order from ``gen``, in shared batches; per fold the mean loss and training
    accuracy over its own clips (as :meth:`Trainer.train_one_epoch` reports them). ``compiled``: each step by
    :func:`training.foldkernel.step` (see :func:`use_compiled`) instead of autograd. ``class_w`` ``(F, K)``: each
    fold's loss weight per class; its loss is then the weighted mean over its clips, as ``F.cross_entropy(weight=…)``
    takes it."""
    bank, bs = trainer.bank, trainer.cfg["train"]["batch_size"]
    order = trainer.epoch_order(bank.labels, gen)
    stack.train()
    n_folds = stack.folds
    loss_sum, correct, total = (torch.zeros(n_folds, dtype=torch.float64) for _ in range(3))
    views, view_w = template.train_views, template.view_weights
    fsb = template.scheme == "fsb"
    for s in range(0, len(order), bs):
        idx = order[s:s + bs]
        weight = (all_subjects[idx][None] != held).float()  # (F, B): 0 for the fold's held-out clips
        count = weight.sum(1)
        active = count >= 2  # a fold with fewer than two clips here skips the step (batch norm needs two)
        weight = weight * active[:, None]
        x = trainer.batch(idx, bank.clips, gen, train=True)
        y = bank.labels[idx]
        # each clip's share of its fold's loss: 1 / (the fold's clips here), or its class's weight over their sum
        lw = weight if class_w is None else weight * class_w[:, y.cpu()]
        norm = lw.sum(1).clamp_min(1e-12)[:, None]  # 0 only for a fold with no clip here, whose lw is all 0
        xv = torch.cat(template.views(x, views), 0)
        per_image = weight.repeat(1, len(views))  # (F, V·B): the views' images, as the autograd form sees them
        for p in opt.params:
            p.grad = None
        if compiled:  # the same step as below, one compiled loop per fold (training.foldkernel)
            # SBML: each image its own loss, weighted by its view; FSB: one loss per clip, of its views' summed shares
            coef = lw / norm if fsb else torch.cat([w * lw for w in view_w], 1) / norm
            xs = flow_image_batch(xv, stack.image_size, "STSTNet")
            bits = stack.dropout_bits(len(xs)) if stack.training else None
            out = foldkernel.step(stack, xs, per_image, coef, y if fsb else y.repeat(len(views)), bits)
            stack.track(per_image, out["mean"], out["var"])
            logits, per_fold = out["logits"].view(n_folds, len(views), len(idx), -1), out["loss"]
        else:
            logits = stack(xv, per_image).view(n_folds, len(views), len(idx), -1)
            if fsb:
                ce = F.cross_entropy(logits.sum(1).flatten(0, 1), y.repeat(n_folds), reduction="none")
                per_fold = (ce.view(n_folds, len(idx)) * lw).sum(1) / norm[:, 0]
            else:
                ce = F.cross_entropy(logits.flatten(0, 2), y.repeat(n_folds * len(views)), reduction="none")
                ce = ce.view(n_folds, len(views), len(idx))
                per_fold = sum(w * (ce[:, v] * lw).sum(1) for v, w in enumerate(view_w)) / norm[:, 0]
            per_fold.sum().backward()
        opt.step(active)
        with torch.no_grad():
            loss_sum += (per_fold.detach() * count * active).double().cpu()
            correct += ((logits.sum(1).argmax(-1) == y[None]) * weight).sum(1).double().cpu()
            total += (count * active).double().cpu()
    total = total.clamp_min(1)
    return {"loss": (loss_sum / total).tolist(), "train_acc": (correct / total).tolist()}


def predict_held_out(trainer: Trainer, stack: STSTNetFolds, template, test_sets: list[np.ndarray]) -> list[np.ndarray]:
    """Each fold's predicted classes on its own held-out clips (running statistics, the test views' summed logits)."""
    stack.eval()
    m = max(len(i) for i in test_sets)
    padded = np.stack([np.concatenate([i, np.full(m - len(i), i[0])]) for i in test_sets])  # (F, m)
    x = trainer.batch(torch.as_tensor(padded.reshape(-1)), trainer.bank.clips, None, train=False)
    fsb = template.scheme == "fsb"  # FSB: view b reads block b of the fused head
    logits = sum(stack.evaluate(v.view(len(test_sets), m, *v.shape[1:]), b if fsb else 0)
                 for b, v in enumerate(template.views(x, template.test_views)))
    pred = logits.argmax(-1).numpy()
    return [pred[f, :len(i)] for f, i in enumerate(test_sets)]
