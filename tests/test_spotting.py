"""The training-free spotter finds micro-expressions at the times they were rendered, and leaves blinks, head turns,
talking and a neutral face alone; each spotted interval goes through a real model package."""

from pathlib import Path

import numpy as np
import pytest

from inference.face import CropSettings, output_crop_matrix
from inference.recognise import Recogniser, choose_mode, classify_intervals, interval_clips
from inference.spotting import Interval, SpotParams, face_regions, interval_iou, spot, to_rows
from training.synth.faces import FaceSource
from training.synth.long import LongEvent, aligned_frames, render

FPS = 30.0
SIZE = 64  # the bundled demo package's crop
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def source():
    return FaceSource((160, 200), seed=5, face_fraction=0.6)


def _aligned(source, events, seconds=10.0, seed=0, subject=1):
    n = int(seconds * FPS)
    rec = render(source, subject, events, n, FPS, np.random.default_rng(seed))
    return rec, aligned_frames(rec, SIZE)


def _hits(intervals, event, kind):
    return [iv for iv in intervals if iv.kind == kind and interval_iou((iv.onset, iv.offset),
                                                                       (event.onset, event.offset)) >= 0.5]


@pytest.fixture(scope="module")
def busy_recording(source):
    """10 s: three micro-expressions among blinks, a head turn and a macro-expression, at known frames."""
    events = [
        LongEvent("blink", 20, 23, 27),
        LongEvent("micro", 45, 50, 56, "surprise"),
        LongEvent("head", 80, 100, 120),
        LongEvent("blink", 140, 142, 146),
        LongEvent("micro", 165, 169, 175, "positive"),
        LongEvent("macro", 200, 215, 250, "negative"),
        LongEvent("micro", 273, 277, 283, "negative"),
    ]
    rec, frames = _aligned(source, events, seed=1)
    return rec, frames, spot(frames, FPS)


def test_micro_expressions_are_spotted_where_they_were_rendered(busy_recording):
    rec, _, intervals = busy_recording
    for e in rec.events:
        if e.kind == "micro":
            assert len(_hits(intervals, e, "micro")) == 1, (e, intervals)
            hit = _hits(intervals, e, "micro")[0]
            assert abs(hit.apex - e.apex) <= 3 and hit.score > 0
    macro = next(e for e in rec.events if e.kind == "macro")
    assert _hits(intervals, macro, "macro"), intervals  # a 1.7 s expression is macro, not micro
    assert not [iv for iv in intervals if iv.kind == "micro" and iv.onset <= macro.offset and macro.onset <= iv.offset]


def test_blinks_and_head_turns_are_not_micro_expressions(busy_recording):
    rec, _, intervals = busy_recording
    for e in rec.events:
        if e.kind in ("blink", "head"):
            overlapping = [iv for iv in intervals if iv.onset <= e.offset + 3 and e.onset - 3 <= iv.offset]
            assert not overlapping, (e, overlapping)
    assert len(intervals) == 4  # the three micro-expressions and the macro-expression


def test_a_neutral_recording_gives_nothing_and_talking_is_not_reported(source):
    _, still = _aligned(source, [], seconds=4.0, seed=2, subject=2)
    assert spot(still, FPS) == []
    _, talking = _aligned(source, [LongEvent("talk", 25, 50, 95)], seconds=4.0, seed=3, subject=2)
    assert spot(talking, FPS) == []


def test_regions_sit_on_the_aligned_face():
    """The eye, nose and mouth-corner boxes contain the landmarks the aligner puts there, at any crop size."""
    landmarks = np.array([[204.2, 100.5], [246.3, 102.9], [224.4, 128.5], [201.8, 139.3], [244.9, 141.7]])
    for size, margin in ((64, 0.1), (112, 0.1), (96, 0.3)):
        crop = CropSettings(size=size, margin=margin)
        m = output_crop_matrix(landmarks, crop)
        pts = landmarks @ m[:, :2].T + m[:, 2]
        boxes = face_regions(size, margin)
        for name, p in zip(("eye_left", "eye_right", "nose", "mouth_left", "mouth_right"), pts):
            x0, y0, x1, y1 = boxes[name]
            assert x0 <= p[0] <= x1 and y0 <= p[1] <= y1, (size, name, p, boxes[name])


