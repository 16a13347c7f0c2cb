"""Run a plan: dependency order, in parallel, within limits, with retries and cancellation.

The scheduling thread owns all decisions and emits every event; worker threads only run
actions (through a Runner) and report back on a queue. Two seams keep this testable, as
ninja's CommandRunner does: a `Runner` performs one action, and an `ExecStore` answers
cache lookups and records results. Neither knows about scheduling.

A Step whose key was unknown at planning time (its upstream had to run) gets its key
here, from the digests its upstream just made; when that key is in the cache, the step is
served from it without running (early cut-off).
"""

from __future__ import annotations

import heapq
import queue
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Mapping, NamedTuple, Protocol

from storybuild.backends.base import ProgressFn
from storybuild.errors import Cancelled, StorybuildError, TransientError
from storybuild.events import Event, OnEvent
from storybuild.hashing import action_key
from storybuild.model import Action, RetryPolicy
from storybuild.planning.actiongraph import Static
from storybuild.planning.decision import Plan, Step, input_digests

# Progress events from one action are passed on at most this often (plus the last one).
_PROGRESS_INTERVAL = 0.1
# Frames of an unexpected exception's traceback kept in its failure message.
_TRACE_FRAMES = 4


@dataclass
class Job:
    """One attempt to run an action, as a Runner sees it."""

    action: Action
    key: str
    inputs: Mapping[str, str]  # input name → digest
    attempt: int
    cancel_event: threading.Event
    progress: ProgressFn
    jobs: int = 1  # the build's -j: the most processes a pool shared by running actions may use


class Outcome(NamedTuple):
    """What a successful run made: output digests and facts the backend reported."""

    outputs: Mapping[str, str]
    extra: Mapping[str, object]


class Runner(Protocol):
    """Performs one action (backend, scratch space, storing outputs).

    A runner may also have `prepare(actions, jobs)`, called once before the first step with
    every action the build will run, so that backends can start slow things early.
    """

    def run(self, job: Job) -> Outcome:
        """Perform one action; return its output digests."""


class ExecStore(Protocol):
    """The caches and the records, as the executor needs them."""

    def lookup(self, key: str, action: str) -> Mapping[str, str] | None:
        """Cached outputs for a key (all of them in the CAS), or None; `action` asks."""

    def succeeded(self, action: Action, key: str, inputs: Mapping[str, str], outputs: Mapping[str, str],
                  *, ran: bool, seconds: float, attempts: int, extra: Mapping[str, object]) -> None:
        """Record a result: made by running (`ran`), or found in the cache once its inputs existed."""

    def attempted(self, action: Action, attempt: int, started: float, seconds: float,
                  outcome: str, error: str) -> None:
        """Record one attempt (called from worker threads)."""

    def failed(self, action: Action, key: str, error: str, attempts: int) -> None:
        """Put a permanently failed action in the retry queue."""


@dataclass
class ExecResult:
    """How a run of the executor ended."""

    ran: list[str] = field(default_factory=list)
    cached: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    outputs: dict[str, Mapping[str, str]] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)
    cancelled: bool = False


class _NotStarted(Exception):
    """A queued step that was not started because the build stopped after a failure."""


def backoff_delay(policy: RetryPolicy, attempt: int, rand: Callable[[], float] = random.random) -> float:
    """Seconds to wait after failed attempt `attempt` (1-based): doubling, capped, half jittered."""
    delay = min(policy.max_backoff, policy.backoff * (2 ** (attempt - 1)))
    return delay / 2 + rand() * delay / 2


def is_transient(exc: BaseException) -> bool:
    """Whether a failure may pass on retry."""
    return isinstance(exc, (TransientError, ConnectionError, TimeoutError))


def describe(exc: BaseException) -> str:
    """A message for a failure; for an unexpected exception (a bug), where it was raised."""
    if isinstance(exc, StorybuildError):
        return exc.message + (f"\nhint: {exc.hint}" if exc.hint else "")
    text = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, (ConnectionError, TimeoutError)) or exc.__traceback__ is None:
        return text
    import traceback

    frames = traceback.extract_tb(exc.__traceback__)[-_TRACE_FRAMES:]
    return text + "\n" + "".join(traceback.format_list(frames)).rstrip()


