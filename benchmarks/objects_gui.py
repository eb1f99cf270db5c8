"""Objects in the app: what the objects layer and table cost the GUI thread, and the worker.

For 2D synthetic nuclei images of each ``--sizes`` (their true classes standing in for the
prediction), the app's *Find objects* runs ``--repeats`` times through the controller: the
request is made on the GUI thread, the objects and their table in the worker
(:func:`segstudio._qt.objects.make_objects`), and :meth:`segstudio._qt.objects.Objects.show`
writes the objects layer (napari draws its outlines) and the table on the GUI thread. The
draw that follows (``processEvents``) is timed on its own: under Xvfb it is software OpenGL,
so it says more about this machine than about the app.

Run under a display: ``xvfb-run -a -s "-screen 0 1600x1000x24" python benchmarks/objects_gui.py``.
The last line of output is one JSON object; the goal is ``show_ms`` <= 50 for the sizes whose
objects follow the live preview by default (up to
:data:`segstudio._qt.objects.FOLLOW_MAX_VOXELS`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import machine  # noqa: E402

NAMES = ("background", "nucleus", "boundary")


def measure(size: int, repeats: int) -> dict[str, float]:
    """Median GUI-thread and worker times of *Find objects* on a ``size`` x ``size`` image."""
    import napari
    from qtpy.QtWidgets import QApplication

    from segstudio._qt import objects as objects_module
    from segstudio._qt.widget import SegStudioWidget
    from segstudio.core.samples import synthetic_nuclei

    sample = synthetic_nuclei((size, size), seed=0, paint=False)
    viewer = napari.Viewer(show=True)
    layer = viewer.add_image(sample.image, name="image")
    widget = SegStudioWidget(viewer)
    viewer.window.add_dock_widget(widget, area="right")
    widget.objects_section.expand(animate=False)
    app = QApplication.instance()
    c = widget.controller
    c.set_image_layer(layer)
    c.rename_class(1, NAMES[1])
    c.add_class(NAMES[2])
    c.objects.set_choices(follow=False)
    c.layers.set_prediction(sample.truth.astype(np.uint8))
    times: dict[str, list[float]] = {"request_ms": [], "worker_s": [], "show_ms": [], "draw_ms": []}
    real_make, real_show = objects_module.make_objects, c.objects.show

    def timed_make(request):
        t = time.perf_counter()
        out = real_make(request)
        times["worker_s"].append(time.perf_counter() - t)
        return out

    def timed_show(result):
        t = time.perf_counter()
        real_show(result)
        times["show_ms"].append(1e3 * (time.perf_counter() - t))
        t = time.perf_counter()
        app.processEvents()
        times["draw_ms"].append(1e3 * (time.perf_counter() - t))

    objects_module.make_objects = timed_make
    c.objects.show = timed_show
    try:
        for i in range(repeats + 1):  # the first one also makes the layer: not counted
            t = time.perf_counter()
            c.find_objects()
            times["request_ms"].append(1e3 * (time.perf_counter() - t))
            while c.busy or len(times["show_ms"]) <= i:
                app.processEvents()
                time.sleep(0.002)
    finally:
        objects_module.make_objects = real_make
    n = c.objects.shown.n
    viewer.close()
    app.processEvents()
    out = {k: float(np.median(v[1:])) for k, v in times.items()}
    return {"size": size, "objects": n, **{k: round(v, 3 if k == "worker_s" else 1) for k, v in out.items()}}


def main(argv: list[str] | None = None) -> list[dict[str, float]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=(512, 1024, 1448, 2048))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="512 and 1024, 3 repeats")
    args = parser.parse_args(argv)
    sizes, repeats = ((512, 1024), 3) if args.quick else (args.sizes, args.repeats)
    print(f"machine: {machine()}", flush=True)
    rows = []
    for size in sizes:
        row = measure(size, repeats)
        print(f"{size} x {size}: {row['objects']} objects; GUI thread: request {row['request_ms']} ms, "
              f"show {row['show_ms']} ms (then draw {row['draw_ms']} ms); worker {row['worker_s']} s", flush=True)
        rows.append(row)
    print(json.dumps(rows))
    return rows


if __name__ == "__main__":
    main()
