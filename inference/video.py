"""Video in and out: a file or a folder of frame images → RGB uint8 frames ``(T, H, W, 3)`` + fps.

Files are decoded with PyAV (FFmpeg inside the wheel); rotation metadata (the display matrix that
phones write for portrait video) is applied, so frames come out the way a player shows them. Containers come as
cameras and editors write them: sound, data (timecode) or a cover picture may sit beside or before the picture; the
first video stream that decodes and is not an attached picture is read, and when a file holds several a note says
which one (:func:`_choose_stream`).
Folders of frame images are what the micro-expression datasets ship; their files are ordered
numerically (``reg_img46`` before ``reg_img100``), never as plain strings.

Decoding stays within a memory budget (:class:`VideoLimits`): every frame is brought to a *working size* as it is
decoded (the longer side at most 960 px by default: a face needs far less than 4K, and FFmpeg's scaler reduces each
frame before it becomes RGB), frames go one by one into a single allocation, and the decoded bytes of a clip are
capped — when the header says how long the clip is, the working size drops further so that the whole clip fits, and
when it does not (a browser's WebM has no duration), the duration, frame and byte limits apply to what is decoded.
A frame size that changes mid-stream is scaled to the first one's. The :class:`Clip` says what was done (original
size, scale, what the header declared, notes).

Everything a user can get wrong (empty file, not a video, truncated file, audio only, no video stream that
decodes, too long, too large) raises :class:`inference.errors.InputError` with a message that says what to do.
"""

from __future__ import annotations

import itertools
import math
import mmap
import os
import re
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import InputError

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm")
IMAGE_EXTENSIONS = (".bmp", ".jpg", ".jpeg", ".png")
SHORTFALL = 0.1  # a file may decode up to this fraction (or 3 frames) fewer than its header declares