class Executor:
    """Runs the steps of a Plan."""

    def __init__(self, runner: Runner, store: ExecStore, *, jobs: int = 1,
                 limits: Callable[[str], int | None] = lambda backend: None,
                 retry: RetryPolicy = RetryPolicy(), keep_going: bool = False,
                 cancel_event: threading.Event | None = None, on_event: OnEvent = lambda e: None,
                 sleep_rand: Callable[[], float] = random.random):
        self.runner = runner
        self.store = store
        self.jobs = max(1, jobs)
        self.limits = limits
        self.retry = retry
        self.keep_going = keep_going
        self.cancel_event = cancel_event or threading.Event()
        self.emit = on_event
        self._rand = sleep_rand
        self._done: queue.Queue = queue.Queue()
        self._work: queue.Queue = queue.Queue()
        self._halt = threading.Event()

    # ------------------------------------------------------------------ scheduling thread

    def run(self, plan: Plan, statics: Mapping[str, Static], sources: Mapping[str, str | None],
            forced: frozenset[str] = frozenset()) -> ExecResult:
        """Run every step of `plan`; return what ran, what was cut off, failed or skipped."""
        result = ExecResult()
        made: dict[str, Mapping[str, str]] = {i: f.outputs for i, f in plan.fresh.items()}
        steps = {s.action.id: s for s in plan.steps}
        order = {s.action.id: n for n, s in enumerate(plan.steps)}
        waiting = {i: sum(1 for d in s.action.deps() if d in steps) for i, s in steps.items()}
        consumers: dict[str, list[str]] = {i: [] for i in steps}
        for i, s in steps.items():
            for dep in s.action.deps():
                if dep in steps:
                    consumers[dep].append(i)
        ready = [(order[i], i) for i in steps if waiting[i] == 0]  # a heap: manifest order first
        heapq.heapify(ready)
        running: dict[str, int] = {}  # backend → actions in flight
        making: dict[str, str] = {}  # key → the action in flight making it
        twins: dict[str, list[str]] = {}  # key → actions waiting for the one making it
        waited: set[str] = set()
        in_flight = 0
        stopping = False
        workers = [threading.Thread(target=self._worker, name=f"storybuild-worker-{n}", daemon=True)
                   for n in range(min(self.jobs, max(1, len(steps))))]
        for w in workers:
            w.start()
        self.emit(Event("plan", data={"total": len(steps), "cached": len(plan.fresh),
                                      "steps": [s.action.id for s in plan.steps]}))
        prepare = getattr(self.runner, "prepare", None)  # optional: test runners need none
        if prepare is not None and steps:
            prepare([s.action for s in plan.steps], self.jobs)

        def release(done_id: str) -> None:
            """Make the consumers of a finished step ready once all their inputs are."""
            for consumer in consumers[done_id]:
                waiting[consumer] -= 1
                if waiting[consumer] == 0:
                    heapq.heappush(ready, (order[consumer], consumer))

        def give_up(root: str) -> None:
            """Skip everything downstream of a failed step (it never becomes ready)."""
            stack = list(consumers[root])
            while stack:
                node = stack.pop()
                if node not in skipped:
                    skipped.add(node)
                    self.emit(Event("skipped", node, steps[node].action.kind, {"because": root}))
                    stack.extend(consumers[node])

        skipped: set[str] = set()
        try:
            while True:
                if self.cancel_event.is_set():
                    stopping = True
                if not stopping:
                    held = []
                    # Up to `jobs` steps wait queued behind the `jobs` running ones, so a worker
                    # that finishes starts its next step at once instead of waiting for this
                    # thread to wake up; `jobs` worker threads still bound what runs at a time.
                    while ready and in_flight < 2 * self.jobs:
                        node = heapq.heappop(ready)[1]
                        if node in skipped:
                            continue
                        step = steps[node]
                        backend = step.action.backend
                        limit = self.limits(backend)
                        if limit is not None and running.get(backend, 0) >= limit:
                            held.append(node)
                            continue
                        digests = input_digests(step.action, sources, made)
                        key = step.key or action_key(statics[node].digest, digests)
                        result.keys[node] = key
                        if node not in forced and key in making:
                            # The same work is running for another action: wait for it
                            # and take its result rather than make it twice.
                            twins.setdefault(key, []).append(node)
                            continue
                        if (step.key is None or node in waited) and node not in forced:
                            hit = self.store.lookup(key, node)
                            if hit is not None and all(o in hit for o in step.action.outputs):
                                made[node] = hit
                                result.outputs[node] = hit
                                result.cached.append(node)
                                self.store.succeeded(step.action, key, digests, hit, ran=False,
                                                     seconds=0.0, attempts=0, extra={})
                                self.emit(Event("cached", node, step.action.kind, {"cutoff": True}))
                                release(node)
                                continue
                        running[backend] = running.get(backend, 0) + 1
                        in_flight += 1
                        making[key] = node
                        self._work.put((step, key, digests, self.jobs))
                    for node in held:
                        heapq.heappush(ready, (order[node], node))
                if in_flight == 0 and (stopping or not ready):
                    break
                try:
                    message = self._done.get(timeout=0.1)
                except queue.Empty:
                    continue
                kind = message[0]
                if kind == "event":
                    self.emit(message[1])
                    continue
                _, step, key, digests, outcome, error, attempts, seconds = message
                node = step.action.id
                in_flight -= 1
                running[step.action.backend] -= 1
                if making.get(key) == node:
                    del making[key]
                for twin in twins.pop(key, ()):  # they look the result up, or run if it failed
                    waited.add(twin)
                    heapq.heappush(ready, (order[twin], twin))
                if outcome is not None:
                    made[node] = outcome.outputs
                    result.outputs[node] = outcome.outputs
                    result.ran.append(node)
                    self.store.succeeded(step.action, key, digests, outcome.outputs, ran=True,
                                         seconds=seconds, attempts=attempts, extra=outcome.extra)
                    self.emit(Event("finished", node, step.action.kind,
                                    {"seconds": round(seconds, 3), "attempts": attempts}))
                    release(node)
                elif isinstance(error, (Cancelled, _NotStarted)) or self.cancel_event.is_set():
                    # Failures of actions interrupted by the cancellation are not theirs.
                    skipped.add(node)
                    because = "stopped" if isinstance(error, _NotStarted) else "cancelled"
                    self.emit(Event("skipped", node, step.action.kind, {"because": because}))
                else:
                    text = describe(error)
                    result.failed[node] = text
                    self.store.failed(step.action, key, text, attempts)
                    self.emit(Event("failed", node, step.action.kind, {"error": text, "attempts": attempts}))
                    give_up(node)
                    if not self.keep_going:
                        stopping = True
                        self._halt.set()  # queued steps must not start either
        finally:
            for _ in workers:
                self._work.put(None)
            for w in workers:
                w.join()
        result.cancelled = self.cancel_event.is_set()
        finished = set(result.ran) | set(result.cached) | set(result.failed)
        for node in steps:
            if node not in finished and node not in skipped:
                skipped.add(node)
                self.emit(Event("skipped", node, steps[node].action.kind,
                                {"because": "cancelled" if result.cancelled else "stopped"}))
        result.skipped = [s.action.id for s in plan.steps if s.action.id in skipped]
        return result

    # ------------------------------------------------------------------ worker threads

    def _worker(self) -> None:
        while True:
            item = self._work.get()
            if item is None:
                return
            step, key, digests, jobs = item
            self._done.put(self._attempts(step, key, digests, jobs))

    def _attempts(self, step: Step, key: str, digests: Mapping[str, str], jobs: int) -> tuple:
        action = step.action
        began = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            if self.cancel_event.is_set():
                return ("done", step, key, digests, None, Cancelled(f"{action.id}: cancelled"), attempt - 1,
                        time.monotonic() - began)
            if attempt == 1 and self._halt.is_set():
                return ("done", step, key, digests, None, _NotStarted(), 0, 0.0)
            data: dict = {"attempt": attempt}
            if attempt == 1 and step.reasons:  # why it runs: what changed (and where), or "upstream …"
                data.update(reason=step.reasons[0].message, code=step.reasons[0].code,
                            **({"loc": str(step.reasons[0].loc)} if step.reasons[0].loc is not None else {}))
            self._done.put(("event", Event("started", action.id, action.kind, data)))
            started = time.time()
            t0 = time.monotonic()
            job = Job(action, key, digests, attempt, self.cancel_event, self._progress(action), jobs)
            try:
                outcome = self.runner.run(job)
            except BaseException as exc:  # every failure is reported, none kills the worker
                seconds = time.monotonic() - t0
                retry = is_transient(exc) and attempt < self.retry.max_attempts and not self.cancel_event.is_set()
                outcome_name = "cancelled" if isinstance(exc, Cancelled) else "transient" if is_transient(exc) else "failed"
                self.store_attempt(action, attempt, started, seconds, outcome_name, describe(exc))
                if not retry:
                    if not self.keep_going and outcome_name != "cancelled":
                        self._halt.set()  # at once, before this worker takes a queued step
                    return ("done", step, key, digests, None, exc, attempt, time.monotonic() - began)
                delay = backoff_delay(self.retry, attempt, self._rand)
                self._done.put(("event", Event("retry", action.id, action.kind,
                                               {"attempt": attempt, "delay": round(delay, 3), "error": describe(exc)})))
                self.cancel_event.wait(delay)
                continue
            self.store_attempt(action, attempt, started, time.monotonic() - t0, "ok", "")
            return ("done", step, key, digests, outcome, None, attempt, time.monotonic() - began)

    def store_attempt(self, action: Action, attempt: int, started: float, seconds: float,
                      outcome: str, error: str) -> None:
        """Record one attempt (called from worker threads; stores queue their writes)."""
        self.store.attempted(action, attempt, started, seconds, outcome, error)

    def _progress(self, action: Action) -> ProgressFn:
        last = [0.0]

        def progress(fraction: float, message: str = "") -> None:
            """Pass a backend's progress on as an event, at most every _PROGRESS_INTERVAL."""
            now = time.monotonic()
            if fraction < 1.0 and now - last[0] < _PROGRESS_INTERVAL:
                return
            last[0] = now
            data = {"fraction": round(max(0.0, min(1.0, float(fraction))), 4), "message": message}
            self._done.put(("event", Event("progress", action.id, action.kind, data)))

        return progress
