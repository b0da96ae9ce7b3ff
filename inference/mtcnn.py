"""MTCNN (Zhang et al. 2016) without PyTorch: P-Net, R-Net and O-Net as ONNX, the cascade in NumPy.

The three networks are facenet-pytorch's own (``inference/assets/mtcnn/*.onnx``, exported from the weights inside
facenet-pytorch 2.5.3 by ``tools/make_face_onnx.py``; MIT, see ``inference/assets/mtcnn/README.md``), run by ONNX
Runtime: its CPU provider on one thread (results that do not depend on the machine's thread count, as the batch
command's worker processes and a serial run must agree), or its CUDA provider on ``cuda`` / ``cuda:N``.

:meth:`MTCNN.detect` follows facenet-pytorch's ``detect_face`` step by step: the same image pyramid (minimum face
size, factor 0.709, sizes ``int(side * scale + 1)``), the same resampling (PyTorch's ``interpolate(mode="area")``,
i.e. adaptive average pooling: output cell ``i`` averages input rows ``floor(i·H/h)`` to ``ceil((i+1)·H/h)``,
reproduced exactly here from an integral image, for the pyramid and for the 24 and 48 px crops of R-Net and O-Net),
the same proposals, box regressions and squaring in float32, torchvision's NMS (IoU > 0.5 within a scale, > 0.7
within an image) and facenet-pytorch's own "Min" NMS after O-Net, and the same order of the answer (largest box
first). What is left is the networks' floating-point rounding (ONNX Runtime against PyTorch: ~1e-6).
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from .errors import InputError

ASSETS = Path(__file__).resolve().parent / "assets" / "mtcnn"
NETS = ("pnet", "rnet", "onet")
FACTOR = 0.709  # the image pyramid's step, facenet-pytorch's default


def providers_for(device: str) -> list:
    """ONNX Runtime providers for a device name (``cpu``, ``cuda``, ``cuda:N``)."""
    device = str(device)
    if device == "cpu":
        return ["CPUExecutionProvider"]
    if device == "cuda" or device.startswith("cuda:"):
        import onnxruntime as ort

        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise InputError(f"device {device!r}: this ONNX Runtime has no CUDA provider; install onnxruntime-gpu "
                             f"(requirements/serve-gpu.txt) instead of onnxruntime, or use --device cpu")
        index = int(device[5:]) if device.startswith("cuda:") else 0
        # HEURISTIC: P-Net sees a new input shape at every pyramid level of every frame size; an exhaustive cuDNN
        # search per shape would cost more than the detection
        return [("CUDAExecutionProvider", {"device_id": index, "cudnn_conv_algo_search": "HEURISTIC"}),
                "CPUExecutionProvider"]
    raise InputError(f"unknown device {device!r}; use cpu, cuda, cuda:N or auto")


_SESSIONS: dict[str, dict] = {}
_LOCK = threading.Lock()


def sessions(device: str = "cpu") -> dict:
    """The three networks' ONNX Runtime sessions on ``device``, created once per process."""
    device = str(device)
    with _LOCK:
        if device not in _SESSIONS:
            import onnxruntime as ort

            options = ort.SessionOptions()
            options.intra_op_num_threads = 1  # see the module docstring: one thread, the same numbers everywhere
            options.inter_op_num_threads = 1
            options.log_severity_level = 3
            providers = providers_for(device)
            missing = [n for n in NETS if not (ASSETS / f"{n}.onnx").is_file()]
            if missing:
                raise InputError(f"the face detector's networks are missing ({', '.join(missing)} in {ASSETS}); "
                                 f"reinstall the project, or rebuild them with python tools/make_face_onnx.py")
            _SESSIONS[device] = {n: ort.InferenceSession(str(ASSETS / f"{n}.onnx"), options, providers=providers)
                                 for n in NETS}
        return _SESSIONS[device]


# ---------------------------------------------------------------- resampling (PyTorch's "area" mode)


def _cells(n_in: np.ndarray, n_out: int) -> tuple[np.ndarray, np.ndarray]:
    """Start and end (exclusive) input index of each of ``n_out`` adaptive-average-pooling cells, for each input
    length in ``n_in`` (shape (K,)): ATen's start_index / end_index, in exact integer arithmetic."""
    i = np.arange(n_out, dtype=np.int64)
    n_in = np.asarray(n_in, np.int64)[:, None]
    return (i * n_in) // n_out, -((-(i + 1) * n_in) // n_out)