@dataclass(frozen=True)
class VideoLimits:
    """What a clip may be at most, and the size its frames are decoded to; a clip over a limit is refused before it
    fills memory.

    ``max_bytes`` caps the decoded RGB frames of one clip (at the working size); with the default working size and
    cap, a clip the limits accept peaks well under 2 GiB of process memory, 4K and 60 fps included.
    ``working_size`` is the longer side frames are reduced to (0: keep the full size); to fit a long clip into
    ``max_bytes`` it may drop to ``min_working_size``. ``cli_hints`` names the command-line options that raise a
    limit in the messages (off for the web demo, whose visitors have none)."""

    max_frames: int = 2000
    max_seconds: float = 60.0
    max_pixels: int = 4096 * 2304  # per frame as stored (a little over 4K UHD)
    max_bytes: int = 512 * 2 ** 20
    working_size: int = 960
    min_working_size: int = 480
    cli_hints: bool = True

    def _hint(self, flag: str) -> str:
        return f", or raise the limit ({flag})" if self.cli_hints else ""

    def check_size(self, width: int, height: int, source: str) -> None:
        if width * height > self.max_pixels:
            raise InputError(
                f"{source}: frames are {width}x{height} pixels, more than the limit of "
                f"{self.max_pixels:,} pixels per frame. Downscale the video first{self._hint('--max-pixels')}."
            )

    def check_frames(self, n_frames: int, source: str) -> None:
        if n_frames > self.max_frames:
            raise InputError(
                f"{source}: more than {self.max_frames} frames. Trim the clip to the expression "
                f"(micro-expressions last about half a second){self._hint('--max-frames')}."
            )

    def check_seconds(self, seconds: float, source: str, at_least: bool = False) -> None:
        if seconds > self.max_seconds + 1e-6:
            raise InputError(
                f"{source}: the clip lasts {'at least ' if at_least else ''}{seconds:.1f} s, more than the limit of "
                f"{self.max_seconds:g} s. Trim it to the expression{self._hint('--max-seconds')}."
            )

    def check_bytes(self, n_frames: int, width: int, height: int, source: str) -> None:
        if n_frames * width * height * 3 > self.max_bytes:
            raise InputError(
                f"{source}: {n_frames} frames of {width}x{height} pixels take more than the "
                f"{self.max_bytes / 2 ** 20:.0f} MB this {'command' if self.cli_hints else 'server'} holds for one "
                f"clip. Trim the clip to the expression (micro-expressions last about half a second) or lower its "
                f"resolution{self._hint('--max-megabytes')}."
            )

    def working_dims(self, width: int, height: int, expected_frames: int | None = None) -> tuple[int, int]:
        """The (width, height) frames of ``width`` x ``height`` are decoded to: the longer side at most
        ``working_size``, and smaller still (down to ``min_working_size``) when ``expected_frames`` of them would not
        fit ``max_bytes``. Even sizes (what video scalers prefer), never larger than the original."""
        scale = min(1.0, self.working_size / max(width, height)) if self.working_size else 1.0
        if expected_frames and expected_frames * width * height * 3 * scale ** 2 > self.max_bytes:
            floor = min(1.0, self.min_working_size / max(width, height))
            scale = max(floor, math.sqrt(self.max_bytes / (expected_frames * width * height * 3)))
        if scale >= 1.0:
            return width, height
        return max(2, int(width * scale) // 2 * 2), max(2, int(height * scale) // 2 * 2)


@dataclass
class Clip:
    """Decoded frames and where they came from."""

    frames: np.ndarray  # (T, H, W, 3) uint8 RGB, at the working size
    fps: float | None  # None for a folder of frames read without a known rate
    source: str
    rotation: int = 0  # degrees counter-clockwise applied to honour the file's display matrix
    original_size: tuple[int, int] = (0, 0)  # (width, height) of the first frame as shown, before any reduction
    declared_frames: int | None = None  # what the file's header declares (None: nothing)
    notes: list[str] = field(default_factory=list)  # what the user should know about the decoding, in plain words

    @property
    def n_frames(self) -> int:
        return int(self.frames.shape[0])

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the frames."""
        return int(self.frames.shape[2]), int(self.frames.shape[1])

    @property
    def scale(self) -> float:
        """Working size over original size (1.0: frames at full size)."""
        return self.size[0] / self.original_size[0] if self.original_size[0] else 1.0


class FrameBuffer:
    """Frames at one working size, written one by one into a single allocation reserved for as many as the limits
    allow (memory is only used as frames arrive); refuses the frame that would pass a limit."""

    def __init__(self, limits: VideoLimits, source: str, width: int, height: int, expected_frames: int | None = None):
        self.limits, self.source = limits, source
        self.original_size = (width, height)
        self.width, self.height = limits.working_dims(width, height, expected_frames)
        limits.check_bytes(1, self.width, self.height, source)
        if expected_frames:
            limits.check_bytes(expected_frames, self.width, self.height, source)
        capacity = min(limits.max_frames, limits.max_bytes // (self.width * self.height * 3))
        # Pages are used only when written. An anonymous mapping of our own, not np.empty: NumPy asks the kernel for
        # huge pages on large arrays, and a fresh process then waits while the kernel compacts memory to make them
        # (measured on the 30 s 1080p bench clip: 2.4-2.8 CPU-s to scale, convert and store 900 frames, against
        # 1.2-1.6 CPU-s with ordinary pages).
        self._memory = mmap.mmap(-1, capacity * self.height * self.width * 3)
        self._frames = np.frombuffer(self._memory, np.uint8).reshape(capacity, self.height, self.width, 3)
        self.n = 0

    def slot(self) -> np.ndarray:
        """The (H, W, 3) array the next frame goes into."""
        if self.n >= len(self._frames):  # one of these refuses it
            self.limits.check_frames(self.n + 1, self.source)
            self.limits.check_bytes(self.n + 1, self.width, self.height, self.source)
        self.n += 1
        return self._frames[self.n - 1]

    def at(self, index: int) -> np.ndarray:
        """The (H, W, 3) array frame ``index`` goes into, for frames that arrive out of order (a file decoded in
        pieces at once); :meth:`filled` then says how many there are."""
        if index >= len(self._frames):
            self.limits.check_frames(index + 1, self.source)
            self.limits.check_bytes(index + 1, self.width, self.height, self.source)
        return self._frames[index]

    def filled(self, n: int) -> None:
        self.n = n

    def put(self, img: np.ndarray) -> None:
        """Add an (h, w, 3) RGB frame, resized to the working size if it has another size."""
        import cv2

        if img.shape[:2] != (self.height, self.width):
            img = cv2.resize(img, (self.width, self.height), interpolation=cv2.INTER_AREA)
        self.slot()[...] = img

    @property
    def frames(self) -> np.ndarray:
        return self._frames[:self.n]


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
    buffer = None
    for f in files:
        img = cv2.imread(str(f), cv2.IMREAD_COLOR)
        if img is None:
            raise InputError(f"{f}: this frame image cannot be read (corrupt or not an image). Remove or replace it.")
        if buffer is None:
            h, w = img.shape[:2]
            limits.check_size(w, h, source)
            buffer = FrameBuffer(limits, source, w, h, len(files))
        elif img.shape[:2] != buffer.original_size[::-1]:
            raise InputError(
                f"{f}: this frame is {img.shape[1]}x{img.shape[0]} but the first frame is "
                f"{buffer.original_size[0]}x{buffer.original_size[1]}; all frames of a clip must have one size."
            )
        buffer.put(cv2.cvtColor(img, cv2.COLOR_BGR2RGB))
    return Clip(frames=buffer.frames, fps=fps, source=source, original_size=buffer.original_size)


def _read_file(path: Path, limits: VideoLimits, fps: float | None) -> Clip:
    import av

    src = str(path)
    if path.suffix.lower() not in VIDEO_EXTENSIONS:
        single_image = path.suffix.lower() in IMAGE_EXTENSIONS
        hint = ""
        if single_image:
            hint = (" It looks like a single image; give a folder of frames instead." if limits.cli_hints else
                    " It looks like a single image; a video is needed (an expression is a movement).")
        raise InputError(f"{src}: not a supported video type (use {', '.join(VIDEO_EXTENSIONS)}).{hint}")
    if path.stat().st_size == 0:
        raise InputError(f"{src}: the file is empty (0 bytes). The upload or copy probably failed; try again.")
    try:
        container = av.open(src, metadata_errors="ignore")
    except (av.FFmpegError, UnicodeDecodeError) as e:
        raise InputError(f"{src}: not a readable video ({_ffmpeg_reason(e)}). The file is corrupt, truncated, or not "
                         f"a video.") from None
    with container:
        stream, choice = _choose_stream(src, container, limits)
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
        declared = stream.frames or None
        if declared:
            limits.check_frames(declared, src)
        expected = declared or (int(math.ceil(seconds * fps)) if seconds and fps else None)
        pieces = _pieces(src, container, stream, limits, fps)
        decoder = _read_pieces(src, stream.index, pieces, limits, fps) if pieces else None
        if decoder is None:  # one piece, the whole file in order (FFmpeg's own threads decode it)
            decoder = _Decoder(limits, src, expected, fps)
            try:
                for frame in container.decode(stream):
                    decoder.add(frame)
            except av.FFmpegError as e:
                raise _stopped(src, decoder.n_frames, e) from None
    n = decoder.n_frames
    if not n:
        raise InputError(f"{src}: no frame could be decoded. The file is truncated or corrupt; re-export or "
                         f"re-upload it.")
    # A file cut short with its index intact decodes without an error but ends early. A few frames fewer than the
    # header declares is ordinary (an edit list hides some, a recorder dropped some).
    if declared and n < declared - max(3, SHORTFALL * declared):
        raise InputError(
            f"{src}: the file declares {declared} frames but only {n} could be decoded. "
            f"It is truncated; re-export or re-upload it."
        )
    buffer = decoder.buffer
    return Clip(frames=buffer.frames, fps=fps, source=src, rotation=decoder.rotation,
                original_size=buffer.original_size, declared_frames=declared, notes=[*choice, *decoder.notes])


def _is_cover(stream) -> bool:
    """A still picture attached to the file (cover art, a thumbnail), which FFmpeg lists as a video stream."""
    import av

    return bool(stream.disposition & av.stream.Disposition.attached_pic)


def _choose_stream(src: str, container, limits: VideoLimits):
    """The video stream to decode and what the user should know about the choice (a list of notes).

    Files hold more than one picture stream as they come: cover art or a thumbnail (an attached picture), a second
    camera angle or a proxy, a stream in a codec this FFmpeg cannot decode, a track without a single packet. Audio,
    data (a timecode track) and subtitle streams may come before the picture. The first video stream that is not an
    attached picture and gives a frame is decoded; when there were several, a note says which one and why. A file
    with only one such stream is not probed (its own decoding reports what is wrong with it); a file with none that
    decodes is refused with an :class:`InputError`."""
    videos = [s for s in container.streams.video if not _is_cover(s)]
    if not videos:
        kinds = sorted({s.type for s in container.streams if s.type != "video"})
        if len(videos) < len(container.streams.video):
            kinds.append("a still cover picture")
        raise InputError(f"{src}: the file has no video stream (it holds {', '.join(kinds or ['no streams'])}). Give "
                         f"a video with moving picture.")
    skipped = []
    for stream in videos:
        why = _undecodable(src, stream, limits, probe=len(videos) > 1)
        if why is None:
            break
        skipped.append(f"Stream #{stream.index} {why}.")
    else:
        what = "its video stream cannot" if len(videos) == 1 else f"none of its {len(videos)} video streams can"
        raise InputError(f"{src}: {what} be decoded. {' '.join(skipped)} Convert the video to H.264 in an MP4 file "
                         f"(any video editor or converter does it; e.g. ffmpeg -i IN -c:v libx264 OUT.mp4).")
    if len(videos) == 1:
        return stream, []
    used = f"stream #{stream.index} ({_describe(stream)}), the first {'that decodes' if skipped else 'one'}"
    others = [f"#{s.index}" for s in videos[len(skipped) + 1:]]
    rest = [f"Stream{'s' if len(others) > 1 else ''} {', '.join(others)} {'were' if len(others) > 1 else 'was'} not "
            f"analysed."] if others else []
    return stream, [" ".join([f"The file holds {len(videos)} video streams; {used}, was analysed.", *skipped, *rest])]


def _undecodable(src: str, stream, limits: VideoLimits, probe: bool) -> str | None:
    """Why ``stream`` cannot be decoded (words that follow its name), or None when it can; ``probe``: decode its first
    frame to know (otherwise only a stream whose codec has no decoder is said to be undecodable)."""
    import av

    if stream.codec_context is None:  # FFmpeg has no decoder for its codec (and PyAV would crash decoding it)
        return "is in a codec this program cannot decode"
    if not probe:
        return None
    w, h = stream.codec_context.width, stream.codec_context.height
    if w and h:
        limits.check_size(w, h, src)
    try:
        with av.open(src, metadata_errors="ignore") as c:
            for _ in c.decode(c.streams[stream.index]):
                return None
    except av.FFmpegError as e:
        return f"does not decode: {_ffmpeg_reason(e)}"
    return "holds no picture"


def _describe(stream) -> str:
    cc = stream.codec_context
    size = f" {cc.width}x{cc.height}" if cc.width and cc.height else ""
    return f"{cc.name}{size}"


PIECE_FRAMES = 48  # a file is decoded in pieces at once only when each piece would hold at least this many frames
MAX_PIECES = 4
SEEKABLE_FORMATS = ("mov", "mp4")  # containers with an index of their keyframes (what phones and cameras write)


@dataclass(frozen=True)
class _Pieces:
    """A file split at keyframes into pieces that decode independently: every frame's place in the clip (its rank in
    presentation order) and the first timestamp of each piece."""

    index: dict[int, int]  # presentation timestamp → frame index
    starts: list[int]  # first timestamp of each piece, ascending
    threads: int  # FFmpeg threads per piece

    def frames(self, src: str, stream_index: int, j: int, start: Callable[[], None] | None = None):
        """Piece ``j``'s frames in presentation order, from a decoder of its own (``start()`` is called once the
        file is open, before it seeks); raises :class:`_Unsplittable` on a frame the index does not know."""
        import av

        lo, hi = self.starts[j], self.starts[j + 1] if j + 1 < len(self.starts) else None
        with av.open(src, metadata_errors="ignore") as c:
            s = c.streams[stream_index]  # the file-wide index (audio or data may come first)
            s.codec_context.thread_count = self.threads
            if start:
                start()
            if j:
                c.seek(lo, stream=s, backward=True, any_frame=False)
            for frame in c.decode(s):
                if frame.pts is None or frame.pts not in self.index:
                    raise _Unsplittable
                if frame.pts < lo:
                    continue  # a frame of the piece before (shown before this piece's keyframe)
                if hi is not None and frame.pts >= hi:
                    return
                yield frame


class _Unsplittable(Exception):
    """The pieces did not give every frame exactly once: the file is decoded in one go instead."""


def _pieces(src: str, container, stream, limits: VideoLimits, fps: float | None) -> _Pieces | None:
    """How to decode ``stream`` in pieces at once, or None to decode it in one go.

    On a machine with few cores FFmpeg's frame threads leave part of it idle, and every frame waits to be scaled and
    converted after it is decoded; pieces that start at keyframes decode independently, each with its frames
    converted while they are fresh in the cache (measured on the 30 s 1080p bench clip, 2 cores: decode, scale and
    store 3.6-3.9 s in two pieces against 4.5-5.2 s in one). Only for a container with an index (seeking is exact
    and cheap), timestamps on every packet, and pieces of at least :data:`PIECE_FRAMES` frames; the packets are read
    once first (no decoding), and the whole file's limits are checked on them."""
    cores = _cores()
    if cores < 2 or not any(f in container.format.name.split(",") for f in SEEKABLE_FORMATS):
        return None
    import av

    try:
        with av.open(src, metadata_errors="ignore") as c:
            packets = [(p.pts, p.is_keyframe) for p in c.demux(c.streams[stream.index]) if p.size]
    except av.FFmpegError:
        return None  # the ordinary path reports what is wrong with the file
    times = [t for t, _ in packets]
    if len(times) < 2 * PIECE_FRAMES or None in times or len(set(times)) != len(times):
        return None
    limits.check_frames(len(times), src)
    order = sorted(times)
    if fps and stream.time_base:
        limits.check_seconds(float((order[-1] - order[0]) * stream.time_base) + 1 / fps, src)
    keys = sorted(t for t, key in packets if key)
    n_pieces = min(MAX_PIECES, cores, len(order) // PIECE_FRAMES)
    starts = [order[0]]
    for j in range(1, n_pieces):
        goal = order[j * len(order) // n_pieces]
        key = min(keys, key=lambda k: abs(k - goal))
        if key not in starts:
            starts.append(key)
    starts.sort()
    rank = {t: i for i, t in enumerate(order)}
    bounds = [rank[t] for t in starts] + [len(order)]
    if len(starts) < 2 or min(b - a for a, b in zip(bounds, bounds[1:])) < PIECE_FRAMES:
        return None
    return _Pieces(rank, starts, max(1, cores // len(starts)))


def _cores() -> int:
    """The cores this process may run on (its affinity, where the system says)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _read_pieces(src: str, stream_index: int, pieces: _Pieces, limits: VideoLimits, fps: float | None):
    """Decode the pieces at once, one thread each, every frame stored at its place. Returns the first piece's
    :class:`_Decoder` (its buffer holds the clip), or None when the pieces did not give every frame exactly once in
    order (a frame without a timestamp of the index, a frame size that changes): the caller then decodes the file
    in one go."""
    import threading

    import av

    decoders = [_Decoder(limits, src, len(pieces.index), fps) for _ in pieces.starts]
    stored, last = [0] * len(pieces.starts), [-1] * len(pieces.starts)  # frames stored, highest index, per piece
    errors: list[BaseException] = []
    first_ready = threading.Event()

    def run(j: int) -> None:
        d = decoders[j]

        def start() -> None:  # a later piece waits for the first frame: it sets the working size and the turning
            if j:
                first_ready.wait()
                if errors:
                    raise _Unsplittable
                d.share(decoders[0])

        try:
            for frame in pieces.frames(src, stream_index, j, start):
                index = pieces.index[frame.pts]
                if d.buffer is None:  # the clip's first frame
                    if index:
                        raise _Unsplittable
                    d.add(frame)
                    first_ready.set()
                else:
                    d.add_at(frame, index)
                stored[j] += 1
                last[j] = max(last[j], index)
        except BaseException as e:  # noqa: BLE001 — handed to the caller's thread
            errors.append(e)
        finally:
            first_ready.set()

    threads = [threading.Thread(target=run, args=(j,), name=f"decode-piece-{j}") for j in range(1, len(decoders))]
    for t in threads:
        t.start()
    run(0)
    for t in threads:
        t.join()
    for e in errors:
        if isinstance(e, InputError):
            raise e
    for e in errors:
        if isinstance(e, av.FFmpegError):
            raise _stopped(src, sum(stored), e) from None
    if errors:
        if all(isinstance(e, _Unsplittable) for e in errors):
            return None
        raise errors[0]
    bounds = [pieces.index[t] for t in pieces.starts] + [len(pieces.index)]
    whole = all(n == b - a for n, a, b in zip(stored[:-1], bounds, bounds[1:]))  # every piece but the last complete
    if any(d.notes for d in decoders) or decoders[0].buffer is None or not whole or \
            last[-1] - bounds[-2] + 1 != stored[-1]:
        return None  # a size change (its note belongs at one place), or frames missing inside the clip
    decoders[0].buffer.filled(bounds[-2] + stored[-1])
    return decoders[0]


class _Decoder:
    """Takes decoded PyAV frames one by one: turns them as the display matrix says, reduces them to the working size
    in FFmpeg's scaler (before they become RGB), checks the limits on the frames and timestamps seen so far."""

    def __init__(self, limits: VideoLimits, source: str, expected: int | None, fps: float | None):
        from av.video.reformatter import VideoReformatter

        self.limits, self.source, self.expected, self.fps = limits, source, expected, fps
        self._scaler, self._rgb = VideoReformatter(), VideoReformatter()  # kept: FFmpeg's scalers set up once
        self.buffer: FrameBuffer | None = None
        self.rotation = 0
        self.coded = (0, 0)  # the size the decoder delivers the stream's frames at (before turning)
        self.start: float | None = None
        self.notes: list[str] = []

    @property
    def n_frames(self) -> int:
        return self.buffer.n if self.buffer else 0

    def add(self, frame) -> None:
        coded = (frame.width, frame.height)
        if self.buffer is None:
            self.rotation = int(round((frame.rotation or 0) / 90.0)) * 90 % 360
            self.limits.check_size(*coded, self.source)
            shown = coded[::-1] if self.rotation in (90, 270) else coded
            self.buffer = FrameBuffer(self.limits, self.source, *shown, self.expected)
            self.coded = coded
        elif coded != self.coded:
            self._size_changed(coded)
        self._check_time(frame)
        self._store(frame, self.buffer.slot())

    def share(self, first: _Decoder) -> None:
        """Write into ``first``'s clip (another piece of the same file), turned and sized as its first frame."""
        self.buffer, self.rotation, self.coded = first.buffer, first.rotation, first.coded

    def add_at(self, frame, index: int) -> None:
        """A frame of a piece of the file, stored at its place in the clip (the checks on the whole file's length
        were made before the pieces were decoded)."""
        if (frame.width, frame.height) != self.coded:
            self._size_changed((frame.width, frame.height), index)
        self._store(frame, self.buffer.at(index))

    def _store(self, frame, slot: np.ndarray) -> None:
        coded = (frame.width, frame.height)
        b = self.buffer
        target = (b.height, b.width) if self.rotation in (90, 270) else (b.width, b.height)
        if target != coded:  # scaled in the decoder's own pixel format first (2-3x faster than scaling while converting
            # to RGB); swscale's bilinear widens its filter when it reduces (no aliasing), and beats its "area" here
            frame = self._scaler.reformat(frame, width=target[0], height=target[1], interpolation="BILINEAR")
        rgb = self._rgb.reformat(frame, format="rgb24")
        plane = rgb.planes[0]  # read in place (rows may be padded), copied once: into the clip
        img = np.frombuffer(plane, np.uint8).reshape(rgb.height, plane.line_size)[:, :3 * rgb.width]
        img = img.reshape(rgb.height, rgb.width, 3)
        slot[...] = np.rot90(img, k=self.rotation // 90) if self.rotation else img

    def _size_changed(self, coded: tuple[int, int], index: int | None = None) -> None:
        self.limits.check_size(*coded, self.source)
        old, at = self.coded, self.n_frames if index is None else index
        if abs(coded[0] / coded[1] - old[0] / old[1]) > 0.02 * old[0] / old[1]:
            raise InputError(
                f"{self.source}: the frame size changes from {old[0]}x{old[1]} to {coded[0]}x{coded[1]} (another "
                f"shape) at frame {at}. Re-export the video at one frame size."
            )
        b = self.buffer
        self.notes.append(f"The frame size changed from {old[0]}x{old[1]} to {coded[0]}x{coded[1]} at frame "
                          f"{at}; every frame was brought to {b.width}x{b.height}.")
        self.coded = coded

    def _check_time(self, frame) -> None:
        """The clip lasts at least until the end of this frame: its timestamp (or its index) plus one frame."""
        if not self.fps:
            return
        t = frame.time
        if t is not None and self.start is None:
            self.start = t
        elapsed = t - self.start if t is not None else self.n_frames / self.fps
        self.limits.check_seconds(elapsed + 1 / self.fps, self.source, at_least=True)


def _duration_seconds(container, stream) -> float | None:
    if stream.duration is not None and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / 1_000_000  # av.time_base
    return None


def _stopped(src: str, n_frames: int, e: Exception) -> InputError:
    return InputError(f"{src}: decoding stopped after {n_frames} frames ({_ffmpeg_reason(e)}). The file is truncated "
                      f"or corrupt; re-export or re-upload it.")


def _ffmpeg_reason(e: Exception) -> str:
    msg = getattr(e, "strerror", None) or str(e)
    return re.sub(r"\s*:\s*'[^']*'$", "", msg).strip() or type(e).__name__


def write_video(path: str | os.PathLike, frames: np.ndarray | Iterable[np.ndarray], fps: float,
                codec: str | None = None, rotation: int = 0, crf: int = 18, preset: str | None = None,
                live: bool = False, first_pts: int = 0, keyframe_every: int | None = None) -> None:
    """Write RGB uint8 frames ``(T, H, W, 3)`` (an array, or any iterable of ``(H, W, 3)`` frames, encoded as they
    come: a long or large clip never has to sit in memory) as a video file, atomically (temp file + rename).

    The codec follows the extension (H.264 for .mp4/.mov/.mkv, VP9 for .webm, MPEG-4 Part 2 for .avi)
    unless given. ``rotation`` stores a display matrix (degrees counter-clockwise), as phones do. ``preset`` is
    x264's speed/size trade-off (e.g. "ultrafast"). ``live`` writes a WebM/Matroska file as a browser's recorder
    does (no duration, no index). A negative ``first_pts`` starts the timestamps before zero: an MP4 then carries an
    edit list that hides the first ``-first_pts`` frames, which its header still counts (what trimming editors and
    encoder delays leave). ``keyframe_every``: the longest run of frames between keyframes (the encoder's default
    otherwise, 250 for H.264). The same frames and settings give the same file on any machine (same libraries).
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
            # The same frames always give the same file: one encoder thread (x264 and FFmpeg's encoders cut the
            # picture into as many slices as the machine has cores otherwise), and x264's macroblock tree off (with
            # B-frames it encoded the same 120 frames into 8 different files in 8 calls in one process, up to 20 grey
            # levels apart once decoded: the result depended on what had run before in the process).
            stream.codec_context.thread_count = 1
            if codec == "libx264":
                stream.options = {"crf": str(crf), "x264-params": "mbtree=0", **({"preset": preset} if preset else {})}
            elif codec == "libvpx-vp9":
                stream.options = {"crf": str(crf + 12), "b": "0"}
            elif codec == "libvpx":  # VP8 as browsers record it: real-time, bounded bit rate
                stream.options = {"crf": str(crf + 12), "b": "2M", "deadline": "realtime", "cpu-used": "8"}
            if keyframe_every:
                stream.codec_context.gop_size = int(keyframe_every)
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
