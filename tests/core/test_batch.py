"""Predicting files: one loop (core.batch) for the CLI and the app's folder prediction."""

from __future__ import annotations

import numpy as np
import pytest

from segstudio.core import project as P
from segstudio.core.batch import (
    FileDone,
    FileStarted,
    ImagePredicted,
    channel_axis_for,
    image_files,
    iter_predict_files,
    iter_predict_project,
    output_path,
    split_ext,
)
from segstudio.core.config import TrainConfig
from segstudio.core.errors import UserInputError
from segstudio.core.io import read_image
from segstudio.core.metrics import mean_entropy
from segstudio.core.predictor import PredictProgress, Predictor
from segstudio.core.run import model_from_config


def test_names_and_the_channel_axis_rule(tmp_path):
    assert split_ext("a/b/vol.nii.gz") == ("vol", ".nii.gz") and split_ext("x.ome.tif") == ("x", ".ome.tif")
    assert output_path(tmp_path, "in/cells.jpg", several=True) == tmp_path / "cells_labels.png"
    assert output_path(tmp_path / "one.tif", "in/cells.npy", several=False) == tmp_path / "one.tif"
    assert channel_axis_for("CYX", None, 3) == 0 and channel_axis_for("YX", None, 2) is None
    assert channel_axis_for("CYX", None, 4) is None  # axes that do not fit the array say nothing
    assert channel_axis_for(None, -1, 3) == 2
    with pytest.raises(UserInputError, match="--channel-axis 3 is out of range"):
        channel_axis_for(None, 3, 3)
    for name in ("b.npy", "a.tif", ".hidden.tif", "notes.txt"):
        (tmp_path / name).write_bytes(b"")
    assert [p.name for p in image_files(tmp_path)] == ["a.tif", "b.npy"]


def test_iter_predict_files_writes_every_file_and_reports(tmp_path):
    cfg = TrainConfig(n_classes=2, features=(4, 8), patch_size=(16, 16), device="cpu")
    predictor = Predictor(model_from_config(cfg), cfg, device="cpu")
    src = tmp_path / "in"
    src.mkdir()
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        np.save(src / f"{name}.npy", rng.random((24, 20)).astype(np.float32))
    events = list(iter_predict_files(predictor, image_files(src), tmp_path / "out"))
    done = [e for e in events if isinstance(e, FileDone)]
    assert [type(e) for e in events if not isinstance(e, PredictProgress)] == [FileStarted, FileDone] * 2
    assert [(d.index, d.total, d.labels.name) for d in done] == [(1, 2, "a_labels.npy"), (2, 2, "b_labels.npy")]
    labels, _ = read_image(done[0].labels)
    assert labels.shape == (24, 20) and set(np.unique(labels)) <= {1, 2}


def test_predict_a_project_names_outputs_by_image_and_measures_uncertainty(tmp_path):
    for d in ("x", "y"):
        (tmp_path / d).mkdir()
        np.save(tmp_path / d / "img.npy", np.random.default_rng(0).random((16, 16)).astype(np.float32))
    project = P.add_image(tmp_path / "p", P.Project(classes=P.default_classes()), tmp_path / "x" / "img.npy")
    project = P.add_image(tmp_path / "p", project, tmp_path / "y" / "img.npy")
    cfg = TrainConfig(n_classes=2, features=(4, 8))
    predictor = Predictor(model_from_config(cfg), cfg, device="cpu")
    events = list(iter_predict_project(predictor, tmp_path / "p", project))
    done = [e for e in events if isinstance(e, ImagePredicted)]
    assert [(e.name, e.labels.name, e.index, e.total) for e in done] == [
        ("img", "img_labels.npy", 1, 2), ("img-2", "img-2_labels.npy", 2, 2)]
    assert all(e.labels.parent == tmp_path / "p" / "predictions" for e in done)
    assert all(0.0 <= e.uncertainty <= 1.0 for e in done)
    assert sum(isinstance(e, FileDone) for e in events) == 2


def test_mean_entropy():
    sure = np.zeros((3, 4, 4))
    sure[1] = 1.0
    assert mean_entropy(sure, "exclusive") == 0.0
    assert mean_entropy(np.full((3, 4, 4), 1 / 3), "exclusive") == pytest.approx(1.0)
    assert mean_entropy(np.full((2, 4, 4), 0.5), "multilabel") == pytest.approx(1.0)
    assert mean_entropy(np.zeros((2, 4, 4)), "multilabel") == 0.0
