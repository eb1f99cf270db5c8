"""Class weights from paintings."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from segstudio.core.errors import UserInputError
from segstudio.core.weights import (
    METHODS,
    compute_weights,
    pos_weight_view,
    pos_weights_from_counts,
    weights_from_counts,
)


def test_balanced_matches_formula():
    counts = [300, 100, 50]
    n, c = sum(counts), 3
    raw = np.array([n / (c * k) for k in counts])
    expected = raw / raw.mean()
    cw = weights_from_counts(counts, "balanced", clamp=(0.0, 100.0))
    np.testing.assert_allclose(cw.weights, expected)
    assert np.isclose(np.mean(cw.weights), 1.0)


@pytest.mark.parametrize("method", METHODS)
def test_every_method_is_finite_normalised_and_orders_rare_classes_up(method):
    cw = weights_from_counts([1000, 100, 10], method, clamp=(0.0, 1e9))
    w = np.array(cw.weights)
    assert np.isfinite(w).all()
    assert np.isclose(w.mean(), 1.0)
    if method != "none":
        assert w[0] < w[1] < w[2]


def test_effective_number_is_not_uniform():
    w = weights_from_counts([5000, 500, 50], "effective_number", clamp=(0.0, 1e9)).weights
    assert max(w) / min(w) > 10


def test_unpainted_class_gets_zero_and_warning():
    cw = weights_from_counts([10, 0, 30])
    assert cw.weights[1] == 0.0
    assert any("class 2 has no paint" in m for m in cw.warnings)
    assert np.isfinite(cw.weights).all()


def test_clamp_and_pins():
    # Normalised to mean 1, the rare class gets ~2 and the common one ~0: both are clamped.
    cw = weights_from_counts([100000, 100000, 1], clamp=(0.1, 1.5), pinned={0: 0.5})
    assert cw.weights == (0.5, 0.1, 1.5)
    assert cw.pinned == (0,)


def test_compute_from_several_images_counts_together():
    a = np.zeros((4, 4), np.uint8)
    a[0] = 1
    b = np.zeros((4, 4), np.uint8)
    b[1, :2] = 2
    cw = compute_weights([a, b], "exclusive")
    assert cw.counts == (4, 2)
    assert cw.to_json()["classes"] == [1, 2]


def test_multilabel_pos_weight():
    lab = np.zeros((2, 10, 10), np.uint8)
    lab[0, :2] = 1  # 20 present
    lab[0, 5:] = 2  # 50 absent
    lab[1, 0, :4] = 1
    lab[1, 9, :2] = 2
    cw = compute_weights(lab, "multilabel")
    np.testing.assert_allclose(cw.weights, [50 / 20, 0.5])
    assert cw.counts == (20, 4) and cw.absent_counts == (50, 2)


@pytest.mark.parametrize("method, expected", [
    ("balanced", 50 / 20), ("median_frequency", 50 / 20), ("inverse_sqrt", np.sqrt(50 / 20)), ("none", 1.0),
])
def test_multilabel_pos_weight_follows_the_method(method, expected):
    """pos_weight is the ratio of the weights the method gives present and absent paint."""
    cw = pos_weights_from_counts([20], [50], method)
    np.testing.assert_allclose(cw.weights, [expected])
    assert cw.method == method
    # the same as the two exclusive classes' weights
    excl = weights_from_counts([20, 50], method, clamp=(0.0, 1e9)).weights
    np.testing.assert_allclose(cw.weights[0], excl[0] / excl[1])


def test_multilabel_without_present_paint_is_one():
    cw = pos_weights_from_counts([0, 5], [10, 5])
    assert cw.weights == (1.0, 1.0) and cw.warnings


def test_pos_weight_view_broadcasts_over_spatial_dims():
    w = pos_weight_view([1.0, 2.0, 3.0], 2)
    assert w.shape == (3, 1, 1)
    target = torch.zeros(2, 3, 5, 7)
    assert (target * w).shape == target.shape
    assert pos_weight_view([1.0, 2.0], 3).shape == (2, 1, 1, 1)


def test_bad_method_and_negative_labels():
    with pytest.raises(UserInputError, match="unknown weight method"):
        weights_from_counts([1, 2], "nope")
    with pytest.raises(UserInputError, match="negative"):
        compute_weights(np.full((2, 2), -1), "exclusive")
