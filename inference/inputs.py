"""Input kinds: one table, one row per kind of network input, and the preprocessing a model's input goes through.

Every model is trained on, exported for and served one *input kind*: what its uint8 ``(T, S, S, 3)`` clips hold,
made from aligned face frames (``inference.face``). The kinds are the rows of :data:`KINDS` (:class:`InputKind`);
everything that differs between kinds is read from its row, nowhere else:

- its name (in ``cache.json``, ``data.inputs``, ``--inputs``) and its name in a package's ``config.json``;
- its three channels, by name: which one holds ``u``, ``v`` and the optical strain (a mirrored view negates ``u``
  about its zero; a rotation turns ``(u, v)``);
- whether its frames may be time-normalised (TIM) or motion-magnified before the flow;
- the function that builds it from aligned frames and the recorded recipe (:func:`build_input`), and the recipe a
  new cache of it records (``training.prepare``);
- its default normalisation (None: the backbone's) and its zero-motion rule (:meth:`InputKind.zeros`): constant for
  the "fixed" scaling and for grey levels, measured on each image for "minmax" (published) flow images;
- the words that describe it to a user (the model summary, the demo's caption).

A new kind is one new row: :func:`register` it (a test registers one in its own module and takes it through
train → export → serve).

:class:`Preprocessing` is what one model does to its stored uint8 clips before the backbone — resize to the network's
size, normalise (flow: centred on its zero motion) — built from the kind's row, the recipe and the normalisation the
model records (:meth:`Preprocessing.of`). Training's evaluation (``training.data.network_input``), the export graph
(``export.package.PackagedModel``) and the served package (``ModelPackage.preprocessing``) all read this one
description. numpy and OpenCV only (the runtime imports this module).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from .errors import InputError
from .motion import (
    CHANNELS,
    FIXED,
    FLOW_METHODS,
    METHODS,
    FlowScaling,
    _clip,
    _magnify_with,
    central,
    estimate_apex,
    flow_clip,
    flow_image,
    flow_params,
    grey_flow_clip,
    tim,
)

__all__ = ["FLOW_METHODS", "METHODS", "KINDS", "InputKind", "Preprocessing", "register", "kind", "names",
           "build_input", "recipe_inputs", "reorder", "strain_agreement", "FLOW_NORMALISATION",
           "GREY_FLOW_NORMALISATION", "RAW_NORMALISATION", "PUBLISHED_FLOW_IMAGE"]

RGB = ("R", "G", "B")

# Flow inputs: per clip (and frame), each channel minus its stored zero-motion value, over 0.5 (0–1 units), so zero
# motion is exactly 0 and a mirror negates u without an offset. "mean" is the zero of "fixed" caches ([128, 128, 0]
# / 255); "centre": "zero" says that the zero of each clip is used (measured on each image for min-max sets).
FLOW_NORMALISATION = {"mean": [128 / 255, 128 / 255, 0.0], "std": [0.5, 0.5, 0.5], "pixel_scale": 1.0,
                      "source": "flow: centred on the stored zero-motion values", "centre": "zero"}
# grey + flow clips (grey, u, v): the same, the grey level centred on mid-grey (128) as u and v on zero motion
GREY_FLOW_NORMALISATION = {**FLOW_NORMALISATION, "mean": [128 / 255] * 3,
                           "source": "grey, u, v: centred on mid-grey and on the stored zero-motion values"}

# Raw pixels: the uint8 values as float 0–255, nothing subtracted or divided — how published models were fed that
# read ``cv2.imread`` arrays as they come (STSTNet's authors: ``(x01 · 255 − 0) / 1``).
RAW_NORMALISATION = {"mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0], "pixel_scale": 255.0,
                     "source": "raw 0–255 pixel values, as the published model was fed (no scaling, no centring)"}
# The published MEGC2019 composite flow-image set (HTNet's STSNet_whole_norm_u_v_os) stores u, v, strain in a PNG's
# R, G, B; OpenCV returns B, G, R: the row of this name says so (its channels), and the set's reader and the models
# converted from its authors' weights read it from there. Served from a video with a flow-image recipe (the converted
# packages: ``megc2019-composite``, whose image is already strain, v, u), the recipe's image is reordered to this
# row's order once, by the row's builder (``_flow_image_as``) — for that recipe, not at all.
PUBLISHED_FLOW_IMAGE = "flow_image_bgr"


@dataclass(frozen=True)
class InputKind:
    """One row of the table of input kinds (see the module docstring)."""

    name: str  # cache.json "inputs.kind", data.inputs, prepare --inputs
    channels: tuple[str, str, str]  # what each stored channel holds: "u", "v", "strain", "grey", "R", "G", "B"
    build: Callable  # (frames (T, S, S, 3) uint8 checked, recipe dict, fps, apex) -> (input (T', H, W, 3), apex)
    recipe: Callable  # (prepare's options dict, crop size, apex source) -> the recipe cache.json records
    words: str  # "on aligned face clips": how the model summary says what it was trained on
    shows: str | None = None  # the demo's caption for this input beside the face (None: not shown)
    package_name: str | None = None  # its name in a package's config.json (None: ``name``)
    tim: bool = False  # its frames may first be normalised to ``recipe["tim"]`` frames by TIM
    magnify: bool = False  # its frames may first be motion-magnified (``recipe["magnify"]``)
    flow: bool = False  # made from optical flow: ``recipe["method"]`` names a row of FLOW_METHODS
    single_frame: bool = False  # one frame per clip, onset → apex (train.n_frames must be 1; the apex is recorded)
    fps: bool = False  # its builder needs the clip's frame rate
    least_frames: int = 2  # the fewest aligned frames it is built from
    zero: object = None  # zero-motion rule: None (no motion), "scaling" (the recipe's FlowScaling), or 3 values 0–255
    normalisation: dict | None = None  # default normalisation (None: the backbone's own)
    tags: tuple[str, ...] = ()  # Hub tags of a package of this kind

    def __post_init__(self):
        if len(self.channels) != 3:
            raise ValueError(f"input kind {self.name!r}: three channels, got {self.channels}")
        if ("u" in self.channels) != ("v" in self.channels):
            raise ValueError(f"input kind {self.name!r}: u and v come together, got {self.channels}")

    # ------------------------------------------------------------ derived from the row
    @property
    def package(self) -> str:
        """The kind's name in a package's config.json (``rgb`` is ``rgb_clip`` there)."""
        return self.package_name or self.name

    @property
    def u(self) -> int | None:
        """The channel that holds ``u`` (horizontal motion), or None."""
        return self.channels.index("u") if "u" in self.channels else None

    @property
    def uv(self) -> tuple[int, int] | None:
        """The channels of ``u`` and ``v``, or None for inputs without motion vectors."""
        return (self.channels.index("u"), self.channels.index("v")) if "u" in self.channels else None

    @property
    def strain(self) -> int | None:
        return self.channels.index("strain") if "strain" in self.channels else None

    @property
    def vectors(self) -> bool:
        """Whether the clips hold motion vectors, which mirrors and rotations treat as vectors."""
        return self.uv is not None

    @property
    def motion(self) -> bool:
        """Whether a package records how the input is made (a recipe): every kind but plain RGB frames."""
        return self.name != "rgb"

    @property
    def color(self) -> str:
        """The package's ``input.color``: "RGB", or the channel names ("u,v,strain", "grey,u,v")."""
        return "RGB" if self.channels == RGB else ",".join(self.channels)

    # ------------------------------------------------------------ the zero-motion rule
    def zero_values(self, recipe: dict | None) -> np.ndarray | None:
        """Zero motion per channel ``(3,)`` (0–255) when it is known ahead (fixed scaling, grey levels); None when it
        is measured on each image ("minmax") or the kind holds no motion."""
        if self.zero is None:
            return None
        if self.zero != "scaling":
            return np.asarray(self.zero, np.float32)
        scaling = _scaling(recipe)
        if scaling.mode != "fixed":
            return None
        out = np.zeros(3, np.float32)
        for name, value in zip(CHANNELS, scaling.zero()):
            out[self.channels.index(name)] = value
        return out

    def zero_region(self, recipe: dict | None) -> float | None:
        """The central fraction each side where a "minmax" flow image's zero is measured; None otherwise."""
        if self.zero != "scaling":
            return None
        scaling = _scaling(recipe)
        return None if scaling.mode == "fixed" else scaling.zero_region

    def zeros(self, recipe: dict | None, clips) -> np.ndarray | None:
        """Stored zero motion of ``clips`` ``(..., H, W, 3)``: ``(...) + (3,)`` float32, or None (no motion).
        Known ahead: broadcast; "minmax": ``u`` and ``v`` their median over the central region, strain its minimum
        (:meth:`inference.motion.FlowScaling.zero`, at this row's channels)."""
        if self.zero is None:
            return None
        clips = np.asarray(clips)
        if clips.ndim < 3 or clips.shape[-1] != 3:
            raise InputError(f"{self.name} inputs must be (..., H, W, 3), got shape {clips.shape}")
        known = self.zero_values(recipe)
        if known is not None:
            return np.broadcast_to(known, clips.shape[:-3] + (3,)).copy()
        # the scaling's own measurement, on the channels in its order, handed back in this row's
        measured = _scaling(recipe).zero(reorder(clips, self.channels, CHANNELS))
        return reorder(measured[..., None, None, :], CHANNELS, self.channels)[..., 0, 0, :]

    # ------------------------------------------------------------ recipes
    def check(self, recipe: dict) -> None:
        """An ``InputError`` when ``recipe`` (a cache's or a package's ``inputs``) cannot be served as recorded:
        an unknown scaling or flow method / parameters."""
        if self.zero == "scaling":
            if not recipe.get("scaling"):
                raise InputError(f"a {self.name} input records its flow scaling; the field 'scaling' is missing")
            _scaling(recipe)
        if self.flow:
            flow_params(recipe.get("method", "tvl1"), recipe.get("params"))
        if recipe.get("recipe"):
            if not self.single_frame:
                raise InputError(f"a flow-image recipe makes onset → apex images; a {self.name} input cannot "
                                 f"carry one")
            from .recipe import FlowRecipe

            FlowRecipe.from_dict(recipe["recipe"])

    def computable(self, recipe: dict) -> bool:
        """Whether this project can make the input as ``recipe`` records it (a published flow-image set's method,
        "published", it cannot)."""
        if not self.flow:
            return True
        try:
            flow_params(recipe.get("method", "tvl1"), recipe.get("params"))
        except InputError:
            return False
        return True


