"""Normalisation, patch sampling around paint, augmentation, snapshot swaps."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from segstudio.core.annotations import IGNORE_INDEX
from segstudio.core.data import (
    AugmentConfig,
    PatchSampler,
    SnapshotSource,
    TrainingImage,
    augment_patch,
    image_stats,
    normalize,
    prepare_image,
)
from segstudio.core.errors import UserInputError


def test_percentile_normalisation_is_robust_and_ignores_nan():
    rng = np.random.default_rng(0)
    img = rng.normal(1000, 50, (64, 64)).astype(np.float32)
    img[0, 0] = 1e9  # a hot pixel
    img[1, 1] = np.nan
    stats = image_stats(img)
    out = normalize(img, stats)
    assert out.shape == (1, 64, 64) and out.dtype == np.float32
    assert np.isfinite(out).all()
    assert 0.0 <= np.median(out) <= 1.0


def test_constant_image_does_not_divide_by_zero():
    out = normalize(np.full((4, 4), 7.0), image_stats(np.full((4, 4), 7.0)))
    assert np.isfinite(out).all()


def test_all_nan_image_is_a_user_error():
    with pytest.raises(UserInputError, match="no finite"):
        image_stats(np.full((4, 4), np.nan))


def test_channels_last_image():
    img = np.random.default_rng(0).random((16, 16, 3))
    stats = image_stats(img, channel_axis=-1)
    assert len(stats.lo) == 3
    assert normalize(img, stats, -1).shape == (3, 16, 16)


def _sampler(shape=(40, 40), patch=(16, 16), rare=3):
    lab = np.zeros(shape, np.uint8)
    lab[0, :] = 1  # lots of class 1
    lab[shape[0] // 2, 2 : 2 + rare] = 2  # a few pixels of class 2
    item = TrainingImage(np.random.default_rng(0).random(shape).astype(np.float32), lab)
    prepared, _ = prepare_image(item, "exclusive", 2)
    return PatchSampler([prepared], "exclusive", patch, random_fraction=0.0,
                        rng=np.random.default_rng(1))


def test_rare_class_appears_in_most_patches():
    sampler = _sampler()
    hits = sum((sampler.sample()[1] == 1).any() for _ in range(200))
    assert hits > 80  # ~half of the patches are centred on the rare class


def test_image_smaller_than_patch_is_padded_with_unpainted():
    sampler = _sampler(shape=(10, 12), patch=(32, 32), rare=2)
    x, y, m = sampler.sample()
    assert x.shape == (1, 32, 32) and y.shape == (32, 32) and m is None
    assert (y == IGNORE_INDEX).sum() >= 32 * 32 - 10 * 12


def test_augmentation_moves_image_and_target_together():
    rng = np.random.default_rng(0)
    x = np.zeros((1, 8, 8), np.float32)
    x[0, 1, 2] = 1.0
    y = np.full((8, 8), IGNORE_INDEX, np.int64)
    y[1, 2] = 1
    cfg = AugmentConfig(p_intensity=0.0)
    for _ in range(20):
        xa, ya, _ = augment_patch(x, y, None, cfg, rng)
        assert np.argmax(xa[0]) == np.argmax(ya)


def test_multilabel_sampler_returns_mask():
    lab = np.zeros((2, 20, 20), np.uint8)
    lab[0, 2] = 1
    lab[0, 10] = 2
    lab[1, 5] = 2
    lab[1, 15] = 1
    item = TrainingImage(np.ones((20, 20), np.float32), lab)
    prepared, _ = prepare_image(item, "multilabel", 2)
    x, y, m = PatchSampler([prepared], "multilabel", (8, 8), rng=np.random.default_rng(0)).batch(4)
    assert x.shape == (4, 1, 8, 8) and y.shape == (4, 2, 8, 8) and m.shape == (4, 2, 8, 8)
    assert set(np.unique(m)) <= {0.0, 1.0}


def test_no_paint_is_a_user_error():
    item = TrainingImage(np.ones((8, 8), np.float32), np.zeros((8, 8), np.uint8))
    prepared, _ = prepare_image(item, "exclusive", 2)
    with pytest.raises(UserInputError, match="nothing is painted"):
        PatchSampler([prepared], "exclusive", (4, 4))


def test_snapshot_source_keeps_only_the_newest():
    src = SnapshotSource()
    assert src.latest() is None
    item = TrainingImage(np.ones((2, 2)), np.ones((2, 2), np.uint8))
    v1 = src.put([item])
    v2 = src.put([item], weights=[1.0])
    assert v2 == v1 + 1 and src.latest().version == v2 and src.latest().weights == (1.0,)


@pytest.mark.parametrize("mode", ["exclusive", "multilabel"])
@pytest.mark.parametrize("shape,patch", [((48, 48), (16, 16)), ((6, 40, 40), (4, 16, 16))])
def test_scale_augmentation_zooms_image_and_target_together(mode, shape, patch):
    # The image is its own label: bright where class 2 is painted. After zooming, every
    # painted pixel of the patch must still sit on the matching intensity.
    rng = np.random.default_rng(0)
    img = np.zeros(shape, np.float32)
    img[..., 16:32, 16:32] = 1.0
    lab = np.where(img > 0, 2, 1).astype(np.uint8)
    lab[rng.random(shape) < 0.5] = 0  # sparse paint
    paint = lab if mode == "exclusive" else np.stack([lab, lab])
    prepared, _ = prepare_image(TrainingImage(img, paint), mode, 2)
    sampler = PatchSampler([prepared], mode, patch, random_fraction=0.0,
                           augment=AugmentConfig(flip=False, rot90=False, p_intensity=0.0, scale=0.5),
                           rng=np.random.default_rng(1))
    sizes = set()
    for _ in range(30):
        x, y, m = sampler.sample()
        assert x.shape == (1, *patch)
        target = y if mode == "exclusive" else np.where(m[0] > 0, y[0], IGNORE_INDEX)
        bright = x[0] > 0.9
        clear = bright | (x[0] < 0.1)  # not an interpolated edge pixel
        painted = (target != IGNORE_INDEX) & clear
        assert painted.any()
        # exclusive: value 2 is class index 1; multilabel: value 2 means "absent" (target 0)
        assert np.array_equal(bright[painted], target[painted] == (1 if mode == "exclusive" else 0))
        sizes.add(int(bright.sum()))
    assert len(sizes) > 5  # the bright square's area in the patch varies with the zoom


def test_inferred_labels_are_a_second_target_and_not_patch_centres():
    img = np.random.default_rng(0).normal(size=(32, 32)).astype(np.float32)
    img[0, 0] = np.nan
    paint = np.zeros((32, 32), np.uint8)
    paint[5, 5:10] = 1
    paint[20, 20:23] = 2
    inferred = np.zeros_like(paint)
    inferred[10:14, 10:14] = 2
    inferred[5, 5] = 2  # under paint: the paint wins
    inferred[0, 0] = 1  # on a NaN pixel: dropped, like paint there
    second = np.zeros_like(paint)
    second[22:25, 24:27] = 1  # a second rule's labels, next to the class-2 stroke
    prepared, _ = prepare_image(TrainingImage(img, paint), "exclusive", 2, inferred=[inferred, second])
    assert (prepared.target[10:14, 10:14] == IGNORE_INDEX).all(), "the paint's target is the paint"
    first = prepared.inferred[0]
    assert (first[10:14, 10:14] == 2).all()
    assert first[5, 5] == 0 and first[0, 0] == 0
    assert [len(c) for c in prepared.coords] == [5, 3]
    plain, _ = prepare_image(TrainingImage(img, paint), "exclusive", 2)
    assert plain.inferred == []
    # a sampler over both: targets (N, 1 + 2 rules, *patch), the same crop and augmentation for all rows
    sampler = PatchSampler([prepared, plain], "exclusive", (16, 16), rng=np.random.default_rng(1),
                           augment=AugmentConfig())
    x, y, m = sampler.batch(32)  # each image in about half of them
    assert x.shape == (32, 1, 16, 16) and y.shape == (32, 3, 16, 16) and m is None
    assert set(np.unique(y[:, 1:])) <= {IGNORE_INDEX, 0, 1}
    assert not ((y[:, 0] != IGNORE_INDEX) & (y[:, 1] != IGNORE_INDEX)).any()
    assert (y[:, 1] == 1).any(), "some patch shows the inferred square"
    assert (y[:, 2] == 0).any(), "and some the second rule's labels"
    x1, y1, _ = PatchSampler([plain], "exclusive", (16, 16), rng=np.random.default_rng(1)).batch(2)
    assert y1.shape == (2, 16, 16), "without inferred labels the target keeps its shape"


def _prepared_with_regions(shape=(40, 50)):
    """A prepared image whose three region channels are known functions of the image: the mean
    the image itself, the standard deviation 1, the anisotropy 0.5."""
    img = np.random.default_rng(3).random(shape).astype(np.float32)
    lab = np.zeros(shape, np.uint8)
    lab[5:9, 5:30] = 1
    lab[20:24, 20:40] = 2
    prepared, _ = prepare_image(TrainingImage(img, lab), "exclusive", 2)
    regions = np.stack([prepared.image[0], np.ones(shape, np.float32), np.full(shape, 0.5, np.float32)])
    return replace(prepared, regions=regions)


def test_patches_carry_their_crop_of_the_whole_images_region_channels():
    """Each patch's image is followed by the same crop of the region channels, through flips,
    rotations and an image smaller than the patch."""
    prepared = _prepared_with_regions()
    sampler = PatchSampler([prepared], "exclusive", (32, 64), rng=np.random.default_rng(0),
                           augment=AugmentConfig(p_intensity=0.0))
    assert sampler.with_regions and sampler.image_channels == 1
    x, y, _ = sampler.batch(6)
    assert x.shape == (6, 4, 32, 64) and y.shape == (6, 32, 64)
    np.testing.assert_array_equal(x[:, 1], x[:, 0])
    assert (x[:, 2] == 1).all() and (x[:, 3] == 0.5).all()
    # an image without them: no region channels for any patch
    sampler = PatchSampler([prepared, replace(prepared, regions=None)], "exclusive", (32, 32))
    assert not sampler.with_regions and sampler.batch(2)[0].shape == (2, 1, 32, 32)


@pytest.mark.parametrize("gamma, noise", [(0.0, 0.0), (0.3, 0.0), (0.0, 0.05)])
def test_intensity_jitter_reaches_the_region_statistics_as_the_image(gamma, noise):
    """Scale, shift and gamma move the mean channel as they move the image (here the mean is
    the image itself, a ramp); the standard deviation (here 1) follows the slope of the curve
    the image went through and grows by the noise's; the anisotropy stays."""
    ramp = np.linspace(0.0, 1.0, 2000, dtype=np.float32).reshape(40, 50)
    x = np.stack([ramp, ramp, np.ones_like(ramp), np.full_like(ramp, 0.5)])
    y = np.zeros(ramp.shape, np.int64)
    cfg = AugmentConfig(flip=False, rot90=False, p_intensity=1.0, gamma=gamma, noise_std=noise)
    for seed in range(5):
        xa, _, _ = augment_patch(x, y, None, cfg, np.random.default_rng(seed), image_channels=1)
        assert xa.shape == x.shape and (xa[3] == 0.5).all()
        if noise == 0:
            np.testing.assert_allclose(xa[1], xa[0], atol=2e-3)
            slope = np.gradient(xa[0].ravel(), ramp.ravel()).reshape(ramp.shape)
            inside = ramp > 0.05
            np.testing.assert_allclose(xa[2][inside], slope[inside], rtol=0.02)
        else:
            fit = np.polyfit(ramp.ravel(), xa[0].ravel(), 1)
            np.testing.assert_allclose(xa[1], np.polyval(fit, ramp), atol=0.01)  # no noise in the mean
            sd = float(np.std(xa[0] - np.polyval(fit, ramp)))
            np.testing.assert_allclose(xa[2], np.hypot(fit[0], sd), rtol=0.03)
    # the image alone draws and gives exactly what it did before region channels existed
    a, _, _ = augment_patch(x[:1], y, None, cfg, np.random.default_rng(1))
    b, _, _ = augment_patch(x, y, None, cfg, np.random.default_rng(1), image_channels=1)
    np.testing.assert_array_equal(a, b[:1])
