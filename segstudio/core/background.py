"""Background that looks like your background strokes (an implied-label rule).

Users paint background where it is easy: well away from objects. A network trained on those
strokes never sees background next to an object, so it may use "close to an object" as a cue and
paint a rim of object class around every object (the *halo*), however dark that rim is. Yet the
image says more: where the painted background and the painted objects differ clearly in
intensity, an unpainted pixel that is as dark (or as bright) as the painted background, and
unlike any painted object, is background wherever it lies.

:func:`infer_background` returns those pixels, for the unpainted pixels only; it never changes
the user's paintings. The rule, per image:

* ``g``: the image smoothed in each 2D plane (σ = 1 px; channels averaged), so that single noisy
  pixels inside objects do not pass.
* The side: the objects are taken to be brighter than the background (else the rule runs on
  ``-g``) where the image less its wide blur (:func:`local_contrast`, :data:`SIDE_SIGMA`) is
  higher under the object paint than under the background paint (medians;
  :func:`bright_background`). The paints' own medians said the wrong side where the background
  runs brighter than the dim objects and a correction round laid object strokes into them.
* On an uneven background (``uneven``: *wide context* on a 2-D image, *level slices* on a
  volume), ``g`` less its wide blur in each plane (:data:`UNEVEN_SIGMA`): the rule then reads
  every pixel against its local background, as one threshold cannot where the background runs
  brighter than the dim objects elsewhere (benchmarks/RESULTS.md, *The background rule against
  the local background*).
* ``B``, ``F``: ``g`` under the background paint and under the paint of every other class.
  Background strokes whose median lies beyond the ``lo`` quantile of ``F`` (a background stroke
  painted over something bright, on the dark-background side) are left out of ``B``: they say
  that some bright things are background too, not that dark things are not. Such strokes are
  what a correction adds (background painted over a look-alike the network took for an
  object), and with them in ``B`` one round of corrections used to switch the whole rule off,
  so that the prediction after it grew back the halo (benchmarks/RESULTS.md, *Corrections
  switched the background rule off*).
* The rule applies only when the bulk of the two separates: on the dark-background side, the
  lower quartile of ``F`` lies above the upper quartile of ``B`` (mirrored for a bright
  background; :data:`BULK`). This is read on the whole strokes; the threshold below is read on
  the strokes less their spilled parts (:func:`_trusted`): each stroke less its pixels beyond
  the midpoint between its own median and the other paint's median. A stroke laid quickly
  across an object runs on past its edge, and a background stroke crosses into one; their
  spilled pixels pulled the objects' ``lo`` quantile down to the background and pushed the
  background's ``hi`` quantile up, the tails overlapped, and the threshold fell back to the
  background's upper quartile: much of the background was left unlabelled on the quality
  matrix's *sloppy* paintings (nuclei 2-D seed 0: 53 % of the unpainted background inferred,
  88 % with the spill left out; dim 3-D 8 % and 71 %; benchmarks/RESULTS.md, *Strokes that run
  on past an edge*). Textures of equal mean fail this test and infer nothing. A
  background more uneven than the object contrast can pass it, and then part of what is
  inferred is wrong: on the matrix's *dim* images (a ramp stronger than the objects' contrast)
  about 5 % of the inferred pixels were object.
* Where the tails separate (the ``hi`` quantile of ``B`` lies short of the ``lo`` quantile of
  ``F``), the threshold ``t`` lies :data:`TOWARDS_OBJECTS` (0.2) of the way from the first
  towards the second; with *textures* on, at the background's quantile
  (:data:`TOWARDS_OBJECTS_TEXTURES`, 0: a texture's darker grains would join the background).
  At the background's own quantile the rule leaves much of the background unlabelled, the
  rims where objects blur into it among them (the quality matrix's 3-D nuclei with casual
  strokes, seed 0: 128 380 of 270 177 unpainted background voxels left, 12 046 at 0.2; object
  voxels wrongly taken 5 and 53), and the network learnt those rims as object: the halo
  (benchmarks/RESULTS.md, *The background threshold towards the objects, kept where textures
  are off*). Where the
  tails overlap, ``t`` falls back to the upper quartile of ``B``, and never beyond the ``lo``
  quantile of ``F``. The rule used to be
  off whenever the tails overlapped; a correction round adds object strokes into the dim parts
  of objects the network missed, which pulled the objects' ``lo`` quantile below the
  background's and switched the whole rule off, so that the halo came back after the round
  (benchmarks/RESULTS.md, *Object corrections switched the background rule off*). Now such
  strokes lower ``t``.
* Unpainted pixels with ``g`` at or beyond ``t`` (towards the background side) are inferred
  background, where they are part of a patch of such pixels: the
  thresholded mask is opened in each 2D plane with a disk of radius :data:`OPENING_RADIUS`.
  Background is a region, not a pixel: a textured object has its own dark grains, single
  pixels or thin streaks as dark as the background, which the threshold alone called background
  and the network then learnt as background specks inside the texture (benchmarks/RESULTS.md,
  *Textured tissue: background specks*).
* Of those patches, the ones reachable from your background strokes are taken: a pixel is
  inferred when a path of look-alike pixels (face neighbours, across slices too) joins it to a
  background stroke, the way a flood fill from the strokes would spread. A texture's dark
  clusters are islands inside the texture, as dark as the background but not joined to it.
  Background can be cut off from every stroke too (inside a ring of vessel, in a region nobody
  painted), but it is a large region where a texture's clusters are small: an unreached patch
  of at least :data:`MIN_REGION` pixels is taken as well (on the quality matrix's images the
  texture's unreached clusters were at most 94 px, the background cut off inside vessel loops
  mostly hundreds to thousands; benchmarks/RESULTS.md, *Background cut off from the strokes*).
  Every step only removes pixels from the thresholded mask, never adds any.
* Next to what is inferred, the rim (:func:`rim`, :data:`RIM_SHARE`): one threshold for the
  whole image stops short of the blurred rims of objects brighter than the painted ones, and
  the network, told nothing there, puts the edge halfway across the rim in space, a halo. The
  unpainted pixels beside the inferred background that are darker than :data:`RIM_SHARE` of
  the way from the local background (its mean nearby) up to the local peak (the brightest
  pixel within 3 px, and one slice either side), where that peak is object-like, are taken
  too. Off with *textures* (a texture's dark grains lie next to its bright ones).

* The spill itself (:func:`spilled_paint`): object paint that this reading would take as
  background if it were unpainted (its threshold and patches, or darker than the rim's share
  next to them, joined to them), in strokes that reach a bright object (the brightest pixel
  within :data:`RIM_PEAK` of the stroke past the midpoint of the two paints' medians; a stroke
  on a dim object away from bright ones is kept whole). The trainer leaves it out of what it
  learns from the paint; it is never relabelled (:mod:`segstudio.core.implied`).

It works the same for multi-label paintings (:func:`infer_background_multilabel`), with
*absent* as the background. A painting of one class is read like an exclusive one (*absent*
against *present*). With several classes the rule reads the paintings the way exclusive mode
sees them: strokes painted *absent* in every channel are the background, strokes *present* in
any channel the objects, and look-alikes of that background are *absent* in every channel, so
that the same content implies the same labels in both modes. A channel's own strokes are not
read alone: its *absent* paint holds the other classes as well as the background (a boundary
channel's absent strokes are the background and the objects' interiors; a granular channel's
include the fibrous texture), and a rule on them inferred what exclusive mode does not, right on
clean images but wrong where the background is uneven (the *dim* family's boundary channel,
29 % of 13 544 voxels) or the painting thin (tissue 3D, 8 %); benchmarks/RESULTS.md, *One
reading of multi-label paintings for the background rule*. The trainer learns these labels in a second
loss term with its own weights, like those of :mod:`segstudio.core.outlines`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from segstudio.core.annotations import ABSENT, EXCLUSIVE, MULTILABEL, PRESENT, UNPAINTED
from segstudio.core.data import LEVEL_QUANTILE, slice_offsets

__all__ = [
    "DEFAULT_QUANTILES", "TOWARDS_OBJECTS", "TOWARDS_OBJECTS_TEXTURES", "UNEVEN_BACKGROUND", "UNEVEN_SIGMA",
    "background_and_spill", "background_unevenness", "bright_background", "infer_background",
    "infer_background_multilabel",
    "local_contrast", "object_like_strokes", "patches_only", "reachable", "slice_unevenness",
    "smoothed_intensity", "spilled_paint", "towards_objects",
]

#: ``(lo, hi)``: the background threshold is the ``hi`` quantile of the painted background where
#: the ``lo`` quantile of the other paint lies beyond it (else see :data:`BULK`).
DEFAULT_QUANTILES: tuple[float, float] = (0.05, 0.9)
#: Where the painted classes separate, the threshold lies this share of the way from the
#: background's ``hi`` quantile towards the objects' ``lo`` quantile (0: at the background's
#: quantile). Measured at 0.2 and 0.5 on the quality matrix (benchmarks/RESULTS.md, *The
#: background threshold towards the objects*): 0.2 takes in the rims where objects blur into
#: the background and lifts the casual painter's precision on blobs, rods and vessels, but
#: costs textured tissue (their darker grains join the background), which keeps 0
#: (:data:`TOWARDS_OBJECTS_TEXTURES`); the holes it left in the brightest 3-D nuclei no longer
#: split them (:mod:`segstudio.core.instances` seeds from hole-filled planes). 0.2 since
#: session 27 (benchmarks/RESULTS.md, *The background threshold towards the objects, kept
#: where textures are off*).
TOWARDS_OBJECTS = 0.2
#: :data:`TOWARDS_OBJECTS` where *textures* is on (the classes differ more in texture than in
#: brightness, so a threshold on brightness is the least to be trusted: a texture's darker
#: grains next to the background would join it).
TOWARDS_OBJECTS_TEXTURES = 0.0
#: The rim rule (:func:`rim`): next to the inferred background, unpainted pixels darker than
#: this share of the way from the local background up to the local peak are background too
#: (0: off). Read against the truth without training (benchmarks/runs/rim_rule_probe_*): 0.15
#: takes few object pixels (at most 55, of the 1 516 it adds on a *dim* volume; 14 of 220 on
#: 2-D vessels; none on most paintings), 0.25 a few per cent, 0.5 (halfway) up to half of what it adds on the
#: touching rods. Trained on the quality matrix at 0.25, the rods' edges shrank (cells 3-D
#: −0.05); at 0.15 (since session 28) the objects' precision rose where there was a halo and
#: the foreground Dice with it (benchmarks/RESULTS.md, *The rim rule*).
RIM_SHARE = 0.15
#: The rim rule's windows (pixels in each 2D plane): the local background is the mean of the
#: inferred background in a ``RIM_WINDOW`` square, the local peak the maximum in a
#: ``RIM_PEAK`` square (and one slice either side in a volume).
RIM_WINDOW = 11
RIM_PEAK = 7
#: Fewest painted pixels per side for the statistics to mean anything.
MIN_PIXELS = 20
SIGMA = 1.0
#: Radius (pixels, in each 2D plane) of the disk that opens the thresholded mask.
OPENING_RADIUS = 2
#: Look-alike patches of at least this many pixels (voxels in 3D) are taken even when no
#: background stroke reaches them.
MIN_REGION = 150
#: The rule applies when the ``BULK`` quantile of the object strokes lies beyond the
#: ``1 - BULK`` quantile of the background strokes (towards the object side); where the tails
#: overlap, the threshold is that quantile of the background strokes (never beyond the
#: objects' ``lo`` quantile).
BULK = 0.25
#: Leave background strokes that look like an object (their median beyond the ``lo`` quantile
#: of the object strokes) out of the background statistics.
LEAVE_OUT_OBJECT_LIKE_STROKES = True
#: The blur (px, in each 2D plane) that :func:`bright_background` takes the image's local
#: contrast against: wider than the objects, narrower than a background's run. On the quality
#: matrix's 212 paintings (first paintings of seeds 0–2, correction rounds re-made from saved
#: predictions; every image has a dark background) 16 and 32 told the side right on all, 8
#: missed 4, 4 missed 17, the paints' medians 5 (all correction rounds on the *dim* family);
#: the smallest margin at 32 was 0.024 of the image's 1–99 % range, at 16 0.008 (textured
#: tissue, whose regions are large); benchmarks/runs/background_side_2026-12-05_s30.py.
SIDE_SIGMA = 32.0
#: With *uneven* (*wide context* on a 2-D image, *level slices* on a volume: a background that
#: varies more than the painted classes differ from it), the rule reads ``g`` less its
#: Gaussian blur of this many px in each plane: against the local background, so that
#: background as bright as the dim objects elsewhere is background too. On the quality
#: matrix's *dim* cells (every habit, both modes, seeds 0 and 1) foreground Dice rose in 19 of
#: 24 phases in 2-D (fell by at most 0.013; 32 px: 18, and 16 px beat it in 17) and in 21 of 24
#: in 3-D (fell in none); benchmarks/RESULTS.md, *The background rule against the local
#: background*.
UNEVEN_SIGMA = 16.0
#: Above this :func:`background_unevenness`, the painted background varies more in brightness
#: than the painted classes differ from it: on a 2D image, *wide context* is worth a try
#: (benchmarks/RESULTS.md, *A wider filter for uneven backgrounds*).
UNEVEN_BACKGROUND = 1.0
#: Painted pixels per side that :func:`background_unevenness` reads at most (a fixed sample).
UNEVEN_SAMPLES = 100_000


def smoothed_intensity(image: np.ndarray, channel_axis: int | None, ndim: int,
                       offsets: Sequence[Sequence[float]] = (), uneven: bool = False) -> np.ndarray:
    """float32 image (channels averaged), Gaussian-smoothed with σ = 1 px in each 2D plane.

    ``offsets``: a volume's per-slice offsets per channel (*level slices*,
    :attr:`segstudio.core.data.Normalization.offsets`), subtracted (their mean over the
    channels), so that the rules read the levelled image the network sees; ``()``: none.
    ``uneven``: the run takes the background for uneven (see :func:`infer_background`): less
    its Gaussian blur of :data:`UNEVEN_SIGMA` px in each plane, the image against its local
    background. It depends on the image only, so a caller that keeps it (the trainer) blurs
    once per image, not once per paint change.
    """
    img = np.asarray(image, dtype=np.float32)
    if channel_axis is not None:
        img = img.mean(axis=channel_axis)
    img = np.nan_to_num(img)
    sigma = (0.0,) * (ndim - 2) + (SIGMA, SIGMA)
    out = ndi.gaussian_filter(img, sigma)
    if len(offsets) and ndim == 3:
        out -= np.asarray(offsets, np.float32).mean(axis=0).reshape(-1, 1, 1)
    if uneven:
        out -= ndi.gaussian_filter(out, (0.0,) * (ndim - 2) + (UNEVEN_SIGMA, UNEVEN_SIGMA), mode="nearest")
    return out


def patches_only(mask: np.ndarray, radius: int = OPENING_RADIUS) -> np.ndarray:
    """``mask`` opened in each 2D plane (the last two axes) with a disk of ``radius`` pixels:
    the pixels that belong to a disk-shaped patch of the mask. The image border counts as
    inside the mask, so patches that touch it are kept whole."""
    if radius <= 0 or not mask.any():
        return mask
    r = int(radius)
    y, x = np.mgrid[-r:r + 1, -r:r + 1]
    disk = (y * y + x * x) <= r * r
    disk = disk.reshape((1,) * (mask.ndim - 2) + disk.shape)
    eroded = ndi.binary_erosion(mask, disk, border_value=1)
    return ndi.binary_dilation(eroded, disk) & mask


def reachable(mask: np.ndarray, seeds: np.ndarray, min_size: int = 0) -> np.ndarray:
    """The pixels of ``mask`` joined to a pixel of ``seeds`` by a path of ``mask | seeds``
    pixels (face neighbours); with ``min_size``, also every part of ``mask`` (face-connected)
    of at least ``min_size`` pixels, joined or not."""
    labels, n = ndi.label(mask | seeds)
    keep = np.zeros(n + 1, bool)
    keep[np.unique(labels[seeds])] = True
    if min_size > 0:
        keep |= np.bincount(labels.ravel(), minlength=n + 1) >= min_size
    keep[0] = False
    return mask & keep[labels]


def rim(g: np.ndarray, inferred: np.ndarray, unpainted: np.ndarray, level: float,
        share: float, levels: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """The rim between the inferred background and the objects, by brightness.

    ``g``: the smoothed image with the objects on the bright side; ``inferred``: the background
    rule's pixels. Returns the ``unpainted`` pixels, not in ``inferred``, whose ``g`` lies less
    than ``share`` of the way from the local background (the mean of ``g`` over ``inferred`` in
    a :data:`RIM_WINDOW` square of the plane) up to the local peak (the maximum of ``g`` in a
    :data:`RIM_PEAK` square, one slice either side in a volume), where that peak is
    object-like (at least ``level``, the object strokes' low quantile) and the pixel is not
    (below it), joined to ``inferred`` by such pixels (face neighbours). The threshold alone
    stops short of the objects' blurred rims; the network, told nothing there, puts the edge
    halfway across them in space, a halo around every object. The local levels follow a
    background that varies across the image, where one threshold cannot.
    """
    near, local, peak = _levels(g, inferred) if levels is None else levels
    candidates = (unpainted & ~inferred & near & (peak >= level) & (g < level)
                  & (g <= local + share * (peak - local)))
    return reachable(candidates, inferred)


def _levels(g: np.ndarray, inferred: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`rim`'s local levels: ``(near, local, peak)``, where some of ``inferred`` lies in
    the :data:`RIM_WINDOW` square of the plane, the mean of ``g`` over it there, and the maximum
    of ``g`` in a :data:`RIM_PEAK` square (one slice either side in a volume)."""
    spatial = (1,) * (g.ndim - 2)
    weight = ndi.uniform_filter(inferred.astype(np.float32), spatial + (RIM_WINDOW, RIM_WINDOW))
    total = ndi.uniform_filter(np.where(inferred, g, 0).astype(np.float32, copy=False),
                               spatial + (RIM_WINDOW, RIM_WINDOW))
    local = total / np.maximum(weight, 1e-6)
    peak = ndi.maximum_filter(g, (3,) * (g.ndim - 2) + (RIM_PEAK, RIM_PEAK))
    return weight > 0.02, local, peak


def object_like_strokes(paint: np.ndarray, g: np.ndarray, background: int, level: float, dark: bool) -> np.ndarray:
    """Boolean mask of the background strokes (face-connected parts of the ``background`` paint)
    whose median intensity lies at or beyond ``level`` towards the object side: background
    painted over something that looks like an object (typically a correction on a bright
    look-alike the network took for an object)."""
    strokes = paint == background
    med = _per_stroke(strokes, g, ndi.median)
    return strokes & (med >= level if dark else med <= level)


def local_contrast(g: np.ndarray, at: np.ndarray, sigma: float | None = None) -> np.ndarray:
    """``g`` less its Gaussian blur of ``sigma`` px (default :data:`SIDE_SIGMA`, read when
    called) in each 2D plane, at the pixels of mask ``at`` (in ``np.nonzero`` order).

    The blur is taken on block means (blocks of ``sigma // 4`` px square), which is cheap on a
    volume and, at this scale, as good: read at a pixel's block, it is off by at most half a
    block, an eighth of ``sigma``. The border is extended (``nearest``).
    """
    return _contrast_at(g, _block_blur(g, sigma), at)


def _block_blur(g: np.ndarray, sigma: float | None) -> tuple[np.ndarray, int]:
    """:func:`local_contrast`'s blur: the block means of ``g`` (blocks of ``f`` px square in
    each plane) blurred by ``sigma / f``, and ``f``."""
    sigma = SIDE_SIGMA if sigma is None else float(sigma)
    f = max(1, int(sigma // 4))
    h, w = g.shape[-2:]
    ph, pw = -h % f, -w % f
    lead = ((0, 0),) * (g.ndim - 2)
    padded = np.pad(g, lead + ((0, ph), (0, pw)), mode="edge") if ph or pw else g
    small = padded.reshape(padded.shape[:-2] + ((h + ph) // f, f, (w + pw) // f, f)).mean(axis=(-3, -1))
    return ndi.gaussian_filter(small, (0.0,) * (g.ndim - 2) + (sigma / f, sigma / f), mode="nearest"), f


def _contrast_at(g: np.ndarray, blurred: tuple[np.ndarray, int], at: np.ndarray) -> np.ndarray:
    """``g`` less the :func:`_block_blur` ``blurred`` at the pixels of mask ``at``."""
    small, f = blurred
    idx = np.nonzero(at)
    return g[idx] - small[idx[:-2] + (idx[-2] // f, idx[-1] // f)]


def bright_background(paint: np.ndarray, g: np.ndarray, background: int) -> bool:
    """Whether the painted background lies on the bright side of the painted objects.

    Decided by the local contrast (:func:`local_contrast`: the image less its blur of
    :data:`SIDE_SIGMA` px): the median under the object paint against the median under the
    background paint; on a tie, by the medians of the image itself. The image's own medians
    (the rule before session 30) flip on a background more uneven than the objects' contrast:
    a correction round's object strokes, laid into the dim objects a network missed, put the
    objects' median below that of background strokes laid on the bright parts of the
    background, the rule read the image as a bright background and inferred nothing, and the
    prediction after the round lost its precision (benchmarks/RESULTS.md, *Which side the
    background is on*). An object is brighter (or darker) than what lies around it, however the
    background runs. ``False`` where either paint is missing.
    """
    bg_paint = paint == background
    obj_paint = (paint != UNPAINTED) & ~bg_paint
    if not bg_paint.any() or not obj_paint.any():
        return False
    blurred = _block_blur(g, None)  # once for both paints
    d_bg = np.median(_contrast_at(g, blurred, bg_paint))
    d_obj = np.median(_contrast_at(g, blurred, obj_paint))
    if d_bg != d_obj:
        return bool(d_bg > d_obj)
    return bool(np.median(g[bg_paint]) > np.median(g[obj_paint]))


def towards_objects(textures: bool = False) -> float:
    """The share of the way the threshold lies towards the objects: :data:`TOWARDS_OBJECTS`, or
    :data:`TOWARDS_OBJECTS_TEXTURES` where *textures* is on (read when called)."""
    return TOWARDS_OBJECTS_TEXTURES if textures else TOWARDS_OBJECTS


def rim_share(textures: bool = False) -> float:
    """The :func:`rim` rule's share: :data:`RIM_SHARE`, or 0 (off) where *textures* is on (a
    texture's darker grains lie next to its brighter ones; read when called)."""
    return 0.0 if textures else RIM_SHARE


def _threshold(paint: np.ndarray, g: np.ndarray, background: int, quantiles: tuple[float, float],
               towards: float) -> tuple[np.ndarray, float, float, float] | None:
    """The rule's reading of the paint: ``(g, t, level, mid)`` with ``g`` turned so that the
    objects lie on the bright side, the threshold ``t``, the objects' ``lo`` quantile ``level``
    (both read on the strokes less their spilled parts, :func:`_trusted`) and the midpoint of the
    two paints' medians, or ``None`` when the paint does not separate."""
    bg_paint = paint == background
    obj_paint = (paint != UNPAINTED) & ~bg_paint
    if np.count_nonzero(bg_paint) < MIN_PIXELS or np.count_nonzero(obj_paint) < MIN_PIXELS:
        return None
    lo, hi = quantiles
    # on a bright background, work on -g: the objects are then above the background either way
    if bright_background(paint, g, background):
        g = -g
    bg_med = _per_stroke(bg_paint, g, ndi.median)  # each background stroke's median, at its pixels
    other = g[obj_paint]
    level = np.quantile(other, lo)
    counted = bg_paint
    if LEAVE_OUT_OBJECT_LIKE_STROKES:  # :func:`object_like_strokes`, from the medians above
        counted = bg_paint & (bg_med < level)
    if np.count_nonzero(counted) < MIN_PIXELS:
        return None
    if np.quantile(other, BULK) <= np.quantile(g[counted], 1.0 - BULK):
        return None
    # the threshold from the strokes less their spilled parts (:func:`_trusted`)
    mb, mf = np.median(g[bg_paint]), np.median(other)
    obj_stat, bg_stat = _trusted(bg_paint, obj_paint, g, bg_med, mb, mf)
    level = np.quantile(g[obj_stat], lo)
    if LEAVE_OUT_OBJECT_LIKE_STROKES:
        bg_stat = bg_stat & (bg_med < level)
    if np.count_nonzero(bg_stat) < MIN_PIXELS:
        return None
    bg = g[bg_stat]
    t = np.quantile(bg, hi)
    if t >= level:  # the tails overlap
        t = min(np.quantile(bg, 1.0 - BULK), level)
    else:
        t += towards * (level - t)
    return g, float(t), float(level), float((mb + mf) / 2)


def _per_stroke(mask: np.ndarray, values: np.ndarray, reduce: Callable[..., Any]) -> np.ndarray:
    """``reduce`` (``ndi.median``, ``ndi.maximum``) of ``values`` over each stroke
    (face-connected part of ``mask``), at its pixels; 0 elsewhere."""
    strokes, n = ndi.label(mask)
    if n == 0:
        return np.zeros(values.shape)
    painted = strokes > 0  # scipy's labelled reductions visit every value given: the strokes' only
    per = np.concatenate([[0.0], np.asarray(reduce(values[painted], strokes[painted], np.arange(1, n + 1)))])
    return per[strokes]


def _reaching(obj_paint: np.ndarray, peak: np.ndarray, mid: float) -> np.ndarray:
    """The object strokes that reach a bright object: the brightest pixel within
    :data:`RIM_PEAK` of the stroke (``peak``, :func:`_levels`) at or past ``mid``."""
    return obj_paint & (_per_stroke(obj_paint, peak, ndi.maximum) >= mid)


def _trusted(bg_paint: np.ndarray, obj_paint: np.ndarray, g: np.ndarray, bg_med: np.ndarray,
             mb: float, mf: float) -> tuple[np.ndarray, np.ndarray]:
    """The object and the background paint that the rule's threshold reads (``g`` with the
    objects on the bright side; ``bg_med`` each background stroke's median at its pixels, ``mb``
    and ``mf`` the two paints' medians): each stroke less its pixels beyond the midpoint between
    its own median and the other paint's median, the part that ran on past an object's edge. A
    stroke laid wholly on a dim object keeps most of its pixels (its own median is dim); a
    background stroke whose median lies past the midpoint of the two paints' medians (painted
    over a bright look-alike) is kept whole. The full paint is used where too little is left
    (:data:`MIN_PIXELS`)."""
    own = _per_stroke(obj_paint, g, ndi.median)
    obj = obj_paint & (g >= (own + mb) / 2)
    bg = bg_paint & ((bg_med > (mb + mf) / 2) | (g <= (bg_med + mf) / 2))
    if np.count_nonzero(obj) < MIN_PIXELS or np.count_nonzero(bg) < MIN_PIXELS:
        return obj_paint, bg_paint
    return obj, bg


def _rule(paint: np.ndarray, g: np.ndarray, background: int, quantiles: tuple[float, float],
          towards: float, share: float = 0.0, spill: bool = False) -> tuple[np.ndarray | None, np.ndarray | None]:
    """``(inferred, spilled)``: boolean masks of the inferred background and (with ``spill``) of
    the spilled object paint (:func:`spilled_paint`), ``None`` when the paint does not separate.
    The spill shares the rule's threshold, patches and local levels."""
    read = _threshold(paint, g, background, quantiles, towards)
    if read is None:
        return None, None
    g, t, level, mid = read
    bg_paint = paint == background
    unpainted = paint == UNPAINTED
    joined = reachable(patches_only(g <= t), bg_paint, MIN_REGION)
    inferred = unpainted & joined
    if not inferred.any():
        return inferred, None
    levels = _levels(g, inferred) if share > 0 or spill else None
    spilled = None
    if spill:
        obj_paint = ~unpainted & ~bg_paint
        # only strokes that reach a bright object (the brightest pixel within RIM_PEAK of them
        # past the midpoint of the two paints' medians) can run on past its edge: a stroke laid
        # on a dim object, a correction where the network missed it, is kept whole
        runs_on = _reaching(obj_paint, levels[2], mid)
        out = runs_on & joined
        if share > 0:
            near, local, peak = levels
            out |= runs_on & near & (peak >= level) & (g <= local + share * (peak - local))
        spilled = out & reachable(out, inferred)
    if share > 0:
        inferred = inferred | rim(g, inferred, unpainted, level, share, levels)
    return inferred, spilled


def _exclusive_view(paint: np.ndarray, mode: str, background: int) -> tuple[np.ndarray, int]:
    """The paintings the rule reads and their background value: exclusive paintings as they are;
    one multi-label channel with *absent* as the background; several read across channels
    (strokes *absent* in every channel are the background, *present* in any the objects)."""
    if mode == EXCLUSIVE:
        return paint, background
    if paint.shape[0] == 1:
        return paint[0], ABSENT
    nothing = np.all(paint == ABSENT, axis=0)
    something = np.any(paint == PRESENT, axis=0)
    return np.where(nothing, 1, np.where(something, 2, UNPAINTED)).astype(np.uint8), 1


def background_and_spill(
    paintings: np.ndarray,
    image: np.ndarray,
    *,
    mode: str = EXCLUSIVE,
    channel_axis: int | None = None,
    background: int = 1,
    quantiles: tuple[float, float] = DEFAULT_QUANTILES,
    smoothed: np.ndarray | None = None,
    textures: bool = False,
    uneven: bool = False,
    spill: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`infer_background` (exclusive ``mode``) or :func:`infer_background_multilabel`
    (multi-label), and :func:`spilled_paint`, in one reading of the paint (the two share the
    threshold, the patches and the local levels). Returns ``(labels, spilled)``: the labels in
    the paintings' form, the spill a boolean mask of the spatial shape (all ``False`` without
    ``spill``)."""
    paint = np.asarray(paintings)
    spatial = paint.ndim if mode == EXCLUSIVE else paint.ndim - 1
    g = smoothed_intensity(image, channel_axis, spatial, uneven=uneven) if smoothed is None else smoothed
    if g.shape != paint.shape[paint.ndim - spatial:]:
        raise ValueError(f"image shape {np.shape(image)} does not match the paintings {paint.shape}")
    view, bg_value = _exclusive_view(paint, mode, background)
    mask, spilled = _rule(view, g, bg_value, quantiles, towards_objects(textures), rim_share(textures), spill)
    out = np.zeros_like(paint)
    if mask is not None:
        if mode == EXCLUSIVE:
            out[mask] = background
        else:
            for c in range(paint.shape[0]):
                out[c][mask & (paint[c] == UNPAINTED)] = ABSENT
    return out, np.zeros(g.shape, bool) if spilled is None else spilled


def infer_background(
    paintings: np.ndarray,
    image: np.ndarray,
    *,
    channel_axis: int | None = None,
    background: int = 1,
    quantiles: tuple[float, float] = DEFAULT_QUANTILES,
    smoothed: np.ndarray | None = None,
    textures: bool = False,
    uneven: bool = False,
) -> np.ndarray:
    """Unpainted pixels that look like the painted background (see the module notes).

    Parameters
    ----------
    paintings
        Exclusive paintings (``0`` unpainted, ``1..K``), 2D or 3D.
    image
        The image: the spatial shape of ``paintings`` plus ``channel_axis`` if it has one.
    channel_axis
        The channel axis of ``image`` or ``None``.
    background
        The background class.
    quantiles
        ``(lo, hi)``: see :data:`DEFAULT_QUANTILES`.
    smoothed
        :func:`smoothed_intensity` of ``image`` (with the same ``uneven``), when the caller has
        it already.
    textures
        *Textures* is on for this image: the threshold stays nearer the background
        (:func:`towards_objects`).
    uneven
        The run takes the background for uneven (*wide context* on a 2-D image, *level slices*
        on a volume): the rule reads the image against its local background
        (:data:`UNEVEN_SIGMA`).

    Returns
    -------
    numpy.ndarray
        Same shape and dtype as ``paintings``: ``background`` where inferred, ``0`` elsewhere.
    """
    return background_and_spill(paintings, image, channel_axis=channel_axis, background=background,
                                quantiles=quantiles, smoothed=smoothed, textures=textures, uneven=uneven,
                                spill=False)[0]


def infer_background_multilabel(
    paintings: np.ndarray,
    image: np.ndarray,
    *,
    channel_axis: int | None = None,
    quantiles: tuple[float, float] = DEFAULT_QUANTILES,
    smoothed: np.ndarray | None = None,
    textures: bool = False,
    uneven: bool = False,
) -> np.ndarray:
    """:func:`infer_background` for ``(C, *spatial)`` multi-label paintings, with *absent* as the
    background: one channel as an exclusive painting; several across channels (strokes *absent*
    in every channel against strokes *present* in any, the look-alikes *absent* in every
    channel; see the module notes), so that the same content implies what exclusive mode
    infers. Inferred pixels are ``2`` (absent), only where that channel is unpainted."""
    return background_and_spill(paintings, image, mode=MULTILABEL, channel_axis=channel_axis, quantiles=quantiles,
                                smoothed=smoothed, textures=textures, uneven=uneven, spill=False)[0]


def spilled_paint(
    paintings: np.ndarray,
    image: np.ndarray,
    *,
    mode: str = EXCLUSIVE,
    channel_axis: int | None = None,
    background: int = 1,
    quantiles: tuple[float, float] = DEFAULT_QUANTILES,
    smoothed: np.ndarray | None = None,
    textures: bool = False,
    uneven: bool = False,
) -> np.ndarray:
    """Object paint that lies on what looks like the background: spilled strokes.

    A stroke laid quickly across an object runs on past its edge, and an outline traced a pixel
    too wide lies outside it; learnt as the object, that paint teaches a halo. This reads the
    object paint as the background rule reads unpainted pixels: in strokes that reach a bright
    object (the brightest pixel within :data:`RIM_PEAK` of the stroke past the midpoint of the
    painted background's and objects' medians; not a stroke on a dim object away from bright
    ones, a correction where the network missed that object),
    painted pixels that pass its threshold and patches (joined to a background stroke), or that
    lie darker than the rim's share (:func:`rim_share`) of the way from the local background up
    to the local peak next to such background, joined to it. Returns a boolean mask in the
    paintings' spatial shape; the trainer leaves those pixels out of what it learns from the
    paint (it never relabels them). ``mode``: exclusive paintings (``background`` is the
    background class) or multi-label ``(C, *spatial)`` ones (read across channels as
    :func:`infer_background_multilabel` does).
    """
    return background_and_spill(paintings, image, mode=mode, channel_axis=channel_axis, background=background,
                                quantiles=quantiles, smoothed=smoothed, textures=textures, uneven=uneven)[1]


def _local_means(img: np.ndarray, mask: np.ndarray, rng: np.random.Generator, radius: int = 2) -> np.ndarray:
    """Mean of the ``(2 radius + 1)²`` neighbourhood (and of the channels, last axis if ``img``
    has three) of at most :data:`UNEVEN_SAMPLES` pixels of ``mask``: smoothing read at the
    strokes only, whatever the image's size (a memory-mapped image is read where painted)."""
    ys, xs = np.nonzero(mask)
    if ys.size > UNEVEN_SAMPLES:
        keep = rng.choice(ys.size, UNEVEN_SAMPLES, replace=False)
        ys, xs = ys[keep], xs[keep]
    total = np.zeros(ys.size, np.float64)
    h, w = mask.shape
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            v = np.asarray(img[np.clip(ys + dy, 0, h - 1), np.clip(xs + dx, 0, w - 1)], dtype=np.float64)
            total += v.mean(axis=-1) if v.ndim == 2 else v
    return total / (2 * radius + 1) ** 2


def background_unevenness(image: np.ndarray, paintings: np.ndarray, mode: str,
                          channel_axis: int | None = None) -> float | None:
    """How much the painted background varies in brightness, relative to how much the other
    paint differs from it: the 5–95 % spread of the (locally averaged) image under the
    background strokes over the difference of the two sides' medians.

    Exclusive paintings ``(y, x)``: class 1 is the background, classes 2.. the other side.
    Multi-label ``(C, y, x)``: *absent* in every channel is the background, *present* in any
    the other side. On the simulated 2D paintings of ``benchmarks/quality.py`` (seeds 0–2,
    casual, sloppy and outline strokes) it was 1.17–64 on the uneven *dim* family, at most 0.52
    on nuclei, cells and tissue, and above 1 on two vessel paintings of nine (1.01, 1.20).

    Returns
    -------
    float or None
        The ratio (``inf`` when the medians are equal); ``None`` for anything but a 2D
        painting, or with fewer than :data:`MIN_PIXELS` painted pixels on a side.
    """
    paint = np.asarray(paintings)
    img = np.asarray(image)
    if channel_axis is not None:
        img = np.moveaxis(img, channel_axis, -1)
    sides = _sides(paint, mode, 2)
    if sides is None:
        return None
    background, other = sides
    if img.shape[:2] != background.shape or background.sum() < MIN_PIXELS or other.sum() < MIN_PIXELS:
        return None
    rng = np.random.default_rng(0)
    bg = _local_means(img, background, rng)
    ob = _local_means(img, other, rng)
    bg, ob = bg[np.isfinite(bg)], ob[np.isfinite(ob)]
    if bg.size < MIN_PIXELS or ob.size < MIN_PIXELS:
        return None
    lo, hi = np.percentile(bg, [5, 95])
    contrast = abs(float(np.median(ob)) - float(np.median(bg)))
    return float(hi - lo) / contrast if contrast > 0 else float("inf")


def _sides(paint: np.ndarray, mode: str, spatial_dims: int) -> tuple[np.ndarray, np.ndarray] | None:
    """The painted background and the other paint as masks (exclusive: class 1 against classes
    2..; multi-label: *absent* in every channel against *present* in any), or ``None`` for
    paintings of another rank."""
    if mode == EXCLUSIVE:
        return (paint == 1, paint > 1) if paint.ndim == spatial_dims else None
    if paint.ndim != spatial_dims + 1:
        return None
    return (paint == ABSENT).all(axis=0), (paint == PRESENT).any(axis=0)


def slice_unevenness(image: np.ndarray, paintings: np.ndarray, mode: str,
                     channel_axis: int | None = None) -> float | None:
    """How much a volume's background level runs along its slices, relative to how much the
    painted classes differ: the range over slices of each slice's background level (its
    :data:`~segstudio.core.data.LEVEL_QUANTILE` % quantile, smoothed along z as *level slices*
    smooths it, :func:`~segstudio.core.data.slice_offsets`) over the difference of the medians
    of the image under the background strokes and under the other paint (the channels'
    mean). The sides are those of :func:`background_unevenness`. On the quality matrix's 3D
    paintings of seeds 0–5 it was 0.99–23 on the *dim* family, at most 1.08 on tissue and 0.19 on the others
    (:data:`segstudio.core.config.SLICE_UNEVENNESS`).

    Returns
    -------
    float or None
        The ratio (``inf`` when the medians are equal); ``None`` for anything but a volume's
        painting, or with fewer than :data:`MIN_PIXELS` painted voxels on a side.
    """
    paint = np.asarray(paintings)
    img = np.asarray(image)
    chw = img[None] if channel_axis is None else np.moveaxis(img, channel_axis, 0)
    sides = _sides(paint, mode, 3)
    if sides is None or chw.ndim != 4 or chw.shape[1:] != sides[0].shape:
        return None
    background, other = sides
    if background.sum() < MIN_PIXELS or other.sum() < MIN_PIXELS:
        return None
    planes = chw.reshape(chw.shape[0], chw.shape[1], -1)
    per = max(1, UNEVEN_SAMPLES // planes.shape[1])
    if planes.shape[2] > per:
        rng = np.random.default_rng(0)
        planes = planes[:, :, np.sort(rng.choice(planes.shape[2], per, replace=False))]
    planes = planes.astype(np.float64).mean(axis=0)
    levels = [np.percentile(p[np.isfinite(p)], LEVEL_QUANTILE) if np.isfinite(p).any() else np.nan for p in planes]
    bg = chw[:, background].astype(np.float64).mean(axis=0)
    ob = chw[:, other].astype(np.float64).mean(axis=0)
    bg, ob = bg[np.isfinite(bg)], ob[np.isfinite(ob)]
    if bg.size < MIN_PIXELS or ob.size < MIN_PIXELS:
        return None
    contrast = abs(float(np.median(ob)) - float(np.median(bg)))
    spread = float(np.ptp(slice_offsets(levels)))
    return spread / contrast if contrast > 0 else float("inf")
