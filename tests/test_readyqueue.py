"""readyqueue: which step starts next, what a failure skips, when a build is done — no threads."""

from __future__ import annotations

from storybuild.engine.readyqueue import ReadyQueue
from storybuild.model import Action, ActionInput, Input
from storybuild.planning.decision import Step


def step(name, backend="fake", deps=()):
    action = Action(id=name, kind="k", backend=backend, params={},
                    inputs=tuple(Input(d, ActionInput(d, "out")) for d in deps), outputs=("out",))
    return Step(action, (), None)


def queue(steps, capacity=8, **options):
    return ReadyQueue(steps, capacity=capacity, **options)


def start_all(ready):
    """Start everything find_work offers now; return the ids in the order offered."""
    started = []
    while (found := ready.find_work()) is not None:
        ready.started(found.action.id, f"key-{found.action.id}")
        started.append(found.action.id)
    return started


def test_ready_steps_come_in_plan_order_not_name_order():
    ready = queue([step("z"), step("a"), step("m")])
    assert start_all(ready) == ["z", "a", "m"]


def test_a_step_that_becomes_ready_goes_before_later_steps_of_the_plan():
    ready = queue([step("up"), step("down", deps=["up"]), step("other")], capacity=1)
    assert start_all(ready) == ["up"]
    ready.finished("up")
    assert start_all(ready) == ["down"]  # plan order: down (1) before other (2)
    ready.finished("down")
    assert start_all(ready) == ["other"]


def test_diamond_dependencies_wait_for_every_input():
    ready = queue([step("a"), step("b", deps=["a"]), step("c", deps=["a"]), step("d", deps=["b", "c"])])
    assert start_all(ready) == ["a"]
    ready.finished("a")
    assert start_all(ready) == ["b", "c"]
    ready.finished("c")
    assert start_all(ready) == []  # d still needs b
    ready.finished("b")
    assert start_all(ready) == ["d"]
    ready.finished("d")
    assert ready.done and ready.abandon() == [] and ready.skipped() == []


def test_a_failure_skips_its_dependents_and_stops_the_build():
    ready = queue([step("a"), step("b", deps=["a"]), step("c", deps=["b"]), step("x", deps=["a", "y"]),
                   step("y")], capacity=1)
    assert start_all(ready) == ["a"]
    assert ready.failed("a") == ["x", "b", "c"]  # depth first from the last consumer, as events report them
    assert ready.stopping and ready.find_work() is None and ready.done
    assert ready.abandon() == ["y"]  # never started: the build stopped
    assert ready.skipped() == ["b", "c", "x", "y"]


def test_keep_going_finishes_independent_branches():
    ready = queue([step("bad"), step("after", deps=["bad"]), step("other"), step("other2", deps=["other"])],
                  capacity=1, keep_going=True)
    assert start_all(ready) == ["bad"]
    assert ready.failed("bad") == ["after"]
    assert not ready.stopping and not ready.done
    assert start_all(ready) == ["other"]
    ready.finished("other")
    assert start_all(ready) == ["other2"]
    ready.finished("other2")
    assert ready.done and ready.abandon() == [] and ready.skipped() == ["after"]


def test_per_backend_limits_hold_a_backend_without_holding_up_the_others():
    steps = [step("gpu0", "comfy"), step("gpu1", "comfy"), step("gpu2", "comfy"), step("cpu0", "cpu")]
    ready = queue(steps, limit=lambda backend: 1 if backend == "comfy" else None)
    assert start_all(ready) == ["gpu0", "cpu0"]
    assert not ready.done  # gpu1 and gpu2 wait for the comfy slot
    ready.finished("cpu0")
    assert start_all(ready) == []
    ready.finished("gpu0")
    assert start_all(ready) == ["gpu1"]
    ready.finished("gpu1")
    assert start_all(ready) == ["gpu2"]


def test_nothing_is_ready_while_every_slot_is_taken():
    ready = queue([step(f"s{i}") for i in range(5)], capacity=2)
    assert start_all(ready) == ["s0", "s1"]
    assert ready.find_work() is None and not ready.done
    ready.finished("s1")
    assert start_all(ready) == ["s2"]


def test_a_step_served_from_the_cache_takes_no_slot_and_releases_its_consumers():
    ready = queue([step("a"), step("b", deps=["a"]), step("c")], capacity=1)
    first = ready.find_work()
    assert first.action.id == "a"
    ready.finished("a")  # a cache hit: never started
    assert start_all(ready) == ["b"]


def test_a_twin_waits_for_the_step_making_its_key_then_comes_back():
    ready = queue([step("line/a"), step("line/b"), step("after", deps=["line/b"])])
    assert ready.find_work().action.id == "line/a"
    ready.started("line/a", "same")
    assert ready.find_work().action.id == "line/b"
    assert ready.maker("same") == "line/a"
    ready.wait_for("line/b", "same")
    assert ready.find_work() is None and not ready.waited("line/b")
    ready.finished("line/a")
    assert ready.maker("same") is None
    again = ready.find_work()
    assert again.action.id == "line/b" and ready.waited("line/b")
    ready.finished("line/b")
    assert start_all(ready) == ["after"]


def test_a_cancelled_step_is_skipped_and_its_consumers_are_left_to_abandon():
    ready = queue([step("a"), step("b", deps=["a"])])
    assert start_all(ready) == ["a"]
    ready.stop()
    ready.cancelled("a")
    assert ready.done and ready.abandon() == ["b"] and ready.skipped() == ["a", "b"]


def test_done_only_when_everything_finished():
    ready = queue([step("a"), step("b")])
    assert not ready.done
    assert start_all(ready) == ["a", "b"]
    ready.finished("a")
    assert not ready.done
    ready.finished("b")
    assert ready.done and ready.find_work() is None


def test_an_empty_plan_is_done_at_once():
    assert queue([]).done
