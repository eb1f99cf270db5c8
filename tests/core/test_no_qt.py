"""segstudio.core must import neither Qt nor napari (checked in a fresh interpreter)."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import segstudio.core


def test_core_imports_no_qt_or_napari():
    modules = [m.name for m in pkgutil.walk_packages(segstudio.core.__path__, "segstudio.core.")]
    assert "segstudio.core.trainer" in modules
    code = (
        "import sys\n"
        + "".join(f"import {m}\n" for m in modules)
        + "bad = [m for m in sys.modules if m.split('.')[0] in "
        "('napari', 'qtpy', 'PyQt5', 'PyQt6', 'PySide2', 'PySide6', 'superqt', 'vispy', 'pyqtgraph')]\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
