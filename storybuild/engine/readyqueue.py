"""The ready queue: which step may start next, as ninja's `Plan` is to its `Builder`.

A pure state machine over the steps of one build, with no threads, no store and no
events, so that scheduling is tested on its own (tests/test_readyqueue.py). The Executor
drives it from its scheduling thread:

    find_work()  → the next step to start, or None (in manifest order, within the limits)
      then one of  started(id, key)   it runs           (a slot is taken until it ends)
                   wait_for(id, key)  a twin runs it    (it comes back when that one ends)
                   finished(id)       served from the cache without running
    finished(id) / failed(id) / cancelled(id)   how a started step ended
    done         nothing runs and nothing more will start

Each step moves one way: waiting (for its inputs) → ready → running → finished, failed or
skipped; a step downstream of a failure goes from waiting straight to skipped.
"""

from __future__ import annotations

import heapq
from typing import Callable, Iterable, Sequence

from storybuild.planning.decision import Step


class ReadyQueue:
    """The steps of a build, their dependencies, and which of them may start now.

    `capacity` bounds the steps started and not yet ended; `limit(backend)` bounds those of
    one backend (None: no bound). Without `keep_going` nothing new starts after a failure.
    """

    def __init__(self, steps: Sequence[Step], *, capacity: int,
                 limit: Callable[[str], int | None] = lambda backend: None, keep_going: bool = False):
        self.steps = {s.action.id: s for s in steps}
        self.capacity = capacity
        self.limit = limit
        self.keep_going = keep_going
        self.stopping = False
        self._order = {i: n for n, i in enumerate(self.steps)}
        # Producer → consumers, each list in plan order (give_up walks it in that order).
        self._consumers: dict[str, list[str]] = {i: [] for i in self.steps}
        self._waiting: dict[str, int] = {}  # step → inputs from steps not yet finished
        for i, s in self.steps.items():
            deps = [d for d in s.action.deps() if d in self.steps]
            self._waiting[i] = len(deps)
            for dep in deps:
                self._consumers[dep].append(i)
        self._ready = [(self._order[i], i) for i in self.steps if self._waiting[i] == 0]  # a heap
        heapq.heapify(self._ready)
        self._parked: dict[str, list[str]] = {}  # backend → ready steps held by its limit
        self._busy: dict[str, int] = {}  # backend → its steps running
        self._running: dict[str, str] = {}  # step → the key it is making
        self._making: dict[str, str] = {}  # key → the step running to make it
        self._twins: dict[str, list[str]] = {}  # key → steps waiting for the one making it
        self._waited: set[str] = set()
        self._ended: set[str] = set()  # finished or failed
        self._skipped: set[str] = set()

    # ------------------------------------------------------------------ finding work

    def find_work(self) -> Step | None:
        """The next step to start: the first in plan order whose inputs are all made and
        whose backend is under its limit; None when stopping, full, or nothing is ready.

        The caller must answer with started, wait_for or finished before asking again."""
        if self.stopping:
            return None
        while self._ready and len(self._running) < self.capacity:
            node = heapq.heappop(self._ready)[1]
            if node in self._skipped:
                continue
            backend = self.steps[node].action.backend
            limit = self.limit(backend)
            if limit is not None and self._busy.get(backend, 0) >= limit:
                # Held until one of its backend's steps ends; the rest are not held up.
                self._parked.setdefault(backend, []).append(node)
                continue
            return self.steps[node]
        return None

    def started(self, node: str, key: str) -> None:
        """`node` (from find_work) runs, making `key`: it takes a slot until it ends."""
        backend = self.steps[node].action.backend
        self._busy[backend] = self._busy.get(backend, 0) + 1
        self._running[node] = key
        self._making[key] = node

    def maker(self, key: str) -> str | None:
        """The running step making `key`, if any."""
        return self._making.get(key)

    def wait_for(self, node: str, key: str) -> None:
        """`node` (from find_work) would make what a running step makes: it waits for that
        step to end, then comes back ready (and `waited` says so)."""
        self._twins.setdefault(key, []).append(node)

    def waited(self, node: str) -> bool:
        """Whether `node` came back from waiting for a twin (its result may now be cached)."""
        return node in self._waited

    # ------------------------------------------------------------------ how steps end

    def finished(self, node: str) -> None:
        """`node` made its outputs (ran, or served from the cache): consumers whose inputs
        are now all made become ready."""
        self._end(node)
        self._ended.add(node)
        for consumer in self._consumers[node]:
            self._waiting[consumer] -= 1
            if self._waiting[consumer] == 0:
                self._push(consumer)

    def failed(self, node: str) -> list[str]:
        """`node` failed: everything downstream is skipped, and without keep_going nothing
        new starts. Returns the steps newly skipped, in the order they were reached."""
        self._end(node)
        self._ended.add(node)
        skipped = []
        stack = list(self._consumers[node])
        while stack:
            consumer = stack.pop()
            if consumer not in self._skipped:
                self._skipped.add(consumer)
                skipped.append(consumer)
                stack.extend(self._consumers[consumer])
        if not self.keep_going:
            self.stopping = True
        return skipped

    def cancelled(self, node: str) -> None:
        """`node` was stopped before it could finish: skipped, and its consumers never
        become ready (they are left to `abandon`)."""
        self._end(node)
        self._skipped.add(node)

    def stop(self) -> None:
        """Start nothing more; what runs still reports how it ended."""
        self.stopping = True

    # ------------------------------------------------------------------ the end

    @property
    def done(self) -> bool:
        """Whether nothing runs and nothing more will start."""
        return not self._running and (self.stopping or not (self._ready or any(self._parked.values())))

    def abandon(self) -> list[str]:
        """Skip every step that neither ended nor was skipped (the build stopped); return them."""
        left = [i for i in self.steps if i not in self._ended and i not in self._skipped]
        self._skipped.update(left)
        return left

    def skipped(self) -> list[str]:
        """The skipped steps, in plan order."""
        return [i for i in self.steps if i in self._skipped]

    # ------------------------------------------------------------------ inside

    def _push(self, node: str) -> None:
        heapq.heappush(self._ready, (self._order[node], node))

    def _end(self, node: str) -> None:
        """Free the slot of a step that ran, and send back the twins waiting for its key."""
        key = self._running.pop(node, None)
        if key is None:
            return  # served from the cache: it took no slot
        backend = self.steps[node].action.backend
        self._busy[backend] -= 1
        self._unpark(self._parked.pop(backend, ()))
        if self._making.get(key) == node:
            del self._making[key]
        twins = self._twins.pop(key, ())
        self._waited.update(twins)
        self._unpark(twins)

    def _unpark(self, nodes: Iterable[str]) -> None:
        for node in nodes:
            self._push(node)
