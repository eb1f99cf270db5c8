"""``segstudio train --project`` and ``segstudio open``: headless project training, kill -9."""

from __future__ import annotations

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


def test_project_training_keeps_the_apps_fill_outlines_choice(tmp_path):
    folder = make_project(tmp_path)
    project = P.load_project(folder)
    paint = P.read_paintings(folder, project, "img")
    P.save_project(folder, replace(project, training={"infer_outlines": False}), {"img": paint})
    assert main(["train", "--project", str(folder), "--iterations", "1", *TINY]) == 0
    assert load_run(P.latest_run(folder, P.load_project(folder))).config.infer_outlines is False
