"""STSTNet's fold-batched training step compiled for the CPU: ``training/foldkernel.c``, built on first use.

:mod:`training.foldbatch` trains every LOSO fold's STSTNet at once. Its PyTorch form spends most of an epoch moving
the first layer's activations (433 M per epoch on the composite set) through memory, between one GEMM and the next.
The compiled step computes each fold on its own, start to end, image by image while the image is in cache: the first
layer (convolution, ReLU, 3×3/3 max- and min-pool, batch norm's sums), batch norm after the pool, dropout, the 2×2
average pool folded into the classifier, cross-entropy, and every gradient (FSB's fused head: each view's image its
block of the head, one loss per clip of its views' summed logits, taken between the classifier's forward and backward
passes). It keeps no activation map: batch norm
couples the positions only through the sums s1 = Σr and s2 = Σr², so their share of the filters' gradient is
ds1·Σᵢ mᵢPᵢ + 2·ds2·Σᵢ rᵢPᵢ (m the ReLU's mask, P the 3×3 patch), and both sums are taken in the forward pass. The
convolution and those two sums run in Winograd's form over 2×2 tiles of positions (F(2×2, 3×3) and its transpose
F(3×3, 2×2)), which takes 16 products per tile and input channel where the direct form takes 36. Ranges of folds are
taken in turn by the threads (ctypes lets go of the GIL; the calling thread is one of them).

It is the same step as the PyTorch form (:class:`~training.foldbatch.STSTNetFolds` + autograd): the same dropout bytes,
drawn by the same call, and gradients equal to float rounding (:mod:`tests.test_foldbatch` compares them). Used on the
CPU for dropout 0 or 0.5 when a C compiler (``cc``, or ``$CC``) and AVX2 + FMA are there; otherwise, or with
``MER_FOLDBATCH_KERNEL=0``, the PyTorch form runs and the run says why in one line. The library is compiled once per
source and flags into ``$MER_CACHE`` (default ``~/.cache/decalcomanie``), written atomically.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import sysconfig
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

SOURCE = Path(__file__).with_name("foldkernel.c")
FLAGS = ("-O3", "-funroll-loops", "-mavx2", "-mfma", "-shared", "-fPIC", "-std=c11")
TAPS = 32  # the C side's patch stride (27 taps used)
CHT = 8  # the C side's 2×2 tiles per chunk (CHT): the tiles are padded to a multiple of it
WIDTH = 16  # the C side's first-layer channels (STSTNet's 3 + 5 + 8)
_STATE: dict = {}
_BUFS: dict = {}  # (images, rows) -> the step's patch arrays


def cache_dir() -> Path:
    """Where the compiled library is kept: ``$MER_CACHE``, else ``$XDG_CACHE_HOME/decalcomanie`` (``~/.cache``)."""
    if os.environ.get("MER_CACHE"):
        return Path(os.environ["MER_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "decalcomanie"


def _compiler() -> str | None:
    for name in (os.environ.get("CC"), (sysconfig.get_config_var("CC") or "").split(" ")[0], "cc", "gcc", "clang"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def _build(target: Path) -> None:
    cc = _compiler()
    if cc is None:
        raise RuntimeError("no C compiler (cc, gcc or clang; or set CC)")
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".so.part")
    os.close(fd)
    try:
        done = subprocess.run([cc, *FLAGS, "-o", tmp, str(SOURCE), "-lm"], capture_output=True, text=True, timeout=300)
        if done.returncode:
            raise RuntimeError(f"{Path(cc).name} failed: {done.stderr.strip()[-400:]}")
        os.replace(tmp, target)
    finally:
        Path(tmp).unlink(missing_ok=True)


def load():
    """The compiled library (a ctypes handle), or None; :func:`why_not` then says why."""
    if "lib" in _STATE:
        return _STATE["lib"]
    lib, why = None, None
    digest = hashlib.sha256(SOURCE.read_bytes() + " ".join(FLAGS).encode()).hexdigest()[:16]
    target = cache_dir() / f"foldkernel-{digest}.so"
    try:
        if not target.exists():
            _build(target)
        lib = ctypes.CDLL(str(target))
        if not lib.fk_cpu_ok():
            lib, why = None, "this CPU has no AVX2 + FMA"
    except (OSError, RuntimeError, subprocess.SubprocessError) as e:
        lib, why = None, f"the compiled step could not be built ({e})"
    if lib is not None:
        f32, i32 = ctypes.POINTER(ctypes.c_float), ctypes.POINTER(ctypes.c_int32)
        lib.fk_step.restype = ctypes.c_int
        lib.fk_prepare.restype = None
        lib.fk_prepare.argtypes = [ctypes.c_int] * 4 + [f32, i32, f32, f32]
        lib.fk_step.argtypes = ([ctypes.c_int] * 9 + [f32, f32, i32, i32] + [f32] * 8
                                + [ctypes.c_void_p, ctypes.c_float] + [f32] * 7
                                + [ctypes.POINTER(ctypes.c_double), f32, f32])
    _STATE["lib"], _STATE["why"] = lib, why
    return lib


def why_not(stack, device: torch.device) -> str | None:
    """Why the compiled step cannot train ``stack`` (an STSTNetFolds) on ``device`` (None: it can)."""
    if os.environ.get("MER_FOLDBATCH_KERNEL", "auto").strip() == "0":
        return "MER_FOLDBATCH_KERNEL=0"
    if device.type != "cpu":
        return f"the compiled step is for the CPU (training on {device.type})"
    if stack.width != WIDTH:
        return f"the compiled step has {WIDTH} first-layer channels, this network {stack.width}"
    if (stack.image_size + 2) ** 2 > 32767:
        return f"the compiled step keeps pool positions in 16 bits: images of at most 179 px, not {stack.image_size}"
    if stack.dropout not in (0.0, 0.5):
        return f"the compiled step knows dropout 0 and 0.5, not {stack.dropout}"
    load()
    return _STATE["why"]


def _ptr(a: np.ndarray, kind=ctypes.c_float):
    return a.ctypes.data_as(ctypes.POINTER(kind))


def _windows(side: int, q: int) -> np.ndarray:
    """Each position's window of the 3×3/3 max-pool with padding 1 on a ``side × side`` grid (-1: read by none)."""
    y, x = np.divmod(np.arange(side * side), side)
    wy, wx = (y + 1) // 3, (x + 1) // 3
    return np.where((wy < q) & (wx < q), wy * q + wx, -1).astype(np.int32)