def test_intervals_rows_modes_and_clips():
    iv = Interval(30, 36, 44, "micro", 7.5)
    assert iv.length == 15 and iv.seconds(30.0) == (1.0, 1.2, 1.5)
    assert interval_iou((0, 9), (5, 14)) == pytest.approx(5 / 15)
    row = to_rows([iv], 30.0, path="a.mp4")[0]
    assert row["path"] == "a.mp4" and row["start_s"] == 1.0 and row["end_s"] == 1.5 and row["kind"] == "micro"
    with pytest.raises(ValueError):
        Interval(5, 3, 9, "micro", 1.0)
    assert choose_mode(60, 200.0) == "whole"  # a 0.3 s dataset clip stays one expression
    assert choose_mode(300, 30.0) == "spot" and choose_mode(300, None) == "whole"
    assert choose_mode(30, 30.0, "spot") == "spot" and choose_mode(3000, 30.0, "whole") == "whole"
    frames = np.zeros((100, 8, 8, 3), np.uint8)
    frames[:, 0, 0, 0] = np.arange(100)
    clips = interval_clips(frames, [Interval(1, 3, 5, "micro", 1.0), Interval(90, 95, 99, "macro", 1.0)], 30.0, 0.1)
    assert [(c.start, c.end) for c in clips] == [(0, 8), (87, 99)]
    assert clips[0].frames[:, 0, 0, 0].tolist() == list(range(0, 9))


def test_each_spotted_micro_expression_is_classified_by_a_package(busy_recording):
    from inference.preprocess import PreparedClip
    from inference.runtime import Predictor

    _, frames, intervals = busy_recording
    predictor = Predictor(ROOT / "demo" / "default_model", device="cpu", engine="onnxruntime")
    prepared = PreparedClip(frames, {"faces_seen": 1}, {}, "busy", FPS, input_frames=len(frames))
    found, signals = classify_intervals(predictor, prepared, SpotParams())
    assert len(signals.contrast) == len(frames)
    assert [p.interval for p in found] == intervals  # the same spotter
    micro = [p for p in found if p.interval.kind == "micro"]
    assert len(micro) == 3 and all(p.prediction.top in predictor.labels for p in micro)
    # each interval's frames go to the package as they are; an RGB package resamples them itself, so the
    # probabilities are those of the interval resampled to the model's frame count beforehand
    from dataclasses import replace

    from inference.temporal import resample

    for p in micro:
        assert len(p.prediction.aligned) == p.end - p.start + 1
        before = predictor.classify([replace(prepared, frames=resample(frames[p.start:p.end + 1],
                                                                       predictor.n_frames))])[0]
        np.testing.assert_allclose(p.prediction.probs, before.probs, atol=1e-6)
    assert all(p.prediction is None for p in found if p.interval.kind == "macro")
    row = micro[0].as_dict(FPS)
    assert row["label"] in predictor.labels and abs(sum(row["probs"].values()) - 1) < 1e-4
    # "no micro-expression found" is an answer, not an error
    still = PreparedClip(frames[:30].copy(), {"faces_seen": 1}, {}, "still", FPS, input_frames=30)
    still.frames[:] = frames[0]
    assert classify_intervals(predictor, still)[0] == []


def test_spot_and_classify_a_recording_file(source, tmp_path):
    """A video file through a real package: decoded, aligned by the real detector, spotted, each micro-expression
    classified; a half-second clip keeps the whole-clip mode."""
    from inference.runtime import Predictor
    from inference.video import write_video

    events = [LongEvent("blink", 15, 18, 22), LongEvent("micro", 45, 50, 56, "surprise"),
              LongEvent("blink", 85, 87, 91), LongEvent("micro", 115, 119, 125, "positive")]
    rec = render(source, 3, events, 150, FPS, np.random.default_rng(4))
    path = tmp_path / "take.mp4"
    write_video(path, rec.frames, FPS)
    predictor = Predictor(ROOT / "demo" / "default_model", device="cpu", engine="onnxruntime")
    result = predictor.analyse(path)  # the Python API: a thin method over inference.recognise
    assert result.mode == "spot" and result.prepared.n_frames == 150
    found = [p.interval for p in result.intervals]
    assert all(_hits(found, e, "micro") for e in events if e.kind == "micro"), found
    assert len(found) == 2, found  # nothing for the blinks
    assert all(p.prediction.top in predictor.labels for p in result.micro)
    short = tmp_path / "short.mp4"
    write_video(short, rec.frames[40:58], FPS)
    whole = Recogniser(predictor)(short)
    assert whole.mode == "whole" and whole.intervals == [] and whole.whole.top in predictor.labels


