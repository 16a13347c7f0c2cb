"""Build events: what the executor tells reporters, watch mode and `--json` consumers.

One flat record per event, delivered on the building thread in order. Types:

  wait      another process holds the project lock (`holder`); this build waits for it
  explain   why an action will run (`reasons`), with --explain and in dry runs
  plan      the build is about to run `total` actions (`cached` already up to date)
  started   an action began (attempt n)
  progress  a running action reported `fraction` (0..1) and a short `message`
  retry     a transient failure; the action runs again after `delay` seconds
  finished  an action ran and stored its outputs
  cached    an action was served from the cache after its inputs were rebuilt (cut-off)
  failed    an action failed for good (`error`, `attempts`)
  skipped   an action did not run because something it needs failed or the build stopped
  summary   the end: ran, cached, failed, skipped, up_to_date, seconds, status
  warning   something the build worked around and the writer should know (`message`, `hint`)
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Callable


class EventType(str, Enum):
    """The types of build event (the table above); each compares equal to its name as text."""

    WAIT = "wait"
    EXPLAIN = "explain"
    PLAN = "plan"
    STARTED = "started"
    PROGRESS = "progress"
    RETRY = "retry"
    FINISHED = "finished"
    CACHED = "cached"
    FAILED = "failed"
    SKIPPED = "skipped"
    SUMMARY = "summary"
    WARNING = "warning"


@dataclass(frozen=True)
class Event:
    """One thing that happened during a build."""

    type: EventType
    action: str = ""
    kind: str = ""
    data: dict[str, Any] = field(default_factory=dict)
    time: float = field(default_factory=time.time)

    def to_json(self) -> dict[str, Any]:
        """The event as one JSON object (the `--json` line format)."""
        out: dict[str, Any] = {"event": EventType(self.type).value, "time": round(self.time, 3)}
        if self.action:
            out["action"] = self.action
        if self.kind:
            out["kind"] = self.kind
        out.update(self.data)
        return out


OnEvent = Callable[[Event], None]


def ignore(event: Event) -> None:
    """An OnEvent that drops everything."""
    return None
