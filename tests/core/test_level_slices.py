"""*Level slices*: per-slice offsets in the normalisation, their measure and choice, and that
training, prediction, lazy reads and saved runs all apply the same levelling."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter1d

from segstudio.core.background import slice_unevenness, smoothed_intensity
from segstudio.core.config import (
    SLICE_UNEVENNESS,
    TrainConfig,
    level_slices_choice,
    use_level_slices,
)
from segstudio.core.data import (
    LEVEL_QUANTILE,
    LEVEL_SIGMA,
    SnapshotSource,
    TrainingImage,
    image_stats,
    normalize,
    slice_offsets,
)
from segstudio.core.errors import UserInputError
from segstudio.core.lazy import NormalizedView, strided_stats
from segstudio.core.predictor import Predictor
from segstudio.core.run import load_run
from segstudio.core.trainer import Finished, infer_config, train


def ramp_volume(nz: int = 12, shape: tuple[int, int] = (40, 40), ramp: float = 3.0, seed: int = 0):
    """Dim blobs (+1) on a background whose level runs along z by ``ramp`` (more than the
    objects' contrast), with noise; and an exclusive painting (1 background, 2 object) on a
    middle slice."""
    rng = np.random.default_rng(seed)
    z = np.linspace(0.0, ramp, nz, dtype=np.float32)[:, None, None]
    truth = np.zeros((nz, *shape), bool)
    truth[:, 10:20, 10:20] = True
    truth[:, 25:33, 22:34] = True
    img = (10.0 + z + truth + rng.normal(0, 0.1, (nz, *shape))).astype(np.float32)
    paint = np.zeros((nz, *shape), np.uint8)
    mid = nz // 2
    paint[mid, 2:5, 2:38] = 1
    paint[mid, 12:18, 12:18] = 2
    return img, paint, truth


def test_offsets_are_the_smoothed_per_slice_quantile_less_its_mean():
    img, _, _ = ramp_volume()
    stats = image_stats(img, level_slices=True)
    levels = np.percentile(img.reshape(img.shape[0], -1), LEVEL_QUANTILE, axis=1)
    expected = gaussian_filter1d(levels, LEVEL_SIGMA, mode="nearest")
    np.testing.assert_allclose(stats.offsets[0], expected - expected.mean(), atol=1e-6)
    assert abs(np.mean(stats.offsets[0])) < 1e-9
    # lo/hi are the percentiles of the levelled image
    levelled = img - np.asarray(stats.offsets[0], np.float32)[:, None, None]
    np.testing.assert_allclose((stats.lo[0], stats.hi[0]), np.percentile(levelled, stats.percentiles), rtol=1e-5)


def test_levelling_lets_one_threshold_split_objects_from_a_background_that_runs_along_z():
    img, _, truth = ramp_volume()
    plain = normalize(img, image_stats(img))[0]
    level = normalize(img, image_stats(img, level_slices=True))[0]

    def best_dice(x):
        return max(2 * ((x > t) & truth).sum() / ((x > t).sum() + truth.sum())
                   for t in np.quantile(x, np.linspace(0.01, 0.99, 99)))

    assert best_dice(plain) < 0.7  # the last slices' background is brighter than the first slices' objects
    assert best_dice(level) > 0.98


def test_without_levelling_nothing_changes():
    img, _, _ = ramp_volume()
    stats = image_stats(img)
    assert stats.offsets == ()
    lo, hi = np.percentile(img, stats.percentiles)
    np.testing.assert_allclose(normalize(img, stats)[0], (img - np.float32(lo)) / np.float32(hi - lo), rtol=1e-5)


def test_slice_without_finite_voxels_takes_the_mean_level_and_stays_finite():
    img, _, _ = ramp_volume()
    img[3] = np.nan
    stats = image_stats(img, level_slices=True)
    assert np.isfinite(stats.offsets[0]).all()
    out = normalize(img, stats)
    assert np.isfinite(out).all() and (out[0, 3] == 0).all()
    assert slice_offsets([np.nan, np.nan]) == (0.0, 0.0)


def test_channels_get_their_own_offsets():
    img, _, _ = ramp_volume()
    two = np.stack([img, 20.0 - img], axis=-1)  # the second channel's background falls along z
    stats = image_stats(two, channel_axis=-1, level_slices=True)
    assert len(stats.offsets) == 2
    assert stats.offsets[0][-1] > 0 > stats.offsets[1][-1]


def test_lazy_reads_level_as_the_in_memory_path():
    img, _, _ = ramp_volume()
    exact = image_stats(img, level_slices=True)
    assert strided_stats(img.copy(), level_slices=True) == exact  # small: every voxel, as image_stats
    sampled = strided_stats(img, level_slices=True, max_samples=3000)  # every slice, strided in-plane
    np.testing.assert_allclose(sampled.offsets[0], exact.offsets[0], atol=0.05)
    view = NormalizedView(img, None, exact, region=(slice(3, 9), slice(5, 30), slice(0, 40)))
    whole = normalize(img, exact)
    np.testing.assert_allclose(view[(slice(None), slice(1, 4), slice(2, 10), slice(None))],
                               whole[:, 4:7, 7:15, :], rtol=1e-6)
    # a channel-first image: the first spatial axis is the array's second
    cf = np.stack([img, img])
    stats = image_stats(cf, channel_axis=0, level_slices=True)
    v = NormalizedView(cf, 0, stats)
    np.testing.assert_allclose(v[(slice(None), slice(2, 5))], normalize(cf, stats, 0)[:, 2:5], rtol=1e-6)


def test_levelling_is_for_volumes_only():
    with pytest.raises(UserInputError, match="volumes"):
        image_stats(np.zeros((8, 8), np.float32), level_slices=True)
    with pytest.raises(UserInputError, match="volumes"):
        strided_stats(np.zeros((8, 8), np.float32), level_slices=True)
    with pytest.raises(UserInputError, match="volumes"):
        TrainConfig(spatial_dims=2, level_slices=True)


def test_the_measure_separates_a_background_running_along_z_from_an_even_one():
    img, paint, _ = ramp_volume()
    assert slice_unevenness(img, paint, "exclusive") > SLICE_UNEVENNESS
    even, _, _ = ramp_volume(ramp=0.0)
    assert slice_unevenness(even, paint, "exclusive") < 0.2
    # multi-label: absent in every channel is the background, present in any the other side
    ml = np.zeros((1, *paint.shape), np.uint8)
    ml[0][paint == 1], ml[0][paint == 2] = 2, 1
    assert slice_unevenness(img, ml, "multilabel") == pytest.approx(slice_unevenness(img, paint, "exclusive"))
    assert slice_unevenness(img[5], paint[5], "exclusive") is None  # 2D
    assert slice_unevenness(img, np.zeros_like(paint), "exclusive") is None  # nothing painted


def test_choice_and_auto():
    assert [level_slices_choice(v) for v in (None, True, False, "ON", "auto")] == ["auto", "on", "off", "on", "auto"]
    with pytest.raises(UserInputError, match="level slices"):
        level_slices_choice("maybe")
    assert use_level_slices("auto", 3, 2.0) and not use_level_slices("auto", 3, 0.5)
    assert not use_level_slices("auto", 2, 5.0) and not use_level_slices("auto", 3, None)
    assert use_level_slices("on", 3, None) and not use_level_slices("off", 3, 9.0)


def test_the_background_rule_reads_the_levelled_image():
    img, _, _ = ramp_volume()
    stats = image_stats(img, level_slices=True)
    g = smoothed_intensity(img, None, 3, stats.offsets)
    expected = smoothed_intensity(img - np.asarray(stats.offsets[0], np.float32)[:, None, None], None, 3)
    np.testing.assert_allclose(g, expected, atol=1e-4)


def test_a_levelled_run_trains_saves_and_predicts_with_the_same_levelling(tmp_path):
    img, paint, _ = ramp_volume()
    cfg = infer_config(img.shape, paint, "exclusive", iterations=3, features=(4, 8), patch_size=(4, 16, 16),
                       batch_size=2, num_threads=1, seed=0, spacing=(2.0, 1.0, 1.0), level_slices=True)
    src = SnapshotSource()
    src.put([TrainingImage(img, paint)])
    events = list(train(cfg, src, tmp_path / "run"))
    assert isinstance(events[-1], Finished), events[-1]
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["level_slices"] is True and len(saved["normalization"]["offsets"][0]) == img.shape[0]
    loaded = load_run(tmp_path / "run")
    assert loaded.config.level_slices and loaded.config.normalization == image_stats(img, level_slices=True)
    predictor = Predictor(loaded.model, loaded.config)
    assert predictor.image_stats(img) == image_stats(img, level_slices=True)
    plain = predictor.predict(img).labels
    assert plain.shape == img.shape
    np.testing.assert_array_equal(predictor.predict(img, stats=image_stats(img, level_slices=True)).labels, plain)


def test_runs_written_before_load_without_levelling():
    data = TrainConfig(spatial_dims=3).to_dict()
    del data["level_slices"]
    data["normalization"] = {"percentiles": [1.0, 99.8], "lo": [0.0], "hi": [1.0]}
    cfg = TrainConfig.from_dict(data)
    assert cfg.level_slices is False and cfg.normalization.offsets == ()
