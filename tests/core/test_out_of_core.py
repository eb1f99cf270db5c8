"""Out-of-core prediction: lazy inputs read by bands, outputs written by bands, same result."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
import torch

from segstudio.cli import main
from segstudio.core.config import TrainConfig
from segstudio.core.data import image_stats
from segstudio.core.io import read_image, write_image
from segstudio.core.outofcore import (
    NormalizedView,
    Written,
    iter_predict_to_file,
    open_output,
    strided_stats,
)
from segstudio.core.predictor import PredictProgress, Predictor
from segstudio.core.run import model_from_config, save_run


def _predictor(mode: str = "exclusive", patch=(8, 24, 24), n: int = 3, channels: int = 1) -> Predictor:
    torch.manual_seed(0)
    cfg = TrainConfig(mode=mode, n_classes=n, spatial_dims=len(patch), in_channels=channels,
                      features=(4, 8), patch_size=patch)
    return Predictor(model_from_config(cfg), cfg, device="cpu")


def _volume(shape=(30, 40, 50), seed=0) -> np.ndarray:
    return (np.random.default_rng(seed).random(shape) * 4000).astype(np.uint16)


class RecordingArray:
    """A lazy array that records the size of every read (stands in for a zarr array)."""

    def __init__(self, data: np.ndarray) -> None:
        self.data, self.shape, self.dtype, self.reads = data, data.shape, data.dtype, []

    def __getitem__(self, key):
        block = self.data[key]
        self.reads.append(block.size)
        return block


@pytest.mark.parametrize(("src_ext", "out_ext"), [(".zarr", ".zarr"), (".tif", ".tif"), (".zarr", ".npy")])
def test_out_of_core_equals_in_memory(tmp_path, src_ext, out_ext):
    img = _volume()
    write_image(tmp_path / f"in{src_ext}", img)
    lazy, meta = read_image(tmp_path / f"in{src_ext}", lazy=True)
    assert not isinstance(lazy, np.ndarray) or isinstance(lazy, np.memmap)
    p = _predictor()
    stats = image_stats(img)
    ref = p.predict(img, stats=stats, probabilities=True)
    events = list(iter_predict_to_file(p, lazy, tmp_path / f"out{out_ext}", stats=stats, axes=meta.axes,
                                       probabilities_path=tmp_path / f"prob{out_ext}"))
    assert isinstance(events[-1], Written)
    assert any(isinstance(e, PredictProgress) for e in events)
    labels, lmeta = read_image(events[-1].labels)
    probs, _ = read_image(events[-1].probabilities)
    np.testing.assert_array_equal(labels, ref.labels)
    np.testing.assert_allclose(probs, ref.probabilities, atol=1e-6)
    assert sorted(x.name for x in tmp_path.iterdir()) == sorted(
        ["in" + src_ext, "out" + out_ext, "prob" + out_ext])  # no temporary files left


def test_multilabel_multichannel_2d_out_of_core(tmp_path):
    img = np.random.default_rng(1).random((2, 70, 45)).astype(np.float32)
    p = _predictor("multilabel", patch=(32, 32), n=2, channels=2)
    ref = p.predict(img, channel_axis=0)
    ev = list(iter_predict_to_file(p, RecordingArray(img), tmp_path / "ml.zarr", channel_axis=0,
                                   stats=image_stats(img, 0)))[-1]
    labels, meta = read_image(ev.labels)
    assert meta.axes == "CYX"
    np.testing.assert_array_equal(labels, ref.labels)


def test_reads_are_bounded_by_one_band():
    """The input is read a band (one tile height) at a time, never whole."""
    img = _volume((64, 40, 40))
    lazy = RecordingArray(img)
    p = _predictor(patch=(8, 24, 24))
    result = p.predict(lazy, stats=image_stats(img))
    assert result.labels.shape == img.shape
    assert max(lazy.reads) <= 8 * 40 * 40
    assert sum(lazy.reads) < 3 * img.size  # each row read about twice (overlap 0.5)


def test_strided_stats_match_exact_stats_when_small_and_close_when_sampled():
    img = _volume((20, 30, 30)).astype(np.float32)
    small = strided_stats(RecordingArray(img))
    exact = image_stats(img)
    np.testing.assert_allclose(small.lo, exact.lo)
    np.testing.assert_allclose(small.hi, exact.hi)
    lazy = RecordingArray(img)
    sampled = strided_stats(lazy, max_samples=2000)
    assert sampled.lo[0] == pytest.approx(exact.lo[0], abs=100) and sampled.hi[0] == pytest.approx(exact.hi[0], abs=100)
    assert sum(lazy.reads) < img.size / 4  # strided: it did not read everything


def test_normalized_view_matches_normalize_with_a_channel_axis_last():
    from segstudio.core.data import normalize

    img = np.random.default_rng(2).random((12, 9, 3)).astype(np.float32)
    stats = image_stats(img, 2)
    view = NormalizedView(img, 2, stats, region=(slice(2, 10), slice(1, 9)))
    assert view.shape == (3, 8, 8)
    np.testing.assert_allclose(view[(slice(None), slice(1, 4))], normalize(img, stats, 2)[:, 3:6, 1:9])


def test_cancel_leaves_no_output(tmp_path):
    img = _volume((40, 40, 40))
    gen = iter_predict_to_file(_predictor(), img, tmp_path / "out.zarr", stats=image_stats(img))
    assert isinstance(next(gen), PredictProgress)
    gen.close()
    assert list(tmp_path.iterdir()) == []


def test_rows_must_come_in_order(tmp_path):
    out = open_output(tmp_path / "o.zarr", (100, 10, 10), np.uint8)
    out[(slice(0, 10),)] = np.ones((10, 10, 10), np.uint8)
    with pytest.raises(ValueError, match="in order"):
        out[(slice(30, 40),)] = np.ones((10, 10, 10), np.uint8)
    out.abort()
    assert list(tmp_path.iterdir()) == []


def test_tiff_output_keeps_spacing(tmp_path):
    img = _volume((20, 30, 30))
    tifffile.imwrite(tmp_path / "in.tif", img)
    ev = list(iter_predict_to_file(_predictor(), read_image(tmp_path / "in.tif", lazy=True)[0],
                                   tmp_path / "out.tif", axes="ZYX", spacing=(2.0, 0.5, 0.5)))[-1]
    _, meta = read_image(ev.labels)
    assert meta.spacing == pytest.approx((2.0, 0.5, 0.5))


def test_cli_predict_out_of_core_equals_in_memory(tmp_path):
    p = _predictor(patch=(8, 24, 24), n=2)
    save_run(tmp_path / "run", p.config, p.model)
    img = _volume((20, 30, 30))
    write_image(tmp_path / "vol.zarr", img)
    assert main(["predict", "--model", str(tmp_path / "run"), "--image", str(tmp_path / "vol.zarr"),
                 "--out", str(tmp_path / "a.zarr"), "--out-of-core", "always", "--device", "cpu"]) == 0
    assert main(["predict", "--model", str(tmp_path / "run"), "--image", str(tmp_path / "vol.zarr"),
                 "--out", str(tmp_path / "b.tif"), "--out-of-core", "never", "--device", "cpu"]) == 0
    np.testing.assert_array_equal(read_image(tmp_path / "a.zarr")[0], read_image(tmp_path / "b.tif")[0])
    assert main(["predict", "--model", str(tmp_path / "run"), "--image", str(tmp_path / "vol.zarr"),
                 "--out", str(tmp_path / "c.nii.gz"), "--out-of-core", "always"]) == 2