def integral(frames: np.ndarray) -> np.ndarray:
    """``(N, H+1, W+1, 3)`` int64 sums of ``frames`` ``(N, H, W, 3)`` uint8 over ``[0, y) × [0, x)``."""
    n, h, w, c = frames.shape
    out = np.zeros((n, h + 1, w + 1, c), np.int64)
    np.cumsum(frames, axis=1, dtype=np.int64, out=out[:, 1:, 1:])
    np.cumsum(out[:, 1:, 1:], axis=2, out=out[:, 1:, 1:])
    return out


def area_resample(sums: np.ndarray, image: np.ndarray, y0: np.ndarray, y1: np.ndarray, x0: np.ndarray,
                  x1: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """The regions ``[y0, y1) × [x0, x1)`` of images ``image`` (indices into ``sums``, an :func:`integral`),
    resampled to ``out_h × out_w`` as ``torch.nn.functional.interpolate(mode="area")`` does; returns ``(K, 3, out_h,
    out_w)`` float32, the networks' layout, scaled to [-1, 1) as MTCNN feeds them."""
    ys, ye = _cells(y1 - y0, out_h)
    xs, xe = _cells(x1 - x0, out_w)
    ys, ye = ys + y0[:, None], ye + y0[:, None]
    xs, xe = xs + x0[:, None], xe + x0[:, None]
    b = np.asarray(image)[:, None, None]
    total = (sums[b, ye[:, :, None], xe[:, None, :]] - sums[b, ys[:, :, None], xe[:, None, :]]
             - sums[b, ye[:, :, None], xs[:, None, :]] + sums[b, ys[:, :, None], xs[:, None, :]])
    kh = (ye - ys).astype(np.float32)[:, :, None, None]
    kw = (xe - xs).astype(np.float32)[:, None, :, None]
    mean = total.astype(np.float32) / kh / kw  # ATen: sum / kh / kw, in float32
    return np.ascontiguousarray(((mean - np.float32(127.5)) * np.float32(0.0078125)).transpose(0, 3, 1, 2))


# ---------------------------------------------------------------- boxes


def nms(boxes: np.ndarray, scores: np.ndarray, threshold: float) -> np.ndarray:
    """torchvision's ``nms``: greedy by descending score, drops boxes whose IoU (areas without +1) with a kept
    box exceeds ``threshold``; returns the kept indices, highest score first."""
    order = np.argsort(-scores, kind="stable")
    x1, y1, x2, y2 = (boxes[:, k] for k in range(4))
    areas = (x2 - x1) * (y2 - y1)
    keep = []
    alive = np.ones(len(order), bool)
    for n, i in enumerate(order):
        if not alive[n]:
            continue
        keep.append(i)
        rest = order[n + 1:]
        w = np.maximum(np.float32(0), np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]))
        h = np.maximum(np.float32(0), np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]))
        inter = w * h
        alive[n + 1:] &= ~(inter / (areas[i] + areas[rest] - inter) > threshold)
    return np.asarray(keep, np.int64)


def batched_nms(boxes: np.ndarray, scores: np.ndarray, image: np.ndarray, threshold: float) -> np.ndarray:
    """torchvision's ``batched_nms``: :func:`nms` within each image; kept indices by descending score."""
    if len(boxes) == 0:
        return np.zeros(0, np.int64)
    keep = np.concatenate([np.flatnonzero(image == i)[nms(boxes[image == i], scores[image == i], threshold)]
                           for i in np.unique(image)])
    return keep[np.argsort(-scores[keep], kind="stable")]


def nms_min(boxes: np.ndarray, scores: np.ndarray, image: np.ndarray, threshold: float) -> np.ndarray:
    """facenet-pytorch's ``batched_nms_numpy(..., "Min")``: boxes (areas with +1) overlapping a kept, higher-scoring
    box by more than ``threshold`` of the smaller one's area are dropped; images kept apart by an offset."""
    if len(boxes) == 0:
        return np.zeros(0, np.int64)
    b = boxes + (image.astype(np.float32) * (boxes.max() + np.float32(1)))[:, None]
    x1, y1, x2, y2 = (b[:, k] for k in range(4))
    area = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = np.argsort(scores)
    pick = []
    while order.size > 0:
        i, rest = order[-1], order[:-1]
        pick.append(i)
        w = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]) + 1)
        h = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]) + 1)
        order = rest[w * h / np.minimum(area[i], area[rest]) <= threshold]
    return np.asarray(pick, np.int64)


