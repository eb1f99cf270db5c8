"""Objects in the app: the objects layer follows the prediction, the user's choices, the object
table (a click goes to the object), saving objects and table like the image, object scores
beside Dice and HD95, and stale results dropped. Driven through the facade, the objects part
and the dock's Objects section; every expected value comes from segstudio.core."""

from __future__ import annotations

import csv
import json
import time

import numpy as np
import pytest
from qtpy.QtCore import Qt

from segstudio._napari._reader import layer_data_from_file
from segstudio._qt import objects as objects_module
from segstudio._qt import preview as preview_module
from segstudio._qt.objects import ObjectChoices, choices_from_json, choices_to_json
from segstudio._qt.widget import SegStudioWidget
from segstudio.core.instances import instances_from_labels, object_table, options_for_classes
from segstudio.core.io import read_image, write_image
from segstudio.core.metrics import instance_scores
from segstudio.core.predictor import PredictResult
from segstudio.core.samples import synthetic_nuclei

pytestmark = pytest.mark.gui
WAIT_MS = 60_000
NAMES = ("background", "nucleus", "boundary")


@pytest.fixture
def cells2d():
    """96 x 96 with 10 nuclei, some touching (the tiny samples have one)."""
    return synthetic_nuclei((96, 96), n_nuclei=10, seed=2, radius_range=(6.0, 10.0), name="cells")


@pytest.fixture
def cells3d():
    """12 x 40 x 40, spacing (2, 1, 1), 8 nuclei."""
    return synthetic_nuclei((12, 40, 40), n_nuclei=8, seed=0, spacing=(2.0, 1.0, 1.0), radius_range=(4.0, 7.0),
                            name="volume")


def _truth_preview(monkeypatch, truth, started=None, delay=0.0):
    """Live previews that 'predict' the true classes of the region asked for."""

    def predict(predictor, request, state, stats):
        if started is not None:
            started.append(request.stamp)
        time.sleep(delay)
        region = request.region or tuple(slice(0, n) for n in truth.shape)
        return PredictResult(truth[region].astype(np.uint8), None, region), "stats"

    monkeypatch.setattr(preview_module, "predict_region", predict)


def _open(viewer, sample, name="img"):
    scale = sample.spacing or (1.0,) * sample.image.ndim
    return _dock(viewer, viewer.add_image(sample.image, name=name, scale=scale))


def _dock(viewer, layer):
    """The dock on ``layer``, with the classes background, nucleus, boundary."""
    widget = SegStudioWidget(viewer)
    viewer.window.add_dock_widget(widget, area="right")
    c = widget.controller
    c.set_image_layer(layer)
    c.rename_class(1, NAMES[1])
    c.add_class(NAMES[2])
    return widget, c, layer


def _expected(labels, spacing=None, **options):
    return instances_from_labels(labels, options_for_classes(NAMES, **options), spacing)


def _settle(qtbot, c):
    qtbot.waitUntil(lambda: not c.busy, timeout=WAIT_MS)
    assert c.last_error is None, c.last_error


def _preview(qtbot, c):
    c.preview.set_model(object())
    c.request_preview()
    qtbot.waitUntil(lambda: c.objects.shown is not None and not c.busy, timeout=WAIT_MS)
    assert c.last_error is None, c.last_error


@pytest.fixture
def session2d(make_napari_viewer, cells2d, monkeypatch):
    viewer = make_napari_viewer()
    widget, c, layer = _open(viewer, cells2d)
    _truth_preview(monkeypatch, cells2d.truth)
    return viewer, widget, c, cells2d


