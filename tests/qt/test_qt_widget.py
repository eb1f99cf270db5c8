"""The dock widget: building, classes, painting → counts and weights, modes."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from scipy import ndimage as ndi
from qtpy.QtCore import Qt

from segstudio._qt import controller as controller_module
from segstudio._qt import training as training_module
from segstudio._qt.widget import COL_COUNT, COL_LEARNT, COL_NAME, COL_PIN, COL_WEIGHT, WARN_COLOR, SegStudioWidget
from segstudio.core.config import (
    DEFAULT_INPUT_FILTERS, TEXTURE_GAIN, TEXTURE_SCALE, TEXTURE_SMOOTHING, WIDE_CONTEXT_SIGMA,
)
from segstudio.core.errors import UserInputError
from segstudio.core.run import model_from_config
from segstudio.core.trainer import Progress, WeightsUpdated
from segstudio.core.weights import compute_weights

pytestmark = pytest.mark.gui


@pytest.fixture
def open_widget(make_napari_viewer, qtbot):
    def make(image, scale=None, name="img"):
        viewer = make_napari_viewer()
        viewer.add_image(image, name=name, scale=scale)
        widget = SegStudioWidget(viewer)
        viewer.window.add_dock_widget(widget, area="right")
        return viewer, widget, widget.controller

    return make


def test_widget_builds_and_creates_paint_layer(open_widget, tiny3d):
    viewer, widget, c = open_widget(tiny3d.image, scale=tiny3d.spacing)
    assert widget.image_combo.currentText() == "img"
    assert c.image_layer is viewer.layers["img"]
    paint = viewer.layers["paintings"]
    assert c.paint_layers == [paint]
    assert paint.data.shape == tiny3d.image.shape
    assert tuple(paint.scale) == tiny3d.spacing
    assert widget.class_table.rowCount() == 2
    assert [widget.loss_combo.itemData(i) for i in range(widget.loss_combo.count())][0] == "ce"
    # Paint colours follow the class table.
    for k, spec in enumerate(c.classes, start=1):
        np.testing.assert_allclose(paint.colormap.map(k)[:3], _rgb(spec.color), atol=1e-6)


def _rgb(hex_color: str) -> np.ndarray:
    h = hex_color.lstrip("#")
    return np.array([int(h[i:i + 2], 16) / 255 for i in (0, 2, 4)])


def test_classes_add_rename_remove(open_widget, qtbot):
    viewer, widget, c = open_widget(np.random.default_rng(0).random((32, 32)).astype(np.float32))
    qtbot.mouseClick(widget.add_class_btn, Qt.MouseButton.LeftButton)
    assert widget.class_table.rowCount() == 3
    assert c.classes[2].name == "class 3"
    assert len({s.color for s in c.classes}) == 3
    widget.class_table.item(2, COL_NAME).setText("membrane")
    assert c.classes[2].name == "membrane"

    paint = c.paint_layers[0]
    paint.data[0, :4] = 1
    paint.data[1, :4] = 2
    paint.data[2, :4] = 3
    widget.class_table.setCurrentCell(1, COL_NAME)
    qtbot.mouseClick(widget.remove_class_btn, Qt.MouseButton.LeftButton)
    assert [s.name for s in c.classes] == ["background", "membrane"]
    assert widget.class_table.rowCount() == 2
    # class 2's strokes are erased; class 3 became class 2.
    assert (paint.data[0, :4] == 1).all() and (paint.data[1, :4] == 0).all() and (paint.data[2, :4] == 2).all()


def test_selecting_a_class_arms_the_brush(open_widget):
    viewer, widget, c = open_widget(np.zeros((32, 32), np.float32))
    widget.class_table.setCurrentCell(1, COL_NAME)
    paint = c.paint_layers[0]
    assert viewer.layers.selection.active is paint
    assert paint.mode == "paint"
    assert paint.selected_label == 2


def test_painting_updates_counts_and_weights_after_debounce(open_widget, qtbot, monkeypatch):
    calls = []
    real = training_module.Paintings.weigh_and_measure

    def spy(self):
        calls.append(1)
        return real(self)

    monkeypatch.setattr(training_module.Paintings, "weigh_and_measure", spy)
    viewer, widget, c = open_widget(np.zeros((48, 48), np.float32))
    # Settled: the first weighing done and nothing queued (a busy CI machine can be slow here).
    qtbot.waitUntil(lambda: c.weights is not None and not c.busy, timeout=10_000)
    qtbot.wait(50)
    calls.clear()
    paint = c.paint_layers[0]
    paint.brush_size = 3
    for x in range(5, 40, 7):  # several strokes in quick succession
        paint.paint((10, x), 1)
    paint.paint((30, 30), 2)
    expected = compute_weights(np.asarray(paint.data), "exclusive", n_classes=2)
    assert expected.counts[0] > 0 and expected.counts[1] > 0
    qtbot.waitUntil(lambda: c.weights is not None and c.weights.counts == expected.counts, timeout=5000)
    qtbot.wait(controller_module.PAINT_DEBOUNCE_MS + 200)
    assert len(calls) == 1, "strokes within the debounce interval must be weighed once"
    assert c.weights.weights == pytest.approx(expected.weights)
    count_text = widget.class_table.item(1, COL_COUNT).text().replace("\u2009", "")
    assert int(count_text) == expected.counts[1]
    assert float(widget.class_table.item(1, COL_WEIGHT).text()) == pytest.approx(expected.weights[1], abs=0.006)


def test_dense_paintings_show_equal_weights(open_widget, qtbot):
    """A label layer that labels every pixel (imported annotations) is weighed as training
    weighs it: its counts are the classes' own frequencies, so the classes weigh alike."""
    viewer, widget, c = open_widget(np.zeros((32, 32), np.float32))
    paint = c.paint_layers[0]
    paint.data[:] = 1
    paint.data[8:14, 8:14] = 2
    paint.events.paint(value=[])
    qtbot.waitUntil(lambda: c.weights is not None and c.weights.counts == (32 * 32 - 36, 36), timeout=5000)
    assert c.weights.coverage == 1.0 and c.weights.weights == (1.0, 1.0)
    assert [float(widget.class_table.item(r, COL_WEIGHT).text()) for r in (0, 1)] == [1.0, 1.0]
    assert "tempered to the power 0.00" in widget.class_table.item(1, COL_WEIGHT).toolTip()


