"""store.lock: one process at a time; the second waits or says who holds the project."""

from __future__ import annotations

import threading
import time

import pytest

from storybuild.errors import LockedError
from storybuild.store.projectlock import ProjectLock


def test_no_wait_names_the_holder(tmp_path):
    with ProjectLock(tmp_path, what="build"):
        with pytest.raises(LockedError) as err:
            ProjectLock(tmp_path, wait=False).acquire()
    assert "(pid " in err.value.message and "storybuild build" in err.value.message
    assert "--no-wait" in err.value.hint


def test_a_waiting_lock_gets_it_when_released(tmp_path):
    first = ProjectLock(tmp_path)
    first.acquire()
    waited = []
    got = threading.Event()

    def second():
        with ProjectLock(tmp_path, on_wait=waited.append):
            got.set()

    thread = threading.Thread(target=second)
    thread.start()
    time.sleep(0.1)
    assert not got.is_set() and waited and "pid" in waited[0]
    first.release()
    thread.join(5)
    assert got.is_set()
