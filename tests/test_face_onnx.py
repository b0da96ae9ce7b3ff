"""The face stage without PyTorch (issue 29): MTCNN as ONNX + the cascade in NumPy (inference/mtcnn.py) against
facenet-pytorch's own MTCNN, which the face stage used before, on the real public-domain faces the other tests use and
on the composed messy recordings; and the serving path run in a process where importing torch fails.

The reference runs in the dev environment (training requirements: torch, facenet-pytorch); those tests skip cleanly
where torch is absent. The torch-free tests need neither."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import inference.face as face_module
import inference.mtcnn as mtcnn_module
from inference.face import CropSettings, FaceAligner, frame_shifts
from inference.mtcnn import MTCNN, area_resample, integral
from inference.track import track_and_align, track_clip
from inference.video import read_clip
from tests.helpers import animate, two_faces
from tests.recordings import recordings_fixture  # noqa: F401 — the fixture

ROOT = Path(__file__).resolve().parent.parent
DEMO_MODEL = ROOT / "demo" / "default_model"
DEMO_CLIPS = sorted(p for p in (ROOT / "demo" / "examples").glob("*.mp4") if p.stem != "recording")  # one per class
BUNDLED = ROOT / "examples" / "astronaut.mp4"

IOU_MIN = 0.98  # the bars
LANDMARK_PX = 0.5  # at detection scale


class TorchMTCNN:
    """facenet-pytorch's MTCNN behind the interface the aligner uses (``detect``, ``onet``): the face stage as it
    was, for the comparisons. One math thread, as the face stage always ran it."""

    def __init__(self, device: str = "cpu", thresholds=(0.6, 0.7, 0.7), **_):
        torch = pytest.importorskip("torch")
        facenet = pytest.importorskip("facenet_pytorch")
        self.torch = torch
        self.net = facenet.MTCNN(keep_all=True, select_largest=True, post_process=False, device="cpu",
                                 thresholds=list(thresholds))

    def _one_thread(self):
        torch = self.torch

        class Ctx:
            def __enter__(self):
                self.n = torch.get_num_threads()
                torch.set_num_threads(1)

            def __exit__(self, *exc):
                torch.set_num_threads(self.n)

        return Ctx()

    def detect(self, frames, min_face_size=None):
        self.net.min_face_size = min_face_size or 20
        with self._one_thread(), self.torch.inference_mode():
            boxes, probs, points = self.net.detect(np.ascontiguousarray(frames).copy(), landmarks=True)
        empty = (np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros((0, 5, 2), np.float32))
        out = [empty if b is None else (np.asarray(b), np.asarray(p, np.float32), np.asarray(pts))
               for b, p, pts in zip(boxes, probs, points)]
        return [o[0] for o in out], [o[1] for o in out], [o[2] for o in out]

    def onet(self, x):
        with self._one_thread(), self.torch.inference_mode():
            reg, points, prob = self.net.onet(self.torch.from_numpy(np.ascontiguousarray(x, np.float32)))
        return reg.numpy(), points.numpy(), prob.numpy()


@pytest.fixture(scope="module")
def torch_aligner():
    aligner = FaceAligner()
    aligner._mtcnn = TorchMTCNN(thresholds=FaceAligner.THRESHOLDS)
    return aligner


@pytest.fixture
def torch_face_stage(monkeypatch):
    """Every aligner made from now on (the batch command's, the demo's) runs facenet-pytorch's MTCNN."""
    pytest.importorskip("facenet_pytorch")
    monkeypatch.setattr(mtcnn_module, "MTCNN", TorchMTCNN)
    monkeypatch.setattr(face_module, "_default_aligners", {})


def _iou(a, b) -> float:
    x1, y1 = max(a[0], b[0]), max(a[1], b[1])
    x2, y2 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union