def test_pinning_a_weight(open_widget, qtbot):
    viewer, widget, c = open_widget(np.zeros((32, 32), np.float32))
    paint = c.paint_layers[0]
    paint.data[:2] = 1
    paint.data[5, :3] = 2
    paint.events.paint(value=[])
    qtbot.waitUntil(lambda: c.weights is not None and c.weights.counts == (64, 3), timeout=5000)
    widget.class_table.item(0, COL_WEIGHT).setText("0.25")
    assert c.classes[0].pinned == 0.25
    assert widget.class_table.item(0, COL_PIN).checkState() == Qt.CheckState.Checked
    qtbot.waitUntil(lambda: c.weights.weights[0] == pytest.approx(0.25), timeout=5000)
    widget.class_table.item(0, COL_PIN).setCheckState(Qt.CheckState.Unchecked)
    assert c.classes[0].pinned is None
    qtbot.waitUntil(lambda: c.weights.weights[0] != pytest.approx(0.25), timeout=5000)


def test_fill_outlines_checkbox_sets_the_training_config(open_widget, qtbot):
    viewer, widget, c = open_widget(np.zeros((32, 32), np.float32))
    paint = c.paint_layers[0]
    paint.data[0, :] = 1
    paint.data[8, 8:17] = paint.data[16, 8:17] = 2
    paint.events.paint(value=[])
    assert widget.outlines_check.isChecked() and widget.outlines_check.isEnabled()
    assert c.build_config().infer_outlines is True
    widget.outlines_check.setChecked(False)
    assert c.settings.infer_outlines is False and c.build_config().infer_outlines is False
    widget.mode_multilabel.setChecked(True)  # the rule works per class in multi-label mode too
    assert widget.outlines_check.isEnabled() and c.build_config().infer_outlines is False


