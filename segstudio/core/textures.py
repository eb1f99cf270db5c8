"""Whether the painted classes differ in texture more than in brightness (*textures* on ``auto``).

The region statistics of the input filters (:mod:`segstudio.core.features`, ``filter_context``:
local mean, standard deviation and structure-tensor anisotropy over
:data:`~segstudio.core.config.TEXTURE_SCALE` pixels) lift textured images a long way and cost
images of separate bright objects a little (benchmarks/RESULTS.md, *Region statistics for
textures*). :func:`texture_gain` reads from the paintings which kind of image this is:

* per pair of painted classes (exclusive: classes ``1..K``; multi-label: the combinations of
  *present* and *absent* over the channels, as the same content painted exclusively), how well one feature alone tells the pair's painted pixels apart,
  as ``|2·AUC − 1|`` (0: not at all, 1: perfectly; the area under the ROC curve of the
  feature's values, the Mann-Whitney statistic);
* the brightness (the image smoothed at σ 1 px) against the better of the local standard
  deviation and the anisotropy at the region scale;
* the gain is the largest margin, over pairs, by which a region statistic beats the
  brightness.

Grains and the gaps between them share a class but not a brightness, and two textures of one
mean brightness differ in variation or direction only: both give large gains. Separate objects
brighter than their background give none, since brightness already tells them apart. On the
quality matrix's paintings (seeds 0-5, outline, casual and sloppy strokes, 2D and 3D) it
exceeded :data:`~segstudio.core.config.TEXTURE_GAIN` on 31 of 36 textured tissue paintings
(-0.02 to 0.99: strokes that happen to miss the texture's dark gaps look separable by
brightness), on none of the 108 nuclei, rod-shaped cells and vessel paintings (at most 0.19),
and on 9 of 36 of the *dim* family's (a background ramp stronger than the objects'
contrast; benchmarks/RESULTS.md).

The features are computed on tiles around the paint only (the image may be large; a volume's
tiles are single planes, as it is painted), :data:`MAX_TILES` of them (more while a class has
too few values), kept for the
next call while the image is the same object, and each class's values are subsampled to
:data:`MAX_VALUES`.
"""

from __future__ import annotations

import itertools
import threading
import weakref
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from scipy.stats import rankdata

from segstudio.core.annotations import ABSENT, EXCLUSIVE, PRESENT
from segstudio.core.config import TEXTURE_SCALE
from segstudio.core.features import FilterBank

#: Fewest painted pixels a class needs to be compared.
MIN_PIXELS = 20
#: Tile size (per spatial axis, before the margin) of the feature computation: volumes are
#: painted in single planes, so one plane.
TILE: dict[int, tuple[int, ...]] = {2: (256, 256), 3: (1, 128, 128)}
#: Tiles with paint that are read (in turn from each class's, the most painted first; up to
#: three times as many while a class has fewer than :data:`MIN_PIXELS` values): a second or two
#: on one CPU thread, in the worker that weighs the paintings.
MAX_TILES = 8
#: Feature tiles kept between calls (the image does not change while the user paints on it).
CACHE_BYTES = 64 * 2**20
#: Values per class kept for the comparison (evenly spread).
MAX_VALUES = 20_000

#: Channels of ``FilterBank(d, (1,), context=(ρ,))``: image, G₁, gradient, LoG, then mean, std,
#: anisotropy at ρ.
_BRIGHTNESS, _STD, _ANISOTROPY = 1, 5, 6


def separation(a: np.ndarray, b: np.ndarray) -> float:
    """``|2·AUC − 1|`` of two samples: 0 when a value of ``a`` is as likely above one of ``b`` as
    below, 1 when every value of one lies above every value of the other (ties count half)."""
    a = np.asarray(a, np.float64).ravel()
    b = np.asarray(b, np.float64).ravel()
    if a.size == 0 or b.size == 0:
        raise ValueError("both samples need values")
    ranks = rankdata(np.concatenate([a, b]))  # ties: average ranks
    auc = (ranks[: a.size].sum() - a.size * (a.size + 1) / 2.0) / (a.size * b.size)
    return float(abs(2.0 * auc - 1.0))


