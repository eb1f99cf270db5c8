"""The texture gain that *textures* on ``auto`` goes by (:mod:`segstudio.core.textures`)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi
from scipy.stats import mannwhitneyu

from segstudio.core import textures as T
from segstudio.core.annotations import ABSENT, PRESENT
from segstudio.core.config import TEXTURE_GAIN, use_textures


def test_separation_is_twice_the_auc_off_a_half():
    """Against scipy's Mann-Whitney U (``AUC = U / (n·m)``), ties included."""
    rng = np.random.default_rng(0)
    for shift in (0.0, 0.3, 1.0, 5.0):
        a = rng.normal(shift, 1.0, 300).round(1)  # rounded: ties
        b = rng.normal(0.0, 1.0, 200).round(1)
        u = mannwhitneyu(a, b).statistic
        assert T.separation(a, b) == pytest.approx(abs(2 * u / (a.size * b.size) - 1), abs=1e-12)
    assert T.separation(np.arange(10), np.arange(10) + 100) == 1.0
    with pytest.raises(ValueError):
        T.separation(np.array([]), np.arange(3))


def _grains_and_stripes(shape=(96, 96), seed=0):
    """Grains on the left half, stripes of the same spread on the right, mean 0 both."""
    rng = np.random.default_rng(seed)
    image = ndi.gaussian_filter(rng.standard_normal(shape), 1.5).astype(np.float32)
    half = shape[-1] // 2
    stripes = np.sin(np.arange(shape[-1] - half, dtype=np.float32) * 1.3) * image[..., :half].std() * np.sqrt(2)
    image[..., half:] = stripes
    return image + rng.normal(0, 0.02, image.shape).astype(np.float32)


def _two_strokes(shape):
    paint = np.zeros(shape, np.uint8)
    paint[..., 10:80, 20] = 1
    paint[..., 10:80, 70] = 2
    return paint


def test_textures_of_one_brightness_gain_and_bright_objects_do_not():
    image = _grains_and_stripes()
    paint = _two_strokes(image.shape)
    gain = T.texture_gain(image, paint, "exclusive")
    assert gain > TEXTURE_GAIN and use_textures("auto", gain)
    # bright discs on a dark background, painted inside and outside: brightness does it all
    yy, xx = np.mgrid[:96, :96]
    discs = ((yy - 30) ** 2 + (xx - 30) ** 2 < 144) | ((yy - 65) ** 2 + (xx - 65) ** 2 < 144)
    bright = discs.astype(np.float32) + np.random.default_rng(1).normal(0, 0.05, discs.shape).astype(np.float32)
    paint = np.zeros(discs.shape, np.uint8)
    paint[5, 5:90] = 1
    paint[28:33, 25:36] = paint[63:68, 60:71] = 2
    gain = T.texture_gain(bright, paint, "exclusive")
    assert gain < 0.1 and not use_textures("auto", gain)


def test_multilabel_paintings_compare_the_same_classes():
    """Present/absent over the channels, as the same content painted exclusively."""
    image = _grains_and_stripes()
    excl = _two_strokes(image.shape)
    ml = np.zeros((2, *image.shape), np.uint8)
    for ch, cls in enumerate((1, 2)):
        ml[ch][excl > 0] = ABSENT
        ml[ch][excl == cls] = PRESENT
    assert T.texture_gain(image, ml, "multilabel") == pytest.approx(T.texture_gain(image, excl, "exclusive"))


def test_volumes_channels_and_too_little_paint():
    vol = np.stack([_grains_and_stripes(seed=s) for s in range(6)])
    paint = np.zeros(vol.shape, np.uint8)
    paint[2] = _two_strokes(vol.shape[1:])  # one painted slice, as users paint volumes
    gain = T.texture_gain(vol, paint, "exclusive", spacing=(2.0, 0.5, 0.5))
    assert gain > TEXTURE_GAIN
    two = np.stack([vol, vol], axis=-1)  # channels last: averaged
    assert T.texture_gain(two, paint, "exclusive", channel_axis=-1, spacing=(2.0, 0.5, 0.5)) == pytest.approx(gain)
    few = np.zeros(vol.shape, np.uint8)
    few[2, 10:15, 20] = 1
    few[2, 10:80, 70] = 2
    assert T.texture_gain(vol, few, "exclusive") is None  # one class under MIN_PIXELS
    assert T.texture_gain(vol, paint[:, :10], "exclusive") is None  # another shape
    holes = vol.copy()
    holes[2, 30:40, :] = np.nan  # NaN pixels: left out, not a NaN gain
    gain = T.texture_gain(holes, paint, "exclusive", spacing=(2.0, 0.5, 0.5))
    assert gain is not None and np.isfinite(gain)


def test_a_large_image_reads_a_bounded_number_of_tiles(monkeypatch):
    """Paint spread over a large image: at most MAX_TILES tiles are filtered."""
    image = np.tile(_grains_and_stripes(), (20, 20))  # 1920²
    paint = np.zeros(image.shape, np.uint8)
    paint[::96, :] = 0
    for i in range(20):  # a stroke per grain and per stripe block
        paint[i * 96 + 10 : i * 96 + 80, i * 96 + 20] = 1
        paint[i * 96 + 10 : i * 96 + 80, i * 96 + 70] = 2
    calls = []
    real = T.FilterBank.forward

    def counting(self, x):
        calls.append(x.shape)
        return real(self, x)

    monkeypatch.setattr(T.FilterBank, "forward", counting)
    assert T.texture_gain(image, paint, "exclusive") > TEXTURE_GAIN
    assert 1 <= len(calls) <= T.MAX_TILES
    assert all(np.prod(s[2:]) <= np.prod(np.add(T.TILE[2], 60)) for s in calls)
    # one class painted in many tiles, the other in a single far one: both are read
    few = np.zeros(image.shape, np.uint8)
    few[::96, :] = 1
    few[1900:1910, 1850:1900] = 2
    assert T.texture_gain(image, few, "exclusive") is not None
