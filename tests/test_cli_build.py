"""The build commands through the CLI, on a YAML manifest of custom steps."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from storybuild.cli.main import main
from storybuild.store.projectlock import ProjectLock

REPO = Path(__file__).resolve().parent.parent

MANIFEST = """\
version: 1
project:
  title: CLI test
steps:
  - id: kf
    argv: [cp, prompts/a.txt, out/kf.txt]
    inputs: [prompts/a.txt]
    outputs: [out/kf.txt]
  - id: clip
    argv: [cp, out/kf.txt, out/clip.txt]
    inputs: [out/kf.txt]
    outputs: [out/clip.txt]
  - id: other
    argv: [cp, prompts/b.txt, out/other.txt]
    inputs: [prompts/b.txt]
    outputs: [out/other.txt]
"""


@pytest.fixture
def project(tmp_path, monkeypatch):
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / "a.txt").write_text("a\n")
    (tmp_path / "prompts" / "b.txt").write_text("b\n")
    (tmp_path / "storybuild.yaml").write_text(MANIFEST)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def cli(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_build_then_nothing_to_do(project):
    first = cli("build", "-j", "2")
    assert first.exit_code == 0, first.output
    assert "ran 3, cached 0, failed 0, up to date 0" in first.output
    assert (project / "out" / "clip.txt").read_text() == "a\n"
    second = cli("build")
    assert second.exit_code == 0 and second.output.startswith("nothing to do: 3 actions up to date")


def test_json_events_one_per_line(project):
    result = cli("build", "--json", "clip")
    events = [json.loads(line) for line in result.output.splitlines()]
    kinds = [e["event"] for e in events]
    assert kinds[0] == "plan" and kinds[-1] == "summary"
    assert [e["action"] for e in events if e["event"] == "finished"] == ["step/kf", "step/clip"]
    assert events[-1]["ran"] == 2 and events[-1]["status"] == "ok"


def test_dry_run_plan_and_explain_give_reasons(project):
    cli("build")
    (project / "prompts" / "a.txt").write_text("changed\n")
    for args in (["plan"], ["build", "-n"]):
        result = cli(*args)
        assert result.exit_code == 0
        assert "step/kf\n  - input changed: prompts/a.txt\nstep/clip\n  - upstream step/kf runs first\n" in result.output
        assert "2 to run, 1 up to date" in result.output
    assert not (project / "out" / "kf.txt").read_text() == "changed\n"  # a dry run runs nothing
    explained = cli("build", "--explain")
    assert "  - input changed: prompts/a.txt" in explained.output and "ran 2" in explained.output


def test_changed_argv_is_explained_with_its_manifest_line(project):
    cli("build")
    (project / "storybuild.yaml").write_text(MANIFEST.replace("[cp, prompts/b.txt", "[cp, -p, prompts/b.txt"))
    result = cli("plan", "other")
    assert "input changed: steps[2].argv" in result.output and "storybuild.yaml:" in result.output


def test_graph_formats(project):
    dot = cli("graph", "--format", "dot", "clip").output
    assert '"step/kf" -> "step/clip";' in dot and "step/other" not in dot
    mermaid = cli("graph", "--format", "mermaid").output
    assert mermaid.startswith("flowchart LR") and "-->" in mermaid
    doc = json.loads(cli("graph", "--format", "json").output)
    assert doc["edges"] == [["step/kf", "step/clip"]] and len(doc["nodes"]) == 3


def test_unknown_targets_are_usage_errors_with_suggestions(project):
    result = CliRunner().invoke(main, ["build", "clpi"])
    assert result.exit_code == 2
    assert "unknown target: clpi" in result.output and "step/clip" in result.output


def test_status_retry_after_a_failure(project):
    (project / "storybuild.yaml").write_text(MANIFEST.replace("prompts/b.txt, out", "prompts/missing.txt, out"))
    failed = cli("build", "-k")
    assert failed.exit_code == 1
    assert "FAILED step/other" in failed.output and "storybuild retry" in failed.output
    status = cli("status")
    assert "failed (1):\n  step/other: cp exited with status 1 (1 attempt)" in status.output
    (project / "prompts" / "missing.txt").write_text("found\n")
    retried = cli("retry")
    assert retried.exit_code == 0 and "ran 1," in retried.output
    assert cli("status").output == "everything is up to date\n"
    assert cli("retry").output == "nothing to retry: no action failed\n"


GATED = MANIFEST.replace("argv: [cp, prompts/a.txt, out/kf.txt]", "argv: [cp, gate/a.txt, out/kf.txt]") + """\
  - id: film
    argv: [sort, -o, out/film.txt, out/clip.txt, out/other.txt]
    inputs: [out/clip.txt, out/other.txt]
    outputs: [out/film.txt]
  - id: extra
    argv: [cp, prompts/b.txt, out/extra.txt]
    inputs: [prompts/b.txt]
    outputs: [out/extra.txt]
