"""store.state: the state DB's tables, its schema version, and the batching writer."""

from __future__ import annotations

import sqlite3
import threading

import pytest

from storybuild.hashing import FileStat, Hashed
from storybuild.store import state
from storybuild.store.state import SCHEMA_VERSION, StateDB, StateWriter, ViewRecord


def test_tables_round_trip(tmp_path):
    db = StateDB(tmp_path / "state.sqlite")
    build = db.start_build(["film"], "full")
    db.execute([
        state.put_file("p.txt", Hashed("d1", FileStat(1, 2, 3))),
        state.put_view("build/f.mp4", ViewRecord("film", "d2", FileStat(4, 5, 6))),
        state.put_action("k1", {"f.mp4": "d2"}, {"seconds": 1.5}),
        state.put_run("film", "k1", {"f.mp4": "d2"}, '{"static": "s"}'),
        state.add_produced(build, "k1"),
        state.set_failure(build, "shot/a", "k2", "boom", 3),
        state.add_attempt(build, "shot/a", 1, 0.0, 0.1, "failed", "boom"),
        state.finish_build(build, "failed", 1, 0, 1),
    ])
    assert db.files() == {"p.txt": Hashed("d1", FileStat(1, 2, 3))}
    assert db.views()["build/f.mp4"] == ViewRecord("film", "d2", FileStat(4, 5, 6))
    assert db.cached("k1") == {"f.mp4": "d2"} and db.cached("nope") is None
    assert db.cached_meta("k1") == {"seconds": 1.5}
    assert db.runs()["film"].outputs == {"f.mp4": "d2"}
    assert [(f.action, f.error, f.attempts) for f in db.failures()] == [("shot/a", "boom", 3)]
    assert db.failed_requests() == {"shot/a": (["film"], "full")}
    db.execute([state.set_failure(build + 1, "shot/b", "k3", "gone", 1)])  # its build is not recorded
    assert db.failed_requests()["shot/b"] is None
    db.execute([state.clear_failure("shot/b")])
    assert db.recent_builds(5) == [build] and db.produced_keys([build]) == {"k1"}
    db.execute([state.clear_failure("shot/a"), state.del_view("build/f.mp4"), state.del_action("k1")])
    assert db.failures() == [] and db.views() == {} and db.cached("k1") is None
    db.close()


def test_a_database_of_another_schema_version_is_recreated(tmp_path):
    path = tmp_path / "state.sqlite"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE files(whatever)")
    conn.execute("PRAGMA user_version=1")
    conn.commit()
    conn.close()
    db = StateDB(path)
    assert db.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert db.files() == {}
    db.close()


def test_the_writer_commits_in_batches_after_before_commit(tmp_path):
    path = tmp_path / "state.sqlite"
    StateDB(path).close()
    order = []
    writer = StateWriter(path, before_commit=lambda: order.append("sync"), interval=0.01)
    writer.put([state.put_action(f"k{i}", {}, {}) for i in range(100)])
    writer.flush()
    order.append("flushed")
    db = StateDB(path)
    assert len(list(db.action_cache())) == 100
    writer.put([state.put_action("last", {}, {})])
    writer.close()
    assert db.cached("last") == {}
    assert order[0] == "sync" and "flushed" in order
    db.close()


def test_writer_errors_reach_the_building_thread(tmp_path):
    path = tmp_path / "state.sqlite"
    StateDB(path).close()
    writer = StateWriter(path)
    writer.put([("INSERT INTO no_such_table VALUES (1)", ())])
    with pytest.raises(sqlite3.OperationalError):
        writer.flush()
    writer.close()


def test_writes_from_many_threads(tmp_path):
    path = tmp_path / "state.sqlite"
    StateDB(path).close()
    writer = StateWriter(path)
    threads = [threading.Thread(target=lambda n=n: writer.put([state.add_attempt(1, f"a{n}", 1, 0, 0, "ok")]))
               for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    writer.close()
    db = StateDB(path)
    assert db.conn.execute("SELECT count(*) FROM attempts").fetchone()[0] == 8
    db.close()