def _scaling(recipe: dict | None) -> FlowScaling:
    scaling = (recipe or {}).get("scaling")
    return FlowScaling.from_dict(scaling) if scaling else FIXED


# ---------------------------------------------------------------- builders and recipes of today's kinds


def _magnification(o: dict) -> dict:
    band = o.get("band") or (0.5, 5.0)
    return {"alpha": o.get("alpha", 10.0), "low_hz": band[0], "high_hz": band[1], "levels": o.get("levels", 4)}


def _flow_recipe(name: str, o: dict) -> dict:
    method = o.get("method", "tvl1")
    return {"kind": name, "method": method, "params": flow_params(method),
            "scaling": FlowScaling("fixed", o.get("gain", 16.0), o.get("strain_gain", 512.0)).to_dict(),
            **({"magnify": _magnification(o)} if o.get("magnify_first") else {})}


def _build_rgb(arr, recipe, fps, apex):
    return arr, None


def _build_magnified(arr, recipe, fps, apex):
    return _magnify_with(arr, fps, dict(recipe.get("params") or {})), None


def _flow_image_as(channels: tuple[str, ...], arr, recipe, apex):
    """The onset → apex flow image ``(1, S, S, 3)`` with its channels holding ``channels`` (the row's), and the apex.

    The one rule for the channel order (applied exactly once, here): a flow-image recipe
    (:class:`inference.recipe.FlowRecipe`, ``recipe["recipe"]``) makes its image in *its* ``channels`` order (the
    stored order of the set it describes: ``megc2019-composite`` strain, v, u); without one,
    :func:`inference.motion.flow_image` makes u, v, strain. That image is then reordered once, from its own order to
    the row's: nothing when they are the same (a ``flow_image_bgr`` row with the composite recipe feeds the recipe's
    image as it comes)."""
    if apex is None:
        apex = estimate_apex(arr)
    elif not 0 <= apex < len(arr):
        raise InputError(f"apex {apex} is outside the clip's {len(arr)} frames")
    if recipe.get("recipe"):  # a flow-image recipe (inference.recipe): face window, size, context, channel order
        from .recipe import FlowRecipe

        r = FlowRecipe.from_dict(recipe["recipe"])
        image, made = r.image(arr[0], arr[apex]), r.channels
    else:
        image = flow_image(arr[0], arr[apex], recipe.get("size"), recipe.get("method", "tvl1"), _scaling(recipe),
                           dict(recipe.get("params") or {}))
        made = CHANNELS
    return reorder(image, made, tuple(channels))[None], apex


