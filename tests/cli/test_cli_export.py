"""``segstudio export`` and ``segstudio predict --model EXPORTED``."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from segstudio.cli import main
from segstudio.core.io import read_image

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.*deprecated:DeprecationWarning")


@pytest.fixture
def nifti_run(tmp_path):
    """A 3-iteration run trained with the CLI on a small NIfTI volume."""
    rng = np.random.default_rng(0)
    vol = rng.normal(50, 5, (6, 22, 20)).astype(np.float32)
    vol[:, 8:16, 6:14] += 40
    affine = np.diag([0.5, 0.5, 1.5, 1.0])
    affine[:3, 3] = (-3.0, 4.0, 7.0)
    nib.save(nib.Nifti1Image(vol.T.copy(), affine), tmp_path / "vol.nii.gz")
    lab = np.zeros(vol.shape, np.uint8)
    lab[:, :2] = 1
    lab[:, 10:13, 8:12] = 2
    np.save(tmp_path / "lab.npy", lab)
    run = tmp_path / "run"
    assert main(["train", "--image", str(tmp_path / "vol.nii.gz"), "--labels", str(tmp_path / "lab.npy"),
                 "--out", str(run), "--iterations", "2", "--patch", "4", "16", "16", "--batch", "1",
                 "--seed", "0", "--device", "cpu"]) == 0
    return tmp_path, run, affine


def test_export_torchscript_then_predict_with_it(nifti_run, capsys):
    tmp, run, affine = nifti_run
    assert main(["export", "--model", str(run), "--format", "torchscript", "--out", str(tmp / "m.pt")]) == 0
    assert "torchscript" in capsys.readouterr().err and (tmp / "m.pt").is_file()
    for model, out in ((run, "by_run.nii.gz"), (tmp / "m.pt", "by_export.nii.gz")):
        assert main(["predict", "--model", str(model), "--image", str(tmp / "vol.nii.gz"),
                     "--out", str(tmp / out), "--device", "cpu"]) == 0
    by_run, _ = read_image(tmp / "by_run.nii.gz")
    by_export, _ = read_image(tmp / "by_export.nii.gz")
    np.testing.assert_array_equal(by_export, by_run)
    np.testing.assert_allclose(nib.load(tmp / "by_export.nii.gz").affine, affine)


def test_export_errors_are_one_line(nifti_run, capsys):
    tmp, run, _ = nifti_run
    assert main(["export", "--model", str(tmp / "nope"), "--format", "onnx", "--out", str(tmp / "m.onnx")]) == 2
    assert capsys.readouterr().err.startswith("segstudio: error: cannot load run")
    assert main(["export", "--model", str(run), "--format", "onnx", "--out", str(tmp / "m.zip")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "expected a '.onnx' file" in err
    (tmp / "junk.onnx").write_bytes(b"junk")
    assert main(["predict", "--model", str(tmp / "junk.onnx"), "--image", str(tmp / "vol.nii.gz"),
                 "--out", str(tmp / "p.nii.gz")]) == 2
    assert "cannot load model" in capsys.readouterr().err


def test_export_help_lists_the_formats(capsys):
    with pytest.raises(SystemExit):
        main(["export", "-h"])
    out = capsys.readouterr().out
    for fmt in ("torchscript", "pt2", "onnx", "bioimageio", "all"):
        assert fmt in out