def test_wide_context_choice_sets_the_input_filters(open_widget):
    viewer, widget, c = open_widget(np.zeros((32, 32), np.float32))
    assert widget.wide_combo.currentText() == "auto" and c.settings.wide_context == "auto"
    assert c.build_config().input_filters == DEFAULT_INPUT_FILTERS[2]  # nothing painted: auto is off
    widget.wide_combo.setCurrentText("on")
    assert c.settings.wide_context == "on"
    assert c.build_config().input_filters == (*DEFAULT_INPUT_FILTERS[2], WIDE_CONTEXT_SIGMA)
    assert c.choices.project_fields()["training"]["wide_context"] == "on"  # saved with the project
    widget.mode_multilabel.setChecked(True)
    assert c.build_config().input_filters == (*DEFAULT_INPUT_FILTERS[2], WIDE_CONTEXT_SIGMA)
    widget.wide_combo.setCurrentText("off")
    c.training.unevenness = 50.0  # however uneven the background: off is off
    assert c.build_config().input_filters == DEFAULT_INPUT_FILTERS[2]
    with pytest.raises(UserInputError, match="wide context must be one of auto, on, off"):
        c.set_settings(wide_context="sometimes")


def test_textures_choice_adds_the_region_statistics(open_widget):
    viewer, widget, c = open_widget(np.zeros((16, 32, 32), np.float32))
    assert widget.textures_combo.currentText() == "auto" and c.settings.textures == "auto"
    assert c.build_config().filter_context == ()  # nothing painted: auto is off
    widget.textures_combo.setCurrentText("on")
    assert c.settings.textures == "on"
    assert c.build_config().filter_context == (TEXTURE_SCALE,)  # a volume too
    assert c.choices.project_fields()["training"]["textures"] == "on"  # saved with the project
    widget.mode_multilabel.setChecked(True)
    assert c.build_config().filter_context == (TEXTURE_SCALE,)
    widget.textures_combo.setCurrentText("off")
    c.training.texture_gain = 0.9  # however textured: off is off
    assert c.build_config().filter_context == ()
    with pytest.raises(UserInputError, match="textures must be one of auto, on, off"):
        c.set_settings(textures="sometimes")


def test_smooth_regions_follows_textures_and_can_be_turned_off(open_widget, qtbot):
    """*smooth regions* (ticked by default): a textured run's predictions are smoothed over
    :data:`TEXTURE_SMOOTHING`, an untextured one's are not; unticked, none; saved with the
    project; greyed out while training, like *textures*."""
    viewer, widget, c = open_widget(np.zeros((32, 32), np.float32))
    assert widget.smooth_check.isChecked() and widget.smooth_check.text() == "smooth regions"
    assert c.build_config().output_smoothing == 0.0  # textures off (auto, nothing painted)
    widget.textures_combo.setCurrentText("on")
    config = c.build_config()
    assert config.output_smoothing == TEXTURE_SMOOTHING
    assert model_from_config(config).smoothing_boxes  # what predictions of this run do
    widget.smooth_check.setChecked(False)
    assert not c.settings.smooth_textures and c.build_config().output_smoothing == 0.0
    assert c.choices.project_fields()["training"]["smooth_textures"] is False
    widget._on_state("running")
    assert not widget.smooth_check.isEnabled()
    widget._on_state("idle")
    assert widget.smooth_check.isEnabled()


def test_downsample_is_a_setting_of_the_next_model(open_widget, tmp_path):
    """*Downsample* (off by default) sets the run's factor, is saved with the project and read
    back from it (a hand-edited value falls back to off), is greyed out while training, and a
    change starts a new model."""
    from segstudio.core.project import Project

    viewer, widget, c = open_widget(np.zeros((16, 32, 32), np.float32), scale=(2.0, 0.5, 0.5))
    spin = widget.downsample_spin
    assert spin.value() == 1 and spin.text() == "off" and c.build_config().downsample == 1
    first = c._train_config()
    c.training.config, c.training.run_dir = first, tmp_path
    (tmp_path / "model.pt").write_bytes(b"")
    spin.setValue(2)
    assert spin.text() == "×2" and c.settings.downsample == 2
    config = c.build_config()
    assert config.downsample == 2 and config.reduction == (1, 2, 2)  # z is already coarse
    assert c._train_config().downsample == 2  # not the model there is: a new one
    fields = c.choices.project_fields()
    assert fields["training"]["downsample"] == 2
    widget._on_state("running")
    assert not spin.isEnabled()
    widget._on_state("idle")
    assert spin.isEnabled()
    for saved, read in ((3, 3), (0, 1), ("4", 1), (True, 1)):
        c.choices.load_project(Project(**{**fields, "training": {**fields["training"], "downsample": saved}}))
        assert c.settings.downsample == read


