"""Labels inferred from traced outlines (exclusive mode).

A user who traces the closed outline of an object with one class and marks its inside with
another class has said more than the painted pixels: everything the outline encloses belongs
to the class painted inside it, and just outside the outline the object has ended. Sparse
strokes leave exactly those pixels unlabelled — the gap between the interior stroke and the
outline, and between the outline and the nearest background scribble — and a network trained on
the strokes alone fills the gap with the thin outline class (the *halo* of false boundary that
`benchmarks/RESULTS.md` measures).

:func:`infer_from_outlines` turns the implied labels into extra training targets. It never
changes the user's paintings; the trainer adds the inferred pixels to the targets of its own
copy. The rules, applied in each 2D plane (the last two axes; in a volume, each z slice, the
plane users paint in):

* **Fill.** A connected stroke of class *B* that encloses a hole, where the hole holds paint of
  exactly one other class *A*: the unpainted pixels of the hole are inferred *A*. A hole with no
  paint, or with paint of two or more other classes, infers nothing.
* **Halo.** Around every filled object whose class *A* is not the background class, unpainted
  pixels at a distance ``halo[0]..halo[1]`` (pixels, Euclidean) from the object (hole and
  outline together) are inferred background. The first pixel outside the outline is left alone
  by the default ``(2, 3)``: the outline is traced on the object's edge, not beside it. Pixels
  that another rule infers as an object, or that anyone painted, are never overwritten.
  Given the image, a halo pixel is kept only where the image (smoothed in the plane, σ = 1)
  is closer to the median of the painted background than to the median of the outline's
  class: the band stops where a touching neighbour or, in a volume, the slanted wall of the
  same object still looks like the outline.

Everything is computed on the bounding box of each stroke, so the cost scales with the painted
outlines, not with the image.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from segstudio.core.annotations import UNPAINTED

__all__ = ["DEFAULT_HALO", "infer_from_outlines", "one_channel", "with_inferred"]

DEFAULT_HALO: tuple[int, int] = (2, 3)

_EIGHT = np.ones((3, 3), dtype=bool)


def _plane_objects(
    plane: np.ndarray, out: np.ndarray, background: int | None, halo: tuple[int, int] | None
) -> list[tuple[tuple[slice, slice], np.ndarray, int]]:
    """Fill the holes of one 2D plane in ``out``; return the objects that get a halo
    (crop, object mask in the crop, class of its outline)."""
    objects: list[tuple[tuple[slice, slice], np.ndarray, int]] = []
    pad = 1 + (halo[1] if halo is not None else 0)
    for b in np.unique(plane):
        if b == UNPAINTED:
            continue
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
                inside = inside[(inside != UNPAINTED) & (inside != b)]
                if inside.size != 1:
                    continue
                a = inside[0]
                target = out[crop]
                target[hole & (paint == UNPAINTED)] = a
                if halo is not None and background is not None and a != background:
                    objects.append((crop, hole | (ndi.binary_dilation(hole, _EIGHT) & stroke), int(b)))
    return objects


def one_channel(image: np.ndarray, channel_axis: int | None = None) -> np.ndarray:
    """``image`` as float32 with its channels (if any) averaged: what the halo gate looks at."""
    img = np.asarray(image)
    if channel_axis is not None:
        return img.mean(axis=channel_axis, dtype=np.float32)
    return img.astype(np.float32, copy=False)


def _medians(paint: np.ndarray, image: np.ndarray, classes: set[int]) -> dict[int, float]:
    """Median image value under the paint of each of ``classes`` that has paint."""
    out = {}
    for c in classes:
        values = image[paint == c]
        values = values[np.isfinite(values)]
        if values.size:
            out[c] = float(np.median(values))
    return out


def infer_from_outlines(
    paintings: np.ndarray,
    image: np.ndarray | None = None,
    *,
    background: int | None = 1,
    halo: tuple[int, int] | None = DEFAULT_HALO,
) -> np.ndarray:
    """Labels implied by closed traced outlines, for the unpainted pixels only.

    Parameters
    ----------
    paintings
        Exclusive paintings (``0`` = unpainted, ``1..K``), 2D ``(y, x)`` or 3D ``(z, y, x)``.
    image
        The image, one channel, with the shape of ``paintings`` (average the channels of a
        multi-channel image). It gates the halo (see the module notes); ``None``: no gate.
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
    paint = np.asarray(paintings)
    if paint.ndim not in (2, 3):
        raise ValueError(f"outline inference needs 2D or 3D paintings, got {paint.ndim} dimensions")
    if halo is not None and not 0 < halo[0] <= halo[1]:
        raise ValueError(f"halo must satisfy 0 < near <= far, got {halo}")
    img = None
    if image is not None:
        img = np.asarray(image, dtype=np.float32)
        if img.shape != paint.shape:
            raise ValueError(f"image shape {img.shape} does not match the paintings {paint.shape}")
        img = img.reshape(-1, *paint.shape[-2:])
    inferred = np.zeros_like(paint)
    planes = paint.reshape(-1, *paint.shape[-2:])
    out_planes = inferred.reshape(-1, *paint.shape[-2:])
    medians: dict[int, float] | None = None
    for z in range(planes.shape[0]):
        plane = planes[z]
        if not plane.any():
            continue
        out = out_planes[z]
        objects = _plane_objects(plane, out, background, halo)
        if objects and img is not None and medians is None:
            medians = _medians(paint, img.reshape(paint.shape), {background, *(b for *_, b in objects)})
        for crop, obj, b in objects:
            dist = ndi.distance_transform_edt(~obj)
            band = (dist >= halo[0]) & (dist <= halo[1])  # type: ignore[index]
            band &= (plane[crop] == UNPAINTED) & (out[crop] == UNPAINTED)
            if img is not None and medians is not None and background in medians and b in medians:
                smooth = ndi.gaussian_filter(np.nan_to_num(img[z][crop]), 1.0)
                band &= np.abs(smooth - medians[background]) < np.abs(smooth - medians[b])
            out[crop][band] = background
    return inferred


def with_inferred(
    paintings: np.ndarray,
    image: np.ndarray | None = None,
    *,
    background: int | None = 1,
    halo: tuple[int, int] | None = DEFAULT_HALO,
) -> np.ndarray:
    """The paintings plus the labels :func:`infer_from_outlines` adds: what the trainer learns from.

    Painted pixels keep their class. Returns ``paintings`` itself (not a copy) when nothing is
    inferred, and a new array otherwise.
    """
    paint = np.asarray(paintings)
    inferred = infer_from_outlines(paint, image, background=background, halo=halo)
    if not inferred.any():
        return paint
    return np.where(paint == UNPAINTED, inferred, paint)
