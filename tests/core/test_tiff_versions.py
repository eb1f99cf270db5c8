"""TIFF files read alike with every tifffile the project allows.

tifffile 2026.9 dropped ``TiffPageSeries.get_axes``/``get_shape`` (segstudio read no TIFF with
it: found by the GPU check, whose machine had that release). Each layout is read as installed
and through the reader's own squeezing of ``axes``/``shape`` (what it does where tifffile lacks
those methods); the expected shapes and axes are written out, so the test also runs, and means
the same, where tifffile lacks them.
Needs only tifffile (no zarr, no nibabel), so ``benchmarks/gpu_check.sh`` can run it on a bare
machine with whatever tifffile that machine has.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from segstudio.core import io as sio

tifffile = pytest.importorskip("tifffile")

#: name -> (writer arguments, expected shape, expected axes)
LAYOUTS = {
    "plain 2-D": (((64, 48), np.float32, {}), (64, 48), "YX"),
    "leading length-1 axis": (((1, 64, 48), np.uint16, {}), (64, 48), "YX"),
    "stack": (((5, 64, 48), np.uint16, {}), (5, 64, 48), "ZYX"),
    "ImageJ, one channel": (((5, 1, 64, 48), np.uint16, {"imagej": True, "metadata": {"axes": "ZCYX"}}),
                            (5, 64, 48), "ZYX"),
    "ImageJ, two channels": (((5, 2, 64, 48), np.uint16, {"imagej": True, "metadata": {"axes": "ZCYX"}}),
                             (5, 2, 64, 48), "ZCYX"),
    "RGB": (((64, 48, 3), np.uint8, {"photometric": "rgb"}), (64, 48, 3), "YXC"),
    "OME, two channels": (((4, 2, 32, 24), np.uint16, {"ome": True, "metadata": {"axes": "ZCYX"}}),
                          (4, 2, 32, 24), "ZCYX"),
    "OME, one time point": (((1, 4, 32, 24), np.uint16, {"ome": True, "metadata": {"axes": "TZYX"}}),
                            (4, 32, 24), "ZYX"),
    "compressed stack": (((6, 40, 30), np.uint16, {"compression": "zlib"}), (6, 40, 30), "ZYX"),
}


def _own_squeezing(series):
    return sio._without_length_one(str(series.axes), tuple(series.shape))


@pytest.mark.parametrize("hidden", [False, True], ids=["as installed", "without get_axes"])
@pytest.mark.parametrize("lazy", [False, True], ids=["in memory", "lazy"])
@pytest.mark.parametrize("name", list(LAYOUTS))
def test_every_layout_reads_with_and_without_get_axes(name, lazy, hidden, tmp_path, monkeypatch):
    (shape, dtype, kwargs), want_shape, want_axes = LAYOUTS[name]
    if lazy and kwargs.get("compression") and importlib.util.find_spec("zarr") is None:
        pytest.skip("a compressed TIFF is read lazily through zarr")
    rng = np.random.default_rng(0)
    data = (rng.random(shape) * 200).astype(dtype)
    path = tmp_path / "image.tif"
    tifffile.imwrite(path, data, **kwargs)
    if hidden:
        monkeypatch.setattr(sio, "_squeezed_axes_shape", _own_squeezing)
    got, meta = sio.read_image(path, lazy=lazy)
    assert got.shape == want_shape and meta.axes == want_axes
    np.testing.assert_array_equal(np.asarray(got), data.reshape(want_shape))


def test_a_truncated_file_is_still_caught_without_get_axes(tmp_path, monkeypatch):
    """The completeness check reads the squeezed shape too."""
    path = tmp_path / "cut.tif"
    tifffile.imwrite(path, np.ones((8, 64, 64), np.uint16))
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    monkeypatch.setattr(sio, "_squeezed_axes_shape", _own_squeezing)
    with pytest.raises(sio.UserInputError, match="not a valid TIFF file"):
        sio.read_image(path)
