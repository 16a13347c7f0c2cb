"""One pool of frame-painting processes per storybuild process, shared by every shot.

Starting a worker costs ~1 s (Python, numpy, trimesh, Pillow); a pool per shot paid that
for every shot of every build, which dominated preview builds and small edits. This pool
starts on first use, has one worker per core however many shots render at once, and stays
up for the life of the process (a `watch` session keeps it warm between rebuilds).
Workers keep the painters of the last few specs they were sent, so a shot's models are
loaded once per worker, not once per chunk.
"""

from __future__ import annotations

import atexit
import os
import threading
from collections import OrderedDict
from concurrent.futures import Future, ProcessPoolExecutor

from storybuild.backends.embedded.painters import Painter, ShotSpec, painter_for
from storybuild.errors import BackendError

PAINTERS_KEPT = 4  # shots a worker keeps painters for (concurrent shots interleave chunks)

_pool: ProcessPoolExecutor | None = None
_lock = threading.Lock()


def workers() -> int:
    """How many worker processes the pool runs: one per usable core."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def submit(key: str, spec: ShotSpec, start: int, stop: int) -> Future:
    """Paint frames start..stop-1 of `spec` (identified by `key`) in a worker; a Future of raw RGB frames."""
    global _pool
    with _lock:
        if _pool is None:
            import multiprocessing

            # spawn, not fork: the executor runs actions on threads, and forking a threaded
            # process can leave a lock held forever in the child.
            _pool = ProcessPoolExecutor(max_workers=workers(), mp_context=multiprocessing.get_context("spawn"),
                                        initializer=_worker_started)
        pool = _pool
    return pool.submit(paint_chunk, key, spec, start, stop)


def discard() -> None:
    """Drop a broken pool so the next shot starts a fresh one."""
    global _pool
    with _lock:
        pool, _pool = _pool, None
    if pool is not None:
        pool.shutdown(wait=False, cancel_futures=True)


@atexit.register
def _shutdown() -> None:
    with _lock:
        pool = _pool
    if pool is not None:
        pool.shutdown(wait=True, cancel_futures=True)


# --------------------------------------------------------------------------- in a worker

_painters: "OrderedDict[str, Painter]" = OrderedDict()


def _worker_started() -> None:
    from storybuild.heap import keep_freed_memory

    keep_freed_memory()  # a frame's temporaries are reused by the next, not re-mapped


def paint_chunk(key: str, spec: ShotSpec, start: int, stop: int) -> list[bytes]:
    """Frames start..stop-1 as raw RGB bytes (runs in a worker process)."""
    painter = _painters.get(key)
    if painter is None:
        made = painter_for(spec)
        if not isinstance(made, Painter):
            raise BackendError(f"{spec.picture} pictures are not painted frame by frame")
        painter = _painters[key] = made
        while len(_painters) > PAINTERS_KEPT:
            _painters.popitem(last=False)
    else:
        _painters.move_to_end(key)
    return [painter.frame(i).tobytes() for i in range(start, stop)]
