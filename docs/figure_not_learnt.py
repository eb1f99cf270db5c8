"""docs/screenshot_not_learnt.png: *show inferred* on a sloppy painting (the quality matrix's
nuclei 2-D, *sloppy* habit, seed 0): the background look-alikes (blue, under the strokes) and,
over the strokes, the parts training leaves out (grey, layer ``not learnt``): the ends of object
strokes and the outer pixels of outlines that ran on past the nuclei's edges.

    xvfb-run -a -s "-screen 0 1600x1000x24" python docs/figure_not_learnt.py
"""
import sys
import time
from pathlib import Path

import imageio.v3 as iio
import napari
import numpy as np
from qtpy.QtWidgets import QApplication

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import families as fam  # noqa: E402
import users  # noqa: E402

from segstudio._qt.widget import SegStudioWidget  # noqa: E402


def settle(seconds: float) -> None:
    end = time.time() + seconds
    while time.time() < end:
        QApplication.processEvents()
        time.sleep(0.05)


sample = fam.make("nuclei", 2, 0)
painting = users.paint(sample, "sloppy", 0)
viewer = napari.Viewer(show=True)
viewer.window._qt_window.resize(1400, 900)
viewer.add_image(sample.image, name="nuclei")
widget = SegStudioWidget(viewer)
viewer.window.add_dock_widget(widget, name="segstudio")
while len(widget.controller.classes) < len(painting.class_names):
    widget.controller.add_class(painting.class_names[len(widget.controller.classes)])
paint = widget.controller.paint_layers[0]
paint.data = painting.paintings.copy()
widget.inferred_check.setChecked(True)
start = time.time()
while "not learnt" not in viewer.layers and time.time() - start < 60:
    settle(0.1)
settle(1.0)
ys, xs = np.nonzero(viewer.layers["not learnt"].data)
viewer.reset_view()
viewer.camera.center = (float(np.median(ys)), float(np.median(xs)))
viewer.camera.zoom = viewer.camera.zoom * 3
settle(0.5)
iio.imwrite(ROOT / "docs" / "screenshot_not_learnt.png", viewer.screenshot(canvas_only=True))
viewer.close()
