"""What the preview knows about the builds in progress: a versioned, thread-safe record.

The watch loop writes to it (rebuild started, engine events, rebuild finished, manifest
diagnostics); the preview server reads snapshots of it and waits on its version to push
Server-Sent Events. Every write bumps the version, so a reader that remembers the last
version it saw knows whether there is anything new without diffing.
"""

from __future__ import annotations

import copy
import threading
import time
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Iterable, Mapping

from storybuild.actionids import split_quality
from storybuild.errors import Diagnostic

HISTORY = 20  # rebuild summaries kept for the page


class ActionState(str, Enum):
    """The states an action goes through, as the page shows them (each equal to its text)."""

    QUEUED = "queued"  # to run in this pass, not started yet
    RUNNING = "running"
    CACHED = "cached"
    BUILT = "built"
    FAILED = "failed"
    CANCELLED = "cancelled"
    SKIPPED = "skipped"  # not run because something it needs failed


QUEUED, RUNNING, CACHED, BUILT = ActionState.QUEUED, ActionState.RUNNING, ActionState.CACHED, ActionState.BUILT
FAILED, CANCELLED, SKIPPED = ActionState.FAILED, ActionState.CANCELLED, ActionState.SKIPPED


@dataclass
class Rebuild:
    """One pass of the watch loop over the graph, at one quality."""

    number: int
    quality: str
    changed: list[str]
    started: float = field(default_factory=time.time)
    seconds: float | None = None
    ran: list[str] = field(default_factory=list)
    cached: int = 0  # served from the cache once their rebuilt inputs turned out identical
    up_to_date: int = 0  # not even planned: nothing they depend on changed
    total: int = 0  # actions planned to run
    failed: list[str] = field(default_factory=list)
    outcome: str = "building"  # building | ok | failed | cancelled
    timings: dict[str, float] = field(default_factory=dict)  # action id → seconds it ran

    def to_json(self) -> dict:
        """The record as the page reads it (timings slowest first)."""
        return {
            "number": self.number, "quality": self.quality, "changed": list(self.changed),
            "started": self.started, "seconds": self.seconds, "ran": list(self.ran),
            "cached": self.cached, "up_to_date": self.up_to_date, "total": self.total,
            "failed": list(self.failed), "outcome": self.outcome,
            "timings": dict(sorted(self.timings.items(), key=lambda kv: -kv[1])),
        }


def as_json(event: Any) -> dict:
    """An engine event (storybuild.events.Event or its JSON form) as a plain dict."""
    to_json = getattr(event, "to_json", None)
    return to_json() if callable(to_json) else dict(event)


def event_fields(event: Mapping[str, Any]) -> tuple[str, str]:
    """(event type, action id) of an event's JSON form; empty strings where absent."""
    return str(event.get("event") or ""), str(event.get("action") or "")


