"""store.cas: objects named by digest, read-only, entered atomically."""

from __future__ import annotations

import os
import stat

from storybuild.hashing import digest_bytes
from storybuild.store.cas import CAS


def test_put_file_links_and_makes_read_only(tmp_path):
    cas = CAS(tmp_path / "cas")
    src = tmp_path / "out.txt"
    src.write_text("frame")
    digest = cas.put_file(src)
    assert digest == digest_bytes(b"frame")
    obj = cas.path(digest)
    assert obj.read_text() == "frame" and obj.stat().st_ino == src.stat().st_ino
    assert not obj.stat().st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
    assert cas.has(digest) and cas.size(digest) == 5


def test_put_file_move_renames_and_dedupes(tmp_path):
    cas = CAS(tmp_path / "cas")
    for name in ("a", "b"):
        (tmp_path / name).write_text("same")
    first = cas.put_file(tmp_path / "a", move=True)
    second = cas.put_file(tmp_path / "b", move=True)
    assert first == second and not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    assert list(cas.digests()) == [first]


def test_link_to_places_atomically_and_replaces(tmp_path):
    cas = CAS(tmp_path / "cas")
    one = cas.put_bytes(b"one", digest_bytes(b"one"))
    two = cas.put_bytes(b"two", digest_bytes(b"two"))
    dest = tmp_path / "build" / "deep" / "x.txt"
    cas.link_to(one, dest)
    cas.link_to(two, dest)
    assert dest.read_text() == "two"
    assert sorted(os.listdir(dest.parent)) == ["x.txt"]  # no temporary left behind


def test_sync_and_remove(tmp_path):
    cas = CAS(tmp_path / "cas")
    digest = cas.put_bytes(b"data", digest_bytes(b"data"))
    cas.sync()
    cas.sync()  # nothing pending: a no-op
    assert cas.remove(digest) == 4 and cas.remove(digest) == 0
    assert not cas.has(digest)


def test_remove_temporaries_keeps_objects(tmp_path):
    cas = CAS(tmp_path / "cas")
    digest = cas.put_bytes(b"keep", digest_bytes(b"keep"))
    stray = cas.path(digest).parent / ".half-written"
    stray.write_text("x")
    cas.remove_temporaries()
    assert not stray.exists() and cas.has(digest)
