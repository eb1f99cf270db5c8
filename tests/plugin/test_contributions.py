"""Reader, writer and sample-data contributions (plain functions, no display needed)."""

from __future__ import annotations

import numpy as np
import pytest

from segstudio._napari._reader import get_reader
from segstudio._napari._sample import sample_2d, sample_3d
from segstudio._napari._writer import write_labels
from segstudio.core.io import ImageMeta, read_image, write_image


def test_reader_claims_only_supported_files(tmp_path):
    assert get_reader(str(tmp_path / "a.jpg")) is None
    assert get_reader(str(tmp_path / "a.txt")) is None
    for name in ("a.tif", "a.TIFF", "a.nii", "a.nii.gz", "a.npy", "a.zarr"):
        assert callable(get_reader(str(tmp_path / name))), name


def test_reader_image_with_spacing_becomes_scale(tmp_path):
    vol = np.random.default_rng(0).random((4, 16, 16)).astype(np.float32)
    path = tmp_path / "cells.tif"
    write_image(path, vol, ImageMeta(spacing=(2.0, 0.5, 0.5), axes="ZYX"))
    (data, kwargs, kind), = get_reader(str(path))(str(path))
    assert kind == "image" and kwargs["name"] == "cells"
    np.testing.assert_allclose(kwargs["scale"], (2.0, 0.5, 0.5))
    np.testing.assert_array_equal(np.asarray(data), vol)


def test_reader_integer_label_file_becomes_labels(tmp_path):
    lab = np.zeros((16, 16), np.uint8)
    lab[4:8, 4:8] = 2
    np.save(tmp_path / "nuclei_labels.npy", lab)
    np.save(tmp_path / "nuclei.npy", lab)
    (_, _, kind), = get_reader(str(tmp_path / "nuclei_labels.npy"))(str(tmp_path / "nuclei_labels.npy"))
    assert kind == "labels"
    (_, _, kind), = get_reader(str(tmp_path / "nuclei.npy"))(str(tmp_path / "nuclei.npy"))
    assert kind == "image"


@pytest.mark.parametrize("name", ["nuclei_instances.tif", "true_objects.npy"])
def test_reader_object_files_become_labels(tmp_path, name):
    """What ``segstudio predict --instances`` writes (NAME_instances) opens as Labels, so it can
    be the ground truth of the app's object scores."""
    from segstudio.core.io import write_image

    objects = np.zeros((16, 16), np.uint16)
    objects[2:6, 2:6], objects[9:14, 8:12] = 1, 300
    write_image(tmp_path / name, objects)
    (data, _, kind), = get_reader(str(tmp_path / name))(str(tmp_path / name))
    assert kind == "labels"
    np.testing.assert_array_equal(np.asarray(data), objects)


def test_reader_moves_channels_first(tmp_path):
    img = np.random.default_rng(0).random((16, 16, 2)).astype(np.float32)
    path = tmp_path / "two.tif"
    write_image(path, img, ImageMeta(axes="YXC"))
    data, meta = read_image(path)
    (out, kwargs, kind), = get_reader(str(path))(str(path))
    if meta.axes and "C" in meta.axes:
        assert out.shape == (2, 16, 16)
        assert kwargs["metadata"]["segstudio"]["channel_axis"] == 0


@pytest.mark.parametrize("ext", [".tif", ".nii.gz", ".npy", ".png"])
def test_writer_round_trip(tmp_path, ext):
    lab = np.zeros((12, 20), np.uint8)
    lab[2:5, 3:9] = 1
    lab[7:10, 10:15] = 3
    written = write_labels(str(tmp_path / f"out{ext}"), lab, {"scale": (0.5, 0.5), "name": "labels"})
    assert len(written) == 1
    back, meta = read_image(written[0])
    np.testing.assert_array_equal(np.asarray(back), lab)
    if ext in (".tif", ".nii.gz"):
        np.testing.assert_allclose(meta.spacing, (0.5, 0.5))


def test_writer_3d_keeps_spacing(tmp_path):
    lab = np.zeros((3, 8, 8), np.uint16)
    lab[1, 2:4, 2:4] = 2
    out = write_labels(str(tmp_path / "vol.tif"), lab, {"scale": (2.0, 0.5, 0.5)})[0]
    back, meta = read_image(out)
    np.testing.assert_array_equal(np.asarray(back), lab)
    np.testing.assert_allclose(meta.spacing, (2.0, 0.5, 0.5))


@pytest.mark.parametrize("make, name, ndim", [(sample_2d, "nuclei2d", 2), (sample_3d, "nuclei3d", 3)])
def test_samples(make, name, ndim):
    layers = make()
    (image, ikw, ikind), (truth, tkw, tkind), (objects, okw, okind), (paint, pkw, pkind) = layers
    assert (ikind, tkind, okind, pkind) == ("image", "labels", "labels", "labels")
    assert ikw["name"] == name and pkw["name"] == "paintings"
    assert image.ndim == ndim and paint.shape == image.shape == truth.shape == objects.shape
    assert set(np.unique(paint)) == {0, 1, 2, 3}
    assert pkw["metadata"]["segstudio"]["class_names"] == ["background", "nucleus", "boundary"]
    assert len(ikw["scale"]) == ndim and tuple(pkw["scale"]) == tuple(ikw["scale"])
    assert tkw["visible"] is False and okw["visible"] is False
    # the true objects: one id per nucleus, lying on the true nucleus and boundary classes
    assert okw["metadata"]["segstudio"]["objects"] is True and objects.max() > 3
    np.testing.assert_array_equal(objects > 0, truth > 1)
