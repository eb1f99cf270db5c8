"""A NIfTI affine survives napari: reader → Labels layer → writer."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from segstudio._napari._reader import layer_data_from_file
from segstudio._napari._writer import write_labels
from segstudio.core.io import read_image

AFFINE = np.array([[0.0, 0.0, 1.5, -20.0],
                   [0.7, 0.0, 0.0, 5.0],
                   [0.0, -0.7, 0.0, 12.0],
                   [0.0, 0.0, 0.0, 1.0]])  # rotated: no plain spacing could describe it


def _labels_file(tmp_path):
    lab = np.zeros((10, 12, 5), np.uint8)  # NIfTI (i, j, k)
    lab[2:6, 3:9, 1:4] = 2
    lab[7, :, :] = 1
    path = tmp_path / "organ_labels.nii.gz"
    nib.save(nib.Nifti1Image(lab, AFFINE), path)
    return path, lab


def test_reader_to_writer_keeps_the_affine(tmp_path):
    path, lab = _labels_file(tmp_path)
    ((data, kwargs, kind),) = layer_data_from_file(str(path))
    assert kind == "labels"
    np.testing.assert_allclose(kwargs["metadata"]["segstudio"]["affine"], AFFINE)
    edited = np.array(data, copy=True)
    edited[0, 0, 0] = 3
    out = write_labels(str(tmp_path / "edited.nii.gz"), edited, kwargs)[0]
    np.testing.assert_allclose(nib.load(out).affine, AFFINE)
    back, meta = read_image(out)
    np.testing.assert_array_equal(np.asarray(back), edited)
    assert nib.load(out).shape == lab.shape  # stored in the file's own (i, j, k) order


def test_writer_without_affine_still_uses_the_scale(tmp_path):
    lab = np.zeros((4, 6, 8), np.uint8)
    lab[1, 2, 3] = 1
    out = write_labels(str(tmp_path / "plain.nii.gz"), lab, {"scale": (3.0, 1.0, 0.5), "metadata": {}})[0]
    np.testing.assert_allclose(nib.load(out).header.get_zooms(), (0.5, 1.0, 3.0))


@pytest.mark.gui
def test_viewer_open_edit_save_keeps_the_affine(make_napari_viewer, tmp_path):
    path, _ = _labels_file(tmp_path)
    viewer = make_napari_viewer()
    (layer,) = viewer.open(str(path), plugin="segstudio")
    layer.data[1, 1, 1] = 4
    out = tmp_path / "saved.nii.gz"
    layer.save(str(out), plugin="segstudio")
    np.testing.assert_allclose(nib.load(out).affine, AFFINE)
