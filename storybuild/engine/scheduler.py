"""Run a plan: dependency order, in parallel, within limits, with retries and cancellation.

The scheduling thread owns all decisions and emits every event; worker threads only run
actions (through a Runner) and report back on a queue. Which step may start, and what a
failure skips, is a ReadyQueue's to say (readyqueue.py, tested without threads); the
Executor drives it, as ninja's Builder drives its Plan. Two seams keep this testable, as
ninja's CommandRunner does: a `Runner` performs one action, and an `ExecStore` answers
cache lookups and records results. Neither knows about scheduling.

A Step whose key was unknown at planning time (its upstream had to run) gets its key
here, from the digests its upstream just made; when that key is in the cache, the step is
served from it without running (early cut-off).
"""

from __future__ import annotations

import queue
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Mapping, NamedTuple, Protocol

from storybuild.backends.contract import ProgressFn
from storybuild.engine.readyqueue import ReadyQueue
from storybuild.errors import Cancelled, StorybuildError, TransientError
from storybuild.events import Event, EventType, OnEvent
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


@dataclass
class _Run:
    """One Executor.run in progress, as its scheduling thread sees it."""

    ready: ReadyQueue
    statics: Mapping[str, Static]
    sources: Mapping[str, str | None]
    forced: frozenset[str]
    made: dict[str, Mapping[str, str]]  # action → its output digests, for its consumers' keys
    result: ExecResult = field(default_factory=ExecResult)


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
        # Up to `jobs` steps wait queued behind the `jobs` running ones, so a worker that
        # finishes starts its next step at once instead of waiting for this thread to wake
        # up; `jobs` worker threads still bound what runs at a time.
        ready = ReadyQueue(plan.steps, capacity=2 * self.jobs, limit=self.limits, keep_going=self.keep_going)
        state = _Run(ready, statics, sources, forced, {i: f.outputs for i, f in plan.fresh.items()})
        workers = [threading.Thread(target=self._worker, name=f"storybuild-worker-{n}", daemon=True)
                   for n in range(min(self.jobs, max(1, len(ready.steps))))]
        for w in workers:
            w.start()
        self.emit(Event(EventType.PLAN, data={"total": len(ready.steps), "cached": len(plan.fresh),
                                      "steps": [s.action.id for s in plan.steps]}))
        prepare = getattr(self.runner, "prepare", None)  # optional: test runners need none
        if prepare is not None and ready.steps:
            prepare([s.action for s in plan.steps], self.jobs)
        try:
            while True:
                if self.cancel_event.is_set():
                    ready.stop()
                self._start_ready(state)
                if ready.done:
                    break
                try:
                    message = self._done.get(timeout=0.1)
                except queue.Empty:
                    continue
                if message[0] == "event":
                    self.emit(message[1])
                else:
                    self._ended(state, *message[1:])
        finally:
            for _ in workers:
                self._work.put(None)
            for w in workers:
                w.join()
        state.result.cancelled = self.cancel_event.is_set()
        for node in ready.abandon():
            self.emit(Event(EventType.SKIPPED, node, ready.steps[node].action.kind,
                            {"because": "cancelled" if state.result.cancelled else "stopped"}))
        state.result.skipped = ready.skipped()
        return state.result

    def _start_ready(self, state: _Run) -> None:
        """Hand the workers what may start now; serve from the cache what is there."""
        result = state.result
        while (step := state.ready.find_work()) is not None:
            node = step.action.id
            digests = input_digests(step.action, state.sources, state.made)
            key = step.key or action_key(state.statics[node].digest, digests)
            result.keys[node] = key
            if node not in state.forced and state.ready.maker(key) is not None:
                # The same work is running for another action: wait for it and take its
                # result rather than make it twice.
                state.ready.wait_for(node, key)
                continue
            if (step.key is None or state.ready.waited(node)) and node not in state.forced:
                hit = self.store.lookup(key, node)
                if hit is not None and all(o in hit for o in step.action.outputs):
                    state.made[node] = hit
                    result.outputs[node] = hit
                    result.cached.append(node)
                    self.store.succeeded(step.action, key, digests, hit, ran=False,
                                         seconds=0.0, attempts=0, extra={})
                    self.emit(Event(EventType.CACHED, node, step.action.kind, {"cutoff": True}))
                    state.ready.finished(node)
                    continue
            state.ready.started(node, key)
            self._work.put((step, key, digests, self.jobs))

    def _ended(self, state: _Run, step: Step, key: str, digests: Mapping[str, str], outcome: Outcome | None,
               error: BaseException | None, attempts: int, seconds: float) -> None:
        """Take in how a step handed to the workers ended."""
        node, kind = step.action.id, step.action.kind
        if outcome is not None:
            state.made[node] = outcome.outputs
            state.result.outputs[node] = outcome.outputs
            state.result.ran.append(node)
            self.store.succeeded(step.action, key, digests, outcome.outputs, ran=True,
                                 seconds=seconds, attempts=attempts, extra=outcome.extra)
            self.emit(Event(EventType.FINISHED, node, kind, {"seconds": round(seconds, 3), "attempts": attempts}))
            state.ready.finished(node)
        elif isinstance(error, (Cancelled, _NotStarted)) or self.cancel_event.is_set():
            # Failures of actions interrupted by the cancellation are not theirs.
            state.ready.cancelled(node)
            because = "stopped" if isinstance(error, _NotStarted) else "cancelled"
            self.emit(Event(EventType.SKIPPED, node, kind, {"because": because}))
        else:
            text = describe(error)
            state.result.failed[node] = text
            self.store.failed(step.action, key, text, attempts)
            self.emit(Event(EventType.FAILED, node, kind, {"error": text, "attempts": attempts}))
            for skipped in state.ready.failed(node):  # downstream of it: none of them can run
                self.emit(Event(EventType.SKIPPED, skipped, state.ready.steps[skipped].action.kind, {"because": node}))
            if not self.keep_going:
                self._halt.set()  # queued steps must not start either

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
            self._done.put(("event", Event(EventType.STARTED, action.id, action.kind, data)))
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
                self._done.put(("event", Event(EventType.RETRY, action.id, action.kind,
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
            self._done.put(("event", Event(EventType.PROGRESS, action.id, action.kind, data)))

        return progress
