"""The CLI's objects: ``predict --instances/--objects-csv``, ``measure`` and ``metrics``."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import tifffile
from skimage.measure import label

from segstudio.cli import main
from segstudio.core.config import TrainConfig
from segstudio.core.data import SnapshotSource, TrainingImage
from segstudio.core.instances import instances_from_labels, object_table, options_for_classes
from segstudio.core.io import read_image, read_labels
from segstudio.core.metrics import evaluate, instance_scores
from segstudio.core.run import model_from_config, save_run
from segstudio.core.samples import synthetic_nuclei
from segstudio.core.trainer import Finished, infer_config, train

NAMES = ("background", "nucleus", "boundary")


def _train(folder: Path, sample, patch, iterations: int) -> Path:
    """A run trained on the sample's whole truth (a few seconds): it predicts a few nuclei."""
    cfg = infer_config(sample.image.shape, sample.truth, "exclusive", n_classes=3, iterations=iterations,
                       features=(4, 8), patch_size=patch, batch_size=4, seed=0, device="cpu", amp=False,
                       num_threads=1, warmup=2, class_names=NAMES, infer_outlines=False, spacing=sample.spacing)
    source = SnapshotSource()
    source.put([TrainingImage(sample.image, sample.truth)])
    assert isinstance(list(train(cfg, source, folder))[-1], Finished)
    return folder


