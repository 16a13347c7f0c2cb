"""The allocator setting that keeps per-frame numpy temporaries from being re-mapped."""

from __future__ import annotations

import subprocess
import sys

import pytest

PROBE = """
import resource, sys
import numpy as np
if sys.argv[1] == "tuned":
    from storybuild.backends.embedded.heap import keep_freed_memory
    assert keep_freed_memory()
rng = np.random.default_rng(0)
def churn():
    for _ in range(20):
        # a frame's worth of temporaries: sizes that change from frame to frame, some
        # freed while later ones are still alive
        arrays = []
        for n in rng.integers(100_000, 3_000_000, 12):
            arrays.append(np.ones(int(n)))
            if len(arrays) > 3:
                arrays.pop(0)
churn()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
churn()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def faults(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True)
    return int(out.stdout)


def _has_mallopt() -> bool:
    import ctypes

    try:
        return sys.platform.startswith("linux") and hasattr(ctypes.CDLL(None), "mallopt")
    except OSError:
        return False


@pytest.mark.skipif(not _has_mallopt(), reason="glibc's mallopt")
def test_freed_temporaries_are_reused_not_remapped():
    # Untuned, temporaries over the (adaptive) mmap threshold are mapped and zeroed afresh.
    assert faults("plain") > 10_000
    assert faults("tuned") < 1000
