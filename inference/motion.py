"""Motion inputs, computed the same way for training caches and for serving: optical flow, optical strain, the
apex frame, flow images, flow clips, the temporal interpolation model (TIM) and Eulerian motion magnification.

Frames are aligned faces (``inference.face``: eye line level, facial midline at ``x = S/2``), uint8 RGB
``(H, W, 3)`` or grey ``(H, W)``; clips are ``(T, H, W, 3)``. numpy and OpenCV only.

- :func:`flow` — dense optical flow ``(H, W, 2)`` float32 from frame ``a`` to frame ``b``: ``u`` (x, columns) and
  ``v`` (y, rows) displacements in pixels, so that ``b[y + v, x + u] ≈ a[y, x]``. TV-L1 (Zach, Pock, Bischof 2007;
  OpenCV contrib ``cv2.optflow.DualTVL1OpticalFlow``) or Farneback (OpenCV core), on the grey image (ITU-R 601
  weights, ``cv2.COLOR_RGB2GRAY``). :func:`flow_params` gives the parameters used, defaults filled in, as a plain
  dict to record beside a cache or in a model's config.
- :func:`strain` — the magnitude of the optical strain tensor ``ε = ½(∇u + ∇uᵀ)``, its Frobenius norm
  ``sqrt(εxx² + εyy² + 2·εxy²)`` with ``εxx = ∂u/∂x``, ``εyy = ∂v/∂y``, ``εxy = εyx = ½(∂u/∂y + ∂v/∂x)`` (Shreve et
  al.; the form STSTNet/HTNet compute as ``sqrt(ux² + vy² + ½(uy + vx)²)``), derivatives by central differences
  (one-sided at the borders, ``numpy.gradient``), per pixel. Dimensionless: resizing a flow field leaves it unchanged.
- :func:`estimate_apex` — the apex when neither a dataset nor a spotter gives one. A dataset clip runs from onset to
  offset: the face moves away from its onset and comes back. Default ``method="both_ends"``: the frame whose mean
  absolute grey difference to the onset frame *plus* that to the clip's last frame is largest (over the face's
  central region, the middle 80 % of each side, after a 5×5 Gaussian blur against sensor noise) — the frame farthest
  off the way from the first frame to the last. A slow drift between the ends (lighting, the aligned crop creeping,
  the head settling) adds the same to every frame's sum and cancels; measured from the onset alone it grows to the
  last frame and wins. The score is averaged over a window of :data:`APEX_SMOOTHING` of the clip (an apex is held
  over frames; a single noisy frame is not one). On nine real CASME II clips with coded apexes (sub01, local check;
  see the README) the onset-only measure picked the last frame or the one before it on seven of the nine (mean error
  52 % of the clip), this one erred by a mean 13 %. ``method="difference"`` is that onset-only measure (for a clip
  that ends at its apex), ``method="flow"`` the same with the mean Farneback flow magnitude. Cheap: one subtraction
  per frame and end, no flow.
- :class:`FlowScaling` — how ``u, v, strain`` become stored uint8 values and where zero motion lies:

  * ``"fixed"`` (our caches): ``value = 128 + gain·u`` (and ``v``), ``value = strain_gain·strain`` for the strain,
    rounded and clipped to 0…255. Zero motion is exactly 128 in ``u`` and ``v`` and 0 in the strain. Defaults
    ``gain = 16`` (±7.9 px, steps of 1/16 px) and ``strain_gain = 512`` (0…0.5, steps of 0.002).
  * ``"minmax"`` (the layout STSTNet and HTNet publish): each image's channels are min-max scaled to 0…255 on their
    own; a constant channel is stored as 0. The scale and the zero are not stored. :meth:`FlowScaling.zero` finds
    the zero of ``u`` and ``v`` as their median over the face's central region (the middle ``zero_region`` of each
    side; most of a face does not move between onset and apex) and of the strain as the channel's minimum.

  :meth:`FlowScaling.encode` makes the image, :meth:`FlowScaling.zero` the per-channel zero values,
  :meth:`FlowScaling.decode` inverts "fixed" (to within half a step). Where u, v and strain sit in a stored image, and
  so how its views mirror it, is the input kind's row's to say (:mod:`inference.inputs`).
- :func:`flow_image` — onset → apex as one ``(size, size, 3)`` uint8 image (channels ``u, v, strain``): flow and
  strain at the frames' resolution, then resized (``u, v`` scaled by ``size / W``; strain as is) with pixel-area
  averaging, then encoded.
- :func:`flow_clip` — the flow of consecutive frame pairs ``(t, t+1)`` (``reference="consecutive"``, default: what
  the flow-stream video models read) or of each frame against the first (``reference="onset"``), as a
  ``(T-1, H, W, 3)`` uint8 clip, scaled per frame.
- :func:`tim` — the temporal interpolation model (Zhou, Zhao, Pietikäinen, CVPR 2011): the frames are nodes of a
  path graph; its Laplacian eigenmap ``y_k(i) = cos(πk(i − ½)/T)``, ``k = 1 … T−1``, is a curve on which every frame
  sits; a linear map from the curve back to the frames is fitted (exact at the T frames, as the eigenvectors and the
  constant span all T positions) and the curve is sampled at ``n`` evenly spaced positions ``t ∈ [1, T]``. The ends
  are the first and last frames exactly; a linear sequence is reproduced up to the ripple of the finite cosine
  series (measured on a full-range 0…255 ramp: < 0.1 grey level for 30 → 10 frames, about 1.2 for 10 → 19).
  The whole model is one fixed ``(n, T)`` weight matrix (:func:`tim_weights`) applied to the frames.
- :func:`magnify` — linear Eulerian video magnification (Wu et al., SIGGRAPH 2012): a Laplacian pyramid of each
  frame, an ideal temporal band-pass (FFT over the whole clip, ``low_hz … high_hz``) of every level, amplified and
  added back. Level ``ℓ`` (finest 0, representative wavelength ``λ = 2^(ℓ+2)`` px) uses
  ``α_ℓ = min(α, (1 + α)·λ/λc − 1)`` (at least 0), Wu et al.'s bound ``(1 + α)δ < λ/8`` for a cut-off wavelength
  ``λc`` (``cutoff``, px); a motion ``δ(t)`` in the band becomes ``(1 + α)·δ(t)`` where the image is smooth enough.
- :func:`grey_flow_clip` — the late-fusion model's grey + flow clip: ``(T-1, H, W, 3)`` with channels grey, u, v
  (frame ``t``'s grey level as it is, beside the flow from ``t-1`` to ``t``, u and v "fixed"-scaled, zero at 128).
- :data:`FLOW_METHODS` — the table of optical-flow methods (one row each: name, OpenCV defaults, solver, words).
  The input kinds built from these pieces (and ``build_input``, an aligned clip → a model's input) are the rows of
  :mod:`inference.inputs`.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .errors import InputError

# OpenCV's own defaults, in the order and (but for lambda_) the names of cv2.optflow.DualTVL1OpticalFlow_create's
# arguments; "innerIterations" is its "innnerIterations".
TVL1_DEFAULTS = {"tau": 0.25, "lambda": 0.15, "theta": 0.3, "nscales": 5, "warps": 5, "epsilon": 0.01,
                 "innerIterations": 30, "outerIterations": 10, "scaleStep": 0.8, "gamma": 0.0,
                 "medianFiltering": 5, "useInitialFlow": False}
FARNEBACK_DEFAULTS = {"pyr_scale": 0.5, "levels": 3, "winsize": 15, "iterations": 3, "poly_n": 5,
                      "poly_sigma": 1.2, "flags": 0}
CHANNELS = ("u", "v", "strain")  # what FlowScaling.encode writes, in this order (inference.inputs' rows say where)
REFERENCES = ("consecutive", "onset")


@dataclass(frozen=True)
class FlowMethod:
    """One row of the table of optical-flow methods (:data:`FLOW_METHODS`): its name, OpenCV's default parameters
    (what :func:`flow_params` fills in and a cache records), the solver on two grey uint8 frames with those
    parameters, and the words a user reads (``--flow-method`` help, the model card)."""

    name: str
    defaults: dict
    solve: object  # (grey a, grey b, params) -> (H, W, 2) float flow
    words: str


def _tvl1(p: dict):
    """OpenCV's TV-L1 solver; its factory takes the parameters positionally, in TVL1_DEFAULTS' order."""
    return cv2.optflow.DualTVL1OpticalFlow_create(*(p[k] for k in TVL1_DEFAULTS))


# The optical-flow methods: one row each. A new method is one new row here (prepare's --flow-method, export's
# --serve-flow and every check read this table).
FLOW_METHODS = {m.name: m for m in (
    FlowMethod("tvl1", TVL1_DEFAULTS, lambda a, b, p: _tvl1(p).calc(a, b, None),
               "TV-L1 (Zach, Pock, Bischof 2007; OpenCV contrib)"),
    FlowMethod("farneback", FARNEBACK_DEFAULTS,
               lambda a, b, p: cv2.calcOpticalFlowFarneback(a, b, None, p["pyr_scale"], p["levels"], p["winsize"],
                                                            p["iterations"], p["poly_n"], p["poly_sigma"],
                                                            p["flags"]),
               "Farneback (OpenCV core)"),
)}
METHODS = tuple(FLOW_METHODS)
DEFAULTS = {name: m.defaults for name, m in FLOW_METHODS.items()}


# ---------------------------------------------------------------- input checks


def _grey(frame, name: str = "frame") -> np.ndarray:
    """A uint8 frame ``(H, W)``, ``(H, W, 1)`` or ``(H, W, 3)`` RGB as a grey ``(H, W)`` uint8 image."""
    f = np.asarray(frame)
    if f.dtype != np.uint8:
        raise InputError(f"{name} must be uint8 (0…255), got {f.dtype}; convert it with "
                         f"np.clip(x, 0, 255).astype(np.uint8)")
    if f.ndim == 3 and f.shape[2] == 1:
        f = f[:, :, 0]
    if f.ndim == 3 and f.shape[2] == 3:
        return cv2.cvtColor(f, cv2.COLOR_RGB2GRAY)
    if f.ndim != 2 or min(f.shape) < 2:
        raise InputError(f"{name} must be an image (H, W) or (H, W, 3), at least 2 pixels a side, got shape {f.shape}")
    return np.ascontiguousarray(f)


def _clip(frames, least: int, what: str) -> np.ndarray:
    """``frames`` as one array ``(T, H, W[, C])``, with at least ``least`` frames of one size."""
    if isinstance(frames, np.ndarray):
        arr = frames
    else:
        frames = list(frames)
        sizes = {np.shape(f) for f in frames}
        if len(sizes) > 1:
            raise InputError(f"{what}: the frames have different sizes {sorted(sizes)}; align or resize them to one "
                             f"size first (inference.face aligns a clip to one crop)")
        arr = np.stack(frames) if frames else np.zeros((0,))
    if arr.ndim not in (3, 4) or len(arr) < least:
        raise InputError(f"{what} needs a clip (T, H, W) or (T, H, W, C) of at least {least} frames, got shape "
                         f"{arr.shape}")
    return arr


def _method(method: str) -> str:
    m = str(method).lower().replace("-", "").replace("_", "")
    if m not in METHODS:
        raise InputError(f"unknown optical-flow method {method!r}: use one of {', '.join(METHODS)}")
    return m


# ---------------------------------------------------------------- flow and strain


def flow_params(method: str = "tvl1", params: dict | None = None) -> dict:
    """The parameters :func:`flow` uses for ``method``, OpenCV's defaults filled in, plus ``"method"``: a plain
    dict to record (and to pass back as ``params``). Unknown parameter names are refused."""
    m = _method(method)
    given = {k: v for k, v in (params or {}).items() if k != "method"}
    if "method" in (params or {}) and _method(params["method"]) != m:
        raise InputError(f"flow parameters are for {params['method']!r}, not {method!r}")
    unknown = sorted(set(given) - set(DEFAULTS[m]))
    if unknown:
        raise InputError(f"unknown {m} parameter(s) {unknown}: known are {sorted(DEFAULTS[m])}")
    out = {"method": m}
    for k, default in DEFAULTS[m].items():
        out[k] = type(default)(given.get(k, default))
    return out


def flow(a, b, method: str = "tvl1", params: dict | None = None) -> np.ndarray:
    """Dense optical flow ``(H, W, 2)`` float32 from frame ``a`` to frame ``b`` (uint8 RGB or grey, one size):
    ``[..., 0] = u`` (x), ``[..., 1] = v`` (y), in pixels."""
    p = flow_params(method, params)
    ga, gb = _grey(a, "first frame"), _grey(b, "second frame")
    if ga.shape != gb.shape:
        raise InputError(f"optical flow needs two frames of one size, got {ga.shape} and {gb.shape}; align or "
                         f"resize them to one size first")
    return np.asarray(FLOW_METHODS[p["method"]].solve(ga, gb, p), np.float32)


def _check_uv(uv) -> np.ndarray:
    uv = np.asarray(uv, np.float32)
    if uv.ndim != 3 or uv.shape[2] != 2 or min(uv.shape[:2]) < 2:
        raise InputError(f"a flow field must be (H, W, 2) with H, W >= 2, got shape {uv.shape}")
    return uv


def strain(uv) -> np.ndarray:
    """Optical strain magnitude ``(H, W)`` float32 of a flow field ``(H, W, 2)``: ``sqrt(εxx² + εyy² + 2·εxy²)``."""
    uv = _check_uv(uv)
    u_y, u_x = np.gradient(uv[..., 0])
    v_y, v_x = np.gradient(uv[..., 1])
    shear = 0.5 * (u_y + v_x)
    return np.sqrt(u_x ** 2 + v_y ** 2 + 2.0 * shear ** 2).astype(np.float32)


# ---------------------------------------------------------------- apex


def central(shape, fraction: float) -> tuple[slice, slice]:
    """Rows and columns of the middle ``fraction`` of an ``(H, W)`` image: the face's central region in an aligned
    crop."""
    h, w = shape[:2]
    dy, dx = int(round(h * (1 - fraction) / 2)), int(round(w * (1 - fraction) / 2))
    return slice(dy, max(h - dy, dy + 1)), slice(dx, max(w - dx, dx + 1))


APEX_METHODS = ("both_ends", "difference", "flow")
APEX_SMOOTHING = 0.15  # both_ends: the score's moving average over this fraction of the clip (an odd window)


def estimate_apex(frames, onset: int = 0, method: str = "both_ends", region: float = 0.8) -> int:
    """Index (into ``frames``) of the apex after ``onset`` (see the module docstring): ``both_ends`` (default) the
    frame farthest from the onset *and* the last frame, ``difference`` / ``flow`` the frame farthest from the onset."""
    arr = _clip(frames, 1, "estimate_apex")
    if not 0 <= onset < len(arr):
        raise InputError(f"onset {onset} is outside the clip's {len(arr)} frames")
    if method not in APEX_METHODS:
        raise InputError(f"unknown apex method {method!r}: use {', '.join(repr(m) for m in APEX_METHODS)}")
    if onset == len(arr) - 1:
        return onset
    rows, cols = central(arr.shape[1:3], region)
    if method == "flow":
        ref = arr[onset]
        score = np.array([np.linalg.norm(flow(ref, arr[t], "farneback")[rows, cols], axis=-1).mean()
                          for t in range(onset + 1, len(arr))])
        return onset + 1 + int(np.argmax(score))

    def prep(f):
        return cv2.GaussianBlur(_grey(f), (5, 5), 0)[rows, cols].astype(np.float32)

    grey = [prep(arr[t]) for t in range(onset, len(arr))]  # the onset's score too: the smoothing's left edge
    score = np.array([np.abs(g - grey[0]).mean() for g in grey])
    if method == "both_ends":  # drift between the ends adds the same to every frame's sum: it cancels
        score = score + np.array([np.abs(g - grey[-1]).mean() for g in grey])
        w = max(1, round(APEX_SMOOTHING * len(score))) | 1  # an apex is held over frames; one noisy frame is not
        score = np.convolve(np.pad(score, w // 2, mode="edge"), np.full(w, 1.0 / w), mode="valid")
    return onset + 1 + int(np.argmax(score[1:]))


# ---------------------------------------------------------------- scaling


SCALING_MODES = ("fixed", "minmax")


@dataclass(frozen=True)
class FlowScaling:
    """How ``u, v, strain`` are stored as uint8 image channels (see the module docstring)."""

    mode: str = "fixed"
    gain: float = 16.0  # fixed: value units per pixel of u and v
    strain_gain: float = 512.0  # fixed: value units per unit of strain
    zero_region: float = 0.6  # minmax: the central fraction of each side where the zero of u, v is measured

    def __post_init__(self):
        if self.mode not in SCALING_MODES:
            raise InputError(f"unknown flow scaling {self.mode!r}: use one of {', '.join(SCALING_MODES)}")
        if not (self.gain > 0 and self.strain_gain > 0):
            raise InputError(f"flow scaling gains must be positive, got gain={self.gain}, "
                             f"strain_gain={self.strain_gain}")
        if not 0 < self.zero_region <= 1:
            raise InputError(f"zero_region must be a fraction in (0, 1], got {self.zero_region}")

    def to_dict(self) -> dict:
        d = {"mode": self.mode, "channels": list(CHANNELS)}
        if self.mode == "fixed":
            d.update(gain=float(self.gain), strain_gain=float(self.strain_gain), zero=[128.0, 128.0, 0.0])
        else:
            d.update(zero_region=float(self.zero_region),
                     zero="not stored: median of u and v over the central zero_region of each side; strain minimum")
        return d

    @classmethod
    def from_dict(cls, d: dict) -> FlowScaling:
        if not isinstance(d, dict) or "mode" not in d:
            raise InputError(f"a flow scaling must be a dict with a 'mode', got {d!r}")
        if list(d.get("channels", CHANNELS)) != list(CHANNELS):
            raise InputError(f"flow images with channels {d['channels']} are not supported: expected {list(CHANNELS)}")
        fields = {k: d[k] for k in ("gain", "strain_gain", "zero_region") if k in d}
        return cls(mode=d["mode"], **{k: float(v) for k, v in fields.items()})

    def encode(self, uv, strain_map=None) -> np.ndarray:
        """``(H, W, 3)`` uint8 image of a flow field ``(H, W, 2)`` and its strain (computed when not given)."""
        uv = _check_uv(uv)
        s = strain(uv) if strain_map is None else np.asarray(strain_map, np.float32)
        if s.shape != uv.shape[:2]:
            raise InputError(f"strain {s.shape} and flow {uv.shape[:2]} differ in size")
        x = np.concatenate([uv, s[..., None]], axis=-1)
        if self.mode == "fixed":
            x = x * np.array([self.gain, self.gain, self.strain_gain], np.float32) + np.array([128, 128, 0],
                                                                                              np.float32)
        else:
            lo, hi = x.min(axis=(0, 1)), x.max(axis=(0, 1))
            span = np.where(hi > lo, hi - lo, 1.0)
            x = np.where(hi > lo, (x - lo) / span * 255.0, 0.0)
        return np.clip(np.rint(x), 0, 255).astype(np.uint8)

    def zero(self, img=None) -> np.ndarray:
        """Per-channel values of zero motion, shape ``img.shape[:-3] + (3,)`` (``(3,)`` without an image):
        ``[128, 128, 0]`` for "fixed"; for "minmax" measured on ``img`` (``(..., H, W, 3)``)."""
        if self.mode == "fixed":
            z = np.array([128.0, 128.0, 0.0], np.float32)
            return z if img is None else np.broadcast_to(z, np.shape(img)[:-3] + (3,)).copy()
        if img is None:
            raise InputError("the zero of a min-max scaled flow image is measured on the image: pass it")
        img = np.asarray(img)
        if img.ndim < 3 or img.shape[-1] != 3:
            raise InputError(f"flow images must be (..., H, W, 3) with channels u, v, strain, got shape {img.shape}")
        rows, cols = central(img.shape[-3:-1], self.zero_region)
        uv = np.median(img[..., rows, cols, :2].astype(np.float32), axis=(-3, -2))
        return np.concatenate([uv, img[..., 2].min(axis=(-2, -1))[..., None].astype(np.float32)], axis=-1)

    def decode(self, img) -> tuple[np.ndarray, np.ndarray]:
        """``(uv (H, W, 2), strain (H, W))`` float32 of a "fixed" image; a min-max image has lost its scale."""
        if self.mode != "fixed":
            raise InputError("a min-max scaled flow image cannot be decoded to pixels: its scale was not stored")
        x = np.asarray(img, np.float32)
        return ((x[..., :2] - 128.0) / self.gain).astype(np.float32), (x[..., 2] / self.strain_gain).astype(np.float32)


FIXED = FlowScaling()


# ---------------------------------------------------------------- flow images and clips


def resize_flow(uv, size: int) -> np.ndarray:
    """A flow field resized to ``size``², its vectors scaled with the image (pixel-area averaging)."""
    uv = _check_uv(uv)
    h, w = uv.shape[:2]
    if (h, w) == (size, size):
        return uv
    interp = cv2.INTER_AREA if size < min(h, w) else cv2.INTER_LINEAR
    out = cv2.resize(uv, (size, size), interpolation=interp)
    return (out * np.array([size / w, size / h], np.float32)).astype(np.float32)


def flow_image(onset_frame, apex_frame, size: int | None = None, method: str = "tvl1",
               scaling: FlowScaling = FIXED, params: dict | None = None) -> np.ndarray:
    """Onset → apex as a ``(size, size, 3)`` uint8 image with channels ``u, v, strain`` (``size`` None: at the
    frames' own size)."""
    uv = flow(onset_frame, apex_frame, method, params)
    s = strain(uv)
    if size is not None:
        if int(size) < 2:
            raise InputError(f"flow image size must be at least 2 pixels, got {size}")
        uv = resize_flow(uv, int(size))
        s = cv2.resize(s, (int(size),) * 2, interpolation=cv2.INTER_AREA if size < min(s.shape) else cv2.INTER_LINEAR)
    return scaling.encode(uv, s)


def flow_clip(frames, method: str = "tvl1", scaling: FlowScaling = FIXED, params: dict | None = None,
              reference: str = "consecutive", progress: bool = False) -> np.ndarray:
    """The ``(T-1, H, W, 3)`` uint8 clip of flow images of ``frames`` ``(T, H, W[, 3])`` (see the module
    docstring for ``reference``)."""
    arr = _clip(frames, 2, "flow_clip")
    if reference not in REFERENCES:
        raise InputError(f"unknown flow reference {reference!r}: use one of {', '.join(REFERENCES)}")
    params = flow_params(method, params)
    steps = range(1, len(arr))
    if progress:
        from tqdm import tqdm

        steps = tqdm(steps, desc=f"flow {params['method']}", unit="pair", leave=False)
    out = np.empty((len(arr) - 1, arr.shape[1], arr.shape[2], 3), np.uint8)
    for t in steps:
        a = arr[0] if reference == "onset" else arr[t - 1]
        out[t - 1] = scaling.encode(flow(a, arr[t], params["method"], params))
    return out


def grey_flow_clip(frames, method: str = "tvl1", scaling: FlowScaling = FIXED, params: dict | None = None,
                   progress: bool = False) -> np.ndarray:
    """``(T-1, H, W, 3)`` uint8 with channels grey, u, v: frame ``t``'s grey level (ITU-R 601, as it is) beside the
    flow from frame ``t-1`` to ``t`` (``scaling`` "fixed": zero motion at 128), for ``t = 1 … T-1`` — the grey + flow
    clip of the late-fusion model (its grey stream and its flow stream read the same frames)."""
    if scaling.mode != "fixed":
        raise InputError("a grey + flow clip stores u and v with the fixed scaling (zero motion at 128); got "
                         f"{scaling.mode!r}")
    arr = _clip(frames, 2, "grey_flow_clip")
    flows = flow_clip(arr, method, scaling, params, "consecutive", progress)
    grey = np.stack([_grey(f) for f in arr[1:]])
    return np.concatenate([grey[..., None], flows[..., :2]], axis=-1)


# ---------------------------------------------------------------- TIM


def _to_dtype(x: np.ndarray, dtype) -> np.ndarray:
    """Float results back to the input's dtype: integers rounded and clipped to their range."""
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        x = np.clip(np.rint(x), info.min, info.max)
    return x.astype(dtype)


def tim_curve(n_in: int, positions) -> np.ndarray:
    """The path graph's Laplacian eigenmap ``(len(positions), n_in - 1)`` at (1-based, fractional) frame
    positions: ``cos(πk(t − ½)/T)``, ``k = 1 … T−1``."""
    k = np.arange(1, n_in, dtype=np.float64)
    t = np.asarray(positions, np.float64)
    return np.cos(np.pi * k[None, :] * (t[:, None] - 0.5) / n_in)


def tim_weights(n_in: int, n_out: int) -> np.ndarray:
    """The ``(n_out, n_in)`` matrix of TIM: output frame ``j`` is ``Σ_i w[j, i] · frame_i``.

    The fitted map is ``x(t) = mean + y(t) · M`` with ``M = Yᵀ(X − mean) / (T/2)`` (the eigenvectors are orthogonal,
    each of squared norm T/2, and orthogonal to the constant, so ``YᵀX`` needs no centring): a fixed linear
    combination of the frames that depends only on the two lengths."""
    y = tim_curve(n_in, np.arange(1, n_in + 1))
    yt = tim_curve(n_in, np.linspace(1.0, n_in, n_out))
    return 1.0 / n_in + yt @ y.T * (2.0 / n_in)


def tim(frames, n: int) -> np.ndarray:
    """The temporal interpolation model: ``frames`` ``(T, …)`` → ``(n, …)``, dtype kept (see the module docstring)."""
    arr = _clip(frames, 2, "TIM")
    if int(n) < 2:
        raise InputError(f"TIM interpolates to at least 2 frames, got n={n}")
    n, T = int(n), len(arr)
    if n == T:
        return arr
    work = np.float64 if arr.dtype == np.float64 else np.float32
    out = tim_weights(T, n).astype(work) @ arr.reshape(T, -1).astype(work)
    return _to_dtype(out.reshape((n,) + arr.shape[1:]), arr.dtype)


# ---------------------------------------------------------------- magnification


def _pyramid(img: np.ndarray, levels: int) -> list[np.ndarray]:
    """Laplacian pyramid, finest band first, the low-pass residual last."""
    bands, cur = [], img
    for _ in range(levels):
        down = cv2.pyrDown(cur)
        bands.append(cur - cv2.pyrUp(down, dstsize=(cur.shape[1], cur.shape[0])))
        cur = down
    bands.append(cur)
    return bands


def _collapse(bands: list[np.ndarray]) -> np.ndarray:
    cur = bands[-1]
    for band in reversed(bands[:-1]):
        cur = cv2.pyrUp(cur, dstsize=(band.shape[1], band.shape[0])) + band
    return cur


def band_alphas(alpha: float, levels: int, cutoff: float) -> list[float]:
    """Amplification per pyramid level (finest first, residual last): ``min(α, (1+α)·2^(ℓ+2)/cutoff − 1)``, ≥ 0."""
    return [max(0.0, min(alpha, (1 + alpha) * 2.0 ** (lv + 2) / cutoff - 1)) for lv in range(levels + 1)]


def magnify(frames, fps: float, alpha: float = 10.0, low_hz: float = 0.5, high_hz: float = 5.0, levels: int = 4,
            cutoff: float = 16.0) -> np.ndarray:
    """Linear Eulerian video magnification of a uint8 clip ``(T, H, W[, C])``; uint8 out, same shape."""
    arr = _clip(frames, 2, "magnify")
    if arr.dtype != np.uint8:
        raise InputError(f"magnify takes a uint8 clip, got {arr.dtype}")
    if not fps > 0:
        raise InputError(f"magnify needs the clip's frame rate (fps > 0), got {fps}")
    if not 0 <= low_hz < high_hz:
        raise InputError(f"the pass band must satisfy 0 <= low_hz < high_hz, got {low_hz} … {high_hz} Hz")
    if low_hz >= fps / 2:
        raise InputError(f"the pass band {low_hz} … {high_hz} Hz lies above the Nyquist frequency of a {fps:g} fps "
                         f"clip ({fps / 2:g} Hz): lower it")
    if alpha < 0 or cutoff <= 0:
        raise InputError(f"magnify needs alpha >= 0 and cutoff > 0, got alpha={alpha}, cutoff={cutoff}")
    h, w = arr.shape[1:3]
    most = max(0, int(np.floor(np.log2(max(1, min(h, w) / 4)))))
    if not 0 <= levels <= most:
        raise InputError(f"a {w}x{h} clip allows 0 to {most} pyramid levels, got {levels}")
    T = len(arr)
    pyramids = [_pyramid(f.astype(np.float32), levels) for f in arr]
    freqs = np.fft.rfftfreq(T, d=1.0 / fps)
    keep = ((freqs >= low_hz) & (freqs <= high_hz)).astype(np.float32)
    keep = keep.reshape((-1,) + (1,) * (arr.ndim - 1))
    alphas = band_alphas(alpha, levels, cutoff)
    out_bands = []
    for lv, a in enumerate(alphas):
        stack = np.stack([p[lv] for p in pyramids])
        if a > 0:
            passed = np.fft.irfft(np.fft.rfft(stack, axis=0) * keep, n=T, axis=0).astype(np.float32)
            stack = stack + a * passed
        out_bands.append(stack)
    out = np.stack([_collapse([b[t] for b in out_bands]) for t in range(T)])
    return _to_dtype(out.reshape(arr.shape), np.uint8)


# ---------------------------------------------------------------- magnification with recorded parameters


def _magnify_with(arr: np.ndarray, fps: float | None, params: dict) -> np.ndarray:
    """:func:`magnify` with recorded parameters (``alpha, low_hz, high_hz, levels[, cutoff]``), checked."""
    if not fps:
        raise InputError("magnification needs the clip's frame rate; give fps (the dataset or the video's)")
    unknown = sorted(set(params) - {"alpha", "low_hz", "high_hz", "levels", "cutoff"})
    if unknown:
        raise InputError(f"unknown magnification parameter(s) {unknown}: known are alpha, low_hz, high_hz, "
                         f"levels, cutoff")
    return magnify(arr, fps, **params)
