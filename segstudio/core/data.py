"""Training data: normalisation, the patch sampler around painted pixels, augmentation, and
the snapshot source through which new paintings reach a running trainer.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from segstudio.core.annotations import (
    EXCLUSIVE,
    IGNORE_INDEX,
    MULTILABEL,
    UNPAINTED,
    check_mode,
    exclusive_target,
    mask_nonfinite,
    multilabel_target,
    stack_multilabel,
)
from segstudio.core.errors import UserInputError

DEFAULT_PERCENTILES: tuple[float, float] = (1.0, 99.8)
MAX_STATS_SAMPLES = 2_000_000
#: *Level slices* (:func:`slice_offsets`): each slice's background level is this quantile (%) of
#: its voxels, smoothed along the slices by a Gaussian of :data:`LEVEL_SIGMA` slices
#: (benchmarks/RESULTS.md, *Level slices*).
LEVEL_QUANTILE = 20.0
LEVEL_SIGMA = 1.0
#: Least share of the patches of a class that each image painted with that class gets, as a
#: fraction of an equal share (see :class:`PatchSampler`).
DEFAULT_IMAGE_FLOOR = 0.25


# --------------------------------------------------------------------------- normalisation
@dataclass(frozen=True)
class Normalization:
    """Per-image, per-channel percentile scaling: ``(x - offset[z] - lo) / (hi - lo)``.

    The same rule (the percentiles, not the values) is applied to every image at predict time,
    so prediction on a new image matches training. ``lo``/``hi`` of the training image are kept
    for export metadata and for fast previews on the training image.

    ``offsets``: with *level slices* (volumes only), per channel one offset per slice along the
    first spatial axis (:func:`slice_offsets`), subtracted before the scaling (``lo``/``hi``
    are then percentiles of the levelled image); ``()``: none.
    """

    percentiles: tuple[float, float] = DEFAULT_PERCENTILES
    lo: tuple[float, ...] = ()
    hi: tuple[float, ...] = ()
    offsets: tuple[tuple[float, ...], ...] = ()

    def subtract(self, chw: np.ndarray, first: int = 0) -> np.ndarray:
        """Normalise a float32 ``(C, *spatial)`` block in place and return it: the block's
        slices along the first spatial axis are the image's ``first``, ``first + 1``, …; NaN
        and inf become 0."""
        for c in range(chw.shape[0]):
            if self.offsets:
                off = np.asarray(self.offsets[c][first:first + chw.shape[1]], np.float32)
                chw[c] -= off.reshape((-1,) + (1,) * (chw.ndim - 2))
            chw[c] -= self.lo[c]
            chw[c] /= self.hi[c] - self.lo[c]
        np.nan_to_num(chw, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
        return chw


def to_channels_first(image: np.ndarray, channel_axis: int | None) -> np.ndarray:
    """Return ``image`` as ``(C, *spatial)`` (a view where possible)."""
    arr = np.asarray(image) if not hasattr(image, "shape") else image
    if channel_axis is None:
        return arr[None]
    return np.moveaxis(arr, channel_axis, 0)


def spatial_shape(shape: Sequence[int], channel_axis: int | None) -> tuple[int, ...]:
    """Spatial part of an image shape given its channel axis."""
    dims = list(shape)
    if channel_axis is not None:
        del dims[channel_axis]
    return tuple(int(d) for d in dims)


def slice_offsets(levels: Sequence[float]) -> tuple[float, ...]:
    """*Level slices*: per-slice offsets from each slice's background level (its
    :data:`LEVEL_QUANTILE` % quantile; NaN for a slice without finite voxels), smoothed along
    the slices by :data:`LEVEL_SIGMA` and less their mean, so that subtracting them flattens a
    background that runs along z (uneven illumination or bleaching through a stack) and keeps
    the image's mean level. The quality matrix's dim volumes measured +0.05 foreground Dice with it
    on average over seeds 0–2 (benchmarks/RESULTS.md, *Level slices*).
    """
    from scipy.ndimage import gaussian_filter1d

    b = np.asarray(levels, np.float64)
    finite = np.isfinite(b)
    if not finite.any():
        return tuple(0.0 for _ in b)
    b = np.where(finite, b, b[finite].mean())
    b = gaussian_filter1d(b, LEVEL_SIGMA, mode="nearest")
    return tuple(float(v) for v in b - b.mean())


def finite_percentiles(vals: np.ndarray, percentiles: Sequence[float]) -> tuple[float, float]:
    """``lo``, ``hi`` of finite ``vals`` (``hi = lo + 1`` for a constant image)."""
    vals = vals[np.isfinite(vals)]
    if vals.size == 0:
        raise UserInputError("the image has no finite pixel values (all NaN or inf)")
    a, b = np.percentile(vals, percentiles)
    if b <= a:  # constant (or nearly) image: avoid a division by zero
        b = a + 1.0
    return float(a), float(b)


def check_level_slices(spatial_dims: int) -> None:
    """Raise :class:`UserInputError` unless *level slices* can apply (a volume)."""
    if spatial_dims != 3:
        raise UserInputError("level slices is for volumes (3D images): turn it off for a 2D image")


def image_stats(
    image: np.ndarray,
    channel_axis: int | None = None,
    percentiles: tuple[float, float] = DEFAULT_PERCENTILES,
    *,
    level_slices: bool = False,
    max_samples: int = MAX_STATS_SAMPLES,
    seed: int = 0,
) -> Normalization:
    """Compute percentile statistics per channel, ignoring NaN/inf.

    Large images are subsampled (``max_samples`` random voxels per channel) so this stays fast
    on big volumes. ``level_slices`` (volumes only): also the per-slice offsets of
    :func:`slice_offsets` (each slice's quantile from at most ``max_samples / slices`` of its
    voxels), and ``lo``/``hi`` of the levelled image.
    """
    chw = to_channels_first(image, channel_axis)
    if level_slices:
        check_level_slices(chw.ndim - 1)
    rng = np.random.default_rng(seed)
    lo: list[float] = []
    hi: list[float] = []
    offsets: list[tuple[float, ...]] = []
    for c in range(chw.shape[0]):
        ch = np.asarray(chw[c])
        n = int(np.prod(ch.shape))
        if level_slices:
            planes = ch.reshape(ch.shape[0], -1)
            per = max(1, max_samples // planes.shape[0])
            if planes.shape[1] > per:
                planes = planes[:, np.sort(rng.choice(planes.shape[1], per, replace=False))]
            planes = planes.astype(np.float64)
            levels = [np.percentile(p[np.isfinite(p)], LEVEL_QUANTILE) if np.isfinite(p).any() else np.nan
                      for p in planes]
            off = slice_offsets(levels)
            offsets.append(off)
            vals = (planes - np.asarray(off)[:, None]).reshape(-1)
        elif n > max_samples:
            idx = rng.integers(0, n, size=max_samples)
            vals = ch.reshape(-1)[idx].astype(np.float64, copy=False)
        else:
            vals = ch.reshape(-1).astype(np.float64, copy=False)
        a, b = finite_percentiles(vals, percentiles)
        lo.append(a)
        hi.append(b)
    return Normalization(percentiles=tuple(percentiles), lo=tuple(lo), hi=tuple(hi),  # type: ignore[arg-type]
                         offsets=tuple(offsets))


def levelled(image: np.ndarray, stats: Normalization, channel_axis: int | None = None) -> np.ndarray:
    """The image as float32 ``(C, *spatial)`` less its per-slice offsets (*level slices*),
    not scaled: what an export of a levelled run takes before its percentile scaling."""
    chw = to_channels_first(np.asarray(image), channel_axis).astype(np.float32, copy=True)
    for c, off in enumerate(stats.offsets):
        chw[c] -= np.asarray(off, np.float32).reshape((-1,) + (1,) * (chw.ndim - 2))
    return chw


def normalize(image: np.ndarray, stats: Normalization, channel_axis: int | None = None) -> np.ndarray:
    """Apply the normalisation (:meth:`Normalization.subtract`); returns float32
    ``(C, *spatial)`` with NaN/inf set to 0."""
    chw = to_channels_first(np.asarray(image), channel_axis).astype(np.float32, copy=True)
    return stats.subtract(chw)


# --------------------------------------------------------------------------- snapshots
@dataclass(frozen=True)
class TrainingImage:
    """One image with its paintings, as the trainer sees it.

    Attributes
    ----------
    image
        The raw image (any dtype), with ``channel_axis`` if it has channels.
    paintings
        Exclusive: integer array with the spatial shape. Multilabel: ``(C, *spatial)``.
    channel_axis
        Channel axis of ``image`` or ``None``.
    holdout
        Validation: ``None`` (train on all the paintings), ``True`` (the whole image is for
        validation) or a boolean mask of the spatial shape (the region for validation). Painted
        pixels held out are not trained on; the trainer reports Dice on them
        (:func:`split_holdout`).
    """

    image: np.ndarray
    paintings: np.ndarray
    channel_axis: int | None = None
    holdout: Any = None


def split_holdout(item: TrainingImage, mode: str) -> tuple[TrainingImage | None, np.ndarray | None]:
    """Split an image's paintings into what is trained on and what is held out for validation.

    Returns ``(training item or None, held-out paintings or None)``: the training item has the
    held-out strokes removed (``None`` when nothing is left to train on); the held-out
    paintings have the paintings' form with only the strokes in the validation region
    (``None`` when nothing painted is held out). Without a holdout the item is returned as it
    is (the same object).
    """
    holdout = item.holdout
    if holdout is None or holdout is False:
        return item, None
    paint = np.asarray(item.paintings) if mode == EXCLUSIVE else stack_multilabel(item.paintings)
    if holdout is True:
        return None, (paint if paint.any() else None)
    region = np.asarray(holdout, dtype=bool)
    spatial = paint.shape if mode == EXCLUSIVE else paint.shape[1:]
    if region.shape != spatial:
        raise UserInputError(f"the validation region has shape {region.shape}, the paintings {spatial}")
    if mode == MULTILABEL:
        region = np.broadcast_to(region, paint.shape)
    held = np.where(region, paint, UNPAINTED).astype(paint.dtype, copy=False)
    kept = np.where(region, UNPAINTED, paint).astype(paint.dtype, copy=False)
    return (replace(item, paintings=kept, holdout=None) if kept.any() else None), (held if held.any() else None)


@dataclass(frozen=True)
class Snapshot:
    """Everything the trainer needs from the user at one moment.

    ``version`` increases with every :meth:`SnapshotSource.put`. ``weights`` are the class
    weights to use (``None``: the trainer computes them from the paintings). ``pins`` are the
    user's pinned class weights ``((class_index, weight), ...)`` that travel with the paintings
    (``None``: the trainer keeps its config's ``pinned_weights``).
    """

    images: tuple[TrainingImage, ...]
    weights: tuple[float, ...] | None = None
    version: int = 0
    pins: tuple[tuple[int, float], ...] | None = None


class SnapshotSource:
    """Thread-safe, single-slot mailbox of paintings for a running trainer.

    The GUI calls :meth:`put` after painting settles; the trainer calls :meth:`latest` between
    iterations and swaps the data in when the version changed. A newer snapshot replaces an
    older one that was not taken yet.
    """

    def __init__(self, snapshot: Snapshot | None = None) -> None:
        self._lock = threading.Lock()
        self._snapshot = snapshot
        self._version = snapshot.version if snapshot is not None else 0

    def put(
        self,
        images: Sequence[TrainingImage],
        weights: Sequence[float] | None = None,
        pins: Mapping[int, float] | None = None,
    ) -> int:
        """Publish new paintings (copied by the caller) and, optionally, pinned class weights
        ``{class_index: weight}``; returns the new version."""
        with self._lock:
            self._version += 1
            self._snapshot = Snapshot(
                images=tuple(images),
                weights=None if weights is None else tuple(float(w) for w in weights),
                version=self._version,
                pins=None if pins is None else tuple(sorted((int(i), float(w)) for i, w in pins.items())),
            )
            return self._version

    def latest(self) -> Snapshot | None:
        """The newest snapshot (or ``None`` if nothing was put yet)."""
        with self._lock:
            return self._snapshot

    @property
    def version(self) -> int:
        """Version of the newest snapshot."""
        with self._lock:
            return self._version


# --------------------------------------------------------------------------- sampling
@dataclass(frozen=True)
class AugmentConfig:
    """Augmentation suited to sparse paintings; applied identically to image and target."""

    flip: bool = True
    rot90: bool = True
    intensity_scale: float = 0.25
    intensity_shift: float = 0.1
    gamma: float = 0.3
    noise_std: float = 0.05
    p_intensity: float = 0.8
    #: In-plane zoom: each patch is cut at ``patch / z`` and resized to the patch, with
    #: ``log z`` uniform in ``±log(1 + scale)``; 0 = off (measured: benchmarks/RESULTS.md).
    scale: float = 0.0


@dataclass
class _PreparedImage:
    image: np.ndarray  # float32 (C, *spatial), normalised
    target: np.ndarray  # exclusive: int64 (*spatial); multilabel: float32 (K, *spatial)
    mask: np.ndarray | None  # multilabel: float32 (K, *spatial)
    coords: list[np.ndarray] = field(default_factory=list)  # flat indices of painted px per class
    #: labels each implied-label rule infers (0 = none; multilabel (K, ...)), or None per rule
    inferred: list[np.ndarray | None] = field(default_factory=list)
    #: the network's region channels computed on the whole image, float32 (C·3·len(ρ), *spatial)
    #: (:func:`segstudio.core.features.image_regions`), or None
    regions: np.ndarray | None = None


def prepare_image(
    item: TrainingImage,
    mode: str,
    n_classes: int,
    stats: Normalization | None = None,
    percentiles: tuple[float, float] = DEFAULT_PERCENTILES,
    inferred: Sequence[np.ndarray | None] = (),
    normalized: np.ndarray | None = None,
) -> tuple[_PreparedImage, Normalization]:
    """Normalise one image and convert its paintings to targets plus per-class coordinates.

    ``normalized``: the image already normalised with ``stats`` (kept by a caller that prepares
    the same image again with new paintings), so it is not normalised again.

    ``inferred``: per implied-label rule, labels for unpainted pixels in the paintings' own
    form (exclusive ``0`` = none, ``1..K``; multilabel ``(K, *spatial)`` ``0/1/2``) or ``None``;
    each is learnt as a further target (see :class:`PatchSampler`) but never used as patch
    centres, so that the patches stay spread as the user's strokes are (see
    :mod:`segstudio.core.implied`).
    """
    check_mode(mode)
    norm = stats if stats is not None else image_stats(item.image, item.channel_axis, percentiles)
    img = normalized if normalized is not None and stats is not None else normalize(item.image, norm, item.channel_axis)
    paint = mask_nonfinite(item.paintings, item.image, item.channel_axis, mode)
    extra = [None if e is None else np.where(
        (np.asarray(paint) if mode == EXCLUSIVE else stack_multilabel(paint)) == UNPAINTED,
        mask_nonfinite(np.asarray(e), item.image, item.channel_axis, mode), UNPAINTED) for e in inferred]
    if mode == EXCLUSIVE:
        target = exclusive_target(paint)
        flat = np.asarray(paint).reshape(-1)
        order = np.argsort(flat, kind="stable")
        bounds = np.searchsorted(flat[order], np.arange(1, n_classes + 2))
        coords = [order[bounds[k] : bounds[k + 1]] for k in range(n_classes)]
        return _PreparedImage(img, target, None, coords, extra), norm
    stacked = stack_multilabel(paint)
    target, mask = multilabel_target(stacked)
    coords = [np.flatnonzero(stacked[k] != UNPAINTED) for k in range(stacked.shape[0])]
    return _PreparedImage(img, target, mask, coords, extra), norm


def floored_shares(amounts: np.ndarray, floor: float = DEFAULT_IMAGE_FLOOR) -> np.ndarray:
    """Shares in proportion to ``amounts`` (e.g. painted pixels per image), each at least
    ``floor`` times an equal share, summing to 1.

    Shares below the floor are raised to it and the others scaled down to make room (in
    proportion to their amounts), so the order of the amounts is kept.
    """
    a = np.asarray(amounts, dtype=np.float64)
    n = a.size
    if n == 0:
        return a
    least = min(max(float(floor), 0.0), 1.0) / n
    total = a.sum()
    shares = a / total if total > 0 else np.full(n, 1.0 / n)
    low = np.zeros(n, dtype=bool)
    while True:  # at most n rounds: each raises at least one more share to the floor
        free = 1.0 - least * low.sum()
        rest = shares[~low].sum()
        out = np.where(low, least, shares * (free / rest if rest > 0 else 0.0))
        new = out < least - 1e-15
        if not (new & ~low).any():
            return out
        low |= new


class PatchSampler:
    """Draws training patches centred near painted pixels, balanced across classes.

    Each patch picks a class uniformly among the painted classes (so a class painted with 50
    pixels appears as often as one painted with 50 000), then an image that has paint of that
    class, then a random painted pixel of that class there, jittered by up to a quarter patch;
    ``random_fraction`` of the patches are placed uniformly at random in an image. Images smaller
    than the patch are padded (image with reflection, targets with "unpainted").

    Across several images, an image is picked in proportion to its painted pixels (of the
    class, or in all for random patches), with a floor: each image gets at least
    ``image_floor`` times an equal share (``1 / n`` of ``n`` images), so a lightly painted image
    still contributes (:attr:`image_shares`).

    Exclusive targets are ``(*patch)``; with ``R`` implied-label rules (any image has
    ``inferred``), ``(1 + R, *patch)``: row 0 the paint, row ``1 + r`` what rule ``r`` infers, all
    with ``IGNORE_INDEX`` where unlabelled. Multilabel targets and masks are ``(K, *patch)``;
    with ``R`` rules ``((1 + R) K, *patch)``: the paint's K channels, then each rule's K.

    When every image carries ``regions`` (the network's region channels of the whole image),
    each patch's image is followed by its crop of them: ``(C + C·3·len(ρ), *patch)``, which
    :class:`segstudio.core.features.FilteredNetwork` takes instead of computing them on the
    patch; :attr:`image_channels` says where the image ends.
    """

    def __init__(
        self,
        images: Sequence[_PreparedImage],
        mode: str,
        patch_size: Sequence[int],
        *,
        random_fraction: float = 0.1,
        augment: AugmentConfig | None = None,
        rng: np.random.Generator | None = None,
        image_floor: float = DEFAULT_IMAGE_FLOOR,
    ) -> None:
        self.images = list(images)
        self.mode = check_mode(mode)
        self.patch = tuple(int(p) for p in patch_size)
        self.random_fraction = random_fraction
        self.augment = augment
        self.rng = rng if rng is not None else np.random.default_rng()
        # Per painted class: the images that have its paint, and how likely each is picked.
        painted = np.array([[c.size for c in im.coords] for im in self.images], dtype=np.float64)
        if painted.size == 0 or not painted.any():
            raise UserInputError("nothing is painted yet; paint at least two classes")
        self._classes: list[tuple[int, np.ndarray, np.ndarray]] = []
        for k in np.flatnonzero(painted.sum(axis=0)):
            owners = np.flatnonzero(painted[:, k])
            self._classes.append((int(k), owners, floored_shares(painted[owners, k], image_floor)))
        self._random_shares = floored_shares(painted.sum(axis=1), image_floor)
        #: implied-label rules stacked after the paint in the targets
        self.n_rules = max((len(im.inferred) for im in self.images), default=0)
        #: image channels per patch (the region channels, when every image has them, follow)
        self.image_channels = int(self.images[0].image.shape[0])
        self.with_regions = all(im.regions is not None for im in self.images)

    @property
    def image_shares(self) -> np.ndarray:
        """The expected share of the patches each image gets."""
        shares = self.random_fraction * self._random_shares
        for _, owners, p in self._classes:
            shares[owners] += (1.0 - self.random_fraction) * p / len(self._classes)
        return shares

    def _centre(self) -> tuple[int, tuple[int, ...]]:
        if self.rng.random() < self.random_fraction:
            i = self._pick(np.arange(len(self.images)), self._random_shares)
            shape = self.images[i].image.shape[1:]
            return i, tuple(int(self.rng.integers(n)) for n in shape)
        k, owners, shares = self._classes[int(self.rng.integers(len(self._classes)))]
        i = self._pick(owners, shares)
        coords = self.images[i].coords[k]
        flat = int(coords[int(self.rng.integers(coords.size))])
        shape = self.images[i].image.shape[1:]
        centre = np.unravel_index(flat, shape)
        jitter = [int(self.rng.integers(-(p // 4), p // 4 + 1)) for p in self.patch]
        return i, tuple(int(c) + j for c, j in zip(centre, jitter))

    def _pick(self, indices: np.ndarray, shares: np.ndarray) -> int:
        """One of ``indices`` with probabilities ``shares`` (no draw for a single one, so that
        one image samples exactly as it always did)."""
        if len(indices) == 1:
            return int(indices[0])
        return int(indices[int(self.rng.choice(len(indices), p=shares))])

    def _crop(
        self,
        arr: np.ndarray,
        start: Sequence[int],
        fill: float | None,
        lead: int,
        size: Sequence[int] | None = None,
    ) -> np.ndarray:
        """Crop ``arr`` (with ``lead`` leading non-spatial axes) to ``size`` (default: the
        patch) at ``start``; out-of-bounds parts are padded (reflect when ``fill`` is None,
        else constant)."""
        spatial = arr.shape[lead:]
        src = []
        pads = [(0, 0)] * lead
        for s, p, n in zip(start, size or self.patch, spatial):
            a, b = max(s, 0), min(s + p, n)
            src.append(slice(a, b))
            pads.append((a - s, s + p - b))
        out = arr[(slice(None),) * lead + tuple(src)]
        if any(pa or pb for pa, pb in pads):
            if fill is None:
                out = np.pad(out, pads, mode="reflect" if all(
                    pa < m and pb < m for (pa, pb), m in zip(pads[lead:], out.shape[lead:])
                ) else "edge")
            else:
                out = np.pad(out, pads, mode="constant", constant_values=fill)
        return out

    def sample(self) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """One patch: ``(image (C, *patch), target, mask or None)``."""
        i, centre = self._centre()
        im = self.images[i]
        shape = im.image.shape[1:]
        size = self._zoomed_size()
        start = []
        for c, p, n in zip(centre, size, shape):
            s = c - p // 2
            if n >= p:
                s = min(max(s, 0), n - p)
            else:
                s = -((p - n) // 2)
            start.append(s)
        x = self._crop(im.image, start, None, 1, size)
        if self.with_regions:
            x = np.concatenate([x, self._crop(im.regions, start, None, 1, size)])  # type: ignore[arg-type]
        rules = list(im.inferred) + [None] * (self.n_rules - len(im.inferred))
        if self.mode == EXCLUSIVE:
            y = self._crop(im.target, start, IGNORE_INDEX, 0, size)
            if self.n_rules:
                y = np.stack([y] + [
                    np.full(y.shape, IGNORE_INDEX, y.dtype) if e is None
                    else exclusive_target(self._crop(e, start, UNPAINTED, 0, size)) for e in rules
                ])
            m = None
        else:
            y = self._crop(im.target, start, 0.0, 1, size)
            m = self._crop(im.mask, start, 0.0, 1, size)  # type: ignore[arg-type]
            if self.n_rules:
                ys, ms = [y], [m]
                for e in rules:
                    y2, m2 = (np.zeros_like(y), np.zeros_like(m)) if e is None else \
                        multilabel_target(self._crop(e, start, UNPAINTED, 1, size))
                    ys.append(y2)
                    ms.append(m2)
                y, m = np.concatenate(ys), np.concatenate(ms)
        if size != self.patch:
            x, y, m = self._resize(x, y, m)
        if self.augment is not None:
            x, y, m = augment_patch(x, y, m, self.augment, self.rng, image_channels=self.image_channels)
        return x, y, m

    def _zoomed_size(self) -> tuple[int, ...]:
        """The region to cut: the patch, or with scale augmentation ``patch / z`` in-plane."""
        r = 0.0 if self.augment is None else float(self.augment.scale)
        if r <= 0:
            return self.patch
        z = float(np.exp(self.rng.uniform(-np.log1p(r), np.log1p(r))))
        nd = len(self.patch)
        return tuple(
            max(2, int(round(p / z))) if ax >= nd - 2 else p for ax, p in enumerate(self.patch)
        )

    def _resize(
        self, x: np.ndarray, y: np.ndarray, m: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Resize a cut region to the patch: image linearly, targets and mask by nearest."""
        from scipy import ndimage as ndi

        def to_patch(a: np.ndarray, lead: int, order: int) -> np.ndarray:
            factors = (1.0,) * lead + tuple(p / n for p, n in zip(self.patch, a.shape[lead:]))
            out = ndi.zoom(a, factors, order=order, mode="nearest", grid_mode=True)
            out = out[(slice(None),) * lead + tuple(slice(0, p) for p in self.patch)]
            short = [(0, 0)] * lead + [(0, p - n) for p, n in zip(self.patch, out.shape[lead:])]
            return np.pad(out, short, mode="edge") if any(b for _, b in short) else out

        x = to_patch(x, 1, 1).astype(np.float32, copy=False)
        y = to_patch(y, y.ndim - len(self.patch), 0)
        m = None if m is None else to_patch(m, 1, 0)
        return x, y, m

    def batch(self, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Stack ``n`` patches into a batch."""
        parts = [self.sample() for _ in range(n)]
        xs = np.stack([p[0] for p in parts])
        ys = np.stack([p[1] for p in parts])
        ms = None if parts[0][2] is None else np.stack([p[2] for p in parts])  # type: ignore[misc]
        return xs, ys, ms


def augment_patch(
    x: np.ndarray,
    y: np.ndarray,
    m: np.ndarray | None,
    cfg: AugmentConfig,
    rng: np.random.Generator,
    image_channels: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Flip / rotate (in-plane) image, target and mask together; jitter the image intensity.

    ``x`` is ``(C, *spatial)``; ``y`` is ``(*spatial)`` (exclusive) or ``(K, *spatial)``.

    ``image_channels``: where ``x`` carries region channels after its image channels (per
    image channel and region scale the local mean, standard deviation and anisotropy;
    :class:`PatchSampler`), the image's first ``image_channels``. The intensity jitter reaches
    them as it would have reached statistics of the jittered image: the mean through the same
    gamma, scale and shift, the standard deviation by the gamma's slope at the mean and
    ``|scale|``, and the noise's variance added; the anisotropy (a ratio of gradients) is left.
    """
    nd = x.ndim - 1
    ylead = y.ndim - nd

    def geo(fn):  # apply the same spatial op to all three arrays
        nonlocal x, y, m
        x = fn(x, 1)
        y = fn(y, ylead)
        if m is not None:
            m = fn(m, 1)

    if cfg.flip:
        for ax in range(nd):
            if rng.random() < 0.5:
                geo(lambda a, lead, ax=ax: np.flip(a, lead + ax))
    if cfg.rot90 and x.shape[-1] == x.shape[-2]:
        k = int(rng.integers(4))
        if k:
            geo(lambda a, lead: np.rot90(a, k, axes=(a.ndim - 2, a.ndim - 1)))
    x = np.ascontiguousarray(x, dtype=np.float32)
    y = np.ascontiguousarray(y)
    m = None if m is None else np.ascontiguousarray(m)
    c = x.shape[0] if image_channels is None else int(image_channels)
    if rng.random() < cfg.p_intensity:
        img = x[:c]
        # per image channel and region scale: mean, standard deviation, anisotropy
        stats = x[c:].reshape(c, -1, 3, *x.shape[1:]).copy() if x.shape[0] > c else None
        scale = 1.0 + rng.uniform(-cfg.intensity_scale, cfg.intensity_scale)
        shift = rng.uniform(-cfg.intensity_shift, cfg.intensity_shift)
        if cfg.gamma > 0:
            gamma = float(np.exp(rng.uniform(-cfg.gamma, cfg.gamma)))
            lo = img.min()
            rngx = img.max() - lo
            if rngx > 0:
                img = ((img - lo) / rngx) ** gamma * rngx + lo
                if stats is not None:
                    # a neighbourhood's mean may lie outside the patch's range: below it, 0
                    u = np.maximum((stats[:, :, 0] - lo) / rngx, 0.0)
                    stats[:, :, 1] *= gamma * np.maximum(u, 1e-3) ** (gamma - 1.0)
                    stats[:, :, 0] = u**gamma * rngx + lo
        img = img * scale + shift
        if stats is not None:
            stats[:, :, 0] = stats[:, :, 0] * scale + shift
            stats[:, :, 1] *= abs(scale)
        if cfg.noise_std > 0:
            sd = cfg.noise_std * rng.random()
            img = img + rng.normal(0.0, sd, size=img.shape).astype(np.float32)
            if stats is not None:
                stats[:, :, 1] = np.sqrt(stats[:, :, 1] ** 2 + sd * sd)
        x = img if stats is None else np.concatenate([img, stats.reshape(-1, *x.shape[1:])])
    return x.astype(np.float32, copy=False), y, m


def n_classes_of(mode: str, paintings: np.ndarray, n_classes: int | None) -> int:
    """Number of classes for ``mode`` (explicit, else from the paintings)."""
    if n_classes is not None:
        return int(n_classes)
    if mode == MULTILABEL:
        return int(stack_multilabel(paintings).shape[0])
    return int(np.max(paintings))
