"""Segmentation metrics against a ground truth: per-class Dice and 95 % Hausdorff distance, and
object (instance) scores.

Conventions
-----------
Dice
    ``2 |A ∩ B| / (|A| + |B|)``; both empty → 1.0 (perfect agreement on absence); exactly one
    empty → 0.0.
HD95
    Symmetric 95th-percentile Hausdorff distance between the *surfaces* of the two masks, in
    physical units (``spacing`` per axis, default 1). The surface of a mask is
    ``mask & ~binary_erosion(mask)`` with the face-connected structuring element and
    ``border_value=0`` (so voxels on the array border belong to the surface). With ``d_ab``
    the distances from every surface voxel of A to the nearest surface voxel of B (and
    ``d_ba`` the converse), the value is ``np.percentile(np.concatenate([d_ab, d_ba]), 95)``
    (NumPy's default linear interpolation) — the percentile of the pooled distances, not the
    MONAI-style ``max`` of the two per-direction percentiles.
    Both empty → 0.0. Exactly one empty → ``math.nan``: the HD is undefined; it is reported as
    NaN and flagged by ``ClassMetrics.pred_empty`` / ``ClassMetrics.truth_empty``.
Instance scores (:func:`instance_scores`)
    Two instance label images (0 = background, each other value one object). IoU of a
    predicted and a true object: ``|P ∩ T| / |P ∪ T|``. At a threshold ``t`` the objects are
    matched one to one by :func:`scipy.optimize.linear_sum_assignment`, maximising first the
    number of pairs with IoU >= t, then their summed IoU (the cost of StarDist's ``matching``
    and Cellpose's ``average_precision``); a matched pair with IoU >= t is a true positive
    (TP), an unmatched prediction a false positive (FP), an unmatched true object a false
    negative (FN).

    * F1 = ``2 TP / (2 TP + FP + FN)`` at IoU 0.5, with precision ``TP / (TP + FP)`` and recall
      ``TP / (TP + FN)``.
    * Average precision (AP) over IoU 0.5:0.95 = the mean over t = 0.50, 0.55, ..., 0.95 of
      ``TP / (TP + FP + FN)``, the Data Science Bowl 2018 metric that StarDist reports as
      ``accuracy`` and Cellpose as ``ap`` (not the area under a precision-recall curve: a
      segmentation has no scores to rank).
    * Mean matched IoU: the mean IoU of the true positives at IoU 0.5 (StarDist's
      ``mean_matched_score``); NaN when there are none.
    * Merges: predicted objects that hold more than half of each of two or more true objects;
      splits: true objects that hold more than half of each of two or more predicted objects.

    No object in either image → F1, precision, recall and AP are 1.0 (as Dice); objects in
    only one of them → 0.0.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import ndimage
from scipy.optimize import linear_sum_assignment
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from segstudio.core.annotations import EXCLUSIVE, check_mode
from segstudio.core.errors import UserInputError

__all__ = [
    "AP_THRESHOLDS",
    "F1_IOU",
    "HD_PERCENTILE",
    "ClassMetrics",
    "InstanceScores",
    "Overlaps",
    "check_spacing",
    "dice_binary",
    "dice_per_class",
    "evaluate",
    "evaluate_multilabel",
    "evaluate_prediction",
    "hd95",
    "instance_scores",
    "match_objects",
    "mean_entropy",
    "overlaps",
    "surface",
]

HD_PERCENTILE: float = 95.0
"""Percentile of the pooled surface distances reported by :func:`hd95`."""

_DICE_BOTH_EMPTY = 1.0
_DICE_ONE_EMPTY = 0.0
_HD_BOTH_EMPTY = 0.0


@dataclasses.dataclass(frozen=True)
class ClassMetrics:
    """Metrics of one class.

    Attributes
    ----------
    class_value : int
        Label value (exclusive) or channel index (multi-label).
    dice : float
        Dice coefficient (1.0 when both masks are empty, 0.0 when exactly one is).
    hd95 : float
        95 % Hausdorff distance in physical units; 0.0 when both are empty, NaN when exactly
        one is (undefined).
    pred_empty : bool
        Whether the prediction has no voxel of this class.
    truth_empty : bool
        Whether the ground truth has no voxel of this class.
    """

    class_value: int
    dice: float
    hd95: float
    pred_empty: bool
    truth_empty: bool

    @property
    def hd95_defined(self) -> bool:
        """bool: False when exactly one of prediction/truth is empty (``hd95`` is NaN)."""
        return self.pred_empty == self.truth_empty


def _as_bool_pair(a: ArrayLike, b: ArrayLike) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
    """Convert two masks to bool arrays of equal shape."""
    a_arr = np.asarray(a).astype(bool, copy=False)
    b_arr = np.asarray(b).astype(bool, copy=False)
    if a_arr.shape != b_arr.shape:
        raise ValueError(f"shape mismatch: prediction {a_arr.shape} vs truth {b_arr.shape}")
    return a_arr, b_arr


def check_spacing(spacing: Sequence[float] | None, ndim: int) -> tuple[float, ...]:
    """Validate the voxel spacing (one positive value per axis); default all ones."""
    if spacing is None:
        return (1.0,) * ndim
    values = tuple(float(s) for s in spacing)
    if len(values) != ndim:
        raise ValueError(f"spacing has {len(values)} values but the masks are {ndim}-D")
    if not all(math.isfinite(s) and s > 0 for s in values):
        raise ValueError(f"spacing must be finite and > 0, got {values}")
    return values


def dice_binary(pred_mask: ArrayLike, truth_mask: ArrayLike) -> float:
    """Dice coefficient of two binary masks.

    Parameters
    ----------
    pred_mask, truth_mask : array_like
        Masks of the same shape (non-zero = foreground).

    Returns
    -------
    float
        ``2 |A ∩ B| / (|A| + |B|)``; 1.0 if both are empty, 0.0 if exactly one is.
    """
    a, b = _as_bool_pair(pred_mask, truth_mask)
    na, nb = int(a.sum()), int(b.sum())
    if na == 0 and nb == 0:
        return _DICE_BOTH_EMPTY
    if na == 0 or nb == 0:
        return _DICE_ONE_EMPTY
    return 2.0 * int(np.logical_and(a, b).sum()) / (na + nb)


def dice_per_class(pred: ArrayLike, truth: ArrayLike, classes: Sequence[int]) -> dict[int, float]:
    """Per-class Dice of two label images (exclusive mode).

    Parameters
    ----------
    pred, truth : array_like
        Integer label images of the same shape.
    classes : sequence of int
        Label values to score.

    Returns
    -------
    dict of int to float
        ``{class_value: dice}`` with the conventions of :func:`dice_binary`.
    """
    p, t = np.asarray(pred), np.asarray(truth)
    if p.shape != t.shape:
        raise ValueError(f"shape mismatch: prediction {p.shape} vs truth {t.shape}")
    return {int(c): dice_binary(p == c, t == c) for c in classes}


def mean_entropy(probabilities: ArrayLike, mode: str) -> float:
    """How unsure a prediction is: the mean entropy of its probabilities ``(K, *spatial)``,
    0 (certain everywhere) .. 1 (undecided everywhere).

    Exclusive: the entropy of the class distribution of each pixel over ``log K``.
    Multi-label: the binary entropy of each class's probability over ``log 2``, averaged over
    the classes.
    """
    check_mode(mode)
    p = np.asarray(probabilities, dtype=np.float64)
    k = p.shape[0]
    if p.size == 0:
        return 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        if mode == EXCLUSIVE:
            if k < 2:
                return 0.0
            h = -np.where(p > 0, p * np.log(p), 0.0).sum(axis=0) / math.log(k)
        else:
            q = 1.0 - p
            h = -(np.where(p > 0, p * np.log(p), 0.0) + np.where(q > 0, q * np.log(q), 0.0)) / math.log(2)
    return float(np.clip(np.nanmean(h), 0.0, 1.0))


def surface(mask: ArrayLike) -> NDArray[np.bool_]:
    """Boundary voxels of a binary mask: ``mask & ~binary_erosion(mask)``.

    Parameters
    ----------
    mask : array_like
        Binary mask (any dimension).

    Returns
    -------
    numpy.ndarray of bool
        The surface; uses face connectivity and treats outside the array as background.
    """
    m = np.asarray(mask).astype(bool, copy=False)
    if m.ndim == 0:
        raise ValueError("surface needs an array with at least one dimension")
    structure = ndimage.generate_binary_structure(m.ndim, 1)
    return m & ~ndimage.binary_erosion(m, structure=structure, border_value=0)


def hd95(
    pred_mask: ArrayLike, truth_mask: ArrayLike, spacing: Sequence[float] | None = None
) -> float:
    """Symmetric 95th-percentile Hausdorff distance between the surfaces of two masks.

    Parameters
    ----------
    pred_mask, truth_mask : array_like
        Binary masks of the same shape, 2D or 3D (any dimension works).
    spacing : sequence of float, optional
        Physical voxel size per axis (same order as the array axes, e.g. ``(z, y, x)``);
        default 1 on every axis.

    Returns
    -------
    float
        ``np.percentile(np.concatenate([d_ab, d_ba]), 95)`` in physical units. Both empty →
        0.0; exactly one empty → ``math.nan`` (HD undefined; reported as NaN and flagged).
    """
    a, b = _as_bool_pair(pred_mask, truth_mask)
    sampling = check_spacing(spacing, a.ndim)
    a_empty, b_empty = not a.any(), not b.any()
    if a_empty and b_empty:
        return _HD_BOTH_EMPTY
    if a_empty or b_empty:
        return math.nan
    sa, sb = surface(a), surface(b)
    dist_to_b = ndimage.distance_transform_edt(~sb, sampling=sampling)
    dist_to_a = ndimage.distance_transform_edt(~sa, sampling=sampling)
    distances = np.concatenate([dist_to_b[sa], dist_to_a[sb]])
    return float(np.percentile(distances, HD_PERCENTILE))


def _class_metrics(
    class_value: int, pred_mask: NDArray[np.bool_], truth_mask: NDArray[np.bool_],
    spacing: Sequence[float] | None,
) -> ClassMetrics:
    """Dice, HD95 and emptiness flags of one class."""
    return ClassMetrics(
        class_value=int(class_value),
        dice=dice_binary(pred_mask, truth_mask),
        hd95=hd95(pred_mask, truth_mask, spacing),
        pred_empty=not bool(pred_mask.any()),
        truth_empty=not bool(truth_mask.any()),
    )


def evaluate(
    pred: ArrayLike,
    truth: ArrayLike,
    classes: Sequence[int],
    spacing: Sequence[float] | None = None,
) -> list[ClassMetrics]:
    """Per-class Dice and HD95 of two label images (exclusive mode).

    Parameters
    ----------
    pred, truth : array_like
        Integer label images of the same shape (2D or 3D).
    classes : sequence of int
        Label values to score (typically excluding background).
    spacing : sequence of float, optional
        Physical voxel size per axis.

    Returns
    -------
    list of ClassMetrics
        One entry per class, in the order of ``classes``.
    """
    p, t = np.asarray(pred), np.asarray(truth)
    if p.shape != t.shape:
        raise ValueError(f"shape mismatch: prediction {p.shape} vs truth {t.shape}")
    check_spacing(spacing, p.ndim)
    return [_class_metrics(c, p == c, t == c, spacing) for c in classes]


def evaluate_multilabel(
    pred: ArrayLike,
    truth: ArrayLike,
    spacing: Sequence[float] | None = None,
    class_values: Sequence[int] | None = None,
) -> list[ClassMetrics]:
    """Per-channel Dice and HD95 of two multi-label stacks.

    Parameters
    ----------
    pred, truth : array_like
        Boolean arrays ``(C, *spatial)`` of the same shape (non-zero = foreground).
    spacing : sequence of float, optional
        Physical voxel size per *spatial* axis.
    class_values : sequence of int, optional
        Value reported as ``class_value`` for each channel; default ``0 .. C-1``.

    Returns
    -------
    list of ClassMetrics
        One entry per channel.
    """
    p, t = _as_bool_pair(pred, truth)
    if p.ndim < 2:
        raise ValueError(f"multi-label masks must be (C, *spatial), got shape {p.shape}")
    check_spacing(spacing, p.ndim - 1)
    values = list(range(p.shape[0])) if class_values is None else [int(v) for v in class_values]
    if len(values) != p.shape[0]:
        raise ValueError(f"{len(values)} class values given for {p.shape[0]} channels")
    return [_class_metrics(v, p[i], t[i], spacing) for i, v in enumerate(values)]


def evaluate_prediction(
    mode: str,
    pred: ArrayLike,
    truth: ArrayLike,
    n_classes: int,
    spacing: Sequence[float] | None = None,
) -> list[ClassMetrics]:
    """Per-class Dice and HD95 of a prediction against a ground truth, in either mode.

    Parameters
    ----------
    mode : str
        ``"exclusive"``: ``pred`` and ``truth`` are label images (values 1..K).
        ``"multilabel"``: ``pred`` is ``(K, *spatial)``; ``truth`` is ``(K, *spatial)`` or an
        exclusive label image (class k is value k+1).
    pred, truth : array_like
        The prediction and the ground truth.
    n_classes : int
        K, the number of classes.
    spacing : sequence of float, optional
        Physical voxel size per spatial axis.

    Returns
    -------
    list of ClassMetrics
        One entry per class 1..K.

    Raises
    ------
    UserInputError
        When the ground truth's shape does not fit the prediction.
    """
    check_mode(mode)
    p, t = np.asarray(pred), np.asarray(truth)
    if mode != EXCLUSIVE and t.shape == p.shape[1:]:  # an exclusive label image: class k is k+1
        t = np.stack([t == k + 1 for k in range(n_classes)])
    if t.shape != p.shape:
        raise UserInputError(f"ground truth has shape {t.shape}, the prediction {p.shape}")
    if mode == EXCLUSIVE:
        return evaluate(p, t, list(range(1, n_classes + 1)), spacing)
    return evaluate_multilabel(p, t, spacing)


# --------------------------------------------------------------------------- instances
F1_IOU: float = 0.5
"""IoU at which :attr:`InstanceScores.f1` counts a match."""

AP_THRESHOLDS: tuple[float, ...] = tuple(round(0.5 + 0.05 * i, 2) for i in range(10))
"""IoU thresholds 0.50, 0.55, ..., 0.95 of :attr:`InstanceScores.average_precision`."""

MERGE_SPLIT_FRACTION: float = 0.5
"""An object holds another when it covers more than this fraction of it (merges, splits)."""

#: Overlap counts are tallied with ``np.bincount`` up to this many (pred, true) id pairs,
#: with ``np.unique`` beyond.
_BINCOUNT_PAIRS = 1 << 24


@dataclasses.dataclass(frozen=True)
class Overlaps:
    """Pixel overlaps of two instance label images (only pairs that overlap).

    Attributes
    ----------
    pred_ids, true_ids
        Ids present in the prediction / the truth (sorted, no 0).
    pred_sizes, true_sizes
        Pixels of each of those objects.
    pairs
        ``(M, 2)`` indices into ``pred_ids`` and ``true_ids`` of the overlapping pairs.
    intersection
        ``(M,)`` pixels in both objects of each pair.
    """

    pred_ids: NDArray[np.int64]
    true_ids: NDArray[np.int64]
    pred_sizes: NDArray[np.int64]
    true_sizes: NDArray[np.int64]
    pairs: NDArray[np.int64]
    intersection: NDArray[np.int64]

    @property
    def iou(self) -> NDArray[np.float64]:
        """``(M,)`` IoU of each overlapping pair."""
        union = self.pred_sizes[self.pairs[:, 0]] + self.true_sizes[self.pairs[:, 1]] - self.intersection
        return self.intersection / np.maximum(union, 1)


@dataclasses.dataclass(frozen=True)
class InstanceScores:
    """Object-level agreement of a prediction with a ground truth (see the module docstring).

    Attributes
    ----------
    n_pred, n_true
        Number of predicted / true objects.
    tp, fp, fn
        True positives, false positives, false negatives at IoU :data:`F1_IOU`.
    precision, recall, f1
        At IoU :data:`F1_IOU`.
    average_precision
        Mean of ``TP / (TP + FP + FN)`` over :attr:`thresholds`.
    mean_matched_iou
        Mean IoU of the true positives at IoU :data:`F1_IOU` (NaN when there are none).
    merges, splits
        Predicted objects holding several true ones; true objects holding several predicted.
    thresholds, ap_per_threshold
        The IoU thresholds and ``TP / (TP + FP + FN)`` at each.
    """

    n_pred: int
    n_true: int
    tp: int
    fp: int
    fn: int
    precision: float
    recall: float
    f1: float
    average_precision: float
    mean_matched_iou: float
    merges: int
    splits: int
    thresholds: tuple[float, ...] = AP_THRESHOLDS
    ap_per_threshold: tuple[float, ...] = ()

    def to_json(self) -> dict:
        """A JSON-ready dict (NaN as ``None``)."""
        return {k: (None if isinstance(v, float) and math.isnan(v) else v)
                for k, v in dataclasses.asdict(self).items()}


def _ratio(num: int, den: int, both_empty: float) -> float:
    return float(num) / den if den else both_empty


def overlaps(pred: ArrayLike, truth: ArrayLike) -> Overlaps:
    """Sizes of the objects of two instance label images and the pixels each pair shares.

    Parameters
    ----------
    pred, truth
        Non-negative integer arrays of the same shape (0 = background).
    """
    p = np.asarray(pred)
    t = np.asarray(truth)
    if p.shape != t.shape:
        raise ValueError(f"shape mismatch: prediction {p.shape} vs truth {t.shape}")
    for name, a in (("prediction", p), ("truth", t)):
        if a.dtype.kind not in "iub" or (a.dtype.kind == "i" and a.size and a.min() < 0):
            raise ValueError(f"the {name} must be instance labels (integers >= 0), got dtype {a.dtype}")
    p = p.reshape(-1).astype(np.int64, copy=False)
    t = t.reshape(-1).astype(np.int64, copy=False)
    p_count = np.bincount(p)
    t_count = np.bincount(t)
    pred_ids = np.flatnonzero(p_count[1:]) + 1
    true_ids = np.flatnonzero(t_count[1:]) + 1
    both = (p > 0) & (t > 0)
    pb, tb = p[both], t[both]
    width = len(t_count)
    if len(p_count) * width <= _BINCOUNT_PAIRS:
        counts = np.bincount(pb * width + tb, minlength=len(p_count) * width)
        codes = np.flatnonzero(counts)
        inter = counts[codes]
    else:
        codes, inter = np.unique(pb * width + tb, return_counts=True)
    p_index = np.searchsorted(pred_ids, codes // width)
    t_index = np.searchsorted(true_ids, codes % width)
    return Overlaps(pred_ids, true_ids, p_count[pred_ids], t_count[true_ids],
                    np.stack([p_index, t_index], axis=1).astype(np.int64), inter.astype(np.int64))


def match_objects(ov: Overlaps, threshold: float) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """One-to-one optimal matching of the objects at an IoU threshold.

    Pairs with IoU >= ``threshold`` (> 0) are candidates. Each connected group of candidates
    is matched by :func:`scipy.optimize.linear_sum_assignment` on the cost
    ``-(IoU >= t) - IoU / (2 n)`` (``n`` = the smaller side of the group): the most matches,
    then the largest summed IoU among those (the summed tie-breaker stays below 1/2).

    Returns
    -------
    pairs, iou
        ``(TP, 2)`` indices into ``ov.pred_ids``/``ov.true_ids`` of the matches, and their IoU.
    """
    if not threshold > 0:
        raise ValueError(f"the IoU threshold must be > 0, got {threshold}")
    iou = ov.iou
    ok = iou >= threshold
    cand, cand_iou = ov.pairs[ok], iou[ok]
    if not len(cand):
        return np.zeros((0, 2), np.int64), np.zeros(0)
    n_p, n_t = len(ov.pred_ids), len(ov.true_ids)
    graph = coo_matrix((np.ones(len(cand)), (cand[:, 0], cand[:, 1] + n_p)), shape=(n_p + n_t, n_p + n_t))
    _, group = connected_components(graph, directed=False)
    cand_group = group[cand[:, 0]]
    order = np.argsort(cand_group, kind="stable")
    bounds = np.flatnonzero(np.diff(cand_group[order])) + 1
    matched: list[NDArray[np.int64]] = []
    matched_iou: list[NDArray[np.float64]] = []
    for sel in np.split(order, bounds):
        sub, sub_iou = cand[sel], cand_iou[sel]
        if len(sel) == 1:  # one candidate pair: it is the match
            matched.append(sub)
            matched_iou.append(sub_iou)
            continue
        rows, r_inv = np.unique(sub[:, 0], return_inverse=True)
        cols, c_inv = np.unique(sub[:, 1], return_inverse=True)
        dense = np.zeros((len(rows), len(cols)))
        dense[r_inv, c_inv] = sub_iou
        cost = -(dense >= threshold).astype(float) - dense / (2 * min(dense.shape))
        ri, ci = linear_sum_assignment(cost)
        good = dense[ri, ci] >= threshold
        matched.append(np.stack([rows[ri[good]], cols[ci[good]]], axis=1))
        matched_iou.append(dense[ri[good], ci[good]])
    return np.concatenate(matched).astype(np.int64), np.concatenate(matched_iou)


def instance_scores(
    pred: ArrayLike,
    truth: ArrayLike,
    thresholds: Sequence[float] = AP_THRESHOLDS,
) -> InstanceScores:
    """F1 at IoU 0.5, average precision over IoU 0.5:0.95, mean matched IoU, merges, splits.

    Parameters
    ----------
    pred, truth
        Instance label images of the same shape (0 = background; ids need not be
        sequential), 2D or 3D.
    thresholds
        IoU thresholds averaged by the average precision (default 0.50, 0.55, ..., 0.95).

    Returns
    -------
    InstanceScores
        See the module docstring for the definitions and the empty cases.
    """
    ov = overlaps(pred, truth)
    n_p, n_t = len(ov.pred_ids), len(ov.true_ids)
    both_empty = 1.0 if n_p == 0 and n_t == 0 else 0.0
    pairs, iou = match_objects(ov, F1_IOU)
    tp = len(pairs)
    fp, fn = n_p - tp, n_t - tp
    per_t = []
    for th in thresholds:
        k = tp if th == F1_IOU else len(match_objects(ov, th)[0])
        per_t.append(_ratio(k, n_p + n_t - k, both_empty))
    inter = ov.intersection
    holds_true = inter / ov.true_sizes[ov.pairs[:, 1]] > MERGE_SPLIT_FRACTION
    holds_pred = inter / ov.pred_sizes[ov.pairs[:, 0]] > MERGE_SPLIT_FRACTION
    merges = int(np.sum(np.bincount(ov.pairs[holds_true, 0], minlength=n_p) >= 2))
    splits = int(np.sum(np.bincount(ov.pairs[holds_pred, 1], minlength=n_t) >= 2))
    return InstanceScores(
        n_pred=n_p, n_true=n_t, tp=tp, fp=fp, fn=fn,
        precision=_ratio(tp, n_p, both_empty), recall=_ratio(tp, n_t, both_empty),
        f1=_ratio(2 * tp, 2 * tp + fp + fn, both_empty),
        average_precision=float(np.mean(per_t)) if per_t else math.nan,
        mean_matched_iou=float(np.mean(iou)) if tp else math.nan,
        merges=merges, splits=splits,
        thresholds=tuple(float(t) for t in thresholds), ap_per_threshold=tuple(per_t),
    )
