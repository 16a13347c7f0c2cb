"""Diagnostics as people and tools read them.

Text, compiler style:

    storybuild.yaml:42:7: error: unknown character 'marra'
       42 |       - {character: marra, text: Hello}
          |                     ^
      hint: did you mean 'mara'?

and JSON (`--format json`) for editors and CI. Source lines are read once per file.
"""

from __future__ import annotations

import json
from typing import Iterable

from storybuild.errors import Diagnostic, Severity


_VISIBLE = {**{code: "?" for code in range(32)}, 9: " ", 127: "?"}


class SourceCache:
    """Lines of source files, read on first use; a missing or unreadable file has none."""

    def __init__(self) -> None:
        self._files: dict[str, list[str]] = {}

    def line(self, file: str, number: int) -> str | None:
        """Line `number` (1-based) of `file`, without its newline, or None."""
        lines = self._files.get(file)
        if lines is None:
            try:
                with open(file, "rb") as fh:
                    lines = fh.read().decode("utf-8", errors="replace").splitlines()
            except OSError:
                lines = []
            self._files[file] = lines
        if 1 <= number <= len(lines):
            return lines[number - 1]
        return None


def format_diagnostic(diag: Diagnostic, sources: SourceCache | None = None) -> str:
    """One diagnostic: the `file:line:col: severity: message` line, source and caret, hint."""
    sources = sources or SourceCache()
    where = f"{diag.loc}: " if diag.loc is not None else ""
    out = [f"{where}{diag.severity.value}: {diag.message}"]
    loc = diag.loc
    text = sources.line(loc.file, loc.line) if loc is not None and loc.line > 0 else None
    if text is not None:
        # Tabs would shift the caret and control characters garble terminals: each shows
        # as one character, so columns still line up.
        shown = text.translate(_VISIBLE).rstrip()
        if len(shown) > 200:
            shown = shown[:200] + " …"
        gutter = f"{loc.line:>5} | "
        out.append(gutter + shown)
        if loc.col > 0:
            out.append(" " * (len(gutter) - 2) + "| " + " " * (loc.col - 1) + "^")
    if diag.hint:
        out.append(f"  hint: {diag.hint}")
    return "\n".join(out) + "\n"


def format_diagnostics(diags: Iterable[Diagnostic]) -> str:
    """Every diagnostic, in the order given, as text (sharing one source cache)."""
    sources = SourceCache()
    return "".join(format_diagnostic(d, sources) for d in diags)


def summary(diags: Iterable[Diagnostic]) -> str:
    """'2 errors, 1 warning' (or 'no problems')."""
    diags = list(diags)
    errors = sum(d.severity is Severity.ERROR for d in diags)
    warnings = len(diags) - errors
    parts = [f"{errors} error{'s' if errors != 1 else ''}"] if errors else []
    if warnings:
        parts.append(f"{warnings} warning{'s' if warnings != 1 else ''}")
    return ", ".join(parts) or "no problems"


def diagnostics_json(diags: Iterable[Diagnostic]) -> str:
    """The diagnostics as one JSON document: {valid, errors, warnings, diagnostics: [...]}."""
    diags = list(diags)
    errors = sum(d.severity is Severity.ERROR for d in diags)
    return json.dumps({"valid": errors == 0, "errors": errors, "warnings": len(diags) - errors,
                       "diagnostics": [d.to_json() for d in diags]}, indent=2, ensure_ascii=False) + "\n"
