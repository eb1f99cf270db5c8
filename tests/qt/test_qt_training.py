"""Training from the widget: threads, previews, pause/stop, errors, closing, results."""

from __future__ import annotations

import numpy as np
import pytest
from qtpy.QtCore import QThreadPool

from segstudio._qt import preview as preview_module
from segstudio._qt import training as training_module
from segstudio._qt.widget import COL_LEARNT, SegStudioWidget

pytestmark = pytest.mark.gui

IDLE_TIMEOUT_MS = 60_000


@pytest.fixture
def session(make_napari_viewer, tiny_training):
    """A viewer with a tiny image, its strokes and the widget set up for tiny training runs."""

    def make(sample, paintings, *, mode="exclusive", iterations=20, patch=None):
        viewer = make_napari_viewer()
        viewer.add_image(sample.image, name="img", scale=sample.spacing or (1.0,) * sample.image.ndim)
        truth = viewer.add_labels(sample.truth, name="truth", scale=sample.spacing or (1.0,) * sample.image.ndim)
        truth.visible = False
        widget = SegStudioWidget(viewer)
        viewer.window.add_dock_widget(widget, area="right")
        c = widget.controller
        c.add_class("boundary")
        c.paint_layers[0].data = paintings
        if mode == "multilabel":
            widget.mode_multilabel.setChecked(True)
        c.config_overrides = dict(tiny_training, patch_size=patch or (sample.image.shape if sample.image.ndim == 2
                                                                      else (8, 32, 32)))
        widget.iter_spin.setValue(iterations)
        return viewer, widget, c

    return make


def _wait_idle(qtbot, c, timeout=IDLE_TIMEOUT_MS):
    qtbot.waitUntil(lambda: c.state == "idle" and not c.busy, timeout=timeout)


def test_train_exclusive_2d_gives_prediction_layer(session, qtbot, tiny2d, paintings_of):
    viewer, widget, c = session(tiny2d, paintings_of(tiny2d.truth))
    painted = np.array(c.paint_layers[0].data, copy=True)
    widget.train_btn.click()
    assert c.state == "running" and not widget.train_btn.isEnabled()
    _wait_idle(qtbot, c)
    assert c.last_error is None, c.last_error
    assert c.iteration == 20
    pred = viewer.layers["prediction"]
    assert pred.data.shape == (64, 64) and pred.data.dtype == np.uint8
    assert set(np.unique(pred.data)) <= {1, 2, 3} and pred.data.min() >= 1  # whole image predicted
    assert c.prediction_layers == [pred]
    np.testing.assert_array_equal(c.paint_layers[0].data, painted)  # strokes untouched
    assert len(c.loss_values) == 20 and np.isfinite(c.loss_values).all()
    widget.redraw_progress()
    assert widget.progress_label.text().startswith("it 20/20 · loss ")
    learnt = [widget.class_table.item(row, COL_LEARNT).text() for row in range(widget.class_table.rowCount())]
    assert len(learnt) == 3 and all(t.endswith(" %") and 0 <= int(t[:-2]) <= 100 for t in learnt), learnt
    assert not widget.progress_bar.isHidden() and widget.progress_bar.value() == 1000
    assert "done" in widget.status_label.text()
    x, y = widget.raw_curve.getData()
    assert len(x) == 20
    assert (c.run_dir / "model.pt").exists()


def test_training_until_stopped_shows_no_animated_bar(session, qtbot, tiny2d, paintings_of):
    """A busy indicator animates at the screen's frame rate, and each frame recomposes the whole
    window around napari's OpenGL canvas: 0.8 CPU s per s of two cores, taken from training."""
    viewer, widget, c = session(tiny2d, paintings_of(tiny2d.truth))
    c.set_settings(length="until stopped")
    widget.train_btn.click()
    qtbot.waitUntil(lambda: c.iteration >= 3, timeout=IDLE_TIMEOUT_MS)
    widget.redraw_progress()
    bar = widget.progress_bar
    assert bar.maximum() > 0, "a busy (animated) indicator"
    assert bar.isHidden() and "elapsed" in widget.progress_label.text()
    assert bar.sizePolicy().retainSizeWhenHidden()  # the dock does not jump
    widget.stop_btn.click()
    _wait_idle(qtbot, c)
    assert c.last_error is None, c.last_error


