"""A compiled yes/no JSON Schema check for the fast path of `validate`.

jsonschema explains failures well but costs ~7 µs per node, too slow for a film with a
thousand shots. Valid manifests are the common case, so we compile the schema once into
nested closures that only answer "valid?" (about ten times faster) and run jsonschema only
when the answer is no, to produce the diagnostics. The compiler knows exactly the keywords
our schema uses and refuses any other, so a schema edit cannot be silently ignored here;
tests cross-check both validators on fuzzed documents.
"""

from __future__ import annotations

import re
from typing import Any, Callable

Check = Callable[[Any], bool]

# Keywords that never affect validity.
_ANNOTATIONS = {"$schema", "$id", "$defs", "$comment", "title", "description", "examples", "default"}


class UnsupportedSchema(ValueError):
    """The schema uses a keyword this compiler does not implement."""


def compile_schema(schema: dict) -> Check:
    """Compile a JSON Schema (2020-12 subset, local `$ref`s) into a predicate."""
    return _Compiler(schema).compile(schema)


def _is_integer(x: Any) -> bool:
    # As jsonschema: bools are not integers, integral floats are.
    t = type(x)
    return t is int or (t is float and x.is_integer())


def _is_number(x: Any) -> bool:
    t = type(x)
    return t is int or t is float


_TYPES: dict[str, Check] = {
    "object": lambda x: type(x) is dict,
    "array": lambda x: type(x) is list,
    "string": lambda x: type(x) is str,
    "integer": _is_integer,
    "number": _is_number,
    "boolean": lambda x: type(x) is bool,
    "null": lambda x: x is None,
}


def json_equal(a: Any, b: Any) -> bool:
    """Equality as JSON Schema defines it: booleans differ from numbers, 1 == 1.0."""
    if type(a) is bool or type(b) is bool:
        return type(a) is type(b) and a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b))
    if _is_number(a) and _is_number(b):
        return a == b
    return type(a) is type(b) and a == b


def _unique(items: list) -> bool:
    if all(type(x) is str for x in items):
        return len(set(items)) == len(items)
    return not any(json_equal(items[i], items[j]) for i in range(len(items)) for j in range(i + 1, len(items)))


