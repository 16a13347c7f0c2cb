"""The scheduler (engine/scheduler.py): order, parallelism, per-backend limits, retries, keep-going, cancellation, cut-off."""

from __future__ import annotations

import threading
import time

from storybuild.engine.scheduler import Executor, Outcome, backoff_delay
from storybuild.errors import BackendError, Cancelled, TransientError
from storybuild.model import Action, ActionInput, Input, RetryPolicy
from storybuild.planning.actiongraph import Static
from storybuild.planning.decision import Plan, Step

FAST = RetryPolicy(max_attempts=3, backoff=0.001, max_backoff=0.002)


def action(name, backend="fake", deps=()):
    return Action(id=name, kind="k", backend=backend, params={},
                  inputs=tuple(Input(d, ActionInput(d, "out")) for d in deps), outputs=("out",))


class FakeRunner:
    """Records calls; `behaviour[id]` is a list of exceptions to raise before succeeding."""

    def __init__(self, behaviour=None, delay=0.0, outputs=None):
        self.behaviour = {k: list(v) for k, v in (behaviour or {}).items()}
        self.delay = delay
        self.outputs = outputs or {}
        self.calls, self.running, self.peak = [], {}, {}
        self.lock = threading.Lock()

    def run(self, job):
        name, backend = job.action.id, job.action.backend
        with self.lock:
            self.calls.append(name)
            self.running[backend] = self.running.get(backend, 0) + 1
            self.peak[backend] = max(self.peak.get(backend, 0), self.running[backend])
        try:
            if self.delay and job.cancel_event.wait(self.delay):
                raise Cancelled(f"{name}: cancelled")
            errors = self.behaviour.get(name)
            if errors:
                raise errors.pop(0)
            job.progress(0.5, "half")
            return Outcome({"out": self.outputs.get(name, f"digest-{name}")}, {})
        finally:
            with self.lock:
                self.running[backend] -= 1


class FakeStore:
    def __init__(self, cache=None):
        self.cache = cache or {}
        self.results, self.attempts, self.failures = {}, [], {}

    def lookup(self, key, action):
        return self.cache.get(key)

    def succeeded(self, action, key, inputs, outputs, *, ran, seconds, attempts, extra):
        self.results[action.id] = (key, dict(outputs), ran)
        self.cache.setdefault(key, dict(outputs))

    def attempted(self, action, attempt, started, seconds, outcome, error):
        self.attempts.append((action.id, attempt, outcome))

    def failed(self, action, key, error, attempts):
        self.failures[action.id] = (error, attempts)


def run(actions, runner, store=None, **options):
    store = store or FakeStore()
    statics = {a.id: Static(f"s-{a.id}", "1", None) for a in actions}
    plan = Plan([Step(a, (), None) for a in actions])
    events = []
    forced = options.pop("forced", frozenset())
    executor = Executor(runner, store, retry=options.pop("retry", FAST), on_event=events.append, **options)
    return executor.run(plan, statics, {}, forced), store, events


def test_dependency_order_and_events():
    actions = [action("a"), action("b", deps=["a"]), action("c", deps=["a", "b"])]
    runner = FakeRunner()
    result, store, events = run(actions, runner, jobs=4)
    assert runner.calls == ["a", "b", "c"] and result.ran == ["a", "b", "c"]
    types = [e.type for e in events]
    assert types[0] == "plan" and types.count("started") == 3 and types.count("finished") == 3
    assert "progress" in types and store.results["c"][2] is True


def test_jobs_and_per_backend_limits():
    actions = [action(f"gpu{i}", "comfy") for i in range(4)] + [action(f"cpu{i}", "cpu") for i in range(4)]
    runner = FakeRunner(delay=0.05)
    result, _, _ = run(actions, runner, jobs=4, limits=lambda b: 1 if b == "comfy" else None)
    assert len(result.ran) == 8
    assert runner.peak["comfy"] == 1 and runner.peak["cpu"] >= 2


def test_transient_errors_retry_with_backoff_and_permanent_ones_do_not():
    actions = [action("flaky"), action("broken")]
    runner = FakeRunner({"flaky": [TransientError("429"), ConnectionRefusedError("refused")],
                         "broken": [BackendError("bad input"), BackendError("never reached")]})
    result, store, events = run(actions, runner, jobs=1, keep_going=True)
    assert result.ran == ["flaky"] and list(result.failed) == ["broken"]
    assert runner.calls.count("flaky") == 3 and runner.calls.count("broken") == 1
    assert [e.data["attempt"] for e in events if e.type == "retry"] == [1, 2]
    assert store.failures["broken"] == ("bad input", 1)
    assert ("flaky", 1, "transient") in store.attempts and ("flaky", 3, "ok") in store.attempts


def test_retries_stop_at_max_attempts():
    runner = FakeRunner({"x": [TransientError("down")] * 5})
    result, store, _ = run([action("x")], runner, jobs=1)
    assert runner.calls == ["x"] * 3 and store.failures["x"][1] == 3


