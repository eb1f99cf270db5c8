"""Out-of-core prediction: lazy inputs read by tiles, outputs written by bands, checked
against independent references: one forward pass of the whole image, and a NumPy
re-implementation of the tile stitching."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import tifffile
import torch

from segstudio.cli import main
from segstudio.core.config import TrainConfig
from segstudio.core.data import image_stats, normalize
from segstudio.core.errors import UserInputError
from segstudio.core.io import read_image, write_image
from segstudio.core.lazy import NormalizedView, strided_stats
from segstudio.core.outofcore import Written, iter_predict_to_file, open_output
from segstudio.core.predictor import PredictProgress, Predictor, network_step, plan_for
from segstudio.core.run import model_from_config, save_run


def _predictor(mode: str = "exclusive", patch=(8, 24, 24), n: int = 3, channels: int = 1, **kw) -> Predictor:
    torch.manual_seed(0)
    cfg = TrainConfig(mode=mode, n_classes=n, spatial_dims=len(patch), in_channels=channels,
                      features=(4, 8), patch_size=patch, **kw)
    return Predictor(model_from_config(cfg), cfg, device="cpu")


def _volume(shape=(30, 40, 50), seed=0) -> np.ndarray:
    return (np.random.default_rng(seed).random(shape) * 4000).astype(np.uint16)


def _padded(x: np.ndarray, size) -> np.ndarray:
    return np.pad(x, [(0, 0)] + [(0, s - n) for s, n in zip(size, x.shape[1:])], mode="reflect")


def _activate(logits: np.ndarray, multilabel: bool) -> np.ndarray:
    if multilabel:
        return 1.0 / (1.0 + np.exp(-logits))
    e = np.exp(logits - logits.max(axis=0, keepdims=True))
    return e / e.sum(axis=0, keepdims=True)


def forward_reference(p: Predictor, x: np.ndarray) -> np.ndarray:
    """Probabilities from ONE forward pass over the whole normalised image ``x`` (padded at
    the far end by numpy's mirror reflection to a size the network takes)."""
    step = network_step(p.config)
    size = [max(-(-n // d) * d, 2 * d if d > 1 else 2) for n, d in zip(x.shape[1:], step)]
    with torch.no_grad():
        logits = p.model(torch.from_numpy(_padded(x, size))[None].float())[0].numpy()
    return _activate(logits, p.config.mode == "multilabel")[(slice(None), *(slice(0, n) for n in x.shape[1:]))]


def stitched_reference(p: Predictor, x: np.ndarray, tile) -> np.ndarray:
    """Probabilities from the tiles of the plan, stitched in NumPy: every voxel comes from the
    tile whose centre is nearest (ties: the later tile). Independent of the band engine, and
    valid for any network, also one whose output depends on the tile (InstanceNorm)."""
    plan = plan_for(p.config, x.shape[1:], p.device, tile=tile)
    xp = _padded(x, plan.padded)
    owners = []
    for starts, t, size in zip(plan.starts, plan.tile, plan.padded):
        dist = np.abs(np.arange(size)[:, None] + 0.5 - (np.asarray(starts) + t / 2)[None])
        owners.append(len(starts) - 1 - np.argmin(dist[:, ::-1], axis=1))
    out = np.zeros((p.config.n_classes, *plan.padded), np.float32)
    for ix in itertools.product(*(range(len(s)) for s in plan.starts)):
        box = tuple(slice(s[i], s[i] + t) for s, i, t in zip(plan.starts, ix, plan.tile))
        with torch.no_grad():
            logits = p.model(torch.from_numpy(np.ascontiguousarray(xp[(slice(None), *box)]))[None])[0].numpy()
        mine = np.ix_(*(o[b] == i for o, b, i in zip(owners, box, ix)))
        region = out[(slice(None), *box)]
        region[(slice(None), *mine)] = _activate(logits, p.config.mode == "multilabel")[(slice(None), *mine)]
    return out[(slice(None), *(slice(0, n) for n in x.shape[1:]))]


class RecordingArray:
    """A lazy array that records the size of every read (stands in for a zarr array)."""

    def __init__(self, data: np.ndarray) -> None:
        self.data, self.shape, self.dtype, self.reads = data, data.shape, data.dtype, []

    def __getitem__(self, key):
        block = self.data[key]
        self.reads.append(block.size)
        return block


@pytest.mark.parametrize(("src_ext", "out_ext"), [(".zarr", ".zarr"), (".tif", ".tif"), (".zarr", ".npy")])
def test_out_of_core_equals_one_forward_pass(tmp_path, src_ext, out_ext):
    """A volume of several bands and tiles, read lazily and written band by band, gives what
    one forward pass over the whole volume gives."""
    img = _volume((44, 40, 46))
    write_image(tmp_path / f"in{src_ext}", img)
    lazy, meta = read_image(tmp_path / f"in{src_ext}", lazy=True)
    assert not isinstance(lazy, np.ndarray) or isinstance(lazy, np.memmap)
    p = _predictor(input_filters=())
    stats = image_stats(img)
    tile = (32, 32, 32)
    plan = plan_for(p.config, img.shape, p.device, tile=tile)
    assert len(plan.starts[0]) == 2 and plan.n_tiles == 8  # two bands of four tiles
    events = list(iter_predict_to_file(p, lazy, tmp_path / f"out{out_ext}", stats=stats, axes=meta.axes,
                                       probabilities_path=tmp_path / f"prob{out_ext}", tile=tile))
    assert isinstance(events[-1], Written)
    assert any(isinstance(e, PredictProgress) for e in events)
    labels, _ = read_image(events[-1].labels)
    probs, _ = read_image(events[-1].probabilities)
    ref = forward_reference(p, normalize(img, stats))
    np.testing.assert_allclose(probs, ref, atol=1e-5)
    np.testing.assert_array_equal(labels, ref.argmax(0) + 1)
    assert sorted(x.name for x in tmp_path.iterdir()) == sorted(
        ["in" + src_ext, "out" + out_ext, "prob" + out_ext])  # no temporary files left


@pytest.mark.parametrize("norm", ["instance", "batch"])
def test_out_of_core_equals_numpy_stitching_of_the_tiles(tmp_path, norm):
    """With InstanceNorm each tile normalises itself, so the result depends on the tiles: the
    band engine must take every voxel from the right tile."""
    img = _volume((38, 45, 21), seed=3)
    p = _predictor(norm=norm, input_filters=())
    stats = image_stats(img)
    tile = (32, 32, 21)
    ev = list(iter_predict_to_file(p, RecordingArray(img), tmp_path / "l.zarr", stats=stats, tile=tile,
                                   probabilities_path=tmp_path / "p.zarr"))[-1]
    probs, _ = read_image(ev.probabilities)
    x = normalize(img, stats)
    ref = stitched_reference(p, x, tile)
    np.testing.assert_allclose(probs, ref, atol=1e-5)
    np.testing.assert_array_equal(read_image(ev.labels)[0], ref.argmax(0) + 1)
    one_tile = forward_reference(p, x)
    if norm == "instance":  # the tiles matter, so the check above could fail
        assert np.abs(one_tile - ref).max() > 1e-3
    else:  # and without per-tile statistics stitching is exact
        np.testing.assert_allclose(one_tile, ref, atol=1e-5)


def test_multilabel_multichannel_2d_out_of_core(tmp_path):
    img = np.random.default_rng(1).random((2, 70, 45)).astype(np.float32)
    p = _predictor("multilabel", patch=(32, 32), n=2, channels=2)
    stats = image_stats(img, 0)
    ev = list(iter_predict_to_file(p, RecordingArray(img), tmp_path / "ml.zarr", channel_axis=0, stats=stats,
                                   tile=(32, 32)))[-1]
    labels, meta = read_image(ev.labels)
    assert meta.axes == "CYX"
    ref = forward_reference(p, normalize(img, stats, 0))
    np.testing.assert_array_equal(labels, (ref > 0.5).astype(np.uint8))


def test_reads_are_bounded_by_one_tile():
    """The input is read a tile at a time, never whole."""
    img = _volume((96, 40, 40))
    lazy = RecordingArray(img)
    p = _predictor(patch=(8, 24, 24), input_filters=())
    tile = (32, 40, 40)
    result = p.predict(lazy, stats=image_stats(img), tile=tile)
    assert result.labels.shape == img.shape
    assert max(lazy.reads) <= np.prod(tile)
    margin = plan_for(p.config, img.shape, p.device, tile=tile).margin[0]
    assert sum(lazy.reads) <= img.size * 32 / (32 - 2 * margin) + np.prod(tile)  # only the margins twice


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


def test_an_existing_folder_that_is_not_zarr_is_refused_before_predicting(tmp_path):
    """outofcore used to move aside and delete any folder named *.zarr."""
    folder = tmp_path / "out.zarr"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    img = _volume((10, 20, 20))
    gen = iter_predict_to_file(_predictor(), img, folder, stats=image_stats(img))
    with pytest.raises(UserInputError, match="not a Zarr store; not overwriting it"):
        next(gen)
    assert (folder / "notes.txt").read_text() == "mine"
    assert sorted(x.name for x in tmp_path.iterdir()) == ["out.zarr"]
    (tmp_path / "file.zarr").write_text("a file")
    with pytest.raises(UserInputError, match="a file with this name exists"):
        open_output(tmp_path / "file.zarr", (4, 4), np.uint8)
    assert (tmp_path / "file.zarr").read_text() == "a file"


def test_an_existing_zarr_output_is_replaced_once_the_new_one_is_complete(tmp_path):
    img = _volume((10, 20, 20))
    write_image(tmp_path / "out.zarr", np.full((10, 20, 20), 7, np.uint8))
    p = _predictor()
    gen = iter_predict_to_file(p, img, tmp_path / "out.zarr", stats=image_stats(img), tile=(10, 20, 20))
    assert isinstance(next(gen), PredictProgress)
    np.testing.assert_array_equal(read_image(tmp_path / "out.zarr")[0], 7)  # the old one, still whole
    ev = list(gen)[-1]
    assert isinstance(ev, Written)
    assert set(np.unique(read_image(tmp_path / "out.zarr")[0])) <= {1, 2, 3}
    assert sorted(x.name for x in tmp_path.iterdir()) == ["out.zarr"]
