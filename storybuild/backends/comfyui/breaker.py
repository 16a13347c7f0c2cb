"""A circuit breaker per server: a server that keeps failing is taken out for a while.

closed ──threshold consecutive failures──► open ──cooldown──► half-open (one trial job)
  ▲                                          ▲                      │
  └───────────── trial succeeds ─────────────┼──── trial fails ─────┘ (cooldown doubles)
"""

from __future__ import annotations

import threading
import time
from typing import Callable


class CircuitBreaker:
    """Thread-safe; `clock` is injectable for tests."""

    def __init__(self, threshold: int = 3, cooldown: float = 30.0, max_cooldown: float = 300.0,
                 clock: Callable[[], float] = time.monotonic):
        self.threshold = threshold
        self.base_cooldown = cooldown
        self.max_cooldown = max_cooldown
        self.clock = clock
        self.lock = threading.Lock()
        self.failures = 0
        self.cooldown = cooldown
        self.opened_at: float | None = None
        self.trial = False  # a half-open trial job is in flight
        self.last_error = ""

    @property
    def state(self) -> str:
        with self.lock:
            return self._state()

    def _state(self) -> str:
        if self.opened_at is None:
            return "closed"
        if self.clock() - self.opened_at < self.cooldown:
            return "open"
        return "half-open"

    @property
    def down(self) -> bool:
        """Open again after a failed half-open trial: the server is down, not blipping."""
        with self.lock:
            return self._state() == "open" and self.cooldown > self.base_cooldown

    def retry_in(self) -> float:
        """Seconds until an open breaker lets a trial through (0 when it would now)."""
        with self.lock:
            if self.opened_at is None:
                return 0.0
            return max(0.0, self.cooldown - (self.clock() - self.opened_at))

    def allow(self) -> bool:
        """May this server take a job now? In half-open state, only one trial at a time."""
        with self.lock:
            state = self._state()
            if state == "closed":
                return True
            if state == "half-open" and not self.trial:
                self.trial = True
                return True
            return False

    def success(self) -> None:
        with self.lock:
            self.failures = 0
            self.opened_at = None
            self.trial = False
            self.cooldown = self.base_cooldown

    def failure(self, error: str = "") -> None:
        with self.lock:
            self.last_error = error
            self.failures += 1
            if self.trial:  # the trial failed: stay out longer
                self.cooldown = min(self.max_cooldown, self.cooldown * 2)
                self.opened_at = self.clock()
                self.trial = False
            elif self.failures >= self.threshold and self.opened_at is None:
                self.opened_at = self.clock()

    def release(self) -> None:
        """A trial that ended without telling us about the server (cancelled): let another try."""
        with self.lock:
            self.trial = False
