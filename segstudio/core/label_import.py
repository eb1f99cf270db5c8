"""Start from labels you have: a label image becomes the paintings of an image.

A label image (a file, or a napari Labels layer) holds integer values. Each value is mapped to
a class or ignored (:func:`paintings_from_labels`); a value that maps nowhere is one clear
error. Sparse strokes and dense masks go the same way: a dense mask is paintings with every
pixel painted, and trains like strokes, except that its counts are the classes' own
frequencies, so its classes weigh alike (:mod:`segstudio.core.weights`, *Dense paintings*).

Instance masks (one value per object, many values) are offered as classes by
:func:`paintings_from_instances`: *foreground / background*, or *foreground / boundary /
background* (the objects' edge pixels, so touching objects stay apart).

Multi-label paintings get a pixel of class k painted *present* for k and *absent* for every
other class (:func:`exclusive_to_multilabel`, the rule the app uses when the mode changes).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from skimage.segmentation import find_boundaries

from segstudio.core.annotations import ABSENT, EXCLUSIVE, PRESENT, UNPAINTED, check_mode
from segstudio.core.errors import UserInputError
from segstudio.core.io import read_labels

__all__ = [
    "FOREGROUND",
    "INSTANCE_SCHEMES",
    "WITH_BOUNDARY",
    "default_mapping",
    "exclusive_to_multilabel",
    "label_values",
    "looks_like_instances",
    "paintings_from_file",
    "paintings_from_instances",
    "paintings_from_labels",
]

#: Instance masks as two classes: background (value 0), foreground (every object).
FOREGROUND = "foreground/background"
#: Instance masks as three classes: background, foreground, boundary (each object's edge).
WITH_BOUNDARY = "foreground/boundary/background"
INSTANCE_SCHEMES = (FOREGROUND, WITH_BOUNDARY)
#: Values listed in a message before "…".
_LISTED = 8


def _integers(labels: Any, what: str) -> np.ndarray:
    arr = np.asarray(labels)
    if arr.dtype.kind == "b":
        return arr.astype(np.uint8)
    if arr.dtype.kind not in "iu":
        raise UserInputError(f"{what}: labels must be whole numbers, found dtype {arr.dtype}")
    if arr.size and int(arr.min()) < 0:
        raise UserInputError(f"{what}: labels must not be negative (found {int(arr.min())})")
    return arr


def label_values(labels: Any, what: str = "labels") -> np.ndarray:
    """The distinct values of a label image, sorted (``bincount`` for small integers).

    Raises
    ------
    UserInputError
        Labels that are not non-negative integers.
    """
    arr = _integers(labels, what)
    if arr.size == 0:
        return np.zeros(0, np.int64)
    top = int(arr.max())
    if top <= max(1 << 16, arr.size):
        return np.flatnonzero(np.bincount(arr.ravel(), minlength=top + 1))
    return np.unique(arr)


def looks_like_instances(values: np.ndarray, n_classes: int) -> bool:
    """Whether labels with these ``values`` look like an instance mask: more non-zero values
    than there are classes (one value per object)."""
    return int(np.count_nonzero(np.asarray(values))) > n_classes


def default_mapping(values: np.ndarray, n_classes: int) -> dict[int, int | None]:
    """The mapping offered first: ``0`` is not painted, value ``k`` is class ``k`` (``1..K``);
    other values map nowhere (``None``: ignored) until the user chooses."""
    return {int(v): (int(v) if 1 <= v <= n_classes else None) for v in values}


def _check_mapping(values: np.ndarray, mapping: Mapping[int, int | None], n_classes: int, what: str) -> None:
    missing = [int(v) for v in values if int(v) not in mapping]
    if missing:
        shown = ", ".join(map(str, missing[:_LISTED])) + (", …" if len(missing) > _LISTED else "")
        raise UserInputError(
            f"{what}: label value{'s' if len(missing) > 1 else ''} {shown} map{'' if len(missing) > 1 else 's'} "
            f"to no class (map each value to one of the {n_classes} classes, or ignore it)")
    for value, k in mapping.items():
        if k is not None and not 1 <= int(k) <= n_classes:
            raise UserInputError(f"{what}: value {value} is mapped to class {k}, but there are classes 1..{n_classes}")


def exclusive_to_multilabel(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Exclusive paintings (``0``, ``1..K``) as multi-label ``(K, *spatial)``: a pixel of class
    k is *present* for k and *absent* for the other classes; unpainted stays unpainted."""
    labels = np.asarray(labels)
    out = np.zeros((n_classes, *labels.shape), np.uint8)
    painted = labels > 0
    for k in range(n_classes):
        out[k][painted] = ABSENT
        out[k][labels == k + 1] = PRESENT
    return out


