"""hashing: canonical JSON, digests, stat-trusted file digests, action keys."""

from __future__ import annotations

import os
import time
from enum import Enum
from types import MappingProxyType

import pytest
from blake3 import blake3

from storybuild.hashing import (FileHasher, FileStat, Hashed, RACY_NS, action_key, canonical_json,
                                digest_bytes, digest_file, stat_of, static_digest)


class Color(Enum):
    RED = "red"


def test_canonical_json_is_independent_of_key_order_and_container_type():
    a = canonical_json({"b": [1, 2], "a": {"y": 1, "x": (3, "é")}})
    b = canonical_json(MappingProxyType({"a": {"x": [3, "é"], "y": 1}, "b": (1, 2)}))
    assert a == b == '{"a":{"x":[3,"é"],"y":1},"b":[1,2]}'.encode()


def test_canonical_json_writes_enums_by_value_and_refuses_the_unhashable():
    assert canonical_json({"c": Color.RED, "s": {2, 1}}) == b'{"c":"red","s":[1,2]}'
    with pytest.raises(TypeError, match="cannot hash"):
        canonical_json({"f": object()})
    with pytest.raises(ValueError):
        canonical_json({"nan": float("nan")})


def test_file_digests_match_byte_digests_small_and_large(tmp_path):
    small = tmp_path / "small"
    small.write_bytes(b"hello")
    big = tmp_path / "big"
    big.write_bytes(os.urandom(3 << 20))
    assert digest_file(small) == digest_bytes(b"hello") == blake3(b"hello").hexdigest()
    assert digest_file(big) == digest_bytes(big.read_bytes())


def test_stat_of_regular_files_only(tmp_path):
    (tmp_path / "f").write_text("x")
    assert stat_of(tmp_path / "f").size == 1
    assert stat_of(tmp_path) is None
    assert stat_of(tmp_path / "missing") is None


def test_keys_change_with_every_part():
    base = static_digest("speech", "espeak", "1", None, {"text": "hi"})
    assert base == static_digest("speech", "espeak", "1", None, {"text": "hi"})
    others = {static_digest("shot", "espeak", "1", None, {"text": "hi"}),
              static_digest("speech", "embedded", "1", None, {"text": "hi"}),
              static_digest("speech", "espeak", "2", None, {"text": "hi"}),
              static_digest("speech", "espeak", "1", {"voice": "x"}, {"text": "hi"}),
              static_digest("speech", "espeak", "1", None, {"text": "ho"})}
    assert base not in others and len(others) == 5
    assert action_key(base, {"a": "1"}) != action_key(base, {"a": "2"}) != action_key(base, {"b": "1"})


def old(path) -> None:
    past = time.time() - 10
    os.utime(path, (past, past))


def test_a_file_is_read_once_and_then_trusted_by_its_stat(tmp_path):
    reads = []

    def counting(path):
        reads.append(path)
        return digest_file(path)

    (tmp_path / "p.txt").write_text("a prompt")
    old(tmp_path / "p.txt")
    first = FileHasher(tmp_path, read_digest=counting)
    digest = first.digest("p.txt")
    assert first.digest("p.txt") == digest and len(reads) == 1
    known = first.trusted()
    assert set(known) == {"p.txt"}
    second = FileHasher(tmp_path, known, read_digest=counting)
    assert second.digest("p.txt") == digest and len(reads) == 1  # no bytes read
    os.utime(tmp_path / "p.txt")  # touched: re-hashed, same digest
    assert FileHasher(tmp_path, known, read_digest=counting).digest("p.txt") == digest and len(reads) == 2
    (tmp_path / "p.txt").write_text("a new prompt")
    assert FileHasher(tmp_path, known, read_digest=counting).digest("p.txt") != digest


def test_recently_modified_files_are_not_trusted_later(tmp_path):
    (tmp_path / "p.txt").write_text("x")
    hasher = FileHasher(tmp_path)
    hasher.digest("p.txt")
    assert hasher.fresh["p.txt"].racy and hasher.trusted() == {}
    assert RACY_NS >= 1_000_000


def test_missing_files_have_no_digest(tmp_path):
    assert FileHasher(tmp_path).digests(["nope"]) == {"nope": None}


def test_hashed_compares_with_plain_stats():
    assert Hashed("d", FileStat(1, 2, 3)).stat == (1, 2, 3)


def test_a_folder_input_is_digested_by_its_files(tmp_path):
    # A mouths set is a folder asset: its digest follows every file in it, each trusted by stat.
    folder = tmp_path / "mouths" / "ada"
    folder.mkdir(parents=True)
    (folder / "A.png").write_bytes(b"a")
    (folder / "B.png").write_bytes(b"b")
    first = FileHasher(tmp_path).digest("mouths/ada")
    assert first is not None and FileHasher(tmp_path).digest("mouths/ada") == first
    (folder / "B.png").write_bytes(b"b2")
    changed = FileHasher(tmp_path).digest("mouths/ada")
    (folder / "C.png").write_bytes(b"c")
    added = FileHasher(tmp_path).digest("mouths/ada")
    assert len({first, changed, added}) == 3
    hasher = FileHasher(tmp_path)
    hasher.digest("mouths/ada")
    assert hasher.folders["mouths/ada"] == (["mouths/ada"], ["mouths/ada/A.png", "mouths/ada/B.png", "mouths/ada/C.png"])
