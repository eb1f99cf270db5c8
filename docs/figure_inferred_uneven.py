"""The README figure of *show inferred* on an uneven background: the quality matrix's *dim* 2-D
image (seed 0) with the casual painter's strokes, the background look-alikes overlaid with
*wide context* on (auto: the rule reads the image against the background nearby) and off
(one threshold for the image). Run under a display (Xvfb 1600 x 1000)::

    python docs/figure_inferred_uneven.py

Writes ``docs/inferred_uneven_dim.png`` (the two canvases side by side; needs ImageMagick).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "benchmarks"))


def main() -> None:
    import numpy as np
    import tifffile
    from qtpy.QtWidgets import QApplication

    import families as fam
    import users
    from make_screenshots import _spin
    from segstudio._qt.app import build_viewer

    sample = fam.make("dim", 2, 0)
    painting = users.paint(sample, "casual", 0)
    tmp = Path(tempfile.mkdtemp())
    tifffile.imwrite(tmp / "dim2d.tif", sample.image.astype(np.float32))
    viewer, widget = build_viewer([str(tmp / "dim2d.tif")], None, show=True)
    app = QApplication.instance()
    c = widget.controller

    def spin(seconds: float, until=None) -> None:
        _spin(app, seconds, until)

    spin(1.0)
    layer = c.paint_layers[0]
    layer.data[...] = painting.paintings
    layer.refresh()
    widget.inferred_check.setChecked(True)
    shots = []
    for wide in ("auto", "off"):
        widget.wide_combo.setCurrentText(wide)
        spin(60, until=lambda: c._inferred_decided is not None and c._inferred_decided[2] == (wide == "auto")
             and "inferred" in viewer.layers and not c.training.workers.busy("paintings"))
        spin(2.0)
        shots.append(tmp / f"{wide}.png")
        viewer.screenshot(str(shots[-1]), canvas_only=True)
    viewer.close()
    out = HERE / "inferred_uneven_dim.png"
    subprocess.run(["convert", *map(str, shots), "-trim", "-resize", "450x450", "+append", str(out)], check=True)
    print(out)


if __name__ == "__main__":
    main()
