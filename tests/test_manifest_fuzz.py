"""Mutated manifests never crash validation: only diagnostics, and exit code 0 or 2.

Hypothesis takes the valid examples and damages them the way people (and bad merges) do:
deleting keys, changing types, inserting unknown keys, swapping values between places,
and garbling the YAML text itself. Whatever comes out, `validate` must answer with
diagnostics that name a place, never a traceback.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from storybuild.cli.main import main
from storybuild.errors import Severity
from storybuild.manifest.load import check_manifest

REPO = Path(__file__).resolve().parent.parent
PROJECTS = ("minimal", "split", "everything", "steps-only")
FUZZ = settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", 120)), deadline=None,
                derandomize=not os.environ.get("FUZZ_EXAMPLES"),
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def projects(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Writable copies of the example projects (assets included)."""
    root = tmp_path_factory.mktemp("fuzz")
    return {name: Path(shutil.copytree(REPO / "examples" / name, root / name)) for name in PROJECTS}


def _files(project: Path) -> list[Path]:
    return sorted(project.rglob("*.yaml"))


def _paths(node: Any, path: tuple = ()) -> Iterator[tuple]:
    if path:
        yield path
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, path + (key,))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _paths(value, path + (index,))


def _parent(doc: Any, path: tuple) -> Any:
    for part in path[:-1]:
        doc = doc[part]
    return doc


_scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 10_000), st.floats(-1e3, 1e3, allow_nan=False),
                     st.text(max_size=12), st.sampled_from(["mara", "ada", "{{ nope }}", "{{", "../x", "/etc/x",
                                                            "builtin:x", "#zzzzzz", "comfyui", "keyframe"]))
_values = st.one_of(_scalars, st.lists(_scalars, max_size=3), st.dictionaries(st.text(max_size=6), _scalars, max_size=2))


@st.composite
def data_mutations(draw: Any, doc: Any) -> Any:
    """`doc` with one to four structural mutations."""
    for _ in range(draw(st.integers(1, 4))):
        paths = list(_paths(doc))
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent, last = _parent(doc, path), path[-1]
        action = draw(st.sampled_from(["delete", "retype", "insert", "swap"]))
        if action == "delete":
            del parent[last]
        elif action == "retype":
            parent[last] = draw(_values)
        elif action == "insert" and isinstance(parent, dict):
            parent[draw(st.sampled_from(["colour", "shot", "id", "x-extra", "includes"]))] = draw(_values)
        else:
            other = draw(st.sampled_from(paths))
            try:
                other_parent = _parent(doc, other)
                parent[last], other_parent[other[-1]] = other_parent[other[-1]], parent[last]
            except (KeyError, IndexError, TypeError):
                pass  # the swap's second path vanished with an earlier mutation
    return doc


@st.composite
def text_mutations(draw: Any, text: str) -> str:
    """`text` garbled at one to three places."""
    for _ in range(draw(st.integers(1, 3))):
        lines = text.split("\n")
        n = draw(st.integers(0, max(0, len(lines) - 1)))
        action = draw(st.sampled_from(["char", "drop-line", "dup-line", "tab", "truncate", "indent"]))
        if action == "char":
            at = draw(st.integers(0, len(text)))
            text = text[:at] + draw(st.sampled_from(list("{}[]:,-&*!|>'\"#%@` \x00\x07é"))) + text[at:]
            continue
        if action == "drop-line":
            del lines[n]
        elif action == "dup-line":
            lines.insert(n, lines[n])
        elif action == "tab":
            lines[n] = "\t" + lines[n]
        elif action == "indent":
            lines[n] = "   " + lines[n]
        else:
            lines = lines[:n]
        text = "\n".join(lines)
    return text


def _validate(project: Path) -> None:
    """check_manifest must return (never raise), and the CLI must exit 0 or 2 without a traceback."""
    manifest, diags = check_manifest(project / "storybuild.yaml")
    errors = [d for d in diags if d.severity is Severity.ERROR]
    assert (manifest is None) == bool(errors)
    for diag in diags:
        assert diag.message and diag.loc is not None
    result = CliRunner().invoke(main, ["validate", str(project)])
    assert result.exit_code == (2 if errors else 0), result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output


@FUZZ
@given(data=st.data())
def test_structural_mutations_only_produce_diagnostics(projects: dict[str, Path], data: st.DataObject) -> None:
    project = projects[data.draw(st.sampled_from(PROJECTS))]
    target = data.draw(st.sampled_from(_files(project)))
    original = target.read_text()
    doc = data.draw(data_mutations(yaml.safe_load(original)))
    try:
        target.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))
        _validate(project)
    finally:
        target.write_text(original)


@FUZZ
@given(data=st.data())
def test_garbled_yaml_only_produces_diagnostics(projects: dict[str, Path], data: st.DataObject) -> None:
    project = projects[data.draw(st.sampled_from(PROJECTS))]
    target = data.draw(st.sampled_from(_files(project)))
    original = target.read_text()
    try:
        target.write_text(data.draw(text_mutations(original)))
        _validate(project)
    finally:
        target.write_text(original)
