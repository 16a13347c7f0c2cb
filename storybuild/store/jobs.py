"""Job records in state.sqlite: one row per attempt of a job that a backend ran on a server.

A table of its own next to state.py's, written through the build's StateWriter (these
functions only make its operations) and read by `storybuild stats`. Nothing here knows
about any backend: a record is the plain dict a backend reports for an attempt.

    build  backend  job  action  workflow  server  ok  error  queue_wait  execution
    server_time  attempt  cached  finished

The table is created by the first build that runs such a backend's actions; when state.py
recreates the database for a new schema version, it goes with the rest (a cache of
statistics, nothing a build depends on).
"""

from __future__ import annotations

import sqlite3
from typing import Any, Mapping

from storybuild.store.state import Op

TABLE = "jobs"
KEEP = 20_000  # rows kept: enough for the statistics of many builds, bounded for a long-lived project

_COLUMNS = ("build", "backend", "job_id", "action_id", "workflow", "server", "ok", "error", "queue_wait", "execution",
            "server_time", "attempt", "cached", "finished_at")
_FIELDS = _COLUMNS[2:]  # a record's fields, in table order


def create_table() -> Op:
    """The operation that creates the table (queued first, so later inserts find it)."""
    return (f"CREATE TABLE IF NOT EXISTS {TABLE}(build INTEGER, backend TEXT, job_id TEXT, action_id TEXT, workflow TEXT, "
            "server TEXT, ok INTEGER, error TEXT, queue_wait REAL, execution REAL, server_time REAL, "
            "attempt INTEGER, cached INTEGER, finished_at REAL)", ())


def put_job(build: int, backend: str, record: Mapping[str, Any]) -> Op:
    """Insert one job attempt that `backend` ran for build `build` (the record as a dict)."""
    values = tuple(int(record[name]) if name in ("ok", "cached") else record.get(name) for name in _FIELDS)
    marks = ",".join("?" * len(_COLUMNS))
    return (f"INSERT INTO {TABLE}({','.join(_COLUMNS)}) VALUES ({marks})", (build, backend, *values))


def prune(keep: int = KEEP) -> Op:
    """Forget all but the newest `keep` rows."""
    return (f"DELETE FROM {TABLE} WHERE rowid <= (SELECT MAX(rowid) FROM {TABLE}) - ?", (keep,))


def read_jobs(conn: sqlite3.Connection, last_builds: int | None = None) -> dict[str, list[dict[str, Any]]]:
    """Job records by backend, each oldest first; only those of the last `last_builds` builds
    that ran jobs when given. {} when no build has recorded any."""
    exists = conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (TABLE,)).fetchone()
    if not exists:
        return {}
    sql = f"SELECT backend, {','.join(_FIELDS)} FROM {TABLE}"
    params: tuple = ()
    if last_builds is not None:
        sql += f" WHERE build IN (SELECT DISTINCT build FROM {TABLE} ORDER BY build DESC LIMIT ?)"
        params = (last_builds,)
    rows = conn.execute(sql + " ORDER BY rowid", params)
    out: dict[str, list[dict[str, Any]]] = {}
    for backend, *row in rows:
        record = dict(zip(_FIELDS, row))
        record["ok"], record["cached"] = bool(record["ok"]), bool(record["cached"])
        record["error"] = record["error"] or ""
        out.setdefault(backend, []).append(record)
    return out
