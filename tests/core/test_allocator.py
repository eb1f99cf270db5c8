"""glibc malloc tuning for training (core.allocator): when it applies, and that it keeps
blocks of a training step's size in the heap instead of mapping each one anew."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from segstudio.core import allocator

glibc = pytest.mark.skipif(allocator._glibc() is None, reason="glibc's malloc only (Linux)")

#: In a fresh process: tune (or not), then malloc a 4 MiB block and report whether glibc
#: served it with its own mmap (mallinfo2's count of mapped blocks went up).
PROBE = textwrap.dedent("""
    import ctypes, json, sys
    from segstudio.core.allocator import tune_allocator
    class Info(ctypes.Structure):
        _fields_ = [(n, ctypes.c_size_t) for n in
                    ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
                     "uordblks", "fordblks", "keepcost")]
    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = Info
    libc.malloc.restype = ctypes.c_void_p
    libc.free.argtypes = [ctypes.c_void_p]
    tuned = [tune_allocator(), tune_allocator()]
    before = libc.mallinfo2().hblks
    block = libc.malloc(4 << 20)
    mapped = libc.mallinfo2().hblks - before
    libc.free(block)
    print(json.dumps({"tuned": tuned, "mapped": mapped}))
""")


def _probe(**env: str) -> dict:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "SEGSTUDIO_MALLOC"}
    done = subprocess.run([sys.executable, "-c", PROBE], env={**clean, **env}, capture_output=True,
                          text=True, check=True, timeout=60)
    return json.loads(done.stdout.strip().splitlines()[-1])


@glibc
def test_tuned_allocator_keeps_a_step_sized_block_in_the_heap():
    assert _probe() == {"tuned": [True, True], "mapped": 0}


@glibc
def test_untouched_malloc_maps_the_same_block():
    # the reference the test above is read against: without tuning glibc maps it
    assert _probe(SEGSTUDIO_MALLOC="system") == {"tuned": [False, False], "mapped": 1}


@glibc
@pytest.mark.parametrize("name", ["MALLOC_ARENA_MAX", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_"])
def test_a_users_own_malloc_settings_win(name):
    out = _probe(**{name: "2" if name == "MALLOC_ARENA_MAX" else str(1 << 20)})
    assert out["tuned"] == [False, False]


def test_nothing_is_done_off_linux(monkeypatch):
    monkeypatch.setattr(allocator, "_result", None)
    monkeypatch.setattr(allocator.sys, "platform", "darwin")
    monkeypatch.delenv("SEGSTUDIO_MALLOC", raising=False)
    for name in allocator._USER_SETTINGS:
        monkeypatch.delenv(name, raising=False)
    assert allocator._glibc() is None
    assert allocator.tune_allocator() is False
