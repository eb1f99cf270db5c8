"""The CI path for GUI tests: a real napari viewer renders under Xvfb."""

from __future__ import annotations

import numpy as np
import pytest

from segstudio.core.samples import sample_2d

pytestmark = pytest.mark.gui


def test_viewer_shows_the_sample_and_renders(make_napari_viewer):
    viewer = make_napari_viewer(show=True)
    sample = sample_2d()
    viewer.add_image(sample.image, name=sample.name)
    viewer.add_labels(sample.paintings, name="paintings")
    shot = viewer.screenshot(canvas_only=True, flash=False)
    assert shot.ndim == 3 and shot.shape[-1] == 4
    # Something was drawn: the canvas is not one flat colour.
    assert np.ptp(shot[..., :3]) > 0
