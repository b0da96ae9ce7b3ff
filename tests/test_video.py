import struct
import subprocess
import sys

import av
import cv2
import numpy as np
import pytest

from inference.errors import InputError
from inference.video import VideoLimits, list_frame_files, natural_key, read_clip, write_video
from tests import recordings as recordings_module
from tests.recordings import recordings_fixture  # noqa: F401 — the session fixture `recordings`


@pytest.fixture(scope="module")
def small_clip(face_image):
    """12 frames 128x96 of the real face, drifting right a pixel a frame (so frame order is visible)."""
    base = cv2.resize(face_image[20:260, 100:420], (128, 96), interpolation=cv2.INTER_AREA)
    return np.stack([np.roll(base, 2 * i, axis=1) for i in range(12)])


def _close(a: np.ndarray, b: np.ndarray, tol: float = 6.0) -> bool:
    return a.shape == b.shape and float(np.abs(a.astype(np.float32) - b).mean()) < tol


@pytest.mark.parametrize("ext", [".mp4", ".avi", ".mov", ".mkv", ".webm"])
def test_video_containers_round_trip(tmp_path, small_clip, ext):
    path = tmp_path / f"clip{ext}"
    write_video(path, small_clip, fps=100)
    clip = read_clip(path)
    assert clip.frames.dtype == np.uint8 and clip.frames.shape == small_clip.shape
    assert clip.fps == pytest.approx(100)
    assert clip.rotation == 0
    for i in (0, 5, 11):
        assert _close(clip.frames[i], small_clip[i]), f"frame {i} differs"


