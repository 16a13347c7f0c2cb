"""The build engine end to end, on real command steps: what the issue's "done when" asks."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from engine_project import film_steps, session, tree, write_project
from storybuild.backends import contract as base
from storybuild.errors import BackendError, TransientError
from storybuild.hashing import digest_file
from storybuild.model import Action, Input, FileInput
from storybuild.planning import actiongraph as planner
from storybuild.store import lockfile

HERE = Path(__file__).parent
DRIVER = [sys.executable, str(HERE / "engine_project.py")]


def film(tmp_path: Path, shots: int = 4) -> Path:
    root = tmp_path / "film"
    write_project(root, film_steps(shots), prompts=shots)
    return root


def ids(*names: str) -> list[str]:
    return sorted(f"step/{n}" for n in names)


def check_store(root: Path) -> None:
    """Every cached result names objects that exist and hash to their names."""
    cas = root / ".storybuild" / "cas"
    db = sqlite3.connect(root / ".storybuild" / "state.sqlite")
    try:
        for key, outputs in db.execute("SELECT key, outputs FROM actions"):
            for digest in json.loads(outputs).values():
                path = cas / digest[:2] / digest[2:]
                assert path.is_file(), f"{key} names a missing object"
                assert digest_file(path) == digest
    finally:
        db.close()
    for entry in lockfile.read(root).values():
        for digest in entry.outputs.values():
            assert digest_file(cas / digest[:2] / digest[2:]) == digest


def test_second_build_runs_nothing(tmp_path):
    root = film(tmp_path)
    first = session(root).build(jobs=2)
    assert first.ok and len(first.ran) == 4 * 2 + 2 + 1
    second = session(root).build(jobs=2)
    assert second.ran == [] and second.cached == [] and second.up_to_date == len(first.ran)
    assert (root / "out" / "film.txt").read_text() == "".join(sorted(f"prompt {i}\n" for i in range(4)))


def test_touching_every_file_runs_nothing(tmp_path):
    root = film(tmp_path)
    session(root).build(jobs=2)
    later = time.time() + 5
    for path in root.rglob("*"):
        if path.is_file() and ".storybuild" not in path.parts:
            os.utime(path, (later, later))
    result = session(root).build(jobs=2)
    assert result.ran == [] and result.ok


def test_changing_one_prompt_reruns_exactly_its_dependents(tmp_path):
    root = film(tmp_path)
    session(root).build(jobs=2)
    with open(root / "prompts" / "p2.txt", "a") as f:
        f.write("a lighthouse at dusk\n")
    result = session(root).build(jobs=2)
    assert sorted(result.ran) == ids("kf2", "clip2", "scene1", "film")
    assert "a lighthouse at dusk" in (root / "out" / "film.txt").read_text()
    # That build decided only what the prompt feeds; deciding everything agrees with it.
    assert session(root).plan().steps == [] and session(root).build(jobs=2, force=False).ran == []


def test_identical_bytes_from_a_rebuilt_upstream_cut_off_downstream(tmp_path):
    root = tmp_path / "cutoff"
    write_project(root, film_steps(2, tool="sort"), prompts=2)  # keyframe = sorted prompt
    (root / "prompts" / "p0.txt").write_text("a\nb\n")
    session(root).build(jobs=1)
    (root / "prompts" / "p0.txt").write_text("b\na\n")  # sorts to the same keyframe
    result = session(root).build(jobs=1)
    assert result.ran == ["step/kf0"]
    # Their keys are known only once kf0 has run; its bytes did not change, so none runs.
    assert result.cached == ["step/clip0", "step/scene0", "step/film"]
    assert result.up_to_date == 2


def test_plan_names_the_changed_input_and_its_location(tmp_path):
    root = film(tmp_path, shots=2)
    session(root).build(jobs=2)
    doc = json.loads((root / "project.json").read_text())
    doc["steps"][0]["argv"][0] = "sort"
    (root / "project.json").write_text(json.dumps(doc))
    plan = session(root).plan()
    reasons = {s.action.id: [str(r) for r in s.reasons] for s in plan.steps}
    assert reasons["step/kf0"] == ["input changed: steps[0].argv[0] (project.json:3:12)"]
    assert reasons["step/clip0"] == ["upstream step/kf0 runs first"]
    with open(root / "prompts" / "p1.txt", "a") as f:
        f.write("more\n")
    plan = session(root).plan(["kf1"])
    assert [str(r) for r in plan.steps[0].reasons] == ["input changed: prompts/p1.txt"]


def test_deleted_output_is_restored_from_the_cache_without_running(tmp_path):
    root = film(tmp_path)
    session(root).build(jobs=2)
    before = tree(root)
    os.unlink(root / "out" / "kf1.txt")
    os.unlink(root / "out" / "film.txt")
    result = session(root).build(jobs=2)
    assert result.ran == [] and tree(root) == before


def test_the_lock_is_byte_identical_across_two_clean_builds(tmp_path):
    first = film(tmp_path / "a")
    second = film(tmp_path / "b")
    session(first).build(jobs=1)
    session(second).build(jobs=2)
    assert (first / "storybuild.lock").read_bytes() == (second / "storybuild.lock").read_bytes()
    shutil.rmtree(first / ".storybuild")
    shutil.rmtree(first / "out")
    os.unlink(first / "storybuild.lock")
    session(first).build(jobs=2)
    assert (first / "storybuild.lock").read_bytes() == (second / "storybuild.lock").read_bytes()


def test_a_fresh_clone_with_the_cache_present_rebuilds_nothing(tmp_path):
    root = film(tmp_path)
    session(root).build(jobs=2)
    clone = tmp_path / "clone"
    clone.mkdir()
    for name in ("project.json", "storybuild.lock", "prompts"):
        src = root / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, clone / name)
    shutil.copytree(root / ".storybuild" / "cas", clone / ".storybuild" / "cas")  # no state DB
    result = session(clone).build(jobs=2)
    assert result.ran == [] and result.ok
    assert tree(clone) == tree(root)


def gated_film(tmp_path: Path) -> Path:
    """A film of 4 shots whose kf1 fails until the file gate.open exists."""
    root = film(tmp_path)
    steps = film_steps(4)
    tool = root / "tools" / "gate.py"
    tool.parent.mkdir(parents=True)
    tool.write_text("import shutil, sys, os\n"
                    "if not os.path.exists('gate.open'):\n"
                    "    sys.exit('the gate is closed')\n"
                    "shutil.copy(sys.argv[1], sys.argv[2])\n")
    steps[2]["argv"] = [sys.executable, "tools/gate.py", "prompts/p1.txt", "out/kf1.txt"]  # kf1
    write_project(root, steps)
    return root


def test_keep_going_finishes_independent_branches_and_retry_finishes_what_the_failure_held_back(tmp_path):
    root = gated_film(tmp_path)
    result = session(root).build(jobs=2, keep_going=True)
    assert list(result.failed) == ["step/kf1"]
    assert "the gate is closed" in result.failed["step/kf1"]
    assert sorted(result.skipped) == ids("clip1", "scene0", "film")
    assert {"step/kf3", "step/clip3", "step/scene1"} <= set(result.ran)
    assert [f.action for f in session(root).failures()] == ["step/kf1"]
    (root / "gate.open").write_text("")
    again = session(root).retry(jobs=2)
    assert sorted(again.ran) == ids("kf1", "clip1", "scene0", "film") and again.ok
    assert session(root).failures() == []
    assert session(root).build(jobs=2).ran == []


def test_retry_after_a_stopped_build_builds_the_film(tmp_path):
    root = gated_film(tmp_path)
    result = session(root).build(jobs=1)
    assert list(result.failed) == ["step/kf1"] and not (root / "out" / "film.txt").exists()
    (root / "gate.open").write_text("")
    again = session(root).retry(jobs=1)
    assert again.ok and {"step/kf1", "step/film"} <= set(again.ran)
    assert (root / "out" / "film.txt").read_text() == "".join(sorted(f"prompt {i}\n" for i in range(4)))
    assert session(root).build(jobs=1).ran == []


def test_retry_finishes_only_what_the_failed_build_asked_for(tmp_path):
    root = gated_film(tmp_path)
    assert list(session(root).build(["scene0"], jobs=2, keep_going=True).failed) == ["step/kf1"]
    (root / "gate.open").write_text("")
    again = session(root).retry(jobs=2)
    assert sorted(again.ran) == ids("kf1", "clip1", "scene0") and again.ok
    assert not (root / "out" / "film.txt").exists()


def test_retry_without_the_failed_build_in_history_runs_everything_downstream(tmp_path):
    root = gated_film(tmp_path)
    steps = json.loads((root / "project.json").read_text())["steps"]
    steps.append({"id": "notes", "argv": ["cp", "prompts/p0.txt", "out/notes.txt"],
                  "inputs": ["prompts/p0.txt"], "outputs": ["out/notes.txt"]})
    write_project(root, steps)
    session(root).build(["scene0"], jobs=2, keep_going=True)
    db = sqlite3.connect(root / ".storybuild" / "state.sqlite")
    with db:
        db.execute("DELETE FROM builds")  # as when the history no longer holds the failed build
    db.close()
    (root / "gate.open").write_text("")
    again = session(root).retry(jobs=2)
    assert again.ok and {"step/kf1", "step/clip1", "step/scene0", "step/film"} <= set(again.ran)
    assert "step/notes" not in again.ran  # out of date, but it does not depend on kf1
    assert session(root).build(jobs=2).ran == ["step/notes"]


def test_without_keep_going_the_build_stops_after_a_failure(tmp_path):
    root = tmp_path / "stop"
    steps = [{"id": "bad", "argv": ["false"], "outputs": ["out/bad.txt"]}] + film_steps(3)
    write_project(root, steps, prompts=3)
    result = session(root).build(jobs=1)
    assert list(result.failed) == ["step/bad"] and result.ran == []
    assert len(result.skipped) == len(steps) - 1


class Flaky:
    """A backend that fails `fails` times with `error`, then writes its output."""

    name = "flaky"
    version = "1"
    capabilities = frozenset()

    def __init__(self, fails: int, error: type[Exception]):
        self.fails, self.error, self.calls = fails, error, 0

    def config_key(self, kind, params, config):
        return None

    def run(self, ctx):
        self.calls += 1
        if self.calls <= self.fails:
            raise self.error(f"{ctx.action_id}: server busy (call {self.calls})")
        ctx.output("out.txt").write_text(ctx.inputs["prompt"].read_text().upper())
        return {"out.txt": ctx.output("out.txt")}


def flaky_film(tmp_path, monkeypatch, backend: Flaky) -> Path:
    root = tmp_path / "flaky"
    write_project(root, [], prompts=1)
    base.register("flaky", backend)
    action = Action(id="gen/0", kind="gen", backend="flaky", params={"n": 1},
                    inputs=(Input("prompt", FileInput("prompts/p0.txt")),), outputs=("out.txt",),
                    view={"out.txt": "gen/0.txt"})
    monkeypatch.setattr(planner, "film_actions", lambda manifest, quality: [action])
    return root


def test_transient_failures_are_retried_with_backoff(tmp_path, monkeypatch):
    backend = Flaky(2, TransientError)
    root = flaky_film(tmp_path, monkeypatch, backend)
    events = []
    result = session(root).build(on_event=events.append)
    assert result.ran == ["gen/0"] and backend.calls == 3
    retries = [e for e in events if e.type == "retry"]
    assert [e.data["attempt"] for e in retries] == [1, 2]
    assert all(0 < e.data["delay"] <= 0.004 for e in retries)
    assert (root / "build" / "gen" / "0.txt").read_text() == "PROMPT 0\n"


def test_permanent_failures_are_not_retried(tmp_path, monkeypatch):
    backend = Flaky(5, BackendError)
    root = flaky_film(tmp_path, monkeypatch, backend)
    result = session(root).build()
    assert list(result.failed) == ["gen/0"] and backend.calls == 1
    assert session(root).failures()[0].attempts == 1


def test_clean_removes_build_and_the_next_build_restores_it(tmp_path, monkeypatch):
    root = flaky_film(tmp_path, monkeypatch, Flaky(0, TransientError))
    session(root).build()
    assert session(root).clean() is True
    assert not (root / "build").exists()
    result = session(root).build()
    assert result.ran == [] and (root / "build" / "gen" / "0.txt").exists()


def test_gc_removes_objects_the_lock_no_longer_needs(tmp_path):
    root = film(tmp_path, shots=2)
    session(root).build(jobs=2)
    (root / "prompts" / "p0.txt").write_text("changed\n")
    session(root).build(jobs=2)
    assert session(root).gc(keep=2) == (0, 0)  # the previous build still holds the old film
    derived = root / ".storybuild" / "cache" / "meshes" / "m.npz"
    derived.parent.mkdir(parents=True)
    derived.write_bytes(b"x")
    removed, freed = session(root).gc()
    assert not derived.parent.parent.exists()  # backends' caches are remade on demand
    # The old keyframe (= old clip) and the old scene (= old film: one scene, sorted again).
    assert removed == 2 and freed > 0
    check_store(root)
    assert session(root).build(jobs=2).ran == []


def test_cancelling_stops_scheduling_and_discards_partial_outputs(tmp_path):
    root = tmp_path / "cancel"
    slow = root / "tools" / "slow.py"
    slow.parent.mkdir(parents=True)
    slow.write_text("import sys, time\nopen(sys.argv[1], 'w').write('partial')\ntime.sleep(30)\n")
    steps = [{"id": f"slow{i}", "argv": [sys.executable, "tools/slow.py", f"out/s{i}.txt"],
              "outputs": [f"out/s{i}.txt"]} for i in range(4)]
    write_project(root, steps)
    cancel = threading.Event()

    def cancel_once_running():
        _wait_for(root / "out" / "s0.txt")
        cancel.set()

    threading.Thread(target=cancel_once_running, daemon=True).start()
    began = time.monotonic()
    result = session(root).build(jobs=2, cancel_event=cancel)
    assert result.cancelled and result.ran == [] and time.monotonic() - began < 10
    assert not list((root / "out").glob("*.txt"))
    assert sorted(result.skipped) == ids("slow0", "slow1", "slow2", "slow3")
    assert not (root / ".storybuild" / "tmp").exists() or not any((root / ".storybuild" / "tmp").iterdir())


def _build_process(root: Path, *args: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE.parent), str(HERE)]))
    return subprocess.Popen([*DRIVER, str(root), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)


@pytest.mark.parametrize("made", [1, 30, 60])
def test_sigkill_at_any_point_then_rebuild_gives_identical_outputs(tmp_path, made):
    reference = film(tmp_path / "reference", shots=50)
    session(reference).build(jobs=2)
    root = film(tmp_path / "killed", shots=50)
    proc = _build_process(root, "-j", "2")
    out = root / "out"
    while proc.poll() is None and (not out.exists() or len(os.listdir(out)) < made):
        time.sleep(0.001)
    proc.kill()  # SIGKILL, after `made` of the 126 outputs appeared
    assert proc.wait() == -9
    check_store(root)
    result = session(root).build(jobs=2)
    assert result.ok
    check_store(root)
    assert tree(root) == tree(reference)
    assert (root / "storybuild.lock").read_bytes() == (reference / "storybuild.lock").read_bytes()
    assert session(root).build(jobs=2).ran == []


def _slow_project(root: Path, seconds: float, ignore_term: bool = False) -> None:
    slow = root / "tools" / "slow.py"
    slow.parent.mkdir(parents=True)
    slow.write_text("import os, signal, sys, time\n"
                    + ("signal.signal(signal.SIGTERM, signal.SIG_IGN)\n" if ignore_term else "")
                    + "open('slow.pid', 'w').write(str(os.getpid()))\n"
                    "open(sys.argv[1], 'w').write('partial')\n"
                    f"time.sleep({seconds})\n"
                    "open(sys.argv[1], 'w').write('done')\n")
    write_project(root, [{"id": "slow", "argv": [sys.executable, "tools/slow.py", "out/slow.txt"],
                          "outputs": ["out/slow.txt"]}])


def _wait_for(path: Path, timeout: float = 20.0) -> None:
    end = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < end, f"{path} never appeared"
        time.sleep(0.02)


def test_a_second_build_waits_or_exits_under_no_wait(tmp_path):
    root = tmp_path / "busy"
    _slow_project(root, 1.5)
    first = _build_process(root)
    _wait_for(root / "out" / "slow.txt")
    refused = _build_process(root, "--no-wait")
    _, err = refused.communicate(timeout=30)
    assert refused.returncode == 1
    assert "another storybuild process is using this project (pid" in err
    waiting = _build_process(root)
    out, err = waiting.communicate(timeout=60)
    assert first.wait(timeout=60) == 0 and waiting.returncode == 0, err
    assert "waiting for another storybuild process" in err
    assert "nothing to do" in out
    assert (root / "out" / "slow.txt").read_text() == "done"
    check_store(root)


def test_sigterm_cancels_and_a_second_signal_exits_at_once(tmp_path):
    import signal

    root = tmp_path / "term"
    _slow_project(root, 30, ignore_term=True)
    proc = _build_process(root)
    _wait_for(root / "out" / "slow.txt")
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    assert proc.poll() is None  # cancelling: the command is given its grace period
    began = time.monotonic()
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=5) == 130 and time.monotonic() - began < 1.5
    # The command that ignored SIGTERM outlives the build: end it (by its own pid).
    os.kill(int((root / "slow.pid").read_text()), signal.SIGKILL)


def test_sigterm_once_stops_cleanly(tmp_path):
    import signal

    root = tmp_path / "term1"
    _slow_project(root, 30)
    proc = _build_process(root)
    _wait_for(root / "out" / "slow.txt")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 130
    assert not (root / "out" / "slow.txt").exists()  # the partial output was discarded
    assert session(root).failures() == []
    check_store(root)


def test_preview_builds_leave_the_lock_alone(tmp_path):
    root = film(tmp_path, shots=2)
    session(root).build(jobs=2)
    locked = (root / "storybuild.lock").read_bytes()
    (root / "prompts" / "p0.txt").write_text("draft\n")
    result = session(root).build(jobs=2, quality="preview")
    assert len(result.ran) == 4 and (root / "storybuild.lock").read_bytes() == locked


def test_a_lock_changed_by_someone_else_is_read(tmp_path):
    theirs = film(tmp_path / "theirs", shots=2)
    session(theirs).build(jobs=2)
    mine = film(tmp_path / "mine", shots=2)
    (mine / "prompts" / "p0.txt").write_text("my draft\n")
    session(mine).build(jobs=2)
    # A pull: their prompt and their lock arrive, and their objects are in a shared cache.
    shutil.copy(theirs / "prompts" / "p0.txt", mine / "prompts" / "p0.txt")
    shutil.copy(theirs / "storybuild.lock", mine / "storybuild.lock")
    shutil.copytree(theirs / ".storybuild" / "cas", mine / ".storybuild" / "cas", dirs_exist_ok=True)
    result = session(mine).build(jobs=2)
    assert result.ran == [] and len(result.cached) == 4  # served by their lock: this DB never saw the keys
    assert tree(mine) == tree(theirs)


def test_outputs_of_actions_gone_from_the_manifest_leave_build(tmp_path, monkeypatch):
    root = flaky_film(tmp_path, monkeypatch, Flaky(0, TransientError))
    session(root).build()
    assert (root / "build" / "gen" / "0.txt").exists()
    monkeypatch.setattr(planner, "film_actions", lambda manifest, quality: [])
    (root / "project.json").write_text((root / "project.json").read_text() + " ")  # the manifest changed
    assert session(root).build().ok
    assert not (root / "build" / "gen").exists() and lockfile.read(root) == {}


def test_explanations_keep_their_locations_after_the_manifest_is_touched(tmp_path):
    root = film(tmp_path, shots=2)
    session(root).build(jobs=2)
    doc = json.loads((root / "project.json").read_text())
    doc["steps"][0]["argv"][0] = "sort"
    (root / "project.json").write_text(json.dumps(doc))
    past = time.time() - 30
    os.utime(root / "project.json", (past, past))
    session(root).plan()  # plans from the manifest and caches the plan
    os.utime(root / "project.json", (past + 10, past + 10))  # touched, same bytes: the cache is re-stamped
    session(root).plan()
    reasons = {s.action.id: [str(r) for r in s.reasons] for s in session(root).plan().steps}
    assert reasons["step/kf0"] == ["input changed: steps[0].argv[0] (project.json:3:12)"]


def test_the_engine_is_handed_its_stores(tmp_path):
    # ninja's DiskInterface: the session hands the engine the CAS, view and state DB, so
    # another store (a test's, a shared one) is a seam, not a rewrite.
    from storybuild.engine.session import Session
    from storybuild.store.stores import Stores

    root = tmp_path / "p"
    write_project(root, film_steps(2), prompts=2)
    elsewhere = tmp_path / "elsewhere"

    class Elsewhere(type(session(root))):
        def stores(self) -> Stores:
            return Stores.open(self.root, str(elsewhere))

    built = Elsewhere(str(root), session(root).manifest, loader=session(root)._loader).build(jobs=2)
    assert built.ok and built.ran
    assert any((elsewhere / "cas").rglob("*")) and (elsewhere / "state.sqlite").exists()
    assert not (root / ".storybuild" / "cas").exists() and not (root / ".storybuild" / "state.sqlite").exists()
    assert isinstance(session(root), Session)


def test_a_step_never_removes_a_file_storybuild_did_not_make(tmp_path):
    # A writer's file where a step's output goes (validate refuses the known sources; this
    # is a file it cannot know of): the step fails, the file is untouched, nothing is lost.
    root = tmp_path / "p"
    write_project(root, film_steps(1), prompts=1)
    (root / "out").mkdir()
    (root / "out" / "kf0.txt").write_text("the writer's own notes\n")
    result = session(root).build(jobs=1, keep_going=True)
    assert "step/kf0" in result.failed and "storybuild did not make it" in result.failed["step/kf0"]
    assert (root / "out" / "kf0.txt").read_text() == "the writer's own notes\n"
    (root / "out" / "kf0.txt").unlink()  # the writer moves it away: the build goes on
    assert session(root).build(jobs=1).ok
    assert session(root).build(jobs=1).ran == []  # and a second build runs nothing, its outputs are its own
