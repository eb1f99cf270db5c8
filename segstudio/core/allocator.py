"""Keep glibc's malloc from handing PyTorch's tensor memory back to the system at every step.

On Linux, glibc serves each allocation above ``M_MMAP_THRESHOLD`` (128 KiB until a large block
is freed, then adjusted on the fly) with its own ``mmap`` and returns it with ``munmap`` when
freed, and gives the top of the heap back (``M_TRIM_THRESHOLD``) as soon as it is freed. A
training step allocates and frees the same activations and gradients, megabytes each, every
step: each comes back as fresh pages, and the kernel zeroes and maps them again (page faults
inside every convolution and its backward pass). On the 2-core machine the 2-D sample trained
at 20 steps/s this way and at 30 with the blocks kept, the 3-D sample at 7.7 and 8.2
(``benchmarks/allocator.py``, ``benchmarks/RESULTS.md``).

:func:`tune_allocator` fixes both thresholds (blocks up to 32 MiB stay in the heap; up to
256 MiB of free heap is kept) and puts threads that have no heap yet on the main heap
(``M_ARENA_MAX`` 1: a thread's own arena is trimmed whatever the thresholds; a trainer in a
thread spent 44 ms of CPU a step with the thresholds alone, 32 with one heap, 26 headless).
Call it early (the app does when it opens; the trainer once per process). A user's own
``MALLOC_*`` environment variables win, and ``SEGSTUDIO_MALLOC=system`` leaves malloc alone.
Elsewhere (macOS, Windows, musl) nothing is done.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
import threading

__all__ = ["ARENA_MAX", "MMAP_THRESHOLD", "TRIM_THRESHOLD", "tune_allocator"]

#: Allocations up to this size come from the heap, not from their own ``mmap``.
MMAP_THRESHOLD = 32 << 20
#: Free memory at the top of the heap kept for the next step instead of given back.
TRIM_THRESHOLD = 256 << 20
#: Heaps ("arenas") for all threads.
ARENA_MAX = 1

# mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8
#: Environment variables that mean the user tuned malloc already.
_USER_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_ARENA_MAX", "MALLOC_TOP_PAD_")

_lock = threading.Lock()
_result: bool | None = None


def _glibc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None
    # only glibc has gnu_get_libc_version (not musl)
    return libc if hasattr(libc, "gnu_get_libc_version") and hasattr(libc, "mallopt") else None


def tune_allocator() -> bool:
    """Set glibc's malloc thresholds for training (once per process; later calls return the
    first answer). Returns whether they were set: ``False`` off glibc, when the user set a
    ``MALLOC_*`` variable, or with ``SEGSTUDIO_MALLOC=system``."""
    global _result
    with _lock:
        if _result is not None:
            return _result
        _result = False
        if os.environ.get("SEGSTUDIO_MALLOC", "").lower() == "system":
            return False
        if any(name in os.environ for name in _USER_SETTINGS):
            return False
        libc = _glibc()
        if libc is None:
            return False
        ok = libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
        ok = libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1 and ok
        ok = libc.mallopt(_M_ARENA_MAX, ARENA_MAX) == 1 and ok
        _result = ok
        return ok
