"""Is a worker process getting anywhere? CPU time as the sign of progress.

A worker that waits for input that will never come, or that is stopped, uses no CPU; a
worker that is only slow (a loaded machine, a large frame) keeps using some. So a group of
worker processes whose CPU time has not moved for `after` seconds while we wait on them is
stuck, and is killed and its work redone, in seconds rather than after a long wall-clock
deadline that a slow but healthy worker could also reach. Where CPU time cannot be read
(no /proc: not Linux; no workers to read), WALL_FACTOR times as much wall time since the
last sign of progress stands in for it, so a healthy but slow worker is not taken for stuck.
"""

from __future__ import annotations

import os
import time
from typing import Callable, Iterable

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
WALL_FACTOR = 6  # without CPU times, how much longer a wait may last before it counts as a stall


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of process `pid`, or None where it cannot be read."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except OSError:
        return None
    # Fields after the command name (which may hold spaces and parentheses): utime, stime are 14, 15.
    fields = stat[stat.rfind(b")") + 2:].split()
    try:
        return (int(fields[11]) + int(fields[12])) / _TICKS
    except (IndexError, ValueError):
        return None


class StallWatch:
    """Says when processes have made no progress (used no CPU) for `after` seconds."""

    def __init__(self, after: float, clock: Callable[[], float] = time.monotonic):
        self.after = after
        self._clock = clock
        self._cpu: float | None = None
        self._since = clock()

    def progressed(self) -> None:
        """Something was delivered: the stall clock starts again."""
        self._since = self._clock()

    def stalled(self, pids: Iterable[int]) -> bool:
        """True once the processes' total CPU time has not grown for `after` seconds."""
        now = self._clock()
        times = [cpu_seconds(pid) for pid in pids]
        if not times or None in times:  # gone, none to read, or no /proc: judge by wall time
            return now - self._since > self.after * WALL_FACTOR
        total = sum(t for t in times if t is not None)
        if self._cpu is None or total > self._cpu:
            self._cpu = total
            self._since = now
        return now - self._since > self.after
