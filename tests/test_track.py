"""The face track over whole recordings (issue 14): real MTCNN on the realistic recordings of tests/recordings.py,
whose truth (who is where on every frame, where the shots cut) is known."""

import csv
import json

import numpy as np
import pytest

from inference.errors import InputError
from inference.face import CropSettings
from inference.preprocess import Preparer
from inference.track import find_shots, track_and_align, track_clip
from inference.video import Clip, read_clip
from tests.recordings import frame, recordings_fixture, room  # noqa: F401 — recordings_fixture: the fixture

CROP = CropSettings(size=64)


def _centre_in_crop(aligned, k: int, centre) -> np.ndarray:
    """Where a face centre (between eyes and mouth, frame px) lands in output frame ``k``, relative to the crop's
    centre: about (0, 0) for the face that was aligned."""
    m = aligned.matrices[k]
    return m[:, :2] @ np.asarray(centre, np.float64) + m[:, 2] - (CROP.size - 1) / 2


def _aligned_person(rec, aligner, who):
    """Align a recording through the track; check every frame used shows ``who`` at the crop's centre."""
    clip = read_clip(rec.path)
    aligned, quality = track_and_align(clip.frames, aligner, CROP, clip.fps, rec.path.name)
    a, b = quality.frames_used
    assert len(aligned.frames) == b - a + 1
    partial = []
    for k, i in enumerate(range(a, b + 1)):
        face = next((f for f in rec.faces[i] if f.who == who), None)
        if face is None:  # not wholly in view: only the frame where the person steps in or out may be used
            partial.append(i)
            continue
        assert np.abs(_centre_in_crop(aligned, k, face.centre)).max() < 0.1 * CROP.size, (i, face)
        for other in (f for f in rec.faces[i] if f.who != who):
            assert np.abs(_centre_in_crop(aligned, k, other.centre)).max() > 0.5 * CROP.size, (i, other)
    assert partial in ([], [a], [b]), partial
    return aligned, quality


def test_late_entrance_is_found_and_the_empty_frames_are_dropped(recordings, aligner):
    rec = recordings.late_entrance
    first = int(np.flatnonzero(rec.present)[0])  # 18: the first frame with the face wholly in view
    aligned, q = _aligned_person(rec, aligner, "A")
    assert abs(q.frames_used[0] - first) <= 1 and q.frames_used[1] == rec.n_frames - 1
    assert q.dropped[0][0] == 0 and q.dropped[0][2] == "no face"
    assert sum(e - s + 1 for s, e, _ in q.dropped) == q.frames_used[0]
    assert q.face_coverage == pytest.approx((rec.n_frames - first) / rec.n_frames, abs=1 / rec.n_frames)
    assert q.faces_seen == 1 and q.shots == [(0, rec.n_frames - 1)]
    assert f"frames {q.frames_used[0]}–{q.frames_used[1]} used" in q.notes[0] and "% of the clip" in q.notes[0]
    assert str(q.frames_used[0]) in aligned.meta["boxes"]  # the aligner started from the track's detections
    person = aligned.meta["track"]["person"]  # per frame looked at: probability, size, state
    assert person[str(q.frames_used[0])]["state"] == "usable" and person[str(q.frames_used[0])]["probability"] > 0.9
    assert all(int(i) >= q.frames_used[0] - 1 for i in person)  # nobody on the empty frames


def test_exit_halfway_drops_the_frames_after_the_exit(recordings, aligner):
    rec = recordings.exit_halfway
    last = int(np.flatnonzero(rec.present)[-1])  # 22
    _, q = _aligned_person(rec, aligner, "A")
    assert q.frames_used[0] == 0 and abs(q.frames_used[1] - last) <= 1
    assert q.face_coverage == pytest.approx(rec.present.mean(), abs=1.5 / rec.n_frames)
    assert q.dropped[-1][1] == rec.n_frames - 1 and q.dropped[-1][2] == "no face"
    # the whole-clip mode (training.prepare: an annotated clip must not lose frames) refuses it, with the reason
    with pytest.raises(InputError, match="must be used whole.*visible in 5[0-9] % of the clip"):
        Preparer(CROP, whole=True)(rec.path)
    short = Preparer(CROP, n_frames=30)(rec.path)  # fewer frames with the face than the model takes: said so
    assert any(f"visible on only {q.frames_used[1] + 1} frames; the model takes 30" in n for n in short.notes)