"""


def ran(result) -> list[str]:
    """The actions a `--json` build finished, sorted."""
    events = [json.loads(line) for line in result.output.splitlines()]
    return sorted(e["action"] for e in events if e["event"] == "finished")


@pytest.fixture
def gated(project):
    """step/kf copies gate/a.txt, which is missing until the test opens the gate."""
    (project / "storybuild.yaml").write_text(GATED)
    return project


def open_gate(root: Path) -> None:
    (root / "gate").mkdir()
    (root / "gate" / "a.txt").write_text("gate\n")


def test_retry_after_fixing_the_cause_builds_what_the_failure_held_back(gated):
    failed = cli("build", "-k", "-j", "1")
    assert failed.exit_code == 1 and "FAILED step/kf" in failed.output
    assert not (gated / "out" / "film.txt").exists() and (gated / "out" / "other.txt").exists()
    open_gate(gated)
    retried = cli("retry", "-j", "1")
    assert retried.exit_code == 0, retried.output
    assert "ran 3, cached 0, failed 0" in retried.output  # kf, then clip and the film it held back
    assert (gated / "out" / "film.txt").read_text() == "b\ngate\n"
    assert cli("build").output.startswith("nothing to do: 5 actions up to date")
    assert cli("status").output == "everything is up to date\n"


def test_retry_leaves_unrelated_out_of_date_work_to_build(gated):
    assert cli("build", "film", "-j", "1").exit_code == 1  # stops at kf; other may not have run
    open_gate(gated)
    retried = cli("retry", "--json", "-j", "1")
    assert retried.exit_code == 0, retried.output
    assert {"step/kf", "step/clip", "step/film"} <= set(ran(retried)) <= {"step/kf", "step/clip", "step/other",
                                                                          "step/film"}
    assert (gated / "out" / "film.txt").exists() and not (gated / "out" / "extra.txt").exists()
    assert ran(cli("build", "--json")) == ["step/extra"]


def test_retry_finishes_only_the_targets_the_failed_build_asked_for(gated):
    assert cli("build", "kf").exit_code == 1
    open_gate(gated)
    retried = cli("retry", "--json")
    assert retried.exit_code == 0 and ran(retried) == ["step/kf"]
    assert not (gated / "out" / "clip.txt").exists()


def test_retry_targets_pick_failures_and_what_they_held_back(gated):
    (gated / "storybuild.yaml").write_text(GATED.replace("[cp, prompts/b.txt, out/extra.txt]",
                                                         "[cp, gate/b.txt, out/extra.txt]"))
    failed = cli("build", "-k", "-j", "1")
    assert failed.exit_code == 1 and "2 action(s) failed" in failed.output
    open_gate(gated)
    retried = cli("retry", "--json", "kf")
    assert retried.exit_code == 0 and ran(retried) == ["step/clip", "step/film", "step/kf"]
    assert "step/extra: cp exited with status 1" in cli("status").output
    assert cli("retry", "extra").exit_code == 1  # gate/b.txt is still missing


def test_gc_and_clean(project):
    cli("build")
    (project / "prompts" / "a.txt").write_text("new\n")
    cli("build")
    assert cli("gc").output == "removed 1 object, 0.0 MB freed\n"
    assert cli("clean").output == "no build/ to remove\n"


def test_no_wait_exits_with_a_clear_message(project):
    with ProjectLock(project / ".storybuild", what="build"):
        result = CliRunner().invoke(main, ["build", "--no-wait"])
    assert result.exit_code == 1
    assert "another storybuild process is using this project (pid" in result.output


def test_manifest_errors_exit_2_with_a_location(project):
    (project / "storybuild.yaml").write_text(MANIFEST.replace("outputs: [out/kf.txt]", "outputs: oops"))
    result = CliRunner().invoke(main, ["build"])
    assert result.exit_code == 2 and "storybuild.yaml:" in result.output


def test_a_no_op_build_imports_nothing_heavy(project):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    subprocess.run([sys.executable, "-m", "storybuild", "build"], cwd=project, env=env, check=True,
                   capture_output=True)
    trace = subprocess.run([sys.executable, "-X", "importtime", "-m", "storybuild", "build"], cwd=project,
                           env=env, check=True, capture_output=True, text=True)
    assert "nothing to do" in trace.stdout
    imported = {line.split("|")[-1].strip() for line in trace.stderr.splitlines() if "|" in line}
    for heavy in ("storybuild.model", "yaml", "jsonschema", "jinja2", "networkx", "rich", "sqlite3"):
        assert heavy not in imported, heavy


def _conflicted(lock: Path) -> None:
    """Two branches' locks, merged by Git with markers (as `git merge` leaves them)."""
    text = lock.read_text()
    lock.write_text("<<<<<<< HEAD\n" + text + "=======\n" + text.replace("key: ", "key: 0") + ">>>>>>> other\n")