def _assert_same_detections(ours, theirs, where: str):
    """Same faces (count and order), boxes IoU >= 0.98, landmarks within 0.5 px at detection scale."""
    (b1, p1, l1, s1), (b2, p2, l2, s2) = ours, theirs
    assert s1 == s2
    for i, (bo, po, lo, bt, pt, lt) in enumerate(zip(b1, p1, l1, b2, p2, l2)):
        assert len(bo) == len(bt), f"{where} frame {i}: {len(bo)} faces found, facenet-pytorch found {len(bt)}"
        for j in range(len(bo)):
            assert _iou(bo[j], bt[j]) >= IOU_MIN, (where, i, j, bo[j], bt[j])
            assert np.abs(lo[j] - lt[j]).max() * s1 <= LANDMARK_PX, (where, i, j)
            assert abs(po[j] - pt[j]) < 1e-3, (where, i, j)


def test_the_shipped_networks_are_facenet_pytorchs(capsys):
    """tools/make_face_onnx.py --check: exported afresh from the weights inside facenet-pytorch, the networks equal the
    shipped ONNX files, and each export agrees with PyTorch."""
    pytest.importorskip("facenet_pytorch")
    pytest.importorskip("onnx")
    from tools import make_face_onnx

    assert make_face_onnx.main(["--check"]) == 0
    out = capsys.readouterr().out
    assert out.count("weights equal the shipped file") == 3 and out.count("parity with PyTorch OK") == 3


def test_area_resampling_is_pytorchs():
    """The pyramid's and the crops' resampling: PyTorch's interpolate(mode="area"), down and up, odd ratios."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    img = rng.integers(0, 256, (2, 37, 53, 3), dtype=np.uint8)
    sums = integral(img)
    for out in ((12, 17), (24, 24), (48, 48), (37, 53), (5, 40)):
        ours = area_resample(sums, np.arange(2), np.zeros(2, np.int64), np.full(2, 37), np.zeros(2, np.int64),
                             np.full(2, 53), *out)
        ref = torch.nn.functional.interpolate(torch.from_numpy(img).permute(0, 3, 1, 2).float(), size=out,
                                              mode="area")
        np.testing.assert_allclose(ours, ((ref - 127.5) * 0.0078125).numpy(), atol=1e-6)
    # a region: rows 3..29, columns 10..50 of image 1
    ours = area_resample(sums, np.array([1]), np.array([3]), np.array([30]), np.array([10]), np.array([51]), 24, 24)
    ref = torch.nn.functional.interpolate(torch.from_numpy(img[1:2, 3:30, 10:51]).permute(0, 3, 1, 2).float(),
                                          size=(24, 24), mode="area")
    np.testing.assert_allclose(ours, ((ref - 127.5) * 0.0078125).numpy(), atol=1e-6)


def test_detector_matches_facenet_pytorch_on_real_faces(face_image, aligner, torch_aligner):
    """One face and two faces, turned, shifted and scaled, small and large, through the aligner's own detect (and
    facenet-pytorch's default thresholds straight through the cascade)."""
    frames, _ = animate(face_image, 4, angle=9, shift=(10, 10))
    scaled, _ = animate(face_image, 3, scale=0.6)
    cases = {"astronaut": face_image[None], "two faces": two_faces(face_image)[0][None], "turned": frames,
             "scaled": scaled, "half size": np.ascontiguousarray(face_image[None, ::2, ::2])}
    for name, f in cases.items():
        _assert_same_detections(aligner.detect(f), torch_aligner.detect(f), name)
        _assert_same_detections(aligner.detect_padded(f), torch_aligner.detect_padded(f), name + " padded")
    ours, theirs = MTCNN(), TorchMTCNN()
    for name, f in cases.items():
        for min_face in (20, 40):
            b, p, pts = ours.detect(f, min_face)
            _assert_same_detections((b, p, pts, 1.0), (*theirs.detect(f, min_face), 1.0), f"{name} default")
    assert len(ours.detect(cases["two faces"])[0][0]) == 2


def test_detector_matches_facenet_pytorch_on_the_messy_recordings(recordings, aligner, torch_aligner):
    """Every frame of the late entrance, the exit and the two people through three cuts, at the track's size."""
    from inference.track import DETECT_SIDE

    for rec in (recordings.late_entrance, recordings.exit_halfway, recordings.two_people):
        frames = read_clip(rec.path).frames
        for s in range(0, len(frames), 8):
            batch = frames[s:s + 8]
            _assert_same_detections(aligner.detect(batch, DETECT_SIDE), torch_aligner.detect(batch, DETECT_SIDE),
                                    f"{rec.path.name}[{s}:]")


