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
    stamp.write(str(tmp_path), ("v", "full"), 2, entries)
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


def test_scan_lists_the_outputs_it_found_intact_when_a_source_changed(tmp_path):
    src, out = make(tmp_path)
    assert stamp.scan(str(tmp_path), str(tmp_path), ("v", "full")) == (2, frozenset({"out.txt"}))
    src.write_text("another prompt")
    assert stamp.scan(str(tmp_path), str(tmp_path), ("v", "full")) == (None, frozenset({"out.txt"}))
    out.unlink()
    assert stamp.scan(str(tmp_path), str(tmp_path), ("v", "full")) == (None, frozenset())
