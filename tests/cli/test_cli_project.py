"""``segstudio train --project`` and ``segstudio open``: headless project training, kill -9."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from segstudio.cli import main
from segstudio.core import project as P
from segstudio.core.run import load_run
from segstudio.core.weights import compute_weights

TINY = ["--patch", "32", "32", "--batch", "2", "--seed", "0", "--device", "cpu"]


def make_project(tmp_path: Path, mode: str = "exclusive") -> Path:
    img = np.zeros((48, 48), np.float32)
    img[16:32, 16:32] = 1.0
    np.save(tmp_path / "img.npy", img)
    folder = tmp_path / "proj"
    classes = (P.ProjectClass("bg", "#111111"), P.ProjectClass("cell", "#222222", pinned=2.0))
    project = P.add_image(folder, P.Project(mode=mode, classes=classes), tmp_path / "img.npy")
    if mode == "exclusive":
        paint = np.zeros((48, 48), np.uint8)
        paint[2:4, :] = 1
        paint[20:24, 20:24] = 2
    else:
        paint = np.zeros((2, 48, 48), np.uint8)
        paint[0, 2:4, :] = 1
        paint[0, 20:24, 20:24] = 2
        paint[1, 20:24, 20:24] = 1
        paint[1, 2:4, :] = 2
    P.save_project(folder, project, {"img": paint})
    return folder


@pytest.mark.parametrize("mode", ["exclusive", "multilabel"])
def test_train_on_a_project_writes_a_run_and_records_it(tmp_path, mode, capsys):
    folder = make_project(tmp_path, mode)
    assert main(["train", "--project", str(folder), "--iterations", "2", *TINY]) == 0
    project = P.load_project(folder)
    run = P.latest_run(folder, project)
    assert run is not None and run.parent == folder / "runs"
    assert project.last_run == f"runs/{run.name}"
    cfg = load_run(run).config
    assert cfg.mode == mode and cfg.class_names == ("bg", "cell") and cfg.pinned_weights == ((1, 2.0),)
    # --resume last continues that run's weights in a new run folder
    assert main(["train", "--project", str(folder), "--iterations", "2", "--resume", "last", *TINY]) == 0
    assert load_run(P.latest_run(folder, P.load_project(folder))).iteration == 4


@pytest.mark.parametrize("argv, message", [
    (["train", "--project", "{d}/nope"], "folder not found"),
    (["train", "--project", "{d}"], "project.json is missing"),
    (["train", "--project", "{p}", "--image", "{d}/img.npy", "--labels", "{d}/img.npy"], "not both"),
    (["train", "--project", "{p}", "--resume", "last"], "no run with weights"),
    (["train", "--image", "{d}/img.npy"], "give one --labels per --image"),
    (["train"], "--project PROJECT"),
    (["open", "{d}/nope"], "folder not found"),
])
def test_project_user_errors(tmp_path, capsys, argv, message):
    folder = make_project(tmp_path)
    filled = [a.format(d=tmp_path, p=folder) for a in argv]
    assert main(filled) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "Traceback" not in err
    assert err.splitlines()[-1].startswith("segstudio: error:")


def test_kill_9_during_training_keeps_paintings_and_a_loadable_checkpoint(tmp_path):
    """Start headless project training with frequent checkpoints, SIGKILL it, reopen."""
    folder = make_project(tmp_path)
    saved = P.read_paintings(folder, P.load_project(folder), "img")
    cmd = [sys.executable, "-m", "segstudio", "train", "--project", str(folder), "--minutes", "5",
           "--checkpoint-every", "0.05", *TINY]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            project = P.load_project(folder)
            if project.last_run and (folder / project.last_run / "model.pt").exists():
                break
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            time.sleep(0.05)
        else:
            pytest.fail("no checkpoint within 120 s")
        time.sleep(0.3)  # a few more checkpoints, so the kill likely lands mid-write
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    project = P.load_project(folder)
    np.testing.assert_array_equal(P.read_paintings(folder, project, "img"), saved)
    run = P.latest_run(folder, project)
    loaded = load_run(run)
    assert loaded.iteration >= 1 and loaded.config.class_names == ("bg", "cell")


def test_project_training_keeps_the_apps_fill_outlines_and_wide_context_choices(tmp_path):
    folder = make_project(tmp_path)
    project = P.load_project(folder)
    paint = P.read_paintings(folder, project, "img")
    P.save_project(folder, replace(project, training={"infer_outlines": False, "wide_context": True}), {"img": paint})
    assert main(["train", "--project", str(folder), "--iterations", "1", *TINY]) == 0
    config = load_run(P.latest_run(folder, P.load_project(folder))).config
    assert config.infer_outlines is False
    assert config.input_filters[-1] == 4.0, "the app's wide-context choice too"
    assert config.filter_context == ()  # textures on auto: these strokes do not call for them
    P.save_project(folder, replace(project, training={"textures": "on"}), {"img": paint})
    assert main(["train", "--project", str(folder), "--iterations", "1", *TINY]) == 0
    assert load_run(P.latest_run(folder, P.load_project(folder))).config.filter_context == (8.0,)


def test_project_training_takes_the_apps_downsample_and_a_resume_keeps_its_runs(tmp_path):
    """The app's *Downsample* reaches ``train --project``; ``--resume last`` goes on with the
    run's own network (also when the app's choice has changed since), ``--downsample`` wins."""
    folder = make_project(tmp_path)
    project = P.load_project(folder)
    paint = P.read_paintings(folder, project, "img")
    P.save_project(folder, replace(project, training={"downsample": 2}), {"img": paint})
    assert main(["train", "--project", str(folder), "--iterations", "1", *TINY]) == 0
    assert load_run(P.latest_run(folder, P.load_project(folder))).config.downsample == 2
    P.save_project(folder, replace(P.load_project(folder), training={"downsample": 1}), {"img": paint})
    assert main(["train", "--project", str(folder), "--iterations", "1", "--resume", "last", *TINY]) == 0
    assert load_run(P.latest_run(folder, P.load_project(folder))).config.downsample == 2
    assert main(["train", "--project", str(folder), "--iterations", "1", "--downsample", "3", *TINY]) == 0
    assert load_run(P.latest_run(folder, P.load_project(folder))).config.downsample == 3


# --------------------------------------------------------------------------- projects of many images
def _images(tmp_path, n=3, shape=(48, 48)):
    paths = []
    for i in range(n):
        img = np.random.default_rng(i).normal(0, 0.05, shape).astype(np.float32)
        img[16:32, 16:32] += 1.0
        np.save(tmp_path / f"im{i}.npy", img)
        paths.append(str(tmp_path / f"im{i}.npy"))
    lab = np.zeros(shape, np.uint8)
    lab[2:4, :] = 1
    lab[20:24, 20:24] = 2
    np.save(tmp_path / "lab.npy", lab)
    return paths, str(tmp_path / "lab.npy"), lab


def test_project_create_add_info_train_predict(tmp_path, capsys):
    paths, lab_path, lab = _images(tmp_path)
    more = lab.copy()
    more[40:46, :] = 1  # more background on the second image: other weights if it were counted
    np.save(tmp_path / "more.npy", more)
    folder = tmp_path / "proj"
    assert main(["project", "create", str(folder), *paths[:2], "--labels", lab_path, str(tmp_path / "more.npy")]) == 0
    assert main(["project", "add", str(folder), paths[2]]) == 0
    capsys.readouterr()
    assert main(["project", "info", str(folder), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["classes"] == ["background", "foreground"] and info["mode"] == "exclusive"
    assert [(im["name"], im["state"], im["shape"]) for im in info["images"]] == [
        ("im0", "painted", [48, 48]), ("im1", "painted", [48, 48]), ("im2", "unpainted", [48, 48])]
    assert info["images"][0]["painted"] == {"background": 96, "foreground": 16} and info["runs"] == []
    # the second painted image is for validation: trained on the first only
    P.update_images(folder, {"im1": {"validation": True}})
    assert main(["train", "--project", str(folder), "--iterations", "4", *TINY]) == 0
    line = next(ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("class weights"))
    only_first = compute_weights(lab, "exclusive", "balanced", n_classes=2)
    assert only_first.weights != compute_weights([lab, more], "exclusive", "balanced", n_classes=2).weights
    assert line.endswith(", ".join(f"{w:.3g}" for w in only_first.weights))
    assert main(["predict", "--project", str(folder)]) == 0
    err = capsys.readouterr().err
    assert "[3/3] im2" in err and "uncertainty" in err
    project = P.load_project(folder)
    run = P.latest_run(folder, project)
    for im in project.images:
        assert im.labels == f"predictions/{im.name}_labels.npy" and im.predicted_by == f"runs/{run.name}"
        assert 0.0 <= im.uncertainty <= 1.0 and im.state == "predicted"
        assert np.load(folder / im.labels).shape == (48, 48)
    assert main(["project", "info", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "im2" in out and "predicted" in out and "1 run" in out and "(last)" in out


def test_train_on_every_painted_image_counts_them_all(tmp_path, capsys):
    paths, lab_path, lab = _images(tmp_path, n=2)
    lab2 = lab.copy()
    lab2[40:44, :] = 1
    np.save(tmp_path / "lab2.npy", lab2)
    folder = tmp_path / "proj"
    assert main(["project", "create", str(folder), *paths, "--labels", lab_path, str(tmp_path / "lab2.npy")]) == 0
    capsys.readouterr()
    assert main(["train", "--project", str(folder), "--iterations", "1", "--weights", "none", *TINY]) == 0
    cfg = load_run(P.latest_run(folder, P.load_project(folder))).config
    assert cfg.n_classes == 2
    expected = compute_weights([lab, lab2], "exclusive", "balanced", n_classes=2)
    assert main(["train", "--project", str(folder), "--iterations", "1", *TINY]) == 0
    line = next(ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("class weights"))
    assert line.endswith(", ".join(f"{w:.3g}" for w in expected.weights))


def test_project_create_with_instance_masks_and_multilabel(tmp_path):
    paths, _, _ = _images(tmp_path, n=1)
    inst = np.zeros((48, 48), np.int32)
    inst[10:20, 10:20] = 5
    inst[10:20, 20:30] = 8
    np.save(tmp_path / "inst.npy", inst)
    folder = tmp_path / "p1"
    assert main(["project", "create", str(folder), paths[0], "--labels", str(tmp_path / "inst.npy"),
                 "--instances", "boundary"]) == 0
    project = P.load_project(folder)
    assert [c.name for c in project.classes] == ["background", "foreground", "boundary"]
    paint = P.read_paintings(folder, project, "im0")
    assert (paint > 0).all() and paint[15, 19] == 3 and paint[15, 15] == 2
    folder = tmp_path / "p2"
    assert main(["project", "create", str(folder), paths[0], "--labels", str(tmp_path / "inst.npy"),
                 "--instances", "foreground", "--mode", "multilabel", "--classes", "bg", "cell"]) == 0
    project = P.load_project(folder)
    assert P.read_paintings(folder, project, "im0").shape == (2, 48, 48)


@pytest.mark.parametrize("argv, message", [
    (["project", "create", "{p}", "{i0}"], "is a project already"),
    (["project", "create", "{d}/new", "{i0}", "--labels", "{lab}", "{lab}"], "2 label files for 1 images"),
    (["project", "create", "{d}/new", "{i0}", "{d}/vol.npy"], "it is 3D, 1 channel; the project's images are 2D"),
    (["project", "create", "{d}/new", "{i0}", "--labels", "{lab}", "--classes", "only"],
     "label value 2 maps to no class"),
    (["project", "create", "{d}/new", "{d}/missing.npy"], "missing.npy"),
    (["project", "add", "{p}", "{d}/vol.npy"], "cannot add"),
    (["project", "add", "{d}/nope", "{i0}"], "folder not found"),
    (["project", "info", "{d}"], "project.json is missing"),
    (["predict", "--project", "{p}"], "no run with weights yet"),
    (["predict", "--project", "{p}", "--image", "{i0}"], "not both"),
    (["predict", "--image", "{i0}"], "give --model, --image and --out, or --project"),
])
def test_project_command_user_errors(tmp_path, capsys, argv, message):
    paths, lab_path, _ = _images(tmp_path, n=1)
    np.save(tmp_path / "vol.npy", np.zeros((4, 48, 48), np.float32))
    folder = tmp_path / "proj"
    assert main(["project", "create", str(folder), paths[0]]) == 0
    capsys.readouterr()
    filled = [a.format(d=tmp_path, p=folder, i0=paths[0], lab=lab_path) for a in argv]
    assert main(filled) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "Traceback" not in err
    assert err.splitlines()[-1].startswith("segstudio: error:") and len(err.splitlines()) == 1


def test_project_add_refuses_while_newer_autosaved_strokes_wait(tmp_path, capsys):
    paths, _, lab = _images(tmp_path, n=2)
    folder = tmp_path / "proj"
    assert main(["project", "create", str(folder), paths[0]]) == 0
    P.autosave(folder, {"im0": lab})
    assert main(["project", "add", str(folder), paths[1]]) == 2
    assert "autosaved paintings newer than its last save" in capsys.readouterr().err
    assert P.recovery(folder) is not None, "the autosave is still there"
