"""The project folder: save, open, autosave and recovery, atomic writes, versions."""

from __future__ import annotations

import json
import os
import shutil
import tracemalloc
from dataclasses import replace

import numpy as np
import pytest

from segstudio.core import project as P
from segstudio.core.config import TrainConfig
from segstudio.core.errors import UserInputError
from segstudio.core.run import load_run, model_from_config, save_run


def _classes(n=2):
    return tuple(P.ProjectClass(f"c{i}", f"#00000{i}") for i in range(n))


@pytest.fixture
def proj(tmp_path):
    """A project folder with one .npy image outside it and paintings saved."""
    data = tmp_path / "data"
    data.mkdir()
    img = np.random.default_rng(0).random((20, 24)).astype(np.float32)
    np.save(data / "cells.npy", img)
    folder = tmp_path / "proj"
    project = P.add_image(folder, P.Project(classes=_classes()), data / "cells.npy")
    paint = np.zeros((20, 24), np.uint8)
    paint[1, :5] = 1
    paint[10, 10:12] = 2
    project = P.save_project(folder, project, {"cells": paint})
    return folder, project, paint, img


def test_save_and_open_roundtrip(proj):
    folder, project, paint, img = proj
    back = P.load_project(folder)
    assert back == project
    assert back.images[0].path == "../data/cells.npy"
    np.testing.assert_array_equal(P.read_paintings(folder, back, "cells"), paint)
    data, _ = P.read_image_of(folder, back, "cells")
    np.testing.assert_array_equal(np.asarray(data), img)
    doc = json.loads((folder / "project.json").read_text())
    assert doc["version"] == P.PROJECT_VERSION and doc["format"] == "segstudio-project"
    assert sorted(p.name for p in folder.iterdir()) == ["paintings", "project.json"]


def test_moving_project_and_images_together_keeps_paths(proj, tmp_path):
    folder, project, paint, _ = proj
    moved = tmp_path / "elsewhere"
    moved.mkdir()
    shutil.move(str(folder), moved / "proj")
    shutil.move(str(tmp_path / "data"), moved / "data")
    back = P.load_project(moved / "proj")
    assert P.image_path(moved / "proj", back.images[0]) == moved / "proj" / "../data/cells.npy"
    P.read_image_of(moved / "proj", back, "cells")


def test_copied_image_lives_in_the_project(tmp_path):
    src = tmp_path / "a.npy"
    np.save(src, np.zeros((8, 8), np.float32))
    project = P.add_image(tmp_path / "p", P.Project(classes=_classes()), src, copy=True)
    assert project.images[0].path == "images/a.npy" and project.images[0].copied
    src.unlink()
    P.read_image_of(tmp_path / "p", project, "a")


def test_unique_image_names(tmp_path):
    for d in ("x", "y"):
        (tmp_path / d).mkdir()
        np.save(tmp_path / d / "img.npy", np.zeros((4, 4)))
    p = P.add_image(tmp_path / "p", P.Project(), tmp_path / "x" / "img.npy")
    p = P.add_image(tmp_path / "p", p, tmp_path / "y" / "img.npy")
    assert [im.name for im in p.images] == ["img", "img-2"]


def test_autosave_is_offered_until_saved(proj):
    folder, project, paint, _ = proj
    assert P.recovery(folder) is None
    newer = paint.copy()
    newer[5, 5] = 2
    P.autosave(folder, {"cells": newer})
    rec = P.recovery(folder)
    assert rec is not None and rec.images == ("cells",) and "recover" in rec.message
    np.testing.assert_array_equal(P.recover_paintings(folder, project)["cells"], newer)
    # the last save is untouched by the autosave
    np.testing.assert_array_equal(P.read_paintings(folder, project, "cells"), paint)
    P.save_project(folder, project, {"cells": newer})
    assert P.recovery(folder) is None and not (folder / P.AUTOSAVE_DIR).exists()


def test_autosave_older_than_save_is_not_offered(proj):
    folder, project, paint, _ = proj
    P.autosave(folder, {"cells": paint})
    P.save_project(folder, project, {"cells": paint})
    P.autosave(folder, {"cells": paint})
    info = json.loads((folder / "autosave" / "autosave.json").read_text())
    info["saved_at"] = 1.0
    (folder / "autosave" / "autosave.json").write_text(json.dumps(info))
    assert P.recovery(folder) is None
    P.discard_autosave(folder)
    with pytest.raises(UserInputError, match="no autosaved paintings"):
        P.recover_paintings(folder, project)


def test_newer_project_version_is_refused(proj):
    folder, *_ = proj
    doc = json.loads((folder / "project.json").read_text())
    doc["version"] = P.PROJECT_VERSION + 1
    (folder / "project.json").write_text(json.dumps(doc))
    with pytest.raises(UserInputError, match="newer segstudio.*please upgrade"):
        P.load_project(folder)


