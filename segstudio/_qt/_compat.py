"""Work-around for a reference-counting bug of PySide6 6.12 on Python < 3.12.

PySide6 6.12.0 drops one reference to ``True`` on every ``Signal.emit()`` made from Python and
one reference to ``None`` each time a C++-emitted signal calls a Python slot that returns
``None``. On Python 3.11 these singletons are ordinary objects, so after a few thousand
signals (a training run yields one per iteration) the interpreter aborts with
``Fatal Python error: bool_dealloc`` / ``none_dealloc``. Python 3.12 made the singletons
immortal, which is exactly what :func:`guard_singletons` emulates: it adds a huge constant to
their reference counts, so the leaked decrements can never reach zero.

The bug is detected at run time (a few emits of a probe signal), not guessed from a version
number, and nothing is changed where it is absent.
"""

from __future__ import annotations

import ctypes
import platform
import sys

#: Added to the reference counts of None/True/False when the bug is present.
IMMORTAL_OFFSET = 1 << 40
PROBE_EMITS = 16

_applied: bool | None = None


def signal_emit_leaks_true() -> bool:
    """``True`` if emitting a Qt signal from Python loses a reference to ``True``."""
    from qtpy.QtCore import QObject, Signal

    class _Probe(QObject):
        ping = Signal()

    probe = _Probe()
    before = sys.getrefcount(True)
    for _ in range(PROBE_EMITS):
        probe.ping.emit()
    return sys.getrefcount(True) <= before - PROBE_EMITS // 2


def guard_singletons() -> bool:
    """Make None/True/False effectively immortal if the binding has the bug; returns whether."""
    global _applied
    if _applied is not None:
        return _applied
    _applied = False
    if sys.version_info >= (3, 12) or platform.python_implementation() != "CPython":
        return False
    try:
        leaks = signal_emit_leaks_true()
    except Exception:  # noqa: BLE001 - no Qt binding: nothing to guard
        return False
    if leaks:
        for obj in (None, True, False):
            count = ctypes.c_ssize_t.from_address(id(obj))  # ob_refcnt is the first field
            if count.value < IMMORTAL_OFFSET:
                count.value += IMMORTAL_OFFSET
        _applied = True
    return _applied
