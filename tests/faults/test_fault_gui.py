"""Projects and faults in the app: save/open/autosave/recovery, and every fault leaves the GUI
usable with a clear message and nothing lost. Run under xvfb-run (marker ``gui``)."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

from segstudio._qt.widget import SegStudioWidget
from segstudio.core.project import (
    Project,
    ProjectClass,
    add_image,
    autosave,
    discard_autosave,
    load_project,
    paintings_file,
    read_paintings,
    recover_paintings,
    recovery,
    save_project,
    untitled_folder,
)
from segstudio.core.run import load_run, model_from_config, save_run
from segstudio.core.trainer import Trainer

pytestmark = pytest.mark.gui
WAIT_MS = 60_000


@pytest.fixture
def app(make_napari_viewer, tiny_training, tmp_path):
    """``make(npy_image=True)``: a viewer + widget on a tiny 2D image with strokes of 3 classes."""

    def make(with_file: bool = True, iterations: int = 4):
        img = np.random.default_rng(0).random((48, 48)).astype(np.float32)
        img[10:30, 10:30] += 2
        viewer = make_napari_viewer()
        if with_file:
            np.save(tmp_path / "cells.npy", img)
            viewer.open(str(tmp_path / "cells.npy"), plugin="segstudio")
        else:
            viewer.add_image(img, name="cells")
        widget = SegStudioWidget(viewer)
        viewer.window.add_dock_widget(widget, area="right")
        c = widget.controller
        c.add_class("edge")
        paint = np.zeros((48, 48), np.uint8)
        paint[40:44, :] = 1
        paint[15:20, 15:20] = 2
        paint[10, 10:30] = 3
        c.paint_layers[0].data = paint
        c.config_overrides = dict(tiny_training, patch_size=(32, 32))
        widget.iter_spin.setValue(iterations)
        return viewer, widget, c

    return make


def idle(qtbot, c):
    qtbot.waitUntil(lambda: c.state == "idle" and not c.busy, timeout=WAIT_MS)


def paint(layer, index, value):
    """Paint ``layer[index] = value`` as napari's tools do (recorded, with a paint event)."""
    where = np.zeros(layer.data.shape, bool)
    where[index] = True
    layer.data_setitem(np.nonzero(where), value)


def train(qtbot, c):
    c.start_training()
    assert c.state == "running", c.last_error
    idle(qtbot, c)
    assert c.last_error is None, c.last_error


# --------------------------------------------------------------------------- projects
@pytest.mark.parametrize("with_file", [True, False], ids=["image-by-path", "image-copied-in"])
def test_save_then_open_restores_everything_and_training_resumes(app, qtbot, tmp_path, with_file):
    viewer, widget, c = app(with_file)
    train(qtbot, c)
    c.predict_image()
    idle(qtbot, c)
    c.set_pinned_weight(2, 1.5)
    c.objects.set_choices(min_size=7.5, at_dim_lines=True, drop_border=True)
    chosen = c.objects.choices
    folder = tmp_path / "proj"
    c.save_project(folder)
    idle(qtbot, c)
    assert c.project_dir == folder and c.last_error is None
    project = load_project(folder)
    assert [k.name for k in project.classes] == ["background", "foreground", "edge"]
    assert project.classes[2].pinned == 1.5 and project.last_run.startswith("runs/")
    assert project.images[0].copied is (not with_file)
    painted = np.array(c.paint_layers[0].data)
    predicted = np.array(c.prediction_layers[0].data)

    viewer2, widget2, c2 = app(with_file)
    c2.config_overrides = {}
    assert c2.open_project(folder), c2.last_error
    assert [k.name for k in c2.classes] == ["background", "foreground", "edge"] and c2.classes[2].pinned == 1.5
    assert c2.objects.choices == chosen and widget2.objects_section.dim_lines_check.isChecked()
    assert widget2.objects_section.min_size_spin.value() == 7.5
    np.testing.assert_array_equal(c2.paint_layers[0].data, painted)
    np.testing.assert_array_equal(c2.prediction_layers[0].data, predicted)
    assert c2.config is not None and c2.iteration == 4 and len(c2.loss_values) == 4
    assert c2.config_overrides["features"] == (4, 8)  # the tiny model of the saved settings
    assert widget2.iter_spin.value() == 4
    train(qtbot, c2)  # resumes the saved run from its checkpoint
    assert c2.iteration == 8 and c2.run_dir == folder / project.last_run
    assert load_run(c2.run_dir).iteration == 8


