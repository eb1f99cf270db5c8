"""Background that looks like the painted background."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from segstudio.core.background import infer_background, infer_background_multilabel


def _scene(bright_background: bool = False):
    """A dark image with two bright squares; strokes: background far away, one square marked."""
    rng = np.random.default_rng(0)
    img = rng.normal(10.0, 1.0, (64, 64)).astype(np.float32)
    img[10:22, 10:22] += 50.0
    img[40:52, 36:50] += 50.0  # an unpainted object
    if bright_background:
        img = 100.0 - img
    paint = np.zeros(img.shape, np.uint8)
    paint[58:61, 2:40] = 1
    paint[14:17, 12:20] = 2
    return img, paint


def _dim_correction_scene(bright: bool = False):
    """:func:`_scene` after a correction round: an object stroke in the second object, and 8 px
    of object paint on a very dim object, hardly brighter than the background (the tails of the
    painted intensities overlap)."""
    img, paint = _scene()
    img[2:7, 48:60] += 0.3  # the very dim object
    if bright:
        img = 100.0 - img
    paint[44:47, 38:46] = 2  # a stroke in the unpainted object
    paint[4, 50:58] = 2  # the correction on the dim object
    return img, paint


@pytest.mark.parametrize("bright", [False, True])
def test_background_like_pixels_are_inferred_and_objects_are_not(bright):
    img, paint = _scene(bright)
    out = infer_background(paint, img)
    assert out.dtype == paint.dtype and out.shape == paint.shape
    assert set(np.unique(out)) == {0, 1}
    assert not out[paint > 0].any(), "painted pixels are never inferred"
    assert not out[11:21, 11:21].any() and not out[41:51, 37:49].any(), "objects stay unlabelled"
    far = np.ones(img.shape, bool)
    far[5:27, 5:27] = far[35:57, 31:55] = False
    assert (out[far & (paint == 0)] == 1).mean() > 0.8, "most of the background is inferred"


def test_nothing_is_inferred_when_the_paint_does_not_separate():
    img, paint = _scene()
    paint[30:33, 2:30] = 2  # "object" paint on background intensities: no intensity rule holds
    assert not infer_background(paint, img).any()
    assert not infer_background(np.where(paint == 1, 0, paint).astype(np.uint8), img).any()  # no background paint


def test_3d_and_channels():
    img, paint = _scene()
    vol = np.stack([img] * 4)
    p3 = np.zeros(vol.shape, np.uint8)
    p3[1] = paint
    out = infer_background(p3, vol)
    assert out[2].any() and not out[:, 11:21, 11:21].any()
    rgb = np.stack([vol, vol, vol], axis=-1)
    np.testing.assert_array_equal(infer_background(p3, rgb, channel_axis=-1), out)
    with pytest.raises(ValueError):
        infer_background(p3[:, :10], vol)


def test_multilabel_uses_absent_as_the_background():
    img, paint = _scene()
    ml = np.zeros((2, *img.shape), np.uint8)
    ml[0][paint == 1] = 2  # object channel: absent on the background stroke
    ml[0][paint == 2] = 1  # present on the object stroke
    ml[1][paint > 0] = 2  # a channel painted absent only: nothing to separate
    out = infer_background_multilabel(ml, img)
    np.testing.assert_array_equal(out[0] == 2, infer_background(paint, img) == 1)
    # channel 1 alone does not separate, but across channels the background stroke is absent in
    # both and the object stroke present in one: the same look-alikes are absent in channel 1 too
    np.testing.assert_array_equal(out[1], out[0])


def test_multilabel_classes_that_only_differ_from_the_background_together():
    """Two bright classes, each channel's absent strokes include the other class: what is absent
    in every channel is dark, what is present somewhere bright, so background look-alikes are
    absent in every channel (as exclusive mode infers). Counted in a channel's own statistics,
    the other class's stroke made its tails overlap, which used to switch the channel's rule
    off; the bulk test now lets the channel separate alone too."""
    img, paint = _scene()
    paint[44:47, 38:46] = 3  # a stroke in the second object, a second class
    ml = np.zeros((2, *img.shape), np.uint8)
    ml[:, paint > 0] = 2
    ml[0][paint == 2] = 1
    ml[1][paint == 3] = 1
    from unittest import mock

    from segstudio.core import background

    excl = infer_background(paint, img) == 1
    assert excl.any()
    out = infer_background_multilabel(ml, img)
    for c in range(2):
        np.testing.assert_array_equal(out[c] == 2, excl)
        assert not (out[c] == 1).any() and not out[c][ml[c] > 0].any(), "only unpainted pixels, only absent"
    # channel 0's absent stroke over the other bright class is an object-like background
    # stroke: left out of the statistics, channel 0 separates alone as well
    np.testing.assert_array_equal(infer_background_multilabel(ml[:1], img)[0] == 2, excl)
    with mock.patch.object(background, "LEAVE_OUT_OBJECT_LIKE_STROKES", False):
        alone = infer_background_multilabel(ml[:1], img)[0] == 2
        with mock.patch.object(background, "BULK", 0.1):  # a test on the tails: off
            assert not infer_background_multilabel(ml[:1], img).any()
    # counted in, the stroke makes the tails overlap: the threshold is the background's upper
    # quartile, not moved towards the objects, so compare with exclusive mode's at the quantile
    with mock.patch.object(background, "TOWARDS_OBJECTS", 0.0):
        at_quantile = infer_background(paint, img) == 1
    assert (alone == at_quantile).mean() > 0.99 and not alone[10:22, 10:22].any() and not alone[40:52, 36:50].any()


def test_dark_grains_inside_a_textured_object_are_not_background():
    """A textured object has its own pixels as dark as the background: single grains and thin
    streaks. The rule infers background in patches only, so they stay unlabelled."""
    img, paint = _scene()
    rng = np.random.default_rng(1)
    grains = np.zeros(img.shape, bool)
    grains[40:52, 36:50] = rng.random((12, 14)) < 0.08  # dark single pixels in the unpainted object
    grains[45, 37:49] = True  # and a thin dark streak across it
    img[grains] = 10.0
    out = infer_background(paint, img)
    assert not out[40:52, 36:50].any(), "no background inside the textured object"
    far = np.ones(img.shape, bool)
    far[5:27, 5:27] = far[35:57, 31:55] = False
    assert (out[far & (paint == 0)] == 1).mean() > 0.8, "the background region is still inferred"


def test_patches_only_keeps_disk_shaped_patches_and_adds_nothing():
    from segstudio.core.background import patches_only

    mask = np.zeros((2, 30, 30), bool)
    mask[:, 0:10, 0:12] = True  # a patch at the border
    mask[:, 24, 3:25] = True  # a one-pixel line
    mask[:, 27, 27] = True  # a single pixel
    mask[:, 15:20, 15:20] = True  # a 5 x 5 square holds the radius-2 disk
    out = patches_only(mask, 2)
    np.testing.assert_array_equal(out[0], out[1])  # plane by plane
    assert out[:, 0, 0:12].all() and out[:, 0:10, 0].all(), "a patch at the border keeps its border pixels"
    assert out[:, 0:8, 0:10].all() and not out[:, 9, 11].any()  # only its convex corner is rounded off
    assert out[:, 15:20, 15:20].sum() == 2 * 13  # the 5 x 5 square keeps the disk (13 pixels: y² + x² <= 4)
    assert not out[:, 24].any() and not out[:, 27, 27].any()
    assert not (out & ~mask).any()
    np.testing.assert_array_equal(patches_only(mask, 0), mask)


def test_only_look_alikes_joined_to_a_background_stroke_or_large_are_inferred():
    """A dark hole inside an object, and a small dark pocket cut off from every background
    stroke by a bright ring, look like the background but are neither joined to it nor large:
    left alone. A large pocket cut off the same way is background (a region inside a loop of
    vessel), and is inferred. (Hole and pockets are a little darker than the painted
    background, so that noise does not break them into pieces.)"""
    from unittest import mock

    from segstudio.core import background

    rng = np.random.default_rng(2)
    img = rng.normal(10.0, 1.0, (96, 64)).astype(np.float32)
    img[10:22, 10:22] += 50.0  # the painted object
    img[34:56, 36:62] += 50.0  # an unpainted object ...
    img[39:51, 43:55] -= 51.0  # ... with a background-dark hole (144 px)
    img[2:30, 36:64] += 50.0  # a bright ring ...
    img[8:20, 44:56] -= 51.0  # ... around a small dark pocket (144 px) that no stroke reaches
    img[62:94, 30:64] += 50.0  # a second ring ...
    img[66:90, 34:60] -= 51.0  # ... around a large pocket (624 px)
    paint = np.zeros(img.shape, np.uint8)
    paint[58:61, 2:26] = 1
    paint[14:17, 12:20] = 2
    hole, pocket = (slice(39, 51), slice(43, 55)), (slice(8, 20), slice(44, 56))
    large = (slice(68, 88), slice(36, 58))
    assert background.MIN_REGION > 144
    with mock.patch.object(background, "reachable", lambda mask, seeds, min_size=0: mask):
        loose = infer_background(paint, img)
    assert loose[hole].any() and loose[pocket].any(), "by brightness alone both look like background"
    out = infer_background(paint, img)
    assert not out[hole].any(), "a hole inside an object is not background"
    assert not out[pocket].any(), "a small patch cut off from every stroke is left to the network"
    assert (out[large] == 1).mean() > 0.95, "a large patch cut off from every stroke is background"
    with mock.patch.object(background, "MIN_REGION", 0):
        assert not infer_background(paint, img)[large].any(), "without the size rule, only joined patches"
    near = np.zeros(img.shape, bool)
    near[30:60, 0:30] = True
    kept = (out[near] == 1).sum() / max(int((loose[near] == 1).sum()), 1)
    assert kept > 0.95, "background joined to the stroke stays inferred (but for a few islands)"
    assert not (out & (loose == 0)).any()


def test_reachable_follows_face_neighbours_from_the_seeds():
    from segstudio.core.background import reachable

    mask = np.zeros((3, 12, 12), bool)
    mask[0, 0:4, 0:4] = True  # joined to the seed below through z
    mask[1, 0:2, 0:2] = True
    mask[0, 8:12, 8:12] = True  # an island
    mask[2, 5, 5] = mask[2, 6, 6] = True  # diagonal neighbours only: not joined
    seeds = np.zeros_like(mask)
    seeds[1, 0, 0] = seeds[2, 5, 5] = True
    out = reachable(mask, seeds)
    assert out[0, 0:4, 0:4].all() and out[1, 0:2, 0:2].all() and out[2, 5, 5]
    assert not out[0, 8:12, 8:12].any() and not out[2, 6, 6]
    assert not (out & ~mask).any()
    big = reachable(mask, seeds, min_size=16)
    assert big[0, 8:12, 8:12].all(), "an island of 16 pixels is taken with min_size=16"
    assert not big[2, 6, 6] and not (big & ~mask).any()
    assert not reachable(mask, seeds, min_size=17)[0, 8:12, 8:12].any()


@pytest.mark.parametrize("bright", [False, True])
def test_a_correction_painted_over_a_bright_look_alike_keeps_the_rule_on(bright):
    """A correction round paints background over a bright blob the network took for an object.
    That stroke says the blob is background; it must not switch the rule off for the dark
    background (it did: the halo came back after the correction), nor lift its threshold into
    the objects."""
    from unittest import mock

    from segstudio.core import background

    img, paint = _scene()
    img[24:34, 52:62] += 50.0  # a bright look-alike of an object, not one
    if bright:
        img = 100.0 - img
    paint[25:33, 53:61] = 1  # the correction: background over the look-alike (64 px of 178)
    assert (paint == 1).sum() == 178
    with mock.patch.object(background, "LEAVE_OUT_OBJECT_LIKE_STROKES", False):
        lifted = infer_background(paint, img)
    assert lifted[10:22, 10:22].any() and lifted[40:52, 36:50].any(), (
        "counted in the statistics, the stroke lifts the threshold into the objects' edges")
    out = infer_background(paint, img)
    far = np.ones(img.shape, bool)
    far[5:27, 5:27] = far[35:57, 31:55] = far[20:38, 48:64] = False
    assert (out[far & (paint == 0)] == 1).mean() > 0.8, "the dark background is inferred again"
    assert not out[11:21, 11:21].any() and not out[41:51, 37:49].any(), "objects stay unlabelled"
    assert not out[24:34, 52:62].any(), "the look-alike itself is left to the stroke, not inferred"


def test_object_like_strokes_are_the_background_strokes_with_an_object_like_median():
    from segstudio.core.background import object_like_strokes

    g = np.zeros((8, 12), np.float32)
    g[:, 6:] = 10.0
    paint = np.zeros(g.shape, np.uint8)
    paint[1, 0:5] = 1  # dark stroke
    paint[4, 3:9] = 1  # half dark, half bright: median 5 (between)
    paint[6, 7:12] = 1  # bright stroke
    paint[3, 10] = 2
    out = object_like_strokes(paint, g, 1, level=8.0, dark=True)
    assert out[6, 7:12].all() and not out[1].any() and not out[4].any()
    assert not (out & (paint != 1)).any()
    mirrored = object_like_strokes(paint, 10.0 - g, 1, level=2.0, dark=False)
    np.testing.assert_array_equal(mirrored, out)
    assert not object_like_strokes(np.zeros_like(paint), g, 1, 8.0, True).any()


def test_object_like_strokes_medians_match_the_whole_image_median():
    """The strokes' medians are read from the painted pixels only; the same as scipy's labelled
    median over the whole image (the unpainted pixels' label 0 is not asked for)."""
    from scipy import ndimage as ndi

    from segstudio.core.background import object_like_strokes

    rng = np.random.default_rng(3)
    g = rng.normal(100.0, 20.0, (3, 40, 50)).astype(np.float32)
    paint = (rng.random(g.shape) < 0.08).astype(np.uint8)
    paint[rng.random(g.shape) < 0.02] = 2
    strokes, n = ndi.label(paint == 1)
    assert n > 20
    med = np.asarray(ndi.median(g, strokes, np.arange(1, n + 1)))
    level = float(np.median(med))
    expected = np.concatenate([[False], med >= level])[strokes]
    out = object_like_strokes(paint, g, 1, level, dark=True)
    np.testing.assert_array_equal(out, expected)
    assert out.any() and (out != (paint == 1)).any()


@pytest.mark.parametrize("bright", [False, True])
def test_an_object_correction_as_dark_as_the_background_keeps_the_rule_on(bright):
    """A correction round paints objects into the dim parts the network missed, some as dark as
    the background: the objects' 5 % quantile falls below the background's 90 % (the tails
    overlap). The rule used to switch off then (the halo came back after the round); now it
    stays on with its threshold lowered to that quantile, and infers nothing the objects'
    strokes are as dark as."""
    from segstudio.core import background
    from segstudio.core.background import smoothed_intensity

    img, paint = _dim_correction_scene(bright)
    g = smoothed_intensity(img, None, 2)
    obj, bg = g[paint == 2], g[paint == 1]
    level = np.quantile(obj, 0.05 if not bright else 0.95)
    assert (level <= np.quantile(bg, 0.9)) if not bright else (level >= np.quantile(bg, 0.1)), "the tails overlap"
    assert not background.object_like_strokes(paint, g, 1, level, not bright).any()
    out = infer_background(paint, img)
    far = np.ones(img.shape, bool)
    far[5:27, 5:27] = far[35:57, 31:55] = False
    far[:9, 46:62] = False
    assert (out[far & (paint == 0)] == 1).mean() > 0.3, "much of the background is still inferred"
    assert not out[11:21, 11:21].any() and not out[41:51, 37:49].any(), "objects stay unlabelled"
    inferred = g[out == 1]
    assert (inferred <= level).all() if not bright else (inferred >= level).all(), "never beyond the objects' 5 %"


def test_several_multilabel_classes_are_read_across_channels_only():
    """With one class absent is the background, as in exclusive mode; with several, a channel's
    own absent paint holds the other classes too, so only the view across channels (absent in
    every channel against present in any) infers: here channel 1 is unpainted, so nothing is
    absent in every channel and nothing is inferred."""
    img, paint = _dim_correction_scene()
    ml = np.zeros((2, *img.shape), np.uint8)
    ml[0][paint == 1] = 2
    ml[0][paint == 2] = 1
    one = infer_background_multilabel(ml[:1], img)
    np.testing.assert_array_equal(one[0] == 2, infer_background(paint, img) == 1)
    assert one.any()
    assert not infer_background_multilabel(ml, img).any()


def test_object_and_boundary_channels_infer_what_exclusive_mode_infers():
    """The same content in both modes (background, interior, boundary; as object + boundary
    channels) implies the same background. The boundary channel's absent strokes are the
    background *and* the interiors; read alone (the rule before session 18) they called part
    of the bright interior absent too, which exclusive mode does not infer."""
    rng = np.random.default_rng(0)
    img = rng.normal(10.0, 1.0, (64, 64)).astype(np.float32)
    for (y0, y1), (x0, x1) in [((10, 22), (10, 22)), ((40, 52), (36, 50))]:
        img[y0:y1, x0:x1] += 25.0  # a rim at 35
        img[y0 + 2 : y1 - 2, x0 + 2 : x1 - 2] += 25.0  # the interior at 60
    paint = np.zeros(img.shape, np.uint8)
    paint[58:60, 2:20] = 1  # background
    paint[13:19, 13:21] = 2  # interior, more of it than background
    paint[10, 10:22] = 3  # boundary, along the rim
    paint[11:22, 10] = 3
    ml = np.zeros((2, *img.shape), np.uint8)
    ml[:, paint > 0] = 2
    ml[0][np.isin(paint, (2, 3))] = 1
    ml[1][paint == 3] = 1
    excl = infer_background(paint, img) == 1
    assert excl.any()
    out = infer_background_multilabel(ml, img)
    for c in range(2):
        np.testing.assert_array_equal(out[c] == 2, excl & (ml[c] == 0))
        assert not (out[c] == 1).any()
    assert not out[1][12:20, 12:20].any(), "the interior is not called absent in the boundary channel"


def _ramp_painting(ramp: float) -> tuple[np.ndarray, np.ndarray]:
    """A 2D image: a left-to-right background ramp of height ``ramp``, dim objects (+0.2)."""
    rng = np.random.default_rng(0)
    image = np.tile(np.linspace(0.0, ramp, 96, dtype=np.float32), (96, 1))
    image[20:30, 10:20] += 0.2
    image[60:70, 70:80] += 0.2
    image += rng.normal(0, 0.01, image.shape).astype(np.float32)
    paint = np.zeros(image.shape, np.uint8)
    paint[5, 2:94] = 1  # a background stroke across the whole ramp
    paint[90, 2:94] = 1
    paint[24:26, 12:18] = 2
    paint[64:66, 72:78] = 2
    return image, paint


def test_background_unevenness_tells_a_ramp_from_an_even_background() -> None:
    from segstudio.core.background import UNEVEN_BACKGROUND, background_unevenness

    image, paint = _ramp_painting(1.0)
    uneven = background_unevenness(image, paint, "exclusive")
    assert uneven is not None and uneven > 3 * UNEVEN_BACKGROUND
    even = background_unevenness(*_ramp_painting(0.0), "exclusive")
    assert even is not None and even < UNEVEN_BACKGROUND / 3
    # multi-label: absent in every channel is the background, present in any the objects
    ml = np.zeros((2, *paint.shape), np.uint8)
    ml[:, paint == 1] = 2
    ml[0][paint == 2] = 1
    ml[1][paint == 2] = 2
    assert background_unevenness(image, ml, "multilabel") == pytest.approx(uneven)
    # channels last are averaged; a volume, or a side with too few strokes, says nothing
    assert background_unevenness(np.stack([image, image], -1), paint, "exclusive", channel_axis=2) == \
        pytest.approx(uneven, rel=1e-5)
    assert background_unevenness(image[None], paint[None], "exclusive") is None
    assert background_unevenness(image, np.where(paint == 2, 0, paint), "exclusive") is None


def test_the_threshold_towards_the_objects_takes_in_their_blurred_rims(monkeypatch, blurred_disk):
    """With :data:`TOWARDS_OBJECTS` (0.2, the default) between the background's ``hi`` and the
    objects' ``lo`` quantile, the rule reaches into the rim where the disk blurs into the
    background, closer than at the background's own quantile (0), and still takes no pixel of
    the disk."""
    from segstudio.core import background

    img, paint, disk = blurred_disk
    ring = ~disk & (np.hypot(*(np.mgrid[:64, :64] - 32)) <= 17)  # the 5 px just outside the disk
    assert background.TOWARDS_OBJECTS == 0.2 and background.TOWARDS_OBJECTS_TEXTURES == 0.0
    towards = infer_background(paint, img) == 1
    monkeypatch.setattr(background, "TOWARDS_OBJECTS", 0.0)
    at_background = infer_background(paint, img) == 1
    assert 0 < at_background.sum() < towards.sum() and not (at_background & ~towards).any(), "it only adds pixels"
    assert towards[ring].mean() > at_background[ring].mean() + 0.1, "more of the blurred rim is background"
    assert not towards[disk].any(), "no pixel of the object"


def test_with_textures_the_threshold_stays_at_the_background(monkeypatch, blurred_disk):
    """*Textures* on: the threshold does not move towards the objects (a texture's darker grains
    would join the background), in both modes and through :func:`implied_labels`, whatever
    :data:`TOWARDS_OBJECTS` says; off: it follows :data:`TOWARDS_OBJECTS`."""
    from segstudio.core import background
    from segstudio.core.implied import implied_labels

    img, paint, _ = blurred_disk
    monkeypatch.setattr(background, "TOWARDS_OBJECTS", 0.0)
    at_background = infer_background(paint, img) == 1
    monkeypatch.setattr(background, "TOWARDS_OBJECTS", 0.2)
    monkeypatch.setattr(background, "TOWARDS_OBJECTS_TEXTURES", 0.0)
    towards = infer_background(paint, img) == 1
    assert towards.sum() > at_background.sum()
    np.testing.assert_array_equal(infer_background(paint, img, textures=True) == 1, at_background)
    assert background.towards_objects(False) == 0.2 and background.towards_objects(True) == 0.0

    ml = np.stack([np.where(paint == 2, 1, np.where(paint == 1, 2, 0))]).astype(np.uint8)
    np.testing.assert_array_equal(infer_background_multilabel(ml, img)[0] == 2, towards)
    np.testing.assert_array_equal(infer_background_multilabel(ml, img, textures=True)[0] == 2, at_background)
    for textures, expected in ((False, towards), (True, at_background)):
        got = implied_labels(paint, img, "exclusive", outlines=False, background=True, textures=textures)
        np.testing.assert_array_equal(got["background"] == 1, expected)


@pytest.fixture
def dim_and_bright_disks() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(image, paint, objects, r_bright)``: a dim disk (contrast 30, painted inside) and an
    unpainted disk four times brighter, blurred (σ 2 px) into a noisy background."""
    from scipy import ndimage as ndi

    yy, xx = np.mgrid[:64, :96]
    dim = np.hypot(yy - 32, xx - 24) <= 10
    r_bright = np.hypot(yy - 32, xx - 68)
    bright = r_bright <= 12
    rng = np.random.default_rng(0)
    img = ndi.gaussian_filter(dim * 30.0 + bright * 120.0, 2.0) + 10.0 + rng.normal(0, 1.0, dim.shape)
    paint = np.zeros(dim.shape, np.uint8)
    paint[2:5, 2:90] = 1
    paint[30:34, 18:30] = 2
    return img.astype(np.float32), paint, dim | bright, r_bright


def test_the_rim_rule_takes_the_blurred_rim_of_objects_brighter_than_the_painted_ones(
        monkeypatch, dim_and_bright_disks):
    """The threshold is set by the painted (dim) object; around the brighter one it stops short
    of a rim that is still darker than a sixth of that object's contrast. :data:`RIM_SHARE`
    (0.15, the default) takes that rim (2–4 px outside the bright disk), nothing of either
    disk, the same on a bright background (the image negated), and nothing at 0; a larger
    share reaches closer to the disk."""
    from segstudio.core import background

    img, paint, objects, r = dim_and_bright_disks
    assert background.RIM_SHARE == 0.15
    with_rim = infer_background(paint, img) == 1
    monkeypatch.setattr(background, "RIM_SHARE", 0.0)
    threshold_only = infer_background(paint, img) == 1
    assert not (threshold_only & ~with_rim).any(), "it only adds pixels"
    rim = (r > 15) & (r <= 16)
    assert threshold_only[rim].mean() < 0.7 and with_rim[rim].all()
    added = with_rim & ~threshold_only
    assert added.any() and r[added].min() > 14 and r[added].max() < 17
    assert not with_rim[objects].any(), "no pixel of either object"
    monkeypatch.setattr(background, "RIM_SHARE", 0.15)
    np.testing.assert_array_equal(infer_background(paint, -img) == 1, with_rim)
    monkeypatch.setattr(background, "RIM_SHARE", 0.25)
    closer = infer_background(paint, img) == 1
    assert closer[(r > 14) & (r <= 15)].all() and not closer[objects].any()


def test_the_rim_rule_is_off_with_textures_and_the_same_in_multilabel_mode(monkeypatch, dim_and_bright_disks):
    """*Textures* on: no rim (a texture's dark grains lie next to its bright ones). Multi-label
    paintings of the same content get the same rim as exclusive ones."""
    from segstudio.core import background

    img, paint, _, _ = dim_and_bright_disks
    monkeypatch.setattr(background, "RIM_SHARE", 0.0)
    threshold_only = infer_background(paint, img, textures=True) == 1
    monkeypatch.setattr(background, "RIM_SHARE", 0.25)
    assert background.rim_share(True) == 0.0 and background.rim_share(False) == 0.25
    np.testing.assert_array_equal(infer_background(paint, img, textures=True) == 1, threshold_only)
    ml = np.stack([np.where(paint == 2, 1, np.where(paint == 1, 2, 0))]).astype(np.uint8)
    np.testing.assert_array_equal(infer_background_multilabel(ml, img)[0] == 2, infer_background(paint, img) == 1)


def test_rim_reaches_one_slice_either_side_and_needs_an_object_like_peak():
    """In a volume the local peak is read one slice either side: the slices above and below an
    object, dimmer than a quarter of its contrast, are rim; two slices away, where the brightest
    thing within a slice is not object-like, they are not; the object itself never is."""
    from segstudio.core.background import rim

    g = np.zeros((5, 20, 20), np.float32)
    g[2, 6:14, 6:14] = 100.0  # the object
    g[[1, 3], 6:14, 6:14] = 20.0  # its axial blur
    g[[0, 4], 6:14, 6:14] = 5.0
    inferred = np.ones(g.shape, bool)
    inferred[:, 6:14, 6:14] = False
    out = rim(g, inferred, np.ones(g.shape, bool), level=80.0, share=0.25)
    assert out[[1, 3], 6:14, 6:14].all()
    assert not out[[0, 2, 4]].any()
    assert not (out & inferred).any()
    assert not rim(g, inferred, np.ones(g.shape, bool), level=80.0, share=0.1).any(), "20 > 0.1 of the way"


@pytest.mark.parametrize("bright", [False, True])
def test_the_background_side_follows_the_local_contrast_not_the_medians(spots_on_a_ramp, bright):
    """On a background that runs brighter than the objects, the paint's medians say the wrong
    side (a correction round into dim objects did this on the quality matrix's *dim* images and
    switched the rule off); the objects still stand out from what lies around them."""
    from segstudio.core.background import bright_background, smoothed_intensity

    img, paint, spots = spots_on_a_ramp(bright)
    g = smoothed_intensity(img, None, 2)
    by_medians = np.median(g[paint == 1]) > np.median(g[paint == 2])
    assert by_medians != bright, "the scene is one where the medians say the wrong side"
    assert bright_background(paint, g, 1) == bright
    out = infer_background(paint, img)
    assert out[paint == 0].any(), "the rule stays on"
    assert not out[spots].any(), "no spot is inferred background"


@pytest.mark.parametrize("bright", [False, True])
def test_on_an_uneven_background_the_rule_reads_the_local_background(spots_on_a_ramp, bright):
    """With *uneven* (wide context on), the background as bright as the spots on the dark end
    is background too; one threshold for the image stops at the dark end."""
    img, paint, spots = spots_on_a_ramp(bright)
    ring = ndi.binary_dilation(spots, iterations=4)
    bright_end = np.zeros(img.shape, bool)
    bright_end[:, 120:] = True
    bright_end &= ~ring & (paint == 0)
    one = infer_background(paint, img) == 1
    local = infer_background(paint, img, uneven=True) == 1
    assert one[bright_end].mean() < 0.05, "one threshold leaves the bright end"
    assert local[bright_end].mean() > 0.8, "against the local background it is background"
    assert local[~ring & (paint == 0)].mean() > 0.8
    assert not local[spots].any(), "no spot is inferred background"
    ml = np.zeros((1, *paint.shape), np.uint8)
    ml[0][paint == 1], ml[0][paint == 2] = 2, 1
    np.testing.assert_array_equal(infer_background_multilabel(ml, img, uneven=True)[0] == 2, local)


def test_the_background_side_of_a_flat_image_is_dark():
    """No local contrast and equal medians: the tie reads as a dark background, without error;
    so does a painting without object strokes."""
    from segstudio.core.background import bright_background

    paint = np.zeros((16, 16), np.uint8)
    paint[0, :] = 1
    paint[15, :] = 2
    assert bright_background(paint, np.full(paint.shape, 3.0, np.float32), 1) is False
    assert bright_background(np.where(paint == 2, 0, paint).astype(np.uint8), np.ones((16, 16), np.float32), 1) is False


def test_local_contrast_matches_scipy_in_each_plane():
    from scipy import ndimage as ndi

    from segstudio.core.background import local_contrast

    rng = np.random.default_rng(1)
    field = ndi.gaussian_filter(rng.normal(0.0, 1.0, (3, 150, 130)), (0, 6, 6)).astype(np.float32)
    field *= 10.0 / field.std()
    field += np.linspace(0.0, 40.0, 130, dtype=np.float32)  # a ramp across x
    at = np.zeros(field.shape, bool)
    at[:, ::7, ::5] = True
    for sigma in (8.0, 32.0):
        exact = (field - ndi.gaussian_filter(field, (0, sigma, sigma), mode="nearest"))[at]
        got = local_contrast(field, at, sigma)
        assert got.shape == exact.shape
        assert np.abs(got - exact).max() < 0.15 * np.ptp(exact), sigma
        assert np.corrcoef(got, exact)[0, 1] > 0.98, sigma
    # planes are read apart: a volume's answer is its planes' answers
    per_plane = np.concatenate([local_contrast(field[z], at[z]) for z in range(3)])
    np.testing.assert_allclose(local_contrast(field, at), per_plane, rtol=1e-5, atol=1e-4)
