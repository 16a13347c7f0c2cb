"""Per-job timings from the farm, and the statistics `storybuild stats` prints from them.

The engine stores records in its state DB; nothing here touches sqlite. A record says
which workflow ran where, how long it waited in the farm's queue, how long the server
took, and how the attempt ended.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Iterable


@dataclass(frozen=True)
class JobRecord:
    """One attempt of one job on one server."""

    job_id: str
    action_id: str
    workflow: str
    server: str  # "" when it never reached a server
    ok: bool
    error: str = ""
    queue_wait: float = 0.0  # seconds from submission (or re-queueing) until a server took it
    execution: float = 0.0  # seconds on the server side of the farm: upload → outputs fetched
    server_time: float | None = None  # execution_start → end, by the server's clock
    attempt: int = 1
    cached: bool = False  # served entirely from the server's cache
    finished_at: float = 0.0  # time.time() when the attempt ended

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _summary(records: list[JobRecord]) -> dict[str, Any]:
    done = [r for r in records if r.ok]
    server_times = [r.server_time for r in done if r.server_time is not None]
    return {
        "jobs": len(records),
        "succeeded": len(done),
        "success_rate": len(done) / len(records) if records else 0.0,
        "mean_execution": sum(r.execution for r in done) / len(done) if done else 0.0,
        "mean_queue_wait": sum(r.queue_wait for r in records) / len(records) if records else 0.0,
        "mean_server_time": sum(server_times) / len(server_times) if server_times else None,
        "cached": sum(1 for r in done if r.cached),
    }


def stats(records: Iterable[JobRecord | dict[str, Any]]) -> dict[str, Any]:
    """Success rate and mean times overall, per workflow and per server."""
    items = [r if isinstance(r, JobRecord) else JobRecord(**r) for r in records]
    by_workflow: dict[str, list[JobRecord]] = {}
    by_server: dict[str, list[JobRecord]] = {}
    for record in items:
        by_workflow.setdefault(record.workflow, []).append(record)
        by_server.setdefault(record.server or "(none)", []).append(record)
    return {
        "overall": _summary(items),
        "workflows": {name: _summary(group) for name, group in sorted(by_workflow.items())},
        "servers": {name: _summary(group) for name, group in sorted(by_server.items())},
    }
