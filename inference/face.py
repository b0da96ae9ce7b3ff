"""Find the face in a clip and align it: one steady crop, eyes level, facial midline at the centre column.

Micro-expressions move a few pixels, so the crop must not add motion of its own. Running a detector on
every frame does exactly that (its landmarks wobble by pixels from frame to frame). Instead:

1. **find**: the full MTCNN (:mod:`inference.mtcnn`: facenet-pytorch's networks as ONNX, its cascade in NumPy)
   runs on a few frames (the first and the last by default),
   on copies no larger than 480 px, to see how many faces there are and where the largest one is. On the
   clip path the face track (:mod:`inference.track`) does this over the whole clip instead and hands the
   aligner one person's segment with its detections;
2. **refine**: on more keyframes, MTCNN's last stage (ONet) is run again on an *upright*, canonically
   placed 48×48 view of that face, taken from the full-resolution frame, and the result is fed back
   a few times. ONet is most accurate on an upright, well-centred face, and the loop makes the
   landmarks equivariant: shifting, rotating or scaling the clip moves them with the face;
3. **one transform**: if the keyframes agree (the face moves less than ``track_tolerance`` crop pixels
   across the clip) the median landmarks give one similarity transform for every frame; otherwise the
   landmarks are interpolated linearly in time between keyframes (a smooth track, reported as such), with
   more keyframes where the head moves unevenly.

The crop puts the eye line horizontal and the facial midline (midway between the eye centre and the
mouth centre, measured along the eye line) at ``x = S/2`` in edge coordinates, i.e. between columns
``S/2 - 1`` and ``S/2`` for even S: exactly where the Décalcomanie views split the face.

Coordinates are pixel-index coordinates (a pixel's centre is an integer), as in OpenCV and MTCNN.
"""

from __future__ import annotations

import math
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field

import numpy as np

from .errors import InputError

LANDMARKS = ("eye_left", "eye_right", "nose", "mouth_left", "mouth_right")  # left/right as seen in the image

# Canonical geometry of the output crop, in units of the face scale
# f = (inter-ocular distance + eye-line-to-mouth distance) / 2 (both ≈ f on a frontal face).
CROP_EXTENT = 2.5  # crop side = CROP_EXTENT * f * (1 + 2 * margin): brows to chin at margin 0
CROP_CENTRE = 0.5  # crop centre: this fraction of the way down from the eye line to the mouth line
# Where ONet expects the face in its 48x48 input: the square box MTCNN's earlier stages give an upright face.
ONET_EXTENT = 2.75
ONET_CENTRE = 0.38
ONET_SIZE = 48


@dataclass(frozen=True)
class CropSettings:
    """The face crop a model is trained and served with (recorded in meta.json and model configs)."""

    size: int = 112
    margin: float = 0.1

    def __post_init__(self):
        if not (16 <= int(self.size) <= 1024):
            raise InputError(f"crop size must be between 16 and 1024 pixels, got {self.size}")
        if not (-0.3 <= float(self.margin) <= 1.0):
            raise InputError(f"crop margin must be between -0.3 and 1.0 (a fraction of the face size), got "
                             f"{self.margin}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d.update(extent=CROP_EXTENT, centre=CROP_CENTRE, landmarks=list(LANDMARKS),
                 midline="mean of eye centre and mouth centre, along the eye line")
        return d


@dataclass
class AlignedClip:
    frames: np.ndarray  # (T, S, S, 3) uint8
    matrices: np.ndarray  # (T, 2, 3) float64: source pixel → crop pixel, per frame
    meta: dict = field(default_factory=dict)


# ---------------------------------------------------------------- geometry