def test_cuts_within_one_room_are_found():
    """Four shots of one room (a news studio's anchors, two angles on one set): the colours stay, the picture's layout
    jumps at each cut. Before, the colour histogram alone counted them as one shot. A head that moves inside a shot,
    and a person walking in, are no cut."""
    from tests.recordings import SIZE, render

    w, h = SIZE[1], SIZE[0]
    plan = []
    for x, scale in ((0.3, 1.0), (0.7, 0.8), (0.4, 1.3), (0.6, 0.9)):
        plan += [("beige", [("A", x * w, h / 2, scale)])] * 12
    frames, _ = render(plan)
    assert find_shots(np.stack(frames)) == [(0, 11), (12, 23), (24, 35), (36, 47)]
    walk, _ = render([("beige", [("A", x, h / 2, 1.0)]) for x in np.linspace(w + 60, w / 2, 12)])
    assert find_shots(np.stack(walk)) == [(0, 11)]


def test_two_people_with_cuts_one_person_in_one_shot(recordings, aligner):
    rec = recordings.two_people  # A alone | B alone | A (large, left) and B (small, right) together
    clip = read_clip(rec.path)
    assert find_shots(clip.frames) == [(s.start, s.stop - 1) for s in rec.shots()]
    _, q = _aligned_person(rec, aligner, "A")
    last_shot = rec.shots()[-1]
    assert q.frames_used == (last_shot.start, last_shot.stop - 1)  # the longest shot, never across a cut
    assert q.shots == [(s.start, s.stop - 1) for s in rec.shots()] and q.faces_seen == 2
    assert q.dropped == [(0, last_shot.start - 1, "another shot")]
    assert q.notes[0].startswith(f"{round(100 * q.face_coverage)} % of the clip was used")  # faces were everywhere
    assert any("2 shot cuts" in n for n in q.notes) and any("2 faces were seen" in n for n in q.notes)


def test_the_person_is_never_swapped_when_the_larger_one_leaves(aligner):
    """Two people in one shot; the larger leaves after 14 frames and the smaller stays: the track of the larger
    ends there, and the smaller one's frames are never aligned as if they were the same face."""
    w, h = 320, 240
    b = ("B", 0.76 * w, 0.55 * h, 0.65)
    plan = [[("A", 0.3 * w, h / 2, 1.0), b]] * 14 + [[b]] * 8
    frames, faces = zip(*(frame("green", people, i) for i, people in enumerate(plan)))
    aligned, q = track_and_align(np.stack(frames), aligner, CROP, 25.0, "pair")
    assert q.frames_used == (0, 13) and q.dropped == [(14, 21, "another face only")]
    for k in range(14):
        a = next(f for f in faces[k] if f.who == "A")
        assert np.abs(_centre_in_crop(aligned, k, a.centre)).max() < 0.1 * CROP.size


def test_a_brief_miss_is_bridged_an_absence_is_not(aligner):
    """Two frames without the face inside a shot (what a detector's miss looks like) keep the track whole; eight
    (a third of a second) split it, and the longer stretch is used."""
    w, h = 320, 240
    still = [frame("beige", [("A", w / 2, h / 2, 1.0)], i)[0] for i in range(40)]
    empty = frame("beige", [], 0)[0]
    for gone, used in ((range(25, 27), (0, 39)), (range(20, 28), (0, 19))):  # frame 25 is one the track samples
        frames = np.stack([empty if i in gone else f for i, f in enumerate(still)])
        track = track_clip(frames, aligner, 25.0)
        assert all(track.detections.get(i) == [] for i in gone if i in track.detections) and 25 in track.detections
        assert gone.start - 1 in track.detections and gone.stop in track.detections  # the edges were looked at
        assert track.segment == used, (gone, track.segment)


def test_no_usable_face_is_a_clear_error(aligner):
    empty = np.repeat(room("beige")[None], 30, axis=0)
    with pytest.raises(InputError, match=r"empty.mp4: no face found \(looked at frames 0, 25, 29 of 30\)"):
        Preparer(CROP)(Clip(empty, 25.0, "empty.mp4"))
    flash = empty.copy()  # a face on a single frame (a flash cut to another room) is nothing to analyse
    flash[12] = frame("blue", [("A", 160, 120, 1.0)], 12)[0]
    with pytest.raises(InputError, match=r"flash.mp4: no face is visible long enough .*frame 12 of 30"):
        Preparer(CROP)(Clip(flash, 25.0, "flash.mp4"))


def test_one_frame_clip_is_marked(recordings):
    prepared = Preparer(CROP, n_frames=8)(recordings.one_frame.path)
    assert prepared.n_frames == 8 and prepared.quality.frames_used == (0, 0) and prepared.face_coverage == 1.0
    assert any("one frame holds no motion" in n for n in prepared.notes)
    assert prepared.frames_used == [0.0] * 8


