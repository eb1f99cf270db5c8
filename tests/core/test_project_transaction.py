"""A project save is one transaction: a failure at any step leaves the project as it was, and
opening tolerates paintings that disagree with project.json."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time

import numpy as np
import pytest

from segstudio.core.errors import UserInputError
from segstudio.core.project import (
    KEEP_AUTOSAVES,
    Project,
    ProjectClass,
    add_image,
    autosave,
    kept_autosaves,
    load_project,
    open_paintings,
    paintings_file,
    read_paintings,
    read_predictions,
    save_project,
    set_aside,
    untitled_folder,
    with_classes,
)

TWO = (ProjectClass("bg", "#111111"), ProjectClass("cell", "#222222"))
THREE = (*TWO, ProjectClass("edge", "#333333"))


@pytest.fixture
def saved(tmp_path):
    """A saved 2-class project with paintings and a prediction, and the 3-class edit of it."""
    np.save(tmp_path / "cells.npy", np.zeros((16, 16), np.float32))
    folder = tmp_path / "proj"
    project = add_image(folder, Project(classes=TWO), tmp_path / "cells.npy")
    paint = np.zeros((16, 16), np.uint8)
    paint[0, :4], paint[5, :4] = 1, 2
    pred = np.ones((16, 16), np.uint8)
    project = save_project(folder, project, {"cells": paint}, {"cells": pred})
    edited = paint.copy()
    edited[9, :4] = 3  # a class was added and painted
    return folder, project, paint, pred, edited


def _state(folder):
    project = load_project(folder)
    return (project.classes, read_paintings(folder, project, "cells"),
            read_predictions(folder, project, "cells"))


def _files(folder):
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def _save_edit(folder, project, edited):
    return save_project(folder, Project(classes=THREE, images=project.images),
                                 {"cells": edited}, {"cells": (edited > 0).astype(np.uint8)})


def _count_calls(monkeypatch, module, name, run):
    calls = []
    real = getattr(module, name)

    def spy(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, spy)
    run()
    monkeypatch.setattr(module, name, real)
    return len(calls)


# (module, function, error): every call of these a save makes is a step that may fail.
STEPS = [
    (tempfile, "mkstemp", OSError(28, "No space left on device")),
    (os, "fsync", OSError(5, "Input/output error")),
    (os, "replace", OSError(28, "No space left on device")),
]


@pytest.mark.parametrize("module, name, error", STEPS, ids=[s[1] for s in STEPS])
def test_a_failure_at_every_step_of_a_save_leaves_the_previous_project(saved, tmp_path, monkeypatch,
                                                                      module, name, error):
    folder, project, paint, pred, edited = saved
    # How many such calls a save makes, measured on a copy of the project.
    dry = tmp_path / "dry"
    shutil.copytree(folder, dry)
    n = _count_calls(monkeypatch, module, name, lambda: _save_edit(dry, load_project(dry), edited))
    assert n >= 2
    before_files = _files(folder)
    real = getattr(module, name)
    for k in range(n):
        calls = []

        def failing(*args, **kwargs):
            calls.append(1)
            if len(calls) == k + 1:
                raise error
            return real(*args, **kwargs)

        monkeypatch.setattr(module, name, failing)
        try:
            _save_edit(folder, project, edited)
        except UserInputError:
            failed = True
        else:
            failed = False
        finally:
            monkeypatch.setattr(module, name, real)
        classes, got_paint, got_pred = _state(folder)
        if classes == TWO:  # the previous project, as it was
            assert failed, f"step {k + 1}: a save that did not happen was not reported"
            np.testing.assert_array_equal(got_paint, paint)
            np.testing.assert_array_equal(got_pred, pred)
            assert _files(folder) == before_files, f"step {k + 1} left files behind"
        else:  # the new project, complete (when only an fsync after its rename failed: reported)
            assert classes == THREE
            np.testing.assert_array_equal(got_paint, edited)
            np.testing.assert_array_equal(got_pred, edited > 0)
            # back to the previous project for the next step
            project = save_project(folder, Project(classes=TWO, images=load_project(folder).images),
                                   {"cells": paint}, {"cells": pred})
            before_files = _files(folder)
    # After all that, a save works and leaves exactly one paintings and one prediction file.
    _save_edit(folder, load_project(folder), edited)
    classes, got_paint, _ = _state(folder)
    assert classes == THREE
    np.testing.assert_array_equal(got_paint, edited)
    assert [f.split("/")[0] for f in _files(folder) if f.endswith(".npz")] == ["paintings", "predictions"]


def test_failing_to_remove_old_files_keeps_the_new_save_and_the_next_save_cleans_up(saved, monkeypatch):
    folder, project, paint, pred, edited = saved
    old = paintings_file(folder, project, "cells")
    real = os.unlink

    def stuck(path, *a, **k):
        if str(path).endswith(".npz"):
            raise PermissionError(13, "Permission denied")
        return real(path, *a, **k)

    monkeypatch.setattr(os, "unlink", stuck)
    new = _save_edit(folder, project, edited)
    monkeypatch.setattr(os, "unlink", real)
    np.testing.assert_array_equal(read_paintings(folder, new, "cells"), edited)
    assert old.exists()  # could not be removed: harmless, project.json no longer names it
    time.sleep(1.05)  # a save in another second (file names carry the time)
    save_project(folder, new, {"cells": edited})
    assert not old.exists()


def test_the_reproduced_lock_out_cannot_happen(saved, disk_full_at):
    """project.json fails to be written after paintings with value 3 were: the project still
    opens with its 2 classes and its previous paintings (it used to say 'label value 3 is beyond
    the 2 classes')."""
    folder, project, paint, pred, edited = saved
    restore = disk_full_at("project.json")
    with pytest.raises(UserInputError, match="project.json.*No space left"):
        _save_edit(folder, project, edited)
    restore()
    reopened = load_project(folder)
    np.testing.assert_array_equal(read_paintings(folder, reopened, "cells"), paint)
    assert open_paintings(folder, reopened, "cells")[1] is None


def test_opening_tolerates_paintings_with_more_classes(saved):
    folder, project, paint, pred, edited = saved
    # e.g. written by segstudio before saves were transactions: paintings/NAME.npz with value 3
    doc = json.loads((folder / "project.json").read_text())
    doc["version"] = 1
    for im in doc["images"]:
        del im["paintings"], im["prediction"]
    (folder / "project.json").write_text(json.dumps(doc))
    np.savez_compressed(folder / "paintings" / "cells.npz", paintings=edited)
    legacy = load_project(folder)
    with pytest.raises(UserInputError, match="beyond the 2 classes"):
        read_paintings(folder, legacy, "cells")  # the strict reader (CLI) refuses
    got, mismatch = open_paintings(folder, legacy, "cells")
    np.testing.assert_array_equal(got, edited)
    assert (mismatch.needed, mismatch.declared) == (3, 2) and "add the missing classes" in mismatch.message
    fixed = with_classes(legacy, mismatch.needed)
    assert [c.name for c in fixed.classes] == ["bg", "cell", "class 3"]
    saved_again = save_project(folder, fixed, {"cells": got})
    assert not (folder / "paintings" / "cells.npz").exists()  # the legacy file was named: removed
    np.testing.assert_array_equal(read_paintings(folder, saved_again, "cells"), edited)


def test_opening_autosaved_multilabel_paintings_with_fewer_channels(tmp_path):
    np.save(tmp_path / "v.npy", np.zeros((8, 8), np.float32))
    folder = tmp_path / "ml"
    project = add_image(folder, Project(mode="multilabel", classes=THREE), tmp_path / "v.npy")
    project = save_project(folder, project, {})
    two = np.zeros((2, 8, 8), np.uint8)
    two[1, 2, 2] = 1
    autosave(folder, {"v": two})
    got, mismatch = open_paintings(folder, project, "v", autosaved=True)
    assert mismatch is None and got.shape == (3, 8, 8) and got[1, 2, 2] == 1 and not got[2].any()


def test_kept_aside_autosaves_are_capped(tmp_path, monkeypatch):
    monkeypatch.setenv("SEGSTUDIO_HOME", str(tmp_path / "home"))
    untitled = untitled_folder("cells", "/data/cells.tif")
    now = time.time()
    ages_days = [0, 1, 2, 3, 4, 5, 6, 40]
    for i, age in enumerate(ages_days):
        kept = untitled.with_name(f"{untitled.name}-20240101-00000{i}")
        kept.mkdir(parents=True)
        (kept / "project.json").write_text(json.dumps({"saved_at": now - age * 86400}))
    other = untitled.with_name("other-12345678-20240101-000000")  # another image: never touched
    other.mkdir()
    (other / "project.json").write_text(json.dumps({"saved_at": now - 99 * 86400}))
    listed = kept_autosaves(untitled)
    assert [round((now - k.saved_at) / 86400) for k in listed] == ages_days
    untitled.mkdir()
    (untitled / "project.json").write_text(json.dumps({"saved_at": now}))
    assert set_aside(untitled) is not None  # sets the newest aside, then caps
    left = kept_autosaves(untitled)
    assert len(left) == KEEP_AUTOSAVES
    assert [round((now - k.saved_at) / 86400) for k in left] == [0, 0, 1, 2, 3]
    assert other.exists()
