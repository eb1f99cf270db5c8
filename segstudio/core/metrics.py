"""Segmentation metrics against a ground truth: per-class Dice and 95 % Hausdorff distance.

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
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import ndimage

from segstudio.core.annotations import EXCLUSIVE, check_mode
from segstudio.core.errors import UserInputError

__all__ = [
    "HD_PERCENTILE",
    "ClassMetrics",
    "dice_binary",
    "dice_per_class",
    "evaluate",
    "evaluate_multilabel",
    "evaluate_prediction",
    "hd95",
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


def _check_spacing(spacing: Sequence[float] | None, ndim: int) -> tuple[float, ...]:
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
    sampling = _check_spacing(spacing, a.ndim)
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
    _check_spacing(spacing, p.ndim)
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
    _check_spacing(spacing, p.ndim - 1)
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