def test_autosave_and_recovery_after_a_crash(app, qtbot, tmp_path):
    viewer, widget, c = app()
    folder = tmp_path / "proj"
    c.save_project(folder)
    idle(qtbot, c)
    saved = np.array(c.paint_layers[0].data)
    paint(c.paint_layers[0], np.s_[0:3, 0:3], 2)
    c.autosave()
    idle(qtbot, c)
    assert recovery(folder) is not None
    newest = np.array(c.paint_layers[0].data)
    # "crash": nothing else is saved; reopen declining, then (after another autosave) accepting
    asked = []
    _, _, c2 = app()
    c2.ask = lambda msg: asked.append(msg) or False
    assert c2.open_project(folder)
    assert asked and "recover" in asked[0]
    np.testing.assert_array_equal(c2.paint_layers[0].data, saved)
    assert recovery(folder) is None  # declined: the side file is gone
    autosave(folder, {"cells": newest})
    _, widget3, c3 = app()
    c3.ask = lambda msg: True
    assert c3.open_project(folder)
    np.testing.assert_array_equal(c3.paint_layers[0].data, newest)
    assert "autosaved paintings recovered" in widget3.status_label.text()
    c3.save_project()  # saving the recovered strokes makes them the project's paintings
    idle(qtbot, c3)
    np.testing.assert_array_equal(read_paintings(folder, load_project(folder), "cells"), newest)
    assert recovery(folder) is None


def test_autosave_timer_writes_in_a_worker_and_on_training_start(app, qtbot, tmp_path):
    viewer, widget, c = app()
    c.save_project(tmp_path / "proj")
    idle(qtbot, c)
    c.set_autosave_interval(0.05)
    paint(c.paint_layers[0], np.s_[0, 0], 1)
    qtbot.waitUntil(lambda: recovery(tmp_path / "proj") is not None, timeout=10_000)
    idle(qtbot, c)
    discard_autosave(tmp_path / "proj")
    c.set_autosave_interval(0)
    train(qtbot, c)
    assert recovery(tmp_path / "proj") is not None  # written when training started
    assert c.run_dir.parent == tmp_path / "proj" / "runs"


def test_failed_save_keeps_the_previous_project_and_says_so(app, qtbot, tmp_path, monkeypatch):
    viewer, widget, c = app()
    folder = tmp_path / "proj"
    c.save_project(folder)
    idle(qtbot, c)
    before = (folder / "project.json").read_bytes()
    files_before = sorted(p.name for p in (folder / "paintings").iterdir())
    paint_before = paintings_file(folder, load_project(folder), "cells").read_bytes()
    paint(c.paint_layers[0], np.s_[0, :], 3)
    real = os.replace

    def full(src, dst):
        if str(dst).startswith(str(folder)):
            raise OSError(28, "No space left on device")
        return real(src, dst)

    monkeypatch.setattr(os, "replace", full)
    c.save_project()
    idle(qtbot, c)
    assert "No space left" in c.last_error and "cells." in c.last_error
    assert "No space left" in widget.status_label.text()
    assert (folder / "project.json").read_bytes() == before
    assert paintings_file(folder, load_project(folder), "cells").read_bytes() == paint_before
    assert sorted(p.name for p in (folder / "paintings").iterdir()) == files_before
    monkeypatch.setattr(os, "replace", real)
    c.last_error = None
    c.save_project()  # usable again once the disk has room
    idle(qtbot, c)
    assert c.last_error is None
    assert read_paintings(folder, load_project(folder), "cells")[0].tolist() == [3] * 48


