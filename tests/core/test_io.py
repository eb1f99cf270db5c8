"""Tests for segstudio.core.io: round trips per format, metadata, and one-line user errors."""

from __future__ import annotations

import os
import pathlib
import shutil

import numpy as np
import pytest

from segstudio.core import io as sio
from segstudio.core.errors import UserInputError

nib = pytest.importorskip("nibabel")
tifffile = pytest.importorskip("tifffile")
zarr = pytest.importorskip("zarr")
iio = pytest.importorskip("imageio.v3")


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


def _one_line(err: pytest.ExceptionInfo, name: str) -> str:
    msg = str(err.value)
    assert "\n" not in msg
    assert name in msg, msg
    return msg


# ------------------------------------------------------------------------------- format_of


@pytest.mark.parametrize(
    "name, fmt",
    [
        ("a.tif", "tiff"),
        ("a.TIFF", "tiff"),
        ("a.ome.tif", "tiff"),
        ("a.nii", "nifti"),
        ("a.nii.gz", "nifti"),
        ("a.png", "png"),
        ("a.JPG", "jpg"),
        ("a.jpeg", "jpg"),
        ("a.bmp", "bmp"),
        ("a.npy", "npy"),
        ("a.zarr", "zarr"),
        ("a.ome.zarr/", "zarr"),
    ],
)
def test_format_of(name: str, fmt: str) -> None:
    assert sio.format_of(name) == fmt


def test_format_of_unknown_lists_supported() -> None:
    with pytest.raises(UserInputError) as err:
        sio.format_of("scan.foo")
    msg = _one_line(err, "scan.foo")
    assert ".tif" in msg and ".nii.gz" in msg and ".zarr" in msg


# ------------------------------------------------------------------------------- TIFF


def test_tiff_2d_roundtrip_spacing(tmp_path: pathlib.Path, rng: np.random.Generator) -> None:
    data = rng.integers(0, 4000, (20, 30), dtype=np.uint16)
    meta = sio.ImageMeta(spacing=(0.25, 0.5), axes="YX")
    out = sio.write_image(tmp_path / "img.tif", data, meta)
    got, meta = sio.read_image(out)
    np.testing.assert_array_equal(got, data)
    assert got.dtype == np.uint16
    assert meta.axes == "YX" and meta.source_format == "tiff"
    assert meta.spacing == pytest.approx((0.25, 0.5))


@pytest.mark.parametrize("dtype", [np.uint8, np.float32, np.int32, np.int64])
def test_tiff_3d_roundtrip_spacing(tmp_path: pathlib.Path, rng: np.random.Generator,
                                   dtype: type) -> None:
    data = (rng.random((5, 16, 12)) * 100).astype(dtype)
    meta = sio.ImageMeta(spacing=(2.0, 0.3, 0.3), axes="ZYX")
    out = sio.write_image(tmp_path / "sub" / "vol.tiff", data, meta)  # parent created
    got, m = sio.read_image(out)
    np.testing.assert_array_equal(got, data)
    assert got.dtype == data.dtype
    assert m.axes == "ZYX"
    assert m.spacing == pytest.approx((2.0, 0.3, 0.3), rel=1e-6)
    lazy, m2 = sio.read_image(out, lazy=True)
    np.testing.assert_array_equal(np.asarray(lazy[...]), data)
    assert m2.axes == "ZYX"


def test_tiff_channels_roundtrip(tmp_path: pathlib.Path, rng: np.random.Generator) -> None:
    data = rng.integers(0, 255, (4, 2, 8, 9), dtype=np.uint8)
    out = sio.write_image(tmp_path / "zc.tif", data, sio.ImageMeta(axes="ZCYX",
                                                                  spacing=(1.5, 0.2, 0.2)))
    got, meta = sio.read_image(out)
    np.testing.assert_array_equal(got, data)
    assert meta.axes == "ZCYX"
    assert meta.spacing == pytest.approx((1.5, 0.2, 0.2))


