"""Clips prepared (decoded, aligned, resampled) ahead of the model, in worker processes when asked.

The batch command (``python -m inference --workers N``) reads from :func:`prepared_clips`: each clip goes through
the one clip path (a :class:`inference.preprocess.Preparer`, the predictor's) and comes back as a
:class:`inference.preprocess.PreparedClip`, which pickles. Workers are spawned processes (no fork after ONNX Runtime
/ OpenVINO have started threads), so the functions they run live here, in an importable module.
"""

from __future__ import annotations

import signal
from pathlib import Path

from .errors import InputError
from .preprocess import PreparedClip, Preparer

_WORKER_PREPARER: Preparer | None = None  # set in each worker process by _worker_init


def _worker_init(preparer: Preparer) -> None:
    global _WORKER_PREPARER
    _WORKER_PREPARER = preparer
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle: it stops the pool
    import cv2

    cv2.setNumThreads(1)  # the parallelism is the workers themselves
    from . import face, video

    face.MATH_THREADS = 1

    video.MAX_PIECES = 1  # each worker decodes its file in one go


def _prepare_one(preparer: Preparer, path: Path, fps: float | None) -> tuple[str, PreparedClip | str]:
    """("ok", prepared) or ("error", reason): exceptions never cross a process boundary as objects."""
    try:
        return "ok", preparer(path, fps)
    except InputError as e:
        return "error", str(e)
    except Exception as e:  # noqa: BLE001 — one bad file never stops the run; its reason is in its row
        return "error", f"{type(e).__name__}: {e}"


def _prepare_in_worker(job: tuple[Path, float | None]) -> tuple[str, PreparedClip | str]:
    return _prepare_one(_WORKER_PREPARER, *job)


WORKER_DIED = ("the worker process preparing this clip died (a crash in a decoder, or killed, e.g. out of memory); "
               "it was retried alone and died again")


def _close(pool) -> None:
    """Stop a worker pool now: its pending work cancelled, its workers ended (they ignore Ctrl-C, and one may be
    decoding a long recording), and its manager thread joined before we go on. Without the join, Python 3.11's exit
    hook for process pools can write to the wake-up pipe the manager thread is closing at that moment, and a Ctrl-C'd
    batch run ends with "OSError: Bad file descriptor" and a traceback (seen in CI)."""
    thread = getattr(pool, "_executor_manager_thread", None)  # shutdown() drops these references
    workers = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for w in workers:
        if w.is_alive():
            w.terminate()
    if thread is not None:
        thread.join(timeout=30)


def prepared_clips(paths: list[Path], preparer: Preparer, fps: float | None, workers: int):
    """Yield ``(path, "ok", PreparedClip)`` or ``(path, "error", reason)`` for every path, in completion order.

    With ``workers`` > 0, clips are prepared in that many spawned processes, a bounded number ahead of the model.
    If a worker dies, the clips it may have been holding are retried one at a time in a fresh pool: the one that
    kills it again gets an error row; the others go on."""
    if workers <= 0:
        for q in paths:
            yield (q, *_prepare_one(preparer, q, fps))
        return
    import multiprocessing
    from collections import deque
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    def new_pool():
        return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"), initializer=_worker_init,
                                   initargs=(preparer,))

    def submit(q: Path) -> bool:
        """Hand ``q`` to the pool; False when the pool is already broken (workers start fast and may die between
        two waits)."""
        try:
            inflight[pool.submit(_prepare_in_worker, (q, fps))] = q
        except BrokenProcessPool:
            return False
        return True

    queue, suspects, inflight = deque(paths), deque(), {}
    isolating = False  # the one clip in flight is a suspect, submitted alone
    pool = new_pool()
    try:
        while queue or suspects or inflight:
            if not inflight and suspects:
                q = suspects.popleft()
                if not submit(q):  # the pool broke with nothing in flight (a worker died starting): a fresh one
                    suspects.appendleft(q)
                    _close(pool)
                    pool = new_pool()
                    continue
                isolating = True
            if not isolating:
                while queue and len(inflight) < 2 * workers:
                    q = queue.popleft()
                    if not submit(q):  # a worker died since the last wait: its futures say so below
                        queue.appendleft(q)
                        break
                if not inflight and queue:  # broken with nothing in flight: a fresh pool
                    _close(pool)
                    pool = new_pool()
                    continue
            done, _ = wait(inflight, return_when=FIRST_COMPLETED)
            for f in done:
                q = inflight.pop(f)
                try:
                    result = f.result()
                except BrokenProcessPool:
                    lost = [q, *inflight.values()]
                    inflight.clear()
                    _close(pool)
                    pool = new_pool()
                    if isolating:
                        yield q, "error", WORKER_DIED
                    else:
                        suspects.extend(lost)
                    isolating = False
                    break
                isolating = False
                yield (q, *result)
    finally:
        _close(pool)
