"""Label schema: validation messages and conversion to training targets."""

from __future__ import annotations

import numpy as np
import pytest

from segstudio.core.annotations import (
    IGNORE_INDEX,
    PaintingWarning,
    exclusive_target,
    mask_nonfinite,
    multilabel_target,
    stack_multilabel,
    validate_exclusive,
    validate_multilabel,
)
from segstudio.core.errors import UserInputError


def painted(shape=(8, 8)):
    lab = np.zeros(shape, np.uint8)
    lab[0, :3] = 1
    lab[5, 2:6] = 2
    return lab


def test_exclusive_counts():
    rep = validate_exclusive(painted(), 3, spatial_shape=(8, 8))
    assert rep.counts == (3, 4, 0)
    assert rep.painted == 7


@pytest.mark.parametrize(
    ("labels", "kwargs", "match"),
    [
        (np.zeros((8, 9), np.uint8), {"spatial_shape": (8, 8)}, "does not match image shape"),
        (np.zeros((2, 8, 8), np.uint8), {"spatial_shape": (8, 8)}, "3 dimensions"),
        (np.full((8, 8), -1), {}, "must not be negative"),
        (np.full((8, 8), 4), {"n_classes": 3}, "beyond the 3 classes"),
        (np.full((8, 8), 1.5), {}, "whole numbers"),
        (np.full((8, 8), np.nan), {}, "NaN"),
        (np.zeros((8, 8), np.uint8), {}, "nothing is painted"),
    ],
)
def test_exclusive_errors(labels, kwargs, match):
    with pytest.raises(UserInputError, match=match):
        validate_exclusive(labels, **kwargs)


def test_float_labels_with_whole_values_are_accepted():
    rep = validate_exclusive(painted().astype(np.float32), 2)
    assert rep.counts == (3, 4)


def test_one_class_only_warns():
    lab = np.zeros((4, 4), np.uint8)
    lab[0] = 1
    with pytest.warns(PaintingWarning, match="only one class"):
        validate_exclusive(lab, 2)


def test_empty_paint_allowed_for_gui():
    with pytest.warns(PaintingWarning, match="nothing is painted"):
        rep = validate_exclusive(np.zeros((4, 4), np.uint8), 2, require_paint=False)
    assert rep.painted == 0


def test_paint_on_nan_pixels_warns_and_is_masked():
    img = np.ones((8, 8), np.float32)
    img[0, 0] = np.nan
    lab = painted()
    with pytest.warns(PaintingWarning, match="NaN"):
        validate_exclusive(lab, 2, image=img)
    cleaned = mask_nonfinite(lab, img, None, "exclusive")
    assert cleaned[0, 0] == 0 and lab[0, 0] == 1  # the user's paintings are not modified


def test_exclusive_target_uses_ignore_index():
    t = exclusive_target(painted())
    assert t.dtype == np.int64
    assert (t[painted() == 0] == IGNORE_INDEX).all()
    assert (t[painted() == 1] == 0).all() and (t[painted() == 2] == 1).all()


def test_multilabel_roundtrip_and_errors():
    lab = np.zeros((2, 6, 6), np.uint8)
    lab[0, 0] = 1
    lab[0, 5] = 2
    lab[1, 2] = 2
    lab[1, 3] = 1
    rep = validate_multilabel(lab, 2, spatial_shape=(6, 6))
    assert rep.counts == (6, 6) and rep.absent_counts == (6, 6)
    target, mask = multilabel_target(lab)
    assert target.dtype == np.float32 and mask.dtype == np.float32
    assert target[0, 0].all() and not target[0, 5].any() and mask[0, 5].all() and not mask[0, 1].any()
    with pytest.raises(UserInputError, match="0 \\(unpainted\\), 1 \\(present\\) or 2"):
        validate_multilabel(lab + 1)
    with pytest.raises(UserInputError, match="class channels, expected 3"):
        validate_multilabel(lab, 3)
    with pytest.raises(UserInputError, match="3 dimensions"):
        validate_multilabel(lab[0], spatial_shape=(6, 6))
    assert stack_multilabel([lab[0], lab[1]]).shape == (2, 6, 6)