def _textured_painting(open_widget):
    """Grains on the left, stripes on the right, of one mean brightness; both painted."""
    rng = np.random.default_rng(0)
    image = ndi.gaussian_filter(rng.standard_normal((96, 96)), 1.5).astype(np.float32)
    image[:, 48:] = np.sin(np.arange(48, dtype=np.float32) * 1.3)[None, :] * image[:, :48].std()
    image += rng.normal(0, 0.02, image.shape).astype(np.float32)
    viewer, widget, c = open_widget(image)
    paint = c.paint_layers[0]
    paint.data[10:80, 20] = 1
    paint.data[10:80, 70] = 2
    paint.events.paint(value=[])
    return viewer, widget, c


def test_textured_classes_turn_textures_on_when_auto(open_widget, qtbot):
    viewer, widget, c = _textured_painting(open_widget)
    qtbot.waitUntil(lambda: "textures are on (auto)" in widget.weights_note.text(), timeout=10000)
    assert c.training.texture_gain > TEXTURE_GAIN
    assert c.build_config().filter_context == (TEXTURE_SCALE,)
    # the trainer's own weights (each snapshot it takes) keep the line while the run trains
    shown = c.weights
    c.training._on_event(WeightsUpdated(7, replace(shown, warnings=())))
    assert "textures are on (auto)" in widget.weights_note.text() and widget.weights_note.isVisibleTo(widget)
    widget.textures_combo.setCurrentText("off")  # the user knows better: no line, no statistics
    qtbot.waitUntil(lambda: "textures" not in widget.weights_note.text(), timeout=10000)
    assert c.build_config().filter_context == ()


def test_auto_textures_keep_the_model_there_is(open_widget, qtbot, tmp_path):
    viewer, widget, c = _textured_painting(open_widget)
    qtbot.waitUntil(lambda: c.training.texture_gain is not None, timeout=10000)
    first = c._train_config()
    assert first.filter_context == (TEXTURE_SCALE,)
    c.training.config, c.training.run_dir = first, tmp_path
    (tmp_path / "model.pt").write_bytes(b"")
    c.training.texture_gain = 0.0  # the strokes now say "brightness will do": go on with the model
    assert c.build_config().filter_context == ()
    assert c._train_config().filter_context == first.filter_context
    widget.textures_combo.setCurrentText("off")  # chosen: a new model
    assert c._train_config().filter_context == ()
    # a textured model from before standardised inputs (session 16) goes on as it was
    widget.textures_combo.setCurrentText("on")
    assert first.input_norm
    c.training.config = first.replace(input_norm=False)
    again = c._train_config()
    assert again.filter_context == first.filter_context and not again.input_norm


def _painted_background_along_z(open_widget, make):
    """A volume whose background rises along z by more than the objects' contrast, painted on
    one slice."""
    vol, strokes = make(40)
    viewer, widget, c = open_widget(vol)
    paint = c.paint_layers[0]
    paint.data[...] = strokes
    paint.events.paint(value=[])
    return viewer, widget, c


def test_level_slices_auto_goes_by_the_background_along_z(open_widget, qtbot, tmp_path, background_along_z):
    viewer, widget, c = _painted_background_along_z(open_widget, background_along_z)
    assert widget.level_combo.currentText() == "auto" and c.settings.level_slices == "auto"
    qtbot.waitUntil(lambda: "level slices is on (auto)" in widget.weights_note.text(), timeout=10000)
    assert c.build_config().level_slices
    first = c._train_config()
    # a run keeps its input: the strokes' measure crossing the line does not start a new model
    c.training.config, c.training.run_dir = first, tmp_path
    (tmp_path / "model.pt").write_bytes(b"")
    c.training.slice_unevenness = 0.1
    assert not c.build_config().level_slices and c._train_config().level_slices
    widget.level_combo.setCurrentText("off")  # the user knows better: no line, no levelling
    qtbot.waitUntil(lambda: "level slices" not in widget.weights_note.text(), timeout=10000)
    assert not c.build_config().level_slices and not c._train_config().level_slices
    assert c.choices.project_fields()["training"]["level_slices"] == "off"  # saved with the project