def test_tracks_match_facenet_pytorch_on_the_messy_recordings(recordings, aligner, torch_aligner):
    """The same shots, faces seen, chosen person's segment and frame states; aligned crops within 0.5 px."""
    for rec in (recordings.late_entrance, recordings.exit_halfway, recordings.two_people):
        clip = read_clip(rec.path)
        ours, theirs = track_clip(clip.frames, aligner, clip.fps), track_clip(clip.frames, torch_aligner, clip.fps)
        assert (ours.shots, ours.segment, ours.faces_seen) == (theirs.shots, theirs.segment, theirs.faces_seen)
        assert ours.looked_at == theirs.looked_at and (ours.state == theirs.state).all()
        assert sorted(ours.chosen) == sorted(theirs.chosen)
        crop = CropSettings(size=64)
        a, qa = track_and_align(clip.frames, aligner, crop, clip.fps, rec.path.name)
        b, qb = track_and_align(clip.frames, torch_aligner, crop, clip.fps, rec.path.name)
        assert qa.frames_used == qb.frames_used
        corners = np.array([[0, 0], [63, 0], [0, 63], [63, 63]], np.float64)
        for ma, mb in zip(a.matrices, b.matrices):  # the crop's corners in the frame
            src = [face_module.apply(face_module.invert(m), corners) for m in (ma, mb)]
            assert np.abs(src[0] - src[1]).max() < LANDMARK_PX, rec.path.name


def test_aligned_bundled_clip_within_todays_drift(aligner, torch_aligner):
    """The bundled clip aligned both ways: the same mode and landmarks (< 0.5 px), and the crops apart by less than
    today's own frame-to-frame drift."""
    clip = read_clip(BUNDLED)
    crop = CropSettings()
    ours, theirs = aligner.align(clip.frames, crop), torch_aligner.align(clip.frames, crop)
    assert ours.meta["mode"] == theirs.meta["mode"] and ours.meta["faces_seen"] == theirs.meta["faces_seen"]
    assert np.abs(np.array(ours.meta["landmarks"]) - np.array(theirs.meta["landmarks"])).max() < LANDMARK_PX
    drift = float(frame_shifts(theirs.frames).max())
    apart = max(float(frame_shifts(np.stack([a, b]))[0]) for a, b in zip(ours.frames, theirs.frames))
    assert apart <= max(drift, 0.05), (apart, drift)
    assert np.abs(ours.frames.astype(int) - theirs.frames.astype(int)).mean() < 0.5


def test_batch_labels_unchanged_on_the_bundled_examples(torch_face_stage, monkeypatch):
    """The demo's default package on its example clips: the same rows (labels, probabilities within 1e-3) with
    facenet-pytorch's MTCNN as with the ONNX one."""
    from inference.runtime import Predictor

    def rows():
        predictor = Predictor(DEMO_MODEL, device="cpu")
        return {p.name: predictor.predict(p) for p in DEMO_CLIPS}

    theirs = rows()
    monkeypatch.setattr(mtcnn_module, "MTCNN", MTCNN)
    monkeypatch.setattr(face_module, "_default_aligners", {})
    ours = rows()
    assert len(DEMO_CLIPS) == 3
    for name in theirs:
        assert ours[name].top == theirs[name].top == name.split(".")[0], name
        np.testing.assert_allclose(ours[name].probs, theirs[name].probs, atol=1e-3)


# ---------------------------------------------------------------------------------------------- no torch at all

BLOCKER = '''import sys


class _NoTorch:
    """Importing torch, torchvision or facenet_pytorch fails here, as in a serving install."""

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "torchvision", "facenet_pytorch"):
            raise ImportError(f"{name} is blocked: this process stands for a serving install without PyTorch")
        return None


sys.meta_path.insert(0, _NoTorch())
'''


def _no_torch_env(tmp_path: Path) -> dict:
    site = tmp_path / "no_torch"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(BLOCKER)
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)])}


