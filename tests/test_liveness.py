"""StallWatch: CPU time as the sign that a worker gets anywhere."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from storybuild.backends.shared import liveness
from storybuild.backends.shared.liveness import WALL_FACTOR, StallWatch, cpu_seconds


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_sleeping_process_uses_no_cpu_and_a_busy_one_does() -> None:
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)
        watch = StallWatch(0.6)
        assert not watch.stalled([sleeper.pid]) and not watch.stalled([busy.pid])
        time.sleep(1.0)
        assert watch.stalled([sleeper.pid])
        assert not StallWatch(0.6).stalled([busy.pid])
        before = cpu_seconds(busy.pid)
        time.sleep(0.3)
        assert cpu_seconds(busy.pid) > before
    finally:
        sleeper.kill()
        busy.kill()
        sleeper.wait()
        busy.wait()


def test_without_cpu_times_a_slow_worker_gets_longer(monkeypatch) -> None:
    monkeypatch.setattr(liveness, "cpu_seconds", lambda pid: None)  # no /proc
    clock = Clock()
    watch = StallWatch(5.0, clock)
    clock.now = 5.0 * WALL_FACTOR - 1
    assert not watch.stalled([os.getpid()]) and not watch.stalled([])
    clock.now = 5.0 * WALL_FACTOR + 1
    assert watch.stalled([os.getpid()])
    watch.progressed()  # a delivered chunk starts the clock again
    assert not watch.stalled([])