def test_read_only_project_folder(app, qtbot, tmp_path, monkeypatch):
    import tempfile

    viewer, widget, c = app()
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    if os.geteuid() == 0:  # root ignores folder permissions: refuse like a read-only folder would

        def denied(*a, **k):
            raise PermissionError(13, "Permission denied")

        monkeypatch.setattr(tempfile, "mkstemp", denied)
    try:
        c.save_project(folder)
        idle(qtbot, c)
        assert "Permission denied" in c.last_error and str(folder) in c.last_error
    finally:
        folder.chmod(0o755)
    assert c.project_dir is None and not (folder / "project.json").exists()


@pytest.mark.parametrize("damage, message, opens", [
    ("newer", "newer segstudio", False),
    ("missing-image", "is missing", False),
    ("not-a-project", "project.json is missing", False),
    ("tampered-model", "not a valid weights file", True),
    ("other-classes", "trained for 2 exclusive classes; the project has 3", True),
    ("damaged-paintings", "damaged", False),
])
def test_opening_a_damaged_project_is_a_clear_message(app, qtbot, tmp_path, damage, message, opens):
    viewer, widget, c = app()
    train(qtbot, c)
    folder = tmp_path / "proj"
    c.save_project(folder)
    idle(qtbot, c)
    project = load_project(folder)
    _, widget2, c2 = app()
    if damage == "newer":
        doc = json.loads((folder / "project.json").read_text())
        doc["version"] = 99
        (folder / "project.json").write_text(json.dumps(doc))
    elif damage == "missing-image":
        (tmp_path / "cells.npy").unlink()
    elif damage == "not-a-project":
        folder = tmp_path
    elif damage == "tampered-model":
        (folder / project.last_run / "model.pt").write_bytes(b"\x80\x04evil")
    elif damage == "other-classes":
        cfg = load_run(folder / project.last_run).config
        cfg = cfg.replace(n_classes=2, class_names=cfg.class_names[:2], class_colors=cfg.class_colors[:2])
        save_run(folder / project.last_run, cfg, model_from_config(cfg))  # a genuine 2-class model
    elif damage == "damaged-paintings":
        paintings_file(folder, project, "cells").write_bytes(b"PK\x03\x04broken")
    assert c2.open_project(folder) is opens
    assert message in c2.last_error and message in widget2.status_label.text()
    if opens:  # paintings are there, the model is not; training works again
        assert int(np.max(c2.paint_layers[0].data)) == 3 and c2.config is None
        c2.last_error = None
        train(qtbot, c2)


# --------------------------------------------------------------------------- faults while training
def test_worker_raising_mid_training_shows_message_and_gui_lives(app, qtbot, monkeypatch):
    viewer, widget, c = app(iterations=6)
    real = Trainer.step
    calls = {"n": 0}

    def boom(self):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("simulated failure")
        return real(self)

    monkeypatch.setattr(Trainer, "step", boom)
    c.start_training()
    idle(qtbot, c)
    assert "training failed" in c.last_error and "simulated failure" in c.last_error
    assert "simulated failure" in widget.status_label.text() and widget.train_btn.isEnabled()
    monkeypatch.setattr(Trainer, "step", real)
    c.last_error = None
    train(qtbot, c)


def test_cuda_oom_halves_the_batch_and_training_goes_on(app, qtbot, monkeypatch):
    viewer, widget, c = app(iterations=4)
    real = Trainer.step
    calls = {"n": 0}

    def oom(self):
        calls["n"] += 1
        if calls["n"] == 2:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(self)

    monkeypatch.setattr(Trainer, "step", oom)
    messages = []
    c.status.connect(messages.append)
    train(qtbot, c)
    assert any("out of memory" in m and "batch size 1" in m for m in messages)
    assert c.iteration == 4