def test_train_exclusive_3d_previews_the_current_slab(session, qtbot, tall3d, paintings_of):
    viewer, widget, c = session(tall3d, paintings_of(tall3d.truth), iterations=6)
    viewer.dims.set_current_step(0, 20)
    widget.train_btn.click()
    _wait_idle(qtbot, c)
    assert c.last_error is None, c.last_error
    pred = viewer.layers["prediction"]
    assert pred.data.shape == (40, 32, 32) and pred.data.dtype == np.uint8
    assert tuple(pred.scale) == tall3d.spacing
    predicted = np.flatnonzero(pred.data.reshape(40, -1).max(axis=1))
    assert list(predicted) == [19, 20, 21]  # current slice ± PREVIEW_SLAB
    # Whole-image prediction fills the rest (in place: same layer).
    widget.predict_btn.click()
    qtbot.waitUntil(lambda: not c.predicting, timeout=30_000)
    assert viewer.layers["prediction"] is pred and pred.data.min() >= 1


def test_a_downsampled_run_previews_and_predicts_at_full_size(session, qtbot, tall3d, paintings_of):
    """*Downsample* 2 on a volume of spacing (2, 1, 1): blocks of 1 × 2 × 2; the live preview of
    the current slab and the whole-image prediction come back at the volume's full size."""
    viewer, widget, c = session(tall3d, paintings_of(tall3d.truth), iterations=6)
    widget.downsample_spin.setValue(2)
    viewer.dims.set_current_step(0, 20)
    widget.train_btn.click()
    _wait_idle(qtbot, c)
    assert c.last_error is None, c.last_error
    assert c.training.config.downsample == 2 and c.training.config.reduction == (1, 2, 2)
    assert (c.run_dir / "config.json").read_text().count('"downsample": 2') == 1
    pred = viewer.layers["prediction"]
    assert pred.data.shape == (40, 32, 32)
    assert list(np.flatnonzero(pred.data.reshape(40, -1).max(axis=1))) == [19, 20, 21]
    widget.predict_btn.click()
    qtbot.waitUntil(lambda: not c.predicting, timeout=30_000)
    assert viewer.layers["prediction"] is pred and pred.data.min() >= 1


def test_a_small_volume_is_previewed_whole(session, qtbot, tiny3d, paintings_of):
    """Where the current slab's context is as much work as the volume, the preview shows every
    slice (core.predictor.predict_work)."""
    viewer, widget, c = session(tiny3d, paintings_of(tiny3d.truth), iterations=6)
    viewer.dims.set_current_step(0, 4)
    previews = []
    c.preview.result.connect(lambda stamp, result: previews.append(result))
    widget.train_btn.click()
    _wait_idle(qtbot, c)
    assert c.last_error is None, c.last_error
    assert c.preview_region() is None
    pred = viewer.layers["prediction"]
    assert pred.data.shape == (8, 32, 32) and pred.data.min() >= 1  # every slice predicted
    assert c.layers.complete
    cache = c.preview.predictor.model.filter_cache  # the filters ran once for every preview
    assert cache.misses == 1 and cache.hits >= len(previews) - 1  # (a last one may be in flight)


def test_train_multilabel_2d(session, qtbot, tiny2d, paintings_of):
    viewer, widget, c = session(tiny2d, paintings_of(tiny2d.truth), mode="multilabel", iterations=10)
    assert [lyr.name for lyr in c.paint_layers] == ["paint: background", "paint: foreground", "paint: boundary"]
    widget.train_btn.click()
    _wait_idle(qtbot, c)
    assert c.last_error is None, c.last_error
    assert c.config.mode == "multilabel" and c.config.loss == "bce"
    preds = [viewer.layers[f"prediction: {n}"] for n in ("background", "foreground", "boundary")]
    assert c.prediction_layers == preds
    for p in preds:
        assert p.data.shape == (64, 64) and p.data.dtype == np.uint8
        assert set(np.unique(p.data)) <= {0, 1}


