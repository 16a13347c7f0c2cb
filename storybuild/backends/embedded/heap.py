"""Keep freed memory for reuse: numpy's large temporaries otherwise cost a page fault per 4 KB.

glibc returns every block over its mmap threshold (128 KB at first) to the kernel when it
is freed, so a renderer that allocates the same few megabytes of temporaries each frame
pays for mapping and zeroing them again each frame: a third of a frame's time went to the
kernel. Raising the threshold and the trim threshold keeps those pages in the heap, where
the next frame reuses them. The cost is memory a process keeps after a peak, bounded by
the trim threshold. Elsewhere than glibc this does nothing.
"""

from __future__ import annotations

import sys

_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3
MMAP_THRESHOLD = 32 << 20  # glibc's ceiling for this setting on 64-bit
TRIM_THRESHOLD = 256 << 20

_done = False


def keep_freed_memory() -> bool:
    """Tune this process's allocator once; True when it took effect."""
    global _done
    if _done or not sys.platform.startswith("linux"):
        return _done
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt  # the C library the interpreter already runs on
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    _done = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
                 and mallopt(_M_TOP_PAD, 16 << 20))
    return _done
