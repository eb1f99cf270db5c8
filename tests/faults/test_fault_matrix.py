"""The bad-input and fault matrix, core and CLI: every row is a clear one-line message (CLI:
``segstudio: error: ...`` on stderr naming the file, exit code 2, no traceback), and nothing
already on disk is lost. GUI rows are in ``test_fault_gui.py``."""

from __future__ import annotations

import gzip
import os
import pickle
import subprocess
import sys
import tracemalloc
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import tifffile
import torch

from segstudio.cli import main
from segstudio.core import project as P
from segstudio.core.data import SnapshotSource, TrainingImage
from segstudio.core.errors import UserInputError
from segstudio.core.io import read_image
from segstudio.core.predictor import Predictor
from segstudio.core.atomic import atomic_write_text
from segstudio.core.run import load_run, model_from_config, save_run
from segstudio.core.trainer import Failed, Finished, Progress, Trainer, infer_config, train

TINY = ["--patch", "32", "32", "--batch", "2", "--seed", "0", "--device", "cpu", "--iterations", "1"]
TINY_CFG = dict(features=(4, 8), patch_size=(32, 32), batch_size=2, num_threads=1, warmup=1, seed=0,
                device="cpu", amp=False)


def _img(shape=(48, 48)) -> np.ndarray:
    img = np.zeros(shape, np.float32)
    img[..., 16:32, 16:32] = 1.0
    return img + np.random.default_rng(0).normal(0, 0.05, shape).astype(np.float32)


def _lab(shape=(48, 48), dtype=np.uint8) -> np.ndarray:
    lab = np.zeros(shape, dtype)
    lab[..., 2:4, :] = 1
    lab[..., 20:24, 20:24] = 2
    return lab