def test_pause_resume_stop(session, qtbot, tiny2d, paintings_of):
    viewer, widget, c = session(tiny2d, paintings_of(tiny2d.truth))
    widget.length_combo.setCurrentText("until stopped")
    widget.train_btn.click()
    qtbot.waitUntil(lambda: c.iteration >= 3, timeout=30_000)
    widget.pause_btn.click()
    assert c.state == "paused" and widget.pause_btn.text().endswith("Resume")
    qtbot.wait(500)  # let an in-flight step land
    frozen = c.iteration
    qtbot.wait(800)
    assert c.iteration == frozen, "training went on while paused"
    widget.pause_btn.click()
    assert c.state == "running"
    qtbot.waitUntil(lambda: c.iteration > frozen + 2, timeout=30_000)
    widget.stop_btn.click()
    _wait_idle(qtbot, c)
    assert "stopped" in widget.status_label.text()
    assert (c.run_dir / "model.pt").exists()
    assert c.prediction_layers  # the final weights were previewed
    # Train again: the run continues from where it stopped.
    last = c.iteration
    widget.length_combo.setCurrentText("iterations")
    widget.iter_spin.setValue(3)
    widget.train_btn.click()
    _wait_idle(qtbot, c)
    assert c.iteration == last + 3 and c.last_error is None


def test_trainer_failure_reaches_status_line(session, qtbot, tiny2d, paintings_of, monkeypatch):
    from segstudio.core import trainer

    shown = []
    monkeypatch.setattr("napari.utils.notifications.show_error", lambda msg: shown.append(msg))

    def boom(self):
        raise RuntimeError("boom in step")

    monkeypatch.setattr(trainer.Trainer, "step", boom)
    viewer, widget, c = session(tiny2d, paintings_of(tiny2d.truth))
    painted = np.array(c.paint_layers[0].data, copy=True)
    widget.train_btn.click()
    _wait_idle(qtbot, c)
    assert "boom in step" in widget.status_label.text()
    assert any("boom in step" in m for m in shown)
    np.testing.assert_array_equal(c.paint_layers[0].data, painted)
    assert widget.train_btn.isEnabled()


def test_exception_in_worker_reaches_status_line(session, qtbot, tiny2d, paintings_of, monkeypatch):
    from segstudio.core import trainer

    def broken_run(self, stop=None):
        raise ValueError("not a generator failure")

    monkeypatch.setattr(trainer.Trainer, "run", broken_run)
    viewer, widget, c = session(tiny2d, paintings_of(tiny2d.truth))
    widget.train_btn.click()
    _wait_idle(qtbot, c)
    assert "not a generator failure" in widget.status_label.text()


def test_nothing_painted_is_a_clear_error(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((32, 32), np.float32))
    widget = SegStudioWidget(viewer)
    c = widget.controller
    widget.train_btn.click()  # before the counts are in: the trainer says so
    _wait_idle(qtbot, c)
    assert "nothing is painted" in widget.status_label.text()
    widget.status_label.clear()
    qtbot.waitUntil(lambda: c.weights is not None, timeout=5000)
    widget.train_btn.click()  # counts known: refused at once
    assert c.state == "idle" and "nothing is painted" in widget.status_label.text()


@pytest.mark.parametrize("train_in", ["thread", pytest.param("process", marks=pytest.mark.train_in_process)])
def test_closing_viewer_during_training_stops_the_worker(session, qtbot, tiny2d, paintings_of, children, train_in):
    viewer, widget, c = session(tiny2d, paintings_of(tiny2d.truth))
    widget.length_combo.setCurrentText("until stopped")
    widget.train_btn.click()
    qtbot.waitUntil(lambda: c.iteration >= 2, timeout=30_000)
    run_dir = c.run_dir
    viewer.close()
    assert c.closed
    qtbot.waitUntil(lambda: c.stopped, timeout=30_000)  # the training generator finished
    qtbot.waitUntil(lambda: QThreadPool.globalInstance().activeThreadCount() == 0, timeout=10_000)
    assert (run_dir / "model.pt").exists()  # final checkpoint written on close (by the child in a process)
    assert len(children) == (train_in == "process") and not any(ch.process.is_alive() for ch in children)


def test_removing_the_dock_widget_stops_training(session, qtbot, tiny2d, paintings_of):
    viewer, widget, c = session(tiny2d, paintings_of(tiny2d.truth))
    widget.length_combo.setCurrentText("until stopped")
    widget.train_btn.click()
    qtbot.waitUntil(lambda: c.iteration >= 2, timeout=30_000)
    viewer.window.remove_dock_widget(widget)
    assert c.closed
    qtbot.waitUntil(lambda: c.stopped, timeout=30_000)
    qtbot.waitUntil(lambda: QThreadPool.globalInstance().activeThreadCount() == 0, timeout=10_000)


