"""The dock widget's *Export model…* button: file dialog, background export, reload."""

from __future__ import annotations

import numpy as np
import pytest
from qtpy.QtWidgets import QFileDialog

from segstudio._qt.widget import SegStudioWidget

pytestmark = [pytest.mark.gui, pytest.mark.filterwarnings("ignore:`torch.jit.*deprecated:DeprecationWarning")]


def test_export_button_writes_a_model_that_predicts_like_the_widget(
    make_napari_viewer, qtbot, tiny2d, paintings_of, tiny_training, tmp_path, monkeypatch
):
    from segstudio.core.export import load_predictor
    from segstudio.core.predictor import Predictor
    from segstudio.core.run import model_from_config

    viewer = make_napari_viewer()
    viewer.add_image(tiny2d.image, name="img")
    widget = SegStudioWidget(viewer)
    viewer.window.add_dock_widget(widget, area="right")
    c = widget.controller
    c.add_class("boundary")  # the sample has three classes
    c.paint_layers[0].data = paintings_of(tiny2d.truth)
    c.config_overrides = dict(tiny_training, patch_size=(32, 32))
    widget.iter_spin.setValue(4)

    dest = tmp_path / "exported.pt"
    calls = []

    def fake_dialog(parent, caption, name, filters):
        calls.append(filters)
        return str(dest), filters.split(";;")[0]

    monkeypatch.setattr(QFileDialog, "getSaveFileName", fake_dialog)
    widget.export_btn.click()  # nothing trained yet: a clear message, no file
    assert "train a model first" in widget.status_label.text() and not dest.exists()

    widget.train_btn.click()
    qtbot.waitUntil(lambda: c.state == "idle" and not c.busy, timeout=60_000)
    assert c.last_error is None, c.last_error
    widget.export_btn.click()
    qtbot.waitUntil(lambda: "model exported to" in widget.status_label.text() or c.last_error is not None,
                    timeout=60_000)
    assert c.last_error is None, c.last_error
    assert "TorchScript (*.pt)" in calls[-1] and "ONNX (*.onnx)" in calls[-1] and "bioimage.io" in calls[-1]
    assert dest.is_file()

    model = model_from_config(c.config)
    model.load_state_dict(c.training.model_state)
    ref = Predictor(model, c.config, device="cpu").predict(tiny2d.image).labels
    got = load_predictor(dest, device="cpu")
    np.testing.assert_array_equal(got.predict(tiny2d.image).labels, ref)
    assert got.config.names == c.config.names
