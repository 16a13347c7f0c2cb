"""Garbage collection: delete CAS objects nothing current refers to.

Live objects are the outputs recorded in storybuild.lock, the files placed in the project
(build/ and step outputs), and, when asked to keep the last N builds, everything those
builds ran. Action cache entries that name a deleted object are dropped with it, so the
cache never promises what the CAS no longer holds. Run under the project lock.
"""

from __future__ import annotations

import os
import shutil

from storybuild.store import lockfile, state
from storybuild.store.cas import CAS
from storybuild.store.state import StateDB


def collect(root: str, store_dir: str, keep: int = 0) -> tuple[int, int]:
    """Delete unreachable objects; return (objects removed, bytes freed)."""
    cas = CAS(os.path.join(store_dir, "cas"))
    live: set[str] = set()
    # A lock that cannot be read would look empty, and everything it pins (generated media:
    # lost GPU work) would go: refuse instead (LockFormatError reaches the user).
    for entry in lockfile.read_strict(root).values():
        live.update(entry.outputs.values())
    db_path = os.path.join(store_dir, "state.sqlite")
    db = StateDB(db_path) if os.path.exists(db_path) else None
    try:
        if db is not None:
            live.update(record.digest for record in db.views().values())
            if keep > 0:
                for key in db.produced_keys(db.recent_builds(keep)):
                    live.update((db.cached(key) or {}).values())
        removed = freed = 0
        for digest in list(cas.digests()):
            if digest not in live:
                freed += cas.remove(digest)
                removed += 1
        if db is not None:
            dead = [key for key, outputs in db.action_cache() if not set(outputs.values()) <= live]
            db.execute(state.del_action(key) for key in dead)
    finally:
        if db is not None:
            db.close()
    cas.remove_temporaries()
    shutil.rmtree(os.path.join(store_dir, "tmp"), ignore_errors=True)
    shutil.rmtree(os.path.join(store_dir, "cache"), ignore_errors=True)  # backends' derived data: remade on demand
    return removed, freed
