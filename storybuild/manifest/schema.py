"""Validate a manifest document against schemas/storybuild.schema.json.

Valid documents take the compiled fast path (fastschema.py). Invalid ones go through
jsonschema, and every error is mapped to the node it is about, with a message a writer can
act on: the unknown key and the closest valid one, the allowed choices of an enum, the
expected type, the bound that was crossed. All errors are collected.

jsonschema is imported only on the slow path, so validating a valid film stays cheap.
"""

from __future__ import annotations

import difflib
import json
from functools import lru_cache
from importlib import resources
from typing import Any, Iterable

from storybuild.errors import Diagnostic, SourceLoc
from storybuild.manifest.fastschema import Check, compile_schema
from storybuild.manifest.locations import LocIndex, Path, dotted

SCHEMA_FILE = "storybuild.schema.json"

_TYPE_NAMES = {"object": "a mapping", "array": "a list", "string": "text", "integer": "a whole number",
               "number": "a number", "boolean": "true or false", "null": "nothing"}

# Messages for the patterns the schema uses (a pattern itself means little to a writer).
_PATTERN_MESSAGES = {
    "^[A-Za-z0-9][A-Za-z0-9_-]*$": "is not a valid id: use letters, digits, '-' and '_', starting with a letter or digit",
    "^#[0-9a-fA-F]{6}$": "is not a colour: write it as #rrggbb, e.g. '#e8b820'",
    "^https?://[^\\s/]+": "is not an http:// or https:// URL",
    "^[A-Za-z_][A-Za-z0-9_]*$": "is not a valid environment variable name",
}


def schema_text() -> str:
    """The schema file's text, as shipped in the package."""
    return resources.files("storybuild").joinpath("schemas", SCHEMA_FILE).read_text(encoding="utf-8")


@lru_cache(maxsize=1)
def load_schema() -> dict:
    """The parsed schema (cached)."""
    return json.loads(schema_text())


@lru_cache(maxsize=1)
def _fast_check() -> Check:
    return compile_schema(load_schema())


@lru_cache(maxsize=1)
def _validator() -> Any:
    from jsonschema import Draft202012Validator

    return Draft202012Validator(load_schema())


def validate(doc: Any, locs: LocIndex) -> list[Diagnostic]:
    """Every schema problem of `doc`, located through `locs` (empty when valid)."""
    if _fast_check()(doc):
        return []
    found: dict[tuple, Diagnostic] = {}
    for error in _validator().iter_errors(doc):
        for diag in _explain(error, locs):
            key = (diag.loc, diag.message)
            found.setdefault(key, diag)
    return sorted(found.values(), key=lambda d: (d.loc or SourceLoc(""), d.message))


def _explain(error: Any, locs: LocIndex) -> Iterable[Diagnostic]:
    """Turn one jsonschema error into diagnostics (an unknown-keys error may name several)."""
    path: Path = tuple(error.absolute_path)
    where = _name(path)
    kind, value, schema = error.validator, error.validator_value, error.schema
    instance = error.instance
    here = locs.value(path)
    if kind == "additionalProperties" and isinstance(instance, dict):
        allowed = sorted(schema.get("properties", {}))
        for key in instance:
            if key not in allowed:
                hint = _suggest(key, allowed, "valid keys", strict=True)
                if hint is None and instance[key] is None:
                    # `{text: Hello, world.}`: the comma ended the text and began a key.
                    hint = "a comma inside { } starts a new key: put quotes around text that contains commas"
                yield Diagnostic(f"unknown key '{key}'" + (f" in {where}" if where else ""),
                                 locs.key(path + (key,)), hint or _suggest(key, allowed, "valid keys"),
                                 code="unknown-key")
        return
    if kind == "required":
        missing = [k for k in value if isinstance(instance, dict) and k not in instance]
        for key in missing:
            yield Diagnostic(f"missing required key '{key}'" + (f" in {where}" if where else ""),
                             locs.key(path) if path else here, code="missing-key")
        return
    if "propertyNames" in error.schema_path and isinstance(instance, str):
        # A key of a mapping of ids (characters, assets...) that is not a valid name.
        problem = _PATTERN_MESSAGES.get(value, "is not a valid name") if kind == "pattern" else \
            f"is longer than {value} characters" if kind == "maxLength" else "is not a valid name"
        yield Diagnostic(f"'{instance}' {problem}", locs.key(path + (instance,)), code="schema")
        return
    if kind in ("anyOf", "oneOf"):
        yield from _any_of(error, locs)
        return
    yield Diagnostic(_message(kind, value, instance, schema, where), here, _hint(kind, value, instance),
                     code="schema")


