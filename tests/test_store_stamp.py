"""store.stamp: the no-op fast path's proof that nothing changed."""

from __future__ import annotations

import os
import time

from storybuild.hashing import digest_file
from storybuild.store import stamp


def make(tmp_path):
    src = tmp_path / "p.txt"
    src.write_text("prompt")
    out = tmp_path / "out.txt"
    out.write_text("output")
    past = time.time() - 10
    for p in (src, out):
        os.utime(p, (past, past))
    entries = []
    for p, digest in ((src, digest_file(src)), (out, "")):
        st = p.stat()
        entries.append((p.name, st.st_mtime_ns, st.st_size, st.st_ino, digest))
    stamp.write(str(tmp_path), ("v", "full"), 2, entries, fixed=0)
    return src, out


def test_unchanged_files_prove_the_request_up_to_date(tmp_path):
    make(tmp_path)
    assert stamp.check(str(tmp_path), str(tmp_path), ("v", "full")) == 2
    assert stamp.check(str(tmp_path), str(tmp_path), ("v", "preview")) is None


def test_a_touched_source_with_the_same_bytes_still_counts(tmp_path):
    src, _ = make(tmp_path)
    later = time.time() - 5
    os.utime(src, (later, later))
    assert stamp.check(str(tmp_path), str(tmp_path), ("v", "full")) == 2


def test_changed_sources_and_outputs_do_not(tmp_path):
    src, out = make(tmp_path)
    src.write_text("another prompt")
    assert stamp.check(str(tmp_path), str(tmp_path), ("v", "full")) is None
    src, out = make(tmp_path)
    os.utime(out)  # an output replaced, even with the same bytes, is re-checked by a full build
    assert stamp.check(str(tmp_path), str(tmp_path), ("v", "full")) is None


def test_remove_and_garbage(tmp_path):
    make(tmp_path)
    stamp.remove(str(tmp_path))
    stamp.remove(str(tmp_path))
    assert stamp.check(str(tmp_path), str(tmp_path), ("v", "full")) is None
    (tmp_path / stamp.STAMP_NAME).write_bytes(b"not marshal")
    assert stamp.check(str(tmp_path), str(tmp_path), ("v", "full")) is None


def test_scan_names_changed_sources_and_intact_outputs(tmp_path):
    src, out = make(tmp_path)
    assert stamp.scan(str(tmp_path), str(tmp_path), ("v", "full")) == (2, frozenset({"out.txt"}), frozenset())
    src.write_text("another prompt")
    assert stamp.scan(str(tmp_path), str(tmp_path), ("v", "full")) == (
        None, frozenset({"out.txt"}), frozenset({"p.txt"}))
    out.unlink()  # an output changed too: no incremental build
    assert stamp.scan(str(tmp_path), str(tmp_path), ("v", "full")) == (None, frozenset(), None)


def test_a_change_in_what_planning_read_rules_out_an_incremental_build(tmp_path):
    src, out = make(tmp_path)
    fmt_entries = [(e[0], *e[1:]) for e in __import__("marshal").load(open(tmp_path / stamp.STAMP_NAME, "rb"))[4]]
    stamp.write(str(tmp_path), ("v", "full"), 2, fmt_entries, fixed=1)  # p.txt stands for the manifest
    src.write_text("another manifest")
    assert stamp.scan(str(tmp_path), str(tmp_path), ("v", "full")).changed is None