def _layout(side: int, q: int) -> dict:
    """Positions in 2×2 tiles (whole chunks of the C side's CHT tiles): ``order`` (each row's raster position, -1
    where the tile passes the grid's edge), ``win`` (its pool window, -2 there), tiles per side ``ts``."""
    ts = -(-side // 2)
    tiles = -(-ts * ts // CHT) * CHT
    t, corner = np.divmod(np.arange(tiles * 4), 4)
    ty, tx = np.divmod(t, ts)
    y, x = 2 * ty + corner // 2, 2 * tx + corner % 2
    inside = (t < ts * ts) & (y < side) & (x < side)
    order = np.where(inside, y * side + x, -1).astype(np.int32)
    win = np.where(inside, _windows(side, q)[np.clip(order, 0, None)], -2).astype(np.int32)
    return {"order": order, "win": win, "ts": ts, "rows": tiles * 4}


def _pool(threads: int) -> ThreadPoolExecutor:
    if _STATE.get("threads") != threads:
        if "pool" in _STATE:
            _STATE["pool"].shutdown()
        _STATE["pool"], _STATE["threads"] = ThreadPoolExecutor(threads, thread_name_prefix="foldkernel"), threads
    return _STATE["pool"]


def step(stack, x: torch.Tensor, bn_weight: torch.Tensor, coef: torch.Tensor, labels: torch.Tensor,
         bits: torch.Tensor | None, threads: int | None = None) -> dict:
    """One training step of every fold of ``stack`` on flow images ``x`` ``(N, 3, H, W)``: ``bn_weight`` ``(F, N)``
    1 where image j is in fold f's batch-norm statistics, ``coef`` ``(F, N)`` its weight in fold f's loss, ``labels``
    ``(N,)``, ``bits`` dropout's random bytes (None: no dropout). Sets the parameters' ``.grad`` and returns
    ``logits`` ``(F, N, K)``, ``loss`` ``(F,)`` (Σ coef·cross-entropy), batch norm's batch ``mean`` and biased ``var``
    ``(F·W,)``. A stack with an FSB head (``stack.blocks`` V > 1) takes V views of B clips (N = V·B, view by view):
    ``coef`` ``(F, B)`` and ``labels`` ``(B,)`` are the clips', each clip's loss that of its V images' summed
    ``logits`` (each image's share)."""
    lib = load()
    n, _, h, _ = x.shape
    side = h + 2
    q = (side - 1) // 3 + 1
    key = ("layout", side)
    if key not in _STATE:
        _STATE[key] = _layout(side, q)
    lay = _STATE[key]
    xs = np.ascontiguousarray(x.detach().numpy(), np.float32)
    key = (n, lay["rows"])  # the patches' arrays, kept for the next step of this shape: no fresh pages each step
    if key not in _BUFS:
        if len(_BUFS) >= 2:  # an epoch has two shapes: full batches and the last one
            _BUFS.pop(next(iter(_BUFS)))
        _BUFS[key] = (np.empty((n, lay["rows"], TAPS), np.float32), np.empty((n, lay["rows"] // 4, 3, 16), np.float32))
    p, xh = _BUFS[key]
    threads = max(1, min(threads or torch.get_num_threads(), stack.folds))

    def prepare(a: int, b: int) -> None:  # images a … b-1
        lib.fk_prepare(b - a, h, lay["rows"], lay["ts"], _ptr(xs[a:b]), _ptr(lay["order"], ctypes.c_int32),
                       _ptr(p[a:b]), _ptr(xh[a:b]))

    parts = np.linspace(0, n, threads + 1).round().astype(int)
    jobs = [_pool(threads - 1).submit(prepare, a, b) for a, b in zip(parts[1:-1], parts[2:])] if threads > 1 else []
    try:
        prepare(parts[0], parts[1])
    finally:
        for job in jobs:
            job.result()
    win = lay["win"]
    f, k, nv = stack.folds, stack.fc_w.shape[1], stack.blocks
    if n % nv:
        raise ValueError(f"an FSB step takes {nv} views of each clip: {n} images are not whole clips")
    params = [np.ascontiguousarray(t.detach().numpy(), np.float32)
              for t in (stack.conv_w, stack.conv_b, stack.bn_w, stack.bn_b, stack.fc_w, stack.fc_b)]
    bnw = np.ascontiguousarray(bn_weight.numpy(), np.float32)
    cf = np.ascontiguousarray(coef.numpy(), np.float32)
    lab = np.ascontiguousarray(labels.numpy(), np.int32)
    raw = None if bits is None else np.ascontiguousarray(bits.numpy())
    grads = [np.empty_like(a) for a in params]
    logits = np.empty((f, n, k), np.float32)
    loss = np.empty(f, np.float64)
    mean, var = np.empty((f, WIDTH), np.float32), np.empty((f, WIDTH), np.float32)

    def run(f0: int, f1: int) -> int:
        return lib.fk_step(n, lay["rows"], side * side, q, k, f, f0, f1, nv, _ptr(p), _ptr(xh),
                           _ptr(win, ctypes.c_int32),
                           _ptr(lab, ctypes.c_int32),
                           *[_ptr(a) for a in params], _ptr(bnw), _ptr(cf),
                           None if raw is None else raw.ctypes.data_as(ctypes.c_void_p), float(stack.eps),
                           *[_ptr(g) for g in grads], _ptr(logits), _ptr(loss, ctypes.c_double), _ptr(mean),
                           _ptr(var))

    # ranges of folds taken in turn by whichever thread is free (the calling thread is one of them): one large range
    # each first (a range's folds share each image's patches in cache), then one small one each, so that a thread
    # that ran slower takes less; each thread keeps its pools' memory for the next step
    sizes = [0.7 / threads] * threads + [0.3 / threads] * threads if threads > 1 else [1.0]
    cuts = np.unique((np.concatenate([[0], np.cumsum(sizes)]) * f).round().astype(int))
    ranges, codes, lock = iter(list(zip(cuts[:-1], cuts[1:]))), [], threading.Lock()

    def work() -> None:
        while True:
            with lock:
                job = next(ranges, None)
            if job is None:
                return
            codes.append(run(*job))

    others = [_pool(threads - 1).submit(work) for _ in range(threads - 1)] if threads > 1 else []
    try:
        work()
    finally:  # no thread is left writing into this step's arrays, whatever happened here
        for job in others:
            job.result()
    if any(codes):
        raise MemoryError("the compiled STSTNet step could not allocate its pools")
    for t, g in zip((stack.conv_w, stack.conv_b, stack.bn_w, stack.bn_b, stack.fc_w, stack.fc_b), grads):
        t.grad = torch.from_numpy(g)
    return {"logits": torch.from_numpy(logits), "loss": torch.from_numpy(loss).float(),
            "mean": torch.from_numpy(mean).view(-1), "var": torch.from_numpy(var).view(-1)}
