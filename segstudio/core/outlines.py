"""Labels inferred from traced outlines (exclusive and multi-label paintings).

A user who traces the closed outline of an object with one class and marks its inside with
another class has said more than the painted pixels: everything the outline encloses belongs
to the class painted inside it, and just outside the outline the object has ended. Sparse
strokes leave exactly those pixels unlabelled — the gap between the interior stroke and the
outline, and between the outline and the nearest background scribble — and a network trained on
the strokes alone fills the gap with the thin outline class (the *halo* of false boundary that
`benchmarks/RESULTS.md` measures).

:func:`infer_from_outlines` returns the implied labels; it never changes the user's paintings.
The trainer learns them as a second target, in a loss term with its own class weights (see
:class:`segstudio.core.data.PatchSampler` and :class:`segstudio.core.trainer.Trainer`). The
rules, applied in each 2D plane (the last two axes; in a volume, each z slice, the plane users
paint in):

* **Fill.** A connected stroke of class *B* that encloses a hole, where the hole holds paint of
  exactly one other class *A*: the unpainted pixels of the hole are inferred *A*; where it holds
  paint of *B* only (the object traced and marked with one class), they are inferred *B*. A hole
  with no paint, or with paint of two or more other classes, infers nothing; nor does a loop of
  the background class (a scribble around an object encloses background as well as the object).
* **Halo.** Around every filled object whose class *A* is not the background class, unpainted
  pixels at a distance ``halo[0]..halo[1]`` (pixels, Euclidean) from the object (hole and
  outline together) are inferred background. The first pixel outside the outline is left alone
  by the default ``(2, 3)``: the outline is traced on the object's edge, not beside it. Pixels
  that another rule infers as an object, or that anyone painted, are never overwritten.
  Given the image, a halo pixel is kept only where the image (smoothed in the plane, σ = 1)
  is closer to the median of the painted background than to the median of the outline's
  class: the band stops where a touching neighbour or, in a volume, the slanted wall of the
  same object still looks like the outline.

Multi-label paintings (:func:`infer_multilabel`) follow the same rules in each class channel,
with *absent* as the background: a closed *present* outline around *present* paint fills the
object as present (and the band outside it as absent); a *present* outline around *absent*
paint (a boundary traced around an interior marked "not boundary") fills the inside as absent.
Strokes are told apart by the combination of every channel's value, not by one channel's: an
interior stroke that touches the traced boundary is, in the object channel, *present* like
the boundary, but the boundary channel says one is boundary and the other not, so the object
still fills as it does in exclusive mode (before, the two merged into one stroke with an empty
hole, and on the quality matrix's *cells* volumes the object channel filled 245 voxels where
exclusive mode filled 2929; benchmarks/RESULTS.md, *Multi-label outlines touched by the
interior stroke*).

Apart from labelling each painted plane's strokes and the medians under the paint, everything is
computed on the padded bounding box of each stroke, so the cost scales with the painted outlines.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import ndimage as ndi

from segstudio.core.annotations import ABSENT, UNPAINTED

__all__ = ["DEFAULT_HALO", "infer_from_outlines", "infer_multilabel"]

DEFAULT_HALO: tuple[int, int] = (2, 3)

_EIGHT = np.ones((3, 3), dtype=bool)


def _plane_objects(
    plane: np.ndarray,
    out: np.ndarray,
    background: int | None,
    halo: tuple[int, int] | None,
    value: Callable[[int], int] | None = None,
) -> list[tuple[tuple[slice, slice], np.ndarray, int]]:
    """Fill the holes of one 2D plane in ``out``; return the objects that get a halo
    (crop, object mask in the crop, class of its outline).

    ``plane`` holds stroke codes: the paint's classes, or (multi-label) the combination of
    every channel's value, so that strokes of one channel value but different combinations
    (a boundary and an interior both *present* in the object channel) stay apart. ``value``
    maps a code to the class written in ``out`` (``None``: the code itself).
    """
    val = (lambda k: k) if value is None else value
    objects: list[tuple[tuple[slice, slice], np.ndarray, int]] = []
    pad = 1 + (halo[1] if halo is not None else 0)
    for b in np.unique(plane):
        if b == UNPAINTED or val(int(b)) == background:
            continue  # a background loop around an object is a lasso, not the object's outline
        strokes, n = ndi.label(plane == b, structure=_EIGHT)
        for i, box in enumerate(ndi.find_objects(strokes), start=1):
            if box is None:
                continue
            # a box padded on every side, so that the hole test and the halo see the outside
            crop = tuple(slice(max(s.start - pad, 0), min(s.stop + pad, n_)) for s, n_ in zip(box, plane.shape))
            stroke = strokes[crop] == i
            filled = ndi.binary_fill_holes(stroke)
            holes = filled & ~stroke
            if not holes.any():
                continue
            hole_lab, n_holes = ndi.label(holes)
            paint = plane[crop]
            for h in range(1, n_holes + 1):
                hole = hole_lab == h
                inside = np.unique(paint[hole])
                inside = inside[inside != UNPAINTED]
                others = {val(int(k)) for k in inside[inside != b]}
                if len(others) == 1:
                    a = others.pop()
                elif not others and inside.size:
                    a = val(int(b))  # the outline's own class painted inside: the object is that class
                else:
                    continue
                target = out[crop]
                target[hole & (paint == UNPAINTED)] = a
                if halo is not None and background is not None and a != background:
                    objects.append((crop, hole | (ndi.binary_dilation(hole, _EIGHT) & stroke), val(int(b))))
    return objects


class _Gate:
    """The image side of the halo rule: medians under the paint and smoothed crops, read from
    the image lazily (no full-size copy: channels are averaged only where they are read)."""

    def __init__(self, image: np.ndarray, channel_axis: int | None, paint: np.ndarray) -> None:
        img = np.asarray(image)
        if channel_axis is not None:
            img = np.moveaxis(img, channel_axis, -1)  # a view
        if img.shape[: paint.ndim] != paint.shape or img.ndim != paint.ndim + (channel_axis is not None):
            raise ValueError(f"image shape {np.shape(image)} does not match the paintings {paint.shape}")
        self.image = img
        self.channels = channel_axis is not None
        self.paint = paint
        self._medians: dict[int, float | None] = {}

    def values(self, index: object) -> np.ndarray:
        """float32 image values at ``index`` (channels averaged)."""
        v = np.asarray(self.image[index], dtype=np.float32)
        return v.mean(axis=-1) if self.channels else v

    def median(self, cls: int) -> float | None:
        """Median image value under the paint of ``cls`` (``None`` when unpainted)."""
        if cls not in self._medians:
            v = self.values(np.nonzero(self.paint == cls))
            v = v[np.isfinite(v)]
            self._medians[cls] = float(np.median(v)) if v.size else None
        return self._medians[cls]

    def looks_like(self, index: object, background: int, outline: int) -> np.ndarray | None:
        """Where the smoothed image at ``index`` (a 2D crop) is closer to the painted
        background than to the painted ``outline`` class; ``None`` if either is unpainted."""
        m_bg, m_ol = self.median(background), self.median(outline)
        if m_bg is None or m_ol is None:
            return None
        smooth = ndi.gaussian_filter(np.nan_to_num(self.values(index)), 1.0)
        return np.abs(smooth - m_bg) < np.abs(smooth - m_ol)


def infer_from_outlines(
    paintings: np.ndarray,
    image: np.ndarray | None = None,
    *,
    channel_axis: int | None = None,
    background: int | None = 1,
    halo: tuple[int, int] | None = DEFAULT_HALO,
) -> np.ndarray:
    """Labels implied by closed traced outlines, for the unpainted pixels only.

    Parameters
    ----------
    paintings
        Exclusive paintings (``0`` = unpainted, ``1..K``), 2D ``(y, x)`` or 3D ``(z, y, x)``.
    image
        The image (the spatial shape of ``paintings``, plus ``channel_axis`` if it has
        channels, which are averaged). It gates the halo (see the module notes); ``None``: no
        gate.
    channel_axis
        The channel axis of ``image``, or ``None``.
    background
        The background class (1-based; by convention class 1). ``None``: no halo.
    halo
        ``(near, far)`` distances in pixels of the background band around each filled object;
        ``None``: no halo.

    Returns
    -------
    numpy.ndarray
        Same shape and dtype as ``paintings``: the inferred class where a rule applies to an
        unpainted pixel, ``0`` elsewhere (and on every painted pixel).
    """
    return _infer(np.asarray(paintings), image, channel_axis, background, halo)


def _infer(
    paint: np.ndarray,
    image: np.ndarray | None,
    channel_axis: int | None,
    background: int | None,
    halo: tuple[int, int] | None,
    codes: Callable[[int], np.ndarray] | None = None,
    value: Callable[[int], int] | None = None,
) -> np.ndarray:
    """:func:`infer_from_outlines` of ``paint``; ``codes(z)`` gives plane ``z``'s stroke codes
    (``None``: the paint's own classes) and ``value`` maps a code to a class of ``paint``."""
    if paint.ndim not in (2, 3):
        raise ValueError(f"outline inference needs 2D or 3D paintings, got {paint.ndim} dimensions")
    if halo is not None and not 0 < halo[0] <= halo[1]:
        raise ValueError(f"halo must satisfy 0 < near <= far, got {halo}")
    gate = None if image is None else _Gate(image, channel_axis, paint)
    inferred = np.zeros_like(paint)
    planes = paint.reshape(-1, *paint.shape[-2:])
    out_planes = inferred.reshape(-1, *paint.shape[-2:])
    for z in range(planes.shape[0]):
        plane = planes[z]
        if not plane.any():
            continue
        out = out_planes[z]
        for crop, obj, b in _plane_objects(plane if codes is None else codes(z), out, background, halo, value):
            dist = ndi.distance_transform_edt(~obj)
            band = (dist >= halo[0]) & (dist <= halo[1])  # type: ignore[index]
            band &= (plane[crop] == UNPAINTED) & (out[crop] == UNPAINTED)
            if gate is not None:
                like = gate.looks_like((z, *crop) if paint.ndim == 3 else crop, background, b)  # type: ignore[arg-type]
                if like is not None:
                    band &= like
            out[crop][band] = background
    return inferred


def infer_multilabel(
    paintings: np.ndarray,
    image: np.ndarray | None = None,
    *,
    channel_axis: int | None = None,
    halo: tuple[int, int] | None = DEFAULT_HALO,
) -> np.ndarray:
    """Labels implied by closed traced outlines in multi-label paintings, channel by channel.

    Parameters
    ----------
    paintings
        ``(C, *spatial)``: ``0`` unpainted, ``1`` present, ``2`` absent per class channel.
    image, channel_axis, halo
        As for :func:`infer_from_outlines` (the band outside a filled object is *absent*).

    Returns
    -------
    numpy.ndarray
        Same shape and dtype: the inferred ``1``/``2`` where a rule applies to a pixel left
        unpainted in that channel, ``0`` elsewhere.

    Notes
    -----
    In channel ``c`` a stroke is a connected set of pixels painted in ``c`` with one
    combination of values across all channels, so a hole's contents and its outline are read
    per combination and written as channel ``c``'s value: a hole whose other strokes are all
    *present* (or all *absent*) in ``c`` fills with that value; a hole holding both infers
    nothing.
    """
    paint = np.asarray(paintings)
    out = np.zeros_like(paint)
    n = paint.shape[0]
    if n == 0:
        return out
    planes = paint.reshape(n, -1, *paint.shape[-2:])
    dtype = np.uint8 if 3**n <= 256 else np.uint16 if 3**n <= 65536 else np.int64
    weights = (3 ** np.arange(n)).astype(dtype)
    joint_codes = 3**n <= 2**62  # base-3 codes fit in int64 up to 39 classes; beyond, per channel

    def codes(c: int) -> Callable[[int], np.ndarray] | None:
        def plane(z: int) -> np.ndarray:
            joint = np.tensordot(weights, planes[:, z].astype(dtype), axes=1).astype(dtype)
            return np.where(planes[c, z] != UNPAINTED, joint, 0).astype(dtype)
        return plane if joint_codes else None

    for c in range(n):
        if (paint[c] != UNPAINTED).any():
            out[c] = _infer(paint[c], image, channel_axis, ABSENT, halo, codes(c),
                            (lambda k, c=c: (k // 3**c) % 3) if joint_codes else None)
    return out
