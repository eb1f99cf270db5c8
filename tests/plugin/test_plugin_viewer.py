"""The contributions as napari uses them: open, sample, widget, save."""

from __future__ import annotations

import numpy as np
import pytest

from segstudio._qt.widget import SegStudioWidget

pytestmark = pytest.mark.gui


def test_open_sample_and_dock_widget(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.open_sample("segstudio", "nuclei3d")
    assert [lyr.name for lyr in viewer.layers] == ["nuclei3d", "nuclei3d truth", "nuclei3d true objects", "paintings"]
    dock, widget = viewer.window.add_plugin_dock_widget("segstudio", "segstudio")
    assert isinstance(widget, SegStudioWidget)
    c = widget.controller
    assert c.image_layer is viewer.layers["nuclei3d"]
    assert c.paint_layers == [viewer.layers["paintings"]]
    assert c.spacing == (2.0, 0.5, 0.5)


def test_open_file_with_plugin_and_save_labels(make_napari_viewer, tmp_path):
    from segstudio.core.io import read_image

    img = np.random.default_rng(0).random((24, 24)).astype(np.float32)
    np.save(tmp_path / "img.npy", img)
    viewer = make_napari_viewer()
    layers = viewer.open(str(tmp_path / "img.npy"), plugin="segstudio")
    assert layers[0].name == "img"
    lab = viewer.add_labels(np.eye(24, dtype=np.uint8) * 2, name="lab", scale=(0.5, 0.5))
    out = tmp_path / "saved.tif"
    lab.save(str(out), plugin="segstudio")
    back, meta = read_image(out)
    np.testing.assert_array_equal(np.asarray(back), lab.data)
    np.testing.assert_allclose(meta.spacing, (0.5, 0.5))