def test_objects_follow_the_live_preview(session2d, qtbot):
    viewer, widget, c, sample = session2d
    assert c.objects.follows and widget.objects_section.follow_check.isChecked()  # a small image
    _preview(qtbot, c)
    expected = _expected(sample.truth)
    layer = c.objects.layer
    np.testing.assert_array_equal(layer.data, expected.labels)
    assert expected.n > 3
    table = c.objects.shown.table
    np.testing.assert_array_equal(table["id"], np.arange(1, expected.n + 1))
    assert set(table["class_name"]) == {"nucleus"}
    section = widget.objects_section
    assert section.model.rowCount() == expected.n and section.text() == f"Objects ({expected.n})"
    assert section.model.headers()[:3] == ["id", "class", "area"]
    # the objects lie under the paint layer, which stays selected for painting
    names = [lyr.name for lyr in viewer.layers]
    assert names.index("prediction") < names.index("objects") < names.index("paintings")
    assert viewer.layers.selection.active is c.paint_layers[0]
    assert "objects" not in [widget.truth_combo.itemText(i) for i in range(widget.truth_combo.count())]


def test_the_choices_in_the_section_remake_the_objects(session2d, qtbot):
    viewer, widget, c, sample = session2d
    _preview(qtbot, c)
    section = widget.objects_section
    # with a boundary class, 'at dim lines' splits instead of it (and says so)
    assert section.dim_lines_check.isEnabled()
    assert "instead of the predicted boundary" in section.dim_lines_check.toolTip()
    section.dim_lines_check.setChecked(True)
    _settle(qtbot, c)
    want = instances_from_labels(sample.truth, options_for_classes(NAMES, declump="intensity"), image=sample.image)
    assert not np.array_equal(want.labels, _expected(sample.truth).labels)  # the check makes a difference
    np.testing.assert_array_equal(c.objects.layer.data, want.labels)
    section.dim_lines_check.setChecked(False)
    _settle(qtbot, c)
    sizes = c.objects.shown.table["area"]
    threshold = float(np.median(sizes))
    section.min_size_spin.setValue(threshold)
    _settle(qtbot, c)
    expected = _expected(sample.truth, min_size=threshold)
    np.testing.assert_array_equal(c.objects.layer.data, expected.labels)
    assert 0 < expected.n < len(sizes) and c.objects.shown.table["area"].min() >= threshold
    section.min_size_spin.setValue(0.0)
    section.split_check.setChecked(False)
    section.border_check.setChecked(True)
    _settle(qtbot, c)
    np.testing.assert_array_equal(c.objects.layer.data, _expected(sample.truth, split=False, drop_border=True).labels)
    # the boundary class ticked as an object class: objects are its regions and the nuclei's
    section.class_list.item(2).setCheckState(Qt.CheckState.Checked)
    _settle(qtbot, c)
    want = instances_from_labels(sample.truth, options_for_classes(
        NAMES, object_classes=(2, 3), boundary_class=None, split=False, drop_border=True))
    np.testing.assert_array_equal(c.objects.layer.data, want.labels)
    assert c.objects.options(NAMES).boundary_class is None
    # split along the image's dim lines (no boundary class now: it is an object class)
    assert not section.dim_lines_check.isEnabled() and "not split" in section.dim_lines_check.toolTip()
    section.split_check.setChecked(True)
    assert section.dim_lines_check.isEnabled() and not section.dim_lines_check.isChecked()
    assert "Not used" not in section.dim_lines_check.toolTip()
    section.dim_lines_check.setChecked(True)
    _settle(qtbot, c)
    want = instances_from_labels(sample.truth, options_for_classes(
        NAMES, object_classes=(2, 3), boundary_class=None, drop_border=True, declump="intensity"), image=sample.image)
    np.testing.assert_array_equal(c.objects.layer.data, want.labels)
    assert want.n > 1 and c.objects.options(NAMES).declump == "intensity"
    # no class ticked: one clear line, the objects are cleared
    for i in (1, 2):
        section.class_list.item(i).setCheckState(Qt.CheckState.Unchecked)
    qtbot.waitUntil(lambda: not c.busy, timeout=WAIT_MS)
    assert "no class is an object" in c.last_error
    assert c.objects.shown is None and not c.objects.layer.data.any()


