"""A session of many images: the image list, switching, training on every painted image,
Predict all and Next unreviewed, importing labels, and projects made by the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
from qtpy.QtCore import Qt

from segstudio._qt.image_list import LabelMappingDialog
from segstudio._qt.widget import SegStudioWidget
from segstudio.cli import main
from segstudio.core import project as P
from segstudio.core.label_import import WITH_BOUNDARY
from segstudio.core.run import load_run

pytestmark = pytest.mark.gui
WAIT_MS = 60_000


def _image(seed: int, shape=(48, 48)) -> np.ndarray:
    img = np.random.default_rng(seed).normal(0, 0.05, shape).astype(np.float32)
    img[12:30, 12:30] += 1.0
    return img


def _strokes(shape=(48, 48), shift: int = 0) -> np.ndarray:
    paint = np.zeros(shape, np.uint8)
    paint[2 + shift:4 + shift, 2:44] = 1
    paint[18:24, 18:24] = 2
    return paint


@pytest.fixture
def session(make_napari_viewer, tiny_training, tmp_path):
    """A viewer on image ``a`` (a file) with the widget; ``b`` and ``c`` are files next to it."""
    for i, name in enumerate("abc"):
        np.save(tmp_path / f"{name}.npy", _image(i))
    viewer = make_napari_viewer()
    viewer.open(str(tmp_path / "a.npy"), plugin="segstudio")
    widget = SegStudioWidget(viewer)
    viewer.window.add_dock_widget(widget, area="right")
    c = widget.controller
    c.config_overrides = dict(tiny_training, patch_size=(32, 32))
    widget.iter_spin.setValue(12)
    return viewer, widget, c


def _add(qtbot, c, *paths):
    n = len(c.images.entries) + len(paths)
    c.add_images([str(p) for p in paths])
    qtbot.waitUntil(lambda: len(c.images.entries) == n, timeout=WAIT_MS)


def _show(qtbot, c, name):
    c.select_image(name)
    qtbot.waitUntil(lambda: c.images.current == name and c.images.switching is None, timeout=WAIT_MS)


def _idle(qtbot, c):
    qtbot.waitUntil(lambda: c.state == "idle" and not c.busy, timeout=WAIT_MS)


def test_paint_two_images_train_once_and_see_a_prediction_on_each(session, qtbot, tmp_path):
    viewer, widget, c = session
    _add(qtbot, c, tmp_path / "b.npy", tmp_path / "c.npy")
    assert [widget.image_list.table.item(r, 0).text() for r in range(3)] == ["a", "b", "c"]
    image_layer, paint_layer = c.image_layer, c.paint_layers[0]
    paint_layer.data = _strokes()
    _show(qtbot, c, "b")
    assert c.image_layer is image_layer and c.paint_layers[0] is paint_layer  # the same layers, new data
    np.testing.assert_array_equal(image_layer.data, _image(1))
    assert not paint_layer.data.any(), "b has no strokes yet"
    paint_layer.data = _strokes(shift=40)
    qtbot.waitUntil(lambda: c.images.entry("b").painted == (int((_strokes(shift=40) == 1).sum()), 36),
                    timeout=WAIT_MS)
    assert c.images.entry("a").state == "painted" and c.images.entry("c").state == "unpainted"
    widget.train_btn.click()
    _idle(qtbot, c)
    assert c.last_error is None, c.last_error
    # the class weights counted both images' strokes
    both = (_strokes() > 0).sum() + (_strokes(shift=40) > 0).sum()
    assert sum(c.weights.counts) == both
    pred = viewer.layers["prediction"]
    qtbot.waitUntil(lambda: pred.data.min() >= 1, timeout=WAIT_MS)  # b (on screen) is predicted
    b_prediction = np.array(pred.data, copy=True)
    _show(qtbot, c, "a")
    np.testing.assert_array_equal(c.paint_layers[0].data, _strokes())  # a's strokes are back
    qtbot.waitUntil(lambda: pred.data.min() >= 1, timeout=WAIT_MS)  # the live preview follows
    assert viewer.layers["prediction"] is pred
    _show(qtbot, c, "b")
    np.testing.assert_array_equal(c.paint_layers[0].data, _strokes(shift=40))
    assert (pred.data >= 1).all() and (pred.data == b_prediction).mean() > 0.99


def test_strokes_on_another_image_reach_the_running_trainer(session, qtbot, tmp_path):
    viewer, widget, c = session
    _add(qtbot, c, tmp_path / "b.npy")
    c.paint_layers[0].data = _strokes()
    widget.length_combo.setCurrentText("until stopped")
    widget.train_btn.click()
    qtbot.waitUntil(lambda: c.iteration >= 2, timeout=WAIT_MS)
    _show(qtbot, c, "b")  # switching while training
    assert c.state == "running"
    more = _strokes(shift=40)
    c.paint_layers[0].data = more
    both = int((_strokes() > 0).sum() + (more > 0).sum())
    qtbot.waitUntil(lambda: c.weights is not None and sum(c.weights.counts) == both, timeout=WAIT_MS)
    widget.stop_btn.click()
    _idle(qtbot, c)
    assert c.last_error is None, c.last_error


def test_an_image_that_does_not_fit_is_refused_in_one_line(session, qtbot, tmp_path):
    viewer, widget, c = session
    np.save(tmp_path / "vol.npy", np.zeros((4, 48, 48), np.float32))
    c.add_images([str(tmp_path / "vol.npy"), str(tmp_path / "b.npy")])
    qtbot.waitUntil(lambda: len(c.images.entries) == 2, timeout=WAIT_MS)
    qtbot.wait(50)
    assert c.images.names() == ["a", "b"]
    assert "vol.npy" in c.last_error and "3D, 1 channel" in c.last_error and "\n" not in c.last_error


def test_predict_all_then_next_unreviewed_goes_to_the_least_sure(session, qtbot, tmp_path):
    viewer, widget, c = session
    _add(qtbot, c, tmp_path / "b.npy", tmp_path / "c.npy")
    c.paint_layers[0].data = _strokes()
    widget.train_btn.click()
    _idle(qtbot, c)
    out = tmp_path / "out"
    c.predict_all(out)
    qtbot.waitUntil(lambda: all(e.predicted_by for e in c.images.entries) and not c.images.predicting,
                    timeout=WAIT_MS)
    assert sorted(p.name for p in out.iterdir()) == ["a_labels.npy", "b_labels.npy", "c_labels.npy"]
    assert all(e.state == "predicted" and 0.0 <= e.uncertainty <= 1.0 for e in c.images.entries)
    assert c.images.entry("a").predicted_by == c.run_dir.name or "runs" in c.images.entry("a").predicted_by
    assert viewer.layers["prediction"].data.min() >= 1  # the image on screen shows its prediction
    others = {e.name: e.uncertainty for e in c.images.entries if e.name != "a"}
    widget.image_list.next_btn.click()
    least_sure = max(others, key=others.get)
    qtbot.waitUntil(lambda: c.images.current == least_sure and c.images.switching is None, timeout=WAIT_MS)
    assert c.images.entry("a").state == "reviewed"
    # its prediction is read from the labels file written by Predict all
    np.testing.assert_array_equal(viewer.layers["prediction"].data, np.load(out / f"{least_sure}_labels.npy"))
    c.paint_layers[0].data = _strokes(shift=40)  # a correction marks it reviewed
    qtbot.waitUntil(lambda: c.images.entry(least_sure).state == "reviewed", timeout=WAIT_MS)


def test_import_labels_mapped_and_as_instances(session, qtbot, tmp_path):
    viewer, widget, c = session
    c.add_class("boundary")
    labels = np.zeros((48, 48), np.uint16)
    labels[2:6, :] = 7
    labels[20:26, 20:26] = 9
    np.save(tmp_path / "labels.npy", labels)
    ready, answers = [], []

    def ask(r):  # what the mapping dialog would answer
        ready.append(r)
        return answers.pop(0) if answers else None

    widget.image_list.ask_mapping = ask
    c.read_labels_to_import(str(tmp_path / "labels.npy"))
    qtbot.waitUntil(lambda: bool(ready), timeout=WAIT_MS)
    assert list(ready[0].values) == [0, 7, 9] and not ready[0].instances
    dialog = LabelMappingDialog(ready[0], [n for n in c.class_names()])
    mapping, scheme = dialog.choice()
    assert scheme is None and mapping == {0: None, 7: None, 9: None}  # nothing maps by default
    dialog.deleteLater()
    c.import_labels(ready[0], {0: None, 7: 5, 9: 1})
    qtbot.waitUntil(lambda: c.last_error is not None, timeout=WAIT_MS)
    assert "mapped to class 5, but there are classes 1..3" in c.last_error
    c.last_error = None
    c.import_labels(ready[0], {0: None, 7: 1})
    qtbot.waitUntil(lambda: "maps to no class" in (c.last_error or ""), timeout=WAIT_MS)
    assert "label value 9 maps to no class" in c.last_error and "\n" not in c.last_error
    stroke = np.zeros((48, 48), np.uint8)
    stroke[40, 40] = 3
    c.paint_layers[0].data = stroke  # a stroke of the user's: kept
    answers.append(({0: None, 7: 1, 9: 2}, None))
    c.read_labels_to_import(str(tmp_path / "labels.npy"))
    qtbot.waitUntil(lambda: (c.paint_layers[0].data == 2).sum() == 36, timeout=WAIT_MS)
    paint = c.paint_layers[0].data
    assert (paint[2:6] == 1).all() and paint[40, 40] == 3 and (paint > 0).sum() == 4 * 48 + 36 + 1
    instances = np.zeros((48, 48), np.int32)
    for i, (y, x) in enumerate([(10, 10), (10, 30), (30, 10), (30, 30)], start=1):
        instances[y:y + 8, x:x + 8] = i
    c.paint_layers[0].data = np.zeros((48, 48), np.uint8)
    layer = viewer.add_labels(instances, name="objects")
    ready.clear()
    answers.append((None, WITH_BOUNDARY))
    c.read_labels_to_import(layer)
    qtbot.waitUntil(lambda: bool(ready), timeout=WAIT_MS)
    assert ready[0].instances  # 4 objects, 3 classes: more values than classes
    qtbot.waitUntil(lambda: (c.paint_layers[0].data == 3).any(), timeout=WAIT_MS)
    paint = c.paint_layers[0].data
    assert (paint > 0).all(), "a dense mask paints every pixel"
    assert (paint[instances == 0] == 1).all() and paint[13, 13] == 2 and paint[10, 10] == 3


def test_a_cli_project_opens_in_the_app_and_the_apps_save_trains_from_the_cli(make_napari_viewer, tmp_path,
                                                                              qtbot, tiny_training):
    for i, name in enumerate("abc"):
        np.save(tmp_path / f"{name}.npy", _image(i))
    np.save(tmp_path / "a_labels.npy", _strokes())
    folder = tmp_path / "proj"
    assert main(["project", "create", str(folder), *(str(tmp_path / f"{n}.npy") for n in "abc"),
                 "--labels", str(tmp_path / "a_labels.npy"), "--classes", "background", "square"]) == 0
    viewer = make_napari_viewer()
    widget = SegStudioWidget(viewer)
    viewer.window.add_dock_widget(widget, area="right")
    c = widget.controller
    assert c.open_project(folder)
    assert c.images.names() == ["a", "b", "c"] and c.images.current == "a"
    np.testing.assert_array_equal(c.paint_layers[0].data, _strokes())
    assert [e.state for e in c.images.entries] == ["painted", "unpainted", "unpainted"]
    _show(qtbot, c, "c")
    c.paint_layers[0].data = _strokes(shift=40)
    c.set_validation("b", True)
    c.save_project()
    qtbot.waitUntil(lambda: not c.busy and c.project is not None and bool(c.project.image("c").paintings),
                    timeout=WAIT_MS)
    info = json.loads(_run_json(["project", "info", str(folder), "--json"], capsys=None))
    assert [im["state"] for im in info["images"]] == ["painted", "unpainted", "painted"]
    assert info["images"][2]["painted"] == {"background": int((_strokes(shift=40) == 1).sum()), "square": 36}
    tiny = ["--patch", "32", "32", "--batch", "2", "--seed", "0", "--device", "cpu"]
    assert main(["train", "--project", str(folder), "--iterations", "2", *tiny]) == 0
    run = P.latest_run(folder, P.load_project(folder))
    assert load_run(run).iteration == 2


def _run_json(argv, capsys):
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(argv) == 0
    return buf.getvalue()


def _cli_project(tmp_path, n=3, labelled=("a",), names="abcdefghijklmnopqrstuvwxyz"):
    paths = []
    for i in range(n):
        np.save(tmp_path / f"{names[i]}.npy", _image(i))
        paths.append(str(tmp_path / f"{names[i]}.npy"))
    labels = []
    for name in labelled:
        np.save(tmp_path / f"{name}_labels.npy", _strokes(shift=4 * names.index(name)))
        labels.append(str(tmp_path / f"{name}_labels.npy"))
    folder = tmp_path / "proj"
    order = [p for p in paths if any(p.endswith(f"/{n}.npy") for n in labelled)]
    order += [p for p in paths if p not in order]
    assert main(["project", "create", str(folder), *order, "--labels", *labels]) == 0
    return folder


def test_save_as_carries_the_strokes_of_images_never_shown(make_napari_viewer, tmp_path, qtbot):
    folder = _cli_project(tmp_path, labelled=("a", "b"))
    viewer = make_napari_viewer()
    widget = SegStudioWidget(viewer)
    viewer.window.add_dock_widget(widget, area="right")
    c = widget.controller
    assert c.open_project(folder)
    assert c.images.names() == ["a", "b", "c"]
    c.save_project(tmp_path / "copy")
    qtbot.waitUntil(lambda: not c.busy and c.project_dir == tmp_path / "copy", timeout=WAIT_MS)
    copy = P.load_project(tmp_path / "copy")
    np.testing.assert_array_equal(P.read_paintings(tmp_path / "copy", copy, "b"), _strokes(shift=4))
    assert [im.painted for im in copy.images][2] == ()
    _show(qtbot, c, "b")  # read from the copy now
    np.testing.assert_array_equal(c.paint_layers[0].data, _strokes(shift=4))
    np.testing.assert_array_equal(c.layers.snapshot().paintings(), _strokes(shift=4))  # what training gets


def test_a_project_of_many_images_opens_without_reading_them(make_napari_viewer, tmp_path, qtbot):
    """Only the first image is read: the others may even be gone (one line when shown)."""
    folder = _cli_project(tmp_path, n=20, labelled=("a",))
    for i in range(1, 20):
        (tmp_path / f"{'abcdefghijklmnopqrstuvwxyz'[i]}.npy").unlink()
    viewer = make_napari_viewer()
    widget = SegStudioWidget(viewer)
    viewer.window.add_dock_widget(widget, area="right")
    c = widget.controller
    assert c.open_project(folder)
    assert len(c.images.names()) == 20 and widget.image_list.table.rowCount() == 20
    assert [e.shape for e in c.images.entries] == [(48, 48)] * 20
    c.select_image("t")
    qtbot.waitUntil(lambda: c.last_error is not None, timeout=WAIT_MS)
    assert "t.npy" in c.last_error and c.images.current == "a"


def test_switching_in_multilabel_mode_keeps_each_images_class_layers(session, qtbot, tmp_path):
    viewer, widget, c = session
    widget.mode_multilabel.setChecked(True)
    _add(qtbot, c, tmp_path / "b.npy")
    a = [np.where(_strokes() == k + 1, 1, np.where(_strokes() > 0, 2, 0)).astype(np.uint8) for k in range(2)]
    for layer, data in zip(c.paint_layers, a):
        layer.data = data
    _show(qtbot, c, "b")
    assert [lyr.name for lyr in c.paint_layers] == ["paint: background", "paint: foreground"]
    assert not any(lyr.data.any() for lyr in c.paint_layers)
    qtbot.waitUntil(lambda: sum(c.images.entry("a").painted) == 2 * int((_strokes() > 0).sum()), timeout=WAIT_MS)
    widget.mode_exclusive.setChecked(True)  # another image has strokes: the mode stays
    assert c.mode == "multilabel" and "mode" in c.last_error and widget.mode_multilabel.isChecked()
    _show(qtbot, c, "a")
    for layer, data in zip(c.paint_layers, a):
        np.testing.assert_array_equal(layer.data, data)


def test_validation_regions_drawn_on_an_image_are_not_trained_on(session, qtbot, tmp_path):
    viewer, widget, c = session
    _add(qtbot, c, tmp_path / "b.npy")
    c.paint_layers[0].data = _strokes()
    qtbot.waitUntil(lambda: c.weights is not None and sum(c.weights.counts) == (_strokes() > 0).sum(),
                    timeout=WAIT_MS)
    widget.image_list.regions_btn.click()
    layer = viewer.layers["validation regions"]
    assert viewer.layers.selection.active is layer and layer.mode == "add_rectangle"
    layer.add_rectangles(np.array([[0.0, 0.0], [9.0, 47.0]]))  # over the background strokes (rows 2, 3)
    assert c.images.entry("a").regions == ((0, 0, 10, 48),)
    qtbot.waitUntil(lambda: tuple(c.weights.counts) == (0, 36), timeout=WAIT_MS)
    row = widget.image_list.table.item(0, 3)
    assert row.checkState() == Qt.CheckState.PartiallyChecked
    _show(qtbot, c, "b")
    assert len(layer.data) == 0, "b has no regions"
    _show(qtbot, c, "a")
    assert len(layer.data) == 1 and c.layers.regions() == ((0, 0, 10, 48),)
    widget.train_btn.click()
    _idle(qtbot, c)
    assert c.last_error is None, c.last_error
    c.save_project(tmp_path / "proj")
    qtbot.waitUntil(lambda: not c.busy and c.project_dir is not None, timeout=WAIT_MS)
    assert P.load_project(tmp_path / "proj").image("a").regions == ((0, 0, 10, 48),)


def test_an_image_off_screen_is_weighed_without_its_held_out_strokes():
    from types import SimpleNamespace

    from segstudio._qt.images import PaintedImage, StoredPaintings

    paint = np.zeros((10, 10), np.uint8)
    paint[0, :5] = 1  # background strokes in the top rows
    paint[9, 5:] = 2
    stored = StoredPaintings("a", SimpleNamespace(paintings=lambda: paint, version=1))

    def weighed(holdout):
        present, absent, extent = PaintedImage("a", None, stored, None, holdout).weighed("exclusive", 2)
        return present.tolist(), absent.tolist(), extent

    assert weighed(None) == ([5, 5], [0, 0], (10, 100))
    top = np.zeros((10, 10), bool)
    top[:5] = True
    assert weighed(top) == ([0, 5], [0, 0], (5, 5))
    assert weighed(True) == ([0, 0], [0, 0], (0, 0))
    multi = np.stack([paint == 1, paint == 2]).astype(np.uint8)  # present strokes per channel
    ml = StoredPaintings("m", SimpleNamespace(paintings=lambda: multi, version=1))
    present, absent, extent = PaintedImage("m", None, ml, None, top).weighed("multilabel", 2)
    assert (present.tolist(), absent.tolist(), extent) == ([0, 5], [0, 0], (5, 5))