@pytest.fixture(scope="module")
def d(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("objects")
    s = synthetic_nuclei((96, 96), n_nuclei=8, seed=1, radius_range=(5.0, 9.0))
    tifffile.imwrite(d / "img.tif", s.image)
    tifffile.imwrite(d / "other.tif", np.ascontiguousarray(s.image[::-1]))
    np.save(d / "img.npy", s.image)
    tifffile.imwrite(d / "truth.tif", s.truth)
    tifffile.imwrite(d / "truth_objects.tif", s.instances.astype(np.uint16))
    _train(d / "run", s, (32, 32), 60)
    return d


def _csv(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_predict_writes_objects_and_their_table(d, tmp_path, capsys):
    assert main(["predict", "--model", str(d / "run"), "--image", str(d / "img.tif"), "--out", str(tmp_path / "p.tif"),
                 "--probabilities", "--instances", str(tmp_path / "objects.tif"),
                 "--objects-csv", str(tmp_path / "objects.csv")]) == 0
    labels, _ = read_labels(tmp_path / "p.tif")
    probs, _ = read_image(tmp_path / "p_probabilities.tif")
    objects, _ = read_labels(tmp_path / "objects.tif")
    # the objects are those of the core function on the written prediction (flooded by P(boundary))
    want = instances_from_labels(labels, options_for_classes(NAMES), boundary_probability=probs[2])
    assert want.n >= 3 and objects.dtype == np.uint8
    np.testing.assert_array_equal(objects, want.labels)
    rows = _csv(tmp_path / "objects.csv")
    table = object_table(want.labels, read_image(d / "img.tif")[0], classes=want.classes, class_names=NAMES)
    assert [r["id"] for r in rows] == [str(i) for i in table["id"]] == [str(i) for i in range(1, want.n + 1)]
    assert list(rows[0]) == ["image", *table]
    assert {r["image"] for r in rows} == {"img.tif"} and "nucleus" in {r["class_name"] for r in rows}
    assert [r["class_name"] for r in rows] == table["class_name"].tolist()
    np.testing.assert_allclose([float(r["area"]) for r in rows], table["area"])
    np.testing.assert_allclose([float(r["mean_intensity"]) for r in rows], table["mean_intensity"], rtol=1e-6)
    err = capsys.readouterr().err
    assert f"{want.n} objects" in err and "object table" in err


def test_min_size_and_the_splitting_options(d, tmp_path):
    def objects(*extra: str) -> np.ndarray:
        out = tmp_path / "o.tif"
        assert main(["predict", "--model", str(d / "run"), "--image", str(d / "img.tif"),
                     "--out", str(tmp_path / "p.tif"), "--instances", str(out), *extra]) == 0
        return read_labels(out)[0]

    default = objects()
    areas = np.bincount(default.ravel())[1:]
    cut = float(np.median(areas)) + 0.5
    big = objects("--min-size", str(cut))
    assert big.max() == int((areas >= cut).sum()) and big.max() < default.max()
    assert np.all(np.bincount(big.ravel())[1:] >= cut)
    labels = read_labels(tmp_path / "p.tif")[0]
    whole = objects("--no-split")
    # face-connected regions of nucleus and boundary (the default connectivity)
    assert whole.max() == label(labels >= 2, connectivity=1).max()
    only = objects("--object-classes", "nucleus", "--boundary-class", "none", "--no-split")
    assert only.max() == label(labels == 2, connectivity=1).max()
    distance = objects("--boundary-class", "none", "--object-classes", "2", "3")
    want = instances_from_labels(labels, options_for_classes(NAMES, boundary_class=None, object_classes=(2, 3)))
    np.testing.assert_array_equal(distance, want.labels)
    inside = objects("--drop-border")
    assert inside.max() <= default.max() and not np.any(inside[[0, -1]]) and not np.any(inside[:, [0, -1]])
    dim = objects("--boundary-class", "none", "--split-at-dim-lines")
    image = read_image(d / "img.tif")[0]
    want = instances_from_labels(labels, options_for_classes(NAMES, boundary_class=None, declump="intensity"),
                                 image=image)
    np.testing.assert_array_equal(dim, want.labels)
    assert want.n >= 1 and not np.array_equal(want.labels, distance)
    # with the boundary class: the dim lines split instead of it, the boundary belongs to the objects
    instead = objects("--split-at-dim-lines")
    want = instances_from_labels(labels, options_for_classes(NAMES, declump="intensity"), image=image)
    np.testing.assert_array_equal(instead, want.labels)
    np.testing.assert_array_equal(instead > 0, labels >= 2)


def test_split_at_dim_lines_out_of_core_is_made_in_memory(d, tmp_path, capsys):
    common = ["predict", "--model", str(d / "run"), "--image", str(d / "img.npy"), "--boundary-class", "none",
              "--split-at-dim-lines"]
    assert main([*common, "--out", str(tmp_path / "mem.npy"), "--instances", str(tmp_path / "mem_objects.tif")]) == 0
    assert main([*common, "--out", str(tmp_path / "big.zarr"), "--out-of-core", "always",
                 "--instances", str(tmp_path / "big_objects.zarr")]) == 0
    assert "made in memory, not band by band" in capsys.readouterr().err
    np.testing.assert_array_equal(np.asarray(read_labels(tmp_path / "big_objects.zarr")[0]),
                                  read_labels(tmp_path / "mem_objects.tif")[0])
    assert main([*common, "--no-split", "--out", str(tmp_path / "x.npy"), "--instances", str(tmp_path / "x.tif")]) == 2
    assert "contradict" in capsys.readouterr().err


def test_several_images_one_table(d, tmp_path):
    assert main(["predict", "--model", str(d / "run"), "--image", str(d / "img.tif"), str(d / "other.tif"),
                 "--out", str(tmp_path / "pred"), "--instances", str(tmp_path / "objects"),
                 "--objects-csv", str(tmp_path / "all.csv")]) == 0
    assert sorted(p.name for p in (tmp_path / "objects").iterdir()) == ["img_instances.tif", "other_instances.tif"]
    rows = _csv(tmp_path / "all.csv")
    for name in ("img", "other"):
        n = int(read_labels(tmp_path / "objects" / f"{name}_instances.tif")[0].max())
        assert n > 0 and sum(r["image"] == f"{name}.tif" for r in rows) == n


def test_3d_nifti_objects_keep_the_affine_and_physical_volumes(tmp_path):
    s = synthetic_nuclei((8, 40, 40), n_nuclei=6, seed=2, radius_range=(5.0, 8.0), spacing=(2.0, 1.0, 1.0))
    run = _train(tmp_path / "run", s, (8, 32, 32), 30)
    affine = np.diag([0.5, 0.5, 2.0, 1.0])  # nibabel (x, y, z): voxels 0.5 x 0.5 x 2 mm
    nib.save(nib.Nifti1Image(np.ascontiguousarray(s.image.transpose(2, 1, 0)), affine), tmp_path / "vol.nii.gz")
    assert main(["predict", "--model", str(run), "--image", str(tmp_path / "vol.nii.gz"),
                 "--out", str(tmp_path / "pred.nii.gz"), "--instances", str(tmp_path / "objects.nii.gz"),
                 "--objects-csv", str(tmp_path / "objects.csv")]) == 0
    img = nib.load(tmp_path / "objects.nii.gz")
    np.testing.assert_allclose(img.affine, affine)
    objects, meta = read_labels(tmp_path / "objects.nii.gz")
    assert objects.shape == s.image.shape and meta.spacing == (2.0, 0.5, 0.5)
    assert np.issubdtype(objects.dtype, np.integer) and objects.max() >= 1
    rows = _csv(tmp_path / "objects.csv")
    counts = np.bincount(np.asarray(objects).ravel())[1:]
    np.testing.assert_allclose([float(r["volume"]) for r in rows], counts * 2.0 * 0.5 * 0.5)


def test_out_of_core_objects_equal_the_in_memory_ones(d, tmp_path):
    common = ["predict", "--model", str(d / "run"), "--image", str(d / "img.npy"), "--probabilities"]
    assert main([*common, "--out", str(tmp_path / "mem.npy"), "--instances", str(tmp_path / "mem_objects.npy"),
                 "--objects-csv", str(tmp_path / "mem.csv")]) == 0
    assert main([*common, "--out", str(tmp_path / "big.zarr"), "--out-of-core", "always",
                 "--instances", str(tmp_path / "big_objects.zarr"), "--objects-csv", str(tmp_path / "big.csv")]) == 0
    big, _ = read_labels(tmp_path / "big_objects.zarr")
    np.testing.assert_array_equal(np.asarray(big), np.load(tmp_path / "mem_objects.npy"))
    big_rows, mem_rows = _csv(tmp_path / "big.csv"), _csv(tmp_path / "mem.csv")
    assert [list(r) for r in big_rows] == [list(r) for r in mem_rows]
    for b, m in zip(big_rows, mem_rows, strict=True):  # band-wise centroids: box offset + local mean (1 ulp)
        assert all(b[k] == m[k] or float(b[k]) == pytest.approx(float(m[k]), rel=1e-12, abs=1e-12) for k in m), (b, m)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no scratch left


def test_measure_existing_objects(d, tmp_path, capsys):
    assert main(["measure", "--labels", str(d / "truth_objects.tif"), "--image", str(d / "img.tif"),
                 "--out", str(tmp_path / "t.csv")]) == 0
    truth = read_labels(d / "truth_objects.tif")[0]
    want = object_table(truth, read_image(d / "img.tif")[0])
    rows = _csv(tmp_path / "t.csv")
    assert list(rows[0]) == ["image", *want] and len(rows) == len(want["id"]) == int(truth.max())
    np.testing.assert_allclose([float(r["centroid_x"]) for r in rows], want["centroid_x"])
    assert "object table" in capsys.readouterr().err


def test_metrics_for_classes_and_objects(d, tmp_path, capsys):
    assert main(["predict", "--model", str(d / "run"), "--image", str(d / "img.tif"), "--out", str(tmp_path / "p.tif"),
                 "--instances", str(tmp_path / "o.tif")]) == 0
    capsys.readouterr()
    assert main(["metrics", "--pred", str(tmp_path / "o.tif"), "--truth", str(d / "truth_objects.tif"),
                 "--instances", "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    want = instance_scores(read_labels(tmp_path / "o.tif")[0], read_labels(d / "truth_objects.tif")[0])
    assert got["f1"] == pytest.approx(want.f1) and got["average_precision"] == pytest.approx(want.average_precision)
    assert got["tp"] == want.tp and got["merges"] == want.merges and want.n_true == 8
    assert main(["metrics", "--pred", str(tmp_path / "o.tif"), "--truth", str(d / "truth_objects.tif"),
                 "--instances"]) == 0
    text = capsys.readouterr().out
    assert f"F1 at IoU 0.5: {want.f1:.4f}" in text and "average precision, IoU 0.5:0.95" in text
    assert main(["metrics", "--pred", str(tmp_path / "p.tif"), "--truth", str(d / "truth.tif"), "--json"]) == 0
    per_class = json.loads(capsys.readouterr().out)
    ref = evaluate(read_labels(tmp_path / "p.tif")[0], read_labels(d / "truth.tif")[0], [1, 2, 3])
    assert [c["class"] for c in per_class] == [1, 2, 3]
    assert [c["dice"] for c in per_class] == pytest.approx([m.dice for m in ref])


def test_objects_need_an_exclusive_model(d, tmp_path, capsys):
    cfg = TrainConfig(mode="multilabel", n_classes=2, features=(4, 8))
    save_run(tmp_path / "ml", cfg, model_from_config(cfg))
    assert main(["predict", "--model", str(tmp_path / "ml"), "--image", str(d / "img.tif"),
                 "--out", str(tmp_path / "p.tif"), "--instances", str(tmp_path / "o.tif")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.splitlines() == ["segstudio: error: --instances/--objects-csv need an exclusive model (one class "
                                f"per pixel); '{tmp_path / 'ml'}' is multilabel"]
    assert not (tmp_path / "p.tif").exists()
