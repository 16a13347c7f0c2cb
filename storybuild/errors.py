"""Errors that reach users: each names where it comes from and carries an exit code.

Exit codes are stable: 0 ok, 1 a build failed, 2 bad input or usage, 70 an internal error
(a bug in storybuild), 130 interrupted.
Only cli.py turns these into output and an exit status.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

EXIT_BUILD_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_INTERNAL = 70  # EX_SOFTWARE: a bug in storybuild, reported without a traceback
EXIT_INTERRUPTED = 130


@dataclass(frozen=True, order=True)
class SourceLoc:
    """A place in a source file: 1-based line and column."""

    file: str
    line: int = 0
    col: int = 0

    def __str__(self) -> str:
        if self.line <= 0:
            return self.file
        return f"{self.file}:{self.line}:{self.col}"


class Severity(str, Enum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True)
class Diagnostic:
    """One problem found in user input, with its location and an optional hint."""

    message: str
    loc: SourceLoc | None = None
    hint: str | None = None
    severity: Severity = Severity.ERROR
    code: str = "invalid"

    def to_json(self) -> dict:
        out = {"severity": self.severity.value, "code": self.code, "message": self.message}
        if self.loc is not None:
            out.update(file=self.loc.file, line=self.loc.line, col=self.loc.col)
        if self.hint:
            out["hint"] = self.hint
        return out


class StorybuildError(Exception):
    """Base of every error a user can act on; never shown as a traceback."""

    exit_code = EXIT_BAD_INPUT

    def __init__(self, message: str, loc: SourceLoc | None = None, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.loc = loc
        self.hint = hint

    @property
    def diagnostics(self) -> list[Diagnostic]:
        return [Diagnostic(self.message, self.loc, self.hint)]


class ManifestError(StorybuildError):
    """The manifest (or something it references) is invalid; carries every problem found."""

    def __init__(self, diagnostics: list[Diagnostic]):
        errors = [d for d in diagnostics if d.severity is Severity.ERROR]
        first = errors[0] if errors else diagnostics[0]
        super().__init__(first.message, first.loc, first.hint)
        self._diagnostics = list(diagnostics)

    @property
    def diagnostics(self) -> list[Diagnostic]:
        return self._diagnostics


class UsageError(StorybuildError):
    """A command was used wrongly (unknown target, bad option)."""


class BackendError(StorybuildError):
    """An action's backend failed permanently: retrying the same input will fail again."""

    exit_code = EXIT_BUILD_FAILED


class TransientError(BackendError):
    """A failure that may pass on retry (connection refused, timeout, HTTP 429/5xx)."""


class Cancelled(StorybuildError):
    """The build was interrupted; partial outputs were discarded."""

    exit_code = EXIT_INTERRUPTED


class LockedError(StorybuildError):
    """Another storybuild process holds the project lock."""

    exit_code = EXIT_BUILD_FAILED


@dataclass
class DiagnosticList:
    """Collects diagnostics while validating, so all problems are reported at once."""

    items: list[Diagnostic] = field(default_factory=list)

    def error(self, message: str, loc: SourceLoc | None = None, hint: str | None = None, code: str = "invalid") -> None:
        self.items.append(Diagnostic(message, loc, hint, Severity.ERROR, code))

    def warning(self, message: str, loc: SourceLoc | None = None, hint: str | None = None, code: str = "warning") -> None:
        self.items.append(Diagnostic(message, loc, hint, Severity.WARNING, code))

    @property
    def has_errors(self) -> bool:
        return any(d.severity is Severity.ERROR for d in self.items)

    def raise_if_errors(self) -> None:
        if self.has_errors:
            raise ManifestError(self.items)
