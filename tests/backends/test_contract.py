"""The backend contract (storybuild/backends/contract.py), checked on every installed backend.

Each test is parametrized over the registry (conftest.py), so a plug-in installed beside
storybuild is held to the same contract as the built-ins:

1. it declares itself (name, version, capabilities, a valid settings schema), and a
   built-in's declaration is read without importing the backend;
2. the same params give the same action key, and a param that matters changes it;
3. the same action gives the same bytes, where the backend claims it;
4. it honours cancellation: before it starts, while it runs, and late in the work;
5. its errors say whether a retry may help: bad params are permanent, a failing
   environment transient;
6. it writes only into its scratch folder, and returns files that exist there;
7. a line it cannot speak is a ManifestError at the line's manifest location.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from storybuild.backends import contract
from storybuild.backends.contract import Backend
from storybuild.engine.scheduler import is_transient
from storybuild.errors import BackendError, Cancelled, ManifestError
from storybuild.hashing import static_digest

from .conftest import CANCEL_AFTER_S, CANCEL_WITHIN_S, config_of, context, files_under, snapshot

# ---------------------------------------------------------------- 1. declares itself


def test_declares_its_name_version_and_capabilities(backend_name, backend):
    assert isinstance(backend, Backend)
    assert backend.name == backend_name
    assert isinstance(backend.version, str) and backend.version.strip()
    assert isinstance(backend.capabilities, frozenset) and backend.capabilities
    assert all(isinstance(c, str) and c for c in backend.capabilities)


def test_its_declaration_agrees_with_the_instance(backend_name, backend):
    declared = contract.declaration(backend_name)
    assert declared.name == backend_name
    assert (declared.version, declared.capabilities) == (backend.version, backend.capabilities)
    assert declared.spec == contract.installed()[backend_name]
    assert declared.builtin is (backend_name in contract.BUILTIN)


@pytest.fixture(scope="session")
def fresh_interpreter() -> dict:
    """What a fresh interpreter sees after reading every built-in's version and declaration."""
    code = ("import json, sys\n"
            "from storybuild.backends.contract import BUILTIN, builtin_versions, declaration\n"
            "versions = dict(builtin_versions())\n"
            "declared = {n: [declaration(n).version, sorted(declaration(n).capabilities)] for n in BUILTIN}\n"
            "print(json.dumps({'versions': versions, 'declared': declared, 'modules': sorted(sys.modules)}))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_a_builtin_is_declared_without_importing_it(backend_name, backend, fresh_interpreter):
    if backend_name not in contract.BUILTIN:
        pytest.skip(f"{backend_name} is a plug-in: its declaration is read from its class")
    module = contract.installed()[backend_name].partition(":")[0]
    assert module not in fresh_interpreter["modules"], f"reading the declarations imported {module}"
    assert fresh_interpreter["versions"][backend_name] == backend.version
    assert fresh_interpreter["declared"][backend_name] == [backend.version, sorted(backend.capabilities)]


def test_its_schemas_are_valid_json_schemas(backend_name, backend):
    declared = contract.declaration(backend_name)
    schemas = {"declaration.config_schema": declared.config_schema}
    if getattr(backend, "config_schema", None) is not None:
        schemas["config_schema"] = backend.config_schema
        assert dict(backend.config_schema) == dict(declared.config_schema)
    if declared.voice_schema is not None:
        schemas["voice_schema"] = declared.voice_schema
    for where, schema in schemas.items():
        try:
            Draft202012Validator.check_schema(dict(schema))
        except Exception as exc:  # SchemaError, or a schema that is not a mapping
            pytest.fail(f"{backend_name} {where} is not a valid JSON Schema: {exc}")


# ---------------------------------------------------------------- 2. same inputs → same key


def key(backend, name, sample, params) -> str:
    """The static part of the action key, as the planner computes it."""
    config = backend.config_key(sample.kind, params, config_of(backend, sample.raw_config))
    return static_digest(sample.kind, name, backend.version, config, params)


def test_equal_params_give_the_same_key(backend_name, backend, sample):
    assert key(backend, backend_name, sample, copy.deepcopy(sample.params)) == \
        key(backend, backend_name, sample, copy.deepcopy(sample.params))


def test_a_param_that_matters_changes_the_key(backend_name, backend, sample):
    assert sample.variant != sample.params
    assert key(backend, backend_name, sample, copy.deepcopy(sample.variant)) != \
        key(backend, backend_name, sample, copy.deepcopy(sample.params))


# ---------------------------------------------------------------- 3. deterministic outputs


def contents(written) -> dict[str, bytes]:
    return {name: Path(path).read_bytes() for name, path in written.items()}


def test_the_same_action_gives_the_same_bytes(backend, sample, workspace):
    if sample.not_deterministic:
        pytest.skip(sample.not_deterministic)
    first = contents(backend.run(context(backend, sample, workspace)))
    second = contents(backend.run(context(backend, sample, workspace)))
    assert first and set(first) == set(second)
    assert [name for name in first if first[name] != second[name]] == []


# ---------------------------------------------------------------- 4. cancellation


def leftovers(ctx, sample) -> list[str]:
    """Files a cancelled action left: anything in its out_dir, any declared project output."""
    found = [str(p) for p in files_under(ctx.out_dir)]
    return found + [rel for rel in sample.writes_in_project if (ctx.project_root / rel).is_file()]


def test_a_cancelled_action_does_not_start(backend, sample, workspace, known_defect):
    known_defect("cancel_before_start")
    ctx = context(backend, sample, workspace)
    ctx.cancel_event.set()
    try:
        written = backend.run(ctx)
    except Cancelled:
        pass
    else:
        # The runner tolerates an early return without outputs (actionrunner checks the flag
        # after run); the backends known to check the flag must raise Cancelled.
        assert sample.cancel_may_return_empty, f"cancelled before it started, it returned {dict(written or {})}"
        assert not written, f"cancelled before it started, it still made {dict(written)}"
    assert leftovers(ctx, sample) == []


def test_a_running_action_stops_soon_after_a_cancel(backend, sample, workspace):
    if sample.long is None:
        pytest.skip(sample.no_long)
    kind, params = sample.long
    ctx = context(backend, sample, workspace, kind=kind, params=params)
    timer = threading.Timer(CANCEL_AFTER_S, ctx.cancel_event.set)
    started = time.monotonic()
    timer.start()
    try:
        with pytest.raises(Cancelled):
            backend.run(ctx)
    finally:
        timer.cancel()
    took = time.monotonic() - started
    assert ctx.cancel_event.is_set(), f"the action finished in {took:.2f} s, before it was cancelled"
    assert took < CANCEL_AFTER_S + CANCEL_WITHIN_S, f"it took {took - CANCEL_AFTER_S:.1f} s to stop"
    assert leftovers(ctx, sample) == []


def test_a_cancel_late_in_the_work_is_honoured(backend, sample, workspace, known_defect):
    """A cancel that arrives once the backend reports being past halfway (set from its progress
    callback, so it lands at the same point every run) still stops it: Cancelled, no outputs."""
    known_defect("cancel_late")
    ctx = context(backend, sample, workspace)
    reported: list[float] = []

    def progress(fraction: float, message: str = "") -> None:
        reported.append(fraction)
        if 0.5 <= fraction < 1.0:
            ctx.cancel_event.set()

    ctx.progress = progress
    try:
        written = backend.run(ctx)
    except Cancelled:
        assert leftovers(ctx, sample) == []
        return
    if not ctx.cancel_event.is_set():
        pytest.skip(f"it reported no progress between halfway and done (reported {reported})")
    pytest.fail(f"cancelled at {min(f for f in reported if f >= 0.5):.2f} of the work, it went on and made "
                f"{sorted(written or {})}")


# ---------------------------------------------------------------- 5. transient vs permanent


def permanent(excinfo) -> None:
    assert isinstance(excinfo.value, BackendError), repr(excinfo.value)
    assert not is_transient(excinfo.value), f"a bad action is not worth retrying: {excinfo.value!r}"


def test_an_unknown_kind_is_a_permanent_error(backend, sample, workspace, known_defect):
    known_defect("unknown_kind")
    with pytest.raises(BackendError) as excinfo:
        backend.run(context(backend, sample, workspace, kind="no-such-kind"))
    permanent(excinfo)


def test_a_param_of_the_wrong_type_is_a_permanent_error(backend, sample, workspace, known_defect):
    known_defect("wrong_type")
    with pytest.raises(BackendError) as excinfo:
        backend.run(context(backend, sample, workspace, params=sample.bad_params))
    permanent(excinfo)


def test_a_failing_environment_is_a_transient_error(backend, sample, workspace, monkeypatch, tmp_path_factory):
    if sample.break_environment is None:
        pytest.skip(sample.no_environment)
    raw = sample.break_environment(monkeypatch, tmp_path_factory.mktemp("broken"))
    started = time.monotonic()
    with pytest.raises(Exception) as excinfo:
        backend.run(context(backend, sample, workspace, raw_config=raw))
    assert is_transient(excinfo.value), f"a failure of the environment is worth retrying: {excinfo.value!r}"
    assert time.monotonic() - started < 15


# ---------------------------------------------------------------- 6. writes only into its scratch folder


def test_it_writes_only_into_its_scratch_folder(backend, sample, workspace):
    # Only a backend without a scratch folder (needs_scratch = False: custom steps) writes its
    # declared outputs at their project paths.
    assert bool(sample.writes_in_project) is (not getattr(backend, "needs_scratch", True))
    ctx = context(backend, sample, workspace)
    before = snapshot(workspace.root, ignore=(ctx.out_dir, workspace.cache))
    written = backend.run(ctx)
    after = snapshot(workspace.root, ignore=(ctx.out_dir, workspace.cache))
    allowed = {os.path.relpath(workspace.project / rel, workspace.root) for rel in sample.writes_in_project}
    changed = sorted(path for path in set(before) | set(after)
                     if before.get(path) != after.get(path) and path not in allowed)
    assert changed == [], "written outside out_dir"
    assert written, "the sample made nothing"
    places = [ctx.out_dir.resolve()] + [(workspace.project / rel).resolve() for rel in sample.writes_in_project]
    for name, path in written.items():
        real = os.path.realpath(path)
        assert any(real == str(p) or real.startswith(str(p) + os.sep) for p in places), \
            f"output {name!r} at {path} is outside out_dir"
        assert os.path.isfile(path), f"output {name!r} at {path} does not exist"


# ---------------------------------------------------------------- 7. validation errors are located


def assert_located(excinfo, request) -> None:
    diagnostics = excinfo.value.diagnostics
    assert diagnostics and [d.loc for d in diagnostics] == [request.loc] * len(diagnostics)


def test_a_workflow_it_cannot_run_is_a_located_manifest_error(backend, sample):
    if sample.request is None:
        pytest.skip("not a tts backend: it plans no speech")
    bad = dataclasses.replace(sample.request, workflow="no-such-workflow")
    with pytest.raises(ManifestError) as excinfo:
        backend.plan_speech(bad)
    assert_located(excinfo, bad)


def test_an_unknown_voice_is_a_located_manifest_error(backend, sample, known_defect):
    if sample.request is None:
        pytest.skip("not a tts backend: it plans no speech")
    if sample.unknown_voice is None:
        pytest.skip(sample.no_unknown_voice)
    known_defect("unknown_voice")
    with pytest.raises(ManifestError) as excinfo:
        backend.plan_speech(sample.unknown_voice)
    assert_located(excinfo, sample.unknown_voice)
