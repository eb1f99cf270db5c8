"""Class weights from paintings."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from segstudio.core.errors import UserInputError
from segstudio.core import weights as weights_module
from segstudio.core.weights import (
    DENSE_COVERAGE,
    METHODS,
    STROKE_COVERAGE,
    compute_weights,
    coverage_of,
    painted_extent,
    pos_weight_view,
    pos_weights_from_counts,
    tempered_note,
    tempering,
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
    cw = compute_weights(lab, "multilabel", coverage=0.0)  # as strokes (this painting is dense)
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


# ---------------------------------------------------------------- dense paintings


def test_painted_extent_counts_the_paint_and_its_bounding_box():
    a = np.zeros((20, 30), np.uint8)
    a[2:5, 3:9] = 1
    a[10, 20] = 2
    assert painted_extent(a, "exclusive") == (19, 9 * 18)
    assert painted_extent(np.zeros((4, 4), np.uint8), "exclusive") == (0, 0)
    assert painted_extent(None, "exclusive") == (0, 0)
    ml = np.zeros((2, 5, 6, 7), np.uint8)
    ml[0, 1, 2, 3] = 2  # absent paint counts: the pixel is labelled
    ml[1, 3, 4, 5] = 1
    ml[1, 1, 2, 3] = 1  # the same pixel in another channel counts once
    assert painted_extent(ml, "multilabel") == (2, 3 * 3 * 3)


def test_painted_extent_in_chunks_equals_the_whole(monkeypatch):
    rng = np.random.default_rng(0)
    vol = np.zeros((17, 9, 11), np.uint8)
    vol[3:12, 2:7, 1:10] = rng.integers(0, 3, (9, 5, 9))
    whole = painted_extent(vol, "exclusive")
    monkeypatch.setattr(weights_module, "COUNT_CHUNK", 50)  # a few slices at a time
    assert painted_extent(vol, "exclusive") == whole
    ml = np.stack([vol == 1, vol == 2]).astype(np.uint8)
    assert painted_extent(ml, "multilabel") == whole


def test_coverage_sums_over_images():
    assert coverage_of([(10, 100), (90, 100)]) == 0.5
    assert coverage_of([]) == 0.0
    assert coverage_of([(0, 0), (5, 5)]) == 1.0


@pytest.mark.parametrize("method", ["balanced", "inverse_sqrt", "median_frequency"])
def test_coverage_tempers_the_raw_weights(method):
    counts = [900, 100, 30]
    raw = {"balanced": lambda n: sum(counts) / (3 * n), "inverse_sqrt": lambda n: 1 / np.sqrt(n),
           "median_frequency": lambda n: np.median(np.array(counts) / sum(counts)) / (n / sum(counts))}[method]
    for c in (0.0, 0.1, 0.2, 1.0):
        expected = np.array([raw(n) for n in counts]) ** tempering(c)
        cw = weights_from_counts(counts, method, clamp=(0.0, 1e9), coverage=c)
        np.testing.assert_allclose(cw.weights, expected / expected.mean())
        assert cw.coverage == c
    assert weights_from_counts(counts, method, coverage=1.0).weights == (1.0, 1.0, 1.0)
    half = (STROKE_COVERAGE + DENSE_COVERAGE) / 2  # tempered to the power 1/2
    pw = pos_weights_from_counts([20], [50], method, coverage=half, clamp=(0.0, 1e9)).weights[0]
    excl = weights_from_counts([20, 50], method, clamp=(0.0, 1e9)).weights
    np.testing.assert_allclose(pw, np.sqrt(excl[0] / excl[1]))
    assert pos_weights_from_counts([20], [50], method, coverage=1.0).weights == (1.0,)
    with pytest.raises(ValueError, match="coverage"):
        weights_from_counts(counts, method, coverage=1.5)


def test_tempering_leaves_strokes_alone_and_falls_to_zero_for_dense_labels():
    assert tempering(0.0) == tempering(STROKE_COVERAGE) == 1.0
    assert tempering(1.0) == tempering(DENSE_COVERAGE) == 0.0
    powers = [tempering(c) for c in np.linspace(0, 1, 41)]
    assert all(a >= b for a, b in zip(powers, powers[1:]))
    assert tempering((STROKE_COVERAGE + DENSE_COVERAGE) / 2) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="coverage"):
        tempering(-0.1)
    assert tempered_note(STROKE_COVERAGE) == "" and tempered_note(1.0) == "tempered to the power 0.00"


def test_dense_labels_weigh_every_class_alike_and_strokes_keep_theirs():
    """A fully annotated image (what ``segstudio train --labels`` often gets) counts the classes'
    own frequencies: evening them out would push every ambiguous pixel to the rarer class."""
    truth = np.ones((64, 64), np.uint8)
    truth[10:20, 10:20] = 2
    dense = compute_weights(truth, "exclusive")
    assert dense.coverage == 1.0 and dense.weights == (1.0, 1.0)
    # an annotated crop of a larger image is dense too
    crop = np.zeros((256, 256), np.uint8)
    crop[:64, :64] = truth
    assert compute_weights(crop, "exclusive").weights == (1.0, 1.0)
    # strokes across the image: within a few percent of the method's weights
    strokes = np.zeros((256, 256), np.uint8)
    strokes[5, 5:250] = 1
    strokes[200, 5:250] = 1
    strokes[100, 100:130] = 2
    sparse = compute_weights(strokes, "exclusive")
    assert 0 < sparse.coverage < STROKE_COVERAGE
    assert sparse.weights == compute_weights(strokes, "exclusive", coverage=0.0).weights
    assert sparse.weights[1] > 2 * sparse.weights[0]
    ml = np.stack([np.where(truth == 2, 1, 2)]).astype(np.uint8)  # present / absent everywhere
    assert compute_weights(ml, "multilabel").weights == (1.0,)