@pytest.mark.parametrize("what", ["remove", "rename"])
def test_paint_layer_removed_or_renamed_while_training(app, qtbot, what):
    viewer, widget, c = app(iterations=0)
    widget.length_combo.setCurrentText("until stopped")
    c.start_training()
    qtbot.waitUntil(lambda: c.iteration >= 2, timeout=WAIT_MS)
    layer = c.paint_layers[0]
    if what == "remove":
        viewer.layers.remove(layer)
        assert "was removed" in c.last_error and c.state == "running"
    else:
        layer.name = "my strokes"
        paint(layer, np.s_[0, 0], 1)
    it = c.iteration
    qtbot.waitUntil(lambda: c.iteration >= it + 2, timeout=WAIT_MS)
    c.stop_training()
    idle(qtbot, c)
    assert (c.run_dir / "model.pt").exists()
    if what == "remove":
        c.last_error = None
        c.start_training()
        assert "no paint layer" in c.last_error  # a clear message, the app stays usable
    else:
        assert c.paint_layers == [layer] and c.last_error is None


def _training_in_a_project(app, qtbot, tmp_path):
    """A saved project training until stopped, a stroke painted since its last save; returns
    ``(viewer, widget, controller, errors shown from now on)``."""
    viewer, widget, c = app(iterations=0)
    c.save_project(tmp_path / "proj")
    idle(qtbot, c)
    widget.length_combo.setCurrentText("until stopped")
    c.start_training()
    qtbot.waitUntil(lambda: c.iteration >= 2, timeout=WAIT_MS)
    paint(c.paint_layers[0], np.s_[1, 1], 2)
    messages = []
    c.error.connect(messages.append)
    return viewer, widget, c, messages


def test_closing_during_training_keeps_checkpoint_and_autosaves(app, qtbot, tmp_path):
    viewer, widget, c, messages = _training_in_a_project(app, qtbot, tmp_path)
    viewer.close()  # clears the layers, then closes the window
    assert c.closed
    assert not any("was removed" in m for m in messages), messages  # closing is not an error
    qtbot.waitUntil(lambda: c.stopped, timeout=WAIT_MS)
    loaded = load_run(c.run_dir)
    assert loaded.iteration >= 2
    rec = recover_paintings(tmp_path / "proj", load_project(tmp_path / "proj"))
    assert rec["cells"][1, 1] == 2


def test_clearing_every_layer_while_training_stops_it_and_keeps_the_strokes(app, qtbot, tmp_path):
    """``viewer.layers.clear()`` removes the image with its paint and result layers in one
    batch: training stops once, no layer is re-created, the project keeps the last strokes."""
    viewer, widget, c, messages = _training_in_a_project(app, qtbot, tmp_path)
    assert c.objects.layer is not None  # objects follow training
    viewer.layers.clear()
    assert len(viewer.layers) == 0 and c.image_layer is None and not c.closed
    assert c.objects.layer is None  # forgotten with the rest, not left pointing at a removed layer
    assert not any("was removed" in m for m in messages), messages
    idle(qtbot, c)
    rec = recover_paintings(tmp_path / "proj", load_project(tmp_path / "proj"))
    assert rec["cells"][1, 1] == 2
    viewer.add_image(np.zeros((16, 16), np.float32), name="next")
    assert c.image_layer is viewer.layers["next"] and widget.image_combo.currentText() == "next"


def test_closing_during_prediction(app, qtbot):
    viewer, widget, c = app()
    train(qtbot, c)
    c.predict_image()
    assert c.predicting
    viewer.close()
    assert c.closed