def test_inline_mode_runs_the_same_generator(session, qtbot, tiny2d, paintings_of, monkeypatch):
    monkeypatch.setenv("SEGSTUDIO_NO_THREADS", "1")
    viewer, widget, c = session(tiny2d, paintings_of(tiny2d.truth), iterations=5)
    widget.train_btn.click()
    assert QThreadPool.globalInstance().activeThreadCount() == 0
    _wait_idle(qtbot, c)
    assert c.iteration == 5 and c.last_error is None
    assert viewer.layers["prediction"].data.min() >= 1


def test_preview_requests_do_not_queue(qtbot, monkeypatch):
    """While a preview runs, newer requests replace the pending one: first and newest run,
    each with the weights that are newest when it starts."""
    import time

    from segstudio._qt.image import Stamp
    from segstudio._qt.notify import Notifier
    from segstudio._qt.preview import Preview, PreviewRequest
    from segstudio._qt.workers import WorkerSet
    from segstudio.core.predictor import PredictResult

    seen = []

    def slow_predict(predictor, request, state, stats):
        seen.append((request.region, state))
        time.sleep(0.3)
        return PredictResult(np.ones((16, 16), np.uint8), None, (slice(0, 16), slice(0, 16))), "stats"

    monkeypatch.setattr(preview_module, "predict_region", slow_predict)
    preview = Preview(WorkerSet(), Notifier())
    results = []
    preview.result.connect(lambda stamp, result: results.append(stamp))
    preview.set_model(object(), weights="w0")
    image = np.zeros((16, 16), np.float32)
    for k in range(6):
        preview.weights = f"w{k}"
        preview.request(PreviewRequest(Stamp("img", k), image, None, (slice(k, 16),)))
    qtbot.waitUntil(lambda: not preview.busy and len(results) == 2, timeout=10_000)
    assert seen == [((slice(0, 16),), "w0"), ((slice(5, 16),), "w5")]
    assert results == [Stamp("img", 0), Stamp("img", 5)]
    assert preview.stats("img", None) == "stats"  # kept for the image it was computed for


def test_metrics_folder_and_save_run(session, qtbot, tiny2d, paintings_of, tmp_path):
    from segstudio.core.io import read_image

    viewer, widget, c = session(tiny2d, paintings_of(tiny2d.truth), iterations=15)
    widget.train_btn.click()
    _wait_idle(qtbot, c)
    assert widget.truth_combo.currentText() == "truth"
    widget.metrics_btn.click()
    qtbot.waitUntil(lambda: c.last_metrics is not None or c.last_error is not None, timeout=30_000)
    assert c.last_error is None, c.last_error
    assert [r.name for r in c.last_metrics] == ["background", "foreground", "boundary"]
    assert all(0.0 <= r.dice <= 1.0 for r in c.last_metrics)
    text = widget.metrics_label.text()
    for name in ("background", "foreground", "boundary"):
        assert name in text
    assert "Dice" in widget.status_label.text()

    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    np.save(src / "a.npy", tiny2d.image)
    np.save(src / "b.npy", tiny2d.image[::-1].copy())
    c.predict_folder(src, out)
    qtbot.waitUntil(lambda: not c.predicting, timeout=30_000)
    assert c.last_error is None, c.last_error
    for name in ("a", "b"):  # the command line's names: NAME_labels in the input's format
        labels, _ = read_image(out / f"{name}_labels.npy")
        assert labels.shape == (64, 64) and labels.min() >= 1

    dest = tmp_path / "saved"
    c.save_run(dest)
    qtbot.waitUntil(lambda: "run saved to" in widget.status_label.text(), timeout=10_000)
    from segstudio.core.run import load_run

    assert load_run(dest).config.n_classes == 3