def test_the_blocker_blocks(tmp_path):
    res = subprocess.run([sys.executable, "-c", "import torch"], cwd=ROOT, env=_no_torch_env(tmp_path),
                         capture_output=True, text=True, timeout=60)
    assert res.returncode != 0 and "torch is blocked" in res.stderr


def test_batch_command_and_demo_analysis_run_without_torch(tmp_path):
    """The batch command on the demo's examples and the demo's analysis of one, in a process where importing torch,
    torchvision or facenet_pytorch fails: the same labels as the examples' names; no torch module loaded."""
    env = _no_torch_env(tmp_path)
    out = tmp_path / "pred.csv"
    res = subprocess.run([sys.executable, "-m", "inference", "--model", str(DEMO_MODEL), "--input",
                          *map(str, DEMO_CLIPS), "--output", str(out), "--device", "cpu", "--mode", "whole"], cwd=ROOT,
                         env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    rows = list(csv.DictReader(out.open()))
    assert {Path(r["path"]).stem: r["label"] for r in rows} == {p.stem: p.stem for p in DEMO_CLIPS}
    script = f'''
import json, sys
from demo.app import Analyser
from inference.runtime import Predictor
a = Analyser(Predictor({str(DEMO_MODEL)!r}, device="auto")).analyse({str(DEMO_CLIPS[0])!r})
print(json.dumps({{"spotted": a.spot is not None, "faces": a.spot.prepared.face.get("faces_seen") if a.spot else None,
                  "torch": sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "facenet_pytorch"))}}))
'''
    res = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=600)
    assert res.returncode == 0, res.stderr
    got = json.loads(res.stdout.strip().splitlines()[-1])
    assert got["torch"] == [] and got["spotted"] and got["faces"] == 1


def test_cuda_asked_for_without_a_cuda_onnxruntime_is_a_clear_error(tmp_path):
    """``--device cuda`` is decided by ONNX Runtime's providers, not by torch: without onnxruntime-gpu it is a
    one-line error that says what to install, not a traceback."""
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this ONNX Runtime has its CUDA provider")
    res = subprocess.run([sys.executable, "-m", "inference", "--model", str(DEMO_MODEL), "--input", str(DEMO_CLIPS[0]),
                          "--output", str(tmp_path / "p.csv"), "--device", "cuda"], cwd=ROOT,
                         env=_no_torch_env(tmp_path), capture_output=True, text=True, timeout=300)
    assert res.returncode != 0
    assert "CUDA provider" in res.stderr and "onnxruntime-gpu" in res.stderr and "Traceback" not in res.stderr
    from inference.device import resolve_device
    from inference.errors import InputError

    with pytest.raises(InputError, match="onnxruntime-gpu|no CUDA GPU"):
        resolve_device("cuda")
    with pytest.raises(InputError, match="onnxruntime-gpu"):
        MTCNN(device="cuda")
    assert resolve_device("auto") == "cpu"


def test_the_face_stage_asks_onnxruntime_not_torch_for_a_gpu(monkeypatch):
    """In a training process PyTorch may see a GPU that this ONNX Runtime (CPU build) cannot use: training's device
    is CUDA, the face stage's (``Preparer``, ``onnxruntime_only``) stays on the CPU, and asking it for CUDA says what
    to install."""
    import types

    import onnxruntime

    from inference.device import resolve_device
    from inference.errors import InputError
    from inference.preprocess import Preparer

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this ONNX Runtime has its CUDA provider")
    cuda = types.SimpleNamespace(is_available=lambda: True, device_count=lambda: 2)
    monkeypatch.setitem(sys.modules, "torch", types.SimpleNamespace(cuda=cuda))  # PyTorch as it looks on a GPU box
    assert resolve_device("auto") == "cuda" and resolve_device("cuda:1") == "cuda:1"
    assert resolve_device("auto", onnxruntime_only=True) == "cpu"
    assert Preparer(CropSettings(), device="auto").device == "cpu"
    with pytest.raises(InputError, match="onnxruntime-gpu"):
        Preparer(CropSettings(), device="cuda")
