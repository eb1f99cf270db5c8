"""The ``segstudio`` desktop app: a napari viewer with the segstudio dock widget."""

from __future__ import annotations

import os
import sys
from typing import Any

from segstudio._qt.workers import wait_for_background_work

#: Environment variable: close the app this many ms after the event loop started (smoke tests,
#: screenshots).
QUIT_AFTER_ENV = "SEGSTUDIO_QUIT_AFTER_MS"
SAMPLES = ("nuclei2d", "nuclei3d")
WINDOW_TITLE = "segstudio"
#: The window covers this fraction of the screen's available area (width and height); on
#: screens narrower than ``WIDE_SCREEN_PX`` all of it (the canvas needs the room).
SCREEN_FRACTION = 0.9
WIDE_SCREEN_PX = 1600
#: After the window closed, the app says "stopping…" when the background stop takes longer.
QUIET_STOP_S = 0.5
#: The dock takes this fraction of the window's width, or what it needs when that is more.
DOCK_FRACTION = 0.28


def load_layers(images: list[str]) -> list[tuple[Any, dict[str, Any], str]]:
    """Read every image (before any window opens, so a bad path is one clear error)."""
    from segstudio._napari._reader import layer_data_from_file

    out = []
    for path in images:
        out.extend(layer_data_from_file(path))
    return out


def sample_layers(name: str) -> list[tuple[Any, dict[str, Any], str]]:
    from segstudio._napari import _sample
    from segstudio.core.errors import UserInputError

    if name not in SAMPLES:
        raise UserInputError(f"unknown sample {name!r}: expected one of {', '.join(SAMPLES)}")
    return _sample.sample_2d() if name == "nuclei2d" else _sample.sample_3d()


def add_layer_data(viewer: Any, layer_data: list[tuple[Any, dict[str, Any], str]]) -> None:
    for data, kwargs, kind in layer_data:
        getattr(viewer, f"add_{kind}")(data, **kwargs)


def build_viewer(images: list[str], sample: str | None = None, *, show: bool = True,
                 project: str | None = None) -> tuple[Any, Any]:
    """Create the viewer with its layers and the dock widget; returns ``(viewer, widget)``.

    ``project``: a project folder to open (its image, paintings, classes and last model).
    """
    import napari

    from segstudio._qt.widget import SegStudioWidget

    layer_data = load_layers(list(images))
    if sample:
        layer_data += sample_layers(sample)
    viewer = napari.Viewer(title=WINDOW_TITLE, show=show)
    add_layer_data(viewer, layer_data)
    widget = SegStudioWidget(viewer)
    dock = viewer.window.add_dock_widget(widget, name="segstudio", area="right")
    # Paint layer first in the layer list selection, so the user can paint right away.
    if widget.controller.paint_layers:
        viewer.layers.selection.active = widget.controller.paint_layers[0]
    if project:
        widget.controller.open_project(project)
    fit_window(viewer, dock, widget)
    return viewer, widget


def fit_window(viewer: Any, dock: Any, widget: Any) -> None:
    """Size the window to the screen (wide enough that the canvas is at least as wide as the
    dock), give the dock the width it needs, and fit the image to the canvas."""
    from qtpy.QtCore import Qt
    from qtpy.QtWidgets import QApplication

    QApplication.processEvents()  # the widgets are polished: their sizes are final
    widget.fit_width()
    window = viewer.window._qt_window
    screen = window.screen() or QApplication.primaryScreen()
    area = screen.availableGeometry()
    fraction = SCREEN_FRACTION if area.width() >= WIDE_SCREEN_PX else 1.0
    dock_width = max(widget.minimumWidth(), int(area.width() * fraction * DOCK_FRACTION))
    others = window.width() - viewer.window._qt_viewer.canvas.native.width() - dock.width()
    w = min(area.width(), max(int(area.width() * fraction), others + 2 * dock_width))
    h = int(area.height() * fraction)
    window.resize(w, h)
    window.move(area.x() + (area.width() - w) // 2, area.y() + (area.height() - h) // 2)
    window.resizeDocks([dock], [dock_width], Qt.Orientation.Horizontal)
    QApplication.processEvents()  # the canvas gets its final size
    viewer.reset_view()


def main(images: list[str], sample: str | None = None, demo: bool = False, project: str | None = None) -> int:
    """Open the app; ``demo`` = the 2D sample with its example strokes, training started."""
    import napari
    from qtpy.QtCore import QTimer

    if demo and not sample and not images:
        sample = "nuclei2d"
    viewer, widget = build_viewer(images, sample, project=project)
    if demo:
        widget.controller.set_settings(length="until stopped")
        widget.length_combo.setCurrentText("until stopped")
        QTimer.singleShot(300, widget.controller.start_training)
    quit_after = os.environ.get(QUIT_AFTER_ENV)
    if quit_after:
        QTimer.singleShot(int(quit_after), viewer.close)
    napari.run()
    if not widget.controller.wait_stopped(QUIET_STOP_S):
        print("segstudio: stopping… (writing the last checkpoint and autosave)", file=sys.stderr, flush=True)
    wait_for_background_work()
    return 0
