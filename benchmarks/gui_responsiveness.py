"""The app while it trains: event-loop stalls, first live prediction, steadiness of the live
previews, and training speed in the app against the same training headless.

Opens the segstudio app on a built-in sample (with its example strokes), presses Train and,
unless ``--paint-every 0``, keeps "painting" (a short stroke into the paint layer every
``--paint-every`` ms, through napari's own ``Labels.paint``, which fires the same events as the
mouse) while the trainer runs in its background worker and live previews land in the
prediction layer.

* Stalls: a ``QTimer`` probe fires every ``PROBE_MS``; the lateness of each tick is how long the
  event loop could not run (``stalls_worst``: the five longest and when they ended), until the
  benchmark closes the app; closing is timed apart (``close_ms``: stop, shutdown, the viewer's
  close, each on the GUI thread).
* Previews: every preview is scored against the sample's (hidden) truth layer, nucleus Dice
  (interior ∪ boundary) over what the user looks at: the whole of a 2-D sample, the slices on
  screen (the current one ± 1) of a 3-D one, also where the app predicted the whole volume
  because that costs less (``preview_dice_whole_last``: the last preview over every voxel it
  predicted). Reported after the first
  ``--settle`` seconds: the standard deviation, and the largest drop below the best preview
  so far (goals on unchanged paint, i.e. ``--paint-every 0``: ≤ 0.02 and ≤ 0.05).
* Speed: after the app closes, the same config trains headless for the same time on the same
  image and paintings (same process and threads); the app's iterations over the headless ones
  (goal ≥ 0.8, previews included).
* Where the app's time goes (``time_app``, ``time_headless``; :class:`StepClock`): the
  trainer's optimisation steps (wall clock, median and total, and the CPU time of the thread
  that runs them, which is what a step costs when nothing else runs), the time it waited for its
  turn behind a live preview, and the live previews' own prediction time. A step whose wall time
  exceeds its thread's CPU time was held up: by the other threads taking the cores, or by
  waiting for Python's GIL held by the GUI thread. The app trains in a child process by
  default (``--train-in process``), where its steps are not timed (``time_app`` then has the
  previews only); ``--train-in thread`` trains in the app's worker thread as before.

The last line of output is one JSON object with every figure. Run it under a display::

    xvfb-run -a -s "-screen 0 1600x1000x24" python benchmarks/gui_responsiveness.py --paint-every 0
    xvfb-run -a -s "-screen 0 1600x1000x24" python benchmarks/gui_responsiveness.py --sample nuclei3d --seconds 60
    xvfb-run -a -s "-screen 0 1600x1000x24" python benchmarks/gui_responsiveness.py --redraw-ms 250   # the old redraw rate

Other goals on 2 CPU cores: ``stall_p99_ms`` ≤ 100 and ``first_prediction_s`` ≤ 5.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

PROBE_MS = 10


class StepClock:
    """Times the trainer's steps, its waits for a turn and the live previews, by wrapping
    ``Trainer.step``, ``ComputeTurns.__enter__`` and the preview worker's body (benchmark-side
    only: the app runs unchanged code underneath). :meth:`phase` starts a new tally."""

    def __init__(self) -> None:
        from segstudio._qt import preview
        from segstudio.core import device, trainer

        self.tally: dict[str, dict[str, list[float]]] = {}
        self._current: dict[str, list[float]] = {}
        self._trainer_threads: set[int] = set()
        self.phase("app")
        clock = self
        step, enter, predict = trainer.Trainer.step, device.ComputeTurns.__enter__, preview.predict_region

        def timed_step(self_: Any) -> float:
            clock._trainer_threads.add(threading.get_ident())
            t0, c0 = time.perf_counter(), time.thread_time()
            try:
                return step(self_)
            finally:
                clock._current["step_s"].append(time.perf_counter() - t0)
                clock._current["step_cpu_s"].append(time.thread_time() - c0)

        def timed_enter(self_: Any) -> Any:
            t0 = time.perf_counter()
            out = enter(self_)
            if threading.get_ident() in clock._trainer_threads:
                clock._current["wait_s"].append(time.perf_counter() - t0)
            return out

        def timed_predict(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return predict(*args, **kwargs)
            finally:
                clock._current["preview_s"].append(time.perf_counter() - t0)

        trainer.Trainer.step = timed_step
        device.ComputeTurns.__enter__ = timed_enter
        preview.predict_region = timed_predict

    def phase(self, name: str) -> None:
        self._current = self.tally[name] = {"step_s": [], "step_cpu_s": [], "wait_s": [], "preview_s": []}

    def summary(self, name: str) -> dict[str, Any]:
        t = self.tally[name]
        med = (lambda v: round(1000 * float(np.median(v)), 1) if v else None)
        return {
            "steps": len(t["step_s"]), "step_ms_median": med(t["step_s"]),
            "step_cpu_ms_median": med(t["step_cpu_s"]), "steps_s": round(sum(t["step_s"]), 2),
            "steps_cpu_s": round(sum(t["step_cpu_s"]), 2), "waited_for_previews_s": round(sum(t["wait_s"]), 2),
            "previews": len(t["preview_s"]), "previews_s": round(sum(t["preview_s"]), 2),
        }


def nucleus_dice(pred: np.ndarray, truth: np.ndarray) -> float:
    """Dice of labels 2 or 3 (interior ∪ boundary)."""
    p, t = pred >= 2, truth >= 2
    s = int(p.sum()) + int(t.sum())
    return 1.0 if s == 0 else 2.0 * int((p & t).sum()) / s


def steadiness(times: list[float], dice: list[float], settle: float) -> dict[str, float | None]:
    """Standard deviation and largest drop below the best-so-far of the previews after ``settle`` s."""
    late = [d for t, d in zip(times, dice) if t >= settle]
    if len(late) < 2:
        return {"preview_dice_std": None, "preview_worst_drop": None, "previews_scored": len(late)}
    best, drop = -1.0, 0.0
    for d in late:
        best = max(best, d)
        drop = max(drop, best - d)
    return {"preview_dice_std": round(float(np.std(late)), 4), "preview_worst_drop": round(drop, 4),
            "previews_scored": len(late), "preview_dice_last": round(late[-1], 4)}


def headless_iterations(config, image: np.ndarray, paintings: np.ndarray, seconds: float) -> int:
    """Iterations the same config trains headless in ``seconds`` (no previews consumed)."""
    from segstudio.core.data import SnapshotSource, TrainingImage
    from segstudio.core.trainer import Failed, Trainer

    cfg = config.replace(iterations=None, minutes=seconds / 60.0, checkpoint_every_s=1e9)
    src = SnapshotSource()
    src.put([TrainingImage(image, paintings)])
    trainer = Trainer(cfg, src, None)
    for ev in trainer.run():
        if isinstance(ev, Failed):
            raise RuntimeError(ev.message)
    return trainer.iteration


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="how long training runs")
    parser.add_argument("--quick", action="store_true", help="15 s of training")
    parser.add_argument("--paint-every", type=int, default=250, help="ms between strokes (0: no painting)")
    parser.add_argument("--settle", type=float, default=10.0, help="previews before this (s) are not scored")
    parser.add_argument("--sample", default="nuclei2d", choices=("nuclei2d", "nuclei3d"))
    parser.add_argument("--no-headless", action="store_true", help="skip the headless comparison")
    parser.add_argument("--redraw-ms", type=int, default=None,
                        help="redraw the progress line and loss curve every N ms instead of the app's "
                             "rate (0: never)")
    parser.add_argument("--hidden", action="store_true", help="train with the window hidden (no rendering)")
    parser.add_argument("--no-previews", action="store_true", help="no live previews while training")
    parser.add_argument("--no-objects", action="store_true",
                        help="objects do not follow the previews (the app's default: they do on small images)")
    parser.add_argument("--train-after", type=float, default=1.0,
                        help="seconds from the window showing to pressing Train (the app starts the "
                             "training process ahead, 1.5 s after it opens)")
    parser.add_argument("--train-in", choices=("process", "thread"), default="process",
                        help="where the app trains (its default: a child process on a CPU)")
    parser.add_argument("--config", action="append", default=[], metavar="FIELD=VALUE",
                        help="override a TrainConfig field of the app's training (e.g. ema_decay=0)")
    args = parser.parse_args(argv)
    seconds = 15.0 if args.quick else args.seconds

    from qtpy.QtCore import QElapsedTimer, QTimer
    from qtpy.QtWidgets import QApplication

    from segstudio._qt import widget as widget_module
    from segstudio._qt.app import build_viewer
    from segstudio._qt.preview import visible_region

    os.environ["SEGSTUDIO_TRAIN_IN"] = args.train_in
    steps = StepClock()
    if args.redraw_ms is not None:
        widget_module.REDRAW_MS = args.redraw_ms if args.redraw_ms > 0 else 10**9
    viewer, widget = build_viewer([], args.sample, show=not args.hidden)
    app = QApplication.instance()
    ctl = widget.controller
    ctl.set_settings(length="until stopped")
    if args.no_previews:
        ctl.set_settings(live_preview=False)
    if args.no_objects:
        ctl.objects.set_choices(follow=False)
    paint = ctl.paint_layers[0]
    shape = ctl.spatial_shape
    truth = next(layer.data for layer in viewer.layers if layer.name.endswith(" truth"))
    start_paint = np.array(paint.data, copy=True)
    rng = np.random.default_rng(0)

    clock = QElapsedTimer()
    lateness: list[float] = []
    late_at: list[float] = []  # seconds after Train of each tick
    state: dict[str, float] = {"t_train": -1.0, "first_pred": -1.0, "previews": 0, "strokes": 0, "whole_dice": -1.0}
    preview_t: list[float] = []
    preview_dice: list[float] = []
    preview_iteration: list[int] = []
    last_tick = [0.0]
    closing: dict[str, float] = {}  # ms the GUI thread spent in each step of closing

    def probe() -> None:
        now = clock.nsecsElapsed() / 1e6
        if last_tick[0] and state["t_train"] >= 0:
            lateness.append(max(0.0, now - last_tick[0] - PROBE_MS))
            late_at.append(now / 1000.0 - state["t_train"])
        last_tick[0] = now

    def on_prediction() -> None:
        state["previews"] += 1
        t = clock.nsecsElapsed() / 1e9 - state["t_train"]
        if state["first_pred"] < 0 and state["t_train"] >= 0:
            state["first_pred"] = t
        region = visible_region(ctl.viewer, ctl.image, ctl.settings.preview_region)
        region = tuple(slice(None) for _ in shape) if region is None else region
        labels = ctl.layers.prediction().labels()
        pred = labels[region]  # a view: scored at once, nothing kept
        predicted = ctl.preview_region()
        if predicted is None:
            state["whole_dice"] = nucleus_dice(np.asarray(labels), truth)
        preview_t.append(t)
        preview_iteration.append(ctl.iteration)
        preview_dice.append(nucleus_dice(np.asarray(pred), truth[region]))

    def stroke() -> None:
        if state["t_train"] < 0:
            return
        # A short background stroke (label 1) somewhere in the image, as a user would add.
        centre = [int(rng.integers(8, n - 8)) for n in shape]
        for step in range(6):
            coord = list(centre)
            coord[-1] = min(coord[-1] + 2 * step, shape[-1] - 1)
            paint.paint(tuple(coord), 1, refresh=True)
        state["strokes"] += 1

    def start() -> None:
        state["t_train"] = clock.nsecsElapsed() / 1e9
        ctl.start_training()

    def finish() -> None:
        probe_timer.stop()  # closing is timed apart (close_ms), not counted as a stall
        for name, step in (("stop", ctl.stop_training), ("shutdown", ctl.shutdown), ("viewer_close", viewer.close)):
            t0 = time.perf_counter()
            step()
            closing[name] = round(1e3 * (time.perf_counter() - t0), 1)
        app.quit()

    ctl.prediction_updated.connect(on_prediction)
    probe_timer = QTimer()
    probe_timer.setInterval(PROBE_MS)
    probe_timer.timeout.connect(probe)
    paint_timer = QTimer()
    paint_timer.setInterval(max(args.paint_every, 1))
    paint_timer.timeout.connect(stroke)

    if args.config:
        from bench_common import parse_sets

        overrides = parse_sets(args.config)
        build = ctl.build_config
        ctl.build_config = lambda **kw: build(**kw).replace(**overrides)  # what Train uses
    clock.start()
    probe_timer.start()
    if args.paint_every > 0:
        paint_timer.start()
    wait_ms = int(1000 * args.train_after)
    QTimer.singleShot(wait_ms, start)  # let the window settle first (and the user look)
    QTimer.singleShot(int(wait_ms + seconds * 1000), finish)
    app.exec()
    config = ctl.training.config
    app_iterations = ctl.iteration

    stalls = np.asarray(lateness) if lateness else np.zeros(1)
    result: dict = {
        "stall_p50_ms": round(float(np.percentile(stalls, 50)), 1),
        "stall_p99_ms": round(float(np.percentile(stalls, 99)), 1),
        "stall_max_ms": round(float(stalls.max()), 1),
        # the longest stalls (ms) and when they ended (s after Train)
        "stalls_worst": [[round(lateness[i], 1), round(late_at[i], 2)] for i in np.argsort(lateness)[::-1][:5]]
        if lateness else [],
        "first_prediction_s": round(state["first_pred"], 2) if state["first_pred"] >= 0 else None,
        "iterations": app_iterations,
        "previews": int(state["previews"]),
        "strokes": int(state["strokes"]),
        "seconds": seconds,
        "sample": args.sample,
        "redraw_ms": widget_module.REDRAW_MS,
        "hidden": args.hidden,
        "objects_follow": bool(ctl.objects.follows),
        "train_in": args.train_in,
        "train_after_s": args.train_after,
        "ema_decay": None if config is None else config.ema_decay,
        **steadiness(preview_t, preview_dice, args.settle),
        "preview_dice_whole_last": round(state["whole_dice"], 4) if state["whole_dice"] >= 0 else None,
        # per preview: seconds after Train, nucleus Dice, the trainer's iteration when it landed
        "preview_series": [[round(t, 2), round(d, 4), i] for t, d, i in zip(preview_t, preview_dice, preview_iteration)],
        "time_app": steps.summary("app"),
        "close_ms": closing,
    }
    if not args.no_headless and config is not None:
        t0 = time.perf_counter()
        steps.phase("headless")
        result["headless_iterations"] = headless_iterations(config, ctl.image.array(), start_paint, seconds)
        result["time_headless"] = steps.summary("headless")
        result["app_over_headless"] = round(app_iterations / max(result["headless_iterations"], 1), 3)
        result["headless_s"] = round(time.perf_counter() - t0, 1)
    print(
        f"gui {args.sample}: stall p99 {result['stall_p99_ms']} ms, max {result['stall_max_ms']} ms, "
        f"first live prediction {result['first_prediction_s']} s after Train, "
        f"{result['iterations']} iterations, {result['previews']} previews, {result['strokes']} strokes; "
        f"preview Dice after {args.settle:.0f} s: std {result['preview_dice_std']}, "
        f"worst drop below the best so far {result['preview_worst_drop']}"
        + (f"; app/headless iterations {result['app_over_headless']} "
           f"({result['iterations']} / {result['headless_iterations']})" if "app_over_headless" in result else "")
    )
    for name in ("app", "headless"):
        t = result.get(f"time_{name}")
        if t:
            print(f"  {name}: {t['steps']} steps, median {t['step_ms_median']} ms (thread CPU {t['step_cpu_ms_median']} ms), "
                  f"{t['steps_s']} s in steps ({t['steps_cpu_s']} s CPU), {t['waited_for_previews_s']} s waiting for "
                  f"previews, {t['previews']} previews taking {t['previews_s']} s")
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
