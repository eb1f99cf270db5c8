"""GUI responsiveness while training: event-loop stalls and time to the first live prediction.

Opens the segstudio app on the built-in 2D sample (with its example strokes), presses Train,
and keeps "painting" (a short stroke into the paint layer every ``--paint-every`` ms, through
napari's own ``Labels.paint``, which fires the same events as the mouse) while the trainer runs
in its background worker and live previews land in the prediction layer.

A ``QTimer`` probe fires every ``PROBE_MS``; the lateness of each tick is how long the event
loop could not run (a "stall"). The last line of output is one JSON object::

    {"stall_p50_ms": ..., "stall_p99_ms": ..., "stall_max_ms": ..., "first_prediction_s": ...,
     "iterations": ..., "previews": ..., "strokes": ..., "seconds": ...}

Run it under a display (``xvfb-run -a -s "-screen 0 1600x1000x24" python
benchmarks/gui_responsiveness.py``); goals: ``stall_p99_ms`` ≤ 100 and ``first_prediction_s``
≤ 5 on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

PROBE_MS = 10


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="how long training runs")
    parser.add_argument("--quick", action="store_true", help="15 s of training")
    parser.add_argument("--paint-every", type=int, default=250, help="ms between strokes")
    parser.add_argument("--sample", default="nuclei2d", choices=("nuclei2d", "nuclei3d"))
    args = parser.parse_args(argv)
    seconds = 15.0 if args.quick else args.seconds

    from qtpy.QtCore import QElapsedTimer, QTimer
    from qtpy.QtWidgets import QApplication

    from segstudio._qt.app import build_viewer

    viewer, widget = build_viewer([], args.sample, show=True)
    app = QApplication.instance()
    ctl = widget.controller
    ctl.set_settings(length="until stopped")
    paint = ctl.paint_layers[0]
    shape = ctl.spatial_shape
    rng = np.random.default_rng(0)

    clock = QElapsedTimer()
    lateness: list[float] = []
    state: dict[str, float] = {"t_train": -1.0, "first_pred": -1.0, "previews": 0, "strokes": 0}
    last_tick = [0.0]

    def probe() -> None:
        now = clock.nsecsElapsed() / 1e6
        if last_tick[0] and state["t_train"] >= 0:
            lateness.append(max(0.0, now - last_tick[0] - PROBE_MS))
        last_tick[0] = now

    def on_prediction() -> None:
        state["previews"] += 1
        if state["first_pred"] < 0 and state["t_train"] >= 0:
            state["first_pred"] = clock.nsecsElapsed() / 1e9 - state["t_train"]

    def stroke() -> None:
        if state["t_train"] < 0:
            return
        # A short background stroke (label 1) somewhere in the image, as a user would add.
        centre = [int(rng.integers(8, n - 8)) for n in shape]
        label = 1
        for step in range(6):
            coord = list(centre)
            coord[-1] = min(coord[-1] + 2 * step, shape[-1] - 1)
            paint.paint(tuple(coord), label, refresh=True)
        state["strokes"] += 1

    def start() -> None:
        state["t_train"] = clock.nsecsElapsed() / 1e9
        ctl.start_training()

    def finish() -> None:
        ctl.stop_training()
        ctl.shutdown()
        viewer.close()
        app.quit()

    ctl.prediction_updated.connect(on_prediction)
    probe_timer = QTimer()
    probe_timer.setInterval(PROBE_MS)
    probe_timer.timeout.connect(probe)
    paint_timer = QTimer()
    paint_timer.setInterval(args.paint_every)
    paint_timer.timeout.connect(stroke)

    clock.start()
    probe_timer.start()
    paint_timer.start()
    QTimer.singleShot(1000, start)  # let the window settle first
    QTimer.singleShot(int(1000 + seconds * 1000), finish)
    app.exec()

    stalls = np.asarray(lateness) if lateness else np.zeros(1)
    result = {
        "stall_p50_ms": round(float(np.percentile(stalls, 50)), 1),
        "stall_p99_ms": round(float(np.percentile(stalls, 99)), 1),
        "stall_max_ms": round(float(stalls.max()), 1),
        "first_prediction_s": round(state["first_pred"], 2) if state["first_pred"] >= 0 else None,
        "iterations": ctl.iteration,
        "previews": int(state["previews"]),
        "strokes": int(state["strokes"]),
        "seconds": seconds,
        "sample": args.sample,
    }
    print(
        f"gui {args.sample}: stall p99 {result['stall_p99_ms']} ms, max {result['stall_max_ms']} ms, "
        f"first live prediction {result['first_prediction_s']} s after Train, "
        f"{result['iterations']} iterations, {result['previews']} previews, {result['strokes']} strokes"
    )
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