def _build_flow_image(arr, recipe, fps, apex):
    return _flow_image_as(KINDS["flow_image"].channels, arr, recipe, apex)


def _build_flow_clip(arr, recipe, fps, apex):
    return flow_clip(arr, recipe.get("method", "tvl1"), _scaling(recipe), dict(recipe.get("params") or {}),
                     recipe.get("reference", "consecutive")), None


def _build_grey_flow_clip(arr, recipe, fps, apex):
    return grey_flow_clip(arr, recipe.get("method", "tvl1"), _scaling(recipe), dict(recipe.get("params") or {})), None


GREY_FLOW_TIM = 17  # grey_flow_clip's default TIM length: 16 grey + flow frames (the late-fusion configs' n_frames)
_FLOW_SHOWN = "Motion input the model saw: optical flow of shown frames (hue: direction, brightness: magnitude), "

KINDS: dict[str, InputKind] = {}


def register(row: InputKind, replace: bool = False) -> InputKind:
    """Add a row to the table (``replace``: over a row of the same name). Returns the row."""
    if row.name in KINDS and not replace:
        raise ValueError(f"input kind {row.name!r} is already registered")
    taken = {k.package: k.name for k in KINDS.values() if k.name != row.name}
    if row.package in taken:
        raise ValueError(f"input kind {row.name!r}: package name {row.package!r} is {taken[row.package]!r}'s")
    KINDS[row.name] = row
    return row


