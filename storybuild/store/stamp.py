"""The up-to-date stamp: how a no-op build finishes without loading anything.

After a build that completed every action it was asked for, the stamp records the
request (quality and targets) and the stat of every file the result depends on: the
manifest files, the lock, each source file and each placed output. The next build with
the same request stats those files; when all match, there is nothing to do, and it is
done without parsing YAML, planning, importing the model or opening the state DB.

A source whose stat changed is re-hashed; the same bytes still mean nothing to do (a
`touch` costs one hash). Any other difference, or any doubt, sends the build down the
full path, which removes the stamp before it changes anything and writes a new one only
when it finishes cleanly. The stamp is a marshal file: the fastest format Python reads.
This module imports nothing heavy on purpose.
"""

from __future__ import annotations

import marshal
import os
import time
from typing import NamedTuple

STAMP_NAME = "uptodate.marshal"
STAMP_FORMAT = 3

# (project-relative path, mtime_ns, size, inode, digest or "" when only the stat counts)
Entry = tuple


def _path(store_dir: str) -> str:
    return os.path.join(store_dir, STAMP_NAME)


def remove(store_dir: str) -> None:
    """Forget the stamp (before a build or gc changes anything)."""
    try:
        os.unlink(_path(store_dir))
    except FileNotFoundError:
        pass


class Scan(NamedTuple):
    """What a stamp scan found."""

    up_to_date: int | None  # actions up to date, or None when anything changed
    intact: frozenset[str]  # placed outputs whose stat is unchanged
    changed: frozenset[str] | None  # sources whose bytes changed, if nothing else did; else None


def write(store_dir: str, request: tuple, actions: int, entries: list[Entry], fixed: int) -> None:
    """Record that `request` is up to date with `actions` actions over `entries`.

    The first `fixed` entries are what planning read and the lock: when one of those
    changes, the next build cannot reuse the plan incrementally."""
    path = _path(store_dir)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "wb") as f:
        marshal.dump((STAMP_FORMAT, request, actions, fixed, entries), f)
    os.replace(tmp, path)  # no fsync: a lost stamp only costs one full-path build


def check(root: str, store_dir: str, request: tuple) -> int | None:
    """The number of up-to-date actions when nothing changed since the stamp, else None."""
    return scan(root, store_dir, request).up_to_date


def scan(root: str, store_dir: str, request: tuple) -> Scan:
    """Stat every stamped file; re-hash the sources whose stat changed.

    When only sources changed, the build that follows need not look at anything else:
    `changed` names them and `intact` the placed outputs found unchanged.
    """
    nothing = Scan(None, frozenset(), None)
    try:
        with open(_path(store_dir), "rb") as f:
            fmt, stamped, actions, fixed, entries = marshal.load(f)
    except (OSError, EOFError, ValueError, TypeError):
        return nothing
    if fmt != STAMP_FORMAT or stamped != request:
        return nothing
    refreshed = False
    other = False  # something besides a source's bytes changed
    changed: list[str] = []
    intact = []
    stat = os.stat
    join = os.path.join
    for index, (rel, mtime_ns, size, ino, digest) in enumerate(entries):
        try:
            st = stat(join(root, rel))
        except OSError:
            other = True
            continue
        if st.st_mtime_ns == mtime_ns and st.st_ino == ino and st.st_size == size:
            if not digest:
                intact.append(rel)
            continue
        if not digest:
            other = True
            continue
        if size < 0 or st.st_size == size:  # size -1: stamped while racy
            from storybuild.hashing import RACY_NS, digest_file

            if digest_file(join(root, rel)) == digest:
                # Same bytes: trust the new stat from now on, unless it is too recent to trust.
                if st.st_mtime_ns <= time.time_ns() - RACY_NS:
                    entries[index] = (rel, st.st_mtime_ns, st.st_size, st.st_ino, digest)
                    refreshed = True
                continue
        if index < fixed:
            other = True
        changed.append(rel)
    if other or changed:
        return Scan(None, frozenset(intact), None if other else frozenset(changed))
    if refreshed:
        write(store_dir, request, actions, entries, fixed)
    return Scan(actions, frozenset(intact), frozenset())
