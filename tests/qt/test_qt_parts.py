"""The parts of a session, through their public API: paint copies, snapshots, stamps, and
the facade's guarantees (stale results are dropped, per-image normalisation)."""

from __future__ import annotations

import gc
import time
import weakref

import numpy as np
import pytest
from napari.layers import Labels

from segstudio._qt import preview as preview_module
from segstudio._qt.image import Stamp
from segstudio._qt.layers import PaintCopy
from segstudio._qt.widget import SegStudioWidget
from segstudio._qt.workers import WorkerSet
from segstudio.core.predictor import PredictResult

pytestmark = pytest.mark.gui
WAIT_MS = 60_000


def _watched(layer, block_bytes=4096):
    copy = PaintCopy(layer.data, blank=not layer.data.any(), block_bytes=block_bytes)
    layer.events.paint.connect(lambda event: copy.mark(event.value))
    return copy


# --------------------------------------------------------------------------- paint copies
def test_a_snapshot_copies_only_the_blocks_a_stroke_touched():
    layer = Labels(np.zeros((8, 64, 64), np.uint8))
    copy = _watched(layer)
    before = copy.take(layer.data)
    layer.brush_size = 3
    layer.paint((5, 10, 10), 2, refresh=False)  # the brush, as the mouse paints
    after = copy.take(layer.data)
    changed = [k for k, (a, b) in enumerate(zip(before.parts, after.parts)) if a is not b]
    assert 1 <= len(changed) <= 2 and len(after.parts) == 8 * 64 * 64 // 4096
    np.testing.assert_array_equal(after.array(), layer.data)
    assert copy.take(layer.data) is after  # nothing new: the same snapshot


def test_a_snapshot_does_not_change_when_painting_goes_on():
    layer = Labels(np.zeros((32, 32), np.uint8))
    copy = _watched(layer, block_bytes=1 << 20)
    layer.paint((4, 4), 1, refresh=False)
    taken = copy.take(layer.data)
    frozen = np.array(taken.array(), copy=True)
    layer.paint((20, 20), 2, refresh=False)  # painting goes on while a worker reads the snapshot
    np.testing.assert_array_equal(taken.array(), frozen)
    with pytest.raises(ValueError):
        taken.array()[0, 0] = 3  # read-only: nobody can change it by mistake


def test_changes_without_a_location_are_found_by_the_check():
    layer = Labels(np.zeros((4, 32, 32), np.uint8))
    copy = _watched(layer)
    layer.paint((2, 5, 5), 1, refresh=False)
    taken = copy.take(layer.data)
    layer.undo()  # napari's undo emits no paint event
    assert copy.take(layer.data) is taken
    differing = copy.differing(layer.data, taken)
    assert differing
    copy.mark_blocks(differing)
    np.testing.assert_array_equal(copy.take(layer.data).array(), layer.data)


# --------------------------------------------------------------------------- the facade
@pytest.fixture
def two_images(make_napari_viewer):
    viewer = make_napari_viewer()
    a = viewer.add_image(np.random.default_rng(0).random((48, 48)).astype(np.float32) * 10, name="a")
    b = viewer.add_image(np.random.default_rng(1).random((24, 40)).astype(np.float32), name="b")
    widget = SegStudioWidget(viewer)
    viewer.window.add_dock_widget(widget, area="right")
    c = widget.controller
    c.set_image_layer(a)
    return viewer, widget, c, a, b


