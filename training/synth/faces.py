"""Synthetic micro- and macro-expressions on a real public-domain face.

The face is NASA's astronaut portrait (scikit-image's ``astronaut``, public domain). Every subject gets
its own identity — face geometry (width, height, eye spacing, a smooth random warp), skin tone, lighting
direction, head pose and placement — and every clip shows local, AU-like motion with an onset → apex →
offset envelope:

====================  ==========================================================
emotion               action units rendered (displacements at landmark-relative places)
====================  ==========================================================
happiness / positive  AU6 + AU12: cheeks up, lip corners pulled up and out
disgust               AU4 + AU9 (+AU10): brows down and together, nose wrinkled, upper lip up
surprise              AU1 + AU2 + AU5: brows up, eyes wider
anger                 AU4 + AU7 (+AU23): brows down and together, lids tightened, lips narrowed
contempt              AU14 on one side: a lip corner tightened and pulled back
repression            AU17 + AU24: chin up, lips pressed
sadness               AU1 + AU4 + AU15: inner brows up, lip corners down
fear                  AU1 + AU2 + AU4 + AU20: brows up and together, lips stretched sideways
others / other        one of AU7, AU10, AU17, AU43 (lids, upper lip, chin, eyes closing)
negative              one of disgust, anger, sadness, repression (SMIC's mixed class)
neutral               nothing moves
====================  ==========================================================

Micro-expressions move 1.5–3.5 px at the apex on a face about 170 px wide; macro-expressions 6–12 px.
Motion is **asymmetric**: one side of the image (chosen at random per clip and reported) moves fully,
the other at 10–50 % — so the Décalcomanie views carry different evidence. Head jitter (sub-pixel,
per frame), a slow drift and sensor noise are added, so the task is learnable but not trivial.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from .source import SynthClip, envelope

# The astronaut's landmarks in skimage.data.astronaut() (512×512), as inference.face finds them:
# eye_left, eye_right, nose, mouth_left, mouth_right (left/right as seen in the image).
BASE_LANDMARKS = np.array([[204.2, 100.5], [246.3, 102.9], [224.4, 128.5], [201.8, 139.3], [244.9, 141.7]])
BASE_IOD = float(np.linalg.norm(BASE_LANDMARKS[1] - BASE_LANDMARKS[0]))

# Action units as displacement bumps in face units (x: fraction of the inter-ocular distance from the midline,
# positive towards the image right; y: fraction of the inter-ocular distance below the eye line).
# Each entry: (x, y, dx, dy, sigma), displacement in units of the amplitude; mirrored for the other side.
_AU: dict[str, list[tuple[float, float, float, float, float]]] = {
    "AU1": [(0.18, -0.42, 0.0, -1.0, 0.16)],  # inner brow raiser
    "AU2": [(0.55, -0.40, 0.0, -1.0, 0.18)],  # outer brow raiser
    "AU4": [(0.22, -0.38, -0.7, 0.7, 0.18)],  # brow lowerer: down and together
    "AU5": [(0.50, -0.10, 0.0, -0.8, 0.10)],  # upper lid raiser
    "AU6": [(0.55, 0.45, 0.0, -0.7, 0.20)],  # cheek raiser
    "AU7": [(0.50, 0.10, 0.0, -0.8, 0.10)],  # lid tightener (lower lid up)
    "AU9": [(0.15, 0.35, 0.0, -0.9, 0.12)],  # nose wrinkler
    "AU10": [(0.15, 0.72, 0.0, -0.8, 0.13)],  # upper lip raiser
    "AU12": [(0.52, 0.95, 0.55, -0.8, 0.16)],  # lip corner puller
    "AU14": [(0.50, 0.95, -0.7, -0.2, 0.13)],  # dimpler
    "AU15": [(0.52, 0.97, 0.1, 1.0, 0.15)],  # lip corner depressor
    "AU17": [(0.0, 1.35, 0.0, -1.0, 0.22)],  # chin raiser
    "AU20": [(0.52, 0.97, 1.0, 0.1, 0.15)],  # lip stretcher
    "AU23": [(0.30, 0.95, -0.8, 0.0, 0.12)],  # lip tightener
    "AU24": [(0.0, 1.05, 0.0, -0.6, 0.18)],  # lip pressor
    "AU43": [(0.50, -0.05, 0.0, 1.0, 0.09)],  # eyes closing (upper lid down)
}

EMOTION_AUS: dict[str, list[list[str]]] = {  # alternatives; one is drawn per clip
    "happiness": [["AU6", "AU12"], ["AU12"]],
    "positive": [["AU6", "AU12"], ["AU12"]],
    "disgust": [["AU4", "AU9"], ["AU9", "AU10"], ["AU4", "AU9", "AU10"]],
    "surprise": [["AU1", "AU2", "AU5"], ["AU1", "AU2"]],
    "anger": [["AU4", "AU7"], ["AU4", "AU7", "AU23"]],
    "contempt": [["AU14"]],
    "repression": [["AU17", "AU24"], ["AU24"], ["AU14", "AU24"]],
    "sadness": [["AU1", "AU4", "AU15"], ["AU15", "AU17"]],
    "fear": [["AU1", "AU2", "AU4", "AU20"], ["AU1", "AU4", "AU20"]],
    "others": [["AU7"], ["AU10"], ["AU17"], ["AU43"]],
    "neutral": [[]],
}
EMOTION_AUS["other"] = EMOTION_AUS["others"]
EMOTION_AUS["negative"] = (EMOTION_AUS["disgust"] + EMOTION_AUS["anger"] + EMOTION_AUS["sadness"]
                           + EMOTION_AUS["repression"])
EMOTION_AUS["happy"] = EMOTION_AUS["happiness"]


def aus_for(emotion: str, rng: np.random.Generator) -> list[str]:
    options = EMOTION_AUS.get(emotion.strip().lower())
    if options is None:
        options = EMOTION_AUS["others"]
    return list(options[int(rng.integers(len(options)))])


@lru_cache(maxsize=1)
def base_face() -> np.ndarray:
    from skimage import data

    return data.astronaut()


@dataclass
class Identity:
    """One synthetic subject: a rendered still face and its landmarks in frame coordinates."""

    image: np.ndarray  # (H, W, 3) uint8, the neutral face in the frame
    landmarks: np.ndarray  # (5, 2) in the frame
    face_box: tuple[int, int, int, int]
    roll: float  # radians; the face's own in-plane rotation

    @property
    def iod(self) -> float:
        return float(np.linalg.norm(self.landmarks[1] - self.landmarks[0]))


def _smooth_field(shape: tuple[int, int], rng: np.random.Generator, amplitude: float, scale: float) -> np.ndarray:
    """A smooth random displacement field (H, W, 2): noise blurred to ``scale`` px, peak about ``amplitude``."""
    h, w = shape
    coarse = rng.normal(size=(max(2, int(h / scale) + 2), max(2, int(w / scale) + 2), 2)).astype(np.float32)
    field = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)
    peak = float(np.abs(field).max()) or 1.0
    return field * (amplitude / peak)


class FaceSource:
    """Renders synthetic clips for :mod:`training.synth` layouts (see the module docstring).

    ``frame_size`` is (height, width); ``face_fraction`` is the face width (cheek to cheek) as a fraction of
    the frame height. Identities are fixed by ``seed`` and the subject number.
    """

    def __init__(self, frame_size: tuple[int, int] = (480, 640), seed: int = 0, face_fraction: float = 0.36,
                 grey: bool = False):
        self.frame_size = (int(frame_size[0]), int(frame_size[1]))
        self.seed = int(seed)
        self.face_fraction = float(face_fraction)
        self.grey = bool(grey)
        self._identities: dict[int, Identity] = {}

    # ------------------------------------------------------------ subjects
    def identity(self, subject: int) -> Identity:
        if subject not in self._identities:
            self._identities[subject] = self._make_identity(subject)
        return self._identities[subject]

    def _make_identity(self, subject: int) -> Identity:
        rng = np.random.default_rng([self.seed, 7919, int(subject)])
        h, w = self.frame_size
        src = base_face().astype(np.float32)
        # skin tone and lighting: a per-subject colour gain and a left-right / top-bottom brightness slope
        gain = np.clip(1.0 + rng.normal(0, 0.1) + rng.normal(0, 0.035, 3) * [1.0, 0.7, 1.2], 0.7, 1.3)
        gain = gain.astype(np.float32)
        ys, xs = np.mgrid[0:512, 0:512].astype(np.float32)
        cx, cy = BASE_LANDMARKS[:, 0].mean(), BASE_LANDMARKS[:, 1].mean()
        face_mask = np.exp(-(((xs - cx) / 80.0) ** 2 + ((ys - cy) / 105.0) ** 2))[..., None]
        slope_x, slope_y = rng.uniform(-0.18, 0.18), rng.uniform(-0.1, 0.1)
        light = 1.0 + slope_x * (xs - cx) / 100.0 + slope_y * (ys - cy) / 100.0
        src = src * (1 + face_mask * (gain - 1)) * light[..., None]
        # geometry: face width/height and eye spacing about the midline, then a smooth random warp
        sx, sy = rng.uniform(0.9, 1.1), rng.uniform(0.92, 1.08)
        eye_spread = rng.uniform(-0.06, 0.06)
        roll = math.radians(rng.uniform(-6, 6))
        size = self.face_fraction * h / (2.2 * BASE_IOD)  # frame px per source px
        size *= rng.uniform(0.92, 1.08)
        centre = np.array([w / 2 + rng.uniform(-0.08, 0.08) * w, h / 2 + rng.uniform(-0.06, 0.04) * h])
        c, s = math.cos(roll), math.sin(roll)
        rot = np.array([[c, -s], [s, c]])
        lin = size * rot @ np.diag([sx, sy])
        t = centre - lin @ np.array([cx, cy])
        m = np.hstack([lin, t[:, None]])
        img = cv2.warpAffine(np.clip(src, 0, 255), m, (w, h), flags=cv2.INTER_AREA if size < 1 else cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_REFLECT)
        lm = BASE_LANDMARKS @ m[:, :2].T + m[:, 2]
        # eye spacing: push the eyes apart/together with a local warp, and a smooth identity warp overall
        iod = float(np.linalg.norm(lm[1] - lm[0]))
        field = _smooth_field((h, w), rng, amplitude=0.05 * iod, scale=0.8 * iod)
        for k, sign in ((0, -1), (1, 1)):
            d = np.array([sign * eye_spread * iod, 0.0])
            field += self._bump((h, w), lm[k], 0.35 * iod, d)
        img = self._remap(img, field)
        lm = lm + np.array([field[int(round(p[1])) % h, int(round(p[0])) % w] for p in lm])
        if self.grey:
            g = cv2.cvtColor(np.clip(img, 0, 255).astype(np.uint8), cv2.COLOR_RGB2GRAY)
            img = np.repeat(g[..., None], 3, axis=2)
        img = np.clip(img, 0, 255).astype(np.uint8)
        iod = float(np.linalg.norm(lm[1] - lm[0]))
        mid = (lm[0] + lm[1]) / 2
        half_w, top, bottom = 1.25 * iod, 1.0 * iod, 2.0 * iod
        box = (max(0, int(mid[0] - half_w)), max(0, int(mid[1] - top)),
               min(w, int(mid[0] + half_w)), min(h, int(mid[1] + bottom)))
        return Identity(image=img, landmarks=lm, face_box=box, roll=roll)

    @staticmethod
    def _bump(shape, centre, sigma, vector) -> np.ndarray:
        h, w = shape
        ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
        g = np.exp(-((xs - centre[0]) ** 2 + (ys - centre[1]) ** 2) / (2 * sigma * sigma)).astype(np.float32)
        return g[..., None] * np.asarray(vector, np.float32)

    @staticmethod
    def _remap(img: np.ndarray, field: np.ndarray) -> np.ndarray:
        """Move content by ``field`` (backward mapping: output(x) = input(x - field(x)))."""
        h, w = field.shape[:2]
        ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
        return cv2.remap(img, xs - field[..., 0], ys - field[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)

    # ------------------------------------------------------------ motion
    def _expression_field(self, ident: Identity, aus: list[str], amplitude: float, side: str,
                          weak: float) -> np.ndarray:
        """Displacement field at the apex (H, W, 2), local to the face, asymmetric by ``side``."""
        h, w = self.frame_size
        iod = ident.iod
        eye_mid = (ident.landmarks[0] + ident.landmarks[1]) / 2
        c, s = math.cos(ident.roll), math.sin(ident.roll)
        to_frame = np.array([[c, -s], [s, c]]) * iod  # face units → frame offsets
        # bumps only matter near the face: build the field on the face's bounding region
        x0, y0 = int(max(0, eye_mid[0] - 1.6 * iod)), int(max(0, eye_mid[1] - 1.2 * iod))
        x1, y1 = int(min(w, eye_mid[0] + 1.6 * iod)), int(min(h, eye_mid[1] + 2.2 * iod))
        field = np.zeros((h, w, 2), np.float32)
        ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        local = field[y0:y1, x0:x1]
        for au in aus:
            for (bx, by, dx, dy, sigma) in _AU[au]:
                for mirror in ((1.0,) if bx == 0 else (1.0, -1.0)):
                    pos = eye_mid + to_frame @ np.array([mirror * bx, by])
                    vec = (to_frame / iod) @ np.array([mirror * dx, dy])
                    # side "left": bumps on the image's left move fully, the others `weak` as much
                    on_left = mirror * bx < 0
                    strength = 1.0 if bx == 0 else (1.0 if on_left == (side == "left") else weak)
                    sig = sigma * iod
                    g = np.exp(-((xs - pos[0]) ** 2 + (ys - pos[1]) ** 2) / (2 * sig * sig))
                    local += (g * strength * amplitude)[..., None] * vec.astype(np.float32)
        if aus == ["AU14"]:  # contempt is unilateral: only the chosen side
            local[:] = np.where(((xs < eye_mid[0]) == (side == "left"))[..., None], local, 0)
        return field

    def _render(self, ident: Identity, apex_field: np.ndarray, amp: np.ndarray, rng: np.random.Generator,
                jitter: float, noise: float) -> np.ndarray:
        h, w = self.frame_size
        ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
        drift = rng.normal(0, 0.4, 2) / max(1, len(amp) - 1)
        frames = np.empty((len(amp), h, w, 3), np.uint8)
        base = ident.image
        bank = self._noise_bank(noise)
        for i, a in enumerate(amp):
            shake = (rng.normal(0, jitter, 2) + drift * i).astype(np.float32)
            a = np.float32(a)
            mx = xs - a * apex_field[..., 0] - shake[0]
            my = ys - a * apex_field[..., 1] - shake[1]
            f = cv2.remap(base, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT).astype(np.int16)
            grain = np.roll(bank[int(rng.integers(len(bank)))], int(rng.integers(h * w)) * 3)
            frames[i] = np.clip(f + grain, 0, 255).astype(np.uint8)
        if self.grey:
            frames[:] = frames.mean(axis=-1, keepdims=True).astype(np.uint8)
        return frames

    def _noise_bank(self, sigma: float) -> np.ndarray:
        """Sensor noise frames (int16), made once and reused at random offsets: drawing fresh Gaussian
        noise for every pixel of every frame would dominate the rendering time."""
        if getattr(self, "_bank", None) is None or self._bank_sigma != sigma:
            rng = np.random.default_rng([self.seed, 104729])
            h, w = self.frame_size
            self._bank = np.rint(rng.normal(0, sigma, (6, h, w, 3))).astype(np.int16)
            self._bank_sigma = sigma
        return self._bank

    def _expression(self, subject: int, emotion: str, n_frames: int, rng: np.random.Generator,
                    micro: bool) -> SynthClip:
        ident = self.identity(subject)
        onset, apex, offset, amp = envelope(n_frames, rng, micro=micro)
        aus = aus_for(emotion, rng)
        side = str(rng.choice(["left", "right"]))
        weak = float(rng.uniform(0.1, 0.5))
        scale = ident.iod / 60.0  # amplitudes are stated for a face with a 60 px inter-ocular distance
        amplitude = float(rng.uniform(1.5, 3.5) if micro else rng.uniform(6.0, 12.0)) * scale
        field = self._expression_field(ident, aus, amplitude, side, weak)
        frames = self._render(ident, field, amp, rng, jitter=0.15 * scale, noise=2.0)
        return SynthClip(frames, onset, apex, offset, emotion, side if aus else "none", face_box=ident.face_box,
                         aus=tuple(int(a[2:]) for a in aus))

    def micro(self, subject: int, emotion: str, n_frames: int, rng: np.random.Generator) -> SynthClip:
        return self._expression(subject, emotion, n_frames, rng, micro=True)

    def macro(self, subject: int, emotion: str, n_frames: int, rng: np.random.Generator) -> SynthClip:
        return self._expression(subject, emotion, n_frames, rng, micro=False)

    # ------------------------------------------------------------ actions (no face)
    def action(self, action: str, n_frames: int, rng: np.random.Generator) -> SynthClip:
        """A textured shape moving in a pattern fixed by the action's name, over a textured background."""
        h, w = self.frame_size
        digest = hashlib.sha256(action.encode()).digest()
        kind = digest[0] % 4  # 0 linear, 1 circular, 2 oscillating, 3 growing
        colour = np.array([digest[1], digest[2], digest[3]], np.float32)
        speed = 0.5 + digest[4] / 255.0
        onset, apex, offset, _ = envelope(n_frames, rng, micro=True)
        background = cv2.GaussianBlur(rng.uniform(40, 200, (h, w, 3)).astype(np.float32), (0, 0), 6)
        start = np.array([rng.uniform(0.25, 0.75) * w, rng.uniform(0.25, 0.75) * h])
        radius = 0.12 * min(h, w) * rng.uniform(0.8, 1.2)
        ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
        frames = np.empty((n_frames, h, w, 3), np.uint8)
        for i in range(n_frames):
            t = i / max(1, n_frames - 1)
            if kind == 0:
                pos, r = start + speed * t * np.array([0.3 * w, 0.05 * h]), radius
            elif kind == 1:
                pos = start + 0.15 * min(h, w) * np.array([math.cos(6.28 * speed * t), math.sin(6.28 * speed * t)])
                r = radius
            elif kind == 2:
                pos, r = start + np.array([0.0, 0.15 * h * math.sin(12.56 * speed * t)]), radius
            else:
                pos, r = start, radius * (0.6 + 0.8 * speed * t)
            mask = (((xs - pos[0]) ** 2 + (ys - pos[1]) ** 2) < r * r)[..., None]
            f = np.where(mask, colour, background) + rng.normal(0, 2.0, (h, w, 3))
            frames[i] = np.clip(f, 0, 255).astype(np.uint8)
        return SynthClip(frames, onset, apex, offset, action, "none", face_box=(0, 0, w, h))