for _row in (
    InputKind("rgb", RGB, _build_rgb, lambda o, size, apex: {"kind": "rgb"}, "on aligned face clips",
              package_name="rgb_clip", least_frames=1),
    InputKind("flow_image", ("u", "v", "strain"), _build_flow_image,
              lambda o, size, apex: {**_flow_recipe("flow_image", o), "size": o.get("flow_size") or size,
                                     "apex": apex},
              "on onset → apex optical-flow images",
              shows="Motion input the model saw: onset → apex optical flow (hue: direction, brightness: magnitude), "
                    "optical strain below",
              magnify=True, flow=True, single_frame=True, zero="scaling", normalisation=FLOW_NORMALISATION,
              tags=("optical-flow",)),
    InputKind("flow_clip", ("u", "v", "strain"), _build_flow_clip,
              lambda o, size, apex: {**_flow_recipe("flow_clip", o), "reference": o.get("reference", "consecutive"),
                                     **({"tim": o["tim"]} if o.get("tim") else {})},
              "on optical-flow clips", shows=_FLOW_SHOWN + "optical strain below",
              tim=True, magnify=True, flow=True, zero="scaling", normalisation=FLOW_NORMALISATION,
              tags=("optical-flow",)),
    InputKind("magnified", RGB, _build_magnified,
              lambda o, size, apex: {"kind": "magnified", "method": "eulerian_linear", "params": _magnification(o)},
              "on motion-magnified face clips", shows="Motion input the model saw: the motion-magnified face",
              fps=True, tags=("motion-magnification",)),
    InputKind("grey_flow_clip", ("grey", "u", "v"), _build_grey_flow_clip,
              lambda o, size, apex: {**_flow_recipe("grey_flow_clip", o), "channels": ["grey", "u", "v"],
                                     "tim": o.get("tim") or GREY_FLOW_TIM},
              "on grey-level + optical-flow clips", shows=_FLOW_SHOWN + "their grey level below",
              tim=True, magnify=True, flow=True, zero=(128.0, 128.0, 128.0), normalisation=GREY_FLOW_NORMALISATION),
):
    register(_row)


def _build_flow_image_bgr(arr, recipe, fps, apex):
    # the channel rule of _flow_image_as: made in the recipe's order (or u, v, strain), reordered once to this row's
    return _flow_image_as(KINDS[PUBLISHED_FLOW_IMAGE].channels, arr, recipe, apex)


register(InputKind(
    PUBLISHED_FLOW_IMAGE, ("strain", "v", "u"), _build_flow_image_bgr,
    lambda o, size, apex: {**_flow_recipe(PUBLISHED_FLOW_IMAGE, o), "size": o.get("flow_size") or size, "apex": apex},
    "on onset → apex optical-flow images in the published set's order (OpenCV's B, G, R: strain, v, u)",
    shows="Motion input the model saw: onset → apex optical flow (hue: direction, brightness: magnitude), "
          "optical strain below",
    magnify=True, flow=True, single_frame=True, zero="scaling", normalisation=RAW_NORMALISATION,
    tags=("optical-flow",)))


