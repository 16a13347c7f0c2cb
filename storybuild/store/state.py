"""state.sqlite: the stat cache, the action cache, build history, attempts and failures.

One SQLite database in WAL mode. Reads happen on the caller's thread; writes are queued
to a StateWriter thread that applies them in batched transactions, fsyncing the CAS
objects the batch refers to just before each commit, so the database never names an
object that a crash could lose. The schema version lives in `PRAGMA user_version`; a
database of another version is simply recreated (it is a cache of facts the lock and the
CAS can rebuild, as ninja does with its build log).

Tables:
  files     project-relative source path → stat + digest (the stat cache)
  views     materialised output path → owning action, digest, stat
  actions   action key → output digests + metadata (the action cache)
  runs      action id → the key and inputs it was last built from (for --explain diffs)
  builds    one row per build; produced: build → action keys it ran (for gc --keep)
  attempts  every attempt of every action; failures: the retry queue
  meta      small facts, e.g. the stat of the storybuild.lock this project last wrote
"""

from __future__ import annotations

import json
import os
import queue
import sqlite3
import threading
import time
from typing import Any, Callable, Iterable, Mapping, NamedTuple

from storybuild.hashing import FileStat, Hashed

SCHEMA_VERSION = 4

_SCHEMA = """
CREATE TABLE IF NOT EXISTS files(path TEXT PRIMARY KEY, mtime_ns INTEGER, size INTEGER,
    ino INTEGER, digest TEXT) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS views(path TEXT PRIMARY KEY, action TEXT, digest TEXT,
    mtime_ns INTEGER, size INTEGER, ino INTEGER) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS actions(key TEXT PRIMARY KEY, outputs TEXT NOT NULL,
    meta TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS runs(id TEXT PRIMARY KEY, key TEXT NOT NULL,
    outputs TEXT NOT NULL, detail TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS builds(id INTEGER PRIMARY KEY, started REAL, finished REAL,
    status TEXT, targets TEXT, quality TEXT, ran INTEGER, cached INTEGER, failed INTEGER);
CREATE TABLE IF NOT EXISTS produced(build INTEGER, key TEXT, PRIMARY KEY(build, key)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS attempts(build INTEGER, action TEXT, attempt INTEGER,
    started REAL, seconds REAL, outcome TEXT, error TEXT);
CREATE TABLE IF NOT EXISTS failures(action TEXT PRIMARY KEY, key TEXT, error TEXT,
    attempts INTEGER, time REAL, build INTEGER) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta(name TEXT PRIMARY KEY, value TEXT) WITHOUT ROWID;
"""

Op = tuple[str, tuple]  # one SQL statement and its parameters


class ViewRecord(NamedTuple):
    """A materialised output file and the stat it had when we put it there."""

    action: str
    digest: str
    stat: FileStat


class RunRecord(NamedTuple):
    """What an action id was last built from: its key, outputs and key details (JSON)."""

    key: str
    outputs: dict[str, str]
    detail: str  # JSON: static digest, inputs, kind, backend, version, config, params


class Failure(NamedTuple):
    """A failed action waiting in the retry queue."""

    action: str
    key: str
    error: str
    attempts: int
    time: float


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


DAMAGED_SUFFIX = ".damaged"


def connect(path: str | os.PathLike) -> sqlite3.Connection:
    """Open the state DB, creating or recreating it when its schema version differs.

    A file SQLite cannot read (truncated, zeroed, not a database) is moved aside to
    <path>.damaged and a new one made: the state DB is a cache of what builds recorded,
    remade by the next build (StateDB.recovered says whether that happened).
    """
    try:
        return _open(path)
    except sqlite3.DatabaseError:
        move_aside(path)
        return _open(path)


def move_aside(path: str | os.PathLike) -> str:
    """Move a damaged state DB (and its WAL files) to <path>.damaged; return where it went."""
    path = os.fspath(path)
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.replace(path + suffix, path + DAMAGED_SUFFIX + suffix)
    return path + DAMAGED_SUFFIX


def _open(path: str | os.PathLike) -> sqlite3.Connection:
    conn = sqlite3.connect(os.fspath(path), timeout=30.0, isolation_level=None, check_same_thread=False)
    try:
        return _prepare(conn)
    except sqlite3.DatabaseError:
        conn.close()
        raise


def _prepare(conn: sqlite3.Connection) -> sqlite3.Connection:
    conn.execute("PRAGMA journal_mode=WAL")
    # NORMAL in WAL mode keeps the database consistent after a crash; durability of the
    # objects a row names is our job (CAS.sync before commit).
    conn.execute("PRAGMA synchronous=NORMAL")
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version != SCHEMA_VERSION:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in tables:
            conn.execute(f'DROP TABLE IF EXISTS "{table}"')
        conn.executescript(_SCHEMA)
        conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
    return conn


