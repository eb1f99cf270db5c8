"""The first impression of ``segstudio --sample nuclei2d`` on a small and a large screen: the
window covers most of the screen, the image is fitted to a canvas at least as wide as the dock,
and the dock needs no horizontal scroll bar.

Each screen size runs the app in its own Xvfb (``xvfb-run``); the picture it takes is kept in
``$SEGSTUDIO_SHOTS`` when that is set (to look at it).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

pytestmark = [pytest.mark.gui, pytest.mark.slow,
              pytest.mark.skipif(shutil.which("xvfb-run") is None, reason="needs xvfb-run")]

#: The window must cover at least this fraction of the screen's area.
MIN_SCREEN_FRACTION = 0.8
#: The image fills at least this fraction of the canvas along its limiting axis.
MIN_FILL = 0.9

SCRIPT = textwrap.dedent("""
    import json, sys
    from qtpy.QtWidgets import QApplication
    from segstudio._qt.app import build_viewer

    viewer, widget = build_viewer([], "nuclei2d", show=True)
    app = QApplication.instance()
    for _ in range(20):
        app.processEvents()
    window = viewer.window._qt_window
    canvas = viewer.window._qt_viewer.canvas.native
    screen = window.screen().geometry()
    layer = viewer.layers["nuclei2d"]
    extent = layer.extent.world[1] - layer.extent.world[0]  # data size in world units
    zoom = viewer.camera.zoom
    window.screen().grabWindow(0).save(sys.argv[1])
    print(json.dumps({
        "screen": [screen.width(), screen.height()],
        "window": [window.frameGeometry().width(), window.frameGeometry().height()],
        "maximized": window.isMaximized(),
        "canvas": [canvas.width(), canvas.height()],
        "dock": widget.width(),
        "dock_needs": widget.scroll.widget().minimumSizeHint().width(),
        "viewport": widget.scroll.viewport().width(),
        "hscroll": widget.scroll.horizontalScrollBar().isVisible(),
        "image_px": [float(e) * zoom for e in extent[-2:]],
    }))
    viewer.close()
""")


@pytest.mark.parametrize("size", [(1280, 800), (1600, 1000)], ids=["1280x800", "1600x1000"])
def test_the_app_opens_to_a_window_a_user_would_keep(tmp_path, size):
    shot = tmp_path / f"first_impression_{size[0]}x{size[1]}.png"
    env = {**os.environ, "SEGSTUDIO_HOME": str(tmp_path / "home")}
    env.pop("DISPLAY", None)
    proc = subprocess.run(
        ["xvfb-run", "-a", "-s", f"-screen 0 {size[0]}x{size[1]}x24", sys.executable, "-c", SCRIPT, str(shot)],
        capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    geo = json.loads(proc.stdout.strip().splitlines()[-1])
    if os.environ.get("SEGSTUDIO_SHOTS"):
        shutil.copy(shot, os.environ["SEGSTUDIO_SHOTS"])
    assert shot.stat().st_size > 0
    sw, sh = geo["screen"]
    ww, wh = geo["window"]
    assert geo["maximized"] or ww * wh >= MIN_SCREEN_FRACTION * sw * sh, geo
    assert geo["canvas"][0] >= geo["dock"], geo  # the image gets at least as much room as the dock
    assert not geo["hscroll"] and geo["viewport"] >= geo["dock_needs"], geo
    # fitted: the whole image is visible and fills the canvas along its limiting axis
    fill = [px / c for px, c in zip(geo["image_px"][::-1], geo["canvas"])]
    assert max(fill) <= 1.0 + 1e-6 and max(fill) >= MIN_FILL, geo