def test_a_preview_of_the_previous_image_is_dropped(two_images, qtbot, monkeypatch):
    """Switching image while a preview runs: its result is not written into the new image's
    layer (it used to be, or to raise on the other shape), and its normalisation is kept for
    the image it was computed for, not the new one."""
    viewer, widget, c, a, b = two_images
    started = []

    def slow(predictor, request, state, stats):
        started.append(request.stamp)
        time.sleep(0.5)
        shape = request.image.shape
        return (PredictResult(np.full(shape, 2, np.uint8), None, tuple(slice(0, n) for n in shape)),
                f"stats of {request.stamp.image}")

    monkeypatch.setattr(preview_module, "predict_region", slow)
    c.preview.set_model(object())
    c.request_preview()
    qtbot.waitUntil(lambda: bool(started), timeout=WAIT_MS)
    c.set_image_layer(b)
    qtbot.waitUntil(lambda: not c.busy, timeout=WAIT_MS)
    assert c.last_error is None, c.last_error
    assert started == [Stamp("a", started[0].generation)]
    assert not c.prediction_layers[0].data.any()  # b's prediction layer: untouched
    assert c.preview.stats("a", None) == "stats of a" and c.preview.stats("b", None) is None
    c.request_preview()  # b gets its own statistics
    qtbot.waitUntil(lambda: not c.busy and c.preview.stats("b", None) is not None, timeout=WAIT_MS)
    assert c.preview.stats("b", None) == "stats of b"
    assert (c.prediction_layers[0].data == 2).all()


def test_previews_of_new_weights_keep_to_their_budget(two_images, qtbot, monkeypatch):
    """A preview that takes t seconds is followed by the next one for new weights no sooner
    than t / PREVIEW_SHARE after it started, with the weights newest then; a preview the user
    asks for (another slice) is not held back, nor the run's last one once training ended."""
    viewer, widget, c = two_images[:3]
    starts: list[tuple[float, object]] = []

    def slow(predictor, request, state, stats):
        starts.append((time.monotonic(), state))
        time.sleep(0.15)
        shape = request.image.shape
        return PredictResult(np.full(shape, 1, np.uint8), None, tuple(slice(0, n) for n in shape)), "s"

    monkeypatch.setattr(preview_module, "predict_region", slow)
    monkeypatch.setattr(preview_module, "PREVIEW_SHARE", 0.1)  # 0.15 s -> one per 1.5 s
    c.preview.set_model(object())
    c.training.model_updated.emit("w1")
    qtbot.waitUntil(lambda: len(starts) == 1 and not c.preview.busy, timeout=WAIT_MS)
    assert c.preview.last_seconds >= 0.15
    c.training.model_updated.emit("w2")
    c.training.model_updated.emit("w3")
    qtbot.wait(300)
    assert len(starts) == 1  # held back by the budget
    qtbot.waitUntil(lambda: len(starts) == 2 and not c.preview.busy, timeout=WAIT_MS)
    assert starts[1][1] == "w3"
    assert starts[1][0] - starts[0][0] >= 1.5 - 0.05
    asked = time.monotonic()
    c.request_preview()  # what a scroll to another slice asks for
    qtbot.waitUntil(lambda: len(starts) == 3, timeout=WAIT_MS)
    assert starts[2][0] - asked < 1.0
    qtbot.waitUntil(lambda: not c.preview.busy, timeout=WAIT_MS)
    c.training.model_updated.emit("w4")  # the run's last weights, held back ...
    qtbot.wait(200)
    assert len(starts) == 3
    ended = time.monotonic()
    c.training.state_changed.emit("idle")  # ... until the run ends: nothing left to spare
    qtbot.waitUntil(lambda: len(starts) == 4, timeout=WAIT_MS)
    assert starts[3][1] == "w4" and starts[3][0] - ended < 0.5
    qtbot.waitUntil(lambda: not c.preview.busy, timeout=WAIT_MS)
    c.training.model_updated.emit("w5")  # held back, then a slice change previews it first:
    c.request_preview()
    qtbot.waitUntil(lambda: len(starts) == 5, timeout=WAIT_MS)
    assert starts[4][1] == "w5"
    qtbot.wait(1700)
    assert len(starts) == 5  # the held-back preview is not run again with the same weights
    assert c.last_error is None, c.last_error


