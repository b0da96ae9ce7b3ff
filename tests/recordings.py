"""Recordings that look like real ones, composed from the public-domain astronaut (NASA; scikit-image), with their
truth known frame by frame: who is where, where the shots cut, what the header declares.

Real recordings differ from the clean test clips in ways that broke the core path (issue 14): a face that enters
late or leaves, several people and shot cuts, 4K at 60 fps, a browser's WebM without a duration, a frame size that
changes mid-stream, an MP4 whose header counts frames a player never shows, a single frame. Each builder here writes
one such file and returns a :class:`Recording` that says what a correct reader and tracker must find in it.

The people: **A** is the astronaut's head (an elliptical, feathered cut-out of the portrait); **B**, the "second
person", is the same photograph mirrored, tinted darker and warmer and shown smaller, on the other side of the frame
(scikit-image ships no second public-domain face photograph: ``lfw_subset`` is 25×25 grey). The rooms are drawn
(wall, floor, a door, a picture), each shot in its own colours, with a little sensor noise per frame; heads sway by
about a pixel, as seated people do.

Use the session fixture: ``from tests.recordings import recordings_fixture  # noqa: F401`` in a test module,
then ask for ``recordings`` and use ``recordings.late_entrance`` etc. Files are built once per test session (on first
use) into the session's temporary folder, and shared by every module that asks.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path

import cv2
import numpy as np
import pytest

from inference.video import write_video
from training.synth.still import FACE_CENTRE, astronaut, placement

SIZE = (240, 320)  # (height, width) of the small recordings
FPS = 25.0
FACE_SCALE = 0.7  # the astronaut's inter-ocular distance (42 px in the portrait) becomes ~29 px in a 320x240 frame
HEAD_AXES = (78, 102)  # half-axes of the head's ellipse in the portrait, about its centre
HEAD_CENTRE = (224, 118)
IOD_SOURCE = 42.1  # inter-ocular distance in the portrait, px
PALETTES = {  # wall, floor, door, picture (RGB): one room per shot
    "beige": ((196, 184, 160), (120, 96, 70), (90, 62, 40), (60, 90, 140)),
    "blue": ((120, 150, 190), (60, 60, 70), (200, 200, 205), (180, 60, 50)),
    "green": ((150, 185, 140), (160, 150, 140), (70, 50, 45), (230, 210, 90)),
}


@dataclass(frozen=True)
class Face:
    """One person's face, wholly inside a frame."""

    who: str  # "A" or "B"
    centre: tuple[float, float]  # between the eyes and the mouth, frame px (x, y)
    iod: float  # inter-ocular distance, frame px: the face is about 2.5 of these wide

    def box(self) -> tuple[float, float, float, float]:
        """An approximate face box (x0, y0, x1, y1): 2.6 IODs wide, 3.2 high."""
        x, y = self.centre
        return (x - 1.3 * self.iod, y - 1.7 * self.iod, x + 1.3 * self.iod, y + 1.5 * self.iod)


@dataclass(frozen=True)
class Recording:
    """A written recording and its truth."""

    path: Path
    what: str  # one sentence
    fps: float
    size: tuple[int, int]  # (width, height) of the first decoded frame
    faces: tuple[tuple[Face, ...], ...]  # per decoded frame: the faces wholly in view
    cuts: tuple[int, ...] = ()  # the first frame of every shot after the first
    declared_frames: int | None = None  # what the container's header says, where it differs from the decoded count
    sizes: tuple[tuple[int, int], ...] = field(default=())  # (width, height) per decoded frame, where it changes

    @property
    def n_frames(self) -> int:
        return len(self.faces)

    @property
    def seconds(self) -> float:
        return self.n_frames / self.fps

    @property
    def present(self) -> np.ndarray:
        """bool per frame: some face is wholly in view."""
        return np.array([bool(f) for f in self.faces])

    def frames_of(self, who: str) -> list[int]:
        return [i for i, fs in enumerate(self.faces) if any(f.who == who for f in fs)]

    def shots(self) -> list[range]:
        edges = [0, *self.cuts, self.n_frames]
        return [range(a, b) for a, b in zip(edges[:-1], edges[1:])]