def _any_of(error: Any, locs: LocIndex) -> Iterable[Diagnostic]:
    # Explain through the one branch whose type fits the value (a string that misses an
    # enum, a point with two numbers); if none or several fit, say what was expected.
    branches: dict[Any, list] = {}
    for sub in error.context:
        branches.setdefault(sub.relative_schema_path[0], []).append(sub)
    fitting = [subs for subs in branches.values()
               if not any(s.validator == "type" and not s.relative_path for s in subs)]
    if len(fitting) == 1:
        for sub in fitting[0]:
            yield from _explain(sub, locs)
        return
    path = tuple(error.absolute_path)
    titles = [b.get("title") for b in error.validator_value if isinstance(b, dict)]
    expected = ", or ".join(t for t in titles if t) or error.schema.get("title", "a valid value")
    hint = None
    enums = [v for b in error.validator_value if isinstance(b, dict) for v in b.get("enum", ())]
    if isinstance(error.instance, str) and enums:
        hint = _suggest(error.instance, [str(v) for v in enums], "choices")
    yield Diagnostic(f"{_name(path) or 'value'}: expected {expected}, found {_show(error.instance)}",
                     locs.value(path), hint, code="schema")


def _message(kind: str, value: Any, instance: Any, schema: dict, where: str) -> str:
    subject = where or "the manifest"
    if kind == "type":
        types = [value] if isinstance(value, str) else list(value)
        expected = " or ".join(_TYPE_NAMES.get(t, t) for t in types)
        return f"{subject}: expected {expected}, found {_show(instance)}"
    if kind == "enum":
        return f"{subject}: {_show(instance)} is not one of: {', '.join(map(str, value))}"
    if kind == "const":
        if where == "version":
            return f"unsupported manifest version {_show(instance)}; this storybuild reads version {value}"
        return f"{subject} must be {value!r}"
    if kind == "minimum":
        return f"{subject} must be at least {value}, found {_show(instance)}"
    if kind == "maximum":
        return f"{subject} must be at most {value}, found {_show(instance)}"
    if kind == "exclusiveMinimum":
        return f"{subject} must be greater than {value}, found {_show(instance)}"
    if kind == "multipleOf":
        return f"{subject} must be even, found {_show(instance)}" if value == 2 else \
            f"{subject} must be a multiple of {value}, found {_show(instance)}"
    if kind == "minItems":
        if value == schema.get("maxItems"):
            return f"{subject}: expected {value} items, found {len(instance)}"
        return f"{subject} needs at least {value} item{'s' if value != 1 else ''}"
    if kind == "maxItems":
        if value == schema.get("minItems"):
            return f"{subject}: expected {value} items, found {len(instance)}"
        return f"{subject} has more than {value} items"
    if kind == "minLength":
        return f"{subject} must not be empty" if value == 1 else f"{subject} is shorter than {value} characters"
    if kind == "maxLength":
        return f"{subject} is longer than {value} characters"
    if kind == "uniqueItems":
        return f"{subject} has duplicate items"
    if kind == "pattern":
        return f"{subject}: {_show(instance)} {_PATTERN_MESSAGES.get(value, f'does not match {value}')}"
    return f"{subject}: {_show(instance)} is not valid here ({kind})"


def _hint(kind: str, value: Any, instance: Any) -> str | None:
    if kind == "enum" and isinstance(instance, str):
        return _suggest(instance, [str(v) for v in value], "choices")
    if kind == "type" and value in ("array", ["array"]) and isinstance(instance, str):
        return "write a list: [a, b] or one '- item' per line"
    return None


def _suggest(word: str, options: list[str], what: str, strict: bool = False) -> str | None:
    """"did you mean 'x'?" for a close match; else (unless `strict`) the list of options."""
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    if close:
        return f"did you mean '{close[0]}'?"
    if strict or not options:
        return None
    return f"{what}: {', '.join(options)}"


def _name(path: Path) -> str:
    return dotted(path)


def _show(value: Any) -> str:
    if isinstance(value, str):
        return repr(value) if len(value) <= 40 else repr(value[:37] + "...")
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "nothing"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return str(value)