def test_backoff_doubles_up_to_the_cap_with_jitter():
    policy = RetryPolicy(max_attempts=9, backoff=1.0, max_backoff=5.0)
    assert [backoff_delay(policy, n, lambda: 1.0) for n in (1, 2, 3, 4)] == [1.0, 2.0, 4.0, 5.0]
    assert [backoff_delay(policy, n, lambda: 0.0) for n in (1, 2)] == [0.5, 1.0]


def test_keep_going_finishes_independent_branches():
    actions = [action("bad"), action("after", deps=["bad"]), action("other"), action("other2", deps=["other"])]
    runner = FakeRunner({"bad": [BackendError("no")]})
    result, _, events = run(actions, runner, jobs=1, keep_going=True)
    assert result.ran == ["other", "other2"] and result.skipped == ["after"]
    assert [e.data for e in events if e.type == "skipped"] == [{"because": "bad"}]


def test_without_keep_going_nothing_new_starts_after_a_failure():
    actions = [action("bad"), action("other"), action("other2")]
    result, _, _ = run(actions, FakeRunner({"bad": [BackendError("no")]}), jobs=1)
    assert result.ran == [] and result.skipped == ["other", "other2"]


def test_cancellation_stops_scheduling_and_reaches_running_actions():
    cancel = threading.Event()
    actions = [action(f"a{i}") for i in range(6)]
    runner = FakeRunner(delay=5.0)
    threading.Timer(0.1, cancel.set).start()
    began = time.monotonic()
    result, _, _ = run(actions, runner, jobs=2, cancel_event=cancel)
    assert time.monotonic() - began < 3
    assert result.cancelled and len(runner.calls) == 2 and result.ran == []
    assert sorted(result.skipped) == [f"a{i}" for i in range(6)]


def test_identical_upstream_bytes_cut_off_downstream():
    actions = [action("up"), action("down", deps=["up"])]
    store = FakeStore()
    runner = FakeRunner(outputs={"up": "same-bytes"})
    from storybuild.hashing import action_key

    store.cache[action_key("s-down", {"up": "same-bytes"})] = {"out": "cached-down"}
    result, _, events = run(actions, runner, store)
    assert result.ran == ["up"] and result.cached == ["down"]
    assert result.outputs["down"] == {"out": "cached-down"} and store.results["down"][2] is False
    assert any(e.type == "cached" and e.data == {"cutoff": True} for e in events)
    again = FakeStore({action_key("s-down", {"up": "same-bytes"}): {"out": "cached-down"}})
    forced, _, _ = run(actions, FakeRunner(outputs={"up": "same-bytes"}), again, forced=frozenset({"down"}))
    assert forced.ran == ["up", "down"]


def test_the_same_work_for_two_actions_runs_once():
    twins = [action("line/a"), action("line/b"), action("after", deps=["line/b"])]
    statics = {"line/a": Static("same", "1", None), "line/b": Static("same", "1", None),
               "after": Static("s-after", "1", None)}
    runner = FakeRunner(delay=0.05)
    store = FakeStore()
    executor = Executor(runner, store, jobs=2, retry=FAST)
    result = executor.run(Plan([Step(a, (), None) for a in twins]), statics, {})
    assert sorted(runner.calls) == ["after", "line/a"] and result.cached == ["line/b"]
    assert result.outputs["line/b"] == result.outputs["line/a"]


def test_the_runner_is_told_once_what_will_run_and_every_job_gets_the_builds_parallelism():
    class PreparingRunner(FakeRunner):
        def __init__(self):
            super().__init__(delay=0.02)
            self.prepared, self.jobs = [], []

        def prepare(self, actions, jobs):
            self.prepared.append(([a.id for a in actions], jobs))

        def run(self, job):
            with self.lock:
                self.jobs.append(job.jobs)
            return super().run(job)

    runner = PreparingRunner()
    run([action("a"), action("b"), action("c", deps=("a",))], runner, jobs=3)
    assert runner.prepared == [(["a", "b", "c"], 3)]
    # Shared pools (frame workers) are sized by the build, whoever else runs alongside.
    assert runner.jobs == [3, 3, 3]


def test_started_events_say_why_the_step_runs():
    from storybuild.errors import SourceLoc
    from storybuild.planning.decision import Reason

    a, b = action("a"), action("b", deps=("a",))
    plan = Plan([Step(a, (Reason("param", "input changed: shots[0].camera", SourceLoc("storybuild.yaml", 9, 5)),), None),
                 Step(b, (Reason("upstream", "upstream a runs first"),), None)])
    events = []
    statics = {x.id: Static(f"s-{x.id}", "1", None) for x in (a, b)}
    Executor(FakeRunner(), FakeStore(), retry=FAST, on_event=events.append).run(plan, statics, {})
    started = {e.action: e.data for e in events if e.type == "started"}
    assert started["a"]["reason"] == "input changed: shots[0].camera" and started["a"]["code"] == "param"
    assert started["a"]["loc"] == "storybuild.yaml:9:5"
    assert started["b"]["code"] == "upstream" and "loc" not in started["b"]
