"""What a build remembers: the executor's ExecStore over the action cache and the state DB.

Every write becomes an operation queued to the StateWriter thread, which commits them in
batches after the CAS objects they name are durable. The recorder also keeps this build's
results and placements in memory: the lock file and the up-to-date stamp are written
from them when the build ends.
"""

from __future__ import annotations

import threading
from typing import Any, Mapping

from storybuild.model import Action
from storybuild.planning.actiongraph import Static
from storybuild.planning.decision import detail
from storybuild.store import state
from storybuild.store.actions import ActionCache
from storybuild.store.state import StateWriter, ViewRecord
from storybuild.store.view import View


class BuildRecorder:
    """Cache lookups and records of results, attempts, failures and placements for one build."""

    def __init__(self, cache: ActionCache, writer: StateWriter, view: View, build_id: int,
                 statics: Mapping[str, Static], views: dict[str, ViewRecord],
                 placed: Mapping[str, tuple[tuple[str, str], ...]], intact: frozenset[str] = frozenset()):
        self.cache = cache
        self.writer = writer
        self.view = view
        self.build_id = build_id
        self.statics = statics
        self.views = views  # path → record, kept current as files are placed
        self.placements = placed  # action id → (output name, project path) pairs
        self.intact = intact  # placed paths verified unchanged by stat just before this build
        self.results: dict[str, tuple[str, Mapping[str, str]]] = {}  # action id → (key, outputs)
        self._lock = threading.Lock()

    def lookup(self, key: str, action: str) -> Mapping[str, str] | None:
        """The cached outputs for `key`, if all are in the CAS (the action's own first)."""
        return self.cache.get(key, action)

    def placed(self, records: Mapping[str, ViewRecord]) -> None:
        """Record files placed in the project (called from worker threads)."""
        with self._lock:
            self.views.update(records)
        self.writer.put(state.put_view(path, rec) for path, rec in records.items())

    def up_to_date(self, action: Action, key: str, inputs: Mapping[str, str] | None,
                   outputs: Mapping[str, str], previous_key: str | None) -> bool:
        """Note an action the plan found fresh; place its outputs. True if it came from the cache
        under a key its last build did not have (so it counts as 'cached', not 'up to date')."""
        with self._lock:
            self.results[action.id] = (key, outputs)
        pairs = self.placements[action.id]
        if previous_key == key and all(rel in self.intact for _, rel in pairs):
            return False  # same result, and its files were stat-checked a moment ago
        # Reading self.views while workers add to it is safe: place() only gets paths.
        placed = self.view.place(action.id, pairs, outputs, self.views)
        if placed:
            self.placed(placed)
        if previous_key == key:
            return False
        ops = [state.put_run(action.id, key, outputs, detail(action, self.statics[action.id], inputs or {})),
               state.clear_failure(action.id)]
        self.writer.put(ops)
        return True

    def succeeded(self, action: Action, key: str, inputs: Mapping[str, str], outputs: Mapping[str, str],
                  *, ran: bool, seconds: float, attempts: int, extra: Mapping[str, Any]) -> None:
        """Record a result the executor made (ran) or found after its inputs were rebuilt."""
        self.cache.add(key, outputs)
        with self._lock:
            self.results[action.id] = (key, outputs)
        ops = []
        if ran:
            meta = {"action": action.id, "kind": action.kind, "backend": action.backend,
                    "seconds": round(seconds, 3), "attempts": attempts, **extra}
            ops += [state.put_action(key, outputs, meta), state.add_produced(self.build_id, key)]
        else:
            placed = self.view.place(action.id, self.placements[action.id], outputs, self.views)
            if placed:
                self.placed(placed)
        ops += [state.put_run(action.id, key, outputs, detail(action, self.statics[action.id], inputs)),
                state.clear_failure(action.id)]
        self.writer.put(ops)

    def attempted(self, action: Action, attempt: int, started: float, seconds: float,
                  outcome: str, error: str) -> None:
        """Record one attempt (the history `status` and `retry` read)."""
        self.writer.put([state.add_attempt(self.build_id, action.id, attempt, started, seconds, outcome, error)])

    def failed(self, action: Action, key: str, error: str, attempts: int) -> None:
        """Put a failed action in the retry queue."""
        self.writer.put([state.set_failure(self.build_id, action.id, key, error, attempts)])
