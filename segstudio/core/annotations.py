"""The label schema for paintings, its validation, and conversion to training targets.

Two modes (see DESIGN.md):

``exclusive``
    One integer array with the image's spatial shape. ``0`` = not painted, ``1..K`` = class k.
    Trained with softmax cross-entropy; unpainted pixels become ``IGNORE_INDEX`` (-100).
``multilabel``
    An array ``(C, *spatial)`` (or a list of C spatial arrays), one channel per class.
    ``0`` = not painted, ``1`` = class present, ``2`` = class absent.
    Trained with sigmoid BCE on the painted pixels of each class.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from segstudio.core.errors import UserInputError

EXCLUSIVE = "exclusive"
MULTILABEL = "multilabel"
MODES: tuple[str, ...] = (EXCLUSIVE, MULTILABEL)
Mode = Literal["exclusive", "multilabel"]

IGNORE_INDEX = -100
UNPAINTED = 0
PRESENT = 1
ABSENT = 2


class PaintingWarning(UserWarning):
    """Paintings that are valid but will train poorly (one class only, paint on NaN, ...)."""


@dataclass(frozen=True)
class PaintingReport:
    """What validation found in a set of paintings.

    Attributes
    ----------
    counts
        Painted pixels per class, index 0 = class 1 (exclusive) or present pixels per class
        (multilabel).
    absent_counts
        Multilabel only: pixels painted *absent* per class; empty tuple for exclusive.
    painted
        Total painted pixels.
    warnings
        Human-readable one-line warnings (also emitted as :class:`PaintingWarning`).
    """

    counts: tuple[int, ...]
    absent_counts: tuple[int, ...] = ()
    painted: int = 0
    warnings: tuple[str, ...] = field(default_factory=tuple)


def check_mode(mode: str) -> Mode:
    """Return ``mode`` if it is a known mode, else raise :class:`UserInputError`."""
    if mode not in MODES:
        raise UserInputError(f"unknown mode {mode!r}: expected one of {', '.join(MODES)}")
    return mode  # type: ignore[return-value]


def as_integer_labels(labels: np.ndarray, what: str = "paintings") -> np.ndarray:
    """Return ``labels`` as an integer array, refusing non-integer or non-finite values.

    Parameters
    ----------
    labels
        Any numeric array. Float arrays are accepted when every value is a whole number.
    what
        Name used in error messages (e.g. a file name).

    Raises
    ------
    UserInputError
        If the array is not numeric, holds NaN/inf, or holds fractional values.
    """
    arr = np.asarray(labels)
    if arr.dtype == bool:
        return arr.astype(np.uint8)
    if np.issubdtype(arr.dtype, np.integer):
        return arr
    if not np.issubdtype(arr.dtype, np.floating):
        raise UserInputError(f"{what}: labels must be integers, got dtype {arr.dtype}")
    if not np.all(np.isfinite(arr)):
        raise UserInputError(f"{what}: labels contain NaN or infinite values")
    if np.any(arr != np.round(arr)):
        raise UserInputError(
            f"{what}: labels must be whole numbers (0 = unpainted, 1..K = classes), "
            "got fractional values"
        )
    return arr.astype(np.int64)


def _check_spatial(shape: tuple[int, ...], spatial_shape: tuple[int, ...] | None, what: str) -> None:
    if spatial_shape is None:
        return
    if len(shape) != len(spatial_shape):
        raise UserInputError(
            f"{what}: labels have {len(shape)} dimensions {shape}, the image has "
            f"{len(spatial_shape)} spatial dimensions {tuple(spatial_shape)}"
        )
    if tuple(shape) != tuple(spatial_shape):
        raise UserInputError(
            f"{what}: labels shape {tuple(shape)} does not match image shape {tuple(spatial_shape)}"
        )


def _nan_paint_warning(
    painted: np.ndarray, image: np.ndarray | None, channel_axis: int | None
) -> str | None:
    if image is None:
        return None
    img = np.asarray(image)
    if not np.issubdtype(img.dtype, np.floating):
        return None
    bad = ~np.isfinite(img)
    if channel_axis is not None:
        bad = bad.any(axis=channel_axis)
    if bad.shape != painted.shape:
        return None
    n = int(np.count_nonzero(bad & painted))
    if n:
        return f"{n} painted pixels lie on NaN/inf image pixels; they are ignored in training"
    return None


def validate_exclusive(
    labels: np.ndarray,
    n_classes: int | None = None,
    *,
    spatial_shape: tuple[int, ...] | None = None,
    image: np.ndarray | None = None,
    channel_axis: int | None = None,
    require_paint: bool = True,
    what: str = "paintings",
) -> PaintingReport:
    """Validate exclusive-mode paintings and count painted pixels per class.

    Parameters
    ----------
    labels
        Integer array, 0 = unpainted, 1..K = class.
    n_classes
        Number of classes K. ``None`` infers it from the largest value.
    spatial_shape
        The image's spatial shape; the labels must match it.
    image
        Optional image, to warn about paint on NaN pixels.
    channel_axis
        Channel axis of ``image`` if it has one.
    require_paint
        Raise when nothing is painted (training needs paint; the GUI passes ``False``).
    what
        Name used in messages.

    Returns
    -------
    PaintingReport
        Counts per class 1..K.

    Raises
    ------
    UserInputError
        Wrong shape, negative values, values above ``n_classes``, fractional values,
        or (with ``require_paint``) no paint at all.
    """
    arr = as_integer_labels(labels, what)
    _check_spatial(arr.shape, spatial_shape, what)
    if arr.size == 0:
        raise UserInputError(f"{what}: labels are empty (shape {arr.shape})")
    lo, hi = int(arr.min()), int(arr.max())
    if lo < 0:
        raise UserInputError(f"{what}: labels must not be negative (found {lo})")
    k = hi if n_classes is None else int(n_classes)
    if n_classes is not None and hi > k:
        raise UserInputError(
            f"{what}: label value {hi} is beyond the {k} classes (expected 0 = unpainted, 1..{k})"
        )
    counts = np.bincount(arr.ravel().astype(np.int64), minlength=k + 1)[1 : k + 1]
    painted = int(counts.sum())
    msgs: list[str] = []
    if painted == 0:
        if require_paint:
            raise UserInputError(f"{what}: nothing is painted yet; paint at least two classes")
        msgs.append("nothing is painted yet")
    elif np.count_nonzero(counts) == 1 and k > 1:
        msgs.append(
            "only one class is painted: the model cannot learn a boundary; paint at least two"
        )
    nan_msg = _nan_paint_warning(arr > 0, image, channel_axis)
    if nan_msg:
        msgs.append(nan_msg)
    for m in msgs:
        warnings.warn(f"{what}: {m}", PaintingWarning, stacklevel=2)
    return PaintingReport(
        counts=tuple(int(c) for c in counts), painted=painted, warnings=tuple(msgs)
    )


def stack_multilabel(labels: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
    """Return multilabel paintings as one ``(C, *spatial)`` array.

    Accepts an array that already has the class axis first, or a sequence of C spatial
    arrays (one napari Labels layer per class).
    """
    if isinstance(labels, np.ndarray):
        return labels
    arrays = [np.asarray(a) for a in labels]
    if not arrays:
        raise UserInputError("multilabel paintings: no class layers given")
    shapes = {a.shape for a in arrays}
    if len(shapes) != 1:
        raise UserInputError(f"multilabel paintings: class layers differ in shape {sorted(shapes)}")
    return np.stack(arrays)


def validate_multilabel(
    labels: np.ndarray | Sequence[np.ndarray],
    n_classes: int | None = None,
    *,
    spatial_shape: tuple[int, ...] | None = None,
    image: np.ndarray | None = None,
    channel_axis: int | None = None,
    require_paint: bool = True,
    what: str = "paintings",
) -> PaintingReport:
    """Validate multilabel paintings ``(C, *spatial)`` with 0/1/2 values.

    Returns counts of *present* pixels per class and of *absent* pixels per class.

    Raises
    ------
    UserInputError
        Wrong shape or class count, values other than 0/1/2, fractional values, or (with
        ``require_paint``) no paint at all.
    """
    arr = as_integer_labels(stack_multilabel(labels), what)
    if spatial_shape is not None:
        if arr.ndim != len(spatial_shape) + 1:
            raise UserInputError(
                f"{what}: multilabel labels must be (classes, {', '.join('…' for _ in spatial_shape)})"
                f" = {len(spatial_shape) + 1} dimensions, got shape {arr.shape}"
            )
        _check_spatial(arr.shape[1:], spatial_shape, what)
    elif arr.ndim < 3:
        raise UserInputError(
            f"{what}: multilabel labels need a class axis first, (C, Y, X) or (C, Z, Y, X); "
            f"got shape {arr.shape}"
        )
    if n_classes is not None and arr.shape[0] != n_classes:
        raise UserInputError(
            f"{what}: multilabel labels have {arr.shape[0]} class channels, expected {n_classes}"
        )
    lo, hi = int(arr.min()), int(arr.max())
    if lo < 0 or hi > ABSENT:
        raise UserInputError(
            f"{what}: multilabel values must be 0 (unpainted), 1 (present) or 2 (absent); "
            f"found range {lo}..{hi}"
        )
    flat = arr.reshape(arr.shape[0], -1)
    present = tuple(int(np.count_nonzero(c == PRESENT)) for c in flat)
    absent = tuple(int(np.count_nonzero(c == ABSENT)) for c in flat)
    painted = int(sum(present) + sum(absent))
    msgs: list[str] = []
    if painted == 0:
        if require_paint:
            raise UserInputError(f"{what}: nothing is painted yet; paint present and absent pixels")
        msgs.append("nothing is painted yet")
    else:
        for c, (p, a) in enumerate(zip(present, absent)):
            if p + a and (p == 0 or a == 0):
                msgs.append(
                    f"class {c + 1} has only {'present' if p else 'absent'} paint: "
                    "paint both so the model can learn a boundary"
                )
    nan_msg = _nan_paint_warning((arr > 0).any(axis=0), image, channel_axis)
    if nan_msg:
        msgs.append(nan_msg)
    for m in msgs:
        warnings.warn(f"{what}: {m}", PaintingWarning, stacklevel=2)
    return PaintingReport(counts=present, absent_counts=absent, painted=painted, warnings=tuple(msgs))


def exclusive_target(labels: np.ndarray) -> np.ndarray:
    """Convert exclusive paintings to a training target.

    Returns an ``int64`` array where class k (1-based in the paintings) becomes ``k - 1`` and
    unpainted pixels become :data:`IGNORE_INDEX`. This is exactly what
    ``torch.nn.CrossEntropyLoss(ignore_index=-100)`` expects together with raw logits.
    """
    arr = np.asarray(labels).astype(np.int64, copy=True)
    arr -= 1
    arr[arr < 0] = IGNORE_INDEX
    return arr


def multilabel_target(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Convert multilabel paintings ``(C, *spatial)`` to a float target and a mask.

    Returns
    -------
    target
        ``float32``, 1 where painted present, 0 elsewhere.
    mask
        ``float32``, 1 where painted (present or absent), 0 where unpainted.
    """
    arr = np.asarray(labels)
    target = (arr == PRESENT).astype(np.float32)
    mask = (arr != UNPAINTED).astype(np.float32)
    return target, mask


def mask_nonfinite(labels: np.ndarray, image: np.ndarray, channel_axis: int | None, mode: str) -> np.ndarray:
    """Return a copy of ``labels`` with paint on NaN/inf image pixels removed."""
    img = np.asarray(image)
    if not np.issubdtype(img.dtype, np.floating):
        return labels
    bad = ~np.isfinite(img)
    if channel_axis is not None:
        bad = bad.any(axis=channel_axis)
    if not bad.any():
        return labels
    out = np.array(labels, copy=True)
    if mode == MULTILABEL:
        out[:, bad] = UNPAINTED
    else:
        out[bad] = UNPAINTED
    return out
