import struct
import subprocess
import sys

import av
import cv2
import numpy as np
import pytest

from inference.errors import InputError
from inference.video import VideoLimits, list_frame_files, natural_key, read_clip, write_video


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
