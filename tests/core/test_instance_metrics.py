"""Tests of the instance scores in segstudio.core.metrics: hand-computed cases and a brute-force
reference for the one-to-one matching."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from segstudio.core.metrics import (
    AP_THRESHOLDS,
    InstanceScores,
    instance_scores,
    match_objects,
    overlaps,
)


def _iou_by_masks(pred: np.ndarray, truth: np.ndarray) -> tuple[list[int], list[int], np.ndarray]:
    """Dense IoU matrix from explicit masks, the slow obvious way."""
    p_ids = [int(i) for i in np.unique(pred) if i]
    t_ids = [int(i) for i in np.unique(truth) if i]
    iou = np.zeros((len(p_ids), len(t_ids)))
    for a, i in enumerate(p_ids):
        for b, j in enumerate(t_ids):
            pm, tm = pred == i, truth == j
            iou[a, b] = (pm & tm).sum() / (pm | tm).sum()
    return p_ids, t_ids, iou


def _brute_force(iou: np.ndarray, threshold: float) -> tuple[int, float]:
    """The best one-to-one matching by enumeration: most pairs with IoU >= t, then the largest
    summed IoU of those pairs."""
    n_p, n_t = iou.shape
    best = (0, 0.0)
    # every injective map of predictions to true objects or to nothing (None)
    for assign in itertools.product([None, *range(n_t)], repeat=n_p):
        used = [j for j in assign if j is not None]
        if len(used) != len(set(used)):
            continue
        good = [iou[i, j] for i, j in enumerate(assign) if j is not None and iou[i, j] >= threshold]
        cand = (len(good), float(sum(good)))
        if cand[0] > best[0] or (cand[0] == best[0] and cand[1] > best[1] + 1e-12):
            best = cand
    return best


def _random_instances(rng: np.random.Generator, shape: tuple[int, int], n: int) -> np.ndarray:
    """Overlapping random rectangles painted in turn (later ones on top)."""
    out = np.zeros(shape, np.int32)
    for k in range(1, n + 1):
        y, x = rng.integers(0, shape[0] - 2), rng.integers(0, shape[1] - 2)
        h, w = rng.integers(2, 7), rng.integers(2, 7)
        out[y:y + h, x:x + w] = k
    return out


def test_overlaps_match_explicit_masks():
    rng = np.random.default_rng(3)
    pred = _random_instances(rng, (16, 16), 5)
    truth = _random_instances(rng, (16, 16), 4)
    ov = overlaps(pred, truth)
    p_ids, t_ids, iou = _iou_by_masks(pred, truth)
    assert ov.pred_ids.tolist() == p_ids and ov.true_ids.tolist() == t_ids
    dense = np.zeros_like(iou)
    dense[ov.pairs[:, 0], ov.pairs[:, 1]] = ov.iou
    np.testing.assert_allclose(dense, iou)


@pytest.mark.parametrize("seed", range(40))
@pytest.mark.parametrize("threshold", [0.1, 0.3, 0.5, 0.75])
def test_matching_equals_brute_force(seed, threshold):
    rng = np.random.default_rng(seed)
    pred = _random_instances(rng, (14, 14), int(rng.integers(1, 6)))
    truth = _random_instances(rng, (14, 14), int(rng.integers(1, 6)))
    _, _, iou = _iou_by_masks(pred, truth)
    want_n, want_sum = _brute_force(iou, threshold)
    pairs, got_iou = match_objects(overlaps(pred, truth), threshold)
    assert len(pairs) == want_n
    assert got_iou.sum() == pytest.approx(want_sum, abs=1e-9)
    assert len(set(pairs[:, 0])) == len(pairs) == len(set(pairs[:, 1]))  # one to one


def test_optimal_matching_beats_greedy():
    # IoU(p1, t1) = 7/13, IoU(p1, t2) = 3/17, IoU(p2, t1) = 3/10. At t = 0.15 a greedy matcher
    # takes the best pair p1-t1 first and is left with nothing; the optimum is p1-t2 and p2-t1.
    truth = np.zeros((1, 30), np.int32)
    truth[0, 0:10] = 1
    truth[0, 10:20] = 2
    pred = np.zeros_like(truth)
    pred[0, 3:13] = 1
    pred[0, 0:3] = 2
    pairs, iou = match_objects(overlaps(pred, truth), 0.15)
    assert sorted(map(tuple, pairs.tolist())) == [(0, 1), (1, 0)]
    np.testing.assert_allclose(sorted(iou), [3 / 17, 3 / 10])


def test_hand_computed_scores():
    truth = np.zeros((10, 30), np.int32)
    truth[0:4, 0:4] = 1  # found exactly
    truth[5:9, 0:4] = 2  # found with IoU 12/16 = 0.75
    truth[0:4, 10:14] = 3  # missed
    pred = np.zeros_like(truth)
    pred[0:4, 0:4] = 7
    pred[5:8, 0:4] = 8
    pred[0:4, 20:24] = 9  # false positive
    s = instance_scores(pred, truth)
    assert (s.n_pred, s.n_true, s.tp, s.fp, s.fn) == (3, 3, 2, 1, 1)
    assert s.precision == pytest.approx(2 / 3) and s.recall == pytest.approx(2 / 3)
    assert s.f1 == pytest.approx(2 * 2 / (2 * 2 + 1 + 1))
    assert s.mean_matched_iou == pytest.approx((1.0 + 0.75) / 2)
    # TP(t) = 2 up to t = 0.75, then 1: TP / (TP + FP + FN) = 2/4 six times, 1/5 four times
    want = [2 / 4 if t <= 0.75 else 1 / 5 for t in AP_THRESHOLDS]
    assert s.ap_per_threshold == pytest.approx(tuple(want))
    assert s.average_precision == pytest.approx(np.mean(want))
    assert s.thresholds == AP_THRESHOLDS and len(AP_THRESHOLDS) == 10
    assert AP_THRESHOLDS[0] == 0.5 and AP_THRESHOLDS[-1] == 0.95


def test_merges_and_splits():
    truth = np.zeros((10, 40), np.int32)
    truth[0:4, 0:4] = 1
    truth[0:4, 4:8] = 2  # 1 and 2 are merged into one prediction
    truth[5:9, 10:20] = 3  # split in two
    truth[5:9, 30:34] = 4  # correct
    pred = np.zeros_like(truth)
    pred[0:4, 0:8] = 1
    pred[5:9, 10:15] = 2
    pred[5:9, 15:20] = 3
    pred[5:9, 30:34] = 4
    s = instance_scores(pred, truth)
    assert (s.merges, s.splits) == (1, 1)
    # IoU exactly 0.5 counts (>=): the merged prediction matches true 1, one half of the split
    # object matches it, and object 4 is exact
    assert (s.tp, s.fp, s.fn) == (3, 1, 1)
    assert s.f1 == pytest.approx(6 / 8)


def test_identical_3d_is_perfect_and_ids_need_not_be_sequential():
    rng = np.random.default_rng(0)
    truth = np.zeros((6, 12, 12), np.int32)
    for k in range(1, 5):
        z, y, x = rng.integers(0, 4), rng.integers(0, 9), rng.integers(0, 9)
        truth[z:z + 2, y:y + 3, x:x + 3] = k
    pred = np.where(truth > 0, truth * 1000 + 7, 0).astype(np.uint32)
    s = instance_scores(pred, truth)
    assert s.f1 == 1.0 and s.average_precision == 1.0 and s.mean_matched_iou == 1.0
    assert s.tp == s.n_true == len(np.unique(truth)) - 1


def test_empty_conventions():
    empty = np.zeros((8, 8), np.uint8)
    one = empty.copy()
    one[2:4, 2:4] = 1
    both = instance_scores(empty, empty)
    assert (both.f1, both.precision, both.recall, both.average_precision) == (1.0, 1.0, 1.0, 1.0)
    assert math.isnan(both.mean_matched_iou)
    for pred, truth in ((one, empty), (empty, one)):
        s = instance_scores(pred, truth)
        assert s.f1 == 0.0 and s.average_precision == 0.0 and s.tp == 0
    assert instance_scores(one, empty).to_json()["mean_matched_iou"] is None


def test_bad_inputs():
    with pytest.raises(ValueError, match="shape mismatch"):
        instance_scores(np.zeros((4, 4), int), np.zeros((4, 5), int))
    with pytest.raises(ValueError, match="instance labels"):
        instance_scores(np.zeros((4, 4), float), np.zeros((4, 4), int))
    neg = np.zeros((4, 4), int)
    neg[0, 0] = -1
    with pytest.raises(ValueError, match="instance labels"):
        instance_scores(neg, np.zeros((4, 4), int))
    with pytest.raises(ValueError, match="threshold"):
        match_objects(overlaps(np.ones((2, 2), int), np.ones((2, 2), int)), 0.0)


def test_large_ids_use_the_sparse_tally():
    # ids far apart: more (pred, true) id pairs than the bincount tally takes
    truth = np.zeros((4, 4), np.int64)
    truth[0, 0] = 5_000_000
    truth[2:4, 2:4] = 3
    pred = truth.copy()
    pred[pred == 3] = 9_000_000
    s = instance_scores(pred, truth)
    assert s.tp == 2 and s.f1 == 1.0


def test_scores_are_frozen():
    s = instance_scores(np.ones((2, 2), int), np.ones((2, 2), int))
    assert isinstance(s, InstanceScores)
    with pytest.raises(AttributeError):
        s.f1 = 0.0  # type: ignore[misc]
