"""The project lock: one storybuild process at a time changes a project's store.

An advisory `flock` on .storybuild/lock. The kernel drops it when the holder exits, even
by SIGKILL, so a crashed build never leaves a stale lock behind. The holder writes its
pid and command into the file so a waiting process can say whom it waits for.
"""

from __future__ import annotations

import fcntl
import os
from typing import Callable

from storybuild.errors import LockedError


class ProjectLock:
    """An exclusive lock on a project's store; use as a context manager."""

    def __init__(self, store_dir: str | os.PathLike, *, wait: bool = True,
                 on_wait: Callable[[str], None] = lambda holder: None, what: str = "build"):
        self.path = os.path.join(store_dir, "lock")
        self.wait = wait
        self.on_wait = on_wait
        self.what = what
        self._fd: int | None = None

    def holder(self) -> str:
        """Who holds the lock, as its holder described itself."""
        try:
            with open(self.path, encoding="utf-8") as f:
                return f.read().strip() or "another storybuild process"
        except OSError:
            return "another storybuild process"

    def acquire(self) -> None:
        """Take the lock, waiting for it unless `wait` is False (then LockedError)."""
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = self.holder()
                if not self.wait:
                    raise LockedError(
                        f"another storybuild process is using this project ({holder})",
                        hint="wait for it to finish, or run again without --no-wait to wait for it",
                    ) from None
                self.on_wait(holder)
                fcntl.flock(fd, fcntl.LOCK_EX)
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()}: storybuild {self.what}\n".encode(), 0)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def release(self) -> None:
        """Give the lock back."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.ftruncate(fd, 0)
            os.close(fd)  # closing the descriptor releases the flock

    def __enter__(self) -> "ProjectLock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()