def test_save_prediction_keeps_nifti_affine_and_shows_probabilities(session, qtbot, tall3d, paintings_of, tmp_path):
    import nibabel as nib

    from segstudio.core.io import ImageMeta, read_image, write_image

    viewer, widget, c = session(tall3d, paintings_of(tall3d.truth), iterations=4)
    viewer.dims.set_current_step(0, 20)
    affine = np.diag([*tall3d.spacing[::-1], 1.0])
    affine[:3, 3] = (10.0, -20.0, 5.0)
    source = tmp_path / "img.nii.gz"
    write_image(source, tall3d.image, ImageMeta(spacing=tall3d.spacing, affine=affine))
    c.image_layer.metadata = {"segstudio": {"path": str(source)}}
    widget.proba_check.setChecked(True)
    widget.train_btn.click()
    _wait_idle(qtbot, c)
    assert c.last_error is None, c.last_error
    assert not c.layers.complete  # only the current slab was previewed

    dest = tmp_path / "pred.nii.gz"
    c.save_prediction(dest)  # predicts the whole image first, then writes
    qtbot.waitUntil(lambda: "prediction saved to" in widget.status_label.text() or c.last_error is not None,
                    timeout=30_000)
    assert c.last_error is None, c.last_error
    labels, meta = read_image(dest)
    np.testing.assert_array_equal(labels, viewer.layers["prediction"].data)
    assert labels.min() >= 1  # whole image
    np.testing.assert_allclose(nib.load(dest).affine, nib.load(source).affine)
    assert meta.spacing == pytest.approx(tall3d.spacing)

    proba = [lyr for lyr in viewer.layers if lyr.name.startswith("probability: ")]
    assert [lyr.name for lyr in proba] == [f"probability: {n}" for n in ("background", "foreground", "boundary")]
    stack = np.stack([lyr.data for lyr in proba])
    assert stack.shape == (3, 40, 32, 32) and np.allclose(stack.sum(axis=0), 1.0, atol=1e-3)
    np.testing.assert_array_equal(stack.argmax(axis=0) + 1, labels)


def test_predict_another_open_image(session, qtbot, tiny2d, paintings_of):
    viewer, widget, c = session(tiny2d, paintings_of(tiny2d.truth), iterations=5)
    widget.train_btn.click()
    _wait_idle(qtbot, c)
    other = viewer.add_image(tiny2d.image[:, ::-1].copy(), name="other", scale=(0.5, 0.5))
    assert c.image_layer.name == "img"  # adding an image does not change the training image
    index = widget.predict_combo.findText("other")
    assert index >= 0
    widget.predict_combo.setCurrentIndex(index)
    widget.predict_btn.click()
    qtbot.waitUntil(lambda: "other prediction" in viewer.layers or c.last_error is not None, timeout=30_000)
    assert c.last_error is None, c.last_error
    out = viewer.layers["other prediction"]
    assert out.data.shape == other.data.shape and out.data.min() >= 1 and out.data.max() <= 3
    assert tuple(out.scale) == (0.5, 0.5)
    qtbot.waitUntil(lambda: not c.predicting, timeout=10_000)
    assert "other predicted" in widget.status_label.text()


def test_torch_warm_up_runs_once_in_the_background():
    # The optimizer's first construction imports torch._dynamo (seconds); the controller
    # starts that import in one background thread when it is created, never twice.
    import sys

    warm_up = training_module.TorchWarmUp()
    first, second = warm_up.start(), warm_up.start()
    assert first is not None and first.name == "segstudio-torch-warm-up" and second is None
    assert first.daemon  # never keeps the app from exiting
    first.join(60)
    assert "torch._dynamo" in sys.modules


# ---------------------------------------------------------------------- in a child process
# The app's default on a CPU (the tests above train in its thread: see conftest).


@pytest.fixture
def children(monkeypatch):
    """The training processes started (this process's side of each)."""
    from segstudio.core import trainer_process

    started = []

    class Counted(trainer_process.TrainerProcess):
        def __init__(self, *a, **kw):
            super().__init__(*a, **kw)
            started.append(self)

    monkeypatch.setattr(training_module, "TrainerProcess", Counted)
    return started


@pytest.mark.train_in_process
def test_training_in_a_child_process_previews_pauses_and_stops(session, qtbot, tiny2d, paintings_of, children):
    viewer, widget, c = session(tiny2d, paintings_of(tiny2d.truth))
    widget.length_combo.setCurrentText("until stopped")
    widget.train_btn.click()
    qtbot.waitUntil(lambda: c.iteration >= 3, timeout=60_000)
    assert len(children) == 1 and children[0].process.is_alive()
    widget.pause_btn.click()
    qtbot.wait(800)  # a step under way lands
    frozen = c.iteration
    qtbot.wait(800)
    assert c.iteration == frozen, "the child went on while paused"
    widget.pause_btn.click()
    qtbot.waitUntil(lambda: c.iteration > frozen + 2, timeout=30_000)
    widget.stop_btn.click()
    _wait_idle(qtbot, c)
    assert c.last_error is None, c.last_error
    assert "stopped" in widget.status_label.text()
    assert (c.run_dir / "model.pt").exists()  # the child's checkpoint
    assert viewer.layers["prediction"].data.min() >= 1  # its last weights were previewed here
    assert not children[0].process.is_alive()


