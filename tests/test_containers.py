"""Containers as they come (issue 28): audio or data before the picture, several video streams (the first that
decodes is used, and a note says so), a stream this FFmpeg cannot decode or that holds no packet, a timecode track,
an attached cover picture. Every file is made here with PyAV, small and fast, and read both ways the decoder reads a
file: in pieces at once (a seekable file of at least 2 x PIECE_FRAMES frames on two cores) and with one decoder."""

import csv
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from inference import video
from inference.errors import InputError
from inference.video import read_clip

ROOT = Path(__file__).resolve().parent.parent
N, FPS = 100, 25.0  # 2 x PIECE_FRAMES and more: a seekable file is split into pieces


def _texture(seed: int) -> np.ndarray:
    """N frames 96x64 of a smooth random texture drifting right and down (frame order and content are visible)."""
    rng = np.random.default_rng(seed)
    texture = cv2.GaussianBlur(rng.integers(0, 255, (120, 260, 3), dtype=np.uint8), (0, 0), 3)
    return np.stack([np.roll(texture, (i // 4, 2 * i), axis=(0, 1))[:64, :96] for i in range(N)])


A, B = _texture(1), _texture(2)  # the picture to find, and another one


def _jpeg(color: int = 200) -> bytes:
    return cv2.imencode(".jpg", np.full((40, 40, 3), color, np.uint8))[1].tobytes()


def _mux(path: Path, streams: list, timecode: bool = False) -> Path:
    """Write a file whose streams are made in the order given (the file lists them in that order, except that MP4 and
    Matroska put a cover picture after the others and MOV/MP4 a timecode track last):
    ("video", frames) H.264 with a keyframe every N / 2 frames; ("audio", None) AAC as long as the clip; ("data", None)
    a binary data track (MP4); ("garbage", None) an H.264 track whose packets are noise; ("no decoder", None) a track in
    EVC, a codec FFmpeg has no decoder for here; ("empty", None) an H.264 track without a packet (only Matroska keeps
    it); ("cover", None) an attached picture (JPEG). ``timecode``: a timecode on the picture (MOV and MP4 write it as
    a data track)."""
    with av.open(str(path), "w") as out:
        made = []
        for kind, content in streams:
            if kind in ("video", "empty"):
                s = out.add_stream("libx264", rate=Fraction(int(FPS)))
                s.width, s.height, s.pix_fmt = 96, 64, "yuv420p"
                s.codec_context.gop_size, s.codec_context.thread_count = N // 2, 1
                if timecode:
                    s.metadata["timecode"] = "01:00:00:00"
            elif kind == "audio":
                s = out.add_stream("aac", rate=44100)
            elif kind == "data":
                s = out.add_data_stream("bin_data")
            elif kind in ("garbage", "no decoder"):
                s = out.add_mux_stream("h264" if kind == "garbage" else "evc", width=96, height=64,
                                       rate=Fraction(int(FPS)))
            elif kind == "cover":
                if path.suffix == ".mkv":
                    out.add_attachment("cover.jpg", "image/jpeg", _jpeg())
                    continue
                s = out.add_mux_stream("mjpeg", width=40, height=40)
                s.disposition = av.stream.Disposition.attached_pic
            made.append((kind, content, s))
        for kind, content, s in made:
            if kind == "video":
                for i, img in enumerate(content):
                    frame = av.VideoFrame.from_ndarray(img, format="rgb24")
                    frame.pts = i
                    out.mux(s.encode(frame))
                out.mux(s.encode())
            elif kind == "audio":
                for i in range(int(N / FPS * 44100 / 1024) + 1):
                    samples = np.sin(np.arange(1024, dtype=np.float32) * 0.05 + i)[None]
                    frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
                    frame.sample_rate, frame.pts = 44100, i * 1024
                    out.mux(s.encode(frame))
                out.mux(s.encode())
            elif kind in ("data", "garbage", "no decoder", "cover"):
                rng = np.random.default_rng(3)
                count = {"data": 4, "cover": 1}.get(kind, N)
                for i in range(count):
                    payload = _jpeg() if kind == "cover" else rng.integers(0, 255, 300, dtype=np.uint8).tobytes()
                    packet = av.Packet(payload)
                    packet.stream, packet.time_base = s, Fraction(1, int(FPS))
                    packet.pts = packet.dts = i * (N // count)
                    packet.is_keyframe = i == 0 or kind != "garbage"
                    out.mux(packet)
    return path


def _both_ways(path: Path, monkeypatch):
    """The file read in pieces at once (two cores; only a seekable container is split) and with one decoder; returns
    both clips and whether the pieces were used."""
    used, real = [], video._read_pieces
    with monkeypatch.context() as m:
        m.setattr(video, "_cores", lambda: 2)
        m.setattr(video, "_read_pieces", lambda *a: used.append(real(*a)) or used[-1])
        in_pieces = read_clip(path)
    with monkeypatch.context() as m:
        m.setattr(video, "_pieces", lambda *a: None)
        in_one_go = read_clip(path)
    return in_pieces, in_one_go, bool(used) and used[0] is not None


def _shows(clip, frames: np.ndarray, other: np.ndarray) -> bool:
    """The clip is ``frames`` (as encoded), not ``other``."""
    def diff(a, b):
        return float(np.abs(a.astype(np.float32) - b).mean())
    return clip.frames.shape == frames.shape and all(
        diff(clip.frames[i], frames[i]) < 6 < diff(clip.frames[i], other[i]) for i in (0, N // 2, N - 1))


# name, streams, timecode, the file's stream types in order, the note ("" none), the picture decoded
CASES = [
    ("audio_first.mov", [("audio", None), ("video", A)], True, ["audio", "video", "data"], "", A),
    ("audio_first.mp4", [("audio", None), ("video", A)], False, ["audio", "video"], "", A),
    ("data_first.mp4", [("data", None), ("audio", None), ("video", A)], True, ["data", "audio", "video", "data"], "",
     A),
    ("two_videos.mp4", [("video", A), ("video", B)], False, ["video", "video"],
     "The file holds 2 video streams; stream #0 (h264 96x64), the first one, was analysed. Stream #1 was not "
     "analysed.", A),
    ("undecodable_first.mov", [("audio", None), ("garbage", None), ("video", B), ("video", A)], False,
     ["audio", "video", "video", "video"],
     "The file holds 3 video streams; stream #2 (h264 96x64), the first that decodes, was analysed. Stream #1 does "
     "not decode: Invalid data found when processing input. Stream #3 was not analysed.", B),
    ("no_decoder_first.mp4", [("no decoder", None), ("video", B)], False, ["video", "video"],
     "The file holds 2 video streams; stream #1 (h264 96x64), the first that decodes, was analysed. Stream #0 is in "
     "a codec this program cannot decode.", B),
    ("empty_first.mkv", [("empty", None), ("video", B)], False, ["video", "video"],
     "The file holds 2 video streams; stream #1 (h264 96x64), the first that decodes, was analysed. Stream #0 holds "
     "no picture.", B),
    ("cover_first.mp4", [("cover", None), ("audio", None), ("video", A)], False, ["audio", "video", "video"], "", A),
    ("cover.mkv", [("video", A), ("cover", None)], False, ["video", "video"], "", A),
]


@pytest.mark.parametrize("name,streams,timecode,types,note,picture", CASES, ids=[c[0] for c in CASES])
def test_the_first_decodable_video_stream_is_read_in_pieces_and_in_one_go(tmp_path, monkeypatch, name, streams,
                                                                          timecode, types, note, picture):
    path = _mux(tmp_path / name, streams, timecode)
    with av.open(str(path)) as c:  # the file is what the case says
        assert [s.type for s in c.streams] == types
        covers = [s for s in c.streams.video if s.disposition & av.stream.Disposition.attached_pic]
        assert len(covers) == any(kind == "cover" for kind, _ in streams)
    in_pieces, in_one_go, split = _both_ways(path, monkeypatch)
    assert split == (path.suffix != ".mkv")  # MP4 and MOV have an index: decoded in pieces
    np.testing.assert_array_equal(in_pieces.frames, in_one_go.frames)
    for clip in (in_pieces, in_one_go):
        assert _shows(clip, picture, B if picture is A else A), name
        assert clip.fps == pytest.approx(FPS) and clip.declared_frames in (N, None)
        assert clip.notes == ([note] if note else [])


@pytest.mark.parametrize("name,streams,words", [
    ("song.mp4", [("audio", None), ("cover", None)],
     r"no video stream \(it holds audio, a still cover picture\)\. Give a video with moving picture"),
    ("unknown_codec.mp4", [("audio", None), ("no decoder", None)],
     r"its video stream cannot be decoded\. Stream #1 is in a codec this program cannot decode\. Convert the video "
     r"to H\.264"),
    ("nothing_decodes.mp4", [("garbage", None), ("no decoder", None), ("cover", None)],
     r"none of its 2 video streams can be decoded\. Stream #0 does not decode: Invalid data found when processing "
     r"input\. Stream #1 is in a codec this program cannot decode\. Convert the video to H\.264"),
], ids=["song.mp4", "unknown_codec.mp4", "nothing_decodes.mp4"])
def test_a_file_without_a_decodable_video_stream_is_refused_with_what_to_do(tmp_path, name, streams, words):
    """Not a one-frame clip of the cover, not a crash in PyAV (decoding a stream without a decoder ends the process):
    the project's user error, naming the file."""
    path = _mux(tmp_path / name, streams)
    with pytest.raises(InputError, match=words) as info:
        read_clip(path)
    assert str(path) in str(info.value)


def test_an_audio_first_mov_gets_a_result_row_from_the_batch_command(tmp_path):
    """The bug report's file, end to end: a phone's .mov (sound first, a timecode track), here with a video stream
    that does not decode before the picture, through the batch command with the bundled package: a result row, with
    the note that says which stream was analysed."""
    from inference.__main__ import main

    face = read_clip(ROOT / "demo" / "examples" / "surprise.mp4")  # 46 frames at 100 fps: one expression
    path = tmp_path / "phone.mov"
    with av.open(str(path), "w") as out:
        sound = out.add_stream("aac", rate=44100)
        noise = out.add_mux_stream("h264", width=face.size[0], height=face.size[1], rate=100)
        picture = out.add_stream("libx264", rate=100)
        picture.width, picture.height, picture.pix_fmt = *face.size, "yuv420p"
        picture.metadata["timecode"] = "00:00:10:00"
        for i in range(22):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 44100, i * 1024
            out.mux(sound.encode(frame))
        out.mux(sound.encode())
        for i in range(face.n_frames):
            packet = av.Packet(np.random.default_rng(i).integers(0, 255, 200, dtype=np.uint8).tobytes())
            packet.stream, packet.time_base, packet.pts, packet.dts = noise, Fraction(1, 100), i, i
            out.mux(packet)
        for i, img in enumerate(face.frames):
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = i
            out.mux(picture.encode(frame))
        out.mux(picture.encode())
    with av.open(str(path)) as c:
        assert [s.type for s in c.streams] == ["audio", "video", "video", "data"]
    rows = tmp_path / "rows.csv"
    assert main(["--model", str(ROOT / "demo" / "default_model"), "--input", str(path), "--output", str(rows),
                 "--workers", "0", "--device", "cpu", "--engine", "onnxruntime"]) == 0
    (row,) = list(csv.DictReader(rows.open()))
    assert row["status"] == "ok" and row["row"] == "clip" and row["mode"] == "whole", row
    assert row["label"] in ("negative", "positive", "surprise") and float(row["face_coverage"]) > 0.9
    assert "The file holds 2 video streams; stream #2 (h264 640x480), the first that decodes, was analysed. " \
           "Stream #1 does not decode" in row["notes"]