class _Compiler:
    def __init__(self, root: dict):
        self.root = root
        self.refs: dict[str, Check] = {}

    def compile(self, schema: Any) -> Check:
        if schema is True:
            return lambda x: True
        if schema is False:
            return lambda x: False
        unknown = set(schema) - _ANNOTATIONS - _KEYWORDS
        if unknown:
            raise UnsupportedSchema(f"unsupported JSON Schema keywords: {sorted(unknown)}")
        checks = [check for keyword in _ORDER if keyword in schema
                  for check in [getattr(self, "_" + keyword.lstrip("$"))(schema[keyword], schema)] if check]
        if not checks:
            return lambda x: True
        if len(checks) == 1:
            return checks[0]
        checks_t = tuple(checks)

        def every(x: Any) -> bool:
            for check in checks_t:
                if not check(x):
                    return False
            return True

        return every

    # --------------------------------------------------------------- references

    def _ref(self, ref: str, schema: dict) -> Check:
        if not ref.startswith("#/"):
            raise UnsupportedSchema(f"only local $refs are supported, not {ref!r}")
        if ref not in self.refs:
            # Compile lazily through a cell, so recursive references would also work.
            cell: list[Check] = []
            self.refs[ref] = lambda x: cell[0](x)
            target: Any = self.root
            for part in ref[2:].split("/"):
                target = target[part]
            cell.append(self.compile(target))
        return self.refs[ref]

    # --------------------------------------------------------------- any type

    def _type(self, types: Any, schema: dict) -> Check:
        if isinstance(types, str):
            return _TYPES[types]
        preds = [_TYPES[t] for t in types]
        return lambda x: any(p(x) for p in preds)

    def _enum(self, values: list, schema: dict) -> Check:
        if all(type(v) is str for v in values):
            allowed = frozenset(values)
            return lambda x: type(x) is str and x in allowed
        return lambda x: any(json_equal(x, v) for v in values)

    def _const(self, value: Any, schema: dict) -> Check:
        return lambda x: json_equal(x, value)

    def _anyOf(self, subs: list, schema: dict) -> Check:
        checks = [self.compile(s) for s in subs]
        return lambda x: any(c(x) for c in checks)

    def _allOf(self, subs: list, schema: dict) -> Check:
        checks = [self.compile(s) for s in subs]
        return lambda x: all(c(x) for c in checks)

    def _if(self, sub: Any, schema: dict) -> Check | None:
        if "then" not in schema:
            return None
        cond, then = self.compile(sub), self.compile(schema["then"])
        return lambda x: not cond(x) or then(x)

    def _then(self, sub: Any, schema: dict) -> None:
        return None  # handled with `if`

    # --------------------------------------------------------------- numbers

    def _minimum(self, bound: float, schema: dict) -> Check:
        return lambda x: not _is_number(x) or x >= bound

    def _maximum(self, bound: float, schema: dict) -> Check:
        return lambda x: not _is_number(x) or x <= bound

    def _exclusiveMinimum(self, bound: float, schema: dict) -> Check:
        return lambda x: not _is_number(x) or x > bound

    def _multipleOf(self, step: float, schema: dict) -> Check:
        if isinstance(step, float):
            return lambda x: not _is_number(x) or (x / step) == int(x / step)
        return lambda x: not _is_number(x) or x % step == 0

    # --------------------------------------------------------------- strings

    def _minLength(self, n: int, schema: dict) -> Check:
        return lambda x: type(x) is not str or len(x) >= n

    def _maxLength(self, n: int, schema: dict) -> Check:
        return lambda x: type(x) is not str or len(x) <= n

    def _pattern(self, pattern: str, schema: dict) -> Check:
        search = re.compile(pattern).search
        return lambda x: type(x) is not str or search(x) is not None

    # --------------------------------------------------------------- arrays

    def _minItems(self, n: int, schema: dict) -> Check:
        return lambda x: type(x) is not list or len(x) >= n

    def _maxItems(self, n: int, schema: dict) -> Check:
        return lambda x: type(x) is not list or len(x) <= n

    def _uniqueItems(self, flag: bool, schema: dict) -> Check | None:
        return (lambda x: type(x) is not list or _unique(x)) if flag else None

    def _prefixItems(self, subs: list, schema: dict) -> Check:
        checks = [self.compile(s) for s in subs]
        return lambda x: type(x) is not list or all(c(v) for c, v in zip(checks, x))

    def _items(self, sub: Any, schema: dict) -> Check:
        check, skip = self.compile(sub), len(schema.get("prefixItems", ()))
        if skip:
            return lambda x: type(x) is not list or all(check(v) for v in x[skip:])
        return lambda x: type(x) is not list or all(check(v) for v in x)

    # --------------------------------------------------------------- objects

    def _required(self, keys: list, schema: dict) -> Check:
        return lambda x: type(x) is not dict or all(k in x for k in keys)

    def _propertyNames(self, sub: Any, schema: dict) -> Check:
        check = self.compile(sub)
        return lambda x: type(x) is not dict or all(check(k) for k in x)

    def _properties(self, props: dict, schema: dict) -> Check:
        checks = {name: self.compile(sub) for name, sub in props.items()}

        def properties(x: Any) -> bool:
            if type(x) is not dict:
                return True
            for key, value in x.items():
                check = checks.get(key)
                if check is not None and not check(value):
                    return False
            return True

        return properties

    def _additionalProperties(self, sub: Any, schema: dict) -> Check:
        known = frozenset(schema.get("properties", ()))
        if sub is False:
            return lambda x: type(x) is not dict or known.issuperset(x)
        check = self.compile(sub)
        return lambda x: type(x) is not dict or all(check(v) for k, v in x.items() if k not in known)


# Cheap, discriminating checks first: a wrong type fails before its members are walked.
_ORDER = ("$ref", "type", "enum", "const", "required", "additionalProperties", "minimum", "maximum",
          "exclusiveMinimum", "multipleOf", "minLength", "maxLength", "pattern", "minItems", "maxItems",
          "uniqueItems", "propertyNames", "properties", "prefixItems", "items", "anyOf", "allOf", "if", "then")
_KEYWORDS = set(_ORDER)
