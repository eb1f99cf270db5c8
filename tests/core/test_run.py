"""Run directory: atomic writes, safe loading, clear errors."""

from __future__ import annotations

import json
import os
import pickle

import pytest
import torch

from segstudio.core.config import TrainConfig
from segstudio.core.errors import UserInputError
from segstudio.core.run import atomic_write_text, load_run, model_from_config, save_run

CFG = TrainConfig(n_classes=2, features=(4, 8), patch_size=(16, 16), class_names=("bg", "cell"))


@pytest.fixture
def run(tmp_path):
    model = model_from_config(CFG)
    return save_run(tmp_path / "run", CFG, model, history=[{"iteration": 1, "loss": 0.5, "seconds": 1, "lr": 0.1}],
                    weights=[0.5, 1.5], iteration=1)


def test_roundtrip(run):
    loaded = load_run(run)
    assert loaded.config == CFG
    assert loaded.iteration == 1
    classes = json.loads((run / "classes.json").read_text())
    assert classes["names"] == ["bg", "cell"] and classes["weights"] == [0.5, 1.5]


def test_missing_files(run):
    os.remove(run / "model.pt")
    with pytest.raises(UserInputError, match="model.pt is missing"):
        load_run(run)
    with pytest.raises(UserInputError, match="not a folder"):
        load_run(run / "nope")


def test_truncated_weights(run):
    data = (run / "model.pt").read_bytes()
    (run / "model.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(UserInputError, match="not a valid weights file"):
        load_run(run)


class Evil:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_malicious_pickle_does_not_run(run, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with open(run / "model.pt", "wb") as fh:
        pickle.dump({"w": Evil()}, fh)
    with pytest.raises(UserInputError, match="not a valid weights file"):
        load_run(run)
    assert not (tmp_path / "pwned").exists()


def test_weights_of_another_model(run):
    other = model_from_config(CFG.replace(features=(8, 16)))
    torch.save(other.state_dict(), run / "model.pt")
    with pytest.raises(UserInputError, match="do not match"):
        load_run(run)


def test_newer_config_version_is_refused(run):
    cfg = json.loads((run / "config.json").read_text())
    cfg["version"] = 99
    (run / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(UserInputError, match="newer segstudio"):
        load_run(run)


def test_failed_atomic_write_keeps_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "f.txt"
    atomic_write_text(target, "old")

    def broken(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(UserInputError, match="No space left"):
        atomic_write_text(target, "new")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]


def test_atomic_writes_get_normal_permissions(run, tmp_path):
    from segstudio.core.run import _UMASK

    for name in ("config.json", "model.pt", "history.csv"):
        assert (run / name).stat().st_mode & 0o777 == 0o666 & ~_UMASK, name  # not the temp file's 0600
    kept = tmp_path / "kept.txt"
    atomic_write_text(kept, "a")
    os.chmod(kept, 0o640)
    atomic_write_text(kept, "b")  # rewriting keeps the user's own permissions
    assert kept.stat().st_mode & 0o777 == 0o640 and kept.read_text() == "b"