def test_min_size_is_physical_and_a_row_click_goes_to_the_object_in_3d(make_napari_viewer, cells3d, monkeypatch,
                                                                       qtbot):
    viewer = make_napari_viewer()
    widget, c, layer = _open(viewer, cells3d)
    _truth_preview(monkeypatch, cells3d.truth)
    c.set_settings(preview_region="image")
    widget.objects_section.min_size_spin.setValue(40.0)  # µm³ with spacing (2, 1, 1): 20 voxels
    _preview(qtbot, c)
    expected = _expected(cells3d.truth, cells3d.spacing, min_size=40.0)
    np.testing.assert_array_equal(c.objects.layer.data, expected.labels)
    table = c.objects.shown.table
    assert table["volume"].min() >= 40.0 and widget.objects_section.size_label.text() == "min volume"
    np.testing.assert_allclose(table["volume"], object_table(expected.labels, spacing=cells3d.spacing)["volume"])
    section = widget.objects_section
    row = int(np.argmax(table["volume"]))
    section.table.selectRow(row)
    object_id = section.model.object_id(row)
    assert object_id == table["id"][row]
    z, y, x = (table[f"centroid_{a}"][row] for a in "zyx")  # physical = world (no translate)
    assert viewer.dims.point[0] == pytest.approx(z, abs=cells3d.spacing[0] / 2 + 1e-6)
    camera = getattr(viewer, "scene", viewer).camera
    np.testing.assert_allclose(camera.center[-2:], (y, x), atol=1e-6)
    assert c.objects.layer.selected_label == object_id
    # a click on a header sorts the rows; the id under a row follows, and the selection stays
    section.table.sortByColumn(2, Qt.SortOrder.DescendingOrder)
    assert section.model.object_id(0) == table["id"][np.argmax(table["volume"])]
    assert section.model.object_id(section.table.currentIndex().row()) == object_id
    # new objects (a live preview) keep the selected object selected, and do not move the view
    viewer.dims.set_point(0, 0.0)
    c.request_preview()
    _settle(qtbot, c)
    current = section.table.currentIndex()
    assert current.isValid() and section.model.object_id(current.row()) == object_id
    assert viewer.dims.point[0] == 0.0


def test_large_images_do_not_follow_and_find_objects_makes_them(make_napari_viewer, cells2d, qtbot, monkeypatch):
    monkeypatch.setattr(objects_module, "FOLLOW_MAX_VOXELS", cells2d.image.size - 1)
    viewer = make_napari_viewer()
    widget, c, layer = _open(viewer, cells2d)
    _truth_preview(monkeypatch, cells2d.truth)
    sample = cells2d
    assert not c.objects.follows and not widget.objects_section.follow_check.isChecked()
    c.preview.set_model(object())
    c.request_preview()
    _settle(qtbot, c)
    assert c.prediction_layers[0].data.any() and c.objects.shown is None
    assert "objects" not in [lyr.name for lyr in viewer.layers]
    widget.objects_section.find_btn.click()
    qtbot.waitUntil(lambda: c.objects.shown is not None and not c.busy, timeout=WAIT_MS)
    np.testing.assert_array_equal(c.objects.layer.data, _expected(sample.truth).labels)
    widget.objects_section.follow_check.setChecked(True)  # the user's choice wins over the size
    assert c.objects.follows