# ------------------------------------------------------------------------------------------------ drawing
@lru_cache(maxsize=None)
def _person(who: str) -> tuple[np.ndarray, np.ndarray, tuple[float, float]]:
    """(image, alpha in [0, 1], face centre in the image) of person ``who``."""
    img = astronaut()
    alpha = np.zeros(img.shape[:2], np.float32)
    cv2.ellipse(alpha, HEAD_CENTRE, HEAD_AXES, 0, 0, 360, 1.0, -1)
    alpha = cv2.GaussianBlur(alpha, (0, 0), 4)
    centre = FACE_CENTRE
    if who == "B":
        img = np.clip(img[:, ::-1].astype(np.float32) * np.array([0.92, 0.72, 0.6], np.float32), 0, 255)
        img, alpha = img.astype(np.uint8), np.ascontiguousarray(alpha[:, ::-1])
        centre = (img.shape[1] - 1 - FACE_CENTRE[0], FACE_CENTRE[1])
    return img, alpha, centre


@lru_cache(maxsize=None)
def room(palette: str, size: tuple[int, int] = SIZE) -> np.ndarray:
    """An empty room (H, W, 3): a lit wall, a floor, a door and a picture, in the palette's colours."""
    h, w = size
    wall, floor, door, picture = (np.array(c, np.float32) for c in PALETTES[palette])
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    light = 1.1 - 0.35 * np.hypot((xs - 0.3 * w) / w, (ys - 0.2 * h) / h)[..., None]
    img = wall * light
    img[int(0.78 * h):] = floor * (0.8 + 0.2 * ys[int(0.78 * h):, :, None] / h)
    img[int(0.2 * h):int(0.78 * h), int(0.04 * w):int(0.2 * w)] = door
    cv2.rectangle(img, (int(0.72 * w), int(0.18 * h)), (int(0.93 * w), int(0.42 * h)), tuple(picture.tolist()), -1)
    cv2.rectangle(img, (int(0.72 * w), int(0.18 * h)), (int(0.93 * w), int(0.42 * h)), (40, 30, 20), max(1, w // 160))
    return np.clip(img, 0, 255).astype(np.uint8)


def frame(palette: str, people: list[tuple[str, float, float, float]], index: int, size: tuple[int, int] = SIZE,
          noise: float = 2.0) -> tuple[np.ndarray, tuple[Face, ...]]:
    """One frame: the room, then each person ``(who, x, y, scale)`` (face centre in the frame, px; scale 1 = the
    portrait at :data:`FACE_SCALE` of a 240-px-high frame), heads swaying by about a pixel. Returns the frame and
    the faces wholly inside it."""
    h, w = size
    img = room(palette, size).astype(np.float32)
    faces = []
    for k, (who, x, y, scale) in enumerate(people):
        src, alpha, centre = _person(who)
        s = scale * FACE_SCALE * h / SIZE[0]
        sway = (math.sin(0.37 * index + k), 0.5 * math.cos(0.23 * index + k))
        m = placement(0.0, s, (x - (w - 1) / 2 + sway[0], y - (h - 1) / 2 + sway[1]), size, base_scale=1.0,
                      centre=centre)
        a = cv2.warpAffine(alpha, m, (w, h))[..., None]
        img = img * (1 - a) + cv2.warpAffine(src, m, (w, h)).astype(np.float32) * a
        face = Face(who, (x + sway[0], y + sway[1]), IOD_SOURCE * s)
        x0, y0, x1, y1 = face.box()
        if x0 >= 0 and y0 >= 0 and x1 <= w and y1 <= h:
            faces.append(face)
    img += noise * _noise(size)[index % len(_noise(size))]
    return np.clip(img, 0, 255).astype(np.uint8), tuple(faces)


@lru_cache(maxsize=None)
def _noise(size: tuple[int, int], n: int = 5) -> np.ndarray:
    """A few frames of unit Gaussian sensor noise, cycled."""
    return np.random.default_rng(size).normal(0, 1, (n, *size, 3)).astype(np.float32)


def render(plan: list[tuple[str, list[tuple[str, float, float, float]]]], size: tuple[int, int] = SIZE):
    """Frames and faces for a plan: one (palette, people) per frame."""
    out = [frame(palette, people, i, size) for i, (palette, people) in enumerate(plan)]
    return [f for f, _ in out], tuple(faces for _, faces in out)


def _slide(n: int, x_from: float, x_to: float) -> list[float]:
    return list(np.linspace(x_from, x_to, n))


def _record(folder: Path, name: str, what: str, plan, fps: float = FPS, **write) -> Recording:
    """Render a plan (one (palette, people) per frame) at :data:`SIZE`, write it as ``name``, return its truth."""
    frames, faces = render(plan)
    path = folder / name
    write_video(path, frames, fps, **({"preset": "veryfast"} if name.endswith(".mp4") else {}), **write)
    return Recording(path, what, fps, (SIZE[1], SIZE[0]), faces)


def _walk(folder: Path, name: str, what: str, palette: str, xs: list[float | None]) -> Recording:
    """Person A at height centre, at x = ``xs[i]`` in frame i (None: not there)."""
    return _record(folder, name, what, [(palette, [] if x is None else [("A", x, SIZE[0] / 2, 1.0)]) for x in xs])


# ------------------------------------------------------------------------------------------------ recordings
def late_entrance(folder: Path) -> Recording:
    """An empty room for 14 frames; a person walks in from the right over 8 frames and stays (40 frames, 1.6 s)."""
    w = SIZE[1]
    return _walk(folder, "late_entrance.mp4", "an empty room, then a person enters from the right and stays", "beige",
                 [None] * 14 + _slide(8, w + 60, w / 2) + [w / 2] * 18)


def exit_halfway(folder: Path) -> Recording:
    """A person at the centre for 20 frames, who then walks out to the left over 6 frames (40 frames, 1.6 s)."""
    w = SIZE[1]
    return _walk(folder, "exit_halfway.mp4", "a person at the centre who leaves halfway; an empty room after", "blue",
                 [w / 2] * 20 + _slide(6, w / 2, -60) + [None] * 14)


def two_people(folder: Path) -> Recording:
    """Three shots, two people: A alone (14 frames, beige room, left of centre), B alone (10 frames, blue room,
    right), then A and B together (16 frames, green room: A large on the left, B smaller on the right)."""
    w, h = SIZE[1], SIZE[0]
    plan = ([("beige", [("A", 0.42 * w, h / 2, 1.0)])] * 14
            + [("blue", [("B", 0.62 * w, 0.52 * h, 0.9)])] * 10
            + [("green", [("A", 0.3 * w, h / 2, 1.0), ("B", 0.76 * w, 0.55 * h, 0.65)])] * 16)
    rec = _record(folder, "two_people.mp4", "three shots: A alone, B alone, A and B together", plan)
    return dataclasses.replace(rec, cuts=(14, 24))


def four_k(folder: Path, seconds: float = 0.25, fps: float = 60.0) -> Recording:
    """3840x2160 at 60 fps (15 frames): a person in a room, as a phone records it. Rendered at 480x270 and scaled
    up (encoded as it is drawn: the test process never holds the 4K clip); x264 ultrafast keeps the file small."""
    small, big = (270, 480), (2160, 3840)
    n = int(round(seconds * fps))
    faces = []

    def frames():
        for i in range(n):
            img, fs = frame("beige", [("A", 240, 135, 1.0)], i, small)
            faces.append(tuple(Face(f.who, (8 * f.centre[0], 8 * f.centre[1]), 8 * f.iod) for f in fs))
            yield cv2.resize(img, (big[1], big[0]), interpolation=cv2.INTER_LINEAR)

    path = folder / "four_k.mp4"
    write_video(path, frames(), fps, crf=30, preset="ultrafast")
    return Recording(path, "4K UHD at 60 fps", fps, (big[1], big[0]), tuple(faces))


def webm_without_duration(folder: Path, seconds: float = 4.0, fps: float = 10.0) -> Recording:
    """A browser webcam recording: VP8 in WebM written live (no duration, no index in the file), 4 s."""
    w, h = SIZE[1], SIZE[0]
    return _record(folder, "webcam.webm", "a browser's webcam recording: WebM without a duration",
                   [("beige", [("A", w / 2, h / 2, 1.0)])] * int(round(seconds * fps)), fps, codec="libvpx", live=True)


def size_change(folder: Path, second: tuple[int, int] = (360, 480), name: str = "size_change") -> Recording:
    """A browser recording whose camera switches from 320x240 to 480x360 (``second``: height, width) after 12 frames
    (Chrome's recorder does this when the camera's resolution adapts): two VP8 streams joined into one live WebM
    track, the second starting at a key frame that carries its new size. The person stays at the same place in the
    picture."""
    import av

    parts, faces, sizes = [], [], []
    for k, (h, w) in enumerate([SIZE, second]):
        frames, fs = render([("green", [("A", 0.5 * w, 0.5 * h, 1.0)])] * 12, (h, w))
        parts.append(folder / f".{name}_part{k}.webm")
        write_video(parts[-1], frames, FPS, codec="libvpx")
        faces += fs
        sizes += [(w, h)] * len(frames)
    path = folder / f"{name}.webm"
    tmp = folder / f".{name}.tmp.webm"
    with av.open(str(tmp), "w", format="webm", options={"live": "1"}) as out:
        stream, offset = None, 0
        for part in parts:
            with av.open(str(part)) as src:
                stream = stream or out.add_stream_from_template(src.streams.video[0])
                end = offset
                for packet in src.demux(src.streams.video[0]):
                    if packet.dts is None:  # the demuxer's end-of-stream marker
                        continue
                    packet.pts += offset
                    packet.dts += offset
                    end = max(end, packet.pts + (packet.duration or 0))
                    packet.stream = stream
                    out.mux(packet)
                offset = end
            part.unlink()
    tmp.replace(path)
    return Recording(path, f"a WebM whose frame size changes from 320x240 to {second[1]}x{second[0]} mid-stream", FPS,
                     sizes[0], tuple(faces), sizes=tuple(sizes))


def over_declared(folder: Path, declared: int = 98, hidden: int = 3) -> Recording:
    """An H.264 MP4 whose header declares 98 frames while a decoder shows 95: the first 3 are hidden by an edit
    list (timestamps start 3 frames before zero; the muxer writes the edit list, the sample table keeps all 98)."""
    w, h = SIZE[1], SIZE[0]
    rec = _record(folder, "over_declared.mp4", f"an MP4 declaring {declared} frames, {declared - hidden} shown (edit "
                  f"list)", [("blue", [("A", w / 2, h / 2, 1.0)])] * declared, first_pts=-hidden)
    return dataclasses.replace(rec, faces=rec.faces[hidden:], declared_frames=declared)


def one_frame(folder: Path) -> Recording:
    """A video of a single frame (what a phone's 'live photo' export or a mis-trimmed clip can be)."""
    w, h = SIZE[1], SIZE[0]
    return _record(folder, "one_frame.mp4", "a video of one frame", [("beige", [("A", w / 2, h / 2, 1.0)])])


BUILDERS = {f.__name__: f for f in (late_entrance, exit_halfway, two_people, four_k, webm_without_duration,
                                     size_change, over_declared, one_frame)}


class Recordings:
    """Every recording above, built on first use into ``folder``; ``recordings.two_people`` etc."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)

    def __getattr__(self, name: str) -> Recording:
        if name not in BUILDERS:
            raise AttributeError(name)
        return self._build(name)

    def _build(self, name: str) -> Recording:
        cache = self.__dict__.setdefault("_cache", {})
        if name not in cache:
            cache[name] = BUILDERS[name](self.folder)
        return cache[name]

    @cached_property
    def all(self) -> dict[str, Recording]:
        return {name: self._build(name) for name in BUILDERS}


_SHARED: dict[Path, Recordings] = {}


@pytest.fixture(scope="session", name="recordings")
def recordings_fixture(tmp_path_factory) -> Recordings:
    """The session's recordings (one folder and one set of built files, whichever test modules import this)."""
    folder = tmp_path_factory.getbasetemp() / "recordings"
    return _SHARED.setdefault(folder, Recordings(folder))
