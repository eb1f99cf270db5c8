"""Class weights computed from the paintings.

Exclusive mode
    Counts ``n_c`` of painted pixels per class, ``N = sum(n_c)`` over painted classes, ``C`` the
    number of painted classes:

    ``balanced`` (default)
        ``N / (C * n_c)`` (scikit-learn's "balanced").
    ``median_frequency``
        ``median(f) / f_c`` with ``f_c = n_c / N`` (Eigen & Fergus 2015).
    ``inverse_sqrt``
        ``1 / sqrt(n_c)``.
    ``effective_number``
        ``(1 - β) / (1 - β**n_c)`` (Cui et al. 2019) with ``β = (N - 1) / N``: the effective
        number of samples then saturates at the scale of the paintings, so small classes get
        close to inverse-frequency weights and large classes are damped; a fixed β such as 0.99
        would make every class of a few hundred pixels weigh the same.
    ``none``
        1 for every painted class.

    Weights are normalised to mean 1 over painted classes and clamped to ``[lo, hi]``
    (default ``[0.1, 10]``). A class with no paint gets weight 0 and a warning.

Multilabel mode
    ``pos_weight_c`` is the ratio of the weights the method gives *present* and *absent* paint
    of class c, as if they were two exclusive classes: ``balanced`` (default)
    ``n_absent_c / n_present_c``, ``inverse_sqrt`` its square root, ``none`` 1; clamped to
    the same range. A class without present paint gets 1 (it has no positives to weigh) and a
    warning.

Dense paintings
    Counts of sparse strokes say how much the user painted of each class, and the methods
    even that out. Labels that cover what they span (an annotated image or crop, as
    ``segstudio train --labels`` often gets) count the classes' own frequencies, and evening
    those out moves every ambiguous pixel (a blurred edge, the axial blur of a volume) to the
    rarer class: a halo. So the raw weights are raised to a power that falls from 1 to 0 as
    ``coverage``, the painted share of the paintings' extent (:func:`painted_extent`: painted
    pixels over the pixels of their bounding box, summed over images), goes from
    :data:`STROKE_COVERAGE` to :data:`DENSE_COVERAGE` (:func:`tempering`), before they are
    normalised: strokes (coverage 0.001–0.034 on the quality matrix) keep the method's weights
    exactly; an annotated image or crop (1), or a big brush's discs of the truth over 30 % of
    an image, weigh every class 1. Multi-label ``pos_weight`` likewise.
    (``benchmarks/RESULTS.md``, session 33: with every pixel of the truth painted, equal
    weights lift vessels 2D from 0.87 to 0.95 and nuclei 3D from 0.93 to 0.97; on strokes they
    cost the corrections habit 0.036.)

Pinned weights (set by the user) replace the computed ones; the others still follow the paint.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from segstudio.core.annotations import (
    EXCLUSIVE,
    MULTILABEL,
    as_integer_labels,
    check_mode,
)
from segstudio.core.errors import UserInputError

METHODS: tuple[str, ...] = ("balanced", "median_frequency", "inverse_sqrt", "effective_number", "none")
DEFAULT_METHOD = "balanced"
#: Pixels :func:`count_paintings` counts at a time.
COUNT_CHUNK = 1 << 20
DEFAULT_CLAMP: tuple[float, float] = (0.1, 10.0)
#: Up to this painted share of their extent, paintings are strokes: their weights are the
#: method's, untempered (module notes, *Dense paintings*; the quality matrix's paintings cover
#: 0.1–3.4 % of theirs).
STROKE_COVERAGE = 0.05
#: From this painted share of their extent on, paintings are dense labels: every class weighs
#: 1 (equal weights won every cell of ``benchmarks/ceiling.py --discs 0.3``, and half at 0.1).
DENSE_COVERAGE = 0.3


@dataclass(frozen=True)
class ClassWeights:
    """Weights for the loss, with the counts they came from.

    Attributes
    ----------
    mode
        ``"exclusive"`` or ``"multilabel"``.
    method
        Method used.
    counts
        Exclusive: painted pixels per class. Multilabel: *present* pixels per class.
    weights
        One weight per class (``pos_weight`` for multilabel), float64.
    absent_counts
        Multilabel: *absent* pixels per class; empty for exclusive.
    pinned
        Class indices (0-based) whose weight was set by the user.
    warnings
        One-line warnings (unpainted classes, ...).
    coverage
        The painted share of the paintings' extent the weights were computed for (module
        notes, *Dense paintings*: up to :data:`STROKE_COVERAGE` they are not tempered).
    """

    mode: str
    method: str
    counts: tuple[int, ...]
    weights: tuple[float, ...]
    absent_counts: tuple[int, ...] = ()
    pinned: tuple[int, ...] = ()
    warnings: tuple[str, ...] = field(default_factory=tuple)
    coverage: float = 0.0

    def tensor(self, device: torch.device | str | None = None) -> torch.Tensor:
        """Return the weights as a 1-D float32 tensor (for the loss factory)."""
        return torch.tensor(self.weights, dtype=torch.float32, device=device)

    def to_json(self) -> dict[str, object]:
        """Return the JSON object printed by ``segstudio weights --json``."""
        return {
            "mode": self.mode,
            "method": self.method,
            "classes": list(range(1, len(self.weights) + 1)),
            "counts": list(self.counts),
            "weights": [round(float(w), 6) for w in self.weights],
            "coverage": round(float(self.coverage), 6),
        }


def count_exclusive(labels: np.ndarray | Sequence[np.ndarray], n_classes: int | None = None) -> np.ndarray:
    """Painted pixels per class 1..K of one or several exclusive paintings.

    Several arrays (one per image) count together.
    """
    arrays = [labels] if isinstance(labels, np.ndarray) else list(labels)
    if not arrays:
        raise UserInputError("no paintings given")
    ints = [as_integer_labels(a) for a in arrays]
    for a in ints:
        if a.size and int(a.min()) < 0:
            raise UserInputError(f"labels must not be negative (found {int(a.min())})")
    k = max(int(a.max()) if a.size else 0 for a in ints) if n_classes is None else int(n_classes)
    total = np.zeros(k + 1, dtype=np.int64)
    for a in ints:
        c = np.bincount(a.ravel().astype(np.int64), minlength=k + 1)
        if c.size > k + 1:
            raise UserInputError(
                f"label value {c.size - 1} is beyond the {k} classes (expected 0..{k})"
            )
        total += c
    return total[1:]


def _raw_weights(nc: np.ndarray, method: str) -> np.ndarray:
    """Unnormalised weights of classes with ``nc > 0`` painted pixels (see the module notes)."""
    total = nc.sum()
    if method == "balanced":
        return total / (nc.size * nc)
    if method == "median_frequency":
        freq = nc / total
        return np.median(freq) / freq
    if method == "inverse_sqrt":
        return 1.0 / np.sqrt(nc)
    if method == "effective_number":
        beta = (total - 1.0) / total if total > 1 else 0.0
        # (1 - beta**n) computed stably as -expm1(n * log(beta)).
        eff = -np.expm1(nc * np.log(beta)) if beta > 0 else np.ones_like(nc)
        return (1.0 - beta) / eff
    return np.ones_like(nc)  # none


def weights_from_counts(
    counts: Sequence[int] | np.ndarray,
    method: str = DEFAULT_METHOD,
    *,
    clamp: tuple[float, float] = DEFAULT_CLAMP,
    pinned: Mapping[int, float] | None = None,
    coverage: float = 0.0,
) -> ClassWeights:
    """Exclusive-mode class weights from painted-pixel counts.

    Parameters
    ----------
    counts
        Painted pixels per class (index 0 = class 1).
    method
        One of :data:`METHODS`.
    clamp
        ``(lo, hi)`` range applied after normalisation to mean 1.
    pinned
        ``{class_index: weight}`` (0-based) set by the user; they replace computed weights.
    coverage
        The painted share of the paintings' extent (:func:`coverage_of`): the raw weights are
        raised to the power :func:`tempering` gives it (module notes, *Dense paintings*).

    Returns
    -------
    ClassWeights
    """
    power = tempering(coverage)
    if method not in METHODS:
        raise UserInputError(f"unknown weight method {method!r}: expected one of {', '.join(METHODS)}")
    lo, hi = clamp
    if not 0 <= lo <= hi:
        raise UserInputError(f"weight clamp range must satisfy 0 <= lo <= hi, got {clamp}")
    n = np.asarray(counts, dtype=np.float64)
    present = n > 0
    w = np.zeros_like(n)
    msgs = [f"class {i + 1} has no paint: weight 0" for i in np.flatnonzero(~present)]
    if present.any():
        raw = _raw_weights(n[present], method) ** power
        raw = raw / raw.mean()
        w[present] = np.clip(raw, lo, hi)
    pins = dict(pinned or {})
    for idx, value in pins.items():
        if not 0 <= idx < n.size:
            raise UserInputError(f"pinned weight for class {idx + 1}, but there are {n.size} classes")
        if not np.isfinite(value) or value < 0:
            raise UserInputError(f"pinned weight for class {idx + 1} must be a finite number >= 0")
        w[idx] = float(value)
    return ClassWeights(
        mode=EXCLUSIVE,
        method=method,
        counts=tuple(int(x) for x in n),
        weights=tuple(float(x) for x in w),
        pinned=tuple(sorted(pins)),
        warnings=tuple(msgs),
        coverage=float(coverage),
    )


def pos_weights_from_counts(
    present: Sequence[int] | np.ndarray,
    absent: Sequence[int] | np.ndarray,
    method: str = DEFAULT_METHOD,
    *,
    clamp: tuple[float, float] = DEFAULT_CLAMP,
    pinned: Mapping[int, float] | None = None,
    coverage: float = 0.0,
) -> ClassWeights:
    """Multilabel ``pos_weight_c``, clamped: the weight ``method`` gives *present* over the one
    it gives *absent*, as for two exclusive classes (``balanced``: ``n_absent_c / n_present_c``),
    to the power :func:`tempering` gives ``coverage`` (module notes, *Dense paintings*).

    A class without present paint gets ``1.0`` (nothing to up-weight) and a warning.
    """
    power = tempering(coverage)
    if method not in METHODS:
        raise UserInputError(f"unknown weight method {method!r}: expected one of {', '.join(METHODS)}")
    p = np.asarray(present, dtype=np.float64)
    a = np.asarray(absent, dtype=np.float64)
    if p.shape != a.shape:
        raise UserInputError("present and absent counts differ in length")
    lo, hi = clamp
    w = np.ones_like(p)
    for c in np.flatnonzero(p > 0):
        if a[c] > 0:
            raw = _raw_weights(np.array([p[c], a[c]]), method)
            w[c] = np.clip((raw[0] / raw[1]) ** power, lo, hi)
        else:  # no absent paint: the smallest weight, as n_absent / n_present = 0 clamped
            w[c] = lo
    msgs = [f"class {i + 1} has no 'present' paint: pos_weight 1" for i in np.flatnonzero(p <= 0)]
    pins = dict(pinned or {})
    for idx, value in pins.items():
        if not 0 <= idx < p.size:
            raise UserInputError(f"pinned weight for class {idx + 1}, but there are {p.size} classes")
        w[idx] = float(value)
    return ClassWeights(
        mode=MULTILABEL,
        method=method,
        counts=tuple(int(x) for x in p),
        absent_counts=tuple(int(x) for x in a),
        weights=tuple(float(x) for x in w),
        pinned=tuple(sorted(pins)),
        warnings=tuple(msgs),
        coverage=float(coverage),
    )


def tempering(coverage: float) -> float:
    """The power the raw weights are raised to for paintings of this ``coverage``: 1 up to
    :data:`STROKE_COVERAGE` (strokes), falling linearly to 0 at :data:`DENSE_COVERAGE` (dense
    labels) and beyond."""
    if not 0.0 <= coverage <= 1.0:
        raise ValueError(f"coverage must be in [0, 1], got {coverage}")
    return 1.0 - min(1.0, max(0.0, (coverage - STROKE_COVERAGE) / (DENSE_COVERAGE - STROKE_COVERAGE)))


def tempered_note(coverage: float) -> str:
    """``"tempered to the power 0.40"`` where paintings of this ``coverage`` temper the weights
    (:func:`tempering` below 1: dense labels), ``""`` for strokes; what the CLI and the class
    table say about such weights."""
    power = tempering(coverage)
    return f"tempered to the power {power:.2f}" if power < 1.0 else ""


def painted_extent(paint: np.ndarray | None, mode: str) -> tuple[int, int]:
    """``(painted, extent)`` of one image's paintings: the pixels painted (any class; multi-label
    any channel, present or absent) and the pixels of their bounding box, counted without a
    full-size temporary (in chunks along the first spatial axis). ``(0, 0)`` when nothing is
    painted."""
    check_mode(mode)
    if paint is None:
        return 0, 0
    arr = paint if hasattr(paint, "shape") and hasattr(paint, "__getitem__") else np.asarray(paint)
    spatial = tuple(arr.shape) if mode == EXCLUSIVE else tuple(arr.shape[1:])
    if not spatial or 0 in spatial:
        return 0, 0
    per_slice = int(np.prod(spatial[1:], dtype=np.int64)) * (1 if mode == EXCLUSIVE else arr.shape[0])
    step = max(1, COUNT_CHUNK // max(1, per_slice))
    painted = 0
    hit = [np.zeros(n, bool) for n in spatial]  # per axis: indices with paint
    for start in range(0, spatial[0], step):
        chunk = np.asarray(arr[start:start + step] if mode == EXCLUSIVE else arr[:, start:start + step])
        m = chunk != 0 if mode == EXCLUSIVE else (chunk != 0).any(axis=0)
        painted += int(m.sum())
        for ax in range(m.ndim):
            proj = m.any(axis=tuple(a for a in range(m.ndim) if a != ax))
            if ax == 0:
                hit[0][start:start + m.shape[0]] |= proj
            else:
                hit[ax] |= proj
    if painted == 0:
        return 0, 0
    extent = 1
    for h in hit:
        idx = np.flatnonzero(h)
        extent *= int(idx[-1] - idx[0] + 1)
    return painted, extent


def coverage_of(extents: Iterable[tuple[int, int]]) -> float:
    """The painted share of the paintings' extent over several images (:func:`painted_extent`
    of each): summed painted pixels over summed bounding-box pixels; 0 when nothing is painted."""
    painted = extent = 0
    for p, e in extents:
        painted, extent = painted + int(p), extent + int(e)
    return 0.0 if extent == 0 else min(1.0, painted / extent)


def count_multilabel(labels: np.ndarray | Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Present and absent pixel counts per class of one or several ``(C, *spatial)`` paintings.

    ``labels`` may be one array or a list of arrays (one per image, same C). Per-class layers
    of one image are stacked first with :func:`~segstudio.core.annotations.stack_multilabel`.
    """
    arrays = [labels] if isinstance(labels, np.ndarray) else [np.asarray(a) for a in labels]
    if not arrays:
        raise UserInputError("no paintings given")
    present = absent = None
    for arr in arrays:
        if arr.ndim < 3:
            raise UserInputError(f"multilabel labels need a class axis first, got shape {arr.shape}")
        x = as_integer_labels(arr).reshape(arr.shape[0], -1)
        p = (x == 1).sum(axis=1)
        a = (x == 2).sum(axis=1)
        if present is None:
            present, absent = p, a
        elif p.shape != present.shape:
            raise UserInputError("multilabel label files have different numbers of classes")
        else:
            present, absent = present + p, absent + a
    assert present is not None and absent is not None
    return present, absent


