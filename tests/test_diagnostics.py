"""Diagnostics as text (file:line:col, source line, caret, hint) and as JSON."""

from __future__ import annotations

import json
from pathlib import Path

from storybuild.cli.diagnostics import SourceCache, diagnostics_json, format_diagnostic, format_diagnostics, summary
from storybuild.errors import Diagnostic, Severity, SourceLoc


def test_error_with_source_line_caret_and_hint(tmp_path: Path) -> None:
    film = tmp_path / "film.yaml"
    film.write_text("version: 1\ndialogue:\n  - {character: marra, text: Hi}\n")
    diag = Diagnostic("unknown character 'marra'", SourceLoc(str(film), 3, 17), "did you mean 'mara'?")
    assert format_diagnostic(diag) == (
        f"{film}:3:17: error: unknown character 'marra'\n"
        "    3 |   - {character: marra, text: Hi}\n"
        "      |                 ^\n"
        "  hint: did you mean 'mara'?\n")


def test_warning_without_hint(tmp_path: Path) -> None:
    film = tmp_path / "f.yaml"
    film.write_text("a: 1\n")
    text = format_diagnostic(Diagnostic("odd", SourceLoc(str(film), 1, 4), severity=Severity.WARNING))
    assert text == f"{film}:1:4: warning: odd\n    1 | a: 1\n      |    ^\n"


def test_no_location_or_unreadable_file() -> None:
    assert format_diagnostic(Diagnostic("no manifest")) == "error: no manifest\n"
    text = format_diagnostic(Diagnostic("gone", SourceLoc("/nonexistent/f.yaml", 2, 1), "look elsewhere"))
    assert text == "/nonexistent/f.yaml:2:1: error: gone\n  hint: look elsewhere\n"


def test_file_level_location_has_no_caret(tmp_path: Path) -> None:
    film = tmp_path / "f.yaml"
    film.write_text("a: 1\n")
    assert format_diagnostic(Diagnostic("too large", SourceLoc(str(film)))) == f"{film}: error: too large\n"


def test_tabs_and_control_characters_keep_the_caret_aligned(tmp_path: Path) -> None:
    film = tmp_path / "f.yaml"
    film.write_bytes(b"a:\tb\x01c\n")
    lines = format_diagnostic(Diagnostic("x", SourceLoc(str(film), 1, 6))).splitlines()
    assert lines[1] == "    1 | a: b?c"
    assert lines[2].index("^") - lines[2].index("|") == lines[1].index("c") - lines[1].index("|")


def test_source_lines_are_read_once_per_file(tmp_path: Path, monkeypatch) -> None:
    film = tmp_path / "f.yaml"
    film.write_text("one\ntwo\n")
    opened = []
    real_open = open
    monkeypatch.setattr("builtins.open", lambda *a, **k: opened.append(a[0]) or real_open(*a, **k))
    cache = SourceCache()
    assert (cache.line(str(film), 2), cache.line(str(film), 1), cache.line(str(film), 3)) == ("two", "one", None)
    assert opened == [str(film)]


def test_many_diagnostics_share_one_cache(tmp_path: Path) -> None:
    film = tmp_path / "f.yaml"
    film.write_text("a: 1\nb: 2\n")
    diags = [Diagnostic("first", SourceLoc(str(film), 1, 1)), Diagnostic("second", SourceLoc(str(film), 2, 1))]
    text = format_diagnostics(diags)
    assert text.count(": error: ") == 2 and "    2 | b: 2" in text


def test_summary() -> None:
    error = Diagnostic("e")
    warning = Diagnostic("w", severity=Severity.WARNING)
    assert summary([]) == "no problems"
    assert summary([error]) == "1 error"
    assert summary([error, error, warning]) == "2 errors, 1 warning"
    assert summary([warning, warning]) == "2 warnings"


def test_json_output() -> None:
    diags = [Diagnostic("unknown character 'marra'", SourceLoc("f.yaml", 3, 17), "did you mean 'mara'?",
                        code="reference"),
             Diagnostic("off screen", SourceLoc("f.yaml", 4, 1), severity=Severity.WARNING, code="off-screen")]
    assert json.loads(diagnostics_json(diags)) == {
        "valid": False, "errors": 1, "warnings": 1,
        "diagnostics": [
            {"severity": "error", "code": "reference", "message": "unknown character 'marra'",
             "file": "f.yaml", "line": 3, "col": 17, "hint": "did you mean 'mara'?"},
            {"severity": "warning", "code": "off-screen", "message": "off screen", "file": "f.yaml", "line": 4,
             "col": 1},
        ]}
