"""The JSON Schema: well-formed, documented, agreeing with plain jsonschema (what editors
run), and its errors mapped to the exact node with useful messages."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from storybuild.backends.contract import declarations
from storybuild.errors import SourceLoc
from storybuild.manifest.fastschema import UnsupportedSchema, compile_schema, json_equal
from storybuild.manifest.schema import published_schema, validate
from storybuild.manifest.yamlload import load_yaml, loads_yaml

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"
SCHEMA = json.loads((REPO / "schemas" / "storybuild.schema.json").read_text())
PLAIN = Draft202012Validator(SCHEMA)


def manifest_files(folder: Path) -> list[Path]:
    """Every manifest file of a project (the root and what it includes)."""
    return sorted(p for p in folder.rglob("*.yaml") if "expected" not in p.name)


VALID_FILES = [REPO / "storybuild.yaml"] + [f for d in ("minimal", "steps-only", "split", "everything")
                                            for f in manifest_files(EXAMPLES / d)]
INVALID_CASES = sorted(p for p in (EXAMPLES / "invalid").iterdir() if p.is_dir())


def test_the_schema_is_valid_draft_2020_12() -> None:
    Draft202012Validator.check_schema(SCHEMA)
    assert SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    # The shipped file is the published schema of the built-in backends, regenerated with
    # `python -m storybuild.manifest.schema` whenever core.schema.json or a declaration changes.
    assert published_schema(declarations(builtin_only=True)) == SCHEMA


def _resolve(node: dict) -> dict:
    while "$ref" in node:
        target = SCHEMA
        for part in node["$ref"][2:].split("/"):
            target = target[part]
        node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def _object_schemas(node: Any, where: str = "#") -> Iterator[tuple[str, dict]]:
    if isinstance(node, dict):
        if "properties" in node:
            yield where, node
        for key, value in node.items():
            yield from _object_schemas(value, f"{where}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _object_schemas(value, f"{where}/{index}")


def test_every_property_has_a_description_and_examples() -> None:
    # Schemas under `if` are conditions on properties, not their definitions.
    missing = [f"{where}/{name}" for where, schema in _object_schemas(SCHEMA) if "/if" not in where
               for name, prop in schema["properties"].items()
               if not {"description", "examples"} <= set(_resolve(prop))]
    assert missing == []


def test_every_object_refuses_unknown_keys() -> None:
    open_objects = [where for where, schema in _object_schemas(SCHEMA)
                    if schema.get("type") == "object" and schema.get("additionalProperties") is not False
                    and "/if" not in where]
    assert open_objects == []


@pytest.mark.parametrize("path", VALID_FILES, ids=lambda p: str(p.relative_to(REPO)))
def test_plain_jsonschema_accepts_every_valid_manifest_file(path: Path) -> None:
    errors = [e.message for e in PLAIN.iter_errors(load_yaml(str(path)).data)]
    assert errors == []


@pytest.mark.parametrize("case", INVALID_CASES, ids=lambda p: p.name)
def test_plain_jsonschema_agrees_with_the_tool_on_invalid_cases(case: Path) -> None:
    """Schema cases fail plain jsonschema; reference cases are structurally fine."""
    if case.name.startswith("yaml-"):
        return  # not loadable YAML at all: no document to validate
    doc = load_yaml(str(case / "storybuild.yaml")).data
    plain_valid = not list(PLAIN.iter_errors(doc))
    assert plain_valid == (not case.name.startswith("schema-"))


def located(text: str) -> list[tuple[str, str, str | None]]:
    doc = loads_yaml(text.encode(), "f.yaml")
    return [(f"{d.loc.line}:{d.loc.col}", d.message, d.hint) for d in validate(doc.data, doc.locs)]


def test_unknown_key_names_the_key_and_suggests_the_closest() -> None:
    assert located("version: 1\nproject: {title: x, fsp: 24}\n") == [
        ("2:21", "unknown key 'fsp' in project", "did you mean 'fps'?")]


def test_unknown_key_without_a_close_match_lists_the_valid_ones() -> None:
    ((where, message, hint),) = located("version: 1\nbackends: {zzz: 1}\n")
    assert (where, message) == ("2:12", "unknown key 'zzz' in backends")
    assert hint == "valid keys: comfyui, limits, retry"


def test_a_comma_in_flow_text_gets_a_hint() -> None:
    ((_, message, hint),) = located("version: 1\nproject: {title: Hello, world}\n")
    assert message == "unknown key 'world' in project" and "quotes" in hint


def test_enum_lists_choices_and_suggests() -> None:
    assert located("version: 1\nscenes: [{id: s, reverb: hal, shots: [{id: a}]}]\n") == [
        ("2:26", "scenes[0].reverb: 'hal' is not one of: none, room, hall, outdoor", "did you mean 'hall'?")]


def test_type_errors_say_what_was_expected() -> None:
    assert located("version: 1\nproject: {title: x, fps: fast}\n") == [
        ("2:26", "project.fps: expected a whole number, found 'fast'", None)]


def test_missing_required_key_points_at_its_parent() -> None:
    assert located("version: 1\nassets:\n  boat: {kind: model}\n") == [
        ("3:3", "missing required key 'path' in assets.boat", None)]


def test_conditional_requirements() -> None:
    found = located("version: 1\nscenes: [{id: s, shots: [{id: a, camera: {move: {type: zoom}}}]}]\n")
    assert found == [("2:43", "missing required key 'lens_to' in scenes[0].shots[0].camera.move", None)]


def test_any_of_explains_through_the_branch_that_fits() -> None:
    base = "version: 1\nscenes: [{id: s, shots: [{id: a, camera: {look_at: %s}}]}]\n"
    assert located(base % "[1, 2]") == [
        ("2:52", "scenes[0].shots[0].camera.look_at: expected 3 items, found 2", None)]
    assert located(base % "5") == [
        ("2:52", "scenes[0].shots[0].camera.look_at: expected a character or asset id, or a point [x, y, z], "
                 "found 5", None)]
    lipsync = "version: 1\nscenes: [{id: s, shots: [{id: a, lipsync: embeded}]}]\n"
    assert located(lipsync) == [
        ("2:43", "scenes[0].shots[0].lipsync: 'embeded' is not one of: comfyui, embedded, none",
         "did you mean 'embedded'?")]


def test_invalid_ids_point_at_the_key() -> None:
    assert located("version: 1\ncharacters:\n  mara: {}\n  bad id: {}\n") == [
        ("4:3", "'bad id' is not a valid id: use letters, digits, '-' and '_', starting with a letter or digit", None)]


def test_version_and_ranges() -> None:
    assert located("version: 3\n") == [("1:10", "unsupported manifest version 3; this storybuild reads version 1", None)]
    assert located("version: 1\nproject: {title: x, resolution: [640, 361]}\n") == [
        ("2:39", "project.resolution[1] must be even, found 361", None)]


def test_every_error_is_collected() -> None:
    found = located("version: 1\nproject: {title: x, fps: 0, seed: -1, colour: red}\nextra: 1\n")
    assert [message for _, message, _ in found] == [
        "project.fps must be at least 1, found 0",
        "project.seed must be at least 0, found -1",
        "unknown key 'colour' in project",
        "unknown key 'extra'",
    ]


def test_valid_documents_produce_nothing() -> None:
    doc = load_yaml(str(EXAMPLES / "everything" / "storybuild.yaml"))
    assert validate(doc.data, doc.locs) == []
    assert validate({"version": 1}, doc.locs) == []


# --------------------------------------------------------------------------- the fast path


def test_fast_check_refuses_keywords_it_does_not_know() -> None:
    with pytest.raises(UnsupportedSchema):
        compile_schema({"type": "object", "patternProperties": {"^x": {"type": "string"}}})


def test_json_equality() -> None:
    assert json_equal(1, 1.0) and not json_equal(True, 1) and not json_equal([0], [False])
    assert json_equal({"a": [1, "x"]}, {"a": [1.0, "x"]}) and not json_equal({"a": 1}, {"b": 1})


FAST = compile_schema(SCHEMA)
SEEDS = [load_yaml(str(path)).data for path in VALID_FILES]
_scalars = st.one_of(st.none(), st.booleans(), st.integers(-10, 10_000), st.floats(-100, 100, allow_nan=False),
                     st.sampled_from(["", "mara", "Bad Id", "#e8b820", "dolly", "http://x:1", "builtin:nope", "x" * 70]))
_values = st.recursive(_scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                          st.dictionaries(st.sampled_from(["id", "type", "at", "x"]),
                                                                          inner, max_size=3)), max_leaves=8)


def _paths(node: Any, path: tuple = ()) -> Iterator[tuple]:
    yield path
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, path + (key,))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _paths(value, path + (index,))


@st.composite
def mutated(draw: Any) -> Any:
    doc = json.loads(json.dumps(draw(st.sampled_from(SEEDS))))
    for _ in range(draw(st.integers(1, 3))):
        paths = [p for p in _paths(doc) if p]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = doc
        for part in path[:-1]:
            parent = parent[part]
        if isinstance(parent, dict) and draw(st.booleans()):
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(_values)
    return doc


@settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", 200)), deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_fast_check_agrees_with_jsonschema(doc: Any) -> None:
    assert FAST(doc) == (not any(True for _ in PLAIN.iter_errors(doc)))


def test_errors_locate_inside_the_file_they_came_from() -> None:
    doc = loads_yaml(b"version: 1\nproject: {title: 5}\n", "other.yaml")
    (diag,) = validate(doc.data, doc.locs)
    assert diag.loc == SourceLoc("other.yaml", 2, 18)
