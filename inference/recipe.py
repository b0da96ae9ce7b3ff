"""Flow-image recipes: how a package's onset → apex flow images were made, so that serving makes them the same way.

A :class:`FlowRecipe` says, for one flow-image model:

- the **face window**, relative to the landmarks of the aligned face (:mod:`inference.face`): its width in
  inter-ocular distances, its height in eye-line-to-mouth-line distances ("drops"), and its vertical place (``top``:
  how many drops its top edge lies above the eye line); horizontally it is centred on the facial midline;
- the image **size** (the window is squashed to ``size × size``: a window taller than wide is squeezed sideways,
  ``u`` scaled by ``size / window width``, ``v`` by ``size / window height``);
- the **flow method** and its parameters (a row of :data:`inference.motion.FLOW_METHODS`);
- the **scaling** (:class:`inference.motion.FlowScaling`; the published sets: min-max per image and per channel);
- the **channel order** of the stored image (names from ``u``, ``v``, ``strain``): :meth:`FlowRecipe.image` returns
  the image in this order. The one rule between a recipe and a graph: the input row's builder
  (``inference.inputs._flow_image_as``) reorders the recipe's image from this order to the row's channels exactly
  once (nothing to do when they agree: ``megc2019-composite`` is strain, v, u, as is the ``flow_image_bgr`` row the
  converted STSTNet folds take);
- ``context``: the flow is computed on a region *larger* than the window (the window grown by ``context`` of its
  width and height on every side, kept inside the aligned crop) and then cut to the window, so that the flow's
  border artefacts — the extreme values a solver produces where the image ends — fall outside the window and do not
  dominate the min-max scaling;
- ``strain_at``: where the optical strain is taken: ``"size"`` (of the flow after it is cut and resized to
  ``size``², derivatives on the final grid, as the published sets compute it), or ``"crop"`` (at the aligned crop's
  resolution, then resized with pixel-area averaging);
- ``crop_margin``: the margin of the aligned face crop the recipe reads (``CropSettings.margin``), which fixes how
  many crop pixels one face unit is.

Where the window lies in the aligned crop: the aligner puts the eye line level, the facial midline at ``x = S/2``,
and the point half-way from the eye line to the mouth line at the crop's centre, with a face scale
``f = (inter-ocular distance + drop) / 2`` of ``S / (CROP_EXTENT · (1 + 2 · margin))`` pixels
(:func:`inference.face.crop_matrix`). :meth:`FlowRecipe.window` places the window from the crop's own landmarks when
they are given, else from that canonical geometry (inter-ocular distance = drop = ``f``).

Named recipes (:data:`FLOW_RECIPES`): ``"megc2019-composite"``, the window, size, scaling and channel order of the
MEGC2019 composite flow-image set that STSTNet and HTNet publish (``STSNet_whole_norm_u_v_os``), measured on its
images (see the README). A package records its recipe in ``input.motion["recipe"]`` (:meth:`FlowRecipe.to_dict`);
``inference.inputs.build_input`` makes a flow image with it when it is there. numpy and OpenCV only.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

import cv2
import numpy as np

from .errors import InputError
from .face import CROP_CENTRE, CROP_EXTENT
from .motion import CHANNELS, FlowScaling, flow, flow_params, strain

STRAIN_AT = ("size", "crop")


@dataclass(frozen=True)
class FlowRecipe:
    """How one flow image is made from an aligned onset and apex frame (see the module docstring)."""

    name: str = "custom"
    width: float = 2.0  # window width, in inter-ocular distances
    height: float = 2.0  # window height, in eye-line-to-mouth-line distances (drops)
    top: float = 0.5  # the window's top edge: this many drops above the eye line
    size: int = 28
    method: str = "tvl1"
    params: dict = field(default_factory=dict)  # the method's parameters (OpenCV's defaults filled in)
    scaling: dict = field(default_factory=lambda: FlowScaling("minmax").to_dict())
    channels: tuple[str, str, str] = CHANNELS  # the stored image's channel order
    context: float = 0.25  # the flow region: the window grown by this fraction of its sides on every side
    strain_at: str = "size"
    crop_margin: float = 0.1  # the aligned face crop's margin (CropSettings.margin) the recipe reads
    source: str = ""  # where the recipe comes from, in words

    def __post_init__(self):
        if not (self.width > 0 and self.height > 0):
            raise InputError(f"flow recipe {self.name!r}: the window's width and height must be positive, got "
                             f"{self.width} × {self.height}")
        if int(self.size) < 2:
            raise InputError(f"flow recipe {self.name!r}: size must be at least 2 pixels, got {self.size}")
        if sorted(self.channels) != sorted(CHANNELS):
            raise InputError(f"flow recipe {self.name!r}: channels must order {', '.join(CHANNELS)}, got "
                             f"{list(self.channels)}")
        if not 0 <= self.context <= 2:
            raise InputError(f"flow recipe {self.name!r}: context must be between 0 and 2, got {self.context}")
        if self.strain_at not in STRAIN_AT:
            raise InputError(f"flow recipe {self.name!r}: strain_at must be one of {', '.join(STRAIN_AT)}, got "
                             f"{self.strain_at!r}")
        object.__setattr__(self, "params", flow_params(self.method, self.params))
        object.__setattr__(self, "method", self.params["method"])
        object.__setattr__(self, "channels", tuple(self.channels))
        FlowScaling.from_dict(self.scaling)  # checked now

    # ------------------------------------------------------------ plain values
    def to_dict(self) -> dict:
        d = asdict(self)
        d["channels"] = list(self.channels)
        return d

    @classmethod
    def from_dict(cls, d) -> FlowRecipe:
        if isinstance(d, str):
            return recipe(d)
        if not isinstance(d, dict):
            raise InputError(f"a flow recipe must be a dict or a recipe name, got {d!r}")
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(d) - known)
        if unknown:
            raise InputError(f"flow recipe: unknown field(s) {unknown}; known are {sorted(known)}")
        return cls(**{k: (tuple(v) if k == "channels" else v) for k, v in d.items()})

    @property
    def flow_scaling(self) -> FlowScaling:
        return FlowScaling.from_dict(self.scaling)

    # ------------------------------------------------------------ geometry
    def landmarks(self, crop_size: int) -> np.ndarray:
        """The canonical landmarks ``(5, 2)`` of an aligned crop of side ``crop_size`` at this recipe's margin
        (inter-ocular distance = drop = the face scale; eyes and mouth corners symmetric about the midline)."""
        k = crop_size / (CROP_EXTENT * (1 + 2 * self.crop_margin))  # crop pixels per face unit
        c = (crop_size - 1) / 2
        eye_y, mouth_y = c - CROP_CENTRE * k, c + (1 - CROP_CENTRE) * k
        return np.array([[c - k / 2, eye_y], [c + k / 2, eye_y], [c, (eye_y + mouth_y) / 2],
                         [c - 0.4 * k, mouth_y], [c + 0.4 * k, mouth_y]], np.float64)

    def window(self, crop_size: int, landmarks=None) -> tuple[float, float, float, float]:
        """The window ``(x0, y0, x1, y1)`` in crop pixel-edge coordinates (may reach outside the crop), from the
        aligned crop's landmarks ``(5, 2)`` (eye left, eye right, nose, mouth left, mouth right; crop pixels) or
        the canonical ones."""
        lm = self.landmarks(crop_size) if landmarks is None else np.asarray(landmarks, np.float64)
        if lm.shape != (5, 2):
            raise InputError(f"landmarks must be (5, 2), got {lm.shape}")
        eye_y = (lm[0, 1] + lm[1, 1]) / 2
        iod = abs(lm[1, 0] - lm[0, 0])
        drop = (lm[3, 1] + lm[4, 1]) / 2 - eye_y
        if iod <= 0 or drop <= 0:
            raise InputError("the landmarks are degenerate (eyes on one column, or the mouth not below the eyes)")
        mid = ((lm[0, 0] + lm[1, 0]) / 2 + (lm[3, 0] + lm[4, 0]) / 2) / 2 + 0.5  # pixel index → edge coordinate
        y0 = eye_y + 0.5 - self.top * drop
        return mid - self.width * iod / 2, y0, mid + self.width * iod / 2, y0 + self.height * drop

    # ------------------------------------------------------------ the image
    def image(self, onset_frame, apex_frame, landmarks=None) -> np.ndarray:
        """Onset → apex as the ``(size, size, 3)`` uint8 image this recipe describes, from two aligned frames
        ``(S, S[, 3])`` (the aligned crop at ``crop_margin``)."""
        a, b = np.asarray(onset_frame), np.asarray(apex_frame)
        if a.shape != b.shape or a.ndim not in (2, 3) or a.shape[0] != a.shape[1]:
            raise InputError(f"a flow recipe reads two aligned square frames of one size, got {a.shape} and "
                             f"{b.shape}")
        s = a.shape[0]
        x0, y0, x1, y1 = self.window(s, landmarks)
        gx, gy = self.context * (x1 - x0), self.context * (y1 - y0)
        # the flow region: the window grown by the context, whole pixels, kept inside the crop
        r0x, r0y = max(0, int(np.floor(x0 - gx))), max(0, int(np.floor(y0 - gy)))
        r1x, r1y = min(s, int(np.ceil(x1 + gx))), min(s, int(np.ceil(y1 + gy)))
        if r1x - r0x < 4 or r1y - r0y < 4:
            raise InputError(f"flow recipe {self.name!r}: its window falls outside the {s}px aligned crop")
        uv = flow(a[r0y:r1y, r0x:r1x], b[r0y:r1y, r0x:r1x], self.method, self.params)
        size = int(self.size)
        ww, wh = x1 - x0, y1 - y0
        # cut the window out of the region's flow and squash it to size², sampling the centres of the output pixels
        sx, sy = ww / size, wh / size
        m = np.array([[sx, 0, x0 - r0x + sx / 2 - 0.5], [0, sy, y0 - r0y + sy / 2 - 0.5]], np.float64)
        src = uv
        if min(sx, sy) > 1:  # shrinking: average over the source pixels first (pixel-area, as INTER_AREA)
            src = cv2.GaussianBlur(uv, (0, 0), sigmaX=max((sx - 1) / 2, 1e-3), sigmaY=max((sy - 1) / 2, 1e-3))
        win = cv2.warpAffine(src, m, (size, size), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                             borderMode=cv2.BORDER_REPLICATE)
        win = (win * np.array([1 / sx, 1 / sy], np.float32)).astype(np.float32)
        if self.strain_at == "size":
            st = strain(win)
        else:
            full = strain(uv)
            if min(sx, sy) > 1:
                full = cv2.GaussianBlur(full, (0, 0), sigmaX=max((sx - 1) / 2, 1e-3), sigmaY=max((sy - 1) / 2, 1e-3))
            st = cv2.warpAffine(full, m, (size, size), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                borderMode=cv2.BORDER_REPLICATE)
        img = self.flow_scaling.encode(win, st)  # channels u, v, strain
        return np.ascontiguousarray(img[..., [CHANNELS.index(c) for c in self.channels]])


# The MEGC2019 composite flow-image set as STSTNet / HTNet publish it (STSNet_whole_norm_u_v_os): a tight face window,
# taller than wide, squashed to 28 × 28; min-max per image and per channel; stored u, v, strain in R, G, B, so that
# cv2.imread (the array the published models were fed) holds strain, v, u. The window puts the eyes on row 6.5 of 28,
# 14.5 px apart, the mouth line on row 19.3: eye rows and spacing measured on the set's mean strain (the eye
# hot-spots), the eye-to-mouth drop (0.88 inter-ocular distances) on its apex frames with this project's landmark
# stage; see the README ("Flow-image recipes").
MEGC2019_COMPOSITE = FlowRecipe(
    name="megc2019-composite", width=1.93, height=2.19, top=0.51, size=28, method="tvl1",
    scaling=FlowScaling("minmax").to_dict(), channels=("strain", "v", "u"), context=0.25, strain_at="size",
    crop_margin=0.25,
    source="measured on the MEGC2019 composite flow-image set published with STSTNet/HTNet "
           "(STSNet_whole_norm_u_v_os): eyes, nose tip and mouth placed as in its images")

FLOW_RECIPES: dict[str, FlowRecipe] = {r.name: r for r in (MEGC2019_COMPOSITE,)}


def recipe(name: str) -> FlowRecipe:
    """The named recipe; an ``InputError`` naming the known ones."""
    if name not in FLOW_RECIPES:
        raise InputError(f"unknown flow recipe {name!r}: use one of {', '.join(FLOW_RECIPES)}")
    return FLOW_RECIPES[name]


def with_crop_margin(r: FlowRecipe, margin: float) -> FlowRecipe:
    """``r`` for aligned crops of another margin (the window stays where it is on the face)."""
    return replace(r, crop_margin=float(margin))
