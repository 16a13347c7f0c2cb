"""store.lockfile: a versioned, sorted, deterministic lock that YAML can read."""

from __future__ import annotations

import yaml

from storybuild.store import lockfile
from storybuild.store.lockfile import LockEntry

ENTRIES = {
    "step/film": LockEntry("bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", {"out/film.txt": "999999999999999999999999999999999999999999999999999999999999999a"}),
    "film": LockEntry("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", {"film.mp4": "eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee", "film.json": "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"}),
    "odd: name #1": LockEntry("cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc", {"true": "abababababababababababababababababababababababababababababababab", "123": "cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd"}),
    "empty": LockEntry("dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd", {}),
}

GOLDEN = """\
# storybuild.lock: what each target was built from (its action key) and what it made
# (output digests). Written by storybuild; commit it to Git, do not edit it by hand.
version: 1
targets:
  empty:
    key: dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd
  film:
    key: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa
    outputs:
      film.json: ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff
      film.mp4: eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee
  "odd: name #1":
    key: cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc
    outputs:
      "123": cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd
      "true": abababababababababababababababababababababababababababababababab
  step/film:
    key: bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb
    outputs:
      out/film.txt: 999999999999999999999999999999999999999999999999999999999999999a
"""


def test_golden_text_sorted_and_without_timestamps():
    assert lockfile.dumps(ENTRIES) == GOLDEN
    assert lockfile.dumps(dict(reversed(list(ENTRIES.items())))) == GOLDEN


def test_round_trip_and_yaml_reads_the_same():
    assert lockfile.loads(GOLDEN) == ENTRIES
    doc = yaml.safe_load(GOLDEN)
    assert doc["version"] == 1
    assert doc["targets"]["odd: name #1"] == {"key": "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc", "outputs": {"123": "cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd", "true": "abababababababababababababababababababababababababababababababab"}}


def test_a_lock_of_another_version_is_ignored(tmp_path):
    (tmp_path / "storybuild.lock").write_text(GOLDEN.replace("version: 1", "version: 99"))
    assert lockfile.read(tmp_path) == {}
    assert lockfile.read(tmp_path / "nowhere") == {}


def test_write_only_when_the_text_changes(tmp_path):
    assert lockfile.write(tmp_path, ENTRIES) is True
    stamp = (tmp_path / "storybuild.lock").stat().st_mtime_ns
    assert lockfile.write(tmp_path, ENTRIES) is False
    assert (tmp_path / "storybuild.lock").stat().st_mtime_ns == stamp
    assert lockfile.read(tmp_path) == ENTRIES
    assert lockfile.dumps({}) .endswith("targets: {}\n") and lockfile.loads(lockfile.dumps({})) == {}
