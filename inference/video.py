"""Video in and out: a file or a folder of frame images → RGB uint8 frames ``(T, H, W, 3)`` + fps.

Files are decoded with PyAV (FFmpeg inside the wheel); rotation metadata (the display matrix that
phones write for portrait video) is applied, so frames come out the way a player shows them.
Folders of frame images are what the micro-expression datasets ship; their files are ordered
numerically (``reg_img46`` before ``reg_img100``), never as plain strings.

Everything a user can get wrong (empty file, not a video, truncated file, audio only, too long,
too large) raises :class:`inference.errors.InputError` with a message that says what to do.
"""

from __future__ import annotations

import itertools
import math
import os
import re
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import InputError

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm")
IMAGE_EXTENSIONS = (".bmp", ".jpg", ".jpeg", ".png")


@dataclass(frozen=True)
class VideoLimits:
    """What a clip may be at most; a clip over a limit is refused before it fills memory."""

    max_frames: int = 2000
    max_seconds: float = 60.0
    max_pixels: int = 4096 * 2304  # per frame (a little over 4K UHD)

    def check_size(self, width: int, height: int, source: str) -> None:
        if width * height > self.max_pixels:
            raise InputError(
                f"{source}: frames are {width}x{height} pixels, more than the limit of "
                f"{self.max_pixels:,} pixels per frame. Downscale the video first, or raise the limit "
                f"(--max-pixels)."
            )

    def check_frames(self, n_frames: int, source: str) -> None:
        if n_frames > self.max_frames:
            raise InputError(
                f"{source}: more than {self.max_frames} frames. Trim the clip to the expression "
                f"(micro-expressions last about half a second), or raise the limit (--max-frames)."
            )

    def check_seconds(self, seconds: float, source: str) -> None:
        if seconds > self.max_seconds:
            raise InputError(
                f"{source}: the clip lasts {seconds:.1f} s, more than the limit of {self.max_seconds:g} s. "
                f"Trim it to the expression, or raise the limit (--max-seconds)."
            )


@dataclass
class Clip:
    """Decoded frames and where they came from."""

    frames: np.ndarray  # (T, H, W, 3) uint8 RGB
    fps: float | None  # None for a folder of frames read without a known rate
    source: str
    rotation: int = 0  # degrees counter-clockwise applied to honour the file's display matrix

    @property
    def n_frames(self) -> int:
        return int(self.frames.shape[0])


def natural_key(name: str) -> tuple:
    """Sort key that orders the numbers inside a name by value: ``img9`` < ``img10``."""
    parts = re.split(r"(\d+)", name)
    return tuple((0, int(p)) if p.isdigit() else (1, p.lower()) for p in parts if p != "")


def list_frame_files(folder: str | os.PathLike) -> list[Path]:
    """The frame images of a folder in numeric order (other files are ignored)."""
    folder = Path(folder)
    files = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS]
    return sorted(files, key=lambda p: natural_key(p.name))