def test_level_slices_is_greyed_out_and_off_on_a_2d_image(open_widget):
    viewer, widget, c = open_widget(np.random.default_rng(0).random((32, 32)).astype(np.float32))
    assert not widget.level_combo.isEnabled() and not widget.level_label.isEnabled()
    assert widget.level_combo.toolTip().startswith("Not used on a 2-D image")
    assert widget.wide_combo.isEnabled() and not widget.wide_combo.toolTip().startswith("Not used")
    c.set_settings(level_slices="on")  # e.g. from a project of volumes: kept, and off here
    assert not c.build_config().level_slices
    assert c.choices.project_fields()["training"]["level_slices"] == "on"
    viewer.add_image(np.random.default_rng(1).random((8, 32, 32)).astype(np.float32), name="volume")
    c.set_image_layer(viewer.layers["volume"])  # a volume: the setting applies again
    assert widget.level_combo.isEnabled() and not widget.wide_combo.isEnabled()
    assert widget.wide_combo.toolTip().startswith("Not used on a volume")
    assert c.build_config().level_slices


def _uneven_painting(open_widget):
    """A 2D image with dim objects on a ramp stronger than their contrast, painted."""
    rng = np.random.default_rng(0)
    image = np.tile(np.linspace(0.0, 1.0, 96, dtype=np.float32), (96, 1))  # a ramp across
    image[20:30, 10:20] += 0.2  # dim objects on it
    image[60:70, 70:80] += 0.2
    image += rng.normal(0, 0.01, image.shape).astype(np.float32)
    viewer, widget, c = open_widget(image)
    paint = c.paint_layers[0]
    paint.data[5, 2:94] = paint.data[90, 2:94] = 1
    paint.data[24:26, 12:18] = paint.data[64:66, 72:78] = 2
    paint.events.paint(value=[])
    return viewer, widget, c


def test_an_uneven_background_turns_wide_context_on_when_auto(open_widget, qtbot):
    viewer, widget, c = _uneven_painting(open_widget)
    qtbot.waitUntil(lambda: "wide context is on (auto)" in widget.weights_note.text(), timeout=10000)
    assert widget.weights_note.isVisibleTo(widget)
    assert c.training.unevenness > 1.0
    assert c.build_config().input_filters == (*DEFAULT_INPUT_FILTERS[2], WIDE_CONTEXT_SIGMA)
    widget.wide_combo.setCurrentText("off")  # the user knows better: a hint stays, the filter goes
    qtbot.waitUntil(lambda: "try wide context" in widget.weights_note.text(), timeout=10000)
    assert c.build_config().input_filters == DEFAULT_INPUT_FILTERS[2]
    widget.wide_combo.setCurrentText("on")  # taken: no line
    qtbot.waitUntil(lambda: "wide context" not in widget.weights_note.text(), timeout=10000)


def test_auto_wide_context_keeps_the_model_there_is(open_widget, qtbot, tmp_path):
    viewer, widget, c = _uneven_painting(open_widget)
    qtbot.waitUntil(lambda: c.training.unevenness is not None, timeout=10000)
    first = c._train_config()
    assert first.input_filters == (*DEFAULT_INPUT_FILTERS[2], WIDE_CONTEXT_SIGMA)
    # a run of that config there to go on with (what a finished Train leaves)
    c.training.config, c.training.run_dir = first, tmp_path
    (tmp_path / "model.pt").write_bytes(b"")
    assert c.training.can_resume(first)
    c.training.unevenness = 0.2  # the strokes now say "even": auto goes on with the model there is
    assert c.build_config().input_filters == DEFAULT_INPUT_FILTERS[2]
    assert c._train_config().input_filters == first.input_filters
    widget.wide_combo.setCurrentText("off")  # chosen: a new model
    assert c._train_config().input_filters == DEFAULT_INPUT_FILTERS[2]


def test_wide_context_on_a_volume_is_greyed_out_and_trains_without_it(open_widget, qtbot):
    viewer, widget, c = open_widget(np.random.default_rng(0).random((8, 32, 32), dtype=np.float32))
    assert not widget.wide_combo.isEnabled() and widget.level_combo.isEnabled()
    c.set_settings(wide_context="on")  # e.g. from a project of 2D images: off on this volume
    assert c.build_config().input_filters == DEFAULT_INPUT_FILTERS[3]
    c.paint_layers[0].data[4, 2:5, 2:30] = 1
    c.paint_layers[0].data[4, 20:23, 2:30] = 2
    c.paint_layers[0].refresh()
    errors = []
    c.error.connect(errors.append)
    qtbot.waitUntil(lambda: c.weights is not None and any(c.weights.counts), timeout=10000)
    widget.train_btn.click()
    qtbot.waitUntil(lambda: c.is_training, timeout=10000)
    assert not widget.wide_combo.isEnabled() and not widget.level_combo.isEnabled()  # as every setting
    widget.stop_btn.click()
    qtbot.waitUntil(lambda: not c.is_training, timeout=30000)
    assert not errors
    assert not widget.wide_combo.isEnabled() and widget.level_combo.isEnabled()


