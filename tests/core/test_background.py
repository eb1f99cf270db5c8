"""Background that looks like the painted background."""

from __future__ import annotations

import numpy as np
import pytest

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
    """Two bright classes, each channel's absent strokes include the other class: no channel
    separates alone, yet what is absent in every channel is dark, what is present somewhere
    bright, so background look-alikes are absent in every channel (as exclusive mode infers)."""
    img, paint = _scene()
    paint[44:47, 38:46] = 3  # a stroke in the second object, a second class
    ml = np.zeros((2, *img.shape), np.uint8)
    ml[:, paint > 0] = 2
    ml[0][paint == 2] = 1
    ml[1][paint == 3] = 1
    assert not infer_background_multilabel(ml[:1], img).any(), "channel 0 alone does not separate"
    out = infer_background_multilabel(ml, img)
    excl = infer_background(paint, img) == 1
    assert excl.any()
    for c in range(2):
        np.testing.assert_array_equal(out[c] == 2, excl)
        assert not (out[c] == 1).any() and not out[c][ml[c] > 0].any(), "only unpainted pixels, only absent"


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


def test_only_look_alikes_joined_to_a_background_stroke_are_inferred():
    """A dark hole inside an object, and dark background cut off from every background stroke
    by a bright ring, look like the background but are not joined to it: left alone."""
    from unittest import mock

    from segstudio.core import background

    rng = np.random.default_rng(2)
    img = rng.normal(10.0, 1.0, (64, 64)).astype(np.float32)
    img[10:22, 10:22] += 50.0  # the painted object
    img[34:56, 36:62] += 50.0  # an unpainted object ...
    img[40:50, 44:54] -= 50.0  # ... with a background-dark hole
    img[2:30, 36:64] += 50.0  # a bright ring ...
    img[6:26, 40:60] -= 50.0  # ... around a dark pocket that no stroke reaches
    paint = np.zeros(img.shape, np.uint8)
    paint[58:61, 2:34] = 1
    paint[14:17, 12:20] = 2
    hole, pocket = (slice(40, 50), slice(44, 54)), (slice(6, 26), slice(40, 60))
    with mock.patch.object(background, "reachable", lambda mask, seeds: mask):
        loose = infer_background(paint, img)
    assert loose[hole].any() and loose[pocket].any(), "by brightness alone both look like background"
    out = infer_background(paint, img)
    assert not out[hole].any(), "a hole inside an object is not background"
    assert not out[pocket].any(), "background cut off from every stroke is left to the network"
    near = np.zeros(img.shape, bool)
    near[30:64, 0:30] = True
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