def reorder(images, src: tuple[str, ...], dst: tuple[str, ...]) -> np.ndarray:
    """``images`` ``(..., 3)`` whose channels hold ``src`` (names, e.g. a row's ``channels``), with their channels
    moved to hold ``dst``."""
    if sorted(src) != sorted(dst):
        raise InputError(f"channels {', '.join(src)} cannot be reordered into {', '.join(dst)}")
    return np.ascontiguousarray(np.asarray(images)[..., [list(src).index(c) for c in dst]])


def strain_agreement(images, channels: tuple[str, ...] = ("u", "v", "strain")) -> float:
    """How much the channel named strain behaves like the optical strain of the ones named u and v: the median over
    ``images`` ``(N, H, W, 3)`` of the correlation between the strain recomputed from u, v
    (:func:`inference.motion.strain`, on the stored values) and the stored strain. On the published composite set
    read in its order: 0.85; with the channels reversed: -0.02."""
    from .motion import strain

    images = np.asarray(images, np.float32)
    u, v, s = (channels.index(c) for c in ("u", "v", "strain"))
    rs = []
    for im in images.reshape((-1,) + images.shape[-3:]):
        a, b = strain(np.stack([im[..., u], im[..., v]], -1)).ravel(), im[..., s].ravel()
        ok = a.std() > 0 and b.std() > 0
        rs.append(float(np.corrcoef(a, b)[0, 1]) if ok else 0.0)
    return float(np.median(rs)) if rs else float("nan")


def recipe_inputs(flow_recipe, kind_name: str | None = None) -> dict:
    """The ``inputs`` (a cache's, a package's ``input.motion``) of a flow image made by a flow-image recipe
    (:class:`inference.recipe.FlowRecipe`, or a named one such as ``"megc2019-composite"``): the recipe rides in
    ``"recipe"``, its method, parameters, scaling and size are repeated where every reader of a flow image looks.
    ``kind_name``: the single-frame flow row the image is fed as (default: the row whose channels are the recipe's —
    ``flow_image`` for u, v, strain, :data:`PUBLISHED_FLOW_IMAGE` for the composite set's strain, v, u). The
    recipe's image is reordered from its channel order to the row's exactly once, by the row's builder
    (:func:`_flow_image_as`)."""
    from .recipe import FlowRecipe

    r = flow_recipe if isinstance(flow_recipe, FlowRecipe) else FlowRecipe.from_dict(flow_recipe)
    if kind_name is None:
        kind_name = next((k.name for k in KINDS.values() if k.single_frame and k.flow and k.channels == r.channels),
                         "flow_image")
    row = kind(kind_name)
    if not (row.single_frame and row.flow):
        raise InputError(f"a flow-image recipe makes onset → apex images; a {row.name} input cannot carry one")
    return {"kind": row.name, "method": r.method, "params": dict(r.params), "scaling": dict(r.scaling),
            "size": int(r.size), "apex": "estimated", "recipe": r.to_dict()}


def names() -> tuple[str, ...]:
    """The registered kinds' names (cache.json, data.inputs, --inputs)."""
    return tuple(KINDS)


def kind(name: str, where: str = "") -> InputKind:
    """The row of ``name`` (a cache's name, or a package's: ``rgb_clip``); an ``InputError`` for an unknown one."""
    row = KINDS.get(name) or next((k for k in KINDS.values() if k.package == name), None)
    if row is None:
        raise InputError(f"{where + ': ' if where else ''}unknown input kind {name!r}: use one of "
                         f"{', '.join(KINDS)}")
    return row


