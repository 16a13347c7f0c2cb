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
from typing import Any, Iterable, Mapping

from storybuild.errors import Diagnostic

PREVIEW_PREFIX = "preview/"
HISTORY = 20  # rebuild summaries kept for the page


# The states an action goes through, as the page shows them.
RUNNING = "running"
CACHED = "cached"
BUILT = "built"
FAILED = "failed"
CANCELLED = "cancelled"


def split_quality(action_id: str) -> tuple[str, str]:
    """("preview" | "full", the id without its quality prefix) for an action id."""
    if action_id.startswith(PREVIEW_PREFIX):
        return "preview", action_id[len(PREVIEW_PREFIX):]
    return "full", action_id


@dataclass
class Rebuild:
    """One pass of the watch loop over the graph, at one quality."""

    number: int
    quality: str
    changed: list[str]
    started: float = field(default_factory=time.time)
    seconds: float | None = None
    ran: list[str] = field(default_factory=list)
    cached: int = 0
    failed: list[str] = field(default_factory=list)
    outcome: str = "building"  # building | ok | failed | cancelled
    timings: dict[str, float] = field(default_factory=dict)  # action id → seconds it ran

    def to_json(self) -> dict:
        return {
            "number": self.number, "quality": self.quality, "changed": list(self.changed),
            "started": self.started, "seconds": self.seconds, "ran": list(self.ran),
            "cached": self.cached, "failed": list(self.failed), "outcome": self.outcome,
            "timings": dict(sorted(self.timings.items(), key=lambda kv: -kv[1])),
        }


def event_fields(event: Mapping[str, Any]) -> tuple[str, str]:
    """(event type, action id) of an engine event; empty strings where absent."""
    kind = str(event.get("event") or event.get("type") or "")
    action = event.get("action") or event.get("id") or ""
    return kind, str(action)


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
        """Open a new rebuild record and return its number."""
        with self._cond:
            number = (self._rebuilds[-1].number + 1) if self._rebuilds else 1
            self._rebuilds.append(Rebuild(number, quality, list(changed)))
            del self._rebuilds[:-HISTORY]
            self._phase = "building"
            self._bump()
            return number

    def on_event(self, event: Mapping[str, Any]) -> None:
        """Apply one engine event (action started / progress / finished / cached / failed)."""
        kind, action = event_fields(event)
        if not action:
            return
        with self._cond:
            entry = self._actions.setdefault(action, {"state": RUNNING, "progress": 0.0})
            rebuild = self._rebuilds[-1] if self._rebuilds else None
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
            elif kind == "cancelled":
                entry.update(state=CANCELLED)
            else:
                return
            self._bump()

    def rebuild_finished(self, outcome: str, seconds: float) -> None:
        """Close the current rebuild: ok, failed or cancelled, and how long it took."""
        with self._cond:
            if self._rebuilds:
                self._rebuilds[-1].outcome = outcome
                self._rebuilds[-1].seconds = seconds
            # Anything still "running" after a pass ended was stopped by the cancellation.
            for entry in self._actions.values():
                if entry["state"] == RUNNING:
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
