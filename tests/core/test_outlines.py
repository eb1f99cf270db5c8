"""Labels inferred from closed traced outlines."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from segstudio.core.outlines import infer_from_outlines, infer_multilabel
from segstudio.core.samples import sample_2d

BG, INSIDE, OUTLINE = 1, 2, 3


def _square(size: int = 40, lo: int = 12, hi: int = 27) -> np.ndarray:
    """A 1-pixel closed outline (class 3) of a square with a short stroke (class 2) inside."""
    paint = np.zeros((size, size), np.uint8)
    paint[lo, lo : hi + 1] = paint[hi, lo : hi + 1] = OUTLINE
    paint[lo : hi + 1, lo] = paint[lo : hi + 1, hi] = OUTLINE
    paint[19, 16:23] = INSIDE
    return paint


def test_fill_and_halo_of_a_closed_outline() -> None:
    paint = _square()
    out = infer_from_outlines(paint)
    inside = np.zeros_like(paint, bool)
    inside[13:27, 13:27] = True
    assert (out[inside & (paint == 0)] == INSIDE).all()
    assert (out[paint > 0] == 0).all(), "painted pixels are never overwritten"
    obj = np.zeros_like(paint, bool)
    obj[12:28, 12:28] = True
    dist = ndi.distance_transform_edt(~obj)
    assert (out[(dist >= 2) & (dist <= 3)] == BG).all()
    assert (out[dist == 1] == 0).all(), "the first pixel outside the outline is left alone"
    assert (out[dist > 3] == 0).all()
    assert out.dtype == paint.dtype and out.shape == paint.shape


def test_no_halo_without_background_and_custom_band() -> None:
    paint = _square()
    assert set(np.unique(infer_from_outlines(paint, background=None))) == {0, INSIDE}
    assert set(np.unique(infer_from_outlines(paint, halo=None))) == {0, INSIDE}
    wide = infer_from_outlines(paint, halo=(1, 5))
    assert (wide == BG).sum() > (infer_from_outlines(paint) == BG).sum()


@pytest.mark.parametrize("edit", ["open", "empty", "two_classes", "background_loop"])
def test_nothing_is_inferred_when_the_outline_says_nothing(edit: str) -> None:
    paint = _square()
    if edit == "open":
        paint[12, 20:23] = 0  # a gap: the outline no longer encloses anything
    elif edit == "empty":
        paint[paint == INSIDE] = 0
    elif edit == "two_classes":
        paint[24, 16:20] = BG  # two other classes inside: ambiguous
    else:
        paint[paint == OUTLINE] = BG  # a background scribble around an object is a lasso
    assert not infer_from_outlines(paint).any()


def test_halo_never_overwrites_a_neighbouring_object() -> None:
    a = _square(60, 10, 25)
    b = _square(60, 10, 25)
    b = np.roll(b, 16, axis=1)  # a second object whose outline touches the first's
    paint = np.maximum(a, b)
    out = infer_from_outlines(paint)
    a_in, b_in = (slice(11, 25), slice(11, 25)), (slice(11, 25), slice(27, 41))
    assert (out[a_in][paint[a_in] == 0] == INSIDE).all()
    # b's inside lies 2-3 pixels from a: inside a's halo band, and still inferred as inside
    assert (out[b_in][paint[b_in] == 0] == INSIDE).all()


def test_the_image_gates_the_halo() -> None:
    paint = _square()
    paint[2, 2:8] = BG  # painted background: dark
    image = np.full(paint.shape, 10.0, np.float32)
    image[12:28, 12:28] = 100.0  # the object: bright, like its outline
    image[:, 30:] = 100.0  # a bright neighbour right of the object
    out = infer_from_outlines(paint, image)
    ungated = infer_from_outlines(paint)
    assert (out[:, :26] == ungated[:, :26]).all(), "dark background keeps its halo"
    assert (ungated[:, 30:] == BG).any() and not (out[:, 30:] == BG).any(), "the bright side loses it"
    assert (out == INSIDE).sum() == (ungated == INSIDE).sum(), "the gate touches the halo only"
    with pytest.raises(ValueError, match="does not match"):
        infer_from_outlines(paint, image[:-1])


def test_3d_works_per_slice() -> None:
    vol = np.zeros((3, 40, 40), np.uint8)
    vol[1] = _square()
    out = infer_from_outlines(vol)
    assert not out[0].any() and not out[2].any()
    np.testing.assert_array_equal(out[1], infer_from_outlines(_square()))


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="2D or 3D"):
        infer_from_outlines(np.zeros(5, np.uint8))
    with pytest.raises(ValueError, match="halo"):
        infer_from_outlines(_square(), halo=(0, 2))


def test_on_the_simulated_strokes_the_inferred_labels_are_mostly_right() -> None:
    sample = sample_2d(0)
    out = infer_from_outlines(sample.paintings, sample.image)
    new = out > 0
    assert new.sum() > 5 * (sample.paintings > 0).sum()
    assert np.mean(out[new] == sample.truth[new]) > 0.99
    ungated = infer_from_outlines(sample.paintings)
    assert np.mean(ungated[ungated > 0] == sample.truth[ungated > 0]) < 0.99


@pytest.mark.parametrize("axis", [0, 2])
def test_a_multichannel_image_gates_with_its_channel_mean(axis: int) -> None:
    paint = _square()
    paint[2, 2:8] = BG
    gray = np.full(paint.shape, 10.0, np.float32)
    gray[12:28, 12:28] = 100.0
    gray[:, 30:] = 100.0
    stack = np.stack([gray * 3, np.zeros_like(gray), np.zeros_like(gray)], axis=axis).astype(np.uint16)
    np.testing.assert_array_equal(
        infer_from_outlines(paint, stack, channel_axis=axis), infer_from_outlines(paint, gray)
    )
    with pytest.raises(ValueError, match="does not match"):
        infer_from_outlines(paint, stack)  # channels not declared


def test_an_outline_around_its_own_class_fills_that_class() -> None:
    """Two classes only: the object traced and marked inside with the object class."""
    paint = _square()
    paint[paint == OUTLINE] = INSIDE
    out = infer_from_outlines(paint)
    assert (out[13:27, 13:27][paint[13:27, 13:27] == 0] == INSIDE).all()
    assert (out == BG).any(), "the band outside the object is background"


def test_multilabel_channels_follow_the_same_rules() -> None:
    """Object channel: present outline + present stroke -> present inside, absent band outside.
    Boundary channel: present outline around an absent stroke -> absent inside, no band
    (a band there was measured and not kept: benchmarks/RESULTS.md, *The boundary
    channel's band*)."""
    excl = _square()
    paint = np.zeros((2, *excl.shape), np.uint8)
    paint[0][excl > 0] = 1  # the outline and the inside stroke are both "object"
    paint[1][excl == OUTLINE] = 1  # the outline is "boundary"
    paint[1][excl == INSIDE] = 2  # the inside stroke is "not boundary"
    out = infer_multilabel(paint)
    assert out.shape == paint.shape and out.dtype == paint.dtype
    hole = np.zeros(excl.shape, bool)
    hole[13:27, 13:27] = True
    hole &= excl == 0
    assert (out[0][hole] == 1).all() and (out[1][hole] == 2).all()
    obj = np.zeros(excl.shape, bool)
    obj[12:28, 12:28] = True
    dist = ndi.distance_transform_edt(~obj)
    assert (out[0][(dist >= 2) & (dist <= 3)] == 2).all()
    assert not out[1][~obj].any()
    assert (out[paint > 0] == 0).all(), "painted pixels are never overwritten"
    # the same content gives the same object in both forms
    excl_out = infer_from_outlines(excl)
    np.testing.assert_array_equal(out[0] == 1, (excl_out == INSIDE))
    np.testing.assert_array_equal(out[0] == 2, excl_out == BG)


def test_multilabel_interior_stroke_touching_the_outline_still_fills() -> None:
    """An interior stroke that touches the outline is, in the object channel, one *present*
    stroke with it; the combination of channels (boundary present vs absent) keeps them apart,
    so the object still fills as in exclusive mode (before, it filled nothing)."""
    excl = _square()
    excl[19, 13:23] = INSIDE  # reaches the outline at x = 12
    paint = np.zeros((2, *excl.shape), np.uint8)
    paint[0][excl > 0] = 1
    paint[1][excl == OUTLINE] = 1
    paint[1][excl == INSIDE] = 2
    out = infer_multilabel(paint)
    excl_out = infer_from_outlines(excl)
    assert (excl_out == INSIDE).sum() > 150
    np.testing.assert_array_equal(out[0] == 1, excl_out == INSIDE)
    np.testing.assert_array_equal(out[0] == 2, excl_out == BG)
    np.testing.assert_array_equal(out[1] == 2, excl_out == INSIDE)
    # a lone channel keeps its rule: a present loop around nothing infers nothing
    ring = paint[:1].copy()
    ring[0][excl == INSIDE] = 0
    assert not infer_multilabel(ring).any()
    # a hole holding paint that is present and paint that is absent in the channel: nothing
    mixed = paint.copy()
    mixed[0][22, 16:20] = 2
    mixed[1][22, 16:20] = 2
    assert not (infer_multilabel(mixed)[0] == 1).any()


def test_multilabel_in_3d_and_with_many_channels() -> None:
    excl = _square()
    excl[19, 13:23] = INSIDE
    vol = np.zeros((3, *excl.shape), np.uint8)
    vol[1] = excl
    paint = np.zeros((6, *vol.shape), np.uint8)  # 3**6 codes: wider than uint8
    paint[0][vol > 0] = 1
    paint[1][vol == OUTLINE] = 1
    paint[1][vol == INSIDE] = 2
    paint[5][vol > 0] = 2  # a channel absent everywhere painted
    out = infer_multilabel(paint)
    np.testing.assert_array_equal(out[0][1] == 1, infer_from_outlines(excl) == INSIDE)
    assert not out[0][0].any() and not out[0][2].any()
    assert not out[5].any()
    # beyond 39 classes the combinations no longer fit int64 codes: each channel on its own
    many = np.zeros((41, *_square().shape), np.uint8)
    many[0][_square() > 0] = 1
    np.testing.assert_array_equal(infer_multilabel(many)[0] == 1, infer_from_outlines(_square()) == INSIDE)


def test_exclusive_loop_around_background_paint_gets_no_band() -> None:
    """Exclusive mode: an outline around background paint (a lasso, or a hole traced in an
    object) fills the hole as background and says nothing about its outside."""
    paint = _square()
    paint[paint == INSIDE] = BG
    out = infer_from_outlines(paint)
    assert (out[13:27, 13:27][paint[13:27, 13:27] == 0] == BG).all()
    assert not out[:12].any() and not out[28:].any()
