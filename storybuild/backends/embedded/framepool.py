"""One pool of frame-painting processes per storybuild process, shared by every shot.

Starting a worker costs ~0.3 s (Python, numpy, the renderer; ~0.6 s more for trimesh when
a model is not yet in the mesh cache); a pool per shot paid that for every shot of every
build, which dominated preview builds and small edits. This pool has one worker per core
(at most the build's -j) however many shots render at once, is started as a build begins
when shots are to render (`warm`), and stays up for the life of the process (a `watch`
session keeps it warm between rebuilds). Workers keep the painters of the last few specs
they were sent, so a shot's models are loaded once per worker, not once per chunk.
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
STALL_S = 10.0  # workers that use no CPU this long while frames are awaited are stuck


class WorkersLost(Exception):
    """The pool's workers died or got stuck; the pool is gone and the frames must be asked again."""

_pool: ProcessPoolExecutor | None = None
_size = 0
_lock = threading.Lock()


def workers(jobs: int | None = None) -> int:
    """How many worker processes the pool runs: one per usable core, at most `jobs`."""
    try:
        cores = max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        cores = max(1, os.cpu_count() or 1)
    return cores if jobs is None else max(1, min(cores, jobs))


def _executor(jobs: int) -> ProcessPoolExecutor:
    """The pool, started for `jobs` (restarted when a build asks for a different size)."""
    global _pool, _size
    size = workers(jobs)
    with _lock:
        if _pool is not None and _size != size:
            _pool.shutdown(wait=False, cancel_futures=True)
            _pool = None
        if _pool is None:
            import multiprocessing

            # spawn, not fork: the executor runs actions on threads, and forking a threaded
            # process can leave a lock held forever in the child.
            _pool = ProcessPoolExecutor(max_workers=size, mp_context=multiprocessing.get_context("spawn"),
                                        initializer=_worker_started)
            _size = size
        return _pool


def submit(key: str, spec: ShotSpec, start: int, stop: int, jobs: int) -> Future:
    """Paint frames start..stop-1 of `spec` (identified by `key`) in a worker; a Future of raw RGB frames."""
    return _executor(jobs).submit(paint_chunk, key, spec, start, stop)


def warm(jobs: int) -> None:
    """Start the workers now, so they are ready by the time a shot's first frames are asked for."""
    pool = _executor(jobs)
    for _ in range(workers(jobs)):
        pool.submit(_ready)


def pids() -> list[int]:
    """The process ids of the pool's workers (none before it starts)."""
    with _lock:
        pool = _pool
    try:
        return list(getattr(pool, "_processes", None) or ())
    except RuntimeError:  # the executor's thread changed it while we read: ask again next time
        return []


def discard(kill: bool = False) -> None:
    """Drop the pool so the next shot starts a fresh one; `kill` its workers when they are stuck.

    Killing breaks the pool for every shot that waits on it: each gets BrokenProcessPool
    and asks a fresh pool for the frames it still needs.
    """
    global _pool
    with _lock:
        pool, _pool = _pool, None
    if pool is None:
        return
    if kill:
        for process in list((getattr(pool, "_processes", None) or {}).values()):
            process.kill()
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
    from storybuild.backends.embedded.heap import keep_freed_memory

    keep_freed_memory()  # a frame's temporaries are reused by the next, not re-mapped
    # What every 3D shot needs, imported while the first shot is still being set up.
    import storybuild.backends.embedded.stage3d  # noqa: F401


def _ready() -> None:
    """Nothing: submitted once per worker to make the pool start them."""


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