class LiveState:
    """The live record the preview page is drawn from."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._version = 0
        self._manifest: dict | None = None
        self._diagnostics: list[dict] = []
        self._actions: dict[str, dict] = {}  # full action id → {state, progress, message, seconds, error, loc}
        self._rebuilds: list[Rebuild] = []
        self._phase = "starting"  # starting | building | idle | error

    # ------------------------------------------------------------------ writers

    def _bump(self) -> None:
        self._version += 1
        self._cond.notify_all()

    def set_manifest(self, description: dict) -> None:
        """Record the structure of the last valid manifest (see pagedata.describe_manifest)."""
        with self._cond:
            self._manifest = description
            self._diagnostics = []
            self._bump()

    def set_diagnostics(self, diagnostics: Iterable[Diagnostic]) -> None:
        """Record the problems of an invalid manifest; the last good film stays on the page."""
        with self._cond:
            self._diagnostics = [d.to_json() for d in diagnostics]
            self._phase = "error"
            self._bump()

    def rebuild_started(self, quality: str, changed: list[str]) -> int:
        """Open a new rebuild record and return its number.

        Statuses of this quality start afresh: an action this pass never mentions is up to
        date, whatever happened to it last time.
        """
        with self._cond:
            for action in [a for a in self._actions if split_quality(a)[0] == quality]:
                del self._actions[action]
            number = (self._rebuilds[-1].number + 1) if self._rebuilds else 1
            self._rebuilds.append(Rebuild(number, quality, list(changed)))
            del self._rebuilds[:-HISTORY]
            self._phase = "building"
            self._bump()
            return number

    def on_event(self, event: Any) -> None:
        """Apply one engine event (storybuild.events: plan, started, progress, retry, …)."""
        event = as_json(event)
        kind, action = event_fields(event)
        with self._cond:
            rebuild = self._rebuilds[-1] if self._rebuilds else None
            if kind == "plan" and rebuild is not None:
                rebuild.total = int(event.get("total", 0))
                rebuild.up_to_date = int(event.get("cached", 0))
                for step in event.get("steps") or ():  # what this pass will run (or find cached)
                    self._actions[str(step)] = {"state": QUEUED, "progress": 0.0}
                self._bump()
                return
            if kind == "summary" and rebuild is not None:
                # The fast path (nothing changed) reports only this.
                rebuild.up_to_date = int(event.get("up_to_date", rebuild.up_to_date))
                self._bump()
                return
            if not action:
                return
            entry = self._actions.setdefault(action, {"state": RUNNING, "progress": 0.0})
            if kind == "started":
                entry.update(state=RUNNING, progress=0.0, message="", error=None, loc=None, seconds=None)
            elif kind == "progress":
                entry.update(state=RUNNING, progress=float(event.get("fraction", event.get("progress", 0.0)) or 0.0),
                             message=str(event.get("message", "")))
            elif kind == "cached":
                entry.update(state=CACHED, progress=1.0, error=None, loc=None)
                if rebuild is not None:
                    rebuild.cached += 1
            elif kind == "finished":
                seconds = event.get("seconds", event.get("duration"))
                entry.update(state=BUILT, progress=1.0, error=None, loc=None,
                             seconds=float(seconds) if seconds is not None else None)
                if rebuild is not None:
                    rebuild.ran.append(action)
                    if seconds is not None:
                        rebuild.timings[action] = float(seconds)
            elif kind == "failed":
                entry.update(state=FAILED, error=str(event.get("error") or event.get("message") or "failed"),
                             loc=str(event["loc"]) if event.get("loc") else None)
                if rebuild is not None:
                    rebuild.failed.append(action)
            elif kind == "retry":
                entry.update(state=RUNNING, message=f"retrying in {event.get('delay', 0)} s: {event.get('error', '')}")
            elif kind == "skipped":
                because = str(event.get("because", ""))
                if because in ("cancelled", "stopped"):
                    entry.update(state=CANCELLED)
                else:
                    entry.update(state=SKIPPED, error=f"not built: {because} failed", loc=None)
            else:
                return
            self._bump()

    def rebuild_finished(self, outcome: str, seconds: float) -> None:
        """Close the current rebuild: ok, failed or cancelled, and how long it took."""
        with self._cond:
            if self._rebuilds:
                self._rebuilds[-1].outcome = outcome
                self._rebuilds[-1].seconds = seconds
            # Anything still running or queued after a pass ended was stopped by the cancellation.
            for entry in self._actions.values():
                if entry["state"] in (RUNNING, QUEUED):
                    entry["state"] = CANCELLED
            self._phase = "idle" if not self._diagnostics else "error"
            self._bump()

    def poke(self) -> None:
        """Wake every waiter without changing anything (used when the server stops)."""
        with self._cond:
            self._bump()

    # ------------------------------------------------------------------ readers

    @property
    def version(self) -> int:
        """A counter bumped by every change."""
        with self._cond:
            return self._version

    def snapshot(self) -> dict:
        """A deep copy of everything, safe to read without the lock."""
        with self._cond:
            return {
                "version": self._version,
                "phase": self._phase,
                "manifest": copy.deepcopy(self._manifest),
                "diagnostics": copy.deepcopy(self._diagnostics),
                "actions": copy.deepcopy(self._actions),
                "rebuilds": [r.to_json() for r in self._rebuilds],
            }

    def wait(self, version: int, timeout: float) -> int:
        """Block until the version differs from `version` (or timeout); return the current one."""
        with self._cond:
            self._cond.wait_for(lambda: self._version != version, timeout=timeout)
            return self._version
