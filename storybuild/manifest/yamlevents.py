"""libyaml events → plain data and a LocIndex, with the structural safety checks.

Used by yamlload.py. Values are built straight from the event stream rather than from
composed nodes: it is faster, and it never recurses, so a deeply nested document cannot
crash the interpreter (libyaml's composer segfaults on ~100k nested brackets). Scalars are
resolved by the YAML 1.2 core schema.

The limits (MAX_DEPTH, MAX_ALIAS_NODES) are ours, and so are their diagnostics, whatever
PyYAML is installed and whether its C loader is: see `Builder._own_limit`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import yaml

from storybuild.errors import Diagnostic, SourceLoc
from storybuild.manifest.locations import LocIndex, Path, Pos

MAX_DEPTH = 64
MAX_ALIAS_NODES = 100_000  # nodes that alias expansion may add to one file, in total
LIMIT_CODES = frozenset({"depth", "alias-bomb"})  # the diagnostics of our own limits

# libyaml's loader when PyYAML was built with it (about 10x faster), the pure-Python one otherwise.
FAST_LOADER: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
PURE_LOADER: type = yaml.SafeLoader

_CORE = "tag:yaml.org,2002:"
_NULL = re.compile(r"^(?:~|null|Null|NULL|)$")
_BOOL = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}
_INT = re.compile(r"^[-+]?[0-9]+$")
_OCT = re.compile(r"^0o[0-7]+$")
_HEX = re.compile(r"^0x[0-9a-fA-F]+$")
_FLOAT = re.compile(r"^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?$")
_SPECIAL_FLOAT = re.compile(r"^(?:[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$")
_UNSET = object()


class _Fatal(Exception):
    """Stops building: the rest of the stream cannot be trusted."""


@dataclass
class _Frame:
    container: Any  # dict or list, or None for a subtree being discarded
    path: Path | None  # None: a discarded subtree (under an invalid key)
    anchor: str | None
    key: Any = _UNSET  # for mappings: the pending key (str, or None to discard its value)


@dataclass
class _Anchor:
    value: Any
    path: Path | None
    start: int  # index range in Builder.entries of this node's locations
    end: int = -1  # -1 while the node is still being built


class Builder:
    """Turns libyaml events into plain data and a LocIndex, with every safety check."""

    def __init__(self, text: str, display: str, diags: list[Diagnostic]):
        self.text = text
        self.file = display
        self.diags = diags
        self.entries: list[tuple[int, Path, Pos]] = []  # (kind 0 value / 1 key / 2 text, path, pos)
        self.anchors: dict[str, _Anchor] = {}
        self.stack: list[_Frame] = []
        self.alias_nodes = 0
        self.key_lines: dict[Path, int] = {}
        self.root: Any = _UNSET
        self._lines: list[str] | None = None

    # ----------------------------------------------------------------- driving

    def run(self, loader_class: type = FAST_LOADER) -> dict:
        """Build the document's data with `loader_class`'s parser; problems go to `diags`."""
        documents = 0
        scalar_event, stack = yaml.ScalarEvent, self.stack
        loader = None
        try:
            loader = loader_class(self.text)  # the pure-Python reader checks characters here
            while loader.check_event():  # twice as fast as yaml.parse's generator
                event = loader.get_event()
                kind = type(event)
                if kind is scalar_event:
                    if not (stack and event.tag is None and event.anchor is None and self._fast_scalar(event)):
                        self._scalar(event)
                elif kind is yaml.MappingStartEvent or kind is yaml.SequenceStartEvent:
                    self._start(event, {} if kind is yaml.MappingStartEvent else [])
                elif kind is yaml.MappingEndEvent or kind is yaml.SequenceEndEvent:
                    self._end()
                elif kind is yaml.AliasEvent:
                    self._alias(event)
                elif kind is yaml.DocumentStartEvent:
                    documents += 1
                    if documents > 1:
                        raise _Fatal(self._diag("a manifest is a single YAML document, found a second one",
                                                event.start_mark, "remove the extra `---` line", "yaml"))
        except _Fatal as fatal:
            self.diags.append(fatal.args[0])
            return {}
        except yaml.MarkedYAMLError as exc:
            self.diags.append(self._own_limit(loader_class, exc.problem_mark or exc.context_mark) or self._syntax(exc))
            return {}
        except yaml.reader.ReaderError as exc:  # a control character; carries an offset, not a mark
            self.diags.append(self._reader(exc))
            return {}
        finally:
            if loader is not None:
                loader.dispose()
        return self._finish()

    def _own_limit(self, loader_class: type, mark: Any) -> Diagnostic | None:
        """Our limit's diagnostic when the text breaks one of ours before the parser's error.

        libyaml scans far ahead of the events it hands out (a whole run of `[` is one
        possible simple key), so its own limits fire before our MAX_DEPTH is ever seen:
        PyYAML 6.0.4's C scanner refuses flow nesting past 1000 levels while scanning. The
        pure-Python parser scans at most a line ahead and has no limit of its own, so a
        second pass with it tells whether one of ours comes first, and the user gets the
        same `file:line:col` with every PyYAML >= 6. It runs only on the error path, and
        only over the text up to the parser's error, so a bad line at the end of a large
        file costs no second full parse.
        """
        if loader_class is PURE_LOADER:
            return None
        end = len(self.text)
        if mark is not None:
            end = self.text.find("\n", _line_start(self.text, mark.line + 1))  # one line past the error
        probe = Builder(self.text if end < 0 else self.text[:end], self.file, [])
        probe.run(PURE_LOADER)
        return next((d for d in probe.diags if d.code in LIMIT_CODES), None)

    def _finish(self) -> dict:
        if self.root is _UNSET or self.root is None:
            self.diags.append(Diagnostic("the manifest is empty", SourceLoc(self.file, 1, 1),
                                         "start with `version: 1` and a `project:` section", code="empty"))
            return {}
        if not isinstance(self.root, dict):
            found = "a list" if isinstance(self.root, list) else f"the value {self.root!r}"
            self.diags.append(Diagnostic(f"the manifest must be a mapping of sections (version, project, ...), "
                                         f"found {found}", self.build_locs().value(()), code="root"))
            return {}
        return self.root

    def build_locs(self) -> LocIndex:
        """The LocIndex of everything built so far (assembled on each call)."""
        tables: tuple[dict, dict, dict] = ({}, {}, {})
        for kind, path, pos in self.entries:
            tables[kind][path] = pos
        return LocIndex(*tables)

    # ----------------------------------------------------------------- events

    def _fast_scalar(self, event: yaml.ScalarEvent) -> bool:
        """The common case, inlined: a plain untagged key or value in a kept container.

        Returns False to leave anything unusual (duplicates, merge keys, discarded
        subtrees, text that may hold Jinja) to the general path.
        """
        frame = self.stack[-1]
        container, value = frame.container, event.value
        if type(container) is dict:
            key = frame.key
            if key is _UNSET:  # this scalar is a key
                if value in container or value == "<<":
                    return False
                frame.key = value
                path = frame.path + (value,)
                mark = event.start_mark
                self.key_lines[path] = mark.line + 1
                self.entries.append((1, path, (self.file, mark.line + 1, mark.column + 1)))
                return True
            if key is None or "{" in value:
                return False
            frame.key = _UNSET
            path = frame.path + (key,)
        elif type(container) is list and "{" not in value:
            path = frame.path + (len(container),)
        else:
            return False
        resolved = _resolve_plain(value, event, self) if event.implicit[0] else value
        if type(container) is dict:
            container[key] = resolved
        else:
            container.append(resolved)
        mark = event.start_mark
        self.entries.append((0, path, (self.file, mark.line + 1, mark.column + 1)))
        return True

    def _scalar(self, event: yaml.ScalarEvent) -> None:
        frame = self.stack[-1] if self.stack else None
        if frame is not None and isinstance(frame.container, dict) and frame.key is _UNSET:
            self._key(frame, event)
            return
        value = self._resolve(event)
        start = len(self.entries)
        path = self._place(value, event.start_mark)
        if path is not None and isinstance(value, str) and "{" in value:
            self.entries.append((2, path, self._text_pos(event)))
        if event.anchor:
            self.anchors[event.anchor] = _Anchor(value, path, start, len(self.entries))

    def _start(self, event: Any, container: Any) -> None:
        self._check_tag(event.tag, "tag:yaml.org,2002:map" if isinstance(container, dict) else
                        "tag:yaml.org,2002:seq", event.start_mark)
        frame = self.stack[-1] if self.stack else None
        if frame is not None and isinstance(frame.container, dict) and frame.key is _UNSET:
            self.diags.append(self._diag("mapping keys must be plain text, not a list or mapping",
                                         event.start_mark, code="key"))
            frame.key = None
            path = None
        else:
            path = self._place(container, event.start_mark)
        if len(self.stack) >= MAX_DEPTH:
            raise _Fatal(self._diag(f"nesting deeper than {MAX_DEPTH} levels", event.start_mark, code="depth"))
        anchor = event.anchor
        if anchor:
            self.anchors[anchor] = _Anchor(container, path, len(self.entries) - (path is not None))
        self.stack.append(_Frame(container if path is not None else None, path, anchor))

    def _end(self) -> None:
        frame = self.stack.pop()
        if frame.anchor and frame.anchor in self.anchors and self.anchors[frame.anchor].value is frame.container:
            self.anchors[frame.anchor].end = len(self.entries)

    def _alias(self, event: yaml.AliasEvent) -> None:
        anchor = self.anchors.get(event.anchor)
        if anchor is None:  # libyaml reports undefined aliases itself; keep a guard for safety
            raise _Fatal(self._diag(f"unknown alias *{event.anchor}", event.start_mark, code="alias"))
        if anchor.end < 0:
            raise _Fatal(self._diag(f"alias *{event.anchor} refers to a value that contains it",
                                    event.start_mark, code="alias"))
        frame = self.stack[-1] if self.stack else None
        if frame is not None and isinstance(frame.container, dict) and frame.key is _UNSET:
            self.diags.append(self._diag("mapping keys must be plain text, not an alias", event.start_mark, code="key"))
            frame.key = None
            return
        size = anchor.end - anchor.start
        self.alias_nodes += size
        if self.alias_nodes > MAX_ALIAS_NODES:
            raise _Fatal(self._diag(f"aliases expand to more than {MAX_ALIAS_NODES} nodes", event.start_mark,
                                    "this looks like an alias bomb; write the values out", "alias-bomb"))
        path = self._place(_copy(anchor.value), event.start_mark)
        if path is None or anchor.path is None:
            return
        # Locations inside the copy point at the anchored original (where to fix it); the
        # copy's own root points at the alias.
        cut = len(anchor.path)
        for kind, old, pos in self.entries[anchor.start + 1: anchor.end]:
            self.entries.append((kind, path + old[cut:], pos))

    # ----------------------------------------------------------------- placing values

    def _key(self, frame: _Frame, event: yaml.ScalarEvent) -> None:
        self._check_tag(event.tag, _CORE + "str", event.start_mark)
        key = event.value
        if key == "<<" and event.implicit[0]:
            self.diags.append(self._diag("merge keys (<<) are not supported", event.start_mark,
                                         "repeat the keys, or put an anchor on the whole value", "merge-key"))
            frame.key = None
            return
        if frame.path is not None and key in frame.container:
            first = self.key_lines.get(frame.path + (key,))
            where = f" (first at line {first})" if first else ""
            self.diags.append(self._diag(f"duplicate key '{key}'{where}", event.start_mark,
                                         "each key may appear once in a mapping", "duplicate-key"))
            frame.key = None
            return
        frame.key = key
        if frame.path is not None:
            self.key_lines[frame.path + (key,)] = event.start_mark.line + 1
            self.entries.append((1, frame.path + (key,), self._pos(event.start_mark)))

    def _place(self, value: Any, mark: Any) -> Path | None:
        """Put `value` into the enclosing container; returns its path (None if discarded)."""
        if not self.stack:
            self.root = value
            path: Path | None = ()
        else:
            frame = self.stack[-1]
            if frame.path is None:
                return None
            container = frame.container
            if isinstance(container, list):
                path = frame.path + (len(container),)
                container.append(value)
            else:
                key, frame.key = frame.key, _UNSET
                if key is None:
                    return None
                path = frame.path + (key,)
                container[key] = value
        self.entries.append((0, path, self._pos(mark)))
        return path

    # ----------------------------------------------------------------- scalars and tags

    def _resolve(self, event: yaml.ScalarEvent) -> Any:
        tag, value = event.tag, event.value
        if tag is None or tag == "!":
            return _resolve_plain(value, event, self) if tag is None and event.implicit[0] else value
        if not self._check_tag(tag, None, event.start_mark) or tag == _CORE + "str":
            return value
        resolved = _resolve_plain(value, event, self)
        wanted = {"int": int, "float": (int, float), "bool": bool, "null": type(None)}.get(tag[len(_CORE):])
        if wanted is None or not isinstance(resolved, wanted) or (wanted is int and isinstance(resolved, bool)):
            self.diags.append(self._diag(f"{value!r} is not a valid {tag[len(_CORE):]}", event.start_mark, code="tag"))
            return value
        return float(resolved) if tag == _CORE + "float" else resolved

    def _check_tag(self, tag: str | None, allowed: str | None, mark: Any) -> bool:
        """Whether `tag` is acceptable here; reports it when not."""
        if tag is None or tag == "!" or tag == allowed:
            return True
        if allowed is None and tag in (_CORE + "str", _CORE + "int", _CORE + "float", _CORE + "bool", _CORE + "null"):
            return True
        shown = "!!" + tag[len(_CORE):] if tag.startswith(_CORE) else tag
        self.diags.append(self._diag(f"the tag {shown} is not allowed", mark,
                                     "manifests are plain data; remove the tag", "tag"))
        return False

    # ----------------------------------------------------------------- positions

    def _pos(self, mark: Any) -> Pos:
        return (self.file, mark.line + 1, mark.column + 1)

    def _text_pos(self, event: yaml.ScalarEvent) -> Pos:
        mark = event.start_mark
        if event.style in ("|", ">"):
            # A block scalar's content starts on the line after its `|` header.
            if self._lines is None:
                self._lines = self.text.splitlines()
            line = mark.line + 1
            content = self._lines[line] if line < len(self._lines) else ""
            return (self.file, line + 1, len(content) - len(content.lstrip(" ")) + 1)
        if event.style in ("'", '"'):
            return (self.file, mark.line + 1, mark.column + 2)
        return (self.file, mark.line + 1, mark.column + 1)

    def _diag(self, message: str, mark: Any, hint: str | None = None, code: str = "yaml") -> Diagnostic:
        return Diagnostic(message, SourceLoc(*self._pos(mark)), hint, code=code)

    def _reader(self, exc: yaml.reader.ReaderError) -> Diagnostic:
        offset = min(max(exc.position, 0), len(self.text))
        line = self.text.count("\n", 0, offset) + 1
        col = offset - (self.text.rfind("\n", 0, offset) + 1) + 1
        char = exc.character if isinstance(exc.character, int) else ord(str(exc.character)[:1] or "?")
        return Diagnostic(f"control character U+{char:04X} is not allowed in YAML", SourceLoc(self.file, line, col),
                          "remove it, or write it as an escape inside double quotes", code="yaml")

    def _syntax(self, exc: yaml.MarkedYAMLError) -> Diagnostic:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or "syntax error"
        # libyaml: "found character that cannot start any token"; PyYAML's own parser names
        # the character ("found character '\\t' that cannot ..."): look at the text instead.
        if "cannot start any token" in problem and mark is not None:
            char = self.text[mark.index: mark.index + 1] if mark.index < len(self.text) else ""
            if char == "\t":
                if any(d.code == "tab" for d in self.diags):
                    return self.diags.pop()  # already reported by the indentation scan
                return self._diag("tab character where YAML expects a value", mark,
                                  "YAML indents with spaces; replace tabs with spaces", "tab")
            if char in "@`":
                problem = f"'{char}' cannot start a plain value"
        message = f"invalid YAML: {problem}"
        if exc.context and exc.context_mark is not None and exc.context_mark is not mark:
            message += f" ({exc.context} at line {exc.context_mark.line + 1})"
        hint = "quote the text" if "cannot start" in problem else None
        if mark is None:
            return Diagnostic(message, SourceLoc(self.file), hint, code="yaml")
        return self._diag(message, mark, hint)


def _line_start(text: str, line: int) -> int:
    """The offset where 0-based `line` starts (len(text) past the last line)."""
    offset = 0
    for _ in range(line):
        offset = text.find("\n", offset) + 1
        if offset == 0:
            return len(text)
    return offset


def _resolve_plain(value: str, event: yaml.ScalarEvent, builder: Builder) -> Any:
    """A plain scalar by the YAML 1.2 core schema."""
    if not value:
        return None  # `a:` with nothing after it
    if value[0] not in "-+.0123456789~nNtTfF":
        return value
    if _NULL.match(value):
        return None
    if value in _BOOL:
        return _BOOL[value]
    if _INT.match(value):
        return int(value)
    if _OCT.match(value):
        return int(value[2:], 8)
    if _HEX.match(value):
        return int(value[2:], 16)
    if _FLOAT.match(value):
        number = float(value)
        if math.isfinite(number):
            return number
    if _SPECIAL_FLOAT.match(value) or _FLOAT.match(value):
        builder.diags.append(builder._diag(f"{value} is not a finite number", event.start_mark,
                                           "use an ordinary number", "number"))
        return value
    return value


def _copy(value: Any) -> Any:
    # Aliased values are copied so the document stays a tree that later stages may edit.
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value
