"""The real MTCNN on a real public-domain face, moved by known shifts, rotations and scales."""

import numpy as np
import pytest

from inference.device import cuda_available
from inference.errors import InputError
from inference.face import CropSettings, align_clip, frame_shifts
from tests.helpers import animate, apply, eye_angle_deg, midline_x, two_faces


def _crop_geometry(aligned, mats, reference_landmarks):
    """Eye-line angle and midline offset (crop pixels) of the true landmarks in each output frame."""
    s = aligned.frames.shape[2]
    angles, offsets = [], []
    for m_crop, m_place in zip(aligned.matrices, mats):
        true = apply(m_crop, apply(m_place, reference_landmarks))
        angles.append(eye_angle_deg(true))
        offsets.append(midline_x(true) - (s - 1) / 2)
    return np.array(angles), np.array(offsets)


@pytest.mark.parametrize("angle,scale,shift", [
    (0, 1.0, (0, 0)),
    (15, 1.0, (20, -20)),
    (-15, 1.0, (-20, 20)),
    (10, 0.7, (20, 10)),
    (-12, 1.3, (-15, -20)),
    (7, 1.6, (5, 15)),
])
def test_alignment_levels_eyes_and_centres_midline(face_image, aligner, reference_landmarks, angle, scale, shift):
    frames, mats = animate(face_image, 12, angle=angle, scale=scale, shift=shift, jitter=0.3, seed=1)
    aligned = aligner.align(frames, CropSettings(size=112))
    assert aligned.frames.shape == (12, 112, 112, 3) and aligned.frames.dtype == np.uint8
    angles, offsets = _crop_geometry(aligned, mats, reference_landmarks)
    assert np.abs(angles).max() < 1.0, angles
    assert np.abs(offsets).max() < 1.5, offsets
    assert aligned.meta["faces_seen"] == 1 and aligned.meta["mode"] == "fixed"
    # the head roll the aligner reports is the placement's plus the astronaut's own tilt
    assert aligned.meta["head_roll_deg"] == pytest.approx(eye_angle_deg(apply(mats[0], reference_landmarks)), abs=1.0)


def test_jittered_clip_gives_a_steady_crop(face_image, aligner):
    frames, _ = animate(face_image, 60, angle=5, shift=(10, -5), jitter=0.25, seed=3)
    aligned = aligner.align(frames, CropSettings(size=112))
    assert aligned.meta["mode"] == "fixed"
    assert np.ptp(aligned.matrices, axis=0).max() == 0  # one transform for the whole clip
    drift = frame_shifts(aligned.frames)
    assert drift.max() < 1.0, drift.max()


def test_size_and_margin_are_configurable(face_image, aligner, reference_landmarks):
    frames, mats = animate(face_image, 6, angle=-6, shift=(12, 4))
    small = aligner.align(frames, CropSettings(size=113, margin=0.3))
    tight = aligner.align(frames, CropSettings(size=64, margin=0.0))
    assert small.frames.shape[1:3] == (113, 113) and tight.frames.shape[1:3] == (64, 64)
    for aligned in (small, tight):
        angles, offsets = _crop_geometry(aligned, mats, reference_landmarks)
        assert np.abs(angles).max() < 1.0 and np.abs(offsets).max() < 1.5
    # a larger margin shows more around the face: the eyes are closer together in the crop
    iod = lambda a: np.linalg.norm(np.diff(apply(a.matrices[0], apply(mats[0], reference_landmarks))[:2], axis=0))  # noqa: E731
    assert iod(small) / 113 < iod(tight) / 64


def test_moving_head_is_tracked_smoothly(face_image, aligner, reference_landmarks):
    n = 40
    frames, mats = [], []
    for i in range(n):
        f, m = animate(face_image, 1, angle=-4 + 8 * i / (n - 1), shift=(-25 + 50 * i / (n - 1), 0))
        frames.append(f[0]), mats.append(m[0])
    aligned = aligner.align(np.stack(frames), CropSettings(size=112))
    assert aligned.meta["mode"] == "tracked"
    angles, offsets = _crop_geometry(aligned, mats, reference_landmarks)
    assert np.abs(angles).max() < 1.0 and np.abs(offsets).max() < 1.5
    assert frame_shifts(aligned.frames).max() < 1.0


def test_several_faces_the_largest_wins(face_image, aligner, reference_landmarks):
    canvas, big = two_faces(face_image)
    frames = np.repeat(canvas[None], 5, axis=0)
    aligned = aligner.align(frames, CropSettings())
    assert aligned.meta["faces_seen"] == 2
    angles, offsets = _crop_geometry(aligned, [big] * 5, reference_landmarks)
    assert np.abs(angles).max() < 1.0 and np.abs(offsets).max() < 1.5


def test_no_face_names_the_frames_tried(aligner):
    rng = np.random.default_rng(0)
    sky = np.linspace(60, 200, 480, dtype=np.float32)[None, :, None, None] * np.ones((10, 1, 640, 3), np.float32)
    frames = np.clip(sky + rng.normal(0, 4, sky.shape), 0, 255).astype(np.uint8)
    with pytest.raises(InputError, match=r"no face found \(looked at frames 0, 9 of 10\)"):
        aligner.align(frames, CropSettings(), source="sky.mp4")


def test_refined_landmarks_agree_with_mtcnn(face_image, aligner, reference_landmarks):
    _, _, points, _ = aligner.detect(face_image[None])
    assert np.abs(points[0][0] - reference_landmarks).max() < 3.0


@pytest.mark.skipif(not cuda_available(), reason="needs a CUDA GPU and onnxruntime-gpu")
def test_cuda_matches_cpu(face_image, reference_landmarks):
    frames, mats = animate(face_image, 8, angle=9, shift=(10, 10))
    cpu = align_clip(frames, CropSettings(), device="cpu")
    gpu = align_clip(frames, CropSettings(), device="cuda")
    assert np.abs(cpu.matrices - gpu.matrices).max() < 0.05


def test_face_filling_the_frame_is_found(face_image, aligner):
    """The datasets' cropped releases are tight faces; the detector needs a border to see them."""
    tight = np.ascontiguousarray(face_image[70:190, 165:285])
    frames = np.repeat(tight[None], 4, axis=0)
    aligned = aligner.align(frames, CropSettings(size=64))
    assert aligned.meta["faces_seen"] == 1
    lm = apply(aligned.matrices[0], np.array(aligned.meta["landmarks"]))
    assert abs(eye_angle_deg(lm)) < 1.0 and abs(midline_x(lm) - 31.5) < 1.5