def face_pose(landmarks: np.ndarray) -> tuple[float, np.ndarray, float, float, float]:
    """(angle, eye centre, midline offset, drop, face scale) of 5 landmarks ``(5, 2)``.

    ``angle`` is the eye line's angle in the image (radians); in the upright frame (rotated by -angle
    about the eye centre) the midline lies at ``x = midline offset`` and the mouth line at ``y = drop``.
    The face scale is the mean of the inter-ocular distance and the drop.
    """
    lm = np.asarray(landmarks, np.float64)
    eye_l, eye_r = lm[0], lm[1]
    mouth = (lm[3] + lm[4]) / 2
    eye = (eye_l + eye_r) / 2
    dx, dy = eye_r - eye_l
    angle = math.atan2(dy, dx)
    c, s = math.cos(angle), math.sin(angle)
    mx, my = mouth - eye
    up_x, up_y = c * mx + s * my, -s * mx + c * my  # mouth centre in the upright frame
    iod = math.hypot(dx, dy)
    scale = (iod + up_y) / 2
    if iod <= 0 or up_y <= 0.2 * iod:
        raise InputError("the face landmarks are degenerate (mouth not below the eyes); the face may be "
                         "seen from the side or upside down. Use a clip with a roughly frontal, upright face.")
    return angle, eye, up_x / 2, up_y, scale


def crop_matrix(landmarks: np.ndarray, out_size: int, extent: float, centre: float) -> np.ndarray:
    """2×3 similarity mapping source pixels to a ``out_size``² crop placed canonically on the face."""
    angle, eye, mid_x, drop, f = face_pose(landmarks)
    side = extent * f
    k = out_size / side
    c, s = math.cos(angle), math.sin(angle)
    rot = np.array([[c, s], [-s, c]])  # image → upright frame
    # crop x = k * (upright_x - mid_x) + (out-1)/2, crop y = k * (upright_y - centre*drop) + (out-1)/2
    lin = k * rot
    t = -lin @ eye - k * np.array([mid_x, centre * drop]) + (out_size - 1) / 2
    return np.hstack([lin, t[:, None]])


def output_crop_matrix(landmarks: np.ndarray, crop: CropSettings) -> np.ndarray:
    return crop_matrix(landmarks, crop.size, CROP_EXTENT * (1 + 2 * crop.margin), CROP_CENTRE)


def invert(m: np.ndarray) -> np.ndarray:
    lin_inv = np.linalg.inv(m[:, :2])
    return np.hstack([lin_inv, (-lin_inv @ m[:, 2])[:, None]])


