"""The headless CLI: weights, info, train, predict and its one-line errors."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
import tifffile

from segstudio.cli import main
from segstudio.core.config import TEXTURE_SMOOTHING
from segstudio.core.io import read_image, read_labels
from segstudio.core.run import load_run
from segstudio.core.weights import tempering

TINY = ["--iterations", "3", "--patch", "32", "32", "--batch", "2", "--seed", "0"]


@pytest.fixture
def tiff_pair(tmp_path):
    img = np.zeros((48, 48), np.uint16)
    img[16:32, 16:32] = 1000
    lab = np.zeros((48, 48), np.uint8)
    lab[2:4, :] = 1
    lab[20:24, 20:24] = 2
    tifffile.imwrite(tmp_path / "img.tif", img)
    tifffile.imwrite(tmp_path / "lab.tif", lab)
    return tmp_path / "img.tif", tmp_path / "lab.tif"


def test_weights_json_tiff_and_nifti(tiff_pair, tmp_path, capsys):
    _, lab = tiff_pair
    assert main(["weights", "--labels", str(lab), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    n = [96, 16]
    coverage = sum(n) / (22 * 48)  # of their bounding box: rows 2-23, every column
    raw = np.array([sum(n) / (2 * k) for k in n]) ** tempering(coverage)
    assert out["mode"] == "exclusive" and out["method"] == "balanced" and out["classes"] == [1, 2]
    assert out["counts"] == n
    assert out["coverage"] == pytest.approx(coverage, abs=1e-6)
    np.testing.assert_allclose(out["weights"], np.clip(raw / raw.mean(), 0.1, 10), rtol=1e-5)
    vol = np.zeros((4, 5, 6), np.uint8)
    vol[0, 0, :3] = 1
    vol[1, 1, :] = 2
    nib.save(nib.Nifti1Image(vol, np.eye(4)), tmp_path / "lab.nii.gz")
    assert main(["weights", "--labels", str(tmp_path / "lab.nii.gz"), "--labels", str(lab), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["counts"] == [99, 22]


def test_weights_of_dense_labels_say_they_are_tempered(tmp_path, capsys):
    """An annotated image's counts are its classes' own frequencies: they weigh alike, and the
    table says why."""
    lab = np.ones((40, 40), np.uint8)
    lab[5:15, 5:15] = 2
    tifffile.imwrite(tmp_path / "dense.tif", lab)
    assert main(["weights", "--labels", str(tmp_path / "dense.tif")]) == 0
    out = capsys.readouterr().out
    assert "1.0000" in out and "tempered to the power 0.00" in out and "100%" in out
    assert main(["weights", "--labels", str(tmp_path / "dense.tif"), "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["weights"] == [1.0, 1.0] and got["coverage"] == 1.0


def test_info(tiff_pair, capsys):
    img, _ = tiff_pair
    assert main(["info", str(img), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["shape"] == [48, 48] or tuple(info["shape"]) == (48, 48)


def test_train_then_predict_2d_tiff(tiff_pair, tmp_path, capsys):
    img, lab = tiff_pair
    run = tmp_path / "run"
    assert main(["train", "--image", str(img), "--labels", str(lab), "--out", str(run), *TINY]) == 0
    assert (run / "model.pt").exists()
    out = tmp_path / "pred.tif"
    assert main(["predict", "--model", str(run), "--image", str(img), "--out", str(out), "--probabilities"]) == 0
    labels, _ = read_labels(out)
    assert labels.shape == (48, 48) and set(np.unique(labels)) <= {1, 2}
    assert (tmp_path / "pred_probabilities.tif").exists()
    # resume into the same run continues its history
    assert main(["train", "--image", str(img), "--labels", str(lab), "--out", str(run), "--resume", str(run),
                 *TINY]) == 0
    assert len((run / "history.csv").read_text().strip().splitlines()) == 1 + 6
    assert json.loads((run / "config.json").read_text())["infer_outlines"] is True
    plain = tmp_path / "plain"
    assert main(["train", "--image", str(img), "--labels", str(lab), "--out", str(plain), "--no-outlines", *TINY]) == 0
    assert json.loads((plain / "config.json").read_text())["infer_outlines"] is False
    assert json.loads((plain / "config.json").read_text())["input_filters"] == [1.0]
    wide = tmp_path / "wide"
    assert main(["train", "--image", str(img), "--labels", str(lab), "--out", str(wide), "--wide-context", *TINY]) == 0
    assert json.loads((wide / "config.json").read_text())["input_filters"] == [1.0, 4.0]
    out = tmp_path / "wide.tif"
    assert main(["predict", "--model", str(wide), "--image", str(img), "--out", str(out)]) == 0
    assert read_labels(out)[0].shape == (48, 48)


def test_a_run_with_ridge_filters_predicts_and_resumes_as_it_is(tmp_path):
    """``filter_texture`` (an expert's config field, off by default: benchmarks/RESULTS.md,
    *Ridge filters*) is part of the run: predict rebuilds it, --resume keeps it."""
    from segstudio.core.data import SnapshotSource, TrainingImage
    from segstudio.core.trainer import infer_config, train

    rng = np.random.default_rng(0)
    image = rng.normal(0, 0.05, (48, 48)).astype(np.float32)
    image[:, 20:23] += 1.0  # a line
    lab = np.zeros((48, 48), np.uint8)
    lab[2:4, :] = 1
    lab[10:40, 21] = 2
    np.save(tmp_path / "img.npy", image)
    np.save(tmp_path / "lab.npy", lab)
    ridge = tmp_path / "ridge"
    cfg = infer_config(image.shape, lab, "exclusive", iterations=2, patch_size=(32, 32), batch_size=2, seed=0,
                       filter_texture=True)
    source = SnapshotSource()
    source.put([TrainingImage(image, lab)])
    list(train(cfg, source, ridge))
    out = tmp_path / "pred.tif"
    assert main(["predict", "--model", str(ridge), "--image", str(tmp_path / "img.npy"), "--out", str(out)]) == 0
    assert read_labels(out)[0].shape == (48, 48)
    assert main(["train", "--image", str(tmp_path / "img.npy"), "--labels", str(tmp_path / "lab.npy"), *TINY,
                 "--out", str(ridge), "--resume", str(ridge)]) == 0
    assert json.loads((ridge / "config.json").read_text())["filter_texture"] is True
    assert load_run(ridge).model.filters.texture is True


def test_textures_flag_trains_predicts_and_resumes_with_region_statistics(tiff_pair, tmp_path):
    img, lab = tiff_pair
    run = tmp_path / "run"
    args = ["train", "--image", str(img), "--labels", str(lab), *TINY, "--out", str(run)]
    assert main([*args, "--textures"]) == 0
    assert json.loads((run / "config.json").read_text())["filter_context"] == [8.0]
    out = tmp_path / "pred.tif"
    assert main(["predict", "--model", str(run), "--image", str(img), "--out", str(out)]) == 0
    assert read_labels(out)[0].shape == (48, 48)
    assert json.loads((run / "config.json").read_text())["output_smoothing"] == TEXTURE_SMOOTHING
    assert main([*args, "--resume", str(run)]) == 0  # the resumed run's network
    assert load_run(run).model.filters.context == (8.0,)
    assert load_run(run).config.output_smoothing == TEXTURE_SMOOTHING  # a textured network smooths
    assert main(["train", "--image", str(img), "--labels", str(lab), *TINY, "--out", str(tmp_path / "plain")]) == 0
    plain = json.loads((tmp_path / "plain" / "config.json").read_text())
    assert plain["filter_context"] == [] and plain["output_smoothing"] == 0.0


def test_smoothing_flag_sets_the_runs_prediction_smoothing(tiff_pair, tmp_path, capsys):
    """``--smoothing`` overrides what *textures* decides (0 turns it off, any σ on without
    textures); a negative σ is a one-line error."""
    img, lab = tiff_pair
    args = ["train", "--image", str(img), "--labels", str(lab), *TINY]
    assert main([*args, "--out", str(tmp_path / "a"), "--textures", "--smoothing", "0"]) == 0
    assert load_run(tmp_path / "a").config.output_smoothing == 0.0
    assert main([*args, "--out", str(tmp_path / "b"), "--textures", "off", "--smoothing", "2.5"]) == 0
    assert load_run(tmp_path / "b").model.smoothing_boxes
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main([*args, "--out", str(tmp_path / "c"), "--smoothing", "-1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--smoothing" in err[0] and "at least 0" in err[0]


def test_downsample_flag_trains_on_the_shrunk_image_and_predicts_at_full_size(tiff_pair, tmp_path, capsys):
    """``--downsample 2``: said on stderr, kept by the run and by a resume that does not name
    it; prediction in memory and out of core (tiles and bands) gives the same full-size labels;
    out of range is a one-line error."""
    img, lab = tiff_pair
    run = tmp_path / "run"
    args = ["train", "--image", str(img), "--labels", str(lab), *TINY]
    assert main([*args, "--out", str(run), "--downsample", "2"]) == 0
    assert "downsample 2: the network sees the image in blocks of 2 × 2 px" in capsys.readouterr().err
    assert load_run(run).config.downsample == 2
    assert main([*args, "--out", str(run), "--resume", str(run)]) == 0
    assert load_run(run).config.downsample == 2
    outs = []
    for mode in ("never", "always"):
        out = tmp_path / f"pred_{mode}.tif"
        assert main(["predict", "--model", str(run), "--image", str(img), "--out", str(out),
                     "--out-of-core", mode]) == 0
        outs.append(read_labels(out)[0])
    assert outs[0].shape == (48, 48)
    np.testing.assert_array_equal(outs[0], outs[1])
    capsys.readouterr()
    assert main([*args, "--out", str(tmp_path / "x"), "--downsample", "9"]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "downsample must be a whole number from 1 to 8" in err[0]


def test_textures_auto_goes_by_the_paintings(tmp_path, capsys):
    """Grains and stripes of one brightness, painted: on (said on stderr); off when told."""
    from scipy import ndimage as ndi

    rng = np.random.default_rng(0)
    image = ndi.gaussian_filter(rng.standard_normal((64, 64)), 1.5).astype(np.float32)
    image[:, 32:] = np.sin(np.arange(32, dtype=np.float32) * 1.3) * image[:, :32].std() * np.sqrt(2)
    lab = np.zeros((64, 64), np.uint8)
    lab[5:60, 12] = 1
    lab[5:60, 48] = 2
    np.save(tmp_path / "img.npy", image)
    np.save(tmp_path / "lab.npy", lab)
    args = ["train", "--image", str(tmp_path / "img.npy"), "--labels", str(tmp_path / "lab.npy"), *TINY]
    assert main([*args, "--out", str(tmp_path / "auto")]) == 0
    assert "textures: on (auto)" in capsys.readouterr().err
    assert json.loads((tmp_path / "auto" / "config.json").read_text())["filter_context"] == [8.0]
    assert main([*args, "--out", str(tmp_path / "off"), "--textures", "off"]) == 0
    assert "textures: on" not in capsys.readouterr().err
    assert json.loads((tmp_path / "off" / "config.json").read_text())["filter_context"] == []


def test_wide_context_auto_goes_by_the_painted_background(tmp_path, capsys):
    rng = np.random.default_rng(0)
    image = np.tile(np.linspace(0.0, 1.0, 64, dtype=np.float32), (64, 1))  # a ramp stronger than...
    image[20:30, 10:20] += 0.2  # ...the objects' contrast
    image += rng.normal(0, 0.01, image.shape).astype(np.float32)
    lab = np.zeros((64, 64), np.uint8)
    lab[5, 2:62] = lab[58, 2:62] = 1
    lab[23:27, 12:18] = 2
    np.save(tmp_path / "img.npy", image)
    np.save(tmp_path / "lab.npy", lab)
    args = ["train", "--image", str(tmp_path / "img.npy"), "--labels", str(tmp_path / "lab.npy"), *TINY]

    def filters(run):
        return json.loads((run / "config.json").read_text())["input_filters"]

    assert main([*args, "--out", str(tmp_path / "auto")]) == 0
    assert filters(tmp_path / "auto") == [1.0, 4.0]
    assert "wide context: on (auto)" in capsys.readouterr().err
    assert main([*args, "--out", str(tmp_path / "off"), "--wide-context", "off"]) == 0
    assert filters(tmp_path / "off") == [1.0]
    # resuming keeps the run's network whatever auto would say now
    assert main([*args, "--out", str(tmp_path / "off"), "--resume", str(tmp_path / "off")]) == 0
    assert filters(tmp_path / "off") == [1.0]
    even = np.full_like(image, 0.1)
    even[20:30, 10:20] = 1.0
    np.save(tmp_path / "even.npy", even + rng.normal(0, 0.01, image.shape).astype(np.float32))
    args[2] = str(tmp_path / "even.npy")
    assert main([*args, "--out", str(tmp_path / "even")]) == 0
    assert filters(tmp_path / "even") == [1.0]
    assert "wide context" not in capsys.readouterr().err


def test_train_predict_3d_nifti_multilabel(tmp_path):
    rng = np.random.default_rng(0)
    vol = rng.random((24, 24, 6)).astype(np.float32)  # nibabel order (x, y, z)
    affine = np.diag([0.5, 0.5, 2.0, 1.0])
    nib.save(nib.Nifti1Image(vol, affine), tmp_path / "vol.nii.gz")
    lab = np.zeros((2, 6, 24, 24), np.uint8)  # segstudio order (C, z, y, x)
    lab[0, 1, :4] = 1
    lab[0, 2, 10:] = 2
    lab[1, 3, :, :3] = 1
    lab[1, 4, :, 20:] = 2
    np.save(tmp_path / "lab.npy", lab)
    run = tmp_path / "run"
    assert main(["train", "--image", str(tmp_path / "vol.nii.gz"), "--labels", str(tmp_path / "lab.npy"),
                 "--mode", "multilabel", "--out", str(run), "--iterations", "2", "--patch", "4", "16", "16",
                 "--batch", "1"]) == 0
    assert main(["predict", "--model", str(run), "--image", str(tmp_path / "vol.nii.gz"),
                 "--out", str(tmp_path / "pred.nii.gz")]) == 0
    img = nib.load(tmp_path / "pred.nii.gz")
    np.testing.assert_allclose(img.affine, affine)
    pred, meta = read_image(tmp_path / "pred.nii.gz")
    assert pred.shape[-3:] == (6, 24, 24)


def test_predict_folder_output(tiff_pair, tmp_path):
    img, lab = tiff_pair
    run = tmp_path / "run"
    main(["train", "--image", str(img), "--labels", str(lab), "--out", str(run), *TINY])
    tifffile.imwrite(tmp_path / "b.tif", np.zeros((30, 40), np.uint16))
    out = tmp_path / "preds"
    assert main(["predict", "--model", str(run), "--image", str(img), str(tmp_path / "b.tif"), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["b_labels.tif", "img_labels.tif"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "--image", "{d}/missing.tif", "--labels", "{lab}", "--out", "{d}/r"], "missing.tif"),
        (["train", "--image", "{img}", "--labels", "{d}/small.tif", "--out", "{d}/r"], "does not match image shape"),
        (["train", "--image", "{img}", "--labels", "{d}/empty.tif", "--out", "{d}/r"], "nothing is painted"),
        (["predict", "--model", "{d}/nope", "--image", "{img}", "--out", "{d}/o.tif"], "cannot load model"),
        (["weights", "--labels", "{d}/lab.xyz"], "lab.xyz"),
        (["predict", "--model", "{d}", "--image", "{img}", "--out", "{d}/o.tif"], "config.json is missing"),
    ],
)
def test_user_errors_are_one_line_exit_2(tiff_pair, tmp_path, capsys, argv, message):
    img, lab = tiff_pair
    tifffile.imwrite(tmp_path / "small.tif", np.ones((10, 10), np.uint8))
    tifffile.imwrite(tmp_path / "empty.tif", np.zeros((48, 48), np.uint8))
    (tmp_path / "lab.xyz").write_text("x")
    filled = [a.format(d=tmp_path, img=img, lab=lab) for a in argv]
    assert main(filled) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "Traceback" not in err
    assert err.splitlines()[-1].startswith("segstudio: ")


def test_resume_keeps_the_resumed_runs_network(tiff_pair, tmp_path, capsys):
    # A run trained with other defaults (an older segstudio, or --model-size balanced) resumes
    # with its own network; asking for another size names what differs.
    from segstudio.core.config import TrainConfig
    from segstudio.core.run import model_from_config, read_run_config, save_run

    img, lab = tiff_pair
    old = tmp_path / "old"
    cfg = TrainConfig(n_classes=2, features=(4, 8, 16), input_filters=(1.0, 4.0), norm="instance")
    save_run(old, cfg, model_from_config(cfg))
    run = tmp_path / "new"
    assert main(["train", "--image", str(img), "--labels", str(lab), "--out", str(run), "--resume", str(old),
                 *TINY]) == 0
    got = read_run_config(run)
    assert (got.features, got.input_filters, got.norm) == ((4, 8, 16), (1.0, 4.0), "instance")
    capsys.readouterr()
    assert main(["train", "--image", str(img), "--labels", str(lab), "--out", str(tmp_path / "x"), "--resume",
                 str(old), "--model-size", "fast", *TINY]) != 0
    err = capsys.readouterr().err
    assert "cannot resume" in err and "instance norm" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("out_of_core", ["never", "always"])
def test_predicting_again_into_the_same_zarr_replaces_it(tiff_pair, tmp_path, capsys, out_of_core):
    """An existing ``labels.zarr`` is the output, not a folder to write a second store into."""
    img, lab = tiff_pair
    assert main(["train", "--image", str(img), "--labels", str(lab), "--out", str(tmp_path / "run"), *TINY]) == 0
    out = tmp_path / "labels.zarr"
    for _ in range(2):
        assert main(["predict", "--model", str(tmp_path / "run"), "--image", str(img), "--out", str(out),
                     "--out-of-core", out_of_core]) == 0
    labels, _ = read_image(out)
    assert labels.shape == (48, 48) and set(np.unique(labels)) <= {1, 2}
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".z")) == ["0"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left


def test_train_warns_when_a_class_is_not_learnt_at_its_own_strokes(tmp_path, capsys):
    """On a blank image one row of "rare" to three of "common" cannot be told apart: unweighted,
    the network predicts "common" on every stroke, and the end of training says so."""
    tifffile.imwrite(tmp_path / "blank.tif", np.zeros((48, 48), np.uint16))
    lab = np.zeros((48, 48), np.uint8)
    lab[8:40, 8:40] = 1
    lab[8:40:4, 8:40] = 2
    tifffile.imwrite(tmp_path / "rows.tif", lab)
    args = ["train", "--image", str(tmp_path / "blank.tif"), "--labels", str(tmp_path / "rows.tif"),
            "--out", str(tmp_path / "run"), "--iterations", "60", "--patch", "32", "32", "--batch", "2",
            "--seed", "0", "--lr", "0.01", "--weights", "none", "--no-outlines", "--no-background-rule",
            "--model-size", "fast", "--class-names", "common", "rare"]
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "warning: Not learnt yet: rare (" in err and "common" not in err.split("warning:")[-1]


def test_level_slices_auto_goes_by_the_background_along_z_and_resumes_with_its_run(tmp_path, capsys, background_along_z):
    """A volume whose background rises along z more than the objects' contrast: on (said on
    stderr), stored with the run and applied by predict; off when told; a resumed run keeps
    its own; a 2D image told on gets a one-line error."""
    vol, lab = background_along_z()
    np.save(tmp_path / "vol.npy", vol)
    np.save(tmp_path / "lab.npy", lab)
    args = ["train", "--image", str(tmp_path / "vol.npy"), "--labels", str(tmp_path / "lab.npy"),
            "--iterations", "2", "--patch", "4", "16", "16", "--batch", "1", "--seed", "0"]
    run = tmp_path / "auto"
    assert main([*args, "--out", str(run)]) == 0
    assert "level slices: on (auto)" in capsys.readouterr().err
    assert load_run(run).config.level_slices
    out = tmp_path / "pred.tif"
    assert main(["predict", "--model", str(run), "--image", str(tmp_path / "vol.npy"), "--out", str(out)]) == 0
    assert read_labels(out)[0].shape == vol.shape
    assert main([*args, "--out", str(tmp_path / "off"), "--level-slices", "off"]) == 0
    assert "level slices: on" not in capsys.readouterr().err
    assert not load_run(tmp_path / "off").config.level_slices
    assert main([*args, "--out", str(tmp_path / "off"), "--resume", str(tmp_path / "off")]) == 0
    assert not load_run(tmp_path / "off").config.level_slices  # its own input, though auto would level
    np.save(tmp_path / "img2d.npy", vol[5])
    np.save(tmp_path / "lab2d.npy", lab[5])
    assert main(["train", "--image", str(tmp_path / "img2d.npy"), "--labels", str(tmp_path / "lab2d.npy"), *TINY,
                 "--out", str(tmp_path / "2d"), "--level-slices"]) != 0
    assert "level slices is for volumes" in capsys.readouterr().err
