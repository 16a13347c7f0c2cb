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

STAMP_NAME = "uptodate.marshal"
STAMP_FORMAT = 2

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


def write(store_dir: str, request: tuple, actions: int, entries: list[Entry]) -> None:
    """Record that `request` is up to date with `actions` actions over `entries`."""
    path = _path(store_dir)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "wb") as f:
        marshal.dump((STAMP_FORMAT, request, actions, entries), f)
    os.replace(tmp, path)  # no fsync: a lost stamp only costs one full-path build


def check(root: str, store_dir: str, request: tuple) -> int | None:
    """The number of up-to-date actions when nothing changed since the stamp, else None."""
    return scan(root, store_dir, request)[0]


def scan(root: str, store_dir: str, request: tuple) -> tuple[int | None, frozenset[str]]:
    """(up-to-date actions, or None if anything changed; placed outputs found intact).

    When only sources changed, the full build that follows need not re-check the placed
    outputs this scan already found unchanged: the second item lists them.
    """
    try:
        with open(_path(store_dir), "rb") as f:
            fmt, stamped, actions, entries = marshal.load(f)
    except (OSError, EOFError, ValueError, TypeError):
        return None, frozenset()
    if fmt != STAMP_FORMAT or stamped != request:
        return None, frozenset()
    refreshed = False
    changed = False
    intact = []
    stat = os.stat
    join = os.path.join
    for index, (rel, mtime_ns, size, ino, digest) in enumerate(entries):
        try:
            st = stat(join(root, rel))
        except OSError:
            changed = True
            continue
        if st.st_mtime_ns == mtime_ns and st.st_ino == ino and st.st_size == size:
            if not digest:
                intact.append(rel)
            continue
        if changed or not digest or (size >= 0 and st.st_size != size):  # size -1: stamped while racy
            changed = True
            continue
        from storybuild.hashing import RACY_NS, digest_file

        if digest_file(join(root, rel)) != digest:
            changed = True
            continue
        # Same bytes: trust the new stat from now on, unless it is too recent to trust.
        if st.st_mtime_ns <= time.time_ns() - RACY_NS:
            entries[index] = (rel, st.st_mtime_ns, st.st_size, st.st_ino, digest)
            refreshed = True
    if changed:
        return None, frozenset(intact)
    if refreshed:
        write(store_dir, request, actions, entries)
    return actions, frozenset(intact)