def read_clip(path: str | os.PathLike, limits: VideoLimits = VideoLimits(), fps: float | None = None) -> Clip:
    """Read a video file or a folder of frame images.

    ``fps`` is the frame rate of a folder of frames (the datasets state it: SMIC-HS 100, CASME II 200,
    SAMM 200); for video files the container's rate is used and ``fps`` only fills in when it has none.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file or folder. Check the path.")
    if path.is_dir():
        return _read_folder(path, limits, fps)
    return _read_file(path, limits, fps)


def _read_folder(folder: Path, limits: VideoLimits, fps: float | None) -> Clip:
    files = list_frame_files(folder)
    if not files:
        raise InputError(
            f"{folder}: no frame images in this folder (looked for {', '.join(IMAGE_EXTENSIONS)}). "
            f"Give a folder of frames or a video file ({', '.join(VIDEO_EXTENSIONS)})."
        )
    return read_frames(files, limits, fps, source=str(folder))


def read_frames(files: list[Path], limits: VideoLimits = VideoLimits(), fps: float | None = None,
                source: str | None = None) -> Clip:
    """Read the given frame images, in the order given (for example onset to offset of an annotated clip)."""
    import cv2

    source = source or (str(Path(files[0]).parent) if files else "frames")
    if not files:
        raise InputError(f"{source}: no frame images given")
    limits.check_frames(len(files), source)
    if fps:
        limits.check_seconds(len(files) / fps, source)
    frames = None
    for i, f in enumerate(files):
        img = cv2.imread(str(f), cv2.IMREAD_COLOR)
        if img is None:
            raise InputError(f"{f}: this frame image cannot be read (corrupt or not an image). Remove or replace it.")
        if frames is None:
            h, w = img.shape[:2]
            limits.check_size(w, h, source)
            frames = np.empty((len(files), h, w, 3), np.uint8)
        elif img.shape[:2] != frames.shape[1:3]:
            raise InputError(
                f"{f}: this frame is {img.shape[1]}x{img.shape[0]} but the first frame is "
                f"{frames.shape[2]}x{frames.shape[1]}; all frames of a clip must have one size."
            )
        cv2.cvtColor(img, cv2.COLOR_BGR2RGB, dst=frames[i])
    return Clip(frames=frames, fps=fps, source=source)


def _read_file(path: Path, limits: VideoLimits, fps: float | None) -> Clip:
    import av

    src = str(path)
    if path.suffix.lower() not in VIDEO_EXTENSIONS:
        single_image = path.suffix.lower() in IMAGE_EXTENSIONS
        hint = " It looks like a single image; give a folder of frames instead." if single_image else ""
        raise InputError(f"{src}: not a supported video type (use {', '.join(VIDEO_EXTENSIONS)}).{hint}")
    if path.stat().st_size == 0:
        raise InputError(f"{src}: the file is empty (0 bytes). The upload or copy probably failed; try again.")
    try:
        container = av.open(src, metadata_errors="ignore")
    except (av.FFmpegError, UnicodeDecodeError) as e:
        raise InputError(f"{src}: not a readable video ({_ffmpeg_reason(e)}). The file is corrupt, truncated, or not "
                         f"a video.") from None
    with container:
        if not container.streams.video:
            kinds = sorted({s.type for s in container.streams}) or ["no streams"]
            raise InputError(f"{src}: the file has no video stream (it holds {', '.join(kinds)}). Give a video with "
                             f"picture.")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        w, h = stream.codec_context.width, stream.codec_context.height
        if w and h:
            limits.check_size(w, h, src)
        rate = stream.average_rate or stream.guessed_rate
        file_fps = float(rate) if rate else None
        fps = file_fps or fps
        seconds = _duration_seconds(container, stream)
        if seconds is not None:
            limits.check_seconds(seconds, src)
        declared = stream.frames or 0
        if declared:
            limits.check_frames(declared, src)

        frames: list[np.ndarray] = []
        rotation = 0
        try:
            for frame in container.decode(stream):
                if not frames:
                    rotation = int(round((frame.rotation or 0) / 90.0)) * 90 % 360
                    limits.check_size(frame.width, frame.height, src)
                frames.append(frame.to_ndarray(format="rgb24"))
                limits.check_frames(len(frames), src)
        except av.FFmpegError as e:
            raise InputError(
                f"{src}: decoding stopped after {len(frames)} frames ({_ffmpeg_reason(e)}). "
                f"The file is truncated or corrupt; re-export or re-upload it."
            ) from None
    if not frames:
        raise InputError(f"{src}: no frame could be decoded. The file is truncated or corrupt; re-export or "
                         f"re-upload it.")
    # A file cut short with its index intact decodes without an error but ends early.
    if declared and len(frames) < declared - 2:
        raise InputError(
            f"{src}: the file declares {declared} frames but only {len(frames)} could be decoded. "
            f"It is truncated; re-export or re-upload it."
        )
    clip = np.stack(frames)
    if rotation:
        clip = np.ascontiguousarray(np.rot90(clip, k=rotation // 90, axes=(1, 2)))
    return Clip(frames=clip, fps=fps, source=src, rotation=rotation)


def _duration_seconds(container, stream) -> float | None:
    if stream.duration is not None and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / 1_000_000  # av.time_base
    return None


def _ffmpeg_reason(e: Exception) -> str:
    msg = getattr(e, "strerror", None) or str(e)
    return re.sub(r"\s*:\s*'[^']*'$", "", msg).strip() or type(e).__name__


def write_video(path: str | os.PathLike, frames: np.ndarray | Iterable[np.ndarray], fps: float,
                codec: str | None = None, rotation: int = 0, crf: int = 18, preset: str | None = None,
                live: bool = False, first_pts: int = 0) -> None:
    """Write RGB uint8 frames ``(T, H, W, 3)`` (an array, or any iterable of ``(H, W, 3)`` frames, encoded as they
    come: a long or large clip never has to sit in memory) as a video file, atomically (temp file + rename).

    The codec follows the extension (H.264 for .mp4/.mov/.mkv, VP9 for .webm, MPEG-4 Part 2 for .avi)
    unless given. ``rotation`` stores a display matrix (degrees counter-clockwise), as phones do. ``preset`` is
    x264's speed/size trade-off (e.g. "ultrafast"). ``live`` writes a WebM/Matroska file as a browser's recorder
    does (no duration, no index). A negative ``first_pts`` starts the timestamps before zero: an MP4 then carries an
    edit list that hides the first ``-first_pts`` frames, which its header still counts (what trimming editors and
    encoder delays leave).
    """
    import av

    path = Path(path)
    frames = iter(frames)
    first = next(frames, None)
    if first is None or first.ndim != 3 or first.shape[-1] != 3 or first.dtype != np.uint8:
        got = "no frames" if first is None else f"{first.dtype} {first.shape}"
        raise ValueError(f"frames must be uint8 (H, W, 3) images, got {got}")
    ext = path.suffix.lower()
    codec = codec or {".webm": "libvpx-vp9", ".avi": "mpeg4"}.get(ext, "libx264")
    h, w = first.shape[:2]
    if codec in ("libx264", "mpeg4", "libvpx", "libvpx-vp9"):
        h, w = h - h % 2, w - w % 2  # 4:2:0 chroma needs even sizes
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=ext, prefix=f".{path.stem}.", dir=path.parent)
    os.close(fd)
    try:
        rate = _as_fraction(fps)
        with av.open(tmp, mode="w", format=_format_for(ext), options={"live": "1"} if live else {}) as out:
            stream = out.add_stream(codec, rate=rate)
            stream.width, stream.height = w, h
            stream.pix_fmt = "yuv420p"
            if codec == "libx264":
                stream.options = {"crf": str(crf), **({"preset": preset} if preset else {})}
            elif codec == "libvpx-vp9":
                stream.options = {"crf": str(crf + 12), "b": "0"}
            elif codec == "libvpx":  # VP8 as browsers record it: real-time, bounded bit rate
                stream.options = {"crf": str(crf + 12), "b": "2M", "deadline": "realtime", "cpu-used": "8"}
            if rotation:
                stream.set_display_rotation(rotation)
            for i, img in enumerate(itertools.chain([first], frames)):
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(img[:h, :w]), format="rgb24")
                frame.pts = first_pts + i
                for packet in stream.encode(frame):
                    out.mux(packet)
            for packet in stream.encode():
                out.mux(packet)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _format_for(ext: str) -> str | None:
    return {".mp4": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm", ".avi": "avi"}.get(ext)


def _as_fraction(fps: float):
    from fractions import Fraction

    if fps <= 0 or not math.isfinite(fps):
        raise ValueError(f"fps must be a positive number, got {fps}")
    return Fraction(fps).limit_denominator(1001)