def test_objects_of_the_previous_image_or_older_choices_are_dropped(session2d, qtbot, monkeypatch):
    viewer, widget, c, sample = session2d
    other = viewer.add_image(np.zeros((24, 40), np.float32), name="other")
    real = objects_module.make_objects
    started = []

    def slow(request):
        started.append(request.options.min_size)
        time.sleep(0.5)
        return real(request)

    monkeypatch.setattr(objects_module, "make_objects", slow)
    _preview(qtbot, c)  # the first objects, made slowly
    started.clear()
    c.objects.set_choices(min_size=30.0)  # made again...
    qtbot.waitUntil(lambda: bool(started), timeout=WAIT_MS)
    c.objects.set_choices(min_size=60.0)  # ...and again while that runs: the 30 ones are dropped
    shown = []
    c.objects.changed.connect(lambda: shown.append(c.objects.shown and c.objects.shown.options.min_size))
    _settle(qtbot, c)
    assert started == [30.0, 60.0] and shown == [60.0]
    np.testing.assert_array_equal(c.objects.layer.data, _expected(sample.truth, min_size=60.0).labels)
    started.clear()
    c.objects.set_choices(min_size=0.0)
    qtbot.waitUntil(lambda: bool(started), timeout=WAIT_MS)
    c.set_image_layer(other)  # while the objects of 'img' are made
    _settle(qtbot, c)
    assert c.objects.shown is None
    assert all(lyr.data.shape == sample.truth.shape for lyr in viewer.layers if lyr.name.startswith("objects"))


def test_save_objects_and_table_like_the_image(make_napari_viewer, cells2d, qtbot, tmp_path):
    from segstudio.core.io import ImageMeta

    affine = np.diag([0.5, 0.5, 1.0, 1.0])
    affine[:3, 3] = (10.0, -4.0, 2.0)
    src = tmp_path / "cells.nii.gz"
    write_image(src, cells2d.image, ImageMeta(spacing=(0.5, 0.5), axes="YX", affine=affine))
    viewer = make_napari_viewer()
    (data, kwargs, _), = layer_data_from_file(str(src))
    widget, c, image = _dock(viewer, viewer.add_image(data, **kwargs))
    assert c.layers.set_prediction(cells2d.truth.astype(np.uint8))
    c.save_objects(labels=tmp_path / "out" / "cells_objects.nii.gz", table=tmp_path / "out" / "cells_objects.csv")
    _settle(qtbot, c)
    expected = _expected(cells2d.truth, (0.5, 0.5))
    back, meta = read_image(tmp_path / "out" / "cells_objects.nii.gz")
    np.testing.assert_array_equal(np.asarray(back), expected.labels)
    np.testing.assert_allclose(meta.spacing, (0.5, 0.5))
    np.testing.assert_allclose(meta.affine, affine)
    with open(tmp_path / "out" / "cells_objects.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    want = object_table(expected.labels, cells2d.image, spacing=(0.5, 0.5), classes=expected.classes,
                        class_names=NAMES)
    assert list(rows[0]) == ["image", *want]  # the image column first: one table fits many images
    assert {r["image"] for r in rows} == {"cells.nii.gz"} and len(rows) == expected.n
    for key in ("area", "centroid_y", "mean_intensity"):
        np.testing.assert_allclose([float(r[key]) for r in rows], want[key])
    assert [r["class_name"] for r in rows] == list(want["class_name"])
    np.testing.assert_array_equal(c.objects.layer.data, expected.labels)  # what was saved is shown
    c.save_objects(labels=tmp_path / "cells_objects.jpg")  # lossy: refused in one line
    qtbot.waitUntil(lambda: not c.busy, timeout=WAIT_MS)
    assert "lossless" in c.last_error and not (tmp_path / "cells_objects.jpg").exists()