def count_paintings(paint: np.ndarray | None, mode: str, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """``(present, absent)`` pixels per class of one image's paintings, without a full-size
    temporary (counted in chunks).

    Exclusive: pixels of class k and zeros (values beyond ``n_classes`` are not counted);
    multi-label ``(C, *spatial)``: pixels painted present and absent in channel k. ``None``
    counts nothing.
    """
    check_mode(mode)
    present, absent = np.zeros(n_classes, np.int64), np.zeros(n_classes, np.int64)
    if paint is None:
        return present, absent
    arr = np.asarray(paint)
    if mode == EXCLUSIVE:
        flat = arr.reshape(-1)
        for start in range(0, flat.size, COUNT_CHUNK):
            present += np.bincount(flat[start:start + COUNT_CHUNK], minlength=n_classes + 1)[1:n_classes + 1]
        return present, absent
    for k in range(min(n_classes, arr.shape[0])):
        flat = arr[k].reshape(-1)
        for start in range(0, flat.size, COUNT_CHUNK):
            c = np.bincount(flat[start:start + COUNT_CHUNK], minlength=3)
            present[k] += c[1]
            absent[k] += c[2]
    return present, absent


def compute_weights(
    labels: np.ndarray | Sequence[np.ndarray],
    mode: str,
    method: str = DEFAULT_METHOD,
    *,
    n_classes: int | None = None,
    clamp: tuple[float, float] = DEFAULT_CLAMP,
    pinned: Mapping[int, float] | None = None,
    coverage: float | None = None,
) -> ClassWeights:
    """Class weights straight from paintings, for either mode.

    Parameters
    ----------
    labels
        Exclusive: one label array or a list (one per image). Multilabel: one ``(C, *spatial)``
        array or a list of them (one per image).
    mode
        ``"exclusive"`` or ``"multilabel"``.
    method
        Weight method; for multilabel it sets ``pos_weight`` (see :func:`pos_weights_from_counts`).
    n_classes
        Number of classes (exclusive); inferred from the largest value when ``None``.
    clamp, pinned
        See :func:`weights_from_counts`.
    coverage
        The painted share of the paintings' extent the weights are tempered by; ``None``:
        the paintings' own (:func:`painted_extent`, :func:`coverage_of`).
    """
    check_mode(mode)
    if coverage is None:
        arrays = [labels] if isinstance(labels, np.ndarray) else list(labels)
        coverage = coverage_of(painted_extent(a, mode) for a in arrays)
    if mode == EXCLUSIVE:
        return weights_from_counts(count_exclusive(labels, n_classes), method, clamp=clamp, pinned=pinned,
                                   coverage=coverage)
    present, absent = count_multilabel(labels)
    return pos_weights_from_counts(present, absent, method, clamp=clamp, pinned=pinned, coverage=coverage)


def pos_weight_view(weights: torch.Tensor | Sequence[float], spatial_dims: int) -> torch.Tensor:
    """Shape a ``(C,)`` pos_weight as ``(C, 1, 1)`` (2D) or ``(C, 1, 1, 1)`` (3D).

    ``BCEWithLogitsLoss(pos_weight=...)`` broadcasts ``pos_weight`` against the *last* axes of
    the target, so a ``(C,)`` tensor on an ``(N, C, H, W)`` target is wrong (it is matched to W).
    """
    w = torch.as_tensor(weights, dtype=torch.float32)
    if w.ndim != 1:
        raise ValueError(f"pos_weight must be 1-D (C,), got shape {tuple(w.shape)}")
    if spatial_dims not in (2, 3):
        raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}")
    return w.view(-1, *([1] * spatial_dims))
