"""*Downsample*: the network works on the image shrunk by block means and its logits come back
at full size by linear interpolation, inside the model (``TrainConfig.downsample``).

The tiled prediction's exactness and the receptive field with a shrink are checked in
``test_predictor.py``; every export format on a grid of shapes in ``test_export.py``.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from segstudio.core.config import MAX_DOWNSAMPLE, TrainConfig, reduction_factors
from segstudio.core.data import SnapshotSource, TrainingImage
from segstudio.core.errors import UserInputError
from segstudio.core.features import FilterBank, FilteredNetwork, enlarge, image_regions, shrink
from segstudio.core.models import UNet
from segstudio.core.predictor import Predictor
from segstudio.core.run import model_from_config
from segstudio.core.samples import simulate_strokes, synthetic_nuclei
from segstudio.core.trainer import Failed, Finished, Trainer, infer_config, train


@pytest.mark.parametrize(("downsample", "dims", "spacing", "factors"), [
    (1, 2, None, (1, 1)),
    (3, 2, None, (3, 3)),
    (2, 3, None, (2, 2, 2)),
    (2, 3, (2.0, 0.5, 0.5), (1, 2, 2)),   # z already coarser than the shrunk voxel
    (4, 3, (2.0, 0.5, 0.5), (1, 4, 4)),   # now as coarse: left alone
    (8, 3, (2.0, 0.5, 0.5), (2, 8, 8)),   # finer than 8 × 0.5: shrunk to match
    (3, 3, (1.0, 0.4, 0.4), (1, 3, 3)),
    (2, 2, (1.0, 1.0), (2, 2)),
])
def test_reduction_factors_bring_the_shrunk_voxels_towards_a_cube(downsample, dims, spacing, factors):
    assert reduction_factors(downsample, dims, spacing) == factors


def test_a_config_knows_the_networks_spacing_and_the_patch_cut_at_full_size():
    cfg = TrainConfig(spatial_dims=3, spacing=(2.0, 0.5, 0.5), patch_size=(8, 32, 32), downsample=2)
    assert cfg.reduction == (1, 2, 2)
    assert cfg.network_spacing == (2.0, 1.0, 1.0)
    assert cfg.sample_patch == (8, 64, 64)
    plain = TrainConfig(spatial_dims=2)
    assert plain.reduction == (1, 1) and plain.network_spacing is None and plain.sample_patch == plain.patch
    assert TrainConfig(spatial_dims=2, downsample=np.int64(3)).downsample == 3


@pytest.mark.parametrize("value", [0, -1, MAX_DOWNSAMPLE + 1, 1.5, True, "2", None])
def test_a_downsample_that_is_not_a_whole_number_in_range_is_one_clear_error(value):
    with pytest.raises(UserInputError, match="downsample must be a whole number from 1 to"):
        TrainConfig(downsample=value)


def test_runs_written_before_downsample_load_without_it():
    data = TrainConfig(downsample=3).to_dict()
    assert TrainConfig.from_dict(json.loads(json.dumps(data))).downsample == 3
    del data["downsample"]
    assert TrainConfig.from_dict(data).downsample == 1


def _blocks(x: np.ndarray, f: tuple[int, ...]) -> np.ndarray:
    """Block means over ``x`` (``(C, *spatial)``), replicating the last voxels to whole blocks."""
    pad = [(0, 0)] + [(0, (-n) % k) for n, k in zip(x.shape[1:], f)]
    x = np.pad(x, pad, mode="edge")
    shape = [x.shape[0]]
    for n, k in zip(x.shape[1:], f):
        shape += [n // k, k]
    return x.reshape(shape).mean(axis=tuple(range(2, 2 + 2 * len(f), 2)))


def _linear_1d(a: np.ndarray, f: int, n: int, axis: int) -> np.ndarray:
    """``a`` enlarged ``f``× along ``axis`` by linear interpolation between block centres
    (output voxel i sits at (i + 0.5) / f - 0.5 in block units, clamped to the end blocks),
    the first ``n`` voxels."""
    m = a.shape[axis]
    pos = np.clip((np.arange(n) + 0.5) / f - 0.5, 0, m - 1)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, m - 1)
    w = (pos - lo).reshape([-1 if d == axis else 1 for d in range(a.ndim)])
    return np.take(a, lo, axis=axis) * (1 - w) + np.take(a, hi, axis=axis) * w


@pytest.mark.parametrize(("shape", "factors"), [((37, 50), (2, 2)), ((19, 23), (3, 3)), ((5, 22, 17), (1, 2, 2)),
                                                ((7, 9, 12), (2, 3, 3))])
def test_shrink_is_block_means_and_enlarge_is_linear_between_block_centres(shape, factors):
    rng = np.random.default_rng(0)
    x = rng.random((2, *shape)).astype(np.float32)
    small = shrink(torch.from_numpy(x)[None], factors)[0].numpy()
    np.testing.assert_allclose(small, _blocks(x, factors), atol=1e-6)
    big = enlarge(torch.from_numpy(small)[None], factors, shape)[0].numpy()
    ref = small.astype(np.float64)
    for axis, (f, n) in enumerate(zip(factors, shape)):
        ref = _linear_1d(ref, f, n, axis + 1) if f > 1 else ref[(slice(None),) * (axis + 1) + (slice(0, n),)]
    assert big.shape == x.shape
    np.testing.assert_allclose(big, ref, atol=1e-5)
    whole = torch.from_numpy(x)[None]
    ones = (1,) * len(shape)
    assert shrink(whole, ones) is whole and enlarge(whole, ones, shape) is whole


def test_without_downsample_the_model_is_what_it_was():
    """Factor 1 adds nothing: the bare U-Net where nothing else wraps it, and the same forward
    pass as a filtered network built without a reduction."""
    assert isinstance(model_from_config(TrainConfig(input_filters=())), UNet)
    torch.manual_seed(0)
    model = model_from_config(TrainConfig(features=(4, 8))).eval()
    assert isinstance(model, FilteredNetwork) and model.reduction == (1, 1)
    bare = FilteredNetwork(model.filters, model.net, 1).eval()
    x = torch.rand(1, 1, 40, 36)
    with torch.no_grad():
        torch.testing.assert_close(model(x), bare(x), rtol=0, atol=0)
    shrunk = model_from_config(TrainConfig(features=(4, 8), input_filters=(), downsample=2))
    assert isinstance(shrunk, FilteredNetwork) and shrunk.divisor == (4, 4)


def test_the_network_sees_the_shrunk_image_and_answers_at_full_size():
    torch.manual_seed(0)
    model = model_from_config(TrainConfig(features=(4, 8), downsample=3)).eval()
    seen = []
    model.net.register_forward_hook(lambda m, i, o: seen.append(i[0].shape))
    x = torch.rand(2, 1, 61, 50)
    assert model(x).shape == (2, 2, 61, 50)
    assert seen[0][2:] == (21, 17)


def test_region_channels_with_a_shrink_are_those_of_the_shrunk_image_over_each_block():
    rng = np.random.default_rng(3)
    img = rng.random((1, 20, 45, 38)).astype(np.float32)
    factors = (1, 2, 2)
    bank = FilterBank(3, (1.0,), (2.0, 1.0, 1.0), context=(4.0,))
    small = torch.from_numpy(_blocks(img, factors).astype(np.float32))[None]
    ref = bank.region_channels(small)[0].numpy().repeat(2, axis=2).repeat(2, axis=3)[:, :, :45, :38]
    got = image_regions(bank, img, reduction=factors)
    assert got.shape == (3, 20, 45, 38)
    np.testing.assert_allclose(got, ref, atol=2e-6)


def _large_nuclei():
    s = synthetic_nuclei((160, 160), seed=2, radius_range=(18.0, 26.0), n_nuclei=6, paint=False)
    paint = simulate_strokes(s.truth, n_objects=4, n_background_strokes=6, seed=1, stroke_width=2,
                             min_interior_pixels=6)
    return s.image, s.truth > 1, np.where(paint >= 2, 2, paint).astype(np.uint8)


def test_a_shrunk_run_learns_large_objects_and_predicts_them_at_full_size():
    """Trained on the full-size paint with the image shrunk by 2: the patch is cut twice the
    network's patch, and a fixed number of steps beats a Dice floor (measured 0.96) and a
    constant prediction."""
    torch.manual_seed(0)
    image, fg, paint = _large_nuclei()
    cfg = infer_config(image.shape, paint, "exclusive", n_classes=2, iterations=60, device="cpu", seed=0,
                       amp=False, patch_size=(32, 32), batch_size=4, checkpoint_every_s=1e9, num_threads=1,
                       downsample=2)
    src = SnapshotSource()
    src.put([TrainingImage(image, paint)])
    trainer = Trainer(cfg, src, None)
    for ev in trainer.run():
        assert not isinstance(ev, Failed), ev.message
    assert trainer.sampler.patch == (64, 64)
    labels = Predictor(trainer.model, trainer.config, device="cpu").predict(image).labels
    assert labels.shape == image.shape
    pred = labels == 2
    dice = 2.0 * (pred & fg).sum() / (pred.sum() + fg.sum())
    constant = max(2.0 * fg.sum() / (fg.size + fg.sum()), 0.0)
    assert dice >= 0.85 and dice > constant + 0.2, (dice, constant)


def test_resuming_with_another_downsample_fails_clearly(tmp_path, two_strokes):
    _, _, src = two_strokes()
    cfg = TrainConfig(n_classes=2, features=(4, 8), patch_size=(16, 16), batch_size=1, iterations=1,
                      device="cpu", seed=0)
    assert isinstance(list(train(cfg, src, tmp_path / "run"))[-1], Finished)
    events = list(train(cfg.replace(downsample=2), src, tmp_path / "run", resume=tmp_path / "run"))
    assert events[-1].user_error
    assert "downsample 1 there, 2 here" in events[-1].message