def test_object_scores_beside_dice_against_a_truth_of_objects(session2d, qtbot):
    viewer, widget, c, sample = session2d
    c.preview.set_model(object())
    c.request_preview()  # the whole small image: a complete prediction
    _settle(qtbot, c)
    true_objects = viewer.add_labels(sample.instances, name="gt")  # no hint in name or metadata
    c.compute_metrics(true_objects)
    qtbot.waitUntil(lambda: c.last_metrics is not None and not c.busy, timeout=WAIT_MS)
    assert c.last_error is None, c.last_error
    found = _expected(sample.truth).labels
    want = instance_scores(found, sample.instances)
    assert c.last_object_scores == want and want.f1 > 0.5
    assert [r.name for r in c.last_metrics] == ["objects"]
    assert not widget.object_scores_label.isHidden() and f"{want.f1:.3f}" in widget.object_scores_label.text()
    assert not widget.metrics_label.isHidden()
    # a truth of classes: Dice and HD95 per class, no object scores
    classes = viewer.add_labels(sample.truth, name="classes")
    c.compute_metrics(classes)
    qtbot.waitUntil(lambda: c.last_object_scores is None and not c.busy, timeout=WAIT_MS)
    assert [r.name for r in c.last_metrics] == list(NAMES)
    assert widget.object_scores_label.isHidden()
    # objects split at dim lines are scored as the Objects section makes them: from the image
    c.objects.set_choices(object_classes=(2, 3), at_dim_lines=True)
    c.compute_metrics(true_objects)
    qtbot.waitUntil(lambda: c.last_object_scores is not None and not c.busy, timeout=WAIT_MS)
    assert c.last_error is None, c.last_error
    dim = instances_from_labels(sample.truth, options_for_classes(
        NAMES, object_classes=(2, 3), boundary_class=None, declump="intensity"), image=sample.image)
    assert c.last_object_scores == instance_scores(dim.labels, sample.instances)


def test_multilabel_mode_has_no_objects_and_says_why(session2d, qtbot):
    viewer, widget, c, sample = session2d
    _preview(qtbot, c)
    widget.mode_multilabel.setChecked(True)
    _settle(qtbot, c)
    assert c.objects.shown is None and not widget.objects_section.content().isEnabled()
    assert widget.objects_section.note.text().startswith("Objects need exclusive mode")
    truth = viewer.add_labels(sample.instances, name="true objects")
    c.layers.set_prediction(np.stack([sample.truth == k for k in (1, 2, 3)]).astype(np.uint8))
    c.compute_metrics(truth)
    qtbot.waitUntil(lambda: c.last_error is not None, timeout=WAIT_MS)
    assert "exclusive" in c.last_error and "Traceback" not in c.last_error


def test_removing_the_objects_layer_stops_live_objects(session2d, qtbot):
    viewer, widget, c, sample = session2d
    _preview(qtbot, c)
    viewer.layers.remove(c.objects.layer)
    assert not c.objects.follows and not widget.objects_section.follow_check.isChecked()
    assert widget.objects_section.model.rowCount() == 0
    c.request_preview()
    _settle(qtbot, c)
    assert "objects" not in [lyr.name for lyr in viewer.layers]


def test_objects_follow_training(make_napari_viewer, cells2d, paintings_of, tiny_training, qtbot):
    """The real route: Train makes the objects layer before the trainer starts, and each live
    preview's objects reach it (for the image and layers they were made for)."""
    viewer = make_napari_viewer()
    widget, c, layer = _open(viewer, cells2d)
    c.paint_layers[0].data = paintings_of(cells2d.truth)
    c.config_overrides = dict(tiny_training, patch_size=(32, 32))
    widget.iter_spin.setValue(30)
    c.start_training()
    assert c.objects.layer is not None and c.objects.layer in viewer.layers
    qtbot.waitUntil(lambda: c.state == "idle" and not c.busy, timeout=WAIT_MS)
    assert c.last_error is None, c.last_error
    qtbot.waitUntil(lambda: c.objects.shown is not None, timeout=WAIT_MS)
    prediction = np.asarray(c.prediction_layers[0].data)
    np.testing.assert_array_equal(c.objects.layer.data, _expected(prediction).labels)
    assert c.objects.shown.stamp == c.layers.stamp


def test_object_choices_read_from_a_project_keep_what_can_be_read():
    chosen = ObjectChoices(object_classes=(2, 3), min_size=4.0, split=False, at_dim_lines=True, follow=True)
    assert choices_from_json(json.loads(json.dumps(choices_to_json(chosen)))) == chosen
    assert choices_from_json({}) == ObjectChoices()
    edited = {"min_size": -1, "split": "yes", "object_classes": ["two"], "at_dim_lines": True, "colour": "red"}
    assert choices_from_json(edited) == ObjectChoices(at_dim_lines=True)  # the rest: defaults