def test_a_result_for_older_layers_is_dropped(two_images, qtbot, monkeypatch):
    """The mode changed while a preview ran: the result (of the other mode) is dropped."""
    viewer, widget, c, a, b = two_images
    started = []

    def slow(predictor, request, state, stats):
        started.append(1)
        time.sleep(0.5)
        return PredictResult(np.full((48, 48), 1, np.uint8), None, (slice(0, 48), slice(0, 48))), "s"

    monkeypatch.setattr(preview_module, "predict_region", slow)
    c.preview.set_model(object())
    c.request_preview()
    qtbot.waitUntil(lambda: bool(started), timeout=WAIT_MS)
    widget.mode_multilabel.setChecked(True)
    qtbot.waitUntil(lambda: not c.busy, timeout=WAIT_MS)
    assert c.last_error is None, c.last_error
    assert all(not lyr.data.any() for lyr in c.prediction_layers)


def test_switching_image_cancels_a_whole_image_prediction(two_images, qtbot, tiny_training):
    viewer, widget, c, a, b = two_images
    paint = np.zeros((48, 48), np.uint8)
    paint[:4], paint[20:24] = 1, 2
    c.paint_layers[0].data = paint
    c.config_overrides = dict(tiny_training, patch_size=(32, 32))
    widget.iter_spin.setValue(3)
    c.start_training()
    qtbot.waitUntil(lambda: c.state == "idle" and not c.busy, timeout=WAIT_MS)
    assert c.last_error is None, c.last_error
    c.predict_image()
    assert c.predicting
    c.set_image_layer(b)
    qtbot.waitUntil(lambda: not c.busy, timeout=WAIT_MS)
    assert c.last_error is None, c.last_error
    assert c.image_layer is b and c.prediction_layers[0].data.shape == (24, 40)
    assert not c.prediction_layers[0].data.any()


def test_a_finished_worker_lets_go_of_its_arguments_and_result(qtbot):
    """Workers are started for every stroke, preview and switch: each must free what it was
    given (paintings, images) once it ended, or memory grows with every one of them."""
    workers = WorkerSet()
    given = np.zeros(1 << 20, np.uint8)
    seen = []
    workers.start("job", lambda a: a.copy(), given, returned=seen.append)
    refs = [weakref.ref(given)]
    del given
    qtbot.waitUntil(lambda: bool(seen) and not workers.busy(), timeout=WAIT_MS)
    refs.append(weakref.ref(seen.pop()))

    def released() -> bool:  # the thread pool may drop its finished runnable a little later
        gc.collect()
        return all(r() is None for r in refs)

    try:
        qtbot.waitUntil(released, timeout=WAIT_MS)
    except Exception:  # name what still holds them, so a failure says where the leak is
        alive = [(i, [type(h).__name__ for h in gc.get_referrers(r())]) for i, r in enumerate(refs) if r() is not None]
        pytest.fail(f"still referenced (0: the argument, 1: the result) by: {alive}")


@pytest.mark.parametrize(("saved", "read"), [(True, "on"), (False, "auto"), ("off", "off"), ("sometimes", "auto")])
def test_a_projects_wide_context_reads_as_a_choice(saved, read):
    """Projects written when wide context was a checkbox (ticked: on; unticked, the default
    then: auto), and a hand-edited value (auto: the project still opens)."""
    from dataclasses import replace

    from segstudio._qt.settings import Settings
    from segstudio.core.project import Project

    settings = Settings()
    settings.load_project(replace(Project(), training={"wide_context": saved, "iterations": 7}))
    assert settings.train.wide_context == read and settings.train.iterations == 7


@pytest.mark.parametrize("key", ["textures", "level_slices"])
@pytest.mark.parametrize(("saved", "read"), [("on", "on"), ("off", "off"), (True, "on"), ("sometimes", "auto")])
def test_a_projects_auto_choice_reads_back(key, saved, read):
    """The app's choice, and a hand-edited value (auto: the project still opens)."""
    from dataclasses import replace

    from segstudio._qt.settings import Settings
    from segstudio.core.project import Project

    settings = Settings()
    assert getattr(settings.train, key) == "auto"
    settings.load_project(replace(Project(), training={key: saved}))
    assert getattr(settings.train, key) == read