def class_codes(paintings: np.ndarray, mode: str) -> np.ndarray:
    """One code per painted pixel (0: unpainted): exclusive, the class; multi-label, the
    combination of channel states (``present`` in channel 1 and ``absent`` in channel 2 is one
    combination, ``absent`` in every channel another: the background), as the classes of the
    same content painted exclusively."""
    if mode == EXCLUSIVE:
        return np.asarray(paintings, np.int64)
    states = np.asarray(paintings, np.int64)
    codes = np.zeros(states.shape[1:], np.int64)
    for ch in states:  # base 3: 0 unpainted, PRESENT, ABSENT per channel
        codes = codes * 3 + np.where(ch == PRESENT, 1, np.where(ch == ABSENT, 2, 0))
    return codes


def _tiles(codes: np.ndarray, classes: Sequence[int], tile: Sequence[int]) -> list[list[tuple[slice, ...]]]:
    """Per class, the tiles of ``tile`` size (grid-aligned) that hold its paint, the most
    painted first."""
    out = []
    for c in classes:
        keys, counts = np.unique(np.argwhere(codes == c) // np.asarray(tile), axis=0, return_counts=True)
        keys = keys[np.argsort(-counts, kind="stable")]
        out.append([tuple(slice(int(k) * t, min((int(k) + 1) * t, n)) for k, t, n in zip(key, tile, codes.shape))
                    for key in keys])
    return out


def _tile_order(per_class: list[list[tuple[slice, ...]]]) -> list[tuple[slice, ...]]:
    """The tiles in turn from each class's list, each tile once."""
    seen: set[tuple[tuple[int, int], ...]] = set()
    order = []
    for rank in range(max((len(t) for t in per_class), default=0)):
        for tiles in per_class:
            if rank < len(tiles):
                key = tuple((s.start, s.stop) for s in tiles[rank])
                if key not in seen:
                    seen.add(key)
                    order.append(tiles[rank])
    return order


class _TileCache:
    """The features of the last tiles read, per image (held weakly) and tile; bounded in bytes."""

    def __init__(self, max_bytes: int = CACHE_BYTES) -> None:
        self.max_bytes = int(max_bytes)
        self._items: OrderedDict[tuple[Any, ...], tuple[weakref.ref, np.ndarray]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, image: np.ndarray, key: tuple[Any, ...]) -> np.ndarray | None:
        """The features stored for ``key`` of this very ``image``, or ``None``."""
        with self._lock:
            item = self._items.get((id(image), *key))
            if item is None or item[0]() is not image:
                return None
            self._items.move_to_end((id(image), *key))
            return item[1]

    def put(self, image: np.ndarray, key: tuple[Any, ...], value: np.ndarray) -> None:
        """Keep ``value`` for ``key`` of ``image`` (the oldest entries go beyond the budget)."""
        try:
            ref = weakref.ref(image)
        except TypeError:  # not weakly referable: not kept
            return
        with self._lock:
            self._items[(id(image), *key)] = (ref, value)
            while self._items and sum(v.nbytes for _, v in self._items.values()) > self.max_bytes:
                self._items.popitem(last=False)


_CACHE = _TileCache()


def texture_gain(
    image: np.ndarray,
    paintings: np.ndarray,
    mode: str,
    channel_axis: int | None = None,
    spacing: Sequence[float] | None = None,
) -> float | None:
    """How much better the region statistics tell the painted classes apart than brightness.

    Parameters
    ----------
    image
        The image (channels at ``channel_axis`` are averaged).
    paintings
        Exclusive ``(*spatial)`` (0 unpainted, 1..K) or multi-label ``(C, *spatial)`` paintings.
    mode
        ``"exclusive"`` or ``"multilabel"``.
    channel_axis
        Axis of the image's channels, or ``None``.
    spacing
        Voxel size per spatial axis (the region scale is physical, as in training).

    Returns
    -------
    float or None
        The largest margin (in ``|2·AUC − 1|``) by which the local standard deviation or
        anisotropy separates a pair of painted classes better than the brightness does;
        ``None`` when no pair has :data:`MIN_PIXELS` painted pixels on both sides, or for an
        image that is not 2D or 3D.
    """
    source = image
    img = np.asarray(image)
    if channel_axis is not None:
        img = np.moveaxis(img, channel_axis, 0)
    paint = np.asarray(paintings)
    spatial = paint.shape if mode == EXCLUSIVE else paint.shape[1:]
    if (img.shape[1:] if channel_axis is not None else img.shape) != spatial or len(spatial) not in (2, 3):
        return None
    codes = class_codes(paint, mode)
    found, counts = np.unique(codes, return_counts=True)
    classes = [int(c) for c, n in zip(found, counts) if c > 0 and n >= MIN_PIXELS]
    pairs = list(itertools.combinations(range(len(classes)), 2))
    if not pairs:
        return None
    nd = len(spatial)
    bank = FilterBank(nd, (1.0,), None if spacing is None else tuple(spacing), context=(TEXTURE_SCALE,))
    margin = bank.radius()
    # per class, the feature values under its paint, tile by tile
    values: list[list[np.ndarray]] = [[] for _ in classes]
    per_class = _tiles(codes, classes, TILE[nd])
    with torch.no_grad():
        for n_read, region in enumerate(_tile_order(per_class)):
            # MAX_TILES, and more (up to three times as many) while a class has too few values
            short = any(sum(v.shape[1] for v in vals) < MIN_PIXELS for vals in values)
            if n_read >= 3 * MAX_TILES or (n_read >= MAX_TILES and not short):
                break
            key = (tuple((s.start, s.stop) for s in region), channel_axis,
                   None if spacing is None else tuple(map(float, spacing)))
            feats = _CACHE.get(source, key) if isinstance(source, np.ndarray) else None
            if feats is None:
                outer = tuple(slice(max(s.start - m, 0), min(s.stop + m, n))
                              for s, m, n in zip(region, margin, spatial))
                inner = tuple(slice(s.start - o.start, s.stop - o.start) for s, o in zip(region, outer))
                crop = img[(slice(None), *outer)].mean(axis=0) if channel_axis is not None else img[outer]
                crop = np.array(crop, dtype=np.float32)
                bad = ~np.isfinite(crop)
                if bad.any():  # NaN or inf: the median of the rest (training sets them to 0 after scaling)
                    crop[bad] = float(np.median(crop[~bad])) if not bad.all() else 0.0
                x = torch.from_numpy(crop)[None, None]
                feats = bank(x)[0].numpy()[(slice(None), *inner)]
                feats = np.ascontiguousarray(feats[[_BRIGHTNESS, _STD, _ANISOTROPY]])
                if isinstance(source, np.ndarray):
                    _CACHE.put(source, key, feats)
            local = codes[region]
            for i, c in enumerate(classes):
                m = local == c
                if m.any():
                    values[i].append(feats[:, m])
    sides = [np.concatenate(v, axis=1) if v else np.zeros((3, 0), np.float32) for v in values]
    sides = [v[:, np.linspace(0, v.shape[1] - 1, min(v.shape[1], MAX_VALUES)).round().astype(int)]
             for v in sides]
    gain = None
    for i, j in pairs:
        if min(sides[i].shape[1], sides[j].shape[1]) < MIN_PIXELS:
            continue
        seps = [separation(sides[i][k], sides[j][k]) for k in range(3)]
        g = max(seps[1], seps[2]) - seps[0]
        gain = g if gain is None else max(gain, g)
    return gain
