"""Many ComfyUI servers fed from one queue: free servers pull the next job they can run.

No job is assigned up front. Each server has `concurrency` worker slots; a slot that is
free takes the oldest queued job its server can run (capabilities, models), so a server
four times faster finishes four times as many jobs. At the end of a batch a slow server
leaves a job alone when faster servers, from the durations measured so far, would finish
it sooner (otherwise the last job started on the slowest GPU decides the makespan). A
server that keeps failing is cut out by its circuit breaker; its jobs go back to the
queue and to other servers. Among idle servers, the higher `weight` takes a job first.

    submit() ──► queue ──► slot of server A ─┐
                   ▲   ──► slot of server B ─┼──► record (on_record) ──► future
                   └──── transient failure ──┘   (retried elsewhere)
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

from storybuild.backends.comfyui.breaker import CircuitBreaker
from storybuild.backends.comfyui.jobrecords import JobRecord
from storybuild.backends.comfyui.settings import ComfyServer
from storybuild.errors import BackendError, Cancelled, TransientError


@dataclass(eq=False)
class FarmJob:
    """A unit of work waiting for, or running on, a server slot."""

    id: str
    run: Callable[[Any], Any]  # called with the slot's worker
    workflow: str
    capability: str | None
    models: frozenset[str]
    action_id: str
    cancel: threading.Event
    future: Future = field(default_factory=Future)
    queued_at: float = field(default_factory=time.monotonic)
    started_at: float | None = None
    attempts: int = 0
    tried: set[str] = field(default_factory=set)  # servers that failed it
    records: list[JobRecord] = field(default_factory=list)  # one per attempt


class ServerSlot:
    """The farm's view of one server: its config, breaker, counters and object_info."""

    def __init__(self, server: ComfyServer, breaker: CircuitBreaker):
        self.server = server
        self.breaker = breaker
        self.running = 0
        self.done = 0
        self.failed = 0
        self.idle = 0
        self.started: dict[int, float] = {}  # worker index → when its running job started
        self.durations: dict[str, float] = {}  # workflow → smoothed seconds per job here
        self._info: dict[str, Any] | None = None
        self._info_lock = threading.Lock()

    def estimate(self, workflow: str) -> float | None:
        """Expected seconds for a job of this workflow here (None until one has run)."""
        return self.durations.get(workflow)

    def learn(self, workflow: str, seconds: float) -> None:
        previous = self.durations.get(workflow)
        self.durations[workflow] = seconds if previous is None else 0.7 * previous + 0.3 * seconds

    @property
    def url(self) -> str:
        return self.server.url

    def can_run(self, job: FarmJob) -> bool:
        if self.server.capabilities and job.capability and job.capability not in self.server.capabilities:
            return False
        return not (self.server.models and not job.models <= set(self.server.models))

    def object_info(self, client: Any, refresh: bool = False) -> dict[str, Any]:
        """The server's object_info, fetched once and again on request (models get installed)."""
        with self._info_lock:
            if self._info is None or refresh:
                self._info = client.object_info()
            return self._info