def paintings_from_labels(
    labels: Any,
    mapping: Mapping[int, int | None],
    mode: str,
    n_classes: int,
    *,
    what: str = "labels",
) -> np.ndarray:
    """Paintings from a label image and a value → class mapping.

    Parameters
    ----------
    labels
        Integer label image (the image's spatial shape).
    mapping
        Value → class ``1..K``, or ``None`` to ignore the value (not painted). Every value in
        ``labels`` must be a key.
    mode
        ``"exclusive"`` (returns ``0``/``1..K`` labels) or ``"multilabel"`` (returns ``(K,
        *spatial)`` 0/1/2, see :func:`exclusive_to_multilabel`).
    n_classes
        The project's number of classes K.
    what
        The labels' name in messages (a file, a layer).

    Raises
    ------
    UserInputError
        A value that maps nowhere, a class out of range, labels that are not integers.
    """
    check_mode(mode)
    arr = _integers(labels, what)
    values = label_values(arr, what)
    _check_mapping(values, mapping, n_classes, what)
    dtype = np.uint8 if n_classes < 255 else np.uint16
    lut = np.zeros(int(values.max()) + 1 if values.size else 1, dtype)
    for value, k in mapping.items():
        if 0 <= int(value) < lut.size:
            lut[int(value)] = UNPAINTED if k is None else int(k)
    out = lut[arr]
    return out if mode == EXCLUSIVE else exclusive_to_multilabel(out, n_classes)


def paintings_from_instances(
    labels: Any,
    scheme: str,
    mode: str,
    n_classes: int,
    *,
    background: int = 1,
    foreground: int = 2,
    boundary: int = 3,
    what: str = "labels",
) -> np.ndarray:
    """Paintings from an instance mask (``0`` background, one value per object).

    ``scheme`` :data:`FOREGROUND`: background → class ``background``, every object →
    ``foreground``. :data:`WITH_BOUNDARY`: also each object's edge pixels (inside the object,
    where it meets the background or another object) → ``boundary``. Every pixel is painted.

    Raises
    ------
    UserInputError
        An unknown scheme, or classes that the project does not have.
    """
    if scheme not in INSTANCE_SCHEMES:
        raise UserInputError(f"unknown instance scheme {scheme!r}: expected {' or '.join(INSTANCE_SCHEMES)}")
    arr = _integers(labels, what)
    used = (background, foreground) + ((boundary,) if scheme == WITH_BOUNDARY else ())
    wanted = 3 if scheme == WITH_BOUNDARY else 2
    if n_classes < wanted or any(not 1 <= k <= n_classes for k in used):
        raise UserInputError(f"{what}: '{scheme}' needs {wanted} classes; the project has {n_classes}")
    dtype = np.uint8 if n_classes < 255 else np.uint16
    out = np.where(arr > 0, foreground, background).astype(dtype)
    if scheme == WITH_BOUNDARY:
        out[find_boundaries(arr, mode="inner") & (arr > 0)] = boundary
    return out if mode == EXCLUSIVE else exclusive_to_multilabel(out, n_classes)


def paintings_from_file(
    path: str | os.PathLike[str],
    spatial_shape: Sequence[int],
    mode: str,
    n_classes: int,
    *,
    instances: str | None = None,
) -> np.ndarray:
    """Paintings of an image from a label file, as ``segstudio project create/add --labels``
    reads them: value ``k`` is class ``k`` (``0`` not painted), or an instance mask as
    ``instances`` (:data:`INSTANCE_SCHEMES`); multi-label paintings ``(K, *spatial)`` with
    0/1/2 are taken as they are.

    Raises
    ------
    UserInputError
        An unreadable file, a shape that is not the image's, values that map to no class.
    """
    check_mode(mode)
    what = f"'{path}'"
    labels, _ = read_labels(path)
    arr = np.asarray(labels)
    spatial = tuple(int(n) for n in spatial_shape)
    if mode != EXCLUSIVE and arr.shape == (n_classes, *spatial) and instances is None:
        values = label_values(arr, what)
        if values.size and int(values.max()) > ABSENT:
            raise UserInputError(f"{what}: multi-label paintings hold 0 (not painted), 1 (present) or 2 (absent); "
                                 f"found {int(values.max())}")
        return arr.astype(np.uint8, copy=False)
    if arr.shape != spatial:
        raise UserInputError(f"{what} has shape {arr.shape}; its image has the spatial shape {spatial}: "
                             "expected the same")
    if instances is not None:
        return paintings_from_instances(arr, instances, mode, n_classes, what=what)
    identity: dict[int, int | None] = {0: None, **{k: k for k in range(1, n_classes + 1)}}
    return paintings_from_labels(arr, identity, mode, n_classes, what=what)