def test_switching_mode_converts_strokes(open_widget, qtbot):
    viewer, widget, c = open_widget(np.zeros((32, 32), np.float32))
    paint = c.paint_layers[0]
    paint.data[0, :5] = 1
    paint.data[1, :3] = 2
    widget.mode_multilabel.setChecked(True)
    assert c.mode == "multilabel"
    assert "paintings" not in [lyr.name for lyr in viewer.layers]
    bg, fg = viewer.layers["paint: background"], viewer.layers["paint: foreground"]
    assert c.paint_layers == [bg, fg]
    assert (bg.data[0, :5] == 1).all() and (bg.data[1, :3] == 2).all()
    assert (fg.data[0, :5] == 2).all() and (fg.data[1, :3] == 1).all()
    assert [widget.loss_combo.itemData(i) for i in range(widget.loss_combo.count())][0] == "bce"
    # multilabel counts: present / absent pixels per class
    qtbot.waitUntil(lambda: c.weights is not None and c.weights.mode == "multilabel", timeout=5000)
    assert c.weights.counts == (5, 3) and c.weights.absent_counts == (3, 5)
    widget.class_table.setCurrentCell(1, COL_NAME)
    assert viewer.layers.selection.active is fg and fg.selected_label == 1
    widget.mode_exclusive.setChecked(True)
    back = viewer.layers["paintings"]
    assert (back.data[0, :5] == 1).all() and (back.data[1, :3] == 2).all()


def test_sample_paintings_are_adopted(make_napari_viewer):
    from segstudio._napari._sample import sample_layers
    from segstudio.core.samples import synthetic_nuclei

    viewer = make_napari_viewer()
    s = synthetic_nuclei((64, 64), seed=1, radius_range=(6.0, 10.0), name="tiny")
    for data, kwargs, kind in sample_layers(s):
        getattr(viewer, f"add_{kind}")(data, **kwargs)
    widget = SegStudioWidget(viewer)
    c = widget.controller
    assert c.image_layer.name == "tiny"
    assert c.paint_layers == [viewer.layers["paintings"]]
    assert [x.name for x in c.classes] == ["background", "nucleus", "boundary"]
    assert widget.truth_combo.currentText() == "tiny truth"
    assert len([lyr for lyr in viewer.layers if lyr.name.startswith("paintings")]) == 1


def test_show_inferred_overlays_what_the_trainer_learns(open_widget, qtbot):
    """The overlay is the implied-label rules' result for the strokes on screen (the same core
    function the trainer learns from); switching a rule off updates it; hiding removes it."""
    from segstudio.core.implied import implied_labels, merged

    img = np.full((40, 40), 10.0, np.float32)
    img[12:28, 12:28] = 200.0
    viewer, widget, c = open_widget(img)
    paint = c.paint_layers[0]
    paint.data[2:5, 2:38] = 1  # background, well away from the object
    paint.data[12, 12:28] = paint.data[27, 12:28] = paint.data[12:28, 12] = paint.data[12:28, 27] = 2
    paint.data[19:21, 16:24] = 2  # the object traced and marked with its own class
    paint.refresh()
    assert widget.background_check.isChecked() and widget.outlines_check.isChecked()
    widget.inferred_check.setChecked(True)
    qtbot.waitUntil(lambda: "inferred" in viewer.layers and viewer.layers["inferred"].data.any(), timeout=30000)
    expected = merged(implied_labels(paint.data, img, "exclusive", outlines=True, background=True))
    np.testing.assert_array_equal(viewer.layers["inferred"].data, expected)
    assert (expected[14:26, 14:26][paint.data[14:26, 14:26] == 0] == 2).all()  # the inside
    assert (expected == 1).sum() > 500  # dark pixels like the background strokes
    assert c.paint_layers[0] is paint and not viewer.layers["inferred"].editable
    widget.background_check.setChecked(False)  # the overlay follows the switches
    qtbot.waitUntil(lambda: (viewer.layers["inferred"].data == 1).sum() < 200, timeout=30000)
    widget.inferred_check.setChecked(False)
    assert "inferred" not in viewer.layers