def _stroke_while_training(session, qtbot, tiny2d, paintings_of):
    """Train until stopped, paint a wide background stroke once it runs, wait until the class
    table counts it (the trainer's weights), stop; returns the controller."""
    viewer, widget, c = session(tiny2d, paintings_of(tiny2d.truth, step=29))
    widget.length_combo.setCurrentText("until stopped")
    counts = []
    c.weights_changed.connect(lambda w: counts.append(tuple(w.counts)))
    widget.train_btn.click()
    qtbot.waitUntil(lambda: c.iteration >= 2 and bool(counts), timeout=60_000)
    first = counts[-1]
    paint = c.paint_layers[0]
    more = np.array(paint.data, copy=True)
    more[:, :20] = 1  # a wide background stroke
    paint.data = more
    qtbot.waitUntil(lambda: counts[-1] != first, timeout=30_000)
    assert counts[-1][0] == int((more == 1).sum()) > first[0]
    widget.stop_btn.click()
    _wait_idle(qtbot, c)
    return c


@pytest.mark.train_in_process
def test_strokes_painted_while_training_reach_the_child(session, qtbot, tiny2d, paintings_of, children):
    c = _stroke_while_training(session, qtbot, tiny2d, paintings_of)  # counted by the child's trainer
    assert c.last_error is None
    assert len(children) == 1


@pytest.mark.train_in_process
def test_a_training_process_that_dies_is_one_message_and_the_strokes_stay(session, qtbot, tiny2d, paintings_of,
                                                                         children):
    import os
    import signal

    viewer, widget, c = session(tiny2d, paintings_of(tiny2d.truth))
    widget.length_combo.setCurrentText("until stopped")
    painted = np.array(c.paint_layers[0].data, copy=True)
    widget.train_btn.click()
    qtbot.waitUntil(lambda: c.iteration >= 2, timeout=60_000)
    os.kill(children[0].process.pid, signal.SIGKILL)  # as the out-of-memory killer would
    _wait_idle(qtbot, c)
    assert "the training process ended unexpectedly (exit code -9)" in widget.status_label.text()
    np.testing.assert_array_equal(c.paint_layers[0].data, painted)
    assert widget.train_btn.isEnabled()


@pytest.mark.train_in_process
def test_a_gpu_run_or_inline_workers_train_in_the_thread(session, qtbot, tiny2d, paintings_of, children, monkeypatch):
    monkeypatch.setenv("SEGSTUDIO_NO_THREADS", "1")
    viewer, widget, c = session(tiny2d, paintings_of(tiny2d.truth), iterations=3)
    widget.train_btn.click()
    _wait_idle(qtbot, c)
    assert c.iteration == 3 and children == []


@pytest.mark.train_in_process
def test_the_next_runs_process_is_started_ahead_and_used(session, qtbot, tiny2d, paintings_of, children):
    viewer, widget, c = session(tiny2d, paintings_of(tiny2d.truth), iterations=5)
    qtbot.waitUntil(lambda: len(children) == 1, timeout=10_000)  # started while the user paints
    spare = children[0]
    assert spare.process.is_alive() and not spare.started
    widget.train_btn.click()
    _wait_idle(qtbot, c)
    assert c.last_error is None, c.last_error
    assert spare.started and c.iteration == 5 and len(children) == 1  # the run took it
    qtbot.waitUntil(lambda: len(children) == 2, timeout=10_000)  # and the next one waits
    nxt = children[1]
    viewer.close()
    qtbot.waitUntil(lambda: not nxt.process.is_alive(), timeout=30_000)  # gone with the session


def test_strokes_painted_while_training_are_prepared_beside_the_steps(session, qtbot, tiny2d, paintings_of,
                                                                      monkeypatch):
    """The app's trainer prepares new paintings in a thread of its own while it steps (once a
    preparation is slow enough to pay for it: here always), and the class table counts them."""
    import threading

    from segstudio.core import trainer as trainer_module

    monkeypatch.setattr(trainer_module, "BACKGROUND_SWAP_S", 0.0)
    threads: list[str] = []
    gather = trainer_module.Trainer._gather

    def spy(self, snapshot):
        threads.append(threading.current_thread().name)
        return gather(self, snapshot)

    monkeypatch.setattr(trainer_module.Trainer, "_gather", spy)
    c = _stroke_while_training(session, qtbot, tiny2d, paintings_of)
    assert c.last_error is None
    assert len(threads) >= 2 and any(name.startswith("segstudio-swap") for name in threads[1:])
