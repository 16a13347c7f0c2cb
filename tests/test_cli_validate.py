"""`storybuild validate`, `schema` and `init` through the CLI, against golden outputs.

Every valid example exits 0; every case under examples/invalid/ prints exactly its
expected.txt and exits 2; cases under examples/warnings/ print their warnings and exit 0.
Run with STORYBUILD_UPDATE_GOLDENS=1 to rewrite the expected.txt files after a deliberate
change of wording, then review the diff.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from storybuild.cli.main import main

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"
VALID = [REPO] + sorted(p for p in EXAMPLES.iterdir() if (p / "storybuild.yaml").is_file())
INVALID = sorted(p for p in (EXAMPLES / "invalid").iterdir() if p.is_dir())
WARNINGS = sorted(p for p in (EXAMPLES / "warnings").iterdir() if p.is_dir())
UPDATE = bool(os.environ.get("STORYBUILD_UPDATE_GOLDENS"))
# After these prefixes of ours a message is a library's own description of a syntax error
# (libyaml's, PyYAML's pure-Python parser's, Jinja's), which another version words
# differently: PyYAML with and without libyaml already do. Goldens keep the real text for
# readers, but it is compared only up to our prefix; location, caret and hint stay exact.
LIBRARY_WORDING = re.compile(r"^(\S*: error: (?:invalid YAML|template syntax error): ).*$", re.MULTILINE)


def run(*args: str, cwd: Path | None = None):
    """Invoke the CLI in-process with `-C cwd`, restoring the working directory after."""
    argv = (["-C", str(cwd)] if cwd else []) + list(args)
    before = os.getcwd()
    try:
        return CliRunner().invoke(main, argv, catch_exceptions=False)
    finally:
        os.chdir(before)


def check_golden(case: Path, output: str) -> None:
    expected = case / "expected.txt"
    if UPDATE:
        expected.write_text(output, encoding="utf-8")
    golden = expected.read_text(encoding="utf-8")
    assert LIBRARY_WORDING.sub(r"\1…", output) == LIBRARY_WORDING.sub(r"\1…", golden)


@pytest.mark.parametrize("project", VALID, ids=lambda p: p.name or "demo")
def test_valid_examples_exit_0(project: Path) -> None:
    result = run("validate", cwd=project)
    assert result.exit_code == 0, result.stderr
    assert "valid (" in result.stdout and "invalid" not in result.stdout


@pytest.mark.parametrize("case", INVALID, ids=lambda p: p.name)
def test_invalid_examples_print_their_golden_output_and_exit_2(case: Path) -> None:
    result = run("validate", cwd=case)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert ": error: " in result.stderr and "Traceback" not in result.stderr
    check_golden(case, result.stderr)


@pytest.mark.parametrize("case", WARNINGS, ids=lambda p: p.name)
def test_warning_examples_exit_0_with_their_warnings(case: Path) -> None:
    result = run("validate", cwd=case)
    assert result.exit_code == 0
    assert ": warning: " in result.stderr and ": error: " not in result.stderr
    check_golden(case, result.stderr + result.stdout)


def test_every_invalid_case_has_a_golden_file() -> None:
    assert len(INVALID) >= 30
    for case in INVALID + WARNINGS:
        assert (case / "expected.txt").is_file(), case


def test_json_format_lists_every_problem_with_its_location() -> None:
    result = run("validate", "--format", "json", cwd=EXAMPLES / "invalid" / "unknown-preset")
    assert result.exit_code == 2
    report = json.loads(result.stdout)
    assert report["valid"] is False and report["errors"] == 2 and report["warnings"] == 0
    first = report["diagnostics"][0]
    assert first == {"severity": "error", "code": "reference", "message": "unknown style preset 'noire'",
                     "file": "storybuild.yaml", "line": 5, "col": 17, "hint": "did you mean 'noir'?"}


def test_json_format_on_a_valid_manifest() -> None:
    result = run("validate", "--format", "json", cwd=EXAMPLES / "minimal")
    assert result.exit_code == 0
    assert json.loads(result.stdout) == {"valid": True, "errors": 0, "warnings": 0, "diagnostics": []}


def test_path_argument_names_files_as_given(tmp_path: Path) -> None:
    result = run("validate", str(EXAMPLES / "invalid" / "schema-version"))
    assert result.exit_code == 2
    assert result.stderr.startswith(str(EXAMPLES / "invalid" / "schema-version" / "storybuild.yaml") + ":2:10: error:")


def test_missing_manifest_is_a_clear_error(tmp_path: Path) -> None:
    result = run("validate", cwd=tmp_path)
    assert result.exit_code == 2
    assert "no manifest at storybuild.yaml" in result.stderr
    assert "storybuild init" in result.stderr


def test_internal_errors_are_reported_without_a_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    import storybuild.manifest.load

    def broken(*args, **kwargs):
        raise ZeroDivisionError("boom")

    monkeypatch.setattr(storybuild.manifest.load, "check_manifest", broken)
    result = run("validate", cwd=EXAMPLES / "minimal")
    assert result.exit_code == 70
    assert "internal error: ZeroDivisionError: boom" in result.stderr
    assert "Traceback" not in result.stderr


def test_schema_command_prints_the_schema_of_the_installed_backends() -> None:
    from storybuild.backends.contract import installed

    result = run("schema")
    assert result.exit_code == 0
    printed = json.loads(result.stdout)
    shipped = json.loads((REPO / "schemas" / "storybuild.schema.json").read_text())  # the built-ins' part
    assert printed["properties"] == shipped["properties"]
    tts = [name for name in sorted(installed()) if name in printed["$defs"]["voice_engine"]["enum"]]
    assert set(shipped["$defs"]["voice_engine"]["enum"]) <= set(tts) == set(printed["$defs"]["voice_engine"]["enum"])


def test_init_creates_a_project_that_validates(tmp_path: Path) -> None:
    result = run("init", "demo", cwd=tmp_path)
    assert result.exit_code == 0, result.output
    project = tmp_path / "demo"
    assert (project / ".gitignore").read_text().splitlines()[1:] == [".storybuild/", "build/"]
    assert 'title: "Demo"' in (project / "storybuild.yaml").read_text()
    assert (project / "storybuild.schema.json").read_text() == run("schema").stdout  # with this machine's plug-ins
    result = run("validate", cwd=project)
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""


def test_init_refuses_to_overwrite_and_keeps_an_existing_gitignore(tmp_path: Path) -> None:
    (tmp_path / ".gitignore").write_text("*.pyc\nbuild/\n")
    assert run("init", "--title", 'Say "hi": a film', cwd=tmp_path).exit_code == 0
    assert (tmp_path / ".gitignore").read_text() == "*.pyc\nbuild/\n.storybuild/\n"
    assert run("validate", cwd=tmp_path).exit_code == 0
    before = (tmp_path / "storybuild.yaml").read_text()
    result = run("init", cwd=tmp_path)
    assert result.exit_code == 2
    assert "already exists" in result.stderr
    assert (tmp_path / "storybuild.yaml").read_text() == before


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run([sys.executable, "-m", "storybuild", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=60)


def test_python_m_storybuild_init_then_validate(tmp_path: Path) -> None:
    assert _cli("init", "demo", cwd=tmp_path).returncode == 0
    result = _cli("-C", "demo", "validate", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("storybuild.yaml: valid (1 scene, 3 shots, 2 lines")


def test_python_m_storybuild_on_examples() -> None:
    # One process per kind of outcome: the in-process tests above cover every case.
    valid = _cli("validate", "examples/everything", cwd=REPO)
    assert valid.returncode == 0, valid.stderr
    case = EXAMPLES / "invalid" / "unknown-character"
    invalid = _cli("validate", cwd=case)
    assert invalid.returncode == 2
    assert invalid.stderr == (case / "expected.txt").read_text()


def test_step_outputs_may_not_reach_the_writers_files_by_folder_link_or_setting(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "chars.yaml").write_text("version: 1\ncharacters: {}\n")
    (tmp_path / "comfy").mkdir()
    (tmp_path / "comfy" / "object_info.json").write_text("{}")
    (tmp_path / "tools").mkdir()
    (tmp_path / "tools" / "cp.py").write_text("")
    (tmp_path / "tools" / "link.yaml").symlink_to("../storybuild.yaml")
    (tmp_path / "storybuild.yaml").write_text(
        "version: 1\nproject: {title: T}\ninclude: [sub/chars.yaml]\n"
        "backends: {comfyui: {object_info: comfy/object_info.json}}\n"
        "steps:\n  - {id: a, argv: [python3, tools/cp.py], inputs: [tools/cp.py],\n"
        "     outputs: [comfy/object_info.json, ., sub, tools/link.yaml, out/ok.txt]}\n")
    result = run("validate", str(tmp_path))
    assert result.exit_code == 2
    found = [line for line in result.stderr.splitlines() if "a step may only write files it makes" in line]
    assert [line.split("step output ")[1].split(";")[0] for line in found] == [
        "'comfy/object_info.json' is the file backends.comfyui.object_info names",
        "'.' is a folder holding the manifest", "'sub' is a folder holding a manifest file",
        "'tools/link.yaml' is the manifest"]