def test_the_inferred_overlay_reads_the_levelled_volume_when_level_slices_is_on(background_along_z):
    """The background rule shown is the one the run learns: on the levelled volume."""
    from types import SimpleNamespace

    from segstudio._qt.inferred import InferRequest, infer
    from segstudio.core.data import image_stats
    from segstudio.core.implied import implied_labels, merged

    vol, paint = background_along_z()
    snap = SimpleNamespace(paintings=lambda: paint)
    plain = infer(InferRequest("img", vol, None, snap, "exclusive", False, True, None))[1]
    level = infer(InferRequest("img", vol, None, snap, "exclusive", False, True, None, True))[1]
    offsets = image_stats(vol, level_slices=True).offsets
    expected = merged(implied_labels(paint, vol, "exclusive", outlines=False, background=True, offsets=offsets))
    np.testing.assert_array_equal(level, expected)
    assert (level == 1).sum() > (plain == 1).sum()  # the bright last slices' background is background too


def test_the_inferred_overlay_follows_textures(monkeypatch, blurred_disk):
    """The background rule shown is the one the run learns: with *textures* on, its threshold
    stays at the painted background (:func:`segstudio.core.background.towards_objects`)."""
    from types import SimpleNamespace

    from segstudio._qt.inferred import InferRequest, infer
    from segstudio.core import background
    from segstudio.core.implied import implied_labels, merged

    img, paint, _ = blurred_disk
    monkeypatch.setattr(background, "TOWARDS_OBJECTS", 0.2)
    monkeypatch.setattr(background, "TOWARDS_OBJECTS_TEXTURES", 0.0)
    snap = SimpleNamespace(paintings=lambda: paint)
    shown = {t: infer(InferRequest("img", img, None, snap, "exclusive", False, True, None, False, t))[1]
             for t in (False, True)}
    for t, labels in shown.items():
        np.testing.assert_array_equal(labels, merged(implied_labels(paint, img, "exclusive", outlines=False,
                                                                    background=True, textures=t)))
    assert (shown[False] == 1).sum() > (shown[True] == 1).sum()


def test_the_inferred_overlay_follows_wide_context(spots_on_a_ramp):
    """The background rule shown is the one the run learns: with *wide context* on (an uneven
    2D background) it reads the image against its local background."""
    from types import SimpleNamespace

    from segstudio._qt.inferred import InferRequest, infer
    from segstudio.core.implied import implied_labels, merged

    img, paint, _ = spots_on_a_ramp()
    snap = SimpleNamespace(paintings=lambda: paint)
    shown = {u: infer(InferRequest("img", img, None, snap, "exclusive", False, True, None, False, False, u))[1]
             for u in (False, True)}
    for u, labels in shown.items():
        np.testing.assert_array_equal(labels, merged(implied_labels(paint, img, "exclusive", outlines=False,
                                                                    background=True, uneven=u)))
    assert (shown[True] == 1).sum() > (shown[False] == 1).sum()


def test_the_inferred_overlay_keeps_the_smoothed_image_between_paint_changes(background_along_z):
    """A paint change reads the kept smoothed image (the same answers as computing it afresh);
    other switches, another image, or hiding the overlay compute it again."""
    from types import SimpleNamespace

    from segstudio._qt.inferred import InferRequest, SmoothedKeeper, infer

    vol, paint = background_along_z()
    keeper = SmoothedKeeper()
    more = paint.copy()
    more[more.shape[0] // 2, :2, :2] = 1  # a background stroke more: the paint changed

    def ask(image, p, level, uneven, kept=keeper):
        snap = SimpleNamespace(paintings=lambda: p)
        return infer(InferRequest("img", image, None, snap, "exclusive", False, True, None, level, False, uneven),
                     kept)[1]

    for p in (paint, more):
        np.testing.assert_array_equal(ask(vol, p, True, True), ask(vol, p, True, True, kept=None))
    assert keeper.computed == 1
    np.testing.assert_array_equal(ask(vol, paint, False, False), ask(vol, paint, False, False, kept=None))
    assert keeper.computed == 2
    ask(vol.copy(), paint, False, False)
    assert keeper.computed == 3
    keeper.clear()
    ask(vol, paint, False, False)
    assert keeper.computed == 4