def test_the_peaks_left_out_say_why_and_nothing_else_changes(busy_recording):
    """Every motion peak the spotter grows and leaves out carries its reason (a blink, head movement, …), in time order;
    the intervals are those :func:`spot` returns: recording the reasons changes no decision."""
    from inference.spotting import REASONS, motion_signals, spot_events

    rec, frames, intervals = busy_recording
    sig = motion_signals(frames, FPS)
    found, rejected = spot_events(sig, len(frames), FPS)
    assert found == intervals
    assert [r.onset for r in rejected] == sorted(r.onset for r in rejected) and all(r.reason in REASONS
                                                                                      for r in rejected)
    for e in rec.events:
        near = [r.reason for r in rejected if r.onset <= e.offset + 3 and e.onset - 3 <= r.offset]
        if e.kind == "blink":
            assert near == ["blink"], (e, rejected)
        elif e.kind == "head":  # the head's motion is removed first: a peak it leaves, if any, is said to be it
            assert set(near) <= {"head"}, (e, rejected)
        else:
            assert near == [], (e, rejected)
    words = rejected[0].describe(FPS)
    assert words.startswith("a motion peak at 0.") and "was left out: a blink (both eyes alike" in words, words
    assert rejected[0].as_dict(FPS)["why"].startswith("a blink")


def test_a_neutral_recording_explains_its_silence(source):
    """Nothing over the threshold: no interval, and at most the strongest peak below it, said as such."""
    from inference.spotting import Rejected, motion_signals, spot_events

    _, frames = _aligned(source, [], seconds=4.0, seed=3)
    sig = motion_signals(frames, FPS)
    found, rejected = spot_events(sig, len(frames), FPS)
    assert found == [] and len(rejected) <= 2, rejected  # noise: a peak or two at most, each with its reason
    for r in rejected:
        assert r.describe(FPS).startswith("a motion peak at ") and r.words(FPS), r
    r = Rejected(10, 12, 20, "threshold", 0.5, 0.8)
    assert r.words(30.0) == "below the threshold (motion 0.50 of the 0.80 needed)" and r.length == 11


def test_auto_mode_classifies_a_lab_clip_whole_and_spots_the_rest(source):
    """The rule (``AUTO_RULE``) on aligned faces: one expression from onset to offset → whole; a still face, a blink
    late in the clip, a movement over early, or a longer recording → spot."""
    from inference.recognise import AUTO_RULE, ONE_EXPRESSION_MAX_S, choose_mode, one_expression

    lab = FaceSource((480, 640), seed=11).micro(1, "surprise", 50, np.random.default_rng(3))
    crop = CropSettings(size=SIZE)
    face = np.stack([_warp(f, lab, crop) for f in lab.frames[lab.onset:lab.offset + 1]])
    whole, why = one_expression(face, FPS)
    assert whole, why
    cases = {"still": [], "late blink": [LongEvent("blink", 28, 31, 35)],
             "over early": [LongEvent("micro", 2, 8, 14, "surprise")]}
    for name, events in cases.items():
        _, frames = _aligned(source, events, seconds=1.5, seed=4)
        whole, why = one_expression(frames, FPS)
        assert not whole, (name, why)
    assert choose_mode(int(ONE_EXPRESSION_MAX_S * FPS) + 1, FPS) == "spot" and "3 s" in AUTO_RULE


def _warp(frame, clip, crop):
    """The synthetic clip's face cropped as the aligner would (from its face box: eyes level already)."""
    import cv2

    x0, y0, x1, y1 = clip.face_box
    side = max(x1 - x0, y1 - y0)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    patch = frame[int(cy - side / 2):int(cy + side / 2), int(cx - side / 2):int(cx + side / 2)]
    return cv2.resize(patch, (crop.size, crop.size), interpolation=cv2.INTER_AREA)
