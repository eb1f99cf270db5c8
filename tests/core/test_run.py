"""Run directory: safe loading, clear errors (the atomic writes: test_atomic.py)."""

from __future__ import annotations

import json
import os
import pickle

import pytest
import torch

from segstudio.core.config import TrainConfig
from segstudio.core.errors import UserInputError
from segstudio.core.run import load_run, model_from_config, save_run

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




@pytest.mark.parametrize(("row", "words"), [
    ("2,,3.0,0.1", "line 3, field 'loss' is empty"),
    ("2,abc,3.0,0.1", "line 3, field 'loss' is not a number ('abc')"),
    ("2,0.4,3.0,0.1,9", "line 3 has more fields than the header"),
])
def test_a_damaged_history_is_one_clear_error(run, row, words):
    with open(run / "history.csv", "a") as fh:
        fh.write(row + "\n")
    with pytest.raises(UserInputError) as info:
        load_run(run)
    assert str(info.value) == f"cannot read '{run / 'history.csv'}': {words}"


@pytest.mark.parametrize("version", ["abc", "1", 1.5, None, [1]])
def test_a_config_version_that_is_not_a_whole_number_is_one_clear_error(run, version):
    cfg = json.loads((run / "config.json").read_text())
    cfg["version"] = version
    (run / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(UserInputError, match=r"config.json has version .*; expected a whole number"):
        load_run(run)


def test_a_config_that_is_not_an_object_is_one_clear_error(run):
    (run / "config.json").write_text("[1, 2]")
    with pytest.raises(UserInputError, match="config.json does not hold a JSON object"):
        load_run(run)
