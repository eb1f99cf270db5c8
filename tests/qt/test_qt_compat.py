"""The PySide6 6.12 reference-count work-around keeps long sessions alive."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.gui

SCRIPT = """
import sys
import segstudio._qt  # applies the guard where the binding needs it
from qtpy.QtCore import QObject, QTimer, Signal
from qtpy.QtWidgets import QApplication, QPushButton

app = QApplication([])

class Emitter(QObject):
    ping = Signal(object)

e = Emitter()
e.ping.connect(lambda v: None)
for i in range(30000):        # far more than True's natural reference count
    e.ping.emit(i)
button = QPushButton()
button.clicked.connect(lambda: None)
for i in range(30000):        # C++-emitted signal into a Python slot returning None
    button.click()
print("alive")
"""


def test_many_signals_do_not_crash_the_interpreter():
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "alive"
