"""The action cache: action key → output digests, served only while the CAS holds them.

Three sources answer a lookup, in this order:
  1. storybuild.lock: a locked target's key and outputs. Checked first so that pinned,
     non-deterministic media stay what the lock says, and so a fresh clone with the CAS
     present rebuilds nothing even without a state DB;
  2. results of this build and of each action's last build (the `runs` table, in memory);
  3. the `actions` table of the state DB, for keys seen in older builds or other branches.
A result whose objects are not all in the CAS (deleted, or collected by gc) is no result.
"""

from __future__ import annotations

import threading
from typing import Callable, Mapping

from storybuild.store.cas import CAS
from storybuild.store.lockfile import LockEntry
from storybuild.store.state import RunRecord


class ActionCache:
    """Look up and remember action results for one build."""

    def __init__(self, cas: CAS, lock: Mapping[str, LockEntry], runs: Mapping[str, RunRecord],
                 query: Callable[[str], Mapping[str, str] | None] = lambda key: None):
        self.cas = cas
        self._lock = lock
        self._runs = runs
        self._lock_index = {e.key: dict(e.outputs) for e in lock.values()}
        self._known = {r.key: r.outputs for r in runs.values()}
        self._query = query
        self._mutex = threading.Lock()

    def get(self, key: str, action: str | None = None) -> Mapping[str, str] | None:
        """The outputs stored for `key`, if every one of them is in the CAS.

        An action whose key did not change gets its own locked or last outputs first, the
        very bytes its consumers were built from, even if another result with that key
        (from a backend that is not quite deterministic) sits in the cache too.
        """
        if action is not None:
            own = self._lock.get(action)
            if own is not None and own.key == key and self._present(own.outputs):
                return own.outputs
            run = self._runs.get(action)
            if run is not None and run.key == key and self._present(run.outputs):
                return run.outputs
        for candidate in (self._lock_index.get(key), self._known.get(key)):
            if candidate is not None and self._present(candidate):
                return candidate
        stored = self._query(key)
        if stored is not None and self._present(stored):
            with self._mutex:
                self._known[key] = stored
            return stored
        return None

    def add(self, key: str, outputs: Mapping[str, str]) -> None:
        """Remember a result made in this build (the DB write is queued separately)."""
        with self._mutex:
            self._known[key] = dict(outputs)

    def _present(self, outputs: Mapping[str, str]) -> bool:
        # A stat per object (about 2 µs): placed objects are not taken on trust, since a
        # removed .storybuild/cas leaves their records (and build/ files) behind.
        return all(self.cas.has(digest) for digest in outputs.values())