class Farm:
    """Thread-safe scheduler over a set of servers."""

    def __init__(self, servers: Sequence[ComfyServer], make_worker: Callable[[ServerSlot, int], Any], *,
                 on_record: Callable[[JobRecord], None] | None = None, breaker_threshold: int = 3,
                 breaker_cooldown: float = 30.0, max_attempts: int | None = None, probe: bool = True):
        if not servers:
            raise BackendError("no ComfyUI server is configured", hint="add backends.comfyui.servers")
        self.slots = [ServerSlot(s, CircuitBreaker(breaker_threshold, breaker_cooldown)) for s in servers]
        self.make_worker = make_worker
        self.on_record = on_record
        self.max_attempts = max_attempts or min(4, max(2, len(servers)))
        self.probe = probe
        self.cond = threading.Condition()
        self.queue: list[FarmJob] = []
        self.closed = False
        self.records: deque[JobRecord] = deque(maxlen=10_000)  # the latest, for health and benchmarks
        self._ids = itertools.count(1)
        self.threads = [threading.Thread(target=self._slot_loop, args=(slot, index), daemon=True,
                                         name=f"comfy-{slot.url}-{index}")
                        for slot in self.slots for index in range(max(1, slot.server.concurrency))]
        for thread in self.threads:
            thread.start()

    # ------------------------------------------------------------------ client side

    def submit(self, run: Callable[[Any], Any], *, workflow: str = "workflow", capability: str | None = None,
               models: Iterable[str] = (), action_id: str = "", cancel: threading.Event | None = None) -> FarmJob:
        """Queue work; `run(worker)` is called on the slot that takes it."""
        job = FarmJob(f"job-{next(self._ids)}", run, workflow, capability, frozenset(models), action_id,
                      cancel or threading.Event())
        if not any(slot.can_run(job) for slot in self.slots):
            raise BackendError(f"no configured ComfyUI server can run {workflow}",
                               hint=f"needs capability {capability!r} and models {sorted(job.models)}")
        with self.cond:
            if self.closed:
                raise BackendError("the ComfyUI farm is shut down")
            self.queue.append(job)
            self.cond.notify_all()
        return job

    def result(self, job: FarmJob, *, queue_timeout: float = 600.0) -> Any:
        """Wait for a job; honours its cancel event and gives up if no server takes it in time."""
        while True:
            if job.cancel.is_set() and self.withdraw(job):
                raise Cancelled(f"{job.workflow}: cancelled before a server took it")
            if job.started_at is None and time.monotonic() - job.queued_at > queue_timeout:
                if self.withdraw(job):
                    raise TransientError(f"{job.workflow}: no ComfyUI server took the job in {queue_timeout:.0f}s "
                                         f"({self.describe()})")
            # Waiting out the job timeout for servers that have failed even their trial
            # would make a dead farm cost every action (and each of its retries) minutes.
            if job.started_at is None and self._all_down(job) and self.withdraw(job):
                down = "; ".join(s.breaker.last_error or f"{s.url}: failing" for s in self.slots if s.can_run(job))
                raise TransientError(f"{job.workflow}: every ComfyUI server that can run it is down ({down})")
            try:
                return job.future.result(timeout=0.1)
            except TimeoutError:
                continue

    def _all_down(self, job: FarmJob) -> bool:
        return all(slot.breaker.down for slot in self.slots if slot.can_run(job))

    def withdraw(self, job: FarmJob) -> bool:
        """Remove a job that no slot has taken yet; False if it is already running or done."""
        with self.cond:
            if job in self.queue:
                self.queue.remove(job)
                return True
            return False

    def close(self) -> None:
        with self.cond:
            self.closed = True
            self.cond.notify_all()
        for thread in self.threads:
            thread.join(timeout=5)

    def describe(self) -> str:
        return ", ".join(f"{s.url}: {s.breaker.state}" for s in self.slots)

    def health(self, probe: bool = False, client_factory: Callable[[str], Any] | None = None) -> list[dict[str, Any]]:
        """Per server: breaker state, jobs running/done/failed, and with `probe` its live stats and queue."""
        report = []
        for slot in self.slots:
            entry: dict[str, Any] = {"url": slot.url, "breaker": slot.breaker.state, "running": slot.running,
                                     "done": slot.done, "failed": slot.failed, "last_error": slot.breaker.last_error}
            if probe and client_factory is not None:
                client = client_factory(slot.url)
                try:
                    stats = client.system_stats()
                    running, pending = client.queue()
                    entry.update(reachable=True, devices=stats.get("devices", []),
                                 queue_running=len(running), queue_pending=len(pending))
                except BackendError as exc:
                    entry.update(reachable=False, error=exc.message)
                finally:
                    client.close()
            report.append(entry)
        return report

    # ------------------------------------------------------------------ server side

    def _eligible(self, slot: ServerSlot, job: FarmJob) -> bool:
        if not slot.can_run(job):
            return False
        if slot.url not in job.tried:
            return True
        # Back to a server that failed this job only when every other capable one failed it
        # too or is cut out by its breaker.
        return all(s.url in job.tried or s.breaker.state == "open" for s in self.slots
                   if s is not slot and s.can_run(job))

    def _take(self, slot: ServerSlot, index: int) -> FarmJob | None:
        with self.cond:
            slot.idle += 1
            try:
                while not self.closed:
                    eligible = [j for j in self.queue if self._eligible(slot, j)]
                    job = next((j for position, j in enumerate(eligible)
                                if not self._faster_elsewhere(slot, j, position)), None)
                    if job is not None and self._preferred(slot, job) and slot.breaker.allow():
                        self.queue.remove(job)
                        job.started_at = time.monotonic()
                        slot.started[index] = job.started_at
                        return job
                    wait = 0.05 if eligible else 0.5
                    self.cond.wait(min(wait, max(0.01, slot.breaker.retry_in() or wait)))
                return None
            finally:
                slot.idle -= 1

    def _faster_elsewhere(self, slot: ServerSlot, job: FarmJob, position: int) -> bool:
        """Whether faster servers would finish this job (the `position`-th this slot could take)
        before this slot would, counting the jobs they can complete by then."""
        mine = slot.estimate(job.workflow)
        if mine is None:
            return False
        now = time.monotonic()
        deadline = now + mine
        capacity = 0
        for other in self.slots:
            theirs = other.estimate(job.workflow)
            if other is slot or theirs is None or theirs >= mine or other.breaker.state == "open" \
                    or not self._eligible(other, job):
                continue
            for worker in range(max(1, other.server.concurrency)):
                started = other.started.get(worker)
                free = now if started is None else max(now, started + theirs)
                if deadline > free:
                    capacity += int((deadline - free) // theirs)
        return capacity > position

    def _preferred(self, slot: ServerSlot, job: FarmJob) -> bool:
        """Whether no idle server of a higher weight could take this job right now."""
        return not any(other is not slot and other.idle > 0 and other.server.weight > slot.server.weight
                       and self._eligible(other, job) and other.breaker.state == "closed" for other in self.slots)

    def _slot_loop(self, slot: ServerSlot, index: int) -> None:
        worker = None
        while True:
            job = self._take(slot, index)
            if job is None:
                break
            if worker is None:
                worker = self.make_worker(slot, index)
            if slot.breaker.state != "closed" and self.probe and not self._probe(slot, worker):
                self._requeue(job, slot)  # the probe failed: the breaker counted it
                continue
            try:
                self._attempt(slot, worker, job)
            finally:
                with self.cond:
                    slot.started.pop(index, None)
                    self.cond.notify_all()  # waiting slots re-evaluate who should take what
        if worker is not None:
            worker.close()

    def _probe(self, slot: ServerSlot, worker: Any) -> bool:
        try:
            worker.client.system_stats()
            return True
        except BackendError as exc:
            slot.breaker.failure(exc.message)
            return False

    def _attempt(self, slot: ServerSlot, worker: Any, job: FarmJob) -> None:
        from storybuild.backends.comfyui.jobrunner import WrongServer

        job.attempts += 1
        wait = job.started_at - job.queued_at if job.started_at else 0.0
        began = time.monotonic()
        with self.cond:
            slot.running += 1
        try:
            result = job.run(worker)
        except Cancelled as exc:
            slot.breaker.release()
            self._finish(slot, job, wait, began, exc, None)
        except WrongServer as exc:
            slot.breaker.release()  # nothing wrong with the server; it lacks what the job needs
            self._retry_or_fail(slot, job, wait, began, exc, count=False)
        except TransientError as exc:
            slot.breaker.failure(exc.message)
            self._retry_or_fail(slot, job, wait, began, exc, count=True)
        except BaseException as exc:  # noqa: BLE001 - a permanent failure belongs to the job, not the server
            slot.breaker.release()
            self._finish(slot, job, wait, began, exc, None)
        else:
            slot.breaker.success()
            with self.cond:
                slot.learn(job.workflow, time.monotonic() - began)
            self._finish(slot, job, wait, began, None, result)
        finally:
            with self.cond:
                slot.running -= 1

    def _retry_or_fail(self, slot: ServerSlot, job: FarmJob, wait: float, began: float, exc: BaseException,
                       count: bool) -> None:
        self._record(slot, job, wait, began, exc, None)
        others = any(self._eligible(s, job) for s in self.slots if s is not slot)
        if job.attempts < self.max_attempts and not job.cancel.is_set() and (others or count):
            self._requeue(job, slot)
        else:
            with self.cond:
                slot.failed += 1
            job.future.set_exception(exc)

    def _requeue(self, job: FarmJob, slot: ServerSlot) -> None:
        job.tried.add(slot.url)
        job.started_at = None
        job.queued_at = time.monotonic()
        with self.cond:
            self.queue.insert(0, job)  # it has waited already: first in line
            self.cond.notify_all()

    def _finish(self, slot: ServerSlot, job: FarmJob, wait: float, began: float, exc: BaseException | None,
                result: Any) -> None:
        self._record(slot, job, wait, began, exc, result)
        with self.cond:
            if exc is None:
                slot.done += 1
            else:
                slot.failed += 1
        if exc is None:
            job.future.set_result(result)
        else:
            job.future.set_exception(exc)

    def _record(self, slot: ServerSlot, job: FarmJob, wait: float, began: float, exc: BaseException | None,
                result: Any) -> None:
        message = "" if exc is None else (getattr(exc, "message", None) or str(exc) or type(exc).__name__)
        record = JobRecord(job_id=job.id, action_id=job.action_id, workflow=job.workflow, server=slot.url,
                           ok=exc is None, error=" ".join(line.strip() for line in message.splitlines())[:500],
                           queue_wait=round(wait, 6), execution=round(time.monotonic() - began, 6),
                           server_time=getattr(result, "server_seconds", None), attempt=job.attempts,
                           cached=bool(getattr(result, "cached", False)), finished_at=time.time())
        with self.cond:
            self.records.append(record)
            job.records.append(record)
        if self.on_record is not None:
            self.on_record(record)
