"""CPU the idle app burns: process CPU seconds per second of wall clock over 10 s, with the
training progress bar as a busy (animated) indicator or not.

Why it exists: Qt animates a busy indicator at the screen's frame rate, and with napari's
OpenGL canvas in the window every frame recomposes the whole window. Under Xvfb (software
OpenGL) on 2 cores that cost 0.81-0.83 CPU s per s against 0.01-0.02 without it, taken from
training; the app no longer shows one. Run under a display::

    xvfb-run -a -s "-screen 0 1600x1000x24" python benchmarks/idle_cpu.py busy
    xvfb-run -a -s "-screen 0 1600x1000x24" python benchmarks/idle_cpu.py idle
"""

from __future__ import annotations

import json
import sys
import time

import psutil
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QApplication

from segstudio._qt.app import build_viewer


def main(argv: list[str] | None = None) -> dict[str, float | bool]:
    """Open the app on the 2D sample, wait 3 s, measure 10 s; ``busy``: a busy indicator shown."""
    args = sys.argv[1:] if argv is None else argv
    busy = bool(args) and args[0] == "busy"
    viewer, widget = build_viewer([], "nuclei2d", show=True)
    app = QApplication.instance()
    proc = psutil.Process()
    out: dict[str, float] = {}

    def start() -> None:
        if busy:
            widget.progress_bar.setRange(0, 0)
            widget.progress_bar.setVisible(True)
        out["t0"], out["c0"] = time.perf_counter(), sum(proc.cpu_times()[:2])

    def stop() -> None:
        out["cpu_per_s"] = (sum(proc.cpu_times()[:2]) - out["c0"]) / (time.perf_counter() - out["t0"])
        viewer.close()
        app.quit()

    QTimer.singleShot(3000, start)
    QTimer.singleShot(13000, stop)
    app.exec()
    result = {"busy": busy, "cpu_per_s": round(out["cpu_per_s"], 3)}
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
