"""Painting a large volume while the app trains: how long training stops after each stroke.

Usage::

    xvfb-run -a python benchmarks/gui_paint_volume.py [--shape 64 512 512] [--seconds 40]

Opens the app's widget on a volume of blurred blobs (``paint_change_time.volume``: strokes of
both classes on three slices), presses Train (until stopped, the app's defaults otherwise),
and from 8 s after Train paints a short background stroke every 3 s, as a user adds
corrections while watching. A 100 ms timer reads the app's iteration count. Prints one JSON
line: per stroke, the longest time without a new step in the 3 s after it (training waiting
for the new paintings), and when the class table's counts took it in (the trainer's
``WeightsUpdated``); the steps made in all.

Run it with ``PYTHONPATH`` set to a worktree of an older commit to time that code.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shape", type=int, nargs="+", default=[64, 512, 512])
    ap.add_argument("--seconds", type=float, default=40.0)
    args = ap.parse_args()

    import napari
    from qtpy.QtCore import QTimer
    from qtpy.QtWidgets import QApplication

    import segstudio
    from paint_change_time import volume
    from segstudio._qt.widget import SegStudioWidget

    img, paint0 = volume(tuple(args.shape))
    viewer = napari.Viewer(show=True)
    viewer.add_image(img, name="volume")
    widget = SegStudioWidget(viewer)
    viewer.window.add_dock_widget(widget, area="right")
    app = QApplication.instance()
    c = widget.controller
    paint = c.paint_layers[0]
    paint.data = paint0.copy()
    widget.length_combo.setCurrentText("until stopped")

    t0 = [0.0]
    ticks: list[tuple[float, int]] = []
    strokes: list[float] = []
    counts: list[tuple[float, int]] = []
    c.weights_changed.connect(lambda w: counts.append((time.perf_counter(), int(w.counts[0]))))

    def tick() -> None:
        ticks.append((time.perf_counter() - t0[0], int(c.iteration)))

    def stroke() -> None:
        z, y = args.shape[0] // 2, 20 + 12 * len(strokes)
        for x in range(20, 36):
            paint.paint((z, y, x), 1, refresh=False)
        paint.refresh()
        strokes.append(time.perf_counter() - t0[0])

    def start() -> None:
        if c.weights is None or not any(c.weights.counts):  # the first paintings not weighed yet
            QTimer.singleShot(500, start)
            return
        t0[0] = time.perf_counter()
        QTimer.singleShot(int(1000 * args.seconds), finish)
        widget.train_btn.click()
        timer.start()
        painter.start()

    def finish() -> None:
        timer.stop()
        painter.stop()
        c.stop_training()
        c.shutdown()
        viewer.close()
        app.quit()

    timer = QTimer()
    timer.setInterval(100)
    timer.timeout.connect(tick)
    painter = QTimer()
    painter.setInterval(3000)
    painter.timeout.connect(lambda: stroke() if time.perf_counter() - t0[0] >= 8.0 else None)
    QTimer.singleShot(3000, start)
    app.exec()

    counts = [(a - t0[0], n) for a, n in counts if a >= t0[0]]
    t = np.array([a for a, _ in ticks])
    it = np.array([b for _, b in ticks])
    per_stroke = []
    for s in strokes:
        window = (t >= s) & (t <= s + 3.0)
        moved = t[window][np.flatnonzero(np.diff(it[window]) > 0) + 1] if window.sum() > 1 else np.array([])
        edges = np.concatenate([[s], moved, [min(s + 3.0, t[-1])]])
        before = max((n for a, n in counts if a <= s), default=0)
        taken = next((round(a - s, 2) for a, n in counts if a > s and n > before), None)
        per_stroke.append({"at_s": round(s, 1), "longest_without_a_step_s": round(float(np.diff(edges).max()), 2),
                           "counts_in_after_s": taken})
    print(json.dumps({"code": segstudio.__file__.rsplit("/segstudio/", 1)[0], "shape": args.shape,
                      "iterations": int(it[-1]) if len(it) else 0, "seconds": args.seconds,
                      "median_step_s": round(float(np.median(np.diff(t[np.flatnonzero(np.diff(it) > 0) + 1]))), 2)
                      if (np.diff(it) > 0).sum() > 1 else None,
                      "strokes": per_stroke}))


if __name__ == "__main__":
    main()
