"""Safe YAML loading that remembers where every node was written.

A manifest may come from someone else's repository, so this loader is deliberately
strict: it reads at most MAX_BYTES of UTF-8 text and refuses binary content, tabs in
indentation, duplicate keys, explicit tags other than the YAML core ones (`!!python/...`),
merge keys, more than one document, nesting deeper than MAX_DEPTH and alias expansion
beyond MAX_ALIAS_NODES (the "billion laughs" attack), an empty file and a root that is not
a mapping. Every problem becomes a Diagnostic with a file:line:col.

Scalars are resolved with the YAML 1.2 core schema, the one editors use: `no`, `on` and
`off` stay text (the Norwegian voice is called `no`), only true/false are booleans.
Mapping keys are always text, exactly as written.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from storybuild.errors import Diagnostic, ManifestError, SourceLoc
from storybuild.manifest.locations import LocIndex
from storybuild.manifest.yamlevents import MAX_ALIAS_NODES, MAX_DEPTH, Builder

__all__ = ["MAX_ALIAS_NODES", "MAX_BYTES", "MAX_DEPTH", "YamlDoc", "load_yaml", "loads_yaml"]

MAX_BYTES = 8 * 1024 * 1024


@dataclass
class YamlDoc:
    """A parsed YAML file: plain data (dict/list/str/int/float/bool/None) plus locations."""

    file: str  # as shown in diagnostics
    data: dict
    locs: LocIndex


def load_yaml(path: str, display: str | None = None) -> YamlDoc:
    """Read and parse the YAML file at `path`; `display` is the name used in diagnostics.

    Raises ManifestError with every problem found.
    """
    display = display or path
    try:
        size = os.path.getsize(path)
        if size > MAX_BYTES:
            raise _fail(f"file is too large ({size / 1048576:.1f} MB); manifests are limited to "
                        f"{MAX_BYTES // 1048576} MB", SourceLoc(display), "split the film with `include:`",
                        "too-large")
        with open(path, "rb") as fh:
            raw = fh.read(MAX_BYTES + 1)
    except OSError as exc:
        raise _fail(f"cannot read file: {exc.strerror or exc}", SourceLoc(display), code="unreadable") from None
    return loads_yaml(raw, display)


def loads_yaml(raw: bytes | str, display: str = "<string>") -> YamlDoc:
    """Parse YAML text (bytes are checked for size, binary content and UTF-8)."""
    text = _decode(raw, display) if isinstance(raw, bytes) else raw
    diags: list[Diagnostic] = []
    if "\t" in text:
        _check_tabs(text, display, diags)
    builder = Builder(text, display, diags)
    data = builder.run()
    if diags:
        raise ManifestError(diags)
    return YamlDoc(display, data, builder.build_locs())


def _fail(message: str, loc: SourceLoc, hint: str | None = None, code: str = "yaml") -> ManifestError:
    return ManifestError([Diagnostic(message, loc, hint, code=code)])


def _decode(raw: bytes, display: str) -> str:
    if len(raw) > MAX_BYTES:
        raise _fail(f"file is too large (over {MAX_BYTES // 1048576} MB)", SourceLoc(display),
                    "split the film with `include:`", "too-large")
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise _fail("file is UTF-16; manifests must be UTF-8", SourceLoc(display, 1, 1),
                    "save the file as UTF-8", "encoding")
    nul = raw.find(b"\x00")
    if nul >= 0:
        line, col = _byte_position(raw, nul)
        raise _fail("binary content (a NUL byte): this is not a YAML text file", SourceLoc(display, line, col),
                    code="binary")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line, col = _byte_position(raw, exc.start)
        raise _fail(f"not valid UTF-8: byte 0x{raw[exc.start]:02x} cannot start a character",
                    SourceLoc(display, line, col), "save the file as UTF-8", "encoding") from None
    return text[1:] if text.startswith("\ufeff") else text


def _byte_position(raw: bytes, offset: int) -> tuple[int, int]:
    line_start = raw.rfind(b"\n", 0, offset) + 1
    col = len(raw[line_start:offset].decode("utf-8", errors="replace")) + 1
    return raw.count(b"\n", 0, offset) + 1, col


def _check_tabs(text: str, display: str, diags: list[Diagnostic]) -> None:
    # YAML forbids tabs in indentation, and libyaml's own message for them ("found character
    # that cannot start any token") does not say so; we report the first line and a count.
    bad: list[tuple[int, int]] = []
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.lstrip(" \t")
        indent = line[: len(line) - len(stripped)]
        if "\t" in indent and stripped and not stripped.startswith("#"):
            bad.append((number, indent.index("\t") + 1))
    if bad:
        more = f" (and {len(bad) - 1} more lines)" if len(bad) > 1 else ""
        diags.append(Diagnostic(f"tab character in indentation{more}", SourceLoc(display, *bad[0]),
                                "YAML indents with spaces; replace tabs with spaces", code="tab"))


