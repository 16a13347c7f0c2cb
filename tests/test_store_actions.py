"""store.actions: results by key from the lock, the last builds and the DB, only while in the CAS."""

from __future__ import annotations

from storybuild.hashing import digest_bytes
from storybuild.store.actions import ActionCache
from storybuild.store.cas import CAS
from storybuild.store.lockfile import LockEntry
from storybuild.store.state import RunRecord


def objects(tmp_path, *contents):
    cas = CAS(tmp_path / "cas")
    return cas, [cas.put_bytes(c, digest_bytes(c)) for c in contents]


def test_an_action_gets_its_own_outputs_for_an_unchanged_key(tmp_path):
    cas, (one, two) = objects(tmp_path, b"take one", b"take two")
    # Two actions did the same work and a not-quite-deterministic backend made two results.
    runs = {"speech/a": RunRecord("k", {"line.wav": one}, ""), "speech/b": RunRecord("k", {"line.wav": two}, "")}
    cache = ActionCache(cas, {}, runs)
    assert cache.get("k", "speech/a") == {"line.wav": one}
    assert cache.get("k", "speech/b") == {"line.wav": two}
    assert cache.get("k") in ({"line.wav": one}, {"line.wav": two})


def test_the_lock_comes_first_then_runs_then_the_database(tmp_path):
    cas, (locked, built, stored) = objects(tmp_path, b"locked", b"built", b"stored")
    lock = {"kf/a": LockEntry("k1", {"image.png": locked})}
    runs = {"kf/a": RunRecord("k1", {"image.png": built}, ""), "kf/b": RunRecord("k2", {"image.png": built}, "")}
    cache = ActionCache(cas, lock, runs, query={"k3": {"image.png": stored}}.get)
    assert cache.get("k1", "kf/a") == {"image.png": locked}  # pinned
    assert cache.get("k2", "kf/c") == {"image.png": built}
    assert cache.get("k3", "kf/d") == {"image.png": stored}
    assert cache.get("k4", "kf/e") is None


def test_results_whose_objects_are_gone_are_no_results(tmp_path):
    cas, (obj,) = objects(tmp_path, b"frame")
    cache = ActionCache(cas, {}, {"shot/a": RunRecord("k", {"shot.mp4": obj}, "")})
    cas.remove(obj)
    assert cache.get("k", "shot/a") is None
    cache.add("k2", {"x": obj})
    assert cache.get("k2") is None