def test_multilabel_project_roundtrip(app, qtbot, tmp_path):
    viewer, widget, c = app()
    widget.mode_multilabel.setChecked(True)
    assert c.mode == "multilabel" and len(c.paint_layers) == 3
    paint(c.paint_layers[2], np.s_[5:8, 5:8], 2)
    strokes = np.stack([np.array(lyr.data) for lyr in c.paint_layers])
    c.save_project(tmp_path / "ml")
    idle(qtbot, c)
    assert c.last_error is None, c.last_error
    _, widget2, c2 = app()
    assert c2.open_project(tmp_path / "ml"), c2.last_error
    assert c2.mode == "multilabel" and widget2.mode_multilabel.isChecked()
    np.testing.assert_array_equal(np.stack([np.array(lyr.data) for lyr in c2.paint_layers]), strokes)
    assert [lyr.name for lyr in c2.paint_layers] == ["paint: background", "paint: foreground", "paint: edge"]


def test_segstudio_open_starts_the_app_on_a_project(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    np.save(tmp_path / "img.npy", np.random.default_rng(0).random((32, 32)).astype(np.float32))
    project = add_image(tmp_path / "p", Project(classes=(ProjectClass("a", "#ff0000"),
                                                            ProjectClass("b", "#00ff00"))), tmp_path / "img.npy")
    paint = np.zeros((32, 32), np.uint8)
    paint[0, :4] = 1
    save_project(tmp_path / "p", project, {"img": paint})
    exe = str(Path(sys.executable).with_name("segstudio"))
    env = {**os.environ, "SEGSTUDIO_QUIT_AFTER_MS": "500"}
    proc = subprocess.run([exe, "open", str(tmp_path / "p")], capture_output=True, text=True, timeout=180, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr and "segstudio:" not in proc.stderr + proc.stdout  # no error shown


@pytest.mark.parametrize("with_file", [True, False], ids=["image-by-path", "in-memory-image"])
def test_unsaved_session_is_autosaved_and_recoverable(app, qtbot, tmp_path, with_file):
    """Never saved as a project: the strokes still reach an untitled project folder, which a
    new session keeps aside, announces, and opens like any project."""
    viewer, widget, c = app(with_file)
    paint(c.paint_layers[0], np.s_[30:33, 30:33], 3)
    strokes = np.array(c.paint_layers[0].data)
    c.autosave()
    idle(qtbot, c)
    untitled = c.autosave_folder
    assert untitled.parent == untitled_folder("x").parent and (untitled / "project.json").is_file()
    assert str(untitled).startswith(os.environ["SEGSTUDIO_HOME"])
    # "crash": a new session on the same image keeps the old autosave aside, quietly, and
    # offers it in the Recover… list
    viewer2, widget2, c2 = app(with_file)
    kept = c2.kept_autosaves()
    assert len(kept) == 1 and kept[0].folder.name.startswith(untitled.name + "-")
    assert "autosave" not in widget2.status_label.text()
    assert widget2.recover_btn.isEnabled()
    assert c2.open_project(kept[0].folder), c2.last_error
    np.testing.assert_array_equal(c2.paint_layers[0].data, strokes)
    # saving for real removes the untitled folder of that session
    viewer3, widget3, c3 = app(with_file)
    c3.autosave(force=True)
    idle(qtbot, c3)
    assert c3.autosave_folder.exists()
    untitled3 = c3.autosave_folder
    c3.save_project(tmp_path / "real")
    idle(qtbot, c3)
    assert not untitled3.exists() and c3.project_dir == tmp_path / "real"


# --------------------------------------------------------------------------- no lost work
def test_a_failed_project_json_write_does_not_lock_the_user_out(app, qtbot, tmp_path, disk_full_at):
    """A class added and painted, then the save of project.json fails (disk full): the project
    still opens (it used to say 'label value 4 is beyond the 3 classes', and the app could not
    open it any more)."""
    viewer, widget, c = app()
    folder = tmp_path / "proj"
    c.save_project(folder)
    idle(qtbot, c)
    saved = np.array(c.paint_layers[0].data)
    c.add_class("extra")
    paint(c.paint_layers[0], np.s_[45:47, 0:10], 4)
    restore = disk_full_at("project.json")
    c.save_project()
    idle(qtbot, c)
    assert "No space left" in c.last_error
    restore()
    discard_autosave(folder)  # only what the failed save left behind
    _, _, c2 = app()
    assert c2.open_project(folder), c2.last_error
    assert len(c2.classes) == 3
    np.testing.assert_array_equal(c2.paint_layers[0].data, saved)


@pytest.mark.parametrize("add", [True, False], ids=["classes-added", "strokes-left-out"])
def test_paintings_with_more_classes_than_the_project_still_open(app, qtbot, tmp_path, add):
    viewer, widget, c = app()
    folder = tmp_path / "proj"
    c.save_project(folder)
    idle(qtbot, c)
    newer = np.array(c.paint_layers[0].data)
    newer[45:47, 0:10] = 4  # e.g. autosaved after a class was added, never saved
    autosave(folder, {"cells": newer})
    questions = []
    _, widget2, c2 = app()
    c2.ask = lambda message: questions.append(message) or ("recover" in message or add)
    assert c2.open_project(folder), c2.last_error
    assert "recover" in questions[0] and "add the missing classes" in questions[1]
    if add:
        assert [k.name for k in c2.classes] == ["background", "foreground", "edge", "class 4"]
        np.testing.assert_array_equal(c2.paint_layers[0].data, newer)
    else:
        assert len(c2.classes) == 3 and int(c2.paint_layers[0].data.max()) == 3
        assert "left out" in c2.last_error


def test_recovery_is_offered_before_damaged_paintings_can_fail(app, qtbot, tmp_path):
    viewer, widget, c = app()
    folder = tmp_path / "proj"
    c.save_project(folder)
    idle(qtbot, c)
    strokes = np.array(c.paint_layers[0].data)
    paintings_file(folder, load_project(folder), "cells").write_bytes(b"PK\x03\x04broken")
    autosave(folder, {"cells": strokes})
    _, _, c2 = app()
    c2.ask = lambda message: True
    assert c2.open_project(folder), c2.last_error
    np.testing.assert_array_equal(c2.paint_layers[0].data, strokes)


def test_saves_and_autosaves_never_overlap(app, qtbot, tmp_path, monkeypatch):
    """An autosave is being written when Save is pressed: the save (which removes the autosave
    folder) waits for it instead of removing it mid-write."""
    import time

    from segstudio._qt import projects as projects_module

    timeline = []
    real_autosave, real_save = projects_module.autosave, projects_module.save_project

    def slow_autosave(*args, **kwargs):
        timeline.append("autosave starts")
        time.sleep(0.5)
        out = real_autosave(*args, **kwargs)
        timeline.append("autosave ends")
        return out

    def save(*args, **kwargs):
        timeline.append("save starts")
        return real_save(*args, **kwargs)

    viewer, widget, c = app()
    folder = tmp_path / "proj"
    c.save_project(folder)
    idle(qtbot, c)
    monkeypatch.setattr(projects_module, "autosave", slow_autosave)
    monkeypatch.setattr(projects_module, "save_project", save)
    timeline.clear()
    paint(c.paint_layers[0], np.s_[0, 0:5], 2)
    c.autosave()
    qtbot.waitUntil(lambda: "autosave starts" in timeline, timeout=WAIT_MS)
    c.save_project()
    idle(qtbot, c)
    assert c.last_error is None, c.last_error
    assert timeline == ["autosave starts", "autosave ends", "save starts"]
    assert recovery(folder) is None


def test_painting_during_a_save_is_not_in_that_save(app, qtbot, tmp_path, monkeypatch):
    """The save writes the paintings as they were when Save was pressed (a copy taken then),
    not a live array that keeps changing while the file is written."""
    import time

    from segstudio._qt import projects as projects_module

    real_save = projects_module.save_project

    def slow_save(*args, **kwargs):
        time.sleep(0.5)
        return real_save(*args, **kwargs)

    monkeypatch.setattr(projects_module, "save_project", slow_save)
    viewer, widget, c = app()
    folder = tmp_path / "proj"
    pressed = np.array(c.paint_layers[0].data)
    c.save_project(folder)
    paint(c.paint_layers[0], np.s_[0:3, 0:3], 2)  # while the save runs
    idle(qtbot, c)
    assert c.last_error is None, c.last_error
    np.testing.assert_array_equal(read_paintings(folder, load_project(folder), "cells"), pressed)


def test_training_outside_a_project_leaves_nothing_in_the_temp_folder(app, qtbot, tmp_path, monkeypatch):
    """A run of a session never saved as a project lives in its untitled project (it used to be
    a segstudio-run-* folder in the temp folder, never removed); saving the session as a project
    copies it in."""
    import tempfile

    temp = tmp_path / "temp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    viewer, widget, c = app()
    train(qtbot, c)
    assert not [p for p in temp.iterdir() if p.name.startswith("segstudio-run")]
    untitled = c.autosave_folder
    assert c.run_dir.parent == untitled / "runs" and (c.run_dir / "model.pt").exists()
    c.save_project(tmp_path / "proj")
    idle(qtbot, c)
    project = load_project(tmp_path / "proj")
    assert (tmp_path / "proj" / project.last_run / "model.pt").exists()
    assert not untitled.exists()


def test_closing_returns_at_once_while_the_trainer_stops_in_the_background(app, qtbot, monkeypatch):
    """Closing asks the trainer to stop and returns; the last checkpoint is written in the
    background (closing used to wait for it on the GUI thread, up to 30 s)."""
    import time

    real = Trainer.checkpoint
    delay_s = 5.0

    def slow_checkpoint(self):
        time.sleep(delay_s)
        return real(self)

    viewer, widget, c = app(iterations=0)
    widget.length_combo.setCurrentText("until stopped")
    c.start_training()
    qtbot.waitUntil(lambda: c.iteration >= 2, timeout=WAIT_MS)
    monkeypatch.setattr(Trainer, "checkpoint", slow_checkpoint)
    t0 = time.perf_counter()
    c.shutdown()
    assert time.perf_counter() - t0 < delay_s / 2  # it did not wait for the checkpoint
    assert c.closed and not c.stopped
    qtbot.waitUntil(lambda: c.stopped, timeout=WAIT_MS)
    assert load_run(c.run_dir).iteration >= 2


def test_the_class_table_shows_the_trainers_weights(app, qtbot, monkeypatch):
    """The weights shown are the ones training uses: clamped to the config's range (the GUI
    used to compute its own, unclamped), and a pin set while training reaches the trainer with
    the paintings and comes back in its report."""
    viewer, widget, c = app(iterations=0)
    c.config_overrides = {**c.config_overrides, "weight_clamp": (0.5, 2.0)}
    c.set_weight_method("median_frequency")  # re-weighs with the new clamp
    qtbot.waitUntil(lambda: c.weights is not None and not c.busy, timeout=WAIT_MS)
    assert all(0.5 <= w <= 2.0 for w in c.weights.weights), c.weights
    widget.length_combo.setCurrentText("until stopped")
    c.start_training()
    qtbot.waitUntil(lambda: c.iteration >= 2, timeout=WAIT_MS)
    c.set_pinned_weight(2, 1.75)
    qtbot.waitUntil(lambda: c.weights.weights[2] == pytest.approx(1.75), timeout=WAIT_MS)
    it = c.iteration
    qtbot.waitUntil(lambda: c.iteration >= it + 2, timeout=WAIT_MS)
    c.stop_training()
    idle(qtbot, c)
    assert load_run(c.run_dir).config.pinned_weights == ((2, 1.75),)
