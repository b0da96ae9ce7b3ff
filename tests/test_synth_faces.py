"""The synthetic micro-expression generator renders real, alignable faces with learnable, asymmetric motion."""

import cv2
import numpy as np
import pytest

from inference.face import CropSettings, align_clip
from training.smote import smote_clip, smote_plan
from training.synth.faces import FaceSource


def _motion(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Where two frames differ, smoothed so that sensor noise averages out."""
    return cv2.GaussianBlur(np.abs(a.astype(np.float32) - b).mean(-1), (0, 0), 2)


@pytest.fixture(scope="module")
def source():
    return FaceSource((240, 320), seed=3)


def test_identities_are_fixed_by_seed_and_differ_between_subjects(source):
    again = FaceSource((240, 320), seed=3)
    np.testing.assert_array_equal(source.identity(1).image, again.identity(1).image)
    a, b = source.identity(1).image.astype(int), source.identity(2).image.astype(int)
    assert np.abs(a - b).mean() > 10  # another face: geometry, tone, light, placement
    assert FaceSource((240, 320), seed=4).identity(1).image.tolist() != source.identity(1).image.tolist()


def test_clips_have_an_envelope_and_local_asymmetric_motion(source):
    rng = np.random.default_rng(0)
    stronger_side_right = 0
    for k in range(8):
        clip = source.micro(1 + k % 3, ["happiness", "surprise", "disgust", "anger"][k % 4], 24, rng)
        assert clip.frames.shape == (24, 240, 320, 3) and clip.frames.dtype == np.uint8
        assert 0 <= clip.onset < clip.apex < clip.offset <= 23
        aligned = align_clip(clip.frames, CropSettings(size=96)).frames
        motion = _motion(aligned[clip.apex], aligned[clip.onset])
        still = _motion(aligned[clip.onset + 1], aligned[clip.onset])
        assert motion.max() > 2 * still.max()  # the expression moves more than noise and jitter do
        left, right = motion[:, :48].max(), motion[:, 48:].max()  # the strongest movement is on `side`
        assert (left > right) == (clip.side == "left"), (k, clip.side, left, right)
        stronger_side_right += clip.side == "right"
    assert 0 < stronger_side_right < 8  # the side is drawn per clip


def test_micro_expressions_are_learnable_across_subjects(source):
    """Nearest-centroid on aligned apex−onset differences, leave-one-subject-out, beats chance clearly."""
    rng = np.random.default_rng(1)
    classes = ["happiness", "surprise", "disgust"]
    feats, labels, subjects = [], [], []
    for subject in range(1, 6):
        for c, emotion in enumerate(classes):
            for _ in range(2):
                clip = source.micro(subject, emotion, 16, rng)
                aligned = align_clip(clip.frames, CropSettings(size=64)).frames.astype(np.float32).mean(-1)
                diff = aligned[clip.apex] - aligned[clip.onset]
                diff = np.abs(diff[:, :32]) + np.abs(diff[:, 32:][:, ::-1])  # fold the halves: side-independent
                feats.append((diff / (np.linalg.norm(diff) + 1e-6)).ravel())
                labels.append(c)
                subjects.append(subject)
    feats, labels, subjects = np.array(feats), np.array(labels), np.array(subjects)
    correct = 0
    for s in np.unique(subjects):
        train, test = subjects != s, subjects == s
        centroids = np.stack([feats[train & (labels == c)].mean(0) for c in range(3)])
        pred = np.argmax(feats[test] @ centroids.T, axis=1)
        correct += int((pred == labels[test]).sum())
    accuracy = correct / len(labels)
    assert accuracy > 0.6, accuracy  # chance is 1/3


def test_macro_moves_more_than_micro_and_actions_render(source):
    rng = np.random.default_rng(2)
    micro = source.micro(1, "surprise", 12, rng)
    macro = source.macro(1, "surprise", 12, rng)
    def expression_motion(c):  # inside the face, beyond what one frame of jitter and noise gives
        x0, y0, x1, y1 = c.face_box
        f = c.frames[:, y0:y1, x0:x1]
        return (_motion(f[c.apex], f[c.onset]) - _motion(f[c.onset + 1], f[c.onset])).clip(0).mean()

    assert expression_motion(macro) > 2 * expression_motion(micro)
    a1 = source.action("Basketball", 10, rng)
    a2 = source.action("Basketball", 10, rng)
    assert a1.frames.shape == (10, 240, 320, 3) and a1.side == "none"
    assert np.abs(a1.frames[-1].astype(float) - a1.frames[0]).mean() > 1  # something moves
    assert a2.frames.shape == a1.frames.shape


def test_smote_draws_only_from_training_subjects():
    rng = np.random.default_rng(0)
    subjects = [1, 1, 1, 2, 2, 3, 3, 3, 3, 4]
    labels = ["a", "a", "b", "a", "c", "b", "a", "a", "c", "b"]
    for test_subject in (1, 2, 3, 4):
        train = set(subjects) - {test_subject}
        plan = smote_plan(labels, subjects, train, rng)
        train_idx = [i for i, s in enumerate(subjects) if s in train]
        for p in plan:
            assert subjects[p.first] != test_subject and subjects[p.second] != test_subject
            assert labels[p.first] == labels[p.second] == p.label
            assert 0.0 <= p.lam <= 1.0
        counts = {}
        for i in train_idx:
            counts[labels[i]] = counts.get(labels[i], 0) + 1
        for p in plan:
            counts[p.label] += 1
        assert len(set(counts.values())) == 1  # balanced to the majority class
    x1 = np.full((2, 4, 4, 3), 200, np.uint8)
    x2 = np.full((2, 4, 4, 3), 100, np.uint8)
    assert smote_clip(x1, x2, 0.25)[0, 0, 0, 0] == 125
    with pytest.raises(ValueError):
        smote_clip(x1, x2[:1], 0.5)