class StateDB:
    """Read access to the state DB plus builders for the write operations it accepts."""

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        self.recovered = False  # True when the file was damaged and moved aside: the caller says so
        try:
            self.conn = _open(self.path)
        except sqlite3.DatabaseError:
            move_aside(self.path)
            self.conn = _open(self.path)
            self.recovered = True

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()

    # ----------------------------------------------------------------- reads

    def files(self) -> dict[str, Hashed]:
        """The stat cache: path → (digest, stat)."""
        rows = self.conn.execute("SELECT path, mtime_ns, size, ino, digest FROM files")
        return {p: Hashed(d, FileStat(m, s, i)) for p, m, s, i, d in rows}

    def views(self) -> dict[str, ViewRecord]:
        """Materialised outputs: path → (action, digest, stat)."""
        rows = self.conn.execute("SELECT path, action, digest, mtime_ns, size, ino FROM views")
        return {p: ViewRecord(a, d, FileStat(m, s, i)) for p, a, d, m, s, i in rows}

    def runs(self, *, details: bool = True) -> dict[str, RunRecord]:
        """The last build of every action id (without the bulky details, if asked: "")."""
        if not details:
            rows = self.conn.execute("SELECT id, key, outputs FROM runs")
            return {i: RunRecord(k, json.loads(o), "") for i, k, o in rows}
        rows = self.conn.execute("SELECT id, key, outputs, detail FROM runs")
        return {i: RunRecord(k, json.loads(o), d) for i, k, o, d in rows}

    def run_detail(self, action: str) -> str | None:
        """The details (JSON) an action's last build recorded, for explaining a rebuild."""
        row = self.conn.execute("SELECT detail FROM runs WHERE id=?", (action,)).fetchone()
        return row[0] if row else None

    def cached(self, key: str) -> dict[str, str] | None:
        """The action cache: output digests for `key`, or None."""
        row = self.conn.execute("SELECT outputs FROM actions WHERE key=?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def cached_meta(self, key: str) -> dict[str, Any] | None:
        """The metadata (timings, backend, attempts) recorded with a cached result."""
        row = self.conn.execute("SELECT meta FROM actions WHERE key=?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def action_cache(self) -> Iterable[tuple[str, dict[str, str]]]:
        """Every (key, outputs) in the action cache."""
        for key, outputs in self.conn.execute("SELECT key, outputs FROM actions"):
            yield key, json.loads(outputs)

    def meta(self, name: str) -> str | None:
        """A value from the meta table."""
        row = self.conn.execute("SELECT value FROM meta WHERE name=?", (name,)).fetchone()
        return row[0] if row else None

    def failures(self) -> list[Failure]:
        """The retry queue, oldest first."""
        rows = self.conn.execute("SELECT action, key, error, attempts, time FROM failures ORDER BY time, action")
        return [Failure(*row) for row in rows]

    def failed_requests(self) -> dict[str, tuple[list[str], str] | None]:
        """Failed action → (targets, quality) of the build it last failed in; None when that
        build is no longer in the history."""
        rows = self.conn.execute("SELECT f.action, b.targets, b.quality FROM failures f "
                                 "LEFT JOIN builds b ON b.id = f.build")
        return {a: None if t is None else (json.loads(t), q) for a, t, q in rows}

    def recent_builds(self, n: int) -> list[int]:
        """Ids of the last `n` builds."""
        rows = self.conn.execute("SELECT id FROM builds ORDER BY id DESC LIMIT ?", (n,))
        return [r[0] for r in rows]

    def produced_keys(self, builds: Iterable[int]) -> set[str]:
        """Action keys run by the given builds."""
        ids = list(builds)
        if not ids:
            return set()
        marks = ",".join("?" * len(ids))
        return {r[0] for r in self.conn.execute(f"SELECT key FROM produced WHERE build IN ({marks})", ids)}

    def start_build(self, targets: Iterable[str], quality: str) -> int:
        """Record a new build and return its id (written at once: attempts refer to it)."""
        cur = self.conn.execute(
            "INSERT INTO builds(started, status, targets, quality) VALUES (?, 'running', ?, ?)",
            (time.time(), _dumps(sorted(targets)), quality))
        return int(cur.lastrowid)

    def execute(self, ops: Iterable[Op]) -> None:
        """Apply write operations in one transaction on this thread."""
        apply(self.conn, list(ops))


# --------------------------------------------------------------------- write operations


def put_file(path: str, h: Hashed) -> Op:
    """Record a source file's stat and digest."""
    return ("INSERT OR REPLACE INTO files VALUES (?,?,?,?,?)", (path, *h.stat, h.digest))


def put_meta(name: str, value: str) -> Op:
    """Set a meta value."""
    return ("INSERT OR REPLACE INTO meta VALUES (?,?)", (name, value))


def put_view(path: str, record: ViewRecord) -> Op:
    """Record a placed output file."""
    return ("INSERT OR REPLACE INTO views VALUES (?,?,?,?,?,?)", (path, record.action, record.digest, *record.stat))


def del_view(path: str) -> Op:
    """Forget a placed output file."""
    return ("DELETE FROM views WHERE path=?", (path,))


def put_action(key: str, outputs: Mapping[str, str], meta: Mapping[str, Any]) -> Op:
    """Add a result to the action cache."""
    return ("INSERT OR REPLACE INTO actions VALUES (?,?,?)", (key, _dumps(outputs), _dumps(meta)))


def del_action(key: str) -> Op:
    """Drop a result from the action cache."""
    return ("DELETE FROM actions WHERE key=?", (key,))


def put_run(action: str, key: str, outputs: Mapping[str, str], detail: str) -> Op:
    """Record what an action was last built from and made."""
    return ("INSERT OR REPLACE INTO runs VALUES (?,?,?,?)", (action, key, _dumps(outputs), detail))


def add_produced(build: int, key: str) -> Op:
    """Note that a build ran the action with this key (for gc --keep)."""
    return ("INSERT OR IGNORE INTO produced VALUES (?,?)", (build, key))


def add_attempt(build: int, action: str, attempt: int, started: float, seconds: float,
                outcome: str, error: str = "") -> Op:
    """Append one attempt to the history."""
    return ("INSERT INTO attempts VALUES (?,?,?,?,?,?,?)", (build, action, attempt, started, seconds, outcome, error))


def set_failure(build: int, action: str, key: str, error: str, attempts: int) -> Op:
    """Put an action in the retry queue."""
    return ("INSERT OR REPLACE INTO failures VALUES (?,?,?,?,?,?)", (action, key, error, attempts, time.time(), build))


def clear_failure(action: str) -> Op:
    """Take an action out of the retry queue."""
    return ("DELETE FROM failures WHERE action=?", (action,))


def finish_build(build: int, status: str, ran: int, cached: int, failed: int) -> Op:
    """Close a build's record with its outcome and counts."""
    return ("UPDATE builds SET finished=?, status=?, ran=?, cached=?, failed=? WHERE id=?",
            (time.time(), status, ran, cached, failed, build))


def forget_builds_before(build: int) -> list[Op]:
    """Drop history older than `build` (attempts and produced keys)."""
    return [("DELETE FROM attempts WHERE build < ?", (build,)),
            ("DELETE FROM produced WHERE build < ?", (build,)),
            ("DELETE FROM builds WHERE id < ?", (build,))]


def apply(conn: sqlite3.Connection, ops: list[Op]) -> None:
    """Run `ops` in one transaction."""
    if not ops:
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        for sql, params in ops:
            conn.execute(sql, params)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


class StateWriter:
    """A thread that applies queued write operations in batched transactions.

    `before_commit` runs before each transaction (the CAS fsyncs the objects the batch
    names). Writes queued before `flush()` returns are committed; `close()` drains the
    queue and re-raises the first error the thread met.
    """

    def __init__(self, path: str | os.PathLike, before_commit: Callable[[], None] = lambda: None,
                 interval: float = 0.25):
        self._path = os.fspath(path)
        self._before_commit = before_commit
        self._interval = interval
        self._queue: queue.Queue = queue.Queue()
        self._wake = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="storybuild-state-writer", daemon=True)
        self._thread.start()

    def put(self, ops: Iterable[Op]) -> None:
        """Queue write operations (returns at once; does not wake the writer)."""
        batch = list(ops)
        if batch:
            self._queue.put(batch)

    def flush(self) -> None:
        """Block until everything queued so far is committed."""
        done = threading.Event()
        self._queue.put(done)
        self._wake.set()
        done.wait()
        self._raise()

    def close(self) -> None:
        """Commit what is queued and stop the thread."""
        self._queue.put(None)
        self._wake.set()
        self._thread.join()
        self._raise()

    def _raise(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def _run(self) -> None:
        # Wake every `interval` (or when flushed/closed) and commit everything queued: a
        # put never wakes this thread, so building threads don't trade the GIL with it
        # for every finished action.
        conn = connect(self._path)
        try:
            stop = False
            while not stop:
                self._wake.wait(self._interval)
                self._wake.clear()
                ops: list[Op] = []
                waiters: list[threading.Event] = []
                while True:
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if item is None:
                        stop = True
                    elif isinstance(item, threading.Event):
                        waiters.append(item)
                    else:
                        ops.extend(item)
                self._commit(conn, ops)
                for waiter in waiters:
                    waiter.set()
        finally:
            conn.close()

    def _commit(self, conn: sqlite3.Connection, ops: list[Op]) -> None:
        if not ops or self._error is not None:
            return
        try:
            self._before_commit()
            apply(conn, ops)
        except BaseException as exc:  # reported to the building thread by flush/close
            self._error = exc