def test_version_0_is_migrated(tmp_path):
    folder = tmp_path / "old"
    folder.mkdir()
    (folder / "project.json").write_text(json.dumps(
        {"mode": "exclusive", "classes": ["bg", "cell"], "colors": ["#111111"], "images": []}))
    p = P.load_project(folder)
    assert p.version == P.PROJECT_VERSION
    assert p.classes[0] == P.ProjectClass("bg", "#111111") and p.classes[1].name == "cell"


@pytest.mark.parametrize("content, match", [
    ("{not json", "project.json is damaged"),
    ("[1, 2]", "not a JSON object"),
    ('{"version": 1, "classes": [{"color": "#fff"}]}', "not valid"),
    ('{"version": 1, "mode": "fuzzy"}', "unknown mode"),
    ('{"version": "one"}', "not a number"),
    ('{"version": 2, "objects": [1]}', "objects is not an object"),
])
def test_broken_project_json(tmp_path, content, match):
    (tmp_path / "project.json").write_text(content)
    with pytest.raises(UserInputError, match=match):
        P.load_project(tmp_path)


def test_not_a_project(tmp_path):
    with pytest.raises(UserInputError, match="project.json is missing"):
        P.load_project(tmp_path)
    with pytest.raises(UserInputError, match="folder not found"):
        P.load_project(tmp_path / "nope")
    (tmp_path / "f.txt").write_text("x")
    with pytest.raises(UserInputError, match="not a folder"):
        P.load_project(tmp_path / "f.txt")


def test_paintings_that_do_not_fit_are_refused(proj):
    folder, project, paint, _ = proj
    bad = paint.copy()
    bad[0, 0] = 3
    with pytest.raises(UserInputError, match="beyond the 2 classes"):
        P.save_project(folder, project, {"cells": bad})
    with pytest.raises(UserInputError, match="not an image of the project"):
        P.save_project(folder, project, {"other": paint})
    np.testing.assert_array_equal(P.read_paintings(folder, project, "cells"), paint)


def test_damaged_paintings_file(proj):
    folder, project, *_ = proj
    f = P.paintings_file(folder, project, "cells")
    f.write_bytes(f.read_bytes()[:40])
    with pytest.raises(UserInputError, match=r"cells\..*npz.*damaged"):
        P.read_paintings(folder, project, "cells")


def test_failed_save_keeps_previous_files(proj, monkeypatch):
    folder, project, paint, _ = proj
    before = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    real = os.replace

    def full(src, dst):
        if str(dst).endswith("project.json"):
            raise OSError(28, "No space left on device")
        return real(src, dst)

    monkeypatch.setattr(os, "replace", full)
    changed = paint.copy()
    changed[3, 3] = 1
    with pytest.raises(UserInputError, match="cannot write .*project.json.*No space left"):
        P.save_project(folder, P.Project(classes=_classes(3), images=project.images), {"cells": changed})
    assert json.loads((folder / "project.json").read_bytes()) == json.loads(before[folder / "project.json"])
    assert not [p for p in folder.rglob("*.tmp")]


def test_runs_and_latest(proj):
    folder, project, *_ = proj
    assert P.latest_run(folder, project) is None
    cfg = TrainConfig(n_classes=2, features=(4, 8), patch_size=(16, 16))
    a = P.new_run_dir(folder)
    b = P.new_run_dir(folder)
    assert a != b and a.parent.name == "runs"
    save_run(a, cfg, model_from_config(cfg))
    assert P.latest_run(folder, project) == a  # b has no weights yet
    updated = P.set_last_run(folder, a)
    assert updated.last_run == f"runs/{a.name}" and P.load_project(folder).saved_at == project.saved_at
    load_run(P.latest_run(folder, updated))
    P.check_run_fits(project, cfg)
    with pytest.raises(UserInputError, match="trained for 3 exclusive classes; the project has 2"):
        P.check_run_fits(project, cfg.replace(n_classes=3), a)
    with pytest.raises(UserInputError, match="multilabel"):
        P.check_run_fits(project, cfg.replace(mode="multilabel"))


def test_multilabel_project(tmp_path):
    np.save(tmp_path / "v.npy", np.zeros((4, 8, 8), np.float32))
    p = P.add_image(tmp_path / "p", P.Project(mode="multilabel", classes=_classes(2)), tmp_path / "v.npy")
    paint = np.zeros((2, 4, 8, 8), np.uint8)
    paint[0, 1, 1] = 1
    paint[1, 2, 2] = 2
    p = P.save_project(tmp_path / "p", p, {"v": paint}, predictions={"v": (paint == 1).astype(np.uint8)})
    np.testing.assert_array_equal(P.read_paintings(tmp_path / "p", p, "v"), paint)
    assert P.read_predictions(tmp_path / "p", p, "v").shape == (2, 4, 8, 8)
    with pytest.raises(UserInputError, match="class channels first"):
        P.save_project(tmp_path / "p", p, {"v": paint[:1]})