def build_input(frames, inputs: dict | None = None, fps: float | None = None,
                apex: int | None = None) -> tuple[np.ndarray, int | None]:
    """An aligned clip ``(T, S, S, 3)`` uint8 as the input ``inputs`` describes (None: ``{"kind": "rgb"}``), and
    the apex used (flow images: ``apex`` when given, e.g. annotated, else :func:`inference.motion.estimate_apex`;
    None otherwise): the one path for training caches and for serving. The row's builder does the work; before it,
    ``magnify`` (kinds that allow it; magnification parameters ``alpha, low_hz, high_hz, levels[, cutoff]``)
    magnifies the frames at ``fps`` and ``tim`` (kinds that allow it) brings them to ``tim`` frames by TIM."""
    inputs = dict(inputs or {"kind": "rgb"})
    row = kind(inputs.get("kind", "rgb"))
    arr = _clip(frames, row.least_frames, f"a {row.name} input")
    if inputs.get("magnify"):  # flow of magnified frames (the AU-fusion input): magnify at the clip's rate first
        if not row.magnify:
            raise InputError(f"magnify (magnification before the flow) applies to "
                             f"{', '.join(k for k, r in KINDS.items() if r.magnify)}, not {row.name}")
        arr = _magnify_with(arr, fps, dict(inputs["magnify"]))
    if inputs.get("tim"):
        if not row.tim:
            raise InputError(f"tim (TIM frame normalisation) applies to "
                             f"{', '.join(k for k, r in KINDS.items() if r.tim)}, not {row.name}")
        arr = tim(arr, int(inputs["tim"]))
    return row.build(arr, inputs, fps, apex)


# ---------------------------------------------------------------- one model's preprocessing


@dataclass(frozen=True)
class Preprocessing:
    """What a model does to its stored uint8 clips ``(N, T, S, S, 3)`` before the backbone: scale to 0–1, resize to
    ``size`` (training's bilinear resize), normalise ``(x · pixel_scale − mean) / std`` per channel — where the model
    is centred on zero motion (``centre``), ``mean`` is each clip's zero (``zero`` known ahead, or measured on each
    image over the central ``zero_region``) — and build the views (``uv``: a mirror negates u). One per model, from
    its kind's row (:meth:`of`)."""

    kind: str
    size: int  # the network's input side
    input_size: int  # the stored frames' side (the graph's input)
    mean: tuple[float, ...]
    std: tuple[float, ...]
    pixel_scale: float = 1.0
    centre: bool = False  # flow: centred on each clip's zero motion
    zero: tuple[float, ...] | None = None  # zero motion per channel (0–255), known ahead
    zero_region: float | None = None  # measured zero: the central fraction of each side (min-max flow)
    uv: tuple[int, int] | None = None  # channels of u and v
    strain: int | None = None  # channel of the optical strain (measured zero: its minimum)
    recipe: dict = field(default_factory=dict, compare=False)  # how the inputs are made (the row's recipe)

    @classmethod
    def of(cls, kind_name: str, recipe: dict | None, normalisation: dict, size: int,
           input_size: int) -> Preprocessing:
        row = kind(kind_name)
        recipe = dict(recipe or {"kind": row.name})
        try:
            mean, std = tuple(float(x) for x in normalisation["mean"]), tuple(float(x) for x in normalisation["std"])
        except (KeyError, TypeError, ValueError):
            raise InputError(f"a normalisation needs mean and std (3 values each), got {normalisation!r}") from None
        known = row.zero_values(recipe)
        return cls(kind=row.name, size=int(size), input_size=int(input_size), mean=mean, std=std,
                   pixel_scale=float(normalisation.get("pixel_scale", 1.0)),
                   centre=row.zero is not None and normalisation.get("centre") == "zero",
                   zero=None if known is None else tuple(float(x) for x in known),
                   zero_region=row.zero_region(recipe), uv=row.uv, strain=row.strain, recipe=recipe)

    @property
    def row(self) -> InputKind:
        return kind(self.kind)

    @property
    def measured(self) -> bool:
        """Whether the zero motion is measured on each image (centred min-max flow)."""
        return self.centre and self.zero_region is not None

    def region(self) -> tuple[slice, slice]:
        """Rows and columns of the stored frames where a min-max image's zero is measured."""
        return central((self.input_size, self.input_size), self.zero_region)

    def zeros(self, clips) -> np.ndarray | None:
        """The stored zero motion of ``clips`` ``(..., H, W, 3)`` (the row's rule), or None (no motion)."""
        return self.row.zeros(self.recipe, clips)

    def mean_for(self, zero=None):
        """The mean to subtract, in 0–1 units: each clip's zero ``zero`` ``(N, T, 3)`` (0–255, numpy or torch) over
        255 when the model is centred on zero motion, else the recorded ``mean``."""
        if self.centre and zero is not None:
            return zero / 255.0
        if self.centre and self.zero is not None:
            return tuple(z / 255.0 for z in self.zero)
        return self.mean