def test_frame_folder_is_ordered_numerically(tmp_path, small_clip):
    # The datasets' names: reg_img46.jpg … reg_img100.jpg; a string sort would put 100 first.
    for i, frame in enumerate(small_clip[:6]):
        cv2.imwrite(str(tmp_path / f"reg_img{46 + 18 * i}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    (tmp_path / "Thumbs.db").write_bytes(b"\0" * 10)
    names = [p.name for p in list_frame_files(tmp_path)]
    assert names == ["reg_img46.png", "reg_img64.png", "reg_img82.png", "reg_img100.png", "reg_img118.png",
                     "reg_img136.png"]
    clip = read_clip(tmp_path, fps=200)
    assert clip.fps == 200 and clip.frames.shape == (6, 96, 128, 3)
    np.testing.assert_array_equal(clip.frames, small_clip[:6])  # PNG is lossless: exact, in order


@pytest.mark.parametrize("ext", [".bmp", ".jpg"])
def test_frame_folder_formats(tmp_path, small_clip, ext):
    for i, frame in enumerate(small_clip[:3]):
        cv2.imwrite(str(tmp_path / f"006_1_2_{i:04d}{ext}"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    clip = read_clip(tmp_path)
    assert clip.fps is None and clip.n_frames == 3
    assert all(_close(a, b) for a, b in zip(clip.frames, small_clip[:3]))


def test_natural_key():
    names = ["img10.jpg", "img9.jpg", "IMG1.jpg", "img100.jpg", "img2.jpg"]
    assert sorted(names, key=natural_key) == ["IMG1.jpg", "img2.jpg", "img9.jpg", "img10.jpg", "img100.jpg"]


def _patch_tkhd_matrix(path, matrix):
    """Write a display matrix into the video track header, the way phones mark portrait video."""
    data = bytearray(path.read_bytes())
    pos = data.index(b"tkhd") - 4
    version = data[pos + 8]
    offset = pos + (48 if version == 0 else 60)
    data[offset:offset + 36] = struct.pack(">9i", *matrix)
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("matrix,k", [
    ((0, 1 << 16, 0, -(1 << 16), 0, 0, 0, 0, 1 << 30), -1),  # phone portrait: shown turned 90° clockwise
    ((0, -(1 << 16), 0, 1 << 16, 0, 0, 0, 0, 1 << 30), 1),   # shown turned 90° counter-clockwise
    ((-(1 << 16), 0, 0, 0, -(1 << 16), 0, 0, 0, 1 << 30), 2),  # upside down
])
def test_rotation_metadata_is_honoured(tmp_path, small_clip, matrix, k):
    path = tmp_path / "phone.mp4"
    write_video(path, small_clip, fps=30)
    _patch_tkhd_matrix(path, matrix)
    clip = read_clip(path)
    expected = np.rot90(small_clip, k=k, axes=(1, 2))
    assert clip.frames.shape == expected.shape
    assert _close(clip.frames[3], expected[3])
    assert not _close(clip.frames[3], np.rot90(small_clip, k=k + 2, axes=(1, 2))[3])
    assert clip.rotation == (90 * k) % 360


# ---------------------------------------------------------------- bad input: one error type, a clear message


def _write_audio_only(path):
    with av.open(str(path), "w") as out:
        stream = out.add_stream("aac", rate=44100)
        for i in range(10):
            samples = np.sin(np.arange(1024, dtype=np.float32) * 0.05 + i)[None]
            frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 44100, i * 1024
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def _write_faststart(path, frames):
    with av.open(str(path), "w", options={"movflags": "faststart"}) as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        for f in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def test_bad_files_give_clear_errors(tmp_path, small_clip):
    cases = {}
    (tmp_path / "empty.mp4").touch()
    cases["empty.mp4"] = "empty"
    (tmp_path / "notes.mp4").write_text("these are my notes, not a video\n" * 50)
    cases["notes.mp4"] = "not a readable video"
    write_video(tmp_path / "full.mp4", small_clip, fps=25)
    data = (tmp_path / "full.mp4").read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 2])  # index at the end: lost
    cases["cut.mp4"] = "truncated"
    _write_faststart(tmp_path / "fast.mp4", np.concatenate([small_clip] * 3))
    data = (tmp_path / "fast.mp4").read_bytes()
    (tmp_path / "fastcut.mp4").write_bytes(data[: len(data) // 2])  # index first: opens, ends early
    cases["fastcut.mp4"] = "truncated"
    _write_audio_only(tmp_path / "voice.mp4")
    cases["voice.mp4"] = "no video stream"
    (tmp_path / "face.gif").write_bytes(b"GIF89a")
    cases["face.gif"] = "not a supported video type"
    cases["missing.mp4"] = "no such file"
    for name, words in cases.items():
        with pytest.raises(InputError, match=words) as info:
            read_clip(tmp_path / name)
        assert name in str(info.value)


def test_bad_folders_give_clear_errors(tmp_path, small_clip):
    empty = tmp_path / "nothing"
    empty.mkdir()
    (empty / "readme.txt").write_text("no frames here")
    with pytest.raises(InputError, match="no frame images"):
        read_clip(empty)
    broken = tmp_path / "broken"
    broken.mkdir()
    cv2.imwrite(str(broken / "img1.png"), small_clip[0])
    (broken / "img2.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(InputError, match="img2.png.*cannot be read"):
        read_clip(broken)
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    cv2.imwrite(str(mixed / "img1.png"), small_clip[0])
    cv2.imwrite(str(mixed / "img2.png"), small_clip[1][:50])
    with pytest.raises(InputError, match="one size"):
        read_clip(mixed)


def test_limits(tmp_path, small_clip):
    path = tmp_path / "clip.mp4"
    write_video(path, small_clip, fps=10)  # 12 frames, 1.2 s, 128x96
    with pytest.raises(InputError, match="more than 10 frames"):
        read_clip(path, VideoLimits(max_frames=10))
    with pytest.raises(InputError, match="lasts 1.2 s"):
        read_clip(path, VideoLimits(max_seconds=1.0))
    with pytest.raises(InputError, match="128x96 pixels"):
        read_clip(path, VideoLimits(max_pixels=100 * 100))
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(4):
        cv2.imwrite(str(folder / f"{i}.png"), small_clip[i])
    with pytest.raises(InputError, match="more than 3 frames"):
        read_clip(folder, VideoLimits(max_frames=3))
    assert read_clip(path, VideoLimits(max_frames=12, max_seconds=1.3)).n_frames == 12


def test_ffmpeg_prints_nothing_for_bad_input(tmp_path):
    """A corrupt upload must not spray FFmpeg's own log over the terminal either."""
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x13" * 4000)
    code = ("import sys; from inference.video import read_clip; from inference.errors import InputError\n"
            f"try: read_clip({str(bad)!r})\nexcept InputError as e: print('caught')")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=str(__import__('pathlib').Path(__file__).parent.parent))
    assert res.stdout.strip() == "caught"
    assert res.stderr == ""


# ---------------------------------------------------------------- real recordings: decoding within a budget


def test_recordings_decode_to_their_truth(recordings):
    for rec in (recordings.late_entrance, recordings.two_people, recordings.one_frame):
        clip = read_clip(rec.path)
        assert clip.n_frames == rec.n_frames and clip.size == rec.size and clip.fps == pytest.approx(rec.fps)
        assert clip.scale == 1.0 and clip.original_size == rec.size and not clip.notes
    assert read_clip(recordings.one_frame.path).frames.shape == (1, 240, 320, 3)


def test_a_header_that_over_declares_a_few_frames_is_accepted(recordings):
    rec = recordings.over_declared  # 98 declared, 95 shown (an edit list hides the first 3)
    clip = read_clip(rec.path)
    assert (clip.declared_frames, clip.n_frames) == (98, 95) == (rec.declared_frames, rec.n_frames)
    with av.open(str(rec.path)) as c:
        assert c.streams.video[0].frames == 98  # the header really says 98


def test_webm_without_duration_is_limited_by_what_is_decoded(recordings):
    rec = recordings.webm_without_duration  # 4 s at 10 fps, no duration in the file
    with av.open(str(rec.path)) as c:
        assert c.duration is None and c.streams.video[0].duration is None and not c.streams.video[0].frames
    assert read_clip(rec.path).n_frames == 40
    with pytest.raises(InputError, match=r"lasts at least 3.1 s, more than the limit of 3 s"):
        read_clip(rec.path, VideoLimits(max_seconds=3))
    with pytest.raises(InputError, match="more than 30 frames"):
        read_clip(rec.path, VideoLimits(max_frames=30))
    with pytest.raises(InputError, match="10 frames of 320x240 pixels take more than the 2 MB") as e:  # 9 MB in all
        read_clip(rec.path, VideoLimits(max_bytes=2 * 2 ** 20, min_working_size=320))
    assert str(e.value).endswith("or lower its resolution, or raise the limit (--max-megabytes).")
    with pytest.raises(InputError, match="the 2 MB this server holds for one clip") as e:
        read_clip(rec.path, VideoLimits(max_bytes=2 * 2 ** 20, min_working_size=320, cli_hints=False))
    assert "--" not in str(e.value)
    web = VideoLimits(max_seconds=3, cli_hints=False)
    with pytest.raises(InputError, match="more than the limit of 3 s. Trim it to the expression.$"):
        read_clip(rec.path, web)


def test_frame_size_change_mid_stream(recordings, tmp_path):
    rec = recordings.size_change  # 12 frames 320x240, then 12 frames 480x360: one person, same place
    assert set(rec.sizes) == {(320, 240), (480, 360)}
    clip = read_clip(rec.path)
    assert clip.frames.shape == (24, 240, 320, 3)
    assert clip.notes == ["The frame size changed from 320x240 to 480x360 at frame 12; every frame was brought to "
                          "320x240."]
    # the later frames, scaled, show the person where the first ones do (the room differs only by noise and sway)
    before, after = clip.frames[10].astype(np.float32), clip.frames[14].astype(np.float32)
    assert np.abs(before - after).mean() < 6 < np.abs(before - np.roll(after, 12, axis=1)).mean()
    other = recordings_module.size_change(tmp_path, second=(240, 480), name="wider")  # another shape
    with pytest.raises(InputError, match=r"changes from 320x240 to 480x240 \(another shape\) at frame 12"):
        read_clip(other.path)


def test_large_clips_are_reduced_to_the_working_size(recordings, tmp_path):
    clip = read_clip(recordings.four_k.path)  # 3840x2160 → 960x540
    assert clip.frames.shape == (15, 540, 960, 3) and clip.original_size == (3840, 2160)
    assert clip.scale == pytest.approx(1 / 4) and clip.fps == pytest.approx(60)
    with av.open(str(recordings.four_k.path)) as c:
        full = next(c.decode(video=0)).to_ndarray(format="rgb24")  # the first frame at full size
    assert full.shape == (2160, 3840, 3)
    assert _close(clip.frames[0], cv2.resize(full, (960, 540), interpolation=cv2.INTER_AREA), tol=2.0)
    assert read_clip(recordings.four_k.path, VideoLimits(working_size=1280)).size == (1280, 720)
    # a long clip declared in its header: the working size drops so that the whole clip fits the byte cap
    rec = recordings.over_declared  # 95 frames of 320x240 = 21.9 MB
    fitted = read_clip(rec.path, VideoLimits(max_bytes=8 * 2 ** 20, min_working_size=160))
    w, h = fitted.size
    assert w < 320 and w * h * 3 * 95 <= 8 * 2 ** 20 and abs(w / h - 4 / 3) < 0.02
    with pytest.raises(InputError, match="98 frames of 320x240 pixels take more than the 8 MB this command holds"):
        read_clip(rec.path, VideoLimits(max_bytes=8 * 2 ** 20, min_working_size=320))
    # a folder of large frames is reduced the same way
    for i in range(2):
        cv2.imwrite(str(tmp_path / f"{i}.png"), cv2.resize(full, (1600, 900))[..., ::-1])
    folder = read_clip(tmp_path)
    assert folder.frames.shape == (2, 540, 960, 3) and folder.original_size == (1600, 900)


_MEMORY = """
import gc, json, sys
from inference.video import read_clip
def status(key):  # VmRSS: resident now; VmHWM: the peak of this program (ru_maxrss would carry the forking parent's)
    return next(int(line.split()[1]) * 1024 for line in open("/proc/self/status") if line.startswith(key + ":"))
def rss():
    return status("VmRSS")
def peak():
    return status("VmHWM")
out = {}
read_clip(sys.argv[1]).frames[:1]  # load FFmpeg's libraries and the decoder once
gc.collect()
out["base_peak"], out["before"] = peak(), rss()
clip = read_clip(sys.argv[1])
out["shape"], out["holding"] = list(clip.frames.shape), rss()
del clip
gc.collect()
out["after"], out["peak"] = rss(), peak()
print(json.dumps(out))
"""


def test_a_4k_60fps_clip_decodes_in_bounded_memory(recordings):
    """Measured in a fresh process (its peak resident memory, VmHWM): the decoded 4K clip at full size would be
    373 MB; the reader never holds it, and gives the memory back."""
    import json

    rec = recordings.four_k
    res = subprocess.run([sys.executable, "-c", _MEMORY, str(rec.path)], capture_output=True, text=True, check=True,
                         cwd=str(__import__('pathlib').Path(__file__).parent.parent))
    m = json.loads(res.stdout)
    full = rec.n_frames * 3840 * 2160 * 3
    working = rec.n_frames * 960 * 540 * 3
    assert m["shape"] == [15, 540, 960, 3]
    assert m["peak"] - m["before"] < full / 2, m  # the old reader peaked above 2x full (list of frames + np.stack)
    # the frames are really there while the clip lives, and given back afterwards (measured against "after", not
    # "before": the allocator may hand import-time memory back while decoding, which made holding < before once)
    assert m["holding"] - m["after"] >= 0.9 * working, m


@pytest.mark.parametrize("options", [{}, {"rotation": 90}, {"first_pts": -3}], ids=["plain", "turned", "edit-list"])
def test_a_file_decoded_in_pieces_at_once_is_the_file_decoded_in_one_go(tmp_path, monkeypatch, options):
    """A file with an index and keyframes along it is decoded in pieces at once (one per core): every frame lands at
    its place, the same pixels as one decoder from start to end gives (B-frames, a display matrix, an edit list)."""
    from inference import video

    rng = np.random.default_rng(7)
    texture = cv2.GaussianBlur(rng.integers(0, 255, (140, 180, 3), dtype=np.uint8), (0, 0), 3)
    frames = np.stack([np.roll(texture, (i // 3, 2 * i), axis=(0, 1))[:96, :128] for i in range(160)])
    path = tmp_path / "pieces.mp4"
    video.write_video(path, frames, 30.0, keyframe_every=40, **options)
    used = []
    real = video._read_pieces
    monkeypatch.setattr(video, "_read_pieces", lambda *a: used.append(real(*a)) or used[-1])
    monkeypatch.setattr(video, "_cores", lambda: 2)
    in_pieces = read_clip(path)
    monkeypatch.setattr(video, "_pieces", lambda *a: None)
    in_one_go = read_clip(path)
    assert used and (used[0] is not None or options.get("first_pts")), "the file was not split"
    assert in_pieces.n_frames == in_one_go.n_frames >= 150 and in_pieces.rotation == in_one_go.rotation
    np.testing.assert_array_equal(in_pieces.frames, in_one_go.frames)


def test_the_same_frames_always_give_the_same_file(tmp_path):
    """Issue 30: a recording a test writes must be the same file whatever ran before in the process and whatever
    cores it has. x264's macroblock tree (with B-frames) encoded the same frames into a different file from one call to
    the next (up to 20 grey levels apart once decoded), and the encoders' threads (slices) followed the cores."""
    import hashlib
    import os

    from training.synth.faces import FaceSource
    from training.synth.long import LongEvent, render

    rec = render(FaceSource((120, 160), seed=5, face_fraction=0.6), 3, [LongEvent("micro", 15, 19, 24, "surprise")],
                 45, 30.0, np.random.default_rng(4))
    other = np.random.default_rng(1).integers(0, 255, (10, 64, 64, 3), dtype=np.uint8)
    for ext in (".mp4", ".avi"):
        first, again, one_core = (tmp_path / f"{name}{ext}" for name in ("first", "again", "one_core"))
        write_video(first, rec.frames, 30.0)
        write_video(tmp_path / f"other{ext}", other, 30.0)  # other work in between
        write_video(again, rec.frames, 30.0)
        cpus = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
        if cpus and len(cpus) > 1:
            os.sched_setaffinity(0, {min(cpus)})  # this thread (the encoder's caller) on one core
            try:
                write_video(one_core, rec.frames, 30.0)
            finally:
                os.sched_setaffinity(0, cpus)
        else:
            write_video(one_core, rec.frames, 30.0)
        digests = {p.name: hashlib.sha256(p.read_bytes()).hexdigest()[:12] for p in (first, again, one_core)}
        assert len(set(digests.values())) == 1, digests