def test_a_clean_clip_has_no_notes_and_keeps_every_frame(recordings):
    rec = recordings.over_declared  # 95 frames of one still person
    prepared = Preparer(CROP, n_frames=10)(rec.path)
    assert prepared.quality.frames_used == (0, rec.n_frames - 1) and prepared.face_coverage == 1.0
    assert prepared.notes == [] and prepared.quality.dropped == []
    assert len(prepared.face["track"]["looked_at"]) <= 8  # sparse: about one frame a second, and the ends
    denser = Preparer(CROP, n_frames=10, find_frames=12)(rec.path)  # asked to look at 12 frames at least
    assert len(denser.face["track"]["looked_at"]) >= 12 and denser.quality == prepared.quality


def test_batch_rows_carry_coverage_and_notes_and_old_outputs_resume(tmp_path, recordings):
    from inference.__main__ import RowWriter
    from inference.runtime import Prediction

    prepared = Preparer(CROP, n_frames=4)(recordings.exit_halfway.path)
    labels = ["negative", "positive"]
    pred = Prediction(labels, np.array([0.25, 0.75]), "O", faces_seen=prepared.faces_seen, quality=prepared.quality)
    row = {"path": "exit.mp4", "views": "O", "provider": "cpu", "status": "ok", **pred.as_dict()}
    for name in ("out.csv", "out.jsonl"):
        writer = RowWriter(tmp_path / name, labels)
        writer.start()
        writer.write(row)
    rows = list(csv.DictReader(open(tmp_path / "out.csv")))
    assert prepared.face_coverage < 0.7
    assert float(rows[0]["face_coverage"]) == pytest.approx(prepared.face_coverage, abs=1e-4)
    assert rows[0]["notes"].split(" | ") == prepared.notes and "% of the clip" in rows[0]["notes"]
    line = json.loads((tmp_path / "out.jsonl").read_text())
    assert line["notes"] == prepared.notes and line["face_coverage"] == round(prepared.face_coverage, 4)
    # an output written before these columns existed resumes in its own layout
    old = tmp_path / "old.csv"
    header = RowWriter(old, labels).columns[:-2]
    old.write_text(",".join(header) + "\n" + ",".join(["a.mp4", "ok"] + [""] * (len(header) - 2)) + "\n")
    writer = RowWriter(old, labels)
    assert writer.done() == {"a.mp4"}
    writer.write(row)
    rows = list(csv.reader(open(old)))
    assert rows[0] == header and len(rows[2]) == len(header) and rows[2][0] == "exit.mp4"


def test_pose_and_size_are_judged_from_the_landmarks(aligner, reference_landmarks):
    from inference.track import turned_away

    frontal = np.asarray(reference_landmarks)
    iod = np.linalg.norm(frontal[1] - frontal[0])
    assert not turned_away(frontal)
    side = frontal.copy()
    side[2, 0] += 0.5 * iod  # the nose half an eye distance off the midline: the head turned to one side
    assert turned_away(side)
    upside_down = frontal[[3, 4, 2, 0, 1]]  # the mouth above the eyes
    assert turned_away(upside_down)
    small = np.stack([frame("beige", [("A", 160, 120, 0.55)], i)[0] for i in range(10)])
    prepared = Preparer(CROP)(Clip(small, 25.0, "far.mp4"))
    assert prepared.face_coverage == 1.0 and any("the face is small" in n for n in prepared.notes), prepared.notes


def test_the_decoders_notes_lead_the_verdict(recordings):
    rec = recordings.size_change  # the frame size changes mid-stream: the decoder says so
    said = read_clip(rec.path).notes
    prepared = Preparer(CROP)(rec.path)
    assert said and prepared.notes[:len(said)] == said and prepared.face_coverage == 1.0


def test_a_dim_blurred_face_is_marked_as_low_confidence():
    """A face the detector still finds, but only just (a dark, out-of-focus room: MTCNN's probability ~0.95): the
    verdict says the confidence is low; the same frames sharp and lit carry no such note."""
    import cv2

    sharp = np.stack([frame("beige", [("A", 160, 120, 1.0)], i)[0] for i in range(8)])
    dim = np.stack([cv2.GaussianBlur(f, (0, 0), 3) for f in sharp]).astype(np.float32) * 0.2
    notes = Preparer(CROP)(Clip(dim.round().astype(np.uint8), 25.0, "dim.mp4")).notes
    low = [n for n in notes if n.startswith("low detection confidence")]
    assert low and "blurred, dark or partly hidden" in low[0], notes
    assert 0.9 <= int(low[0].split("(")[1].split("%")[0]) / 100 < 0.97
    assert not any("confidence" in n for n in Preparer(CROP)(Clip(sharp, 25.0, "lit.mp4")).notes)