def test_show_inferred_keeps_the_paint_layer_selected_and_on_top(open_widget, qtbot):
    """Turning the overlay on leaves the paint layer selected (napari selects what it adds, and
    the next stroke would land in a layer that cannot be painted) and puts the overlay under
    the strokes, in both modes."""
    img = np.full((40, 40), 10.0, np.float32)
    img[12:28, 12:28] = 200.0
    viewer, widget, c = open_widget(img)
    paint = c.paint_layers[0]
    paint.data[2:5, 2:38] = 1
    paint.data[18:21, 16:24] = 2
    paint.refresh()
    assert viewer.layers.selection.active is paint
    widget.inferred_check.setChecked(True)
    qtbot.waitUntil(lambda: "inferred" in viewer.layers and viewer.layers["inferred"].data.any(), timeout=30000)
    assert viewer.layers.selection.active is paint
    assert viewer.layers.index(viewer.layers["inferred"]) < viewer.layers.index(paint)
    widget.inferred_check.setChecked(False)
    c.set_mode("multilabel")
    paint = c.paint_layers[0]
    viewer.layers.selection.active = paint
    widget.inferred_check.setChecked(True)
    names = [f"inferred: {spec.name}" for spec in c.classes]
    qtbot.waitUntil(lambda: all(n in viewer.layers for n in names), timeout=30000)
    assert viewer.layers.selection.active is paint
    assert max(viewer.layers.index(viewer.layers[n]) for n in names) < min(
        viewer.layers.index(lyr) for lyr in c.paint_layers)


def test_show_inferred_greys_the_spilled_paint_over_the_strokes(open_widget, qtbot):
    """An object stroke that runs on past the object's edge onto the background: with *show
    inferred*, the part training leaves out is shown in the ``not learnt`` layer over the
    strokes (the core's spilled paint), the paint layer stays selected, and the layer goes when
    the background rule is switched off or the overlay hidden."""
    from scipy import ndimage as ndi

    from segstudio.core.background import spilled_paint

    yy, xx = np.mgrid[:48, :48]
    disk = (yy - 24) ** 2 + (xx - 20) ** 2 <= 8 ** 2
    rng = np.random.default_rng(1)
    img = (ndi.gaussian_filter(disk * 60.0, 1.5) + 10.0 + rng.normal(0, 1.0, disk.shape)).astype(np.float32)
    viewer, widget, c = open_widget(img)
    paint = c.paint_layers[0]
    paint.data[2:5, 2:46] = 1
    paint.data[42:45, 2:46] = 1
    paint.data[23:26, 16:34] = 2  # through the disk and 5 px on past its edge (x = 28)
    paint.refresh()
    widget.inferred_check.setChecked(True)
    qtbot.waitUntil(lambda: "not learnt" in viewer.layers, timeout=30000)
    expected = spilled_paint(paint.data, img)
    assert expected[23:26, 31:34].all() and not expected[disk].any()
    np.testing.assert_array_equal(viewer.layers["not learnt"].data > 0, expected)
    assert viewer.layers.index(viewer.layers["not learnt"]) > viewer.layers.index(paint)
    assert viewer.layers.selection.active is paint and not viewer.layers["not learnt"].editable
    widget.background_check.setChecked(False)
    qtbot.waitUntil(lambda: "not learnt" not in viewer.layers, timeout=30000)
    widget.background_check.setChecked(True)
    qtbot.waitUntil(lambda: "not learnt" in viewer.layers, timeout=30000)
    widget.inferred_check.setChecked(False)
    assert "not learnt" not in viewer.layers and "inferred" not in viewer.layers