def apply(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
    pts = np.asarray(pts, np.float64)
    return pts @ m[:, :2].T + m[:, 2]


def warp(frame: np.ndarray, m: np.ndarray, out_size: int) -> np.ndarray:
    """Sample ``frame`` at the crop given by ``m`` (bilinear), anti-aliased when the face shrinks.

    Only the region the crop covers is touched: it is low-pass filtered with a Gaussian of
    sigma = (shrink - 1) / 2 source pixels (scikit-image's anti-aliasing rule) and then sampled,
    so pixel centres land exactly where ``m`` puts them. Outside the frame, edge pixels repeat.
    """
    import cv2

    shrink = 1.0 / math.sqrt(abs(np.linalg.det(m[:, :2])))
    sigma = max(0.0, (shrink - 1.0) / 2.0)
    corners = np.array([[0, 0], [out_size - 1, 0], [0, out_size - 1], [out_size - 1, out_size - 1]], np.float64)
    src = apply(invert(m), corners)
    pad = int(math.ceil(3 * sigma)) + 2
    h, w = frame.shape[:2]
    x0 = min(max(int(math.floor(src[:, 0].min())) - pad, 0), w - 1)
    y0 = min(max(int(math.floor(src[:, 1].min())) - pad, 0), h - 1)
    x1 = max(min(int(math.ceil(src[:, 0].max())) + pad + 1, w), x0 + 1)
    y1 = max(min(int(math.ceil(src[:, 1].max())) + pad + 1, h), y0 + 1)
    roi = frame[y0:y1, x0:x1]
    if sigma > 0.05:
        roi = cv2.GaussianBlur(roi, (0, 0), sigma)
    shifted = np.hstack([m[:, :2], (m[:, 2] + m[:, :2] @ np.array([x0, y0], np.float64))[:, None]])
    return cv2.warpAffine(roi, shifted, (out_size, out_size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


# ---------------------------------------------------------------- detector


def _box_iou(a: np.ndarray, b: np.ndarray) -> float:
    x1, y1 = max(a[0], b[0]), max(a[1], b[1])
    x2, y2 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    area = lambda r: max(0.0, r[2] - r[0]) * max(0.0, r[3] - r[1])  # noqa: E731
    union = area(a) + area(b) - inter
    return inter / union if union > 0 else 0.0


def _spread(values: list[int], n: int) -> list[int]:
    return sorted({int(round(v)) for v in values if 0 <= v < n})


class FaceAligner:
    """MTCNN-based face alignment for whole clips.

    ``find_frames``: frames the full detector runs on; ``keyframes``: frames whose landmarks are refined
    (they include the find frames); ``min_face``: smallest face in pixels of the detection image
    (default: a tenth of its shorter side); ``track_tolerance``: how far (crop pixels) the face may move
    across the clip before a smooth per-frame track replaces the single transform.
    """

    DETECT_MAX_SIDE = 480  # the find stage only needs to locate the face; refine works at full resolution
    THRESHOLDS = (0.7, 0.8, 0.9)  # MTCNN's three stages; stricter than its defaults, fewer candidates to check
    FIND_FRAMES = 2  # default frames the full detector runs on (the first and the last)
    KEYFRAMES = 8  # default frames whose landmarks are refined

    def __init__(self, device: str = "cpu", find_frames: int = FIND_FRAMES, keyframes: int = KEYFRAMES,
                 refine_iters: int = 3, min_face: int | None = None, track_tolerance: float = 1.0,
                 min_probability: float = 0.9):
        self.device = device
        self.find_frames = max(1, int(find_frames))
        self.keyframes = max(self.find_frames, int(keyframes))
        self.refine_iters = int(refine_iters)
        self.min_face = min_face
        self.track_tolerance = float(track_tolerance)
        self.min_probability = float(min_probability)
        self._mtcnn = None

    def _detector(self):
        if self._mtcnn is None:
            from .mtcnn import MTCNN

            self._mtcnn = MTCNN(device=self.device, thresholds=self.THRESHOLDS)
        return self._mtcnn

    # -- stage 1: find
    def detect(self, frames: np.ndarray, max_side: int | None = None
               ) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray], float]:
        """Full MTCNN on a batch of frames (same size), on copies no larger than ``max_side`` (default
        ``DETECT_MAX_SIDE``). Returns boxes, probs, landmarks per frame (in the frames' own pixel coordinates) and
        the scale used for detection."""
        import cv2

        h, w = frames.shape[1:3]
        scale = min(1.0, (max_side or self.DETECT_MAX_SIDE) / max(h, w))
        if scale < 1.0:
            size = (max(1, round(w * scale)), max(1, round(h * scale)))
            small = np.stack([cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in frames])
            sx, sy = size[0] / w, size[1] / h
        else:
            small, sx, sy = frames, 1.0, 1.0
        min_face = self.min_face or max(20, round(0.1 * min(small.shape[1:3])))
        boxes, probs, points = self._detector().detect(np.ascontiguousarray(small), min_face)
        out_b, out_p, out_l = [], [], []
        for b, p, pts in zip(boxes, probs, points):
            b, p, pts = np.asarray(b, np.float64), np.asarray(p, np.float64), np.asarray(pts, np.float64)
            keep = p >= self.min_probability
            b, p, pts = b[keep], p[keep], pts[keep]
            b = b / [sx, sy, sx, sy]
            pts = pts / [sx, sy]
            out_b.append(b), out_p.append(p), out_l.append(pts)
        return out_b, out_p, out_l, min(sx, sy)

    def detect_padded(self, frames: np.ndarray, pad: float = 0.3, max_side: int | None = None):
        """:meth:`detect` on frames framed by a grey border (``pad`` × the longer side on each side)."""
        import cv2

        p = int(round(pad * max(frames.shape[1:3])))
        grey = (127, 127, 127)
        framed = np.stack([cv2.copyMakeBorder(f, p, p, p, p, cv2.BORDER_CONSTANT, value=grey) for f in frames])
        boxes, probs, points, scale = self.detect(framed, max_side)
        return [b - p for b in boxes], probs, [pts - p for pts in points], scale

    # -- stage 2: refine
    def refine(self, frames: np.ndarray, landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Re-run ONet on upright canonical views of each frame's face; returns landmarks and probabilities."""
        mtcnn = self._detector()
        lm = np.array(landmarks, np.float64)
        prob = np.zeros(len(lm))
        for _ in range(self.refine_iters):
            mats = [crop_matrix(pts, ONET_SIZE, ONET_EXTENT, ONET_CENTRE) for pts in lm]
            crops = np.stack([warp(f, m, ONET_SIZE) for f, m in zip(frames, mats)])
            x = (crops.transpose(0, 3, 1, 2).astype(np.float32) - np.float32(127.5)) * np.float32(0.0078125)
            _, points, p = mtcnn.onet(x)
            points, p = points.astype(np.float64), p[:, 1].astype(np.float64)
            # ONet answers in fractions p of its input box. MTCNN maps them to first_box_pixel + side * p,
            # which is half a *source* pixel right of/below the edge-based position side * p; keep that
            # convention so refined points mean what MTCNN's own points mean.
            new = []
            for m, q in zip(mats, np.stack([points[:, :5], points[:, 5:]], axis=-1)):
                k = math.sqrt(abs(np.linalg.det(m[:, :2])))  # crop pixels per source pixel
                new.append(apply(invert(m), q * ONET_SIZE - 0.5 + 0.5 * k))
            ok = p >= 0.5
            lm[ok] = np.stack(new)[ok]
            prob = p
        return lm, prob

    # -- the whole clip
    def align(self, frames: np.ndarray, crop: CropSettings = CropSettings(), source: str = "clip",
              found: dict[int, tuple[np.ndarray, float, np.ndarray]] | None = None,
              seeds: dict[int, np.ndarray] | None = None, first_frame: int = 0,
              warp_only: np.ndarray | None = None) -> AlignedClip:
        """Find, refine and warp the face of a whole clip. On the CPU, MTCNN runs on one thread: its convolutions
        sum in an order that depends on the thread count, and the landmarks (so the crop, so the verdict) would
        otherwise differ between the batch command's worker processes (one thread each) and a serial run or the
        demo (measured on 2 cores with PyTorch's MTCNN: 2.5 % of aligned pixels off by 1–2 grey levels, probabilities
        by ~2e-4).

        A face track (:mod:`inference.track`) hands over what it already knows about one person's segment:
        ``found`` (frame → box, probability, landmarks: the find stage's result, so the detector does not run
        again), ``seeds`` (frame → landmarks of more detections, the starting points of the keyframes' refinement),
        ``first_frame`` (the segment's first frame in the clip: frame numbers in the meta are the clip's) and
        ``warp_only`` (frames to warp; the others stay black, for a caller that resamples to fewer frames)."""
        with one_thread(self.device):
            return self._align(frames, crop, source, found, seeds or {}, first_frame, warp_only)

    def _align(self, frames: np.ndarray, crop: CropSettings, source: str, found, seeds, first_frame: int,
               warp_only) -> AlignedClip:
        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise ValueError(f"frames must be uint8 (T, H, W, 3), got {frames.dtype} {frames.shape}")
        t0 = time.perf_counter()
        n = len(frames)
        if found:
            find_idx, faces_seen, det_scale = sorted(found), 1, 1.0
        else:
            find_idx, faces_seen, det_scale, found = self._find(frames, source)
        t_find = time.perf_counter()

        key_idx = sorted(set(_spread(np.linspace(0, n - 1, min(self.keyframes, n)), n)) | set(found))
        starts = {**seeds, **{i: f[2] for i, f in found.items()}}
        seed_lm = np.stack([starts[min(starts, key=lambda f: abs(f - k))] for k in key_idx])
        key_lm, key_prob = self.refine(frames[key_idx], seed_lm)
        good = key_prob >= 0.5
        if not good.any():
            key_lm, good = seed_lm, np.ones(len(key_idx), bool)  # refinement lost the face: keep the detector's points
        key_idx_ok = [k for k, g in zip(key_idx, good) if g]
        key_lm_ok = key_lm[good]
        t_refine = time.perf_counter()

        median_lm = np.median(key_lm_ok, axis=0)
        m_fixed = output_crop_matrix(median_lm, crop)
        spread = float(np.max(np.linalg.norm(apply(m_fixed, key_lm_ok) - apply(m_fixed, median_lm), axis=-1)))
        if spread <= self.track_tolerance or len(key_idx_ok) == 1:
            mode = "fixed"
            mats = np.repeat(m_fixed[None], n, axis=0)
        else:
            mode = "tracked"
            keys = self._densify(frames, dict(zip(key_idx_ok, key_lm_ok)), seeds, m_fixed)
            key_idx_ok, key_lm_ok = sorted(keys), np.stack([keys[k] for k in sorted(keys)])
            t = np.arange(n)
            flat = key_lm_ok.reshape(len(key_idx_ok), -1)
            per_frame = np.stack([np.interp(t, key_idx_ok, flat[:, c]) for c in range(flat.shape[1])], axis=1)
            mats = np.stack([output_crop_matrix(pts.reshape(5, 2), crop) for pts in per_frame])
        out = np.zeros((n, crop.size, crop.size, 3), np.uint8)
        for i in (range(n) if warp_only is None else warp_only):
            out[i] = warp(frames[i], mats[i], crop.size)
        t_warp = time.perf_counter()

        angle = math.degrees(face_pose(median_lm)[0])
        at = lambda i: str(int(i) + first_frame)  # noqa: E731 — frame numbers as the clip counts them
        meta = {
            "source": source,
            "crop": crop.to_dict(),
            "mode": mode,
            "spread_px": round(spread, 3),
            "faces_seen": int(faces_seen),
            "find_frames": [int(i) + first_frame for i in find_idx],
            "detect_scale": round(det_scale, 4),
            "boxes": {at(i): [round(float(v), 2) for v in found[i][0]] for i in found},
            "box_probabilities": {at(i): round(float(found[i][1]), 5) for i in found},
            "keyframes": [int(i) + first_frame for i in key_idx],
            "keyframe_landmarks": {at(k): np.round(pts, 3).tolist() for k, pts in zip(key_idx, key_lm)},
            "keyframe_probabilities": {at(k): round(float(p), 5) for k, p in zip(key_idx, key_prob)},
            "landmarks": np.round(median_lm, 3).tolist(),
            "head_roll_deg": round(angle, 3),
            "transform": np.round(m_fixed, 6).tolist() if mode == "fixed" else None,
            "timings_s": {"find": round(t_find - t0, 4), "refine": round(t_refine - t_find, 4),
                          "warp": round(t_warp - t_refine, 4)},
        }
        return AlignedClip(frames=out, matrices=mats, meta=meta)

    def _densify(self, frames: np.ndarray, keys: dict[int, np.ndarray], seeds: dict[int, np.ndarray],
                 m_fixed: np.ndarray, rounds: int = 6) -> dict[int, np.ndarray]:
        """More keyframes where the head moves unevenly. The track's own detections become keyframes; then, between
        neighbouring keyframes, the middle frame is refined (from the interpolated landmarks): where it lies more
        than ``2 × track_tolerance`` crop pixels off the straight line, it is kept and both halves are looked at
        again. A head moving at a steady pace adds nothing; one that starts or stops abruptly is followed."""
        extra = sorted(set(seeds) - set(keys))
        if extra:
            lm, prob = self.refine(frames[extra], np.stack([seeds[k] for k in extra]))
            keys.update({k: p for k, p, q in zip(extra, lm, prob) if q >= 0.5})
        idx = sorted(keys)
        todo = [(a, b) for a, b in zip(idx[:-1], idx[1:]) if b - a > 1]
        for _ in range(rounds):
            if not todo:
                break
            mids = [(a + b) // 2 for a, b in todo]
            guess = np.stack([keys[a] + (keys[b] - keys[a]) * (m - a) / (b - a) for (a, b), m in zip(todo, mids)])
            lm, prob = self.refine(frames[mids], guess)
            off = np.linalg.norm(apply(m_fixed, lm.reshape(-1, 2)) - apply(m_fixed, guess.reshape(-1, 2)), axis=-1)
            off = off.reshape(len(mids), 5).max(axis=1)
            nxt = []
            for (a, b), m, pts, q, d in zip(todo, mids, lm, prob, off):
                if q >= 0.5 and d > 2 * self.track_tolerance:
                    keys[m] = pts
                    nxt += [(x, y) for x, y in ((a, m), (m, b)) if y - x > 1]
            todo = nxt
        return keys

    def _find(self, frames: np.ndarray, source: str):
        """The full detector on ``find_frames`` frames spread over the clip: (frames looked at, most faces in one
        of them, detection scale, frame → (box, probability, landmarks) of the largest face's track)."""
        n = len(frames)
        find_idx = _spread(np.linspace(0, n - 1, min(self.find_frames, n)), n)
        boxes, probs, points, det_scale = self.detect(frames[find_idx])
        faces_seen = max((len(b) for b in boxes), default=0)
        if faces_seen == 0:  # a face filling the frame (a dataset's cropped release) needs room around it
            boxes, probs, points, det_scale = self.detect_padded(frames[find_idx])
            faces_seen = max((len(b) for b in boxes), default=0)
        if faces_seen == 0:
            raise no_face_error(source, find_idx, n)
        # The track: the largest face seen; in each find frame, the detection that overlaps it most.
        ref = max((b for bs in boxes for b in bs), key=lambda b: (b[2] - b[0]) * (b[3] - b[1]))
        found = {}
        for i, bs, ps, ls in zip(find_idx, boxes, probs, points):
            if len(bs):
                j = max(range(len(bs)),
                        key=lambda j: (_box_iou(bs[j], ref), (bs[j][2] - bs[j][0]) * (bs[j][3] - bs[j][1])))
                found[i] = (bs[j], float(ps[j]), ls[j])
        return find_idx, faces_seen, det_scale, found


def no_face_error(source: str, looked_at: list[int], n: int) -> InputError:
    """The message for a clip in which the detector found no face on any frame it looked at."""
    tried = (", ".join(str(i) for i in looked_at) if len(looked_at) <= 6
             else f"{len(looked_at)} frames from {looked_at[0]} to {looked_at[-1]}")
    return InputError(f"{source}: no face found (looked at frames {tried} of {n}). Use a clip where one face is "
                      f"clearly visible, roughly frontal and at least about a tenth of the frame's height.")


MATH_THREADS: int | None = None  # the process's math threads; None: OMP_NUM_THREADS, else the usable cores


def math_threads() -> int:
    """How many math threads this process may use (what a caller may spread independent work over): the batch
    command's workers set :data:`MATH_THREADS` to 1; otherwise ``OMP_NUM_THREADS`` when set, else the usable cores."""
    if MATH_THREADS:
        return max(1, int(MATH_THREADS))
    import os

    env = os.environ.get("OMP_NUM_THREADS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


@contextmanager
def one_thread(device: str):
    """Gives the number of math threads the process has (what a caller may spread independent work over), 1 on a
    GPU. MTCNN itself always runs on one CPU thread (:mod:`inference.mtcnn`): its convolutions sum in an order that
    depends on the thread count, and the landmarks (so the crop, so the verdict) would otherwise differ between the
    batch command's worker processes (one thread each) and a serial run or the demo."""
    yield 1 if str(device).startswith("cuda") else math_threads()


_default_aligners: dict[tuple, FaceAligner] = {}


def shared_aligner(device: str = "cpu", **aligner_options) -> FaceAligner:
    """One :class:`FaceAligner` per device and options in a process (the MTCNN weights load once)."""
    key = (device, tuple(sorted(aligner_options.items())))
    if key not in _default_aligners:
        _default_aligners[key] = FaceAligner(device=device, **aligner_options)
    return _default_aligners[key]


def align_clip(frames: np.ndarray, crop: CropSettings = CropSettings(), device: str = "cpu", source: str = "clip",
               **aligner_options) -> AlignedClip:
    """Align a clip with a shared :class:`FaceAligner` (the MTCNN weights load once per process)."""
    return shared_aligner(device, **aligner_options).align(frames, crop, source=source)


def frame_shifts(frames: np.ndarray) -> np.ndarray:
    """Translation (pixels) between consecutive frames of an aligned clip, by phase correlation.

    A diagnostic for crop jitter: on a still face it should stay well under a pixel.
    """
    import cv2

    gray = np.asarray(frames, np.float32).mean(axis=-1)
    window = cv2.createHanningWindow(gray.shape[1:][::-1], cv2.CV_32F)
    shifts = [cv2.phaseCorrelate(a, b, window)[0] for a, b in zip(gray[:-1], gray[1:])]
    return np.hypot(*np.array(shifts, np.float64).reshape(-1, 2).T)
