"""The face track over a whole clip: shots, one person followed within a shot, the segment used, and a verdict on it.

A real recording is not a clean clip: the face enters late, leaves, turns away; a news clip cuts between shots
and people. Before anything is aligned, :func:`track_clip` looks at the whole clip, cheaply:

1. **shots**: a colour histogram of a small strided thumbnail of every frame (a few thousand pixels, no resize);
   a cut is a jump of the histogram distance between consecutive frames, well above its neighbourhood;
2. **sparse detection**: the full MTCNN runs on frames spread over the clip (about one a second, at most
   :data:`MAX_SAMPLES` for the first pass), on copies no larger than :data:`DETECT_SIDE`, and on the first and
   last frame of every shot;
3. **tracks**: within a shot, detections on consecutive sampled frames are the same person when their boxes
   overlap or their centres stay close at a similar size; a track never crosses a cut (no re-identification)
   and never jumps to another face;
4. **denser where presence changes**: between a sampled frame where a track's face is usable and one where it is
   not (gone, or turned away), the frame in the middle is examined, and so on down to :data:`EDGE_SECONDS`
   (neighbouring frames at 25–30 fps), so a face's entrance and exit are known to the frame; a face missed for
   less than :data:`BRIDGE_SECONDS` inside a track, at its place, is the detector's miss and is bridged;
5. **the segment**: the person chosen is the largest and most present (usable frames × face area), and the
   frames used are that person's longest stretch of usable frames. Everything else is dropped with its reason.

:func:`track_and_align` then aligns only that segment (:class:`inference.face.FaceAligner`, with the track's
detections as its starting points), so frames without the face are never warped with anyone's transform, and
returns a :class:`Quality`: the verdict every prediction carries (face coverage, shots, faces seen, frames used,
frames dropped and why, notes in plain words).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace

import numpy as np

from .errors import InputError
from .face import AlignedClip, CropSettings, FaceAligner, _box_iou, no_face_error, one_thread

SAMPLE_SECONDS = 1.0  # the first pass looks at a frame about every second …
MAX_SAMPLES = 16  # … and at no more than this many frames spread over the clip (plus shot ends)
DETECT_SIDE = 320  # the track's detections run on copies no larger than this (refinement works at full size)
EDGE_SECONDS = 0.04  # an entrance or exit is pinned down to this (at least to neighbouring frames)
BRIDGE_SECONDS = 0.1  # a face missed for less than this inside a track is the detector's miss, bridged
DEFAULT_FPS = 30.0  # for a folder of frames without a known rate
DETECT_BATCH = 8  # frames per detector call (bounds the copies of full-size frames in memory)
DETECT_THREADS = 2  # detector calls at once on a CPU (each on one math thread)
CUT_DISTANCE = 0.35  # histogram distance (0–1) a cut must exceed …
CUT_CONTRAST = 3.0  # … and exceed this many times the largest distance around it
LAYOUT_DISTANCE = 0.12  # or: the picture's layout (8×8 cells' mean grey, mean change / 64 levels) jumps this much …
LAYOUT_CELLS = 8
TURNED = 0.3  # |nose offset from the facial midline| / inter-ocular distance above which the face is turned away
LOW_CONFIDENCE = 0.97  # median detection probability under which the verdict says so
EDGE_MARGIN = 0.2  # a face whose landmarks come closer to the frame's edge than this × the eye distance is cut off
SMALL_FACE = 48  # pixels (box side) under which the verdict says the face is small

# per-frame states of the chosen person, and why a frame with the face is not used
ABSENT, USABLE, TURNED_AWAY, AT_EDGE = 0, 1, 2, 3
FLAWS = {TURNED_AWAY: "face turned away", AT_EDGE: "face partly out of the picture"}


@dataclass(frozen=True)
class Quality:
    """How much of the clip the verdict rests on. Frame numbers count decoded frames from 0; ranges are inclusive."""

    face_coverage: float  # fraction of the decoded frames used
    shots: list[tuple[int, int]]  # (first, last) frame of each shot
    faces_seen: int  # the most faces seen together in one frame (people cannot be told apart across cuts)
    frames_used: tuple[int, int]  # (first, last) frame of the segment that was aligned
    dropped: list[tuple[int, int, str]] = field(default_factory=list)  # (first, last, reason) of every frame left out
    notes: list[str] = field(default_factory=list)  # plain words for a visitor; empty for a clean clip

    def to_dict(self) -> dict:
        """Plain JSON values (lists for the ranges)."""
        return {"face_coverage": round(self.face_coverage, 4), "shots": [list(s) for s in self.shots],
                "faces_seen": self.faces_seen, "frames_used": list(self.frames_used),
                "dropped": [list(d) for d in self.dropped], "notes": list(self.notes)}


class WithQuality:
    """``face_coverage`` and ``notes`` of an object whose ``quality`` is a :class:`Quality` or None (a clip prepared
    without a track: every frame used, nothing to note). :class:`inference.preprocess.PreparedClip` and
    :class:`inference.runtime.Prediction` carry them."""

    quality: Quality | None

    @property
    def face_coverage(self) -> float:
        """Fraction of the decoded frames the verdict rests on."""
        return self.quality.face_coverage if self.quality else 1.0

    @property
    def notes(self) -> list[str]:
        """The quality verdict in plain words (empty for a clean clip)."""
        return list(self.quality.notes) if self.quality else []


@dataclass
class Detection:
    frame: int
    box: np.ndarray  # (4,) x1, y1, x2, y2 in frame pixels
    prob: float
    landmarks: np.ndarray  # (5, 2)
    state: int  # USABLE, or TURNED_AWAY (the landmarks say so), or AT_EDGE (the box leaves the picture)

    @property
    def side(self) -> float:
        return float(math.sqrt(max(1e-6, (self.box[2] - self.box[0]) * (self.box[3] - self.box[1]))))

    @property
    def centre(self) -> np.ndarray:
        return np.array([(self.box[0] + self.box[2]) / 2, (self.box[1] + self.box[3]) / 2])


@dataclass
class FaceTrack:
    """What :func:`track_clip` found: shots, every detection it ran, the chosen person's per-frame state."""

    n_frames: int
    shots: list[tuple[int, int]]
    detections: dict[int, list[Detection]]  # frame → faces found there (frames not looked at are absent)
    state: np.ndarray  # (T,) int8: ABSENT, USABLE, TURNED_AWAY or AT_EDGE for the chosen person
    others: np.ndarray  # (T,) bool: another face is seen there (on sampled frames, carried between them)
    chosen: dict[int, Detection]  # frame → the chosen person's detection
    segment: tuple[int, int] | None  # (first, last) frame used
    faces_seen: int
    padded: bool = False  # faces were only found with a border around the frame (a tight, cropped face)

    @property
    def looked_at(self) -> list[int]:
        return sorted(self.detections)