def test_tiff_rgb_axes(tmp_path: pathlib.Path, rng: np.random.Generator) -> None:
    data = rng.integers(0, 255, (10, 11, 3), dtype=np.uint8)
    path = tmp_path / "rgb.tif"
    tifffile.imwrite(path, data, photometric="rgb")
    got, meta = sio.read_image(path)
    assert meta.axes == "YXC"
    np.testing.assert_array_equal(got, data)


def test_tiff_multipage_stack_is_zyx(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "pages.tif"
    with tifffile.TiffWriter(path) as w:
        for i in range(3):
            w.write(np.full((6, 7), i, np.uint8))
    got, meta = sio.read_image(path)
    assert got.shape == (3, 6, 7) and meta.axes == "ZYX"
    assert [int(got[i, 0, 0]) for i in range(3)] == [0, 1, 2]


def test_ome_tiff_spacing_and_lazy(tmp_path: pathlib.Path, rng: np.random.Generator) -> None:
    data = rng.integers(0, 1000, (6, 16, 16), dtype=np.uint16)
    path = tmp_path / "stack.ome.tif"
    tifffile.imwrite(path, data, ome=True, compression="zlib", metadata={
        "axes": "ZYX", "PhysicalSizeX": 0.5, "PhysicalSizeY": 0.25, "PhysicalSizeZ": 2.0})
    got, meta = sio.read_image(path)
    np.testing.assert_array_equal(got, data)
    assert meta.axes == "ZYX"
    assert meta.spacing == pytest.approx((2.0, 0.25, 0.5))
    lazy, _ = sio.read_image(path, lazy=True)  # compressed -> zarr view over the file
    assert not isinstance(lazy, np.ndarray)
    np.testing.assert_array_equal(np.asarray(lazy[2:4]), data[2:4])
    # our OME writer keeps spacing too
    out = sio.write_image(tmp_path / "copy.ome.tif", got, meta)
    got2, meta2 = sio.read_image(out)
    np.testing.assert_array_equal(got2, data)
    assert meta2.spacing == pytest.approx((2.0, 0.25, 0.5))


def test_tiff_uncompressed_lazy_is_memmap(tmp_path: pathlib.Path) -> None:
    data = np.arange(3 * 8 * 8, dtype=np.uint16).reshape(3, 8, 8)
    path = tmp_path / "raw.tif"
    tifffile.imwrite(path, data, photometric="minisblack")
    lazy, meta = sio.read_image(path, lazy=True)
    assert isinstance(lazy, np.memmap)
    np.testing.assert_array_equal(lazy, data)


def test_tiff_imagej_spacing(tmp_path: pathlib.Path) -> None:
    data = np.zeros((3, 8, 8), np.uint8)
    path = tmp_path / "ij.tif"
    tifffile.imwrite(path, data, imagej=True, resolution=(1 / 0.4, 1 / 0.4),
                     metadata={"axes": "ZYX", "spacing": 1.2, "unit": "um"})
    _, meta = sio.read_image(path)
    assert meta.spacing == pytest.approx((1.2, 0.4, 0.4))


# ------------------------------------------------------------------------------- NIfTI


def _oblique_affine() -> np.ndarray:
    theta = np.deg2rad(20.0)
    rot = np.array([[np.cos(theta), -np.sin(theta), 0.0],
                    [np.sin(theta), np.cos(theta), 0.0],
                    [0.0, 0.0, 1.0]])
    aff = np.eye(4)
    aff[:3, :3] = rot @ np.diag([0.8, 0.9, 2.5])
    aff[:3, 3] = [-10.0, 5.0, 30.0]
    return aff


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
def test_nifti_roundtrip_orientation(tmp_path: pathlib.Path, rng: np.random.Generator,
                                     suffix: str) -> None:
    raw = rng.integers(0, 5, (7, 9, 11)).astype(np.int16)  # (i, j, k)
    aff = _oblique_affine()
    src = tmp_path / f"src{suffix}"
    nib.save(nib.Nifti1Image(raw, aff), src)

    data, meta = sio.read_image(src)
    assert data.shape == (11, 9, 7) and meta.axes == "ZYX"
    np.testing.assert_array_equal(data, raw.transpose(2, 1, 0))
    assert meta.spacing == pytest.approx((2.5, 0.9, 0.8), rel=1e-6)
    assert meta.source_format == "nifti"

    out = sio.write_image(tmp_path / f"out{suffix}", data, like=meta)
    orig, back = nib.load(src), nib.load(out)
    np.testing.assert_array_equal(back.affine, orig.affine)
    np.testing.assert_array_equal(np.asanyarray(back.dataobj), np.asanyarray(orig.dataobj))
    assert back.get_data_dtype() == orig.get_data_dtype()
    assert back.header.get_zooms() == pytest.approx(orig.header.get_zooms())
    data2, meta2 = sio.read_image(out)
    np.testing.assert_array_equal(data2, data)
    np.testing.assert_array_equal(meta2.affine, meta.affine)


def test_nifti_labels_written_like_float_image(tmp_path: pathlib.Path,
                                               rng: np.random.Generator) -> None:
    img = rng.random((6, 5, 4)).astype(np.float32)
    src = tmp_path / "ct.nii.gz"
    nib.save(nib.Nifti1Image(img, _oblique_affine()), src)
    data, meta = sio.read_image(src)
    labels = (data > 0.5).astype(np.int64) * 3
    out = sio.write_image(tmp_path / "seg.nii.gz", labels, like=meta)
    back, bmeta = sio.read_labels(out)
    np.testing.assert_array_equal(back, labels)
    assert back.dtype.kind in "iu"
    np.testing.assert_array_equal(nib.load(out).affine, nib.load(src).affine)


def test_nifti_2d_squeezed_and_restored(tmp_path: pathlib.Path) -> None:
    raw = np.arange(12, dtype=np.float32).reshape(3, 4, 1)
    src = tmp_path / "flat.nii"
    nib.save(nib.Nifti1Image(raw, np.diag([0.5, 0.7, 3.0, 1.0])), src)
    data, meta = sio.read_image(src)
    assert data.shape == (4, 3) and meta.axes == "YX"
    assert meta.spacing == pytest.approx((0.7, 0.5))
    out = sio.write_image(tmp_path / "flat2.nii", data, like=meta)
    np.testing.assert_array_equal(np.asanyarray(nib.load(out).dataobj), raw)


def test_nifti_4d_small_is_channels(tmp_path: pathlib.Path) -> None:
    raw = np.zeros((5, 6, 7, 2), np.float32)
    raw[1, 2, 3, 1] = 1
    src = tmp_path / "multi.nii.gz"
    nib.save(nib.Nifti1Image(raw, np.eye(4)), src)
    data, meta = sio.read_image(src)
    assert meta.axes == "CZYX" and data.shape == (2, 7, 6, 5)
    assert data[1, 3, 2, 1] == 1
    out = sio.write_image(tmp_path / "multi2.nii.gz", data, like=meta)
    np.testing.assert_array_equal(np.asanyarray(nib.load(out).dataobj), raw)


def test_nifti_lazy_memmap(tmp_path: pathlib.Path) -> None:
    raw = np.arange(60, dtype=np.float32).reshape(3, 4, 5)
    src = tmp_path / "m.nii"
    nib.save(nib.Nifti1Image(raw, np.eye(4)), src)
    data, _ = sio.read_image(src, lazy=True)
    np.testing.assert_array_equal(data, raw.transpose(2, 1, 0))


# ------------------------------------------------------------------------------- PNG & co


def test_png_gray_roundtrip(tmp_path: pathlib.Path, rng: np.random.Generator) -> None:
    for dtype in (np.uint8, np.uint16):
        data = rng.integers(0, np.iinfo(dtype).max, (13, 17), dtype=dtype)
        out = sio.write_image(tmp_path / f"g{dtype.__name__}.png", data)
        got, meta = sio.read_image(out)
        np.testing.assert_array_equal(got, data)
        assert got.dtype == dtype and meta.axes == "YX" and meta.source_format == "png"


def test_png_rgb_and_opaque_alpha(tmp_path: pathlib.Path, rng: np.random.Generator) -> None:
    rgb = rng.integers(0, 255, (9, 10, 3), dtype=np.uint8)
    out = sio.write_image(tmp_path / "rgb.png", rgb, sio.ImageMeta(axes="YXC"))
    got, meta = sio.read_image(out)
    np.testing.assert_array_equal(got, rgb)
    assert meta.axes == "YXC"
    rgba = np.concatenate([rgb, np.full((9, 10, 1), 255, np.uint8)], axis=-1)
    iio.imwrite(tmp_path / "rgba.png", rgba)
    got, meta = sio.read_image(tmp_path / "rgba.png")
    assert got.shape == (9, 10, 3)


def test_png_labels_int64_are_stored(tmp_path: pathlib.Path) -> None:
    labels = np.array([[0, 1], [2, 300]], dtype=np.int64)
    out = sio.write_image(tmp_path / "lab.png", labels)
    got, _ = sio.read_labels(out)
    np.testing.assert_array_equal(got, labels)


def test_png_refuses_float(tmp_path: pathlib.Path) -> None:
    with pytest.raises(UserInputError) as err:
        sio.write_image(tmp_path / "f.png", np.zeros((4, 4), np.float32))
    _one_line(err, "f.png")
    assert not (tmp_path / "f.png").exists()
    assert list(tmp_path.iterdir()) == []  # no temp file left behind


# ------------------------------------------------------------------------------- NPY


def test_npy_roundtrip_and_lazy(tmp_path: pathlib.Path, rng: np.random.Generator) -> None:
    data = rng.random((4, 5, 6)).astype(np.float64)
    out = sio.write_image(tmp_path / "a.npy", data)
    got, meta = sio.read_image(out)
    np.testing.assert_array_equal(got, data)
    assert meta.axes == "ZYX" and meta.spacing is None and meta.source_format == "npy"
    lazy, _ = sio.read_image(out, lazy=True)
    assert isinstance(lazy, np.memmap)
    four = np.zeros((2, 3, 4, 5), np.uint8)
    sio.write_image(tmp_path / "b.npy", four)
    _, meta4 = sio.read_image(tmp_path / "b.npy")
    assert meta4.axes is None


# ------------------------------------------------------------------------------- Zarr


def test_zarr_ome_roundtrip_lazy(tmp_path: pathlib.Path, rng: np.random.Generator) -> None:
    data = rng.integers(0, 60000, (10, 40, 30), dtype=np.uint16)
    meta = sio.ImageMeta(spacing=(3.0, 0.5, 0.5), axes="ZYX")
    out = sio.write_image(tmp_path / "vol.zarr", data, meta)
    assert out.is_dir()
    attrs = dict(zarr.open_group(os.fspath(out), mode="r").attrs)
    ms = attrs["multiscales"][0]
    assert ms["version"] == "0.4"
    assert [a["name"] for a in ms["axes"]] == ["z", "y", "x"]

    lazy, m = sio.read_image(out, lazy=True)
    assert not isinstance(lazy, np.ndarray)
    assert lazy.shape == data.shape
    np.testing.assert_array_equal(np.asarray(lazy[3:5]), data[3:5])
    assert m.axes == "ZYX" and m.spacing == pytest.approx((3.0, 0.5, 0.5))
    eager, _ = sio.read_image(out)
    assert isinstance(eager, np.ndarray)
    np.testing.assert_array_equal(eager, data)

    # overwrite an existing store in place
    sio.write_image(out, data[:2], meta)
    again, _ = sio.read_image(out)
    assert again.shape == (2, 40, 30)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["vol.zarr"]


def test_zarr_channels(tmp_path: pathlib.Path) -> None:
    data = np.zeros((2, 8, 9), np.float32)
    out = sio.write_image(tmp_path / "c.zarr", data, sio.ImageMeta(axes="CYX", spacing=(0.1, 0.2)))
    got, m = sio.read_image(out)
    assert m.axes == "CYX" and m.spacing == pytest.approx((0.1, 0.2))


def test_plain_zarr_array(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "plain.zarr"
    z = zarr.open_array(os.fspath(path), mode="w", shape=(6, 7), dtype="i4", chunks=(3, 3))
    z[...] = np.arange(42).reshape(6, 7)
    got, m = sio.read_image(path)
    np.testing.assert_array_equal(got, np.arange(42).reshape(6, 7))
    assert m.axes == "YX"


def test_zarr_refuses_to_overwrite_non_zarr_folder(tmp_path: pathlib.Path) -> None:
    folder = tmp_path / "mine.zarr"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me")
    with pytest.raises(UserInputError) as err:
        sio.write_image(folder, np.zeros((4, 4), np.uint8))
    _one_line(err, "mine.zarr")
    assert (folder / "notes.txt").exists()


# ------------------------------------------------------------------------------- labels


def test_read_labels_float_integral_ok(tmp_path: pathlib.Path) -> None:
    np.save(tmp_path / "lab.npy", np.array([[0.0, 1.0], [2.0, 3.0]], np.float32))
    got, _ = sio.read_labels(tmp_path / "lab.npy")
    assert got.dtype.kind in "iu"
    np.testing.assert_array_equal(got, [[0, 1], [2, 3]])


def test_read_labels_float_fractional_raises(tmp_path: pathlib.Path) -> None:
    np.save(tmp_path / "prob.npy", np.array([[0.0, 0.5], [1.0, 2.0]], np.float32))
    with pytest.raises(UserInputError) as err:
        sio.read_labels(tmp_path / "prob.npy")
    assert "whole numbers" in _one_line(err, "prob.npy")


def test_read_labels_bool(tmp_path: pathlib.Path) -> None:
    np.save(tmp_path / "mask.npy", np.eye(3, dtype=bool))
    got, _ = sio.read_labels(tmp_path / "mask.npy")
    assert got.dtype == np.uint8


# ------------------------------------------------------------------------------- errors


def test_missing_file(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "nothere.tif"
    with pytest.raises(UserInputError) as err:
        sio.read_image(path)
    assert "file not found" in _one_line(err, "nothere.tif")


def test_folder_instead_of_file(tmp_path: pathlib.Path) -> None:
    (tmp_path / "dir.tif").mkdir()
    with pytest.raises(UserInputError) as err:
        sio.read_image(tmp_path / "dir.tif")
    assert "folder" in _one_line(err, "dir.tif")


def test_truncated_tiff(tmp_path: pathlib.Path, rng: np.random.Generator) -> None:
    good = tmp_path / "good.tif"
    tifffile.imwrite(good, rng.random((4, 32, 32)).astype(np.float32), photometric="minisblack")
    blob = good.read_bytes()
    for cut, name in ((len(blob) // 2, "half.tif"), (100, "head.tif"), (6, "tiny.tif")):
        bad = tmp_path / name
        bad.write_bytes(blob[:cut])
        for lazy in (False, True):
            with pytest.raises(UserInputError) as err:
                sio.read_image(bad, lazy=lazy)
            assert "TIFF" in _one_line(err, name)
            assert err.value.__cause__ is not None or "truncated" in str(err.value)


def test_truncated_compressed_tiff(tmp_path: pathlib.Path, rng: np.random.Generator) -> None:
    good = tmp_path / "z.tif"
    tifffile.imwrite(good, rng.random((4, 64, 64)).astype(np.float32),
                     photometric="minisblack", compression="zlib")
    blob = good.read_bytes()
    bad = tmp_path / "zcut.tif"
    bad.write_bytes(blob[: len(blob) * 2 // 3])
    for lazy in (False, True):
        with pytest.raises(UserInputError) as err:
            sio.read_image(bad, lazy=lazy)
        _one_line(err, "zcut.tif")


def test_truncated_nifti_gz(tmp_path: pathlib.Path, rng: np.random.Generator) -> None:
    good = tmp_path / "good.nii.gz"
    nib.save(nib.Nifti1Image(rng.random((10, 12, 14)).astype(np.float32), np.eye(4)), good)
    blob = good.read_bytes()
    for cut, name in ((len(blob) // 2, "half.nii.gz"), (200, "head.nii.gz")):
        bad = tmp_path / name
        bad.write_bytes(blob[:cut])
        with pytest.raises(UserInputError) as err:
            sio.read_image(bad)
        assert "NIfTI" in _one_line(err, name)
        assert err.value.__cause__ is not None


def test_corrupt_zarr(tmp_path: pathlib.Path) -> None:
    out = sio.write_image(tmp_path / "broken.zarr", np.zeros((8, 8), np.uint8))
    meta_files = [p for p in (out / "0").iterdir() if p.name in (".zarray", "zarr.json")]
    assert meta_files
    for p in meta_files:
        p.unlink()
    with pytest.raises(UserInputError) as err:
        sio.read_image(out)
    _one_line(err, "broken.zarr")
    # no group metadata at all
    for p in list(out.iterdir()):
        if p.is_file():
            p.unlink()
    with pytest.raises(UserInputError) as err:
        sio.read_image(out)
    assert "Zarr" in _one_line(err, "broken.zarr")


def test_zarr_path_is_a_file(tmp_path: pathlib.Path) -> None:
    (tmp_path / "f.zarr").write_bytes(b"abc")
    with pytest.raises(UserInputError) as err:
        sio.read_image(tmp_path / "f.zarr")
    _one_line(err, "f.zarr")


def test_unknown_extension(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "image.czi"
    path.write_bytes(b"x" * 10)
    with pytest.raises(UserInputError) as err:
        sio.read_image(path)
    assert ".tif" in _one_line(err, "image.czi")
    with pytest.raises(UserInputError):
        sio.write_image(tmp_path / "out.czi", np.zeros((2, 2)))


def test_png_content_named_tif(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "x.tif"
    iio.imwrite(path, np.zeros((4, 4), np.uint8), extension=".png")
    with pytest.raises(UserInputError) as err:
        sio.read_image(path)
    msg = _one_line(err, "x.tif")
    assert "not a TIFF" in msg and "PNG" in msg


def test_empty_and_garbage_files(tmp_path: pathlib.Path) -> None:
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(UserInputError) as err:
        sio.read_image(tmp_path / "empty.png")
    assert "empty" in _one_line(err, "empty.png")
    (tmp_path / "junk.npy").write_bytes(b"hello world, not numpy")
    with pytest.raises(UserInputError) as err:
        sio.read_image(tmp_path / "junk.npy")
    _one_line(err, "junk.npy")
    (tmp_path / "plain.nii.gz").write_bytes(open(os.devnull, "rb").read() + b"\x00" * 400)
    with pytest.raises(UserInputError) as err:
        sio.read_image(tmp_path / "plain.nii.gz")
    _one_line(err, "plain.nii.gz")


# ------------------------------------------------------------------------------- describe


def test_describe_keys(tmp_path: pathlib.Path) -> None:
    data = np.arange(2 * 3 * 8 * 8, dtype=np.uint16).reshape(2, 3, 8, 8)
    out = sio.write_image(tmp_path / "d.zarr", data, sio.ImageMeta(axes="CZYX",
                                                                  spacing=(2.0, 1.0, 1.0)))
    info = sio.describe(out)
    for key in ("path", "format", "shape", "dtype", "axes", "spacing", "min", "max",
                "spatial_dims", "channels", "segstudio_sees"):
        assert key in info
    assert info["format"] == "zarr" and info["shape"] == (2, 3, 8, 8)
    assert info["dtype"] == "uint16" and info["axes"] == "CZYX"
    assert info["min"] == 0 and info["max"] == data.max() and info["min_max_exact"]
    assert info["spatial_dims"] == 3 and info["channels"] == 2
    assert "3D" in info["segstudio_sees"]

    png = sio.write_image(tmp_path / "g.png", np.full((5, 6), 7, np.uint8))
    info = sio.describe(png)
    assert info["spatial_dims"] == 2 and info["channels"] is None
    assert info["min"] == 7 == info["max"]


def test_describe_sampled_minmax(tmp_path: pathlib.Path) -> None:
    data = np.zeros((64, 32, 32), np.uint8)
    data[10, 1, 1] = 9
    np.save(tmp_path / "big.npy", data)
    lazy, _ = sio.read_image(tmp_path / "big.npy", lazy=True)
    lo, hi, exact = sio._minmax(lazy, budget_bytes=10_000)
    assert not exact and lo == 0 and hi <= 9
    lo, hi, exact = sio._minmax(lazy)
    assert exact and hi == 9


def test_spatial_layout() -> None:
    assert sio.spatial_layout((10, 20), "YX") == (2, None)
    assert sio.spatial_layout((10, 20, 3), "YXC") == (2, 3)
    assert sio.spatial_layout((4, 2, 10, 20), "ZCYX") == (3, 2)
    assert sio.spatial_layout((5, 10, 20), None) == (3, None)
    assert sio.spatial_layout((1, 2, 3, 4, 5), None) == (None, None)


def test_write_uses_like_spacing_for_labels(tmp_path: pathlib.Path) -> None:
    img_meta = sio.ImageMeta(spacing=(2.0, 0.5, 0.5), axes="CZYX", source_format="tiff")
    labels = np.zeros((3, 4, 5), np.uint16)
    out = sio.write_image(tmp_path / "lab.tif", labels, like=img_meta)
    _, m = sio.read_image(out)
    assert m.axes == "ZYX" and m.spacing == pytest.approx((2.0, 0.5, 0.5))


def test_write_returns_path_and_is_atomic(tmp_path: pathlib.Path) -> None:
    out = sio.write_image(str(tmp_path / "a.tif"), np.zeros((3, 3), np.uint8))
    assert isinstance(out, pathlib.Path) and out.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["a.tif"]
    shutil.rmtree(tmp_path / "a.tif", ignore_errors=True)


def test_tiff_without_spacing_reports_none(tmp_path: pathlib.Path) -> None:
    for dtype in (np.uint8, np.float64):
        out = sio.write_image(tmp_path / "nospace.tif", np.zeros((3, 4, 5), dtype))
        assert sio.read_image(out)[1].spacing is None


def test_read_ome_zarr_v05(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "v05.zarr"
    group = zarr.open_group(os.fspath(path), mode="w", zarr_format=3)
    arr = group.create_array("s0", shape=(4, 5), dtype="u1")
    arr[...] = 7
    group.attrs["ome"] = {"version": "0.5", "multiscales": [{
        "axes": [{"name": "y", "type": "space"}, {"name": "x", "type": "space"}],
        "datasets": [{"path": "s0", "coordinateTransformations": [
            {"type": "scale", "scale": [0.3, 0.4]}]}]}]}
    data, meta = sio.read_image(path)
    assert meta.axes == "YX" and meta.spacing == pytest.approx((0.3, 0.4))
    assert int(data.max()) == 7
