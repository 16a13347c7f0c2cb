"""Turn what a user typed (`harbour-01`, `shot/harbour-*`, `film`, `export/web`) into action ids.

A pattern may name an action id exactly, or a shot, scene, export or step by its bare id,
and may use shell globs. Preview builds prefix ids with `preview/`; a pattern matches with
or without that prefix. A pattern that matches nothing is a usage error with suggestions.
"""

from __future__ import annotations

import difflib
from fnmatch import fnmatchcase
from typing import Iterable, Sequence

from storybuild.actionids import NAMESPACES, PREVIEW
from storybuild.errors import UsageError



def _candidates(pattern: str) -> list[str]:
    names = [ns + pattern for ns in NAMESPACES if not (ns and pattern.startswith(ns))]
    return names + [PREVIEW + name for name in names if not name.startswith(PREVIEW)]


def _is_glob(pattern: str) -> bool:
    return any(ch in pattern for ch in "*?[")


def resolve(patterns: Iterable[str], ids: Sequence[str]) -> list[str]:
    """The action ids the patterns select, in the order of `ids`; all of them when none."""
    patterns = [p.strip().rstrip("/") for p in patterns if p.strip()]
    if not patterns:
        return list(ids)
    known = set(ids)
    chosen: set[str] = set()
    unknown = []
    for pattern in patterns:
        found = False
        for candidate in _candidates(pattern):
            if _is_glob(candidate):
                hits = [i for i in ids if fnmatchcase(i, candidate)]
            else:
                hits = [candidate] if candidate in known else []
            if hits:
                chosen.update(hits)
                found = True
                if not _is_glob(pattern):
                    break  # an exact name picks the first namespace that has it
        if not found:
            unknown.append(pattern)
    if unknown:
        raise UsageError(f"unknown target{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)}",
                         hint=_hint(unknown[0], ids))
    return [i for i in ids if i in chosen]


def _hint(pattern: str, ids: Sequence[str]) -> str:
    close = difflib.get_close_matches(pattern, list(ids), n=3, cutoff=0.5)
    if not close:
        short = {i.split("/", 1)[-1]: i for i in ids}
        close = [short[m] for m in difflib.get_close_matches(pattern, list(short), n=3, cutoff=0.5)]
    if close:
        return "did you mean " + " or ".join(repr(c) for c in close) + "?"
    return "`storybuild graph --format json` lists every target"