def turned_away(landmarks: np.ndarray) -> bool:
    """Whether 5 landmarks show a face turned far from the camera: the nose far off the facial midline (yaw), or
    the mouth not below the eyes."""
    lm = np.asarray(landmarks, np.float64)
    eye = (lm[0] + lm[1]) / 2
    mouth = (lm[3] + lm[4]) / 2
    across = lm[1] - lm[0]
    iod = float(np.hypot(*across))
    if iod < 1e-6:
        return True
    u = across / iod
    down = np.array([-u[1], u[0]])
    if float((mouth - eye) @ down) <= 0.2 * iod:
        return True
    midline = (eye + mouth) / 2
    return abs(float((lm[2] - midline) @ u)) / iod > TURNED


def find_shots(frames: np.ndarray, thumb_side: int = 64) -> list[tuple[int, int]]:
    """Shots as (first, last) frames, cut where the colour histogram of a strided thumbnail jumps.

    The distance is the total variation between 4×4×4-bin RGB histograms (0: same colours, 1: none in common).
    A cut must exceed :data:`CUT_DISTANCE` and :data:`CUT_CONTRAST` × the median distance among the three
    frame pairs on either side of it, so motion inside a shot (or a slow fade) is not a cut, and a shot of a
    single frame is still two cuts. Two shots of one room (a studio's anchors, two angles on one set) share their
    colours: a jump of the picture's layout (the mean grey of an 8×8 grid of cells, mean change over 64 grey levels)
    above :data:`LAYOUT_DISTANCE`, contrasted with its neighbours the same way, is a cut too, when the picture does not
    come back within three frames (an occlusion, a flash, a face gone for a frame or two is no cut)."""
    n = len(frames)
    if n < 2:
        return [(0, n - 1)]
    h, w = frames.shape[1:3]
    step = max(1, max(h, w) // thumb_side)
    thumbs = frames[:, step // 2::step, step // 2::step] >> 6  # a strided view: 4 levels per channel
    codes = (thumbs[..., 0].astype(np.int32) << 4 | thumbs[..., 1].astype(np.int32) << 2 | thumbs[..., 2])
    codes = codes.reshape(n, -1) + 64 * np.arange(n)[:, None]
    hist = np.bincount(codes.ravel(), minlength=64 * n).reshape(n, 64) / codes.shape[1]
    dist = 0.5 * np.abs(np.diff(hist, axis=0)).sum(axis=1)  # dist[t]: between frames t and t + 1
    grey = frames[:, step // 2::step, step // 2::step].mean(-1, dtype=np.float32)  # the same thumbnails, in grey
    th, tw = grey.shape[1:]
    cy, cx = max(1, th // LAYOUT_CELLS), max(1, tw // LAYOUT_CELLS)
    cells = grey[:, :cy * (th // cy), :cx * (tw // cx)].reshape(n, th // cy, cy, tw // cx, cx).mean((2, 4))
    layout = np.abs(np.diff(cells, axis=0)).mean((1, 2)) / 64.0

    def jumps(values: np.ndarray, t: int, floor: float) -> bool:
        around = np.concatenate([values[max(0, t - 3):t], values[t + 1:t + 4]])
        return values[t] > floor and values[t] > CUT_CONTRAST * (float(np.median(around)) if len(around) else 0.0)

    def stays(t: int) -> bool:  # no frame within 3 after the jump looks like one within 3 before it (an occlusion,
        before, after = cells[max(0, t - 2):t + 1], cells[t + 1:t + 4]  # a flash, a face gone for a frame or two)
        return bool((np.abs(before[:, None] - after[None]).mean((2, 3)) / 64.0 > LAYOUT_DISTANCE / 2).all())

    cuts = [t + 1 for t in range(n - 1)
            if jumps(dist, t, CUT_DISTANCE) or (jumps(layout, t, LAYOUT_DISTANCE) and stays(t))]
    starts = [0, *cuts]
    ends = [c - 1 for c in cuts] + [n - 1]
    return list(zip(starts, ends))


def _same_face(a: Detection, b: Detection) -> bool:
    """Two detections on nearby frames of one shot may show the same person: boxes overlap, or the centre moved
    less than a face's width at a similar size."""
    if _box_iou(a.box, b.box) >= 0.3:
        return True
    ratio = a.side / b.side
    return 0.67 <= ratio <= 1.5 and float(np.linalg.norm(a.centre - b.centre)) <= max(a.side, b.side)


def _closeness(a: Detection, b: Detection) -> float:
    """Higher for the detection more likely to continue ``a``: centre distance in face sizes, negated."""
    return -float(np.linalg.norm(a.centre - b.centre)) / max(a.side, b.side)


def _sample_frames(n: int, fps: float | None, shots: list[tuple[int, int]], at_least: int = 2) -> list[int]:
    """The first pass: about one frame a second, at most :data:`MAX_SAMPLES` (unless ``at_least`` asks for more),
    and every shot's ends."""
    step = max(1, round((fps or DEFAULT_FPS) * SAMPLE_SECONDS), math.ceil((n - 1) / (MAX_SAMPLES - 1)))
    step = max(1, min(step, math.ceil((n - 1) / max(1, at_least - 1))))
    grid = set(range(0, n, step)) | {n - 1}
    return sorted(grid | {s for s, _ in shots} | {e for _, e in shots})


class _Detector:
    """The aligner's detector on single frames of one clip, each frame looked at once."""

    def __init__(self, aligner: FaceAligner, frames: np.ndarray, threads: int = 1):
        self.aligner, self.frames, self.threads = aligner, frames, threads
        self.seen: dict[int, list[Detection]] = {}
        self.padded = False

    def run(self, idx: list[int]) -> None:
        """Detect on the frames ``idx`` not looked at yet, :data:`DETECT_BATCH` at a time. On the CPU the batches
        run on up to :data:`DETECT_THREADS` threads at once (no more than the process's math threads: a batch
        command's worker has one): the detector runs on one math thread (for results that do not depend on the
        machine's thread count, see :func:`inference.face.one_thread`), and the batches are the same as one after
        the other, so the results are too."""
        todo = sorted({int(i) for i in idx} - set(self.seen))
        chunks = [todo[s:s + DETECT_BATCH] for s in range(0, len(todo), DETECT_BATCH)]
        detect = self.aligner.detect_padded if self.padded else self.aligner.detect

        def one(chunk: list[int]):
            return chunk, detect(self.frames[chunk], max_side=DETECT_SIDE)

        threads = min(DETECT_THREADS, len(chunks), self.threads)
        if threads > 1 and str(self.aligner.device) == "cpu":
            from concurrent.futures import ThreadPoolExecutor

            self.aligner._detector()  # the weights load once, before the threads share them
            with ThreadPoolExecutor(threads, "detect") as pool:
                done = list(pool.map(one, chunks))
        else:
            done = map(one, chunks)
        for chunk, (boxes, probs, points, _) in done:
            for i, bs, ps, ls in zip(chunk, boxes, probs, points):
                self.seen[i] = [Detection(i, b, float(p), lm, self._state(lm)) for b, p, lm in zip(bs, ps, ls)]

    def _state(self, landmarks: np.ndarray) -> int:
        """USABLE, TURNED_AWAY, or AT_EDGE: a landmark closer to the frame's edge than :data:`EDGE_MARGIN` × the
        inter-ocular distance (the box may leave the frame: a dataset's tight crop is a face filling it)."""
        if turned_away(landmarks):
            return TURNED_AWAY
        h, w = self.frames.shape[1:3]
        m = EDGE_MARGIN * float(np.linalg.norm(landmarks[1] - landmarks[0]))
        inside = (landmarks[:, 0] >= m).all() and (landmarks[:, 0] <= w - 1 - m).all() and \
            (landmarks[:, 1] >= m).all() and (landmarks[:, 1] <= h - 1 - m).all()
        return USABLE if inside else AT_EDGE

    def retry_padded(self) -> None:
        """Nothing found anywhere: a face filling the frame (a dataset's cropped release) needs room around it."""
        idx = sorted(self.seen)
        self.seen, self.padded = {}, True
        self.run(idx)


def _link(shot: tuple[int, int], det: _Detector) -> list[dict[int, Detection]]:
    """Tracks (frame → detection) over the sampled frames of one shot: each detection continues the track whose
    last detection it matches (largest faces first), or starts one; a track that misses a sampled frame ends."""
    frames = [i for i in sorted(det.seen) if shot[0] <= i <= shot[1]]
    tracks: list[dict[int, Detection]] = []
    alive: list[int] = []
    for i in frames:
        faces = sorted(det.seen[i], key=lambda d: -d.side)
        nxt, taken = [], set()
        for d in faces:
            last = {k: tracks[k][max(tracks[k])] for k in alive if k not in taken}
            fits = [k for k, p in last.items() if _same_face(p, d)]
            match = max(fits, key=lambda k: _closeness(last[k], d)) if fits else None
            if match is None:
                tracks.append({i: d})
                match = len(tracks) - 1
            else:
                tracks[match][i] = d
            taken.add(match)
            nxt.append(match)
        alive = nxt
    return tracks


def _state(d: Detection | None) -> int:
    return ABSENT if d is None else d.state


def _adopt(track: dict[int, Detection], shot: tuple[int, int], det: _Detector) -> None:
    """Frames looked at for another reason (another track's edges) that lie next to the track's frames join it
    when one of their faces continues it; repeated until nothing changes."""
    changed = True
    while changed:
        changed = False
        known = [i for i in sorted(det.seen) if shot[0] <= i <= shot[1]]
        for k, i in enumerate(known):
            if i in track:
                continue
            near = [track[j] for j in known[max(0, k - 1):k + 2] if j in track]
            match = [d for d in det.seen[i] if near and _same_face(near[0], d)]
            if match:
                track[i] = max(match, key=lambda d: _closeness(near[0], d))
                changed = True


def _edges(track: dict[int, Detection], shot: tuple[int, int], det: _Detector, gap: int) -> list[int]:
    """Frames halfway between neighbouring looked-at frames more than ``gap`` apart where the track's state
    changes."""
    known = [i for i in sorted(det.seen) if shot[0] <= i <= shot[1]]
    return [(a + b) // 2 for a, b in zip(known[:-1], known[1:])
            if b - a > gap and _state(track.get(a)) != _state(track.get(b))]


def _merge(tracks: list[tuple[tuple[int, int], dict[int, Detection]]]) -> list:
    """Tracks that came to hold the same detection (one person, found from two sides) become one."""
    out: list[tuple[tuple[int, int], dict[int, Detection]]] = []
    for shot, t in tracks:
        ids = {id(d) for d in t.values()}
        into = next((u for s, u in out if s == shot and ids & {id(d) for d in u.values()}), None)
        if into is None:
            out.append((shot, dict(t)))
        else:
            for i, d in t.items():
                into.setdefault(i, d)
    return out if len(out) == len(tracks) else _merge(out)


def _bridge(tracks: list[tuple[tuple[int, int], dict[int, Detection]]], gap: int) -> list:
    """A track that starts at most ``gap`` frames after another one of the same shot ended, at its place, continues
    it: the detector missed one person for a moment (blur, a hand), nobody left."""
    out: list[tuple[tuple[int, int], dict[int, Detection]]] = []
    for shot, t in sorted(tracks, key=lambda st: (st[0], min(st[1]))):
        prev = next((u for s, u in reversed(out)
                     if s == shot and 0 < min(t) - max(u) <= gap + 1 and _same_face(u[max(u)], t[min(t)])), None)
        if prev is None:
            out.append((shot, dict(t)))
        else:
            prev.update(t)
    return out


def _refine(tracks: list[tuple[tuple[int, int], dict[int, Detection]]], det: _Detector, gap: int) -> None:
    """Look between looked-at frames where a track's state changes (gone, back, turned away), halving the gap until
    the change is at most ``gap`` frames wide; what is found on the way joins the tracks it continues. The frames
    inside such a last gap count as without the face."""
    while True:
        for shot, t in tracks:
            _adopt(t, shot, det)
        todo = sorted({m for shot, t in tracks for m in _edges(t, shot, det, gap)})
        if not todo:
            return
        det.run(todo)


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(first, last) of each run of True."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) - 1))


def _fill(n: int, points: dict[int, int], lo: int, hi: int) -> np.ndarray:
    """Per-frame values in [lo, hi] from values on some frames: each frame takes the value of the nearest known
    frame before it when the known frames on either side agree, else the value is unknown (-1); refinement makes
    disagreeing known frames neighbours."""
    out = np.full(n, -1, np.int8)
    known = sorted(points)
    for a, b in zip(known[:-1], known[1:]):
        out[a] = points[a]
        if points[a] == points[b]:
            out[a:b] = points[a]
    if known:
        out[known[-1]] = points[known[-1]]
    out[:lo] = -1
    out[hi + 1:] = -1
    return out


def track_clip(frames: np.ndarray, aligner: FaceAligner, fps: float | None = None, source: str = "clip") -> FaceTrack:
    """Shots, detections and the chosen person's segment for a whole clip ``(T, H, W, 3)``; raises
    :class:`InputError` when no face is found at all."""
    with one_thread(aligner.device) as threads:
        return _track(np.asarray(frames), aligner, fps, source, threads)


def _track(frames: np.ndarray, aligner: FaceAligner, fps: float | None, source: str, threads: int = 1) -> FaceTrack:
    n = len(frames)
    shots = find_shots(frames)
    det = _Detector(aligner, frames, threads)
    det.run(_sample_frames(n, fps, shots, aligner.find_frames))
    if not any(det.seen.values()):
        det.retry_padded()
    if not any(det.seen.values()):
        raise no_face_error(source, sorted(det.seen), n)
    tracks = [(shot, t) for shot in shots for t in _link(shot, det)]
    _refine(tracks, det, max(1, round((fps or DEFAULT_FPS) * EDGE_SECONDS)))
    gap = max(1, round((fps or DEFAULT_FPS) * BRIDGE_SECONDS))
    tracks = _bridge(_merge(tracks), gap)
    best, best_score, state = None, -1.0, np.zeros(n, np.int8)
    for shot, t in tracks:
        points = {i: _state(t.get(i)) for i in det.seen if shot[0] <= i <= shot[1]}
        s = _fill(n, points, shot[0], shot[1])
        for a, b in _runs(s <= ABSENT):  # a brief miss inside the track: the detector, not the person
            if min(t) < a and b < max(t) and b - a < gap and s[a - 1] == USABLE and s[b + 1] == USABLE:
                s[a:b + 1] = USABLE
        usable = s == USABLE
        sides = [d.side for d in t.values() if d.state == USABLE]
        score = float(usable.sum()) * (float(np.median(sides)) ** 2 if sides else 0.0)
        if score > best_score:
            best, best_score, state = (shot, t), score, np.where(s < 0, ABSENT, s).astype(np.int8)
    chosen = best[1] if best else {}
    runs = _runs(state == USABLE)
    segment = max(runs, key=lambda r: (r[1] - r[0], -r[0])) if runs else None
    segment = (int(segment[0]), int(segment[1])) if segment else None
    others = np.zeros(n, bool)
    for shot, t in tracks:
        if best is not None and t is best[1]:
            continue
        lo, hi = min(t), max(t)
        others[lo:hi + 1] = True
    faces_seen = max((len(ds) for ds in det.seen.values()), default=0)
    return FaceTrack(n, shots, dict(det.seen), state, others, chosen, segment, faces_seen, det.padded)


def _span(a: int, b: int) -> str:
    return f"frame {a}" if a == b else f"frames {a}–{b}"


def quality_of(track: FaceTrack, n_frames_needed: int | None = None, scale: float = 1.0,
               size: tuple[int, int] | None = None) -> Quality:
    """The verdict on a track: coverage, what was dropped and why, and notes a visitor understands. ``scale`` and
    ``size``: the decoder reduced the clip's frames by ``scale`` to ``size`` (width, height)."""
    n = track.n_frames
    a, b = track.segment
    shot_of = np.zeros(n, np.int32)
    for k, (s, e) in enumerate(track.shots):
        shot_of[s:e + 1] = k
    reason = np.full(n, "", object)
    seg_shot = shot_of[a]
    outside = shot_of != seg_shot
    reason[outside & track.others] = "another shot"
    reason[outside & ~track.others] = "no face"
    inside = ~outside
    for flaw, words in FLAWS.items():
        reason[inside & (track.state == flaw)] = words
    reason[inside & (track.state == USABLE)] = "a shorter stretch of the face"
    gone = inside & (track.state == ABSENT)
    reason[gone & track.others] = "another face only"
    reason[gone & ~track.others] = "no face"
    reason[a:b + 1] = ""
    dropped = []
    i = 0
    while i < n:
        if reason[i]:
            j = i
            while j + 1 < n and reason[j + 1] == reason[i]:
                j += 1
            dropped.append((i, j, str(reason[i])))
            i = j + 1
        else:
            i += 1
    used = b - a + 1
    coverage = used / n
    notes = []
    if used < n:
        others = {r for _, _, r in dropped} & {"another shot", "another face only", "a shorter stretch of the face"}
        share = f"{round(100 * coverage)} % of the clip"
        notes.append(f"{share + ' was used' if others else 'the face is visible in ' + share} ({_span(a, b)} used; "
                     f"{n - used} of {n} frames left out)")
        why = sorted({r for _, _, r in dropped}, key=lambda r: -sum(e - s + 1 for s, e, q in dropped if q == r))
        notes.append("frames left out: " + "; ".join(
            f"{r} ({', '.join(_span(s, e) for s, e, q in dropped if q == r)})" for r in why))
    if len(track.shots) > 1:
        cuts = len(track.shots) - 1
        notes.append(f"{cuts} shot cut{'s' if cuts > 1 else ''}: the longest stretch of one face within a shot was "
                     f"used (people are not followed across cuts)")
    if track.faces_seen > 1:
        notes.append(f"{track.faces_seen} faces were seen together; the largest, most visible one was used")
    if used == 1:
        notes.append("one frame holds no motion: the verdict rests on a single still image")
    elif n_frames_needed and used < n_frames_needed:
        what = f"the clip has only {n} frames" if used == n else f"the face is visible on only {used} frames"
        notes.append(f"{what}; the model takes {n_frames_needed}, so frames were interpolated between them")
    seg = [track.chosen[i] for i in track.chosen if a <= i <= b]
    prob = float(np.median([d.prob for d in seg])) if seg else 1.0
    if prob < LOW_CONFIDENCE:
        notes.append(f"low detection confidence ({prob:.0%}): the face may be blurred, dark or partly hidden")
    side = float(np.median([d.side for d in seg])) if seg else 0.0
    if seg and side < SMALL_FACE:
        reduced = (f"; the clip was reduced to {size[0]}x{size[1]} to fit the memory held for one clip, and a "
                   f"shorter clip keeps more detail") if scale < 1 and size else ""
        notes.append(f"the face is small ({side:.0f} pixels across): fine facial motion may be lost{reduced}")
    return Quality(face_coverage=coverage, shots=[(int(s), int(e)) for s, e in track.shots],
                   faces_seen=int(track.faces_seen), frames_used=(int(a), int(b)),
                   dropped=[(int(s), int(e), r) for s, e, r in dropped], notes=notes)


def track_and_align(frames: np.ndarray, aligner: FaceAligner, crop: CropSettings = CropSettings(),
                    fps: float | None = None, source: str = "clip", n_frames: int | None = None,
                    whole: bool = False, scale: float = 1.0, notes: list[str] | None = None
                    ) -> tuple[AlignedClip, Quality]:
    """The face stage of a whole clip: :func:`track_clip`, then the chosen segment aligned. ``n_frames``: the
    count the caller resamples the segment to (only the frames that resampling reads are warped; the others stay
    black). ``whole``: refuse a clip whose every frame is not in the segment (a dataset clip, annotated onset to
    offset, must not lose frames silently). ``scale``: how much the decoder reduced the frames; ``notes``: what
    the decoder has to say (e.g. a size change mid-stream), put first in the verdict's notes."""
    t0 = time.perf_counter()
    track = track_clip(frames, aligner, fps, source)
    t_track = time.perf_counter() - t0
    n = track.n_frames
    if track.segment is None or (track.segment[1] - track.segment[0] + 1) < min(2, n):
        seen = ", ".join(_span(s, e) for s, e in _runs(track.state != ABSENT)) or "no two neighbouring frames"
        raise InputError(f"{source}: no face is visible long enough to analyse (a usable face was found on "
                         f"{seen} of {n}). Use a clip where one face is clearly visible, roughly frontal, for at "
                         f"least a few frames.")
    quality = quality_of(track, n_frames, scale, (frames.shape[2], frames.shape[1]))
    if notes:
        quality = replace(quality, notes=[*notes, *quality.notes])
    a, b = quality.frames_used
    if whole and quality.dropped:
        raise InputError(f"{source}: the face is not usable on every frame, and this clip must be used whole: "
                         + "; ".join(quality.notes))
    chosen = {i - a: d for i, d in track.chosen.items() if a <= i <= b and d.state == USABLE}
    ends = {k: (chosen[k].box, chosen[k].prob, chosen[k].landmarks) for k in (0, b - a) if k in chosen}
    warp_only = None
    if n_frames and n_frames < b - a + 1:
        from .temporal import sample_positions

        pos = sample_positions(b - a + 1, n_frames)
        warp_only = np.unique(np.concatenate([np.floor(pos), np.minimum(np.floor(pos) + 1, b - a)]).astype(int))
    aligned = aligner.align(frames[a:b + 1], crop, source, found=ends,
                            seeds={k: d.landmarks for k, d in chosen.items()}, first_frame=a, warp_only=warp_only)
    aligned.meta["faces_seen"] = quality.faces_seen
    states = {ABSENT: "absent", USABLE: "usable", **FLAWS}
    aligned.meta["track"] = {
        "looked_at": track.looked_at, "shots": quality.shots, "padded": track.padded,
        "person": {str(i): {"probability": round(d.prob, 5), "size_px": round(d.side, 1), "state": states[d.state]}
                   for i, d in sorted(track.chosen.items())},  # the chosen person on the frames looked at
    }
    aligned.meta["timings_s"] = {"track": round(t_track, 4), **aligned.meta["timings_s"]}
    return aligned, quality