def test_gc_refuses_a_lock_it_cannot_read_and_deletes_nothing(project):
    cli("build")
    (project / "prompts" / "a.txt").write_text("new\n")
    cli("build")
    objects = sorted(p.name for p in (project / ".storybuild" / "cas").rglob("*") if p.is_file())
    _conflicted(project / "storybuild.lock")
    result = CliRunner().invoke(main, ["gc"])
    assert result.exit_code == 2, result.output
    assert "gc stopped, nothing was deleted: storybuild.lock:1: Git's merge conflict markers (<<<<<<<)" in result.stderr
    assert "hint:" in result.stderr and "Traceback" not in result.output
    assert sorted(p.name for p in (project / ".storybuild" / "cas").rglob("*") if p.is_file()) == objects
    for garbage in (b"\x00\xff\xfe binary", b'version: 1\ntargets:\n  "unclosed: x\n'):
        (project / "storybuild.lock").write_bytes(garbage)
        result = CliRunner().invoke(main, ["gc"])
        assert result.exit_code == 2 and "gc stopped, nothing was deleted" in result.stderr, result.output


def test_a_build_with_a_conflicted_lock_says_so_and_writes_it_anew(project):
    cli("build")
    _conflicted(project / "storybuild.lock")
    result = CliRunner().invoke(main, ["build"])
    assert result.exit_code == 0, result.output
    assert "warning: storybuild.lock:1: Git's merge conflict markers" in result.stderr
    assert "building from the manifest and the cache instead" in result.stderr
    assert "<<<<<<<" not in (project / "storybuild.lock").read_text()
    assert cli("build").output.startswith("nothing to do")


def test_a_build_over_a_lock_that_is_not_text_rewrites_it_and_a_folder_is_refused(project):
    cli("build")
    (project / "storybuild.lock").write_bytes(b"\xff\xfe not text")
    result = CliRunner().invoke(main, ["build"])
    assert result.exit_code == 0 and "warning: storybuild.lock: is not text" in result.stderr, result.output
    assert (project / "storybuild.lock").read_text().startswith("# storybuild.lock")
    (project / "storybuild.lock").unlink()
    (project / "storybuild.lock").mkdir()
    result = CliRunner().invoke(main, ["build", "--force"])
    assert result.exit_code == 2 and "storybuild.lock is a folder" in result.stderr, result.output
    assert "Traceback" not in result.output


def test_gc_refuses_a_lock_cut_short_in_a_digest(project):
    cli("build")
    lock = project / "storybuild.lock"
    text = lock.read_text()
    lock.write_text(text[: text.rindex(": ") + 20] + "\n")  # the last digest cut to 18 characters
    result = CliRunner().invoke(main, ["gc"])
    assert result.exit_code == 2 and "is not an output digest (64 hex digits)" in result.stderr, result.output


@pytest.mark.parametrize("damage", ["zeroed", "truncated", "garbage"])
def test_a_damaged_state_db_is_moved_aside_and_made_anew(project, damage):
    # #17 item 4: it used to be sqlite3.DatabaseError in build, status and gc until deleted by hand.
    cli("build")
    db = project / ".storybuild" / "state.sqlite"
    size = db.stat().st_size
    if damage == "zeroed":
        db.write_bytes(bytes(size))
    elif damage == "truncated":
        db.write_bytes(db.read_bytes()[: size // 2])
    else:
        db.write_bytes(b"not a database at all" * 100)
    (project / "prompts" / "a.txt").write_text("changed\n")
    result = CliRunner().invoke(main, ["build"])
    assert result.exit_code == 0, result.output
    assert "warning: the state DB could not be read; it was moved aside" in result.stderr
    assert (project / ".storybuild" / "state.sqlite.damaged").exists()
    for command in (["status"], ["gc"], ["build"]):
        again = CliRunner().invoke(main, command)
        assert again.exit_code == 0 and "Traceback" not in again.output, (command, again.output)


@pytest.mark.parametrize("command", [["build"], ["clean"], ["gc"], ["build", "-n"]])
def test_build_and_store_folders_that_are_links_or_files_are_refused(project, tmp_path_factory, command):
    # #17 item 8: a linked build/ wrote the film outside the project; a file .storybuild
    # and a linked build/ under clean were tracebacks.
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    (project / "build").symlink_to(elsewhere, target_is_directory=True)
    result = CliRunner().invoke(main, command)
    assert result.exit_code == 2 and "build is a symbolic link" in result.stderr, result.output
    assert list(elsewhere.iterdir()) == [] and (project / "build").is_symlink()
    (project / "build").unlink()
    (project / ".storybuild").write_text("not a folder")
    result = CliRunner().invoke(main, command)
    assert result.exit_code == 2 and ".storybuild is a file" in result.stderr, result.output