def test_saving_big_paintings_streams(tmp_path):
    """Saving ~64 MB of paintings must not hold another full copy in memory."""
    np.save(tmp_path / "big.npy", np.zeros((4, 4), np.uint8))
    project = P.add_image(tmp_path / "p", P.Project(classes=_classes()), tmp_path / "big.npy")
    paint = np.zeros((16, 2048, 2048), np.uint8)
    paint[3, 100:200, 100:200] = 1
    paint[9, 500:600, 100:200] = 2
    tracemalloc.start()
    try:
        P.save_project(tmp_path / "p", project, {"big": paint})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < paint.nbytes / 2, peak
    saved = P.load_project(tmp_path / "p")
    assert P.paintings_file(tmp_path / "p", saved, "big").stat().st_size < 2_000_000


def test_untitled_folder_and_set_aside(tmp_path, monkeypatch):
    monkeypatch.setenv("SEGSTUDIO_HOME", str(tmp_path / "home"))
    a = P.untitled_folder("my image", "/data/a.tif")
    assert a.parent == tmp_path / "home" / "autosave" and a.name.startswith("my_image-")
    assert P.untitled_folder("my image", "/data/b.tif") != a  # same name, other file
    assert P.set_aside(a) is None  # nothing there yet
    np.save(tmp_path / "i.npy", np.zeros((4, 4)))
    project = P.add_image(a, P.Project(classes=_classes()), tmp_path / "i.npy")
    P.save_project(a, project, {"i": np.ones((4, 4), np.uint8)})
    kept = P.set_aside(a)
    assert kept is not None and not a.exists() and kept.name.startswith(a.name + "-")
    np.testing.assert_array_equal(P.read_paintings(kept, P.load_project(kept), "i"), 1)


# --------------------------------------------------------------------------- many images
def test_images_keep_their_shape_state_and_validation(tmp_path):
    for name, shape in (("a", (20, 24)), ("b", (30, 10))):
        np.save(tmp_path / f"{name}.npy", np.zeros(shape, np.float32))
    np.save(tmp_path / "rgb.npy", np.zeros((20, 24, 3), np.uint8))
    folder = tmp_path / "p"
    project = P.add_image(folder, P.Project(classes=_classes()), tmp_path / "a.npy")
    project = P.add_image(folder, project, tmp_path / "b.npy")
    assert [(im.shape, im.channels) for im in project.images] == [((20, 24), 1), ((30, 10), 1)]
    with pytest.raises(UserInputError, match=r"cannot add '.*rgb.npy': it is 3D, 1 channel; the project's "
                                             r"images are 2D, 1 channel"):
        P.add_image(folder, project, tmp_path / "rgb.npy")
    paint = np.zeros((30, 10), np.uint8)
    paint[0, :4] = 2
    project = P.save_project(folder, replace_image(project, "b", validation=True, regions=((0, 0, 5, 5),)),
                             {"b": paint})
    back = P.load_project(folder)
    assert back == project
    b = back.image("b")
    assert b.painted == (0, 4) and b.state == "painted" and back.image("a").state == "unpainted"
    assert P.holdout_of(b) is True
    mask = P.holdout_of(replace_image(back, "b", validation=False).image("b"))
    assert mask.shape == (30, 10) and mask.sum() == 25
    updated = P.update_images(folder, {"a": {"labels": "predictions/a_labels.npy", "predicted_by": "runs/x",
                                             "uncertainty": 0.25}})
    assert P.load_project(folder) == updated and updated.image("a").state == "predicted"
    assert updated.saved_at == back.saved_at, "recording a prediction is not a save of the paintings"
    with pytest.raises(UserInputError, match="no image called 'zz'"):
        P.update_images(folder, {"zz": {}})
    assert P.remove_image(updated, "a").images == (updated.image("b"),)


def replace_image(project, name, **changes):
    return replace(project, images=tuple(replace(im, **changes) if im.name == name else im for im in project.images))


def test_image_states():
    assert [P.image_state(0, False, False), P.image_state(5, False, False), P.image_state(5, True, False),
            P.image_state(5, True, True), P.image_state(0, False, True)] == [
        "unpainted", "painted", "predicted", "reviewed", "unpainted"]


def test_a_version_2_project_without_the_new_fields_still_opens(proj):
    folder, project, paint, _ = proj
    doc = json.loads((folder / "project.json").read_text())
    for key in ("shape", "channels", "painted", "labels", "predicted_by", "uncertainty", "reviewed", "validation",
                "regions"):
        doc["images"][0].pop(key)
    (folder / "project.json").write_text(json.dumps(doc))
    back = P.load_project(folder)
    assert back.image("cells").shape == () and back.image("cells").state == "unpainted"
    np.testing.assert_array_equal(P.read_paintings(folder, back, "cells"), paint)


def test_the_object_choices_are_saved_and_a_project_without_them_opens(proj):
    folder, project, paint, _ = proj
    choices = {"min_size": 12.5, "at_dim_lines": True, "object_classes": [2]}
    saved = P.save_project(folder, replace(project, objects=choices), {"cells": paint})
    assert P.load_project(folder).objects == choices == saved.objects
    doc = json.loads((folder / "project.json").read_text())
    assert doc["objects"] == choices
    doc.pop("objects")  # written before the app saved its object choices
    (folder / "project.json").write_text(json.dumps(doc))
    assert P.load_project(folder).objects == {}