@pytest.fixture(scope="module")
def d(tmp_path_factory) -> Path:
    """A folder of good and bad inputs, and a trained 2D run (``run``)."""
    d = tmp_path_factory.mktemp("matrix")
    np.save(d / "img.npy", _img())
    np.save(d / "lab.npy", _lab())
    np.save(d / "small.npy", _lab((10, 10)))
    np.save(d / "float_frac.npy", _lab().astype(np.float32) * 0.5)
    neg = _lab(dtype=np.int8)
    neg[0, 0] = -1
    np.save(d / "negative.npy", neg)
    np.save(d / "empty.npy", np.zeros((48, 48), np.uint8))
    one = np.zeros((48, 48), np.uint8)
    one[2:4, :] = 2
    np.save(d / "oneclass.npy", one)
    np.save(d / "img4d.npy", np.zeros((2, 3, 16, 16), np.float32))
    np.save(d / "img5d.npy", np.zeros((1, 2, 3, 16, 16), np.float32))
    nan = _img()
    nan[2:4, :10] = np.nan
    np.save(d / "nan.npy", nan)
    np.save(d / "allnan.npy", np.full((48, 48), np.nan, np.float32))
    np.save(d / "const.npy", np.full((48, 48), 7.0, np.float32))
    np.save(d / "px1.npy", np.ones((1, 1), np.float32))
    np.save(d / "vol.npy", np.zeros((4, 16, 16), np.float32))
    import imageio.v3 as iio

    iio.imwrite(d / "rgb.png", (np.random.default_rng(1).random((48, 48, 3)) * 255).astype(np.uint8))
    tifffile.imwrite(d / "good.tif", (_img() * 1000).astype(np.uint16))
    full = (d / "good.tif").read_bytes()
    (d / "truncated.tif").write_bytes(full[: len(full) // 2])
    vol = np.random.default_rng(2).random((16, 16, 4)).astype(np.float32)
    nib.save(nib.Nifti1Image(vol, np.eye(4)), d / "good.nii.gz")
    gz = (d / "good.nii.gz").read_bytes()
    (d / "truncated.nii.gz").write_bytes(gz[: len(gz) // 2])
    (d / "notgz.nii.gz").write_bytes(gzip.decompress((d / "good.nii.gz").read_bytes()))
    (d / "broken.zarr").mkdir()
    (d / "broken.zarr" / ".zarray").write_text("{not json")
    (d / "img.xyz").write_bytes(b"hello")
    iio.imwrite(d / "png_named.tif", np.zeros((8, 8), np.uint8), extension=".png")
    (d / "folder.tif").mkdir()
    assert main(["train", "--image", str(d / "img.npy"), "--labels", str(d / "lab.npy"), "--out", str(d / "run"),
                 *TINY]) == 0
    import json
    import shutil

    shutil.copytree(d / "run", d / "run_history")
    with open(d / "run_history" / "history.csv", "a") as fh:
        fh.write("2,,1.5,0.001\n")  # an empty loss field
    shutil.copytree(d / "run", d / "run_version")
    cfg = json.loads((d / "run_version" / "config.json").read_text())
    (d / "run_version" / "config.json").write_text(json.dumps({**cfg, "version": "two"}))
    (d / "notzarr.zarr").mkdir()
    (d / "notzarr.zarr" / "thesis.docx").write_text("precious")
    return d


def run_cli(argv: list[str], capsys) -> tuple[int, str]:
    try:
        code = main(argv)
    except SystemExit as e:  # argparse: a bad option value, before any command runs
        code = e.code
    return code, capsys.readouterr().err


# --------------------------------------------------------------------------- the CLI matrix
TRAIN_GOOD = ["train", "--image", "{d}/img.npy", "--labels", "{d}/lab.npy"]  # then one bad option value
MATRIX = [
    # (row id, argv with {d}, the words the one-line message must hold)
    ("shape-mismatch", ["train", "--image", "{d}/img.npy", "--labels", "{d}/small.npy"],
     ["small.npy", "does not match image shape"]),
    ("labels-beyond-class-count", ["train", "--image", "{d}/img.npy", "--labels", "{d}/lab.npy",
                                   "--class-names", "background"], ["lab.npy", "beyond the 1 classes"]),
    ("float-labels", ["train", "--image", "{d}/img.npy", "--labels", "{d}/float_frac.npy"],
     ["float_frac.npy", "fractional value 0.5"]),
    ("negative-labels", ["train", "--image", "{d}/img.npy", "--labels", "{d}/negative.npy"],
     ["negative.npy", "must not be negative"]),
    ("4d-without-channel-axis", ["train", "--image", "{d}/img4d.npy", "--labels", "{d}/lab.npy"],
     ["img4d.npy", "expected a 2D or 3D image", "--channel-axis"]),
    ("5d-without-channel-axis", ["predict", "--model", "{d}/run", "--image", "{d}/img5d.npy", "--out", "{d}/o.tif"],
     ["img5d.npy", "expected a 2D or 3D image"]),
    ("rgb-into-grayscale-model", ["predict", "--model", "{d}/run", "--image", "{d}/rgb.png", "--out", "{d}/o.tif"],
     ["expects 1 channel(s); the image has 3"]),
    ("3d-into-2d-model", ["predict", "--model", "{d}/run", "--image", "{d}/vol.npy", "--out", "{d}/o.tif"],
     ["trained on 2D images"]),
    ("empty-paintings", ["train", "--image", "{d}/img.npy", "--labels", "{d}/empty.npy"],
     ["empty.npy", "nothing is painted"]),
    ("all-nan-image", ["train", "--image", "{d}/allnan.npy", "--labels", "{d}/lab.npy"],
     ["no finite pixel values"]),
    ("truncated-tiff", ["info", "{d}/truncated.tif"], ["truncated.tif"]),
    ("truncated-nifti", ["info", "{d}/truncated.nii.gz"], ["truncated.nii.gz"]),
    ("nifti-not-gzipped", ["info", "{d}/notgz.nii.gz"], ["notgz.nii.gz", "not gzip-compressed"]),
    ("corrupt-zarr", ["info", "{d}/broken.zarr"], ["broken.zarr"]),
    ("wrong-extension", ["info", "{d}/img.xyz"], ["img.xyz", "unsupported file type '.xyz'"]),
    ("content-not-extension", ["info", "{d}/png_named.tif"], ["png_named.tif", "not a TIFF file"]),
    ("missing-path", ["info", "{d}/nope.tif"], ["nope.tif", "file not found"]),
    ("folder-not-file", ["info", "{d}/folder.tif"], ["folder.tif", "is a folder"]),
    ("run-without-model", ["predict", "--model", "{d}/norun", "--image", "{d}/img.npy", "--out", "{d}/o.tif"],
     ["norun", "not found"]),
    ("history-empty-field", ["predict", "--model", "{d}/run_history", "--image", "{d}/img.npy", "--out",
                             "{d}/o.tif"], ["history.csv", "line 3, field 'loss' is empty"]),
    ("config-version-not-a-number", ["predict", "--model", "{d}/run_version", "--image", "{d}/img.npy", "--out",
                                     "{d}/o.tif"], ["config.json has version 'two'; expected a whole number"]),
    ("resume-with-bad-history", ["train", "--image", "{d}/img.npy", "--labels", "{d}/lab.npy", "--resume",
                                 "{d}/run_history", *TINY], ["history.csv", "is empty"]),
    ("zarr-over-a-folder-that-is-not-zarr", ["predict", "--model", "{d}/run", "--image", "{d}/img.npy", "--out",
                                             "{d}/notzarr.zarr"], ["notzarr.zarr", "not a Zarr store"]),
    ("zarr-over-a-folder-that-is-not-zarr-out-of-core", ["predict", "--model", "{d}/run", "--image", "{d}/img.npy",
                                                         "--out", "{d}/notzarr.zarr", "--out-of-core", "always"],
     ["notzarr.zarr", "not a Zarr store"]),
    ("patch-zero", [*TRAIN_GOOD, "--patch", "0", "0"], ["argument --patch: must be at least 2, got 0"]),
    ("batch-negative", [*TRAIN_GOOD, "--batch", "-1"], ["argument --batch: must be at least 1, got -1"]),
    ("batch-not-a-number", [*TRAIN_GOOD, "--batch", "four"], ["argument --batch: expected a whole number, got 'four'"]),
    ("iterations-zero", [*TRAIN_GOOD, "--iterations", "0"], ["argument --iterations: must be at least 1, got 0"]),
    ("minutes-negative", [*TRAIN_GOOD, "--minutes", "-2"], ["argument --minutes: must be a number greater than 0"]),
    ("lr-nan", [*TRAIN_GOOD, "--lr", "nan"], ["argument --lr: must be a number greater than 0, got nan"]),
    ("grad-accum-zero", [*TRAIN_GOOD, "--grad-accum", "0"], ["argument --grad-accum: must be at least 1, got 0"]),
    ("seed-negative", [*TRAIN_GOOD, "--seed", "-3"], ["argument --seed: must be at least 0, got -3"]),
    ("checkpoint-every-zero", [*TRAIN_GOOD, "--checkpoint-every", "0"], ["--checkpoint-every: must be a number"]),
    # objects (issue 18)
    ("negative-min-size", ["predict", "--model", "{d}/run", "--image", "{d}/img.npy", "--out", "{d}/o.tif",
                           "--instances", "{d}/i.tif", "--min-size", "-1"], ["--min-size must be a number >= 0"]),
    ("nan-min-size", ["predict", "--model", "{d}/run", "--image", "{d}/img.npy", "--out", "{d}/o.tif",
                      "--instances", "{d}/i.tif", "--min-size", "nan"], ["--min-size must be a number >= 0"]),
    ("min-size-without-objects", ["predict", "--model", "{d}/run", "--image", "{d}/img.npy", "--out", "{d}/o.tif",
                                  "--min-size", "5"], ["--min-size needs --instances FILE or --objects-csv CSV"]),
    ("unknown-object-class", ["predict", "--model", "{d}/run", "--image", "{d}/img.npy", "--out", "{d}/o.tif",
                              "--instances", "{d}/i.tif", "--object-classes", "nucleus"],
     ["--object-classes 'nucleus' is not one of the model's classes (1 class 1, 2 class 2)"]),
    ("objects-folder-is-a-file", ["predict", "--model", "{d}/run", "--image", "{d}/img.npy", "{d}/nan.npy", "--out",
                                  "{d}/preds", "--instances", "{d}/lab.npy"], ["lab.npy", "give a folder"]),
    ("objects-into-jpeg", ["predict", "--model", "{d}/run", "--image", "{d}/img.npy", "--out", "{d}/o.tif",
                           "--instances", "{d}/i.jpg"], ["i.jpg", "lossless format"]),
    ("measure-shape-mismatch", ["measure", "--labels", "{d}/small.npy", "--image", "{d}/img.npy", "--out",
                                "{d}/t.csv"], ["small.npy", "(10, 10)", "(48, 48)", "expected the same"]),
    ("measure-missing-labels", ["measure", "--labels", "{d}/nope.tif", "--image", "{d}/img.npy", "--out",
                                "{d}/t.csv"], ["nope.tif", "file not found"]),
    ("measure-float-labels", ["measure", "--labels", "{d}/float_frac.npy", "--image", "{d}/img.npy", "--out",
                              "{d}/t.csv"], ["float_frac.npy", "fractional value 0.5"]),
    ("metrics-shape-mismatch", ["metrics", "--pred", "{d}/lab.npy", "--truth", "{d}/small.npy", "--instances"],
     ["lab.npy", "small.npy", "expected the same shape"]),
    ("metrics-negative-labels", ["metrics", "--pred", "{d}/negative.npy", "--truth", "{d}/lab.npy"],
     ["negative.npy", "negative labels"]),
    ("metrics-rgb-truth", ["metrics", "--pred", "{d}/lab.npy", "--truth", "{d}/rgb.png"], ["rgb.png", "colour image"]),
]


@pytest.mark.parametrize("argv, words", [m[1:] for m in MATRIX], ids=[m[0] for m in MATRIX])
def test_cli_bad_input_is_one_line_exit_2(d, capsys, argv, words):
    code, err = run_cli([a.format(d=d) for a in argv] + (["--out", str(d / "r")] if argv[0] == "train" else []),
                        capsys)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2, err
    assert "Traceback" not in err
    assert lines[-1].startswith("segstudio: "), err
    for w in words:
        assert w in lines[-1], lines[-1]
    assert (d / "notzarr.zarr" / "thesis.docx").read_text() == "precious"  # nothing the user made is lost


def test_unreadable_file(d, capsys, monkeypatch):
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, m, **k: False if str(p).endswith("good.tif") else real(p, m, **k))
    code, err = run_cli(["info", str(d / "good.tif")], capsys)
    assert code == 2 and "good.tif" in err and "permission denied" in err


@pytest.mark.parametrize("damage", ["missing", "truncated", "malicious-pickle", "other-model"])
def test_run_with_missing_or_tampered_model(d, tmp_path, capsys, damage):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(d / "run", run)
    model = run / "model.pt"
    if damage == "missing":
        model.unlink()
    elif damage == "truncated":
        model.write_bytes(model.read_bytes()[:100])
    elif damage == "malicious-pickle":
        class Evil:
            def __reduce__(self):
                return (os.system, (f"touch {tmp_path / 'pwned'}",))

        model.write_bytes(pickle.dumps({"w": Evil()}))
    else:
        cfg = load_run(run).config
        torch.save(model_from_config(cfg.replace(features=(4, 8, 16))).state_dict(), model)
    code, err = run_cli(["predict", "--model", str(run), "--image", str(d / "img.npy"), "--out",
                         str(tmp_path / "o.tif")], capsys)
    assert code == 2 and "Traceback" not in err
    assert {"missing": "model.pt is missing", "truncated": "not a valid weights file",
            "malicious-pickle": "not a valid weights file", "other-model": "do not match"}[damage] in err
    assert not (tmp_path / "pwned").exists()  # weights_only=True: the pickle's code never ran


def test_debug_flag_shows_the_traceback(d, capsys):
    with pytest.raises(UserInputError, match="file not found"):
        main(["info", str(d / "nope.tif"), "--debug"])


def test_real_process_exit_code_and_stderr(d):
    proc = subprocess.run([sys.executable, "-m", "segstudio", "info", str(d / "img.xyz")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"segstudio: error: unsupported file type '.xyz' for '{d / 'img.xyz'}': expected one of "
        + ", ".join(__import__("segstudio.core.io", fromlist=["x"]).SUPPORTED_EXTENSIONS)]


def test_failed_write_of_a_prediction_keeps_the_old_file(d, tmp_path, capsys, monkeypatch):
    out = tmp_path / "o.npy"
    np.save(out, np.arange(3))

    def denied(*a, **k):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "replace", denied)
    code, err = run_cli(["predict", "--model", str(d / "run"), "--image", str(d / "img.npy"), "--out", str(out)],
                        capsys)
    assert code == 2 and "o.npy" in err and "permission denied" in err.lower() and "Traceback" not in err
    np.testing.assert_array_equal(np.load(out), np.arange(3))


# --------------------------------------------------------------------------- inputs that train (with a warning)
@pytest.mark.parametrize("image, labels, warning", [
    ("img.npy", "oneclass.npy", "only one class is painted"),
    ("nan.npy", "lab.npy", "lie on NaN/inf image pixels"),
    ("const.npy", "lab.npy", None),
    ("rgb.png", "lab.npy", None),
])
def test_inputs_that_train_with_a_warning(d, tmp_path, capsys, image, labels, warning):
    code, err = run_cli(["train", "--image", str(d / image), "--labels", str(d / labels), "--out",
                         str(tmp_path / "r"), *TINY], capsys)
    assert code == 0, err
    if warning:
        assert any(ln.startswith("warning:") and warning in ln for ln in err.splitlines()), err
    loaded = load_run(tmp_path / "r")
    assert all(np.isfinite(r["loss"]) for r in loaded.history)
    assert loaded.config.in_channels == (3 if image == "rgb.png" else 1)


def test_constant_and_1x1_images_predict(d, tmp_path, capsys):
    for name in ("const.npy", "px1.npy"):
        code, err = run_cli(["predict", "--model", str(d / "run"), "--image", str(d / name), "--out",
                             str(tmp_path / f"p_{name}")], capsys)
        assert code == 0, err
        pred = np.load(tmp_path / f"p_{name}")
        assert pred.shape == np.load(d / name).shape and set(np.unique(pred)) <= {1, 2}


def test_1x1_image_trains(tmp_path):
    img = np.ones((1, 1), np.float32)
    cfg = infer_config(img.shape, np.ones((1, 1), np.uint8), "exclusive", n_classes=2, iterations=2,
                       **{**TINY_CFG, "patch_size": (16, 16)})
    src = SnapshotSource()
    src.put([TrainingImage(img, np.ones((1, 1), np.uint8))])
    events = list(train(cfg, src))
    assert isinstance(events[-1], Finished), events[-1]
    assert all(np.isfinite(e.loss) for e in events if isinstance(e, Progress))


# --------------------------------------------------------------------------- core faults
def test_model_of_another_mode_or_class_count_for_predict(d):
    loaded = load_run(d / "run")
    other = loaded.config.replace(n_classes=3)
    predictor = Predictor(model_from_config(loaded.config), loaded.config, device="cpu")
    with pytest.raises(UserInputError, match="do not fit this model"):
        predictor.load_state(model_from_config(other).state_dict())
    project = P.Project(mode="multilabel", classes=(P.ProjectClass("a", "#000000"),) * 2)
    with pytest.raises(UserInputError, match="trained for 2 exclusive classes; the project has 2 multilabel"):
        P.check_run_fits(project, loaded.config, d / "run")


def test_training_killed_mid_checkpoint_keeps_the_previous_one(d, tmp_path, monkeypatch):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(d / "run", run)
    before = (run / "model.pt").read_bytes()
    loaded = load_run(run)
    real_save = torch.save

    def dies_halfway(obj, f, *a, **k):
        f.write(b"\x80\x02partial")  # some bytes reach the temporary file, then the process "dies"
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", dies_halfway)
    with pytest.raises(KeyboardInterrupt):
        save_run(run, loaded.config, loaded.model, iteration=99)
    monkeypatch.setattr(torch, "save", real_save)
    assert (run / "model.pt").read_bytes() == before
    assert load_run(run).iteration == loaded.iteration
    assert not list(run.glob(".*.tmp"))


@pytest.mark.parametrize("errno_, text", [(28, "No space left on device"), (13, "Permission denied")])
@pytest.mark.parametrize("where", ["write", "replace"])
def test_failed_atomic_write_leaves_the_old_file_and_says_why(tmp_path, monkeypatch, errno_, text, where):
    target = tmp_path / "config.json"
    atomic_write_text(target, "old")

    def fail(*a, **k):
        raise OSError(errno_, text)

    if where == "write":
        monkeypatch.setattr(os, "fsync", fail)
    else:
        monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(UserInputError) as info:
        atomic_write_text(target, "new")
    assert str(info.value) == f"cannot write '{target}': {text}"
    monkeypatch.undo()
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["config.json"]


def test_worker_raising_mid_training_keeps_the_checkpoint(d, tmp_path, capsys, monkeypatch):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(d / "run", run)
    before = (run / "model.pt").read_bytes()

    def boom(self):
        raise RuntimeError("simulated crash")

    monkeypatch.setattr(Trainer, "step", boom)
    code, err = run_cli(["train", "--image", str(d / "img.npy"), "--labels", str(d / "lab.npy"), "--out", str(run),
                         "--resume", str(run), *TINY], capsys)
    assert code == 1 and "training failed: RuntimeError: simulated crash" in err and "Traceback" not in err
    assert (run / "model.pt").read_bytes() == before
    code, err = run_cli(["train", "--image", str(d / "img.npy"), "--labels", str(d / "lab.npy"), "--out", str(run),
                         "--resume", str(run), "--debug", *TINY], capsys)
    assert "Traceback" in err  # --debug shows where it broke


def test_cuda_oom_halves_the_batch_and_goes_on(d, tmp_path, capsys, monkeypatch):
    real = Trainer.step
    calls = {"n": 0}

    def oom(self):
        calls["n"] += 1
        if calls["n"] == 1:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (simulated)")
        return real(self)

    monkeypatch.setattr(Trainer, "step", oom)
    code, err = run_cli(["train", "--image", str(d / "img.npy"), "--labels", str(d / "lab.npy"), "--out",
                         str(tmp_path / "r"), *TINY], capsys)
    assert code == 0 and "GPU out of memory: continuing with batch size 1" in err
    assert load_run(tmp_path / "r").iteration == 1


def test_failed_event_for_an_all_nan_image_is_a_user_error():
    img = np.full((32, 32), np.nan, np.float32)
    cfg = infer_config(img.shape, _lab((32, 32)), "exclusive", iterations=1, **TINY_CFG)
    src = SnapshotSource()
    src.put([TrainingImage(img, _lab((32, 32)))])
    events = list(train(cfg, src))
    assert isinstance(events[-1], Failed) and events[-1].user_error and "no finite pixel" in events[-1].message


# --------------------------------------------------------------------------- big volumes are not loaded twice
BIG = (50, 1024, 1024)  # 50 MB of uint8: a stand-in for a 2 GB volume, same code path


@pytest.fixture(scope="module")
def big(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("big")
    arr = np.lib.format.open_memmap(folder / "big.npy", mode="w+", dtype=np.uint8, shape=BIG)
    arr[:, 100:200, 100:200] = 200
    arr.flush()
    del arr
    return folder


def test_lazy_read_of_a_big_volume_does_not_copy_it(big):
    tracemalloc.start()
    try:
        data, _ = read_image(big / "big.npy", lazy=True)
        view = np.asarray(data)  # what the app and the trainer hold
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert isinstance(data, np.memmap) and np.shares_memory(view, data)
    assert peak < 1_000_000, peak


def test_project_training_reads_the_volume_once(big, tmp_path):
    """``segstudio train --project`` hands the trainer the memory-mapped file, not a copy."""
    import argparse

    from segstudio.cli import _project_training

    project = P.add_image(tmp_path / "p", P.Project(classes=(P.ProjectClass("a", "#000000"),
                                                             P.ProjectClass("b", "#111111"))), big / "big.npy")
    paint = np.zeros(BIG, np.uint8)
    paint[3, 0:5, 0:5] = 1
    paint[3, 150, 150] = 2
    P.save_project(tmp_path / "p", project, {"big": paint})
    del paint
    args = argparse.Namespace(project=str(tmp_path / "p"), image=[], labels=[], loss="ce", mode="exclusive",
                              channel_axis=None, resume=None, out=str(tmp_path / "r"))
    tracemalloc.start()
    try:
        items, _, _ = _project_training(args)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert isinstance(items[0].image, np.memmap)
    # the paintings (one uint8 copy, decompressed) are the only volume-sized allocation
    assert peak < 1.5 * np.prod(BIG), peak


@pytest.mark.parametrize("name", ["labels.tif", "labels.npy", "labels.nii.gz"])
def test_disk_full_while_writing_an_image_keeps_the_old_one(tmp_path, monkeypatch, name):
    from segstudio.core.io import read_labels, write_image

    out = tmp_path / name
    write_image(out, np.ones((8, 8), np.uint8))

    def full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(UserInputError, match=f"cannot write '.*{name}': No space left on device"):
        write_image(out, np.full((8, 8), 2, np.uint8))
    monkeypatch.undo()
    np.testing.assert_array_equal(read_labels(out)[0], 1)
    assert [p.name for p in tmp_path.iterdir()] == [name]