def _rerec(b: np.ndarray) -> np.ndarray:
    """Boxes made square about their centres (the longer side), in place (facenet-pytorch's ``rerec``)."""
    h = b[:, 3] - b[:, 1]
    w = b[:, 2] - b[:, 0]
    side = np.maximum(w, h)
    b[:, 0] = b[:, 0] + w * np.float32(0.5) - side * np.float32(0.5)
    b[:, 1] = b[:, 1] + h * np.float32(0.5) - side * np.float32(0.5)
    b[:, 2] = b[:, 0] + side
    b[:, 3] = b[:, 1] + side
    return b


def _bbreg(b: np.ndarray, reg: np.ndarray) -> np.ndarray:
    """The networks' box regression, in place (facenet-pytorch's ``bbreg``: sides with +1)."""
    w = b[:, 2] - b[:, 0] + 1
    h = b[:, 3] - b[:, 1] + 1
    b[:, :4] = np.stack([b[:, 0] + reg[:, 0] * w, b[:, 1] + reg[:, 1] * h,
                         b[:, 2] + reg[:, 2] * w, b[:, 3] + reg[:, 3] * h], axis=1)
    return b


def _pad(b: np.ndarray, w: int, h: int):
    """Integer crop bounds of boxes (facenet-pytorch's ``pad``): rows ``y-1 … ey-1``, columns ``x-1 … ex-1``."""
    q = np.trunc(b[:, :4]).astype(np.int64)
    x, y, ex, ey = (np.maximum(q[:, 0], 1), np.maximum(q[:, 1], 1), np.minimum(q[:, 2], w), np.minimum(q[:, 3], h))
    return y, ey, x, ex