def test_learnt_column_flags_a_class_not_learnt_at_its_strokes(open_widget):
    """The class table shows each class's learnt share from the trainer's progress; a class
    under half after the first steps is coloured and named in a note under the table."""
    viewer, widget, c = open_widget(np.zeros((32, 32), np.float32))
    c.add_class("granular")
    widget.class_table.item(2, COL_NAME).setText("granular")
    early = Progress(iteration=410, loss=1.0, lr=0.005, seconds=1.0, samples_per_s=1.0, learnt=(0.97, None, 0.12),
                     learnt_steps=10)
    widget._on_progress(early)
    widget.redraw_progress()
    texts = [widget.class_table.item(row, COL_LEARNT).text() for row in range(3)]
    assert texts == ["97 %", "–", "12 %"]
    assert widget.learnt_note.isHidden()  # 10 steps on these strokes: too early to flag
    widget._on_progress(replace(early, iteration=450, learnt_steps=50))
    widget.redraw_progress()
    assert widget.class_table.item(2, COL_LEARNT).foreground().color().name() == WARN_COLOR
    assert widget.class_table.item(0, COL_LEARNT).foreground().color().name() != WARN_COLOR
    assert not widget.learnt_note.isHidden() and "granular (12 %" in widget.learnt_note.text()
    widget._on_progress(replace(early, iteration=500, learnt=(0.97, 0.9, 0.8), learnt_steps=100))
    widget.redraw_progress()
    assert widget.learnt_note.isHidden()
    assert widget.class_table.item(2, COL_LEARNT).foreground().color().name() != WARN_COLOR


def test_show_inferred_follows_wide_context(open_widget, qtbot, spots_on_a_ramp):
    """On a 2-D image whose background is uneven, *wide context* on (auto: by the weighed
    paintings) has the background rule read the image against its local background, in the
    overlay as in the run (``uneven``); off, one threshold for the image."""
    from segstudio.core.implied import implied_labels, merged

    img, strokes, _ = spots_on_a_ramp()
    viewer, widget, c = open_widget(img)
    paint = c.paint_layers[0]
    paint.data[...] = strokes
    paint.refresh()
    expected = {u: merged(implied_labels(strokes, img, "exclusive", outlines=True, background=True, uneven=u))
                for u in (False, True)}
    assert (expected[True] == 1).sum() > (expected[False] == 1).sum()

    def shown(u):
        return "inferred" in viewer.layers and np.array_equal(viewer.layers["inferred"].data, expected[u])

    widget.textures_combo.setCurrentText("off")  # the ramp reads as a texture to *auto*
    widget.inferred_check.setChecked(True)
    qtbot.waitUntil(lambda: shown(True) and not c.training.workers.busy("paintings"), timeout=30000)  # auto: uneven
    widget.wide_combo.setCurrentText("off")
    qtbot.waitUntil(lambda: shown(False), timeout=30000)
    widget.wide_combo.setCurrentText("on")
    qtbot.waitUntil(lambda: shown(True), timeout=30000)


def test_show_inferred_follows_textures(open_widget, qtbot, blurred_disk):
    """With *textures* on, the background rule shown keeps its threshold at the painted
    background (as the run learns it, :func:`segstudio.core.background.towards_objects`); on
    *auto* the overlay follows what the weighed paintings decide."""
    from segstudio.core.implied import implied_labels, merged

    img, strokes, _ = blurred_disk
    viewer, widget, c = open_widget(img)
    paint = c.paint_layers[0]
    paint.data[...] = strokes
    paint.refresh()
    expected = {t: merged(implied_labels(strokes, img, "exclusive", outlines=True, background=True, textures=t))
                for t in (False, True)}
    assert (expected[False] == 1).sum() > (expected[True] == 1).sum()

    def shown(t):
        return "inferred" in viewer.layers and np.array_equal(viewer.layers["inferred"].data, expected[t])

    widget.inferred_check.setChecked(True)
    qtbot.waitUntil(lambda: shown(False), timeout=30000)  # auto: these strokes differ in brightness
    widget.textures_combo.setCurrentText("on")
    qtbot.waitUntil(lambda: shown(True), timeout=30000)
    widget.textures_combo.setCurrentText("off")
    qtbot.waitUntil(lambda: shown(False), timeout=30000)
    widget.textures_combo.setCurrentText("auto")  # weighs the paintings again
    qtbot.waitUntil(lambda: shown(False) and not c.training.workers.busy("paintings"), timeout=30000)
    c.training.texture_gain = 100.0  # as if the weighed paintings said textures
    c._on_weights(c.weights)
    qtbot.waitUntil(lambda: shown(True), timeout=30000)
