"""backends.command: argv without a shell, declared outputs, errors, cancellation."""

from __future__ import annotations

import sys
import threading
import time

import pytest

from storybuild.backends.command import VERSION
from storybuild.backends.command.backend import CommandBackend
from storybuild.engine.scheduler import is_transient
from storybuild.backends.contract import ActionContext, get_backend
from storybuild.errors import BackendError, Cancelled


def ctx(tmp_path, argv, outputs=(), env=None, cancel=None, owned=None):
    # By default every output path is storybuild's (as the runner says of its own placements).
    return ActionContext(action_id="step/x", kind="step",
                         params={"argv": argv, "env": env or {}, "outputs": list(outputs)}, inputs={},
                         out_dir=tmp_path / ".scratch", project_root=tmp_path,
                         cancel_event=cancel or threading.Event(),
                         owned=frozenset(outputs if owned is None else owned))


def test_registered_with_its_declared_version():
    backend = get_backend("command")
    assert isinstance(backend, CommandBackend) and backend.version == VERSION
    assert backend.config_key("step", {}, {}) is None


def test_runs_in_the_project_root_without_a_shell(tmp_path):
    code = "import os, sys; open(sys.argv[1], 'w').write(os.getcwd() + ' ' + sys.argv[2] + ' ' + os.environ['LUT'])"
    out = CommandBackend().run(ctx(tmp_path, [sys.executable, "-c", code, "out/a.txt", "$HOME;*"],
                                   ["out/a.txt"], env={"LUT": "warm"}))
    assert out == {"out/a.txt": tmp_path / "out" / "a.txt"}
    assert (tmp_path / "out" / "a.txt").read_text() == f"{tmp_path} $HOME;* warm"


def test_a_stale_output_does_not_count_as_written(tmp_path):
    (tmp_path / "old.txt").write_text("from last time")
    with pytest.raises(BackendError, match="exited with status 0 but did not write old.txt"):
        CommandBackend().run(ctx(tmp_path, ["true"], ["old.txt"]))
    assert not (tmp_path / "old.txt").exists()


def test_a_file_storybuild_did_not_make_is_never_removed_or_overwritten(tmp_path):
    (tmp_path / "notes.txt").write_text("the writer's notes")
    with pytest.raises(BackendError, match="notes.txt already exists and storybuild did not make it") as err:
        CommandBackend().run(ctx(tmp_path, ["sh", "-c", "echo x > notes.txt"], ["notes.txt"], owned=()))
    assert "move it away" in err.value.hint and not is_transient(err.value)
    assert (tmp_path / "notes.txt").read_text() == "the writer's notes"


def test_a_failing_command_quotes_the_end_of_stderr_and_leaves_no_output(tmp_path):
    code = "import sys; open('o.txt', 'w').write('half'); [print(f'line {i}', file=sys.stderr) for i in range(50)]; sys.exit(3)"
    with pytest.raises(BackendError) as err:
        CommandBackend().run(ctx(tmp_path, [sys.executable, "-c", code], ["o.txt"]))
    assert "exited with status 3" in err.value.message
    assert err.value.hint.splitlines()[-1] == "line 49" and "line 29" not in err.value.hint
    assert not (tmp_path / "o.txt").exists()


def test_unknown_programs_and_outputs_outside_the_project(tmp_path):
    with pytest.raises(BackendError, match="command not found: no-such-program-here"):
        CommandBackend().run(ctx(tmp_path, ["no-such-program-here"], ["o.txt"]))
    with pytest.raises(BackendError, match="outside the project"):
        CommandBackend().run(ctx(tmp_path, ["true"], ["../escape.txt"]))


def test_cancellation_terminates_the_program_and_removes_partial_outputs(tmp_path):
    cancel = threading.Event()
    code = "import sys, time; open('o.txt', 'w').write('partial'); time.sleep(30)"
    threading.Timer(0.3, cancel.set).start()
    began = time.monotonic()
    with pytest.raises(Cancelled):
        CommandBackend().run(ctx(tmp_path, [sys.executable, "-c", code], ["o.txt"], cancel=cancel))
    assert time.monotonic() - began < 5
    assert not (tmp_path / "o.txt").exists()