class MTCNN:
    """The three-stage detector on ``device`` (``cpu``, ``cuda``, ``cuda:N``); networks load on first use."""

    def __init__(self, device: str = "cpu", thresholds=(0.6, 0.7, 0.7), factor: float = FACTOR,
                 min_face_size: int = 20):
        self.device = str(device)
        self.thresholds = tuple(float(t) for t in thresholds)
        self.factor = float(factor)
        self.min_face_size = int(min_face_size)
        providers_for(self.device)  # an unknown device or a missing CUDA provider fails here, not at first use

    @property
    def nets(self) -> dict:
        return sessions(self.device)

    def onet(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """O-Net on ``(N, 3, 48, 48)`` float32 inputs scaled to [-1, 1): box regression, landmarks (5 x then 5 y,
        fractions of the box), face probabilities ``(N, 2)``."""
        if len(x) == 0:
            return np.zeros((0, 4), np.float32), np.zeros((0, 10), np.float32), np.zeros((0, 2), np.float32)
        reg, points, prob = self.nets["onet"].run(None, {"input": np.ascontiguousarray(x, np.float32)})
        return reg, points, prob

    def _crops(self, sums, image, boxes, w, h, size):
        y, ey, x, ex = _pad(boxes, w, h)
        ok = (ey > y - 1) & (ex > x - 1)
        return ok, area_resample(sums, image[ok], y[ok] - 1, ey[ok], x[ok] - 1, ex[ok], size, size)

    def detect_face(self, frames: np.ndarray, min_face_size: int | None = None
                    ) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """facenet-pytorch's ``detect_face`` on ``(N, H, W, 3)`` uint8 frames: per frame, boxes ``(k, 5)`` (x1, y1,
        x2, y2, probability) and landmarks ``(k, 5, 2)``, float32, highest probability first. ``min_face_size``
        (default: the detector's) is the smallest face looked for, in pixels."""
        frames = np.ascontiguousarray(frames)
        n, h, w = frames.shape[:3]
        sums = integral(frames)
        nets = self.nets
        m = 12.0 / (min_face_size or self.min_face_size)
        minl = min(h, w) * m
        scales, scale = [], m
        while minl >= 12:
            scales.append(scale)
            scale *= self.factor
            minl *= self.factor

        # First stage: P-Net over the pyramid
        every = np.arange(n)
        found, found_img = [], []
        for scale in scales:
            sh, sw = int(h * scale + 1), int(w * scale + 1)
            x = area_resample(sums, every, np.zeros(n, np.int64), np.full(n, h), np.zeros(n, np.int64),
                              np.full(n, w), sh, sw)
            reg, prob = nets["pnet"].run(None, {"input": x})
            img, row, col = np.nonzero(prob[:, 1] >= np.float32(self.thresholds[0]))
            bb = np.stack([col, row], axis=1).astype(np.float32)
            q1 = np.floor((np.float32(2) * bb + 1) / np.float32(scale))
            q2 = np.floor((np.float32(2) * bb + 12) / np.float32(scale))
            boxes = np.concatenate([q1, q2, prob[img, 1, row, col][:, None], reg[img, :, row, col]], axis=1)
            pick = batched_nms(boxes[:, :4], boxes[:, 4], img, 0.5)
            found.append(boxes[pick]), found_img.append(img[pick])
        boxes = np.concatenate(found).astype(np.float32) if found else np.zeros((0, 9), np.float32)
        image = np.concatenate(found_img) if found_img else np.zeros(0, np.int64)
        pick = batched_nms(boxes[:, :4], boxes[:, 4], image, 0.7)
        boxes, image = boxes[pick], image[pick]
        regw = boxes[:, 2] - boxes[:, 0]
        regh = boxes[:, 3] - boxes[:, 1]
        boxes = np.stack([boxes[:, 0] + boxes[:, 5] * regw, boxes[:, 1] + boxes[:, 6] * regh,
                          boxes[:, 2] + boxes[:, 7] * regw, boxes[:, 3] + boxes[:, 8] * regh, boxes[:, 4]], axis=1)
        boxes = _rerec(boxes)

        # Second stage: R-Net on 24 px crops
        if len(boxes):
            ok, x = self._crops(sums, image, boxes, w, h, 24)
            boxes, image = boxes[ok], image[ok]
            reg, prob = nets["rnet"].run(None, {"input": x})
            score = prob[:, 1]
            keep = score > np.float32(self.thresholds[1])
            boxes = np.concatenate([boxes[keep, :4], score[keep, None]], axis=1)
            image, reg = image[keep], reg[keep]
            pick = batched_nms(boxes[:, :4], boxes[:, 4], image, 0.7)
            boxes, image, reg = boxes[pick], image[pick], reg[pick]
            boxes = _rerec(_bbreg(boxes, reg))

        # Third stage: O-Net on 48 px crops, landmarks
        points = np.zeros((0, 5, 2), np.float32)
        if len(boxes):
            ok, x = self._crops(sums, image, boxes, w, h, 48)
            boxes, image = boxes[ok], image[ok]
            reg, pts, prob = self.onet(x)
            score = prob[:, 1]
            keep = score > np.float32(self.thresholds[2])
            boxes = np.concatenate([boxes[keep, :4], score[keep, None]], axis=1)
            image, reg, pts = image[keep], reg[keep], pts[keep]
            wi = boxes[:, 2] - boxes[:, 0] + 1
            hi = boxes[:, 3] - boxes[:, 1] + 1
            px = wi[:, None] * pts[:, :5] + boxes[:, :1] - 1
            py = hi[:, None] * pts[:, 5:] + boxes[:, 1:2] - 1
            points = np.stack([px, py], axis=-1)
            boxes = _bbreg(boxes, reg)
            pick = nms_min(boxes[:, :4], boxes[:, 4], image, 0.7)
            boxes, image, points = boxes[pick], image[pick], points[pick]
        return [boxes[image == i] for i in range(n)], [points[image == i] for i in range(n)]

    def detect(self, frames: np.ndarray, min_face_size: int | None = None
               ) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
        """``MTCNN.detect(frames, landmarks=True)`` with ``select_largest=True``: per frame, boxes ``(k, 4)``,
        probabilities ``(k,)`` and landmarks ``(k, 5, 2)``, largest box first (empty arrays where none)."""
        boxes, points = self.detect_face(frames, min_face_size)
        out_b, out_p, out_l = [], [], []
        for b, pts in zip(boxes, points):
            order = np.argsort((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]))[::-1]
            out_b.append(b[order, :4]), out_p.append(b[order, 4]), out_l.append(pts[order])
        return out_b, out_p, out_l
