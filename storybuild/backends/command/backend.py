"""Custom command steps: any program with declared inputs and outputs joins the graph.

A step runs as an argv list (never through a shell) in the project root, like a make rule:
it reads its inputs and writes its declared outputs at their project-relative paths. Stale
outputs are deleted first, so an output that exists after exit status 0 was written by this
run; one that is missing is an error. A non-zero exit is a permanent failure that quotes the
end of the program's stderr. On cancellation the program is terminated (then killed) and
its partial outputs are deleted.

params: {"argv": [...], "env": {...}, "outputs": [project-relative paths]}
"""

from __future__ import annotations

import os
import select
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Any, Mapping

from storybuild.backends.command import CAPABILITIES, NAME, VERSION
from storybuild.backends.contract import ActionContext
from storybuild.errors import BackendError, Cancelled
from storybuild.projectpaths import inside_lexically

# How much of a failed program's stderr the error quotes.
STDERR_LINES = 20
STDERR_CHARS = 4000
# How long a cancelled program gets to exit after SIGTERM before SIGKILL.
TERMINATE_GRACE = 2.0
# How often a running program is checked for cancellation (it exits promptly regardless).
_POLL = 0.05


class CommandBackend:
    """Runs custom command steps."""

    name, version = NAME, VERSION
    capabilities = CAPABILITIES

    def config_key(self, action_kind: str, params: Mapping[str, Any], config: Mapping[str, Any]) -> Any:
        """Nothing outside the step's own params changes what a command makes."""
        return None

    # The runner need not make a scratch directory: a step writes at its declared paths.
    needs_scratch = False

    def __init__(self) -> None:
        # Program lookups, by (argv[0], PATH): resolving once instead of letting every
        # spawn try each PATH entry with execve saves a good part of a tiny step's cost.
        self._programs: dict[tuple[str, str], str] = {}
        self._lock = threading.Lock()

    def run(self, ctx: ActionContext) -> Mapping[str, Path]:
        """Run the step's argv in the project root; return its declared outputs' paths."""
        if ctx.kind != "step":
            raise BackendError(f"the command backend cannot run actions of kind {ctx.kind!r} (it runs steps)")
        raw = ctx.params.get("argv")
        if not isinstance(raw, (list, tuple)) or not all(isinstance(arg, (str, int, float)) for arg in raw):
            raise BackendError(f"{ctx.action_id}: a step's argv must be a list of words, got {raw!r}")
        argv = [str(arg) for arg in raw]
        if not argv:
            raise BackendError(f"{ctx.action_id}: the step has an empty argv")
        root = os.fspath(ctx.project_root)
        outputs = {name: _inside(root, name, ctx.action_id) for name in ctx.params.get("outputs", ())}
        theirs = [name for name, path in outputs.items()
                  if inside_lexically(name) not in ctx.owned and os.path.lexists(path)]
        if theirs:
            raise BackendError(f"{ctx.action_id}: {', '.join(theirs)} already exist{'s' if len(theirs) == 1 else ''} and "
                               "storybuild did not make " + ("it" if len(theirs) == 1 else "them") + ": the step "
                               "would overwrite the writer's file", hint="move it away (or delete it yourself), "
                               "or give the step another output path")
        for path in outputs.values():
            _remove(path)
            parent = os.path.dirname(path)
            if not os.path.isdir(parent):  # one stat; makedirs(exist_ok) raises and catches
                os.makedirs(parent, exist_ok=True)
        extra = ctx.params.get("env") or {}
        env = {**os.environ, **{str(k): str(v) for k, v in extra.items()}} if extra else None
        ctx.check_cancelled()
        with tempfile.TemporaryFile() as stderr:
            proc = self._spawn(ctx, argv, env, stderr)
            status = self._wait(proc, ctx, outputs)
            if status != 0:
                for path in outputs.values():
                    _remove(path)
                how = f"was killed by signal {-status}" if status < 0 else f"exited with status {status}"
                raise BackendError(f"{ctx.action_id}: {argv[0]} {how}", hint=_tail(stderr) or None)
        missing = [name for name, path in outputs.items() if not os.path.isfile(path)]
        if missing:
            raise BackendError(f"{ctx.action_id}: {argv[0]} exited with status 0 but did not write "
                               f"{', '.join(missing)}", hint="a step must write every output it declares")
        return {name: Path(path) for name, path in outputs.items()}

    def _program(self, ctx: ActionContext, name: str, env: Mapping[str, str] | None) -> str:
        if "/" in name:
            return str(Path(ctx.project_root) / name)
        search = (env or os.environ).get("PATH", os.defpath)
        key = (name, search)
        found = self._programs.get(key)
        if found is None:
            found = shutil.which(name, path=search)
            if found is None:
                raise BackendError(f"{ctx.action_id}: command not found: {name}",
                                   hint="steps run without a shell; give a program on PATH or a project path")
            with self._lock:
                self._programs[key] = found
        return found

    def _spawn(self, ctx: ActionContext, argv: list[str], env, stderr) -> subprocess.Popen:
        try:
            return self._popen(ctx, argv, env, stderr)
        except FileNotFoundError:
            pass
        with self._lock:  # removed or moved since we looked it up: look again, once
            self._programs.pop((argv[0], (env or os.environ).get("PATH", os.defpath)), None)
        try:
            return self._popen(ctx, argv, env, stderr)
        except FileNotFoundError:
            raise BackendError(f"{ctx.action_id}: command not found: {argv[0]}",
                               hint="steps run without a shell; give a program on PATH or a project path") from None

    def _popen(self, ctx: ActionContext, argv: list[str], env, stderr) -> subprocess.Popen:
        program = self._program(ctx, argv[0], env)
        try:
            return subprocess.Popen(argv, executable=program, cwd=ctx.project_root, env=env,
                                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr,
                                    close_fds=True)
        except PermissionError:
            raise BackendError(f"{ctx.action_id}: cannot execute {argv[0]} (permission denied)") from None

    def _wait(self, proc: subprocess.Popen, ctx: ActionContext, outputs: Mapping[str, str]) -> int:
        if not _exited(proc, ctx):
            proc.terminate()
            try:
                proc.wait(timeout=TERMINATE_GRACE)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            for path in outputs.values():
                _remove(path)
            raise Cancelled(f"{ctx.action_id}: cancelled")
        return proc.returncode


def _exited(proc: subprocess.Popen, ctx: ActionContext) -> bool:
    """Wait until the program exits (True) or the build is cancelled (False).

    A pidfd wakes us the moment the program exits; Popen.wait(timeout) would poll with
    growing sleeps and add about a millisecond to every tiny command.
    """
    try:
        pidfd = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):  # not Linux ≥ 5.3: poll the exit status instead
        while True:
            try:
                proc.wait(timeout=_POLL)
                return True
            except subprocess.TimeoutExpired:
                if ctx.cancelled:
                    return False
    try:
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        while not poller.poll(int(_POLL * 1000)):
            if ctx.cancelled:
                return False
        proc.wait()
        return True
    finally:
        os.close(pidfd)


def _inside(root: str, rel: str, action_id: str) -> str:
    norm = inside_lexically(rel)
    if norm is None:
        raise BackendError(f"{action_id}: output {rel!r} is outside the project")
    return os.path.join(root, norm)


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _tail(stream) -> str:
    stream.seek(0, os.SEEK_END)
    size = stream.tell()
    stream.seek(max(0, size - STDERR_CHARS))
    text = stream.read().decode("utf-8", "replace")
    return "\n".join(text.splitlines()[-STDERR_LINES:])
