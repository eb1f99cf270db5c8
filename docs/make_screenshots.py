"""Make the README screenshots: the app on the 2D and 3D samples after a short training run,
and the objects of the 2D sample with their table and object scores.

Run under a display (``make screenshots`` uses a 1600 x 1000 Xvfb when there is none)::

    python docs/make_screenshots.py [--seconds 30] [--only 2d|3d|objects|images]

The window is sized the way the app sizes it on that screen. Writes ``docs/screenshot_2d.png``,
``docs/screenshot_3d.png``, ``docs/screenshot_objects.png`` and ``docs/screenshot_images.png`` (a project of six
2D images, two of them painted, after training, *Predict all* and *Next unreviewed*).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _spin(app, seconds: float, until=None) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        app.processEvents()
        if until is not None and until():
            return
        time.sleep(0.02)


#: The objects picture: the view zoomed this much beyond "fit", on the largest object.
OBJECTS_ZOOM = 2.5


def shoot(sample: str, out: Path, seconds: float, objects: bool = False) -> None:
    from qtpy.QtWidgets import QApplication

    from segstudio._qt.app import build_viewer

    viewer, widget = build_viewer([], sample, show=True)
    app = QApplication.instance()
    c = widget.controller
    widget.preset_combo.setCurrentText("fast")
    widget.length_combo.setCurrentText("until stopped")
    _spin(app, 0.5)
    viewer.reset_view()
    if sample == "nuclei3d":
        viewer.dims.set_current_step(0, c.spatial_shape[0] // 2)
    _spin(app, 1.0)
    previews = [0]
    c.prediction_updated.connect(lambda: previews.__setitem__(0, previews[0] + 1))
    widget.train_btn.click()
    started = time.monotonic()
    _spin(app, seconds, until=lambda: c.last_error is not None)
    if c.last_error:
        raise SystemExit(f"{sample}: {c.last_error}")
    # Make sure an overlay and a loss curve are there before the picture is taken.
    _spin(app, 120, until=lambda: previews[0] > 0 and len(c.loss_values) > 5 and not c.preview_busy)
    widget.redraw_progress()
    if c.paint_layers:
        viewer.layers.selection.active = c.paint_layers[0]
        widget.class_table.selectRow(1)
    viewer.reset_view()  # the canvas has its final size only now
    _spin(app, 1.0)
    if objects:
        show_objects(app, viewer, widget)
    viewer.screenshot(str(out), canvas_only=False)
    print(f"{out}: {c.iteration} iterations in {time.monotonic() - started:.0f} s", flush=True)
    c.stop_training()
    _spin(app, 60, until=lambda: c.state == "idle")
    viewer.close()
    _spin(app, 0.5)


def show_objects(app, viewer, widget) -> None:
    """The Objects section open on the largest object (zoomed in), and the object scores
    against the sample's true objects."""
    from qtpy.QtCore import Qt

    c = widget.controller
    section = widget.objects_section
    c.stop_training()  # the table and the scores of the same, last prediction
    _spin(app, 60, until=lambda: c.state == "idle")
    _spin(app, 60, until=lambda: c.objects.shown is not None and not c.busy)
    section.expand(animate=False)
    truth = f"{c.image_layer.name} true objects"
    widget.truth_combo.setCurrentText(truth)
    widget.metrics_btn.click()
    _spin(app, 120, until=lambda: c.last_object_scores is not None or c.last_error is not None)
    section.table.sortByColumn(2, Qt.SortOrder.DescendingOrder)
    section.table.selectRow(0)  # the largest object: the view goes to it
    camera = getattr(viewer, "scene", viewer).camera
    camera.zoom *= OBJECTS_ZOOM
    viewer.layers.selection.active = c.objects.layer
    _spin(app, 1.0)
    bar = widget.scroll.verticalScrollBar()
    bar.setValue(section.y() - 8)  # the Objects section at the top of the dock
    _spin(app, 1.0)


def shoot_images(out: Path, seconds: float, n: int = 6) -> None:
    """A project of ``n`` synthetic nuclei images (strokes on two) made with ``segstudio
    project create``, trained, predicted (*Predict all*), then *Next unreviewed*."""
    import tempfile

    import numpy as np
    import tifffile
    from qtpy.QtWidgets import QApplication

    from segstudio._qt.app import build_viewer
    from segstudio.cli import main as cli
    from segstudio.core.samples import synthetic_nuclei

    work = Path(tempfile.mkdtemp(prefix="segstudio-shot-"))
    images, labels = [], []
    for i in range(n):
        sample = synthetic_nuclei((384, 384), seed=10 + i, name=f"cells{i + 1}")
        images.append(work / f"cells{i + 1}.tif")
        tifffile.imwrite(images[-1], sample.image)
        if i < 2:
            labels.append(work / f"cells{i + 1}_strokes.npy")
            np.save(labels[-1], sample.paintings)
    names = ("background", "nucleus", "boundary")
    if cli(["project", "create", str(work / "project"), *map(str, images), "--labels", *map(str, labels),
            "--classes", *names]) != 0:
        raise SystemExit("project create failed")
    viewer, widget = build_viewer([], None, show=True, project=str(work / "project"))
    app = QApplication.instance()
    c = widget.controller
    widget.length_combo.setCurrentText("until stopped")
    _spin(app, 1.0)
    widget.train_btn.click()
    _spin(app, seconds, until=lambda: c.last_error is not None)
    c.stop_training()
    _spin(app, 120, until=lambda: c.state == "idle" and not c.busy)
    c.predict_all()
    _spin(app, 300, until=lambda: all(e.predicted_by for e in c.images.entries) and not c.images.predicting)
    widget.image_list.next_btn.click()
    _spin(app, 60, until=lambda: c.images.switching is None and not c.busy)
    if c.last_error:
        raise SystemExit(f"images: {c.last_error}")
    viewer.layers.selection.active = c.paint_layers[0]
    viewer.reset_view()
    _spin(app, 1.0)
    viewer.screenshot(str(out), canvas_only=False)
    print(f"{out}: {c.iteration} iterations, {n} images predicted", flush=True)
    viewer.close()
    _spin(app, 0.5)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=30.0, help="training time per screenshot")
    p.add_argument("--only", choices=("2d", "3d", "objects", "images"))
    args = p.parse_args(argv)
    if args.only in (None, "2d"):
        shoot("nuclei2d", HERE / "screenshot_2d.png", args.seconds)
    if args.only in (None, "3d"):
        shoot("nuclei3d", HERE / "screenshot_3d.png", args.seconds)
    if args.only in (None, "objects"):
        shoot("nuclei2d", HERE / "screenshot_objects.png", args.seconds, objects=True)
    if args.only in (None, "images"):
        shoot_images(HERE / "screenshot_images.png", args.seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
