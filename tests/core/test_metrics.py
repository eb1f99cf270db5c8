"""Tests of segstudio.core.metrics: hand-computed Dice, HD95 geometry and brute force."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from scipy import ndimage
from scipy.spatial.distance import cdist

from segstudio.core.metrics import (
    ClassMetrics,
    dice_binary,
    dice_per_class,
    evaluate,
    evaluate_multilabel,
    hd95,
    surface,
)

# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------


def _ball(shape: tuple[int, ...], radius: float) -> np.ndarray:
    centre = [(s - 1) / 2 for s in shape]
    grids = np.indices(shape, dtype=float)
    r2 = sum((g - c) ** 2 for g, c in zip(grids, centre))
    return r2 <= radius**2


def _blob(shape: tuple[int, ...], seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    field = ndimage.gaussian_filter(rng.standard_normal(shape), sigma=2.0)
    return field > 0.05


def _surface_points_bruteforce(mask: np.ndarray) -> np.ndarray:
    """Voxel indices of mask voxels with a face neighbour outside the mask or the array."""
    padded = np.pad(mask, 1, constant_values=False)
    points = []
    for idx in zip(*np.nonzero(mask)):
        p = tuple(i + 1 for i in idx)
        for axis in range(mask.ndim):
            for step in (-1, 1):
                q = list(p)
                q[axis] += step
                if not padded[tuple(q)]:
                    points.append(idx)
                    break
            else:
                continue
            break
    return np.asarray(points, dtype=float)


def hd95_bruteforce(a: np.ndarray, b: np.ndarray, spacing: tuple[float, ...]) -> float:
    pa = _surface_points_bruteforce(a) * np.asarray(spacing)
    pb = _surface_points_bruteforce(b) * np.asarray(spacing)
    d = cdist(pa, pb)
    return float(np.percentile(np.concatenate([d.min(axis=1), d.min(axis=0)]), 95))


# ---------------------------------------------------------------------------------------------
# Dice
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("a", "b", "expected"), [
    ([1, 1, 0, 0], [1, 0, 1, 0], 0.5),          # 2*1 / (2+2)
    ([1, 1, 1, 0], [1, 0, 0, 0], 0.5),          # 2*1 / (3+1)
    ([1, 1, 1, 1], [1, 1, 1, 0], 6 / 7),        # 2*3 / (4+3)
    ([1, 1, 0, 0], [1, 1, 0, 0], 1.0),
    ([1, 1, 0, 0], [0, 0, 1, 1], 0.0),
    ([0, 0, 0, 0], [0, 0, 0, 0], 1.0),          # both empty: perfect
    ([0, 0, 0, 0], [0, 1, 0, 0], 0.0),          # one empty: worst
    ([0, 1, 0, 0], [0, 0, 0, 0], 0.0),
])
def test_dice_binary_hand_cases(a: list[int], b: list[int], expected: float) -> None:
    assert dice_binary(np.array(a), np.array(b)) == pytest.approx(expected)


def test_dice_binary_shape_mismatch() -> None:
    with pytest.raises(ValueError, match="shape"):
        dice_binary(np.zeros((2, 2)), np.zeros((2, 3)))


def test_dice_per_class_hand_computed() -> None:
    pred = np.array([[0, 1, 1],
                     [2, 2, 1],
                     [0, 0, 0]])
    truth = np.array([[0, 1, 0],
                      [2, 2, 2],
                      [0, 0, 0]])
    # class 0: pred {00,20,21,22} truth {00,02,20,21,22}: 2*4/(4+5)
    # class 1: pred {01,02,12} truth {01}: 2*1/(3+1); class 2: pred 2 truth 3, inter 2
    # class 3: absent from both
    result = dice_per_class(pred, truth, [0, 1, 2, 3])
    assert result == pytest.approx({0: 8 / 9, 1: 0.5, 2: 0.8, 3: 1.0})
    assert all(isinstance(k, int) for k in result)


# ---------------------------------------------------------------------------------------------
# HD95
# ---------------------------------------------------------------------------------------------


def test_surface_of_square_is_its_outline() -> None:
    mask = np.zeros((5, 5), bool)
    mask[1:4, 1:4] = True
    expected = mask.copy()
    expected[2, 2] = False
    np.testing.assert_array_equal(surface(mask), expected)
    # voxels on the array border belong to the surface
    assert surface(np.ones((3, 3), bool)).sum() == 8


def test_hd95_identical_masks_is_zero() -> None:
    mask = _blob((16, 16), seed=0)
    assert hd95(mask, mask) == 0.0


def test_hd95_single_points() -> None:
    a = np.zeros((8, 8), bool)
    b = np.zeros((8, 8), bool)
    a[0, 0] = True
    b[3, 4] = True
    assert hd95(a, b) == pytest.approx(5.0)
    assert hd95(a, b, spacing=(2.0, 1.0)) == pytest.approx(math.hypot(6.0, 4.0))


def test_hd95_concentric_discs() -> None:
    inner, outer = 8.0, 14.0
    a = _ball((41, 41), inner)
    b = _ball((41, 41), outer)
    assert abs(hd95(a, b) - (outer - inner)) <= 1.0
    # physical units scale with an isotropic spacing
    spacing = 0.5
    assert abs(hd95(a, b, (spacing, spacing)) - spacing * (outer - inner)) <= spacing


def test_hd95_concentric_spheres() -> None:
    inner, outer = 5.0, 9.0
    a = _ball((23, 23, 23), inner)
    b = _ball((23, 23, 23), outer)
    assert abs(hd95(a, b) - (outer - inner)) <= 1.0


def test_hd95_anisotropic_shift_along_z() -> None:
    a = np.zeros((10, 14, 14), bool)
    a[2:6, 2:12, 2:12] = True
    b = np.roll(a, 1, axis=0)
    assert hd95(a, b, spacing=(5.0, 1.0, 1.0)) == pytest.approx(5.0)
    assert hd95(a, b) == pytest.approx(1.0)
    # shifting along x instead is unaffected by the z spacing
    c = np.roll(a, 1, axis=2)
    assert hd95(a, c, spacing=(5.0, 1.0, 1.0)) == pytest.approx(1.0)


@pytest.mark.parametrize(("shape", "spacing"), [
    ((20, 20), (1.0, 1.0)),
    ((18, 22), (0.7, 1.9)),
    ((10, 12, 12), (1.0, 1.0, 1.0)),
    ((10, 12, 12), (2.5, 0.8, 1.1)),
])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_hd95_matches_bruteforce(shape: tuple[int, ...], spacing: tuple[float, ...],
                                 seed: int) -> None:
    a = _blob(shape, seed)
    b = _blob(shape, seed + 100)
    assert a.any() and b.any()
    assert hd95(a, b, spacing) == pytest.approx(hd95_bruteforce(a, b, spacing), rel=1e-9)


def test_hd95_is_symmetric() -> None:
    a, b = _blob((16, 16, 16), 5), _blob((16, 16, 16), 6)
    assert hd95(a, b, (3.0, 1.0, 1.0)) == pytest.approx(hd95(b, a, (3.0, 1.0, 1.0)))


def test_hd95_empty_conventions() -> None:
    empty = np.zeros((6, 6, 6), bool)
    full = _ball((6, 6, 6), 2.0)
    assert hd95(empty, empty) == 0.0
    assert math.isnan(hd95(empty, full))
    assert math.isnan(hd95(full, empty))


def test_hd95_spacing_validation() -> None:
    mask = _ball((8, 8), 2.0)
    with pytest.raises(ValueError, match="spacing"):
        hd95(mask, mask, spacing=(1.0, 1.0, 1.0))
    with pytest.raises(ValueError, match="spacing"):
        hd95(mask, mask, spacing=(1.0, 0.0))


# ---------------------------------------------------------------------------------------------
# evaluate
# ---------------------------------------------------------------------------------------------


def test_evaluate_label_images() -> None:
    truth = np.zeros((12, 12), int)
    truth[2:6, 2:6] = 1
    truth[8:11, 8:11] = 2
    pred = truth.copy()
    pred[8:11, 8:11] = 0          # class 2 missed entirely
    pred[0, 11] = 4               # class 4 only predicted
    metrics = evaluate(pred, truth, classes=[1, 2, 3, 4], spacing=(1.0, 2.0))
    by_class = {m.class_value: m for m in metrics}
    assert [m.class_value for m in metrics] == [1, 2, 3, 4]
    assert by_class[1] == ClassMetrics(1, 1.0, 0.0, False, False)
    assert by_class[2].dice == 0.0 and math.isnan(by_class[2].hd95)
    assert by_class[2].pred_empty and not by_class[2].truth_empty
    assert not by_class[2].hd95_defined
    assert by_class[3] == ClassMetrics(3, 1.0, 0.0, True, True) and by_class[3].hd95_defined
    assert by_class[4].dice == 0.0 and math.isnan(by_class[4].hd95)
    assert by_class[4].truth_empty and not by_class[4].pred_empty


def test_evaluate_consistent_with_building_blocks_3d() -> None:
    truth = np.where(_blob((10, 12, 12), 3), 1, 0) + np.where(_blob((10, 12, 12), 4), 2, 0)
    pred = np.where(_blob((10, 12, 12), 5), 1, 0) + np.where(_blob((10, 12, 12), 6), 2, 0)
    spacing = (2.0, 1.0, 1.0)
    metrics = evaluate(pred, truth, [1, 2, 3], spacing)
    dice = dice_per_class(pred, truth, [1, 2, 3])
    for m in metrics:
        assert m.dice == pytest.approx(dice[m.class_value])
        expected = hd95(pred == m.class_value, truth == m.class_value, spacing)
        assert m.hd95 == pytest.approx(expected, nan_ok=True)


def test_evaluate_multilabel() -> None:
    truth = np.stack([_ball((16, 16), 4.0), np.zeros((16, 16), bool), _blob((16, 16), 1)])
    pred = np.stack([_ball((16, 16), 6.0), np.zeros((16, 16), bool), np.zeros((16, 16), bool)])
    metrics = evaluate_multilabel(pred, truth, spacing=(1.0, 1.0), class_values=[1, 2, 5])
    assert [m.class_value for m in metrics] == [1, 2, 5]
    assert metrics[0].dice == pytest.approx(dice_binary(pred[0], truth[0]))
    assert metrics[0].hd95 == pytest.approx(hd95(pred[0], truth[0]))
    assert metrics[1] == ClassMetrics(2, 1.0, 0.0, True, True)
    assert metrics[2].dice == 0.0 and math.isnan(metrics[2].hd95) and metrics[2].pred_empty
    assert [m.class_value for m in evaluate_multilabel(pred, truth)] == [0, 1, 2]
    with pytest.raises(ValueError, match="class values"):
        evaluate_multilabel(pred, truth, class_values=[1])


def test_class_metrics_is_frozen() -> None:
    m = ClassMetrics(1, 1.0, 0.0, False, False)
    with pytest.raises(dataclasses.FrozenInstanceError):
        m.dice = 0.5  # type: ignore[misc]
