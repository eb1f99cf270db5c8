"""Objects (instances) from a prediction: seeded watershed, the object table, band-wise labelling.

Objects are labelled ``1..N`` (``0`` = background) from an *exclusive* prediction — its labels
(``1..K``) or its probabilities (``(K, *spatial)``, softmax) — in 2D or 3D. Every distance is
measured in physical units with the voxel ``spacing``.

The recipe (:class:`InstanceOptions` holds every choice and its default)
------------------------------------------------------------------------
Object pixels
    The pixels of the *object classes* (default: every class but the background and the
    boundary class) and of the *boundary class*, when there is one: a boundary belongs to the
    object it surrounds.
No splitting (``split=False``)
    Each connected region of object pixels is one object; touching objects stay one.
Seeds (``markers``)
    ``"interior"`` (the default when there is a boundary class): every connected region of
    one object class is a seed, so a boundary predicted between two touching nuclei splits
    them; but not a sliver that touches both the background and the boundary class and is
    nowhere more than :data:`SLIVER_DEPTH` pixels deep in its plane (the thin layer of object
    class an argmax can leave where the boundary class fades into the background: as seeds,
    such slivers cut each object's rim into dozens of objects). ``"distance"`` (the default
    without a boundary class): the maxima of the distance transform (physical units; each
    pixel's distance to the nearest pixel outside its connected region of its class and the
    boundary class), found by
    :func:`skimage.feature.peak_local_max` in a box of half-width ``peak_distance`` per axis
    (default: half the median over regions of their largest distance); maxima within two
    pixels of each other are one seed, and a maximum seeds only when it rises above the saddle
    towards any higher one by a tenth of ``peak_distance`` (:data:`PEAK_MIN_DYNAMIC`: the bumps
    along an elongated object's spine do not split it). For these seeds and the flooding, the holes of each
    object class (in a volume, each slice's holes) count as that class (a nucleus whose bright
    core was predicted as background is not split around it); the objects keep their
    predicted pixels (:data:`SEED_HOLES_FILLED`).
Along dim lines (``declump="intensity"``, a choice)
    For cells whose contacts are dimmer than their inside, instead of either kind of seeds
    (a boundary class, when there is one, is then part of the objects it surrounds): the
    maxima of the image (channels averaged, smoothed by :data:`DIM_LINE_SMOOTHING` pixels,
    turned so that the objects are the bright side) within the same peak distance, each
    rising :data:`DIM_LINE_MIN_DYNAMIC` of the object/background contrast above its saddle,
    flooded by the image: rods side by side, whose union's distance ridge runs along their
    contact, split along the line between them. In memory only.
Flooding
    :func:`skimage.segmentation.watershed` from the seeds over the object pixels: by the
    boundary probability when probabilities are given, else by the distance to the nearest
    seed of the region (interior seeds), or by the negative distance transform (distance
    seeds), or by the negative image (along dim lines). It runs region by region (connected
    regions of object pixels) in each region's bounding box, and a region with one seed is
    that seed's object without flooding: the same result as one watershed of the whole image,
    at a fraction of the cost. A region with no seed (e.g. a small object predicted as
    boundary only) is an object of its own.
Clean-up
    Objects smaller than ``min_size`` (area or volume in physical units) are removed
    (:func:`skimage.morphology.remove_small_objects`), objects touching the image border
    are dropped on request (:func:`skimage.segmentation.clear_border`), and the ids are made
    sequential (:func:`skimage.segmentation.relabel_sequential`), in raster order of each
    object's seed. An object's class is the object class most of its pixels have (the
    boundary class if it has no other).

Large volumes
-------------
:func:`instances_in_bands` runs the same steps band by band along the first axis on lazy
arrays (memmap, zarr) and writes the result into an output array (e.g.
:func:`segstudio.core.outofcore.open_output`). Seeds and unseeded regions are labelled by
:func:`label_bands`, whose merge across bands is exact (the result equals whole-volume
labelling, ids included). Flooding and distance transforms see ``halo`` rows above and below
each band, so the result equals the in-memory one whenever the distance to the background
(distance seeds: objects thinner than the halo along the first axis) and each flood path
stay within the halo; a region that flooding left unreached because its path was longer
(a thin strip of boundary along an edge) joins the object it touches most. The holes that
distance seeds fill are each slice's in a volume, the same band by band; in a 2-D image a
band fills the holes it sees whole (a hole cut by the halo's edge stays open there). With the
defaults (64-row bands, 32-row halo) the tests find the two identical on the built-in
samples.
"""

from __future__ import annotations

import csv
import io
import math
import os
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage as ndi
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from skimage.feature import peak_local_max
from skimage.measure import label as label_regions
from skimage.measure import regionprops_table
from skimage.morphology import remove_small_objects
from skimage.segmentation import clear_border, relabel_sequential, watershed

from segstudio.core.atomic import atomic_write_text
from segstudio.core.errors import UserInputError
from segstudio.core.io import format_of
from segstudio.core.lazy import release_pages
from segstudio.core.metrics import check_spacing

__all__ = [
    "BACKGROUND_NAMES",
    "BOUNDARY_NAMES",
    "DECLUMP",
    "DEFAULT_BAND_ROWS",
    "DEFAULT_HALO",
    "MARKERS",
    "UNFIT_FORMATS",
    "InstanceOptions",
    "Instances",
    "instances_from_labels",
    "instances_from_probabilities",
    "instances_in_bands",
    "check_objects_file",
    "label_bands",
    "merge_tables",
    "object_table",
    "object_table_in_bands",
    "options_for_classes",
    "table_to_csv",
    "write_table_csv",
]

#: Seed kinds (``"auto"``: interior seeds when there is a boundary class, else distance seeds).
MARKERS: tuple[str, ...] = ("auto", "interior", "distance")
#: Class names (lower case) taken as the background / the boundary class by
#: :func:`options_for_classes`.
BACKGROUND_NAMES: tuple[str, ...] = ("background", "bg", "bckg")
BOUNDARY_NAMES: tuple[str, ...] = ("boundary", "border", "contour", "edge", "outline", "membrane", "rim")
#: Default ``peak_distance``: this fraction of the typical object radius (the median over
#: connected object regions of their largest distance to the background).
PEAK_DISTANCE_FRACTION = 0.5
#: Peaks of the distance transform this many pixels apart (or closer) are one seed.
PEAK_MERGE_PIXELS = 2
#: A peak of the distance transform seeds only if it rises at least this fraction of the peak
#: distance above the saddle towards any higher peak (its *dynamic*; with the default peak
#: distance, 5 % of the typical radius): the bumps along an elongated object's spine do not
#: split it. 0 = every peak. Measured on the quality matrix's saved predictions
#: (benchmarks/RESULTS.md, *Peaks that rise above their saddle*).
PEAK_MIN_DYNAMIC = 0.1
#: Distance seeds: seeds and flooding read each plane's holes in an object class as that class
#: (a 2-D image's holes, and in a volume each slice's along the first axis:
#: :func:`_holes_as_objects`), so that pixels missing inside an object (a bright core
#: predicted as background) do not split it around a ring of seeds; the objects keep their
#: predicted pixels. Measured on the quality matrix's saved predictions (benchmarks/RESULTS.md,
#: *Holes in the objects and the distance seeds*): instance F1 on nuclei +0.04 on seeds 0 and
#: 1 (e.g. 2-D corrections, first prediction, 0.48 -> 0.91), on the touching rods of *cells*
#: +0.005 and -0.007.
SEED_HOLES_FILLED = True
#: Interior seeds with a boundary class: a connected region of an object class that touches
#: both the background and the boundary class (face neighbours) and has no pixel more than
#: this many pixels deep in its plane (each pixel's in-plane face neighbours out to this
#: distance all of the region, the image border counting as inside) is not a seed; its pixels
#: are flooded from the other seeds. 0 = every region seeds. Such slivers are where the
#: prediction passes from the boundary class through the object class to the background for a
#: pixel or two around each object (the quality matrix's sloppy painter, seed 1: 405 seeds,
#: 421 objects for 20 nuclei). Regions enclosed by the boundary class never touch the
#: background and always seed. Chosen among 0-3 on saved predictions of sessions 24-29
#: (benchmarks/RESULTS.md, *Slivers of interior outside the boundary*).
SLIVER_DEPTH = 2
#: How touching objects are split (``InstanceOptions.declump``): ``"shape"``: the seeds of
#: ``markers`` (interior or distance seeds); ``"intensity"``: seeds at the image's maxima,
#: flooded by the image (:func:`_image_seeds`), with or without a boundary class.
DECLUMP: tuple[str, ...] = ("shape", "intensity")
#: ``declump="intensity"``: the image is smoothed by a Gaussian of this many pixels along the
#: finest axis (the same physical width on every axis) first.
DIM_LINE_SMOOTHING = 1.0
#: ``declump="intensity"``: a maximum of the smoothed image seeds when it rises this fraction of
#: the object/background contrast (the difference of their medians) above the saddle towards
#: any brighter one, so two cells seed apart when the line between them is dimmer than both by
#: that much. Chosen among 0.1-0.4 on the quality matrix's saved predictions of seeds 0-1, seed 2
#: held out (benchmarks/RESULTS.md, *Splitting touching objects along the image's dim lines*):
#: the touching rods of *cells* F1 0.36 -> 0.76 (2-D), 0.27 -> 0.81 (3-D); textured nuclei
#: lose half their F1 (each bright patch of chromatin seeds), which is why it is a choice.
DIM_LINE_MIN_DYNAMIC = 0.2
#: Rows (first axis) per band in :func:`instances_in_bands` / :func:`label_bands`.
DEFAULT_BAND_ROWS = 64
#: Rows read above and below a band for its distance transforms and flooding.
DEFAULT_HALO = 32
#: File formats that cannot hold object ids (lossy, or 8 bits only).
UNFIT_FORMATS: tuple[str, ...] = ("jpg", "bmp")


@dataclass(frozen=True)
class InstanceOptions:
    """How objects are made from a prediction (see the module docstring for the recipe).

    Attributes
    ----------
    object_classes
        Class values (1..K) whose pixels are objects; each class makes its own objects.
        ``()``: every class present except ``background_class`` and ``boundary_class``.
    background_class
        The class that is never an object.
    boundary_class
        A class predicted on the rim of the objects and between touching objects; its pixels
        belong to the object they surround, and its probability is the flooding landscape.
        ``None``: there is none.
    split
        Split touching objects (seeded watershed); ``False``: connected regions.
    markers
        ``"auto"``, ``"interior"`` or ``"distance"`` (:data:`MARKERS`).
    min_size
        Objects with a smaller area (2D) or volume (3D), in physical units (spacing units
        squared or cubed), are removed; 0 keeps all.
    drop_border
        Drop objects that touch the image border.
    peak_distance
        Distance seeds: maxima closer than this (physical units, per axis) are suppressed;
        ``None``: :data:`PEAK_DISTANCE_FRACTION` of the typical object radius.
    connectivity
        Neighbourhood of labelling and flooding: 1 = faces only, up to the rank = corners too.
    declump
        How touching objects are split (:data:`DECLUMP`): ``"shape"``, by the seeds of
        ``markers`` (a boundary class's interiors, or the narrowings of the distance
        transform); ``"intensity"``, along the image's dim lines whatever ``markers`` says
        (seeds at its maxima, flooding by it over the object and boundary pixels; the image
        must be given): for cells whose contact is dimmer than their inside (rods side by
        side), not for textured objects such as nuclei.
    """

    object_classes: tuple[int, ...] = ()
    background_class: int = 1
    boundary_class: int | None = None
    split: bool = True
    markers: str = "auto"
    min_size: float = 0.0
    drop_border: bool = False
    peak_distance: float | None = None
    connectivity: int = 1
    declump: str = "shape"

    def __post_init__(self) -> None:
        object.__setattr__(self, "object_classes", tuple(int(c) for c in self.object_classes))
        if self.markers not in MARKERS:
            raise UserInputError(f"markers must be one of {', '.join(MARKERS)}, got {self.markers!r}")
        if not (isinstance(self.min_size, (int, float)) and math.isfinite(self.min_size) and self.min_size >= 0):
            raise UserInputError(f"the minimum object size must be a number >= 0, got {self.min_size}")
        if self.peak_distance is not None and not (math.isfinite(self.peak_distance) and self.peak_distance > 0):
            raise UserInputError(f"peak_distance must be > 0, got {self.peak_distance}")
        if self.connectivity < 1:
            raise UserInputError(f"connectivity must be >= 1, got {self.connectivity}")
        if self.declump not in DECLUMP:
            raise UserInputError(f"declump must be one of {', '.join(DECLUMP)}, got {self.declump!r}")
        if self.boundary_class is not None and self.boundary_class in self.object_classes:
            raise UserInputError(f"class {self.boundary_class} cannot be both an object class and the boundary")
        if self.background_class in self.object_classes:
            raise UserInputError(f"class {self.background_class} is the background; it cannot be an object class")

    @property
    def reads_image(self) -> bool:
        """Whether making objects needs the image (touching objects split along its dim lines)."""
        return self.split and self.declump == "intensity"

    @property
    def seeds(self) -> str:
        """``"interior"`` or ``"distance"``: the seed kind ``markers`` stands for."""
        if self.markers != "auto":
            return self.markers
        return "interior" if self.boundary_class is not None else "distance"

    def classes_in(self, present: Sequence[int]) -> tuple[int, ...]:
        """The object classes among the ``present`` class values."""
        if self.object_classes:
            return self.object_classes
        skip = {0, self.background_class, self.boundary_class}
        return tuple(int(c) for c in sorted(set(int(v) for v in present)) if c not in skip)


@dataclass(frozen=True, eq=False)
class Instances:
    """Objects of one image.

    Attributes
    ----------
    labels
        ``0`` = background, ``1..N`` = objects; the smallest unsigned type that holds N
        (uint8, uint16 or uint32).
    classes
        ``(N,)`` class value of object ``i + 1``.
    """

    labels: np.ndarray
    classes: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    @property
    def n(self) -> int:
        """Number of objects."""
        return int(len(self.classes))


def check_objects_file(path: str | os.PathLike[str]) -> None:
    """Check that ``path`` names a format that holds object labels.

    Raises
    ------
    UserInputError
        For an unknown extension, or one of :data:`UNFIT_FORMATS`.
    """
    if format_of(path) in UNFIT_FORMATS:
        raise UserInputError(f"'{os.fspath(path)}': object labels need a lossless format "
                             "(.tif, .nii.gz, .png, .npy, .zarr)")


def options_for_classes(class_names: Sequence[str], **overrides: Any) -> InstanceOptions:
    """Default options for a model's classes: background and boundary classes found by name.

    The first class named like :data:`BACKGROUND_NAMES` is the background (else class 1),
    the first named like :data:`BOUNDARY_NAMES` the boundary class (else none); every other
    class is an object class. ``overrides`` replace any field.
    """
    names = [str(n).strip().lower() for n in class_names]
    background = next((i + 1 for i, n in enumerate(names) if n in BACKGROUND_NAMES), 1)
    boundary = next((i + 1 for i, n in enumerate(names) if n in BOUNDARY_NAMES and i + 1 != background), None)
    kwargs: dict[str, Any] = {"background_class": background, "boundary_class": boundary}
    kwargs.update(overrides)
    return InstanceOptions(**kwargs)


# --------------------------------------------------------------------------- helpers
def _structure(ndim: int, connectivity: int) -> np.ndarray:
    return ndi.generate_binary_structure(ndim, min(connectivity, ndim))


def _uint_for(n: int) -> np.dtype:
    """The smallest unsigned type that holds ``0..n`` (at most uint32)."""
    for dt in (np.uint8, np.uint16, np.uint32):
        if n <= np.iinfo(dt).max:
            return np.dtype(dt)
    raise UserInputError(f"{n} objects do not fit in a uint32 label image")


def _class_lookup(kinds: Sequence[int], top: int) -> np.ndarray:
    """``lookup[class value]`` = index of the class in ``kinds``, ``len(kinds)`` for others."""
    lookup = np.full(max(top, max(kinds, default=0)) + 1, len(kinds), dtype=np.int64)
    for i, k in enumerate(kinds):
        lookup[k] = i
    return lookup


def _kind_map(labels: np.ndarray, kinds: Sequence[int]) -> np.ndarray:
    """``labels`` where they are an object class, 0 elsewhere."""
    keep = np.isin(labels, kinds)
    return np.where(keep, labels, 0)


def _object_mask(labels: np.ndarray, kinds: Sequence[int], boundary: int | None) -> np.ndarray:
    return np.isin(labels, [*kinds, boundary] if boundary is not None else list(kinds))


def _padded_box(box: tuple[slice, ...], shape: tuple[int, ...]) -> tuple[slice, ...]:
    return tuple(slice(max(b.start - 1, 0), min(b.stop + 1, n)) for b, n in zip(box, shape))


def _filled_planes(mask: np.ndarray) -> np.ndarray:
    """``mask`` with its holes filled: a 2-D image's, and in a volume each slice's along the
    first axis (so band by band along that axis gives the same). A hole is a region of
    background (edge-connected, as :func:`scipy.ndimage.binary_fill_holes` has it) that does
    not reach the image's (the slice's) edge; found by labelling the background once."""
    plane = ndi.generate_binary_structure(2, 1)
    structure = plane if mask.ndim == 2 else np.stack([np.zeros_like(plane), plane, np.zeros_like(plane)])
    background, n = ndi.label(~mask, structure=structure)
    if n == 0:
        return mask.copy()
    edges = [background[..., 0, :], background[..., -1, :], background[..., :, 0], background[..., :, -1]]
    open_ids = np.unique(np.concatenate([e.ravel() for e in edges]))
    hole = np.ones(n + 1, dtype=bool)
    hole[open_ids] = False
    hole[0] = False
    return mask | hole[background]


def _region_distances(regions: np.ndarray, spacing: tuple[float, ...], out: np.ndarray,
                      only_unset: np.ndarray | None = None) -> list[float]:
    """Per connected region (``regions``: ids 1..n), the physical distance of each of its pixels
    to the nearest pixel outside the region, written into ``out``; returns each region's
    largest distance.

    Each transform runs on the region's bounding box grown by one pixel, which holds the
    nearest outside pixel (the grown box's rim is outside), so the values equal a whole-image
    distance transform of that region alone, at the cost of its box. Pixels of
    ``only_unset`` (a mask) are written only where ``out`` is still 0.
    """
    maxima: list[float] = []
    for i, box in enumerate(ndi.find_objects(regions), start=1):
        if box is None:
            continue
        box = _padded_box(box, regions.shape)
        own = regions[box] == i
        d = ndi.distance_transform_edt(own, sampling=spacing)
        view = out[box]
        write = own if only_unset is None else own & (~only_unset[box] | (view == 0))
        view[write] = d[write]
        maxima.append(float(d[own].max()))
    return maxima


def _distances(labels: np.ndarray, kinds: Sequence[int], boundary: int | None, spacing: tuple[float, ...],
               connectivity: int) -> tuple[np.ndarray, list[float]]:
    """Distance (physical) of each object pixel to the nearest pixel outside its connected
    region of its class (with the boundary class, when there is one; a boundary pixel takes
    the first class's value), 0 elsewhere; and the largest distance of every region."""
    dist = np.zeros(labels.shape, dtype=np.float32)
    bnd = labels == boundary if boundary is not None else None
    maxima: list[float] = []
    for k in kinds:
        own = labels == k
        if not own.any():
            continue
        mask = own | bnd if bnd is not None else own
        regions = label_regions(mask, connectivity=connectivity)
        maxima += _region_distances(regions, spacing, dist, only_unset=bnd)
    return dist, maxima


def _peak_distance(options: InstanceOptions, radii: Sequence[float], spacing: tuple[float, ...]) -> float:
    """``options.peak_distance``, else :data:`PEAK_DISTANCE_FRACTION` of the typical radius
    (the median of the regions' largest distances)."""
    if options.peak_distance is not None:
        return options.peak_distance
    radius = float(np.median(radii)) if len(radii) else 0.0
    return max(radius, min(spacing)) * PEAK_DISTANCE_FRACTION


def _peaks(values: np.ndarray, peak_distance: float, spacing: tuple[float, ...]) -> np.ndarray:
    """The maxima of ``values`` within a box of half-width ``peak_distance`` per axis, grown by
    :data:`PEAK_MERGE_PIXELS` // 2 so that maxima this close join one group."""
    half = [max(1, int(round(peak_distance / s))) for s in spacing]
    footprint = np.ones(tuple(2 * h + 1 for h in half), dtype=bool)
    coords = peak_local_max(values, min_distance=1, footprint=footprint, exclude_border=False)
    grow = PEAK_MERGE_PIXELS // 2
    offsets = np.stack(np.meshgrid(*[np.arange(-grow, grow + 1)] * values.ndim, indexing="ij"), -1)
    offsets = offsets.reshape(-1, values.ndim)
    points = (coords[:, None, :] + offsets[None]).reshape(-1, values.ndim)  # each peak's (2 grow + 1)^n cube
    points = np.clip(points, 0, np.array(values.shape) - 1)
    peaks = np.zeros(values.shape, dtype=bool)
    peaks[tuple(points.T)] = True
    return peaks


def _distance_seeds(dist: np.ndarray, labels: np.ndarray, kinds: Sequence[int], peak_distance: float,
                    spacing: tuple[float, ...]) -> np.ndarray:
    """Seeds: the class (value) at the maxima of ``dist`` (:func:`_peaks`) that rise
    :data:`PEAK_MIN_DYNAMIC` × ``peak_distance`` above their saddle; 0 elsewhere."""
    peaks = _peaks(dist, peak_distance, spacing)
    kind = _kind_map(labels, kinds)
    if PEAK_MIN_DYNAMIC > 0:
        peaks = _significant(peaks & (kind > 0), dist, PEAK_MIN_DYNAMIC * peak_distance)
    return np.where(peaks, kind, 0)


def _significant(peaks: np.ndarray, dist: np.ndarray, h: float) -> np.ndarray:
    """The connected groups of ``peaks`` whose maximum of ``dist`` rises at least ``h`` above the
    saddle towards any higher point (its *dynamic*, what :func:`skimage.morphology.h_maxima`
    thresholds; this test is far cheaper, and on session 24's 128 saved predictions it made
    the same objects in 121): the small bumps along a ridge (an elongated object's spine)
    seed nothing.

    A group of height ``H`` passes when the part of ``{dist > H - h}`` around it holds nothing
    higher than ``H``. Run in the padded bounding box of each connected region of ``dist > 0``
    (zeros separate them) that has two groups or more; a region's one group stays its
    object's seed either way.
    """
    groups, n = ndi.label(peaks)
    if n < 2:
        return peaks
    regions = label_regions(dist > 0, connectivity=dist.ndim)
    at = np.flatnonzero(groups)  # peaks are few: gather at them, not over the image
    ids = groups.ravel()[at]
    region_of = np.zeros(n, dtype=np.int64)
    region_of[ids - 1] = regions.ravel()[at]  # a group lies in one region
    height = np.full(n, -np.inf)
    np.maximum.at(height, ids - 1, dist.ravel()[at].astype(np.float64))
    per_region = np.bincount(region_of, minlength=int(regions.max()) + 1)
    keep = np.ones(n + 1, dtype=bool)
    keep[0] = False
    boxes = ndi.find_objects(regions)
    full = ndi.generate_binary_structure(dist.ndim, dist.ndim)
    for r in np.flatnonzero(per_region >= 2):
        box = _padded_box(boxes[r - 1], dist.shape)
        d = np.where(regions[box] == r, dist[box], 0.0)
        g = groups[box]
        for i in np.flatnonzero(region_of == r) + 1:
            top = height[i - 1]
            around, _ = ndi.label(d > top - h, structure=full)
            part = around == around[(g == i) & (d == top)].max()  # the component of the group's top
            keep[i] = d[part].max() <= top
    return keep[groups]


def _flood(mask: np.ndarray, regions: np.ndarray, seeds: np.ndarray, n_seeds: int | None,
           options: InstanceOptions, spacing: tuple[float, ...], boundary_probability: np.ndarray | None,
           landscape: np.ndarray | None, new_ids_from: int | None) -> tuple[np.ndarray, int]:
    """Watershed from labelled ``seeds`` over the object pixels, region by region.

    Seed ids are ``1..n_seeds``, or any ids when ``n_seeds`` is ``None``.

    ``regions`` are the connected regions of ``mask``. A region with one seed is that seed's
    object; a region with several is flooded (:func:`skimage.segmentation.watershed`) in its
    bounding box, by ``landscape``, else the boundary probability, else the distance to the
    nearest seed of the region. Flooding never leaves a region, so this equals one watershed
    of the whole image. A region with no seed becomes an object of its own, numbered from
    ``new_ids_from`` in raster order, or stays 0 when that is ``None``. Returns the objects
    and the number of such new objects.
    """
    n_regions = int(regions.max(initial=0))
    inside = seeds > 0
    seed_vals, region_vals = seeds[inside], regions[inside]  # a seed lies in one region
    if n_seeds is None:
        seed_ids, index = np.unique(seed_vals, return_inverse=True)
    else:
        seed_ids, index = np.arange(1, n_seeds + 1), seed_vals - 1
    region_of_seed = np.zeros(len(seed_ids), dtype=np.int64)
    region_of_seed[index] = region_vals
    per_region = np.bincount(region_of_seed, minlength=n_regions + 1)
    lut = np.zeros(n_regions + 1, dtype=np.int64)
    one = per_region[region_of_seed] == 1
    lut[region_of_seed[one]] = np.asarray(seed_ids, dtype=np.int64)[one]
    n_new = 0
    if new_ids_from is not None:
        empty = np.flatnonzero(per_region[1:] == 0) + 1
        lut[empty] = np.arange(new_ids_from, new_ids_from + len(empty))
        n_new = len(empty)
    objects = lut[regions]
    several = np.flatnonzero(per_region >= 2)
    if len(several):
        boxes = ndi.find_objects(regions)
        for r in several:
            box = boxes[r - 1]
            own = regions[box] == r
            own_seeds = np.where(own, seeds[box], 0)
            if landscape is not None:
                land = landscape[box]
            elif boundary_probability is not None:
                land = np.asarray(boundary_probability[box], dtype=np.float32)
            else:  # the region's seeds are all in its box
                land = ndi.distance_transform_edt(own_seeds == 0, sampling=spacing).astype(np.float32)
            flooded = watershed(land, own_seeds, mask=own, connectivity=options.connectivity)
            objects[box][own] = flooded[own]
    return objects, n_new


def _class_counts(objects: np.ndarray, labels: np.ndarray, lookup: np.ndarray, n_kinds: int,
                  n_objects: int) -> np.ndarray:
    """``counts[i, j]``: pixels of object ``i`` (0..n) with class ``kinds[j]`` (j = n_kinds: other)."""
    inside = objects > 0
    ids = objects[inside].astype(np.int64)
    cls = lookup[np.minimum(labels[inside].astype(np.int64), len(lookup) - 1)]
    flat = np.bincount(ids * (n_kinds + 1) + cls, minlength=(n_objects + 1) * (n_kinds + 1))
    return flat[: (n_objects + 1) * (n_kinds + 1)].reshape(n_objects + 1, n_kinds + 1)


def _classes_from_counts(counts: np.ndarray, kinds: Sequence[int], boundary: int | None) -> np.ndarray:
    """Majority object class of each object (row 0, the background, is skipped)."""
    own = counts[1:, : len(kinds)]
    fallback = boundary if boundary is not None else 0
    if not len(kinds):
        return np.full(len(own), fallback, dtype=np.int64)
    return np.where(own.sum(axis=1) > 0, np.asarray(kinds, dtype=np.int64)[own.argmax(axis=1)], fallback)


def _check_labels(labels: Any) -> np.ndarray:
    arr = np.asarray(labels)
    if arr.ndim not in (2, 3):
        raise UserInputError(f"objects need a 2D or 3D label image, got shape {arr.shape}")
    if arr.dtype.kind not in "iub":
        raise UserInputError(f"a prediction's labels must be integers (classes 1..K), got dtype {arr.dtype}")
    if arr.dtype.kind == "i" and arr.size and arr.min() < 0:
        raise UserInputError("a prediction's labels must not be negative")
    return arr


def _present(labels: np.ndarray) -> np.ndarray:
    """The values in a class-label image (``np.unique``; a count for small class values)."""
    top = int(labels.max(initial=0))
    if top <= np.iinfo(np.uint16).max:
        return np.flatnonzero(np.bincount(labels.reshape(-1), minlength=top + 1))
    return np.unique(labels)


def _spacing(spacing: Sequence[float] | None, ndim: int) -> tuple[float, ...]:
    try:
        return check_spacing(spacing, ndim)
    except ValueError as e:
        raise UserInputError(str(e)) from e


def _min_voxels(min_size: float, spacing: tuple[float, ...]) -> int:
    """Smallest kept object in voxels: ``ceil(min_size / voxel volume)``."""
    return int(math.ceil(min_size / float(np.prod(spacing)) - 1e-9)) if min_size > 0 else 0


# --------------------------------------------------------------------------- in memory
def instances_from_labels(
    labels: np.ndarray,
    options: InstanceOptions | None = None,
    spacing: Sequence[float] | None = None,
    *,
    boundary_probability: np.ndarray | None = None,
    image: np.ndarray | None = None,
    channel_axis: int | None = None,
) -> Instances:
    """Objects from an exclusive prediction's labels (``1..K``), 2D or 3D.

    Parameters
    ----------
    labels
        Class labels, integer, spatial shape.
    options
        The recipe (:class:`InstanceOptions`; default: class 1 is the background, no boundary
        class, distance seeds).
    spacing
        Physical voxel size per axis; ``None`` = 1.
    boundary_probability
        Probability of the boundary class per pixel (same shape), the flooding landscape of
        interior seeds; ``None``: flood by the distance to the nearest seed.
    image, channel_axis
        The predicted image (its channels averaged), read when ``options.declump`` is
        ``"intensity"`` (:attr:`InstanceOptions.reads_image`), else ignored.

    Returns
    -------
    Instances
        Labels ``0..N`` and the class of each object.

    Raises
    ------
    UserInputError
        For labels that are not a 2D or 3D integer image, a boundary probability or image of
        another shape, or splitting along dim lines without the image.
    """
    options = options or InstanceOptions()
    arr = _check_labels(labels)
    sp = _spacing(spacing, arr.ndim)
    if boundary_probability is not None and np.shape(boundary_probability) != arr.shape:
        raise UserInputError(f"the boundary probability has shape {np.shape(boundary_probability)}, "
                             f"the labels {arr.shape}")
    intensity = None
    if options.reads_image:
        if image is None:
            raise UserInputError("splitting touching objects along dim lines needs the image")
        intensity = _intensity(image, channel_axis, arr.shape, sp)
    kinds = options.classes_in(_present(arr))
    boundary = options.boundary_class
    objects, n = _objects(arr, kinds, options, sp, boundary_probability, intensity)
    counts = _class_counts(objects, arr, _class_lookup(kinds, int(arr.max(initial=0))), len(kinds), n)
    classes = _classes_from_counts(counts, kinds, boundary)
    min_vox = _min_voxels(options.min_size, sp)
    changed = False
    if min_vox > 1 and np.any(counts[1:].sum(axis=1) < min_vox):
        objects = remove_small_objects(objects, max_size=min_vox - 1)
        changed = True
    if options.drop_border:
        objects = clear_border(objects)
        changed = True
    kept = np.arange(1, n + 1)
    if changed:
        objects, _, inverse = relabel_sequential(objects)
        kept = np.asarray(inverse.out_values[1:], dtype=np.int64)  # old id of each new id 1..m
    m = len(kept)
    return Instances(objects.astype(_uint_for(m), copy=False), classes[kept - 1] if m else classes[:0])


def instances_from_probabilities(
    probabilities: np.ndarray,
    options: InstanceOptions | None = None,
    spacing: Sequence[float] | None = None,
    *,
    image: np.ndarray | None = None,
    channel_axis: int | None = None,
) -> Instances:
    """Objects from an exclusive prediction's probabilities ``(K, *spatial)`` (softmax).

    The labels are ``argmax + 1``; the probability of ``options.boundary_class`` is the
    flooding landscape (at dim lines: the ``image``). See :func:`instances_from_labels`.
    """
    options = options or InstanceOptions()
    probs = np.asarray(probabilities)
    if probs.ndim not in (3, 4):
        raise UserInputError(f"probabilities must be (K, *spatial) for a 2D or 3D image, got shape {probs.shape}")
    k = probs.shape[0]
    labels = (np.argmax(probs, axis=0) + 1).astype(_uint_for(k))
    boundary = options.boundary_class
    if boundary is not None and not 1 <= boundary <= k:
        raise UserInputError(f"boundary class {boundary} is not one of the {k} classes")
    return instances_from_labels(labels, options, spacing,
                                 boundary_probability=None if boundary is None else probs[boundary - 1],
                                 image=image, channel_axis=channel_axis)


def _holes_as_objects(labels: np.ndarray, kinds: Sequence[int], boundary: int | None) -> np.ndarray:
    """``labels`` with each object class's holes (:func:`_filled_planes` of the class with the
    boundary class) taken as that class where no object class or boundary is; ``labels``
    itself when there are none."""
    taken = _object_mask(labels, kinds, boundary)
    bnd = labels == boundary if boundary is not None else None
    out = labels
    for k in kinds:
        own = labels == k
        holes = _filled_planes(own | bnd if bnd is not None else own) & ~taken
        if holes.any():
            out = out.copy() if out is labels else out
            out[holes] = k
            taken |= holes
    return out


def _objects(labels: np.ndarray, kinds: Sequence[int], options: InstanceOptions, spacing: tuple[float, ...],
             boundary_probability: np.ndarray | None,
             intensity: np.ndarray | None = None) -> tuple[np.ndarray, int]:
    """Unfiltered objects (ids in raster order of their seeds, unseeded regions after) and N;
    ``intensity`` (:func:`_intensity`): split along the image's dim lines."""
    if SEED_HOLES_FILLED and options.split and kinds and (options.seeds == "distance" or intensity is not None):
        filled = _holes_as_objects(labels, kinds, options.boundary_class)
        if filled is not labels:
            objects, n = _split_objects(filled, kinds, options, spacing, boundary_probability, intensity)
            objects[~_object_mask(labels, kinds, options.boundary_class)] = 0
            if not np.all(np.bincount(objects.ravel(), minlength=n + 1)[1:]):  # an object that was all hole
                objects, _, _ = relabel_sequential(objects)
                n = int(objects.max(initial=0))
            return objects, n
    return _split_objects(labels, kinds, options, spacing, boundary_probability, intensity)


def _split_objects(labels: np.ndarray, kinds: Sequence[int], options: InstanceOptions,
                   spacing: tuple[float, ...], boundary_probability: np.ndarray | None,
                   intensity: np.ndarray | None = None) -> tuple[np.ndarray, int]:
    """:func:`_objects` of ``labels`` as they are."""
    conn = min(options.connectivity, labels.ndim)
    mask = _object_mask(labels, kinds, options.boundary_class)
    regions = label_regions(mask, connectivity=conn)
    if not options.split or not kinds:
        return regions, int(regions.max(initial=0))
    if intensity is not None:
        seeds, landscape = _image_seeds(labels, kinds, options, spacing, intensity, mask)
    else:
        seeds, landscape = _seeds(labels, kinds, options, spacing)
    n_seeds = int(seeds.max(initial=0))
    objects, n_new = _flood(mask, regions, seeds, n_seeds, options, spacing, boundary_probability, landscape,
                            new_ids_from=n_seeds + 1)
    return objects, n_seeds + n_new


def _intensity(image: Any, channel_axis: int | None, shape: tuple[int, ...],
               spacing: tuple[float, ...]) -> np.ndarray:
    """The image (channels averaged) smoothed by :data:`DIM_LINE_SMOOTHING` pixels along the
    finest axis (the same physical width on every axis), float32; pixels that are not finite
    take the image's smallest finite value."""
    arr = np.asarray(image)
    if channel_axis is not None:
        if not -arr.ndim <= channel_axis < arr.ndim:
            raise UserInputError(f"channel axis {channel_axis} is not an axis of the image's shape {arr.shape}")
        arr = arr.mean(axis=channel_axis, dtype=np.float32)
    if arr.shape != shape:
        raise UserInputError(f"the image has shape {arr.shape}, the prediction {shape}")
    arr = np.array(arr, dtype=np.float32)
    bad = ~np.isfinite(arr)
    if bad.any():
        arr[bad] = float(arr[~bad].min()) if not bad.all() else 0.0
    sigma = [DIM_LINE_SMOOTHING * min(spacing) / s for s in spacing]
    return ndi.gaussian_filter(arr, sigma)


def _oriented(intensity: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, float]:
    """``intensity`` turned so that the objects (``mask``) are brighter than the rest (their
    medians), and the difference of the two medians (0 without both)."""
    if not mask.any() or mask.all():
        return intensity, 0.0
    inside, outside = float(np.median(intensity[mask])), float(np.median(intensity[~mask]))
    return (intensity, inside - outside) if inside >= outside else (np.negative(intensity), outside - inside)


def _image_seeds(labels: np.ndarray, kinds: Sequence[int], options: InstanceOptions, spacing: tuple[float, ...],
                 intensity: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Labelled seeds at the maxima of the image (:func:`_oriented`: objects bright) within the
    peak distance, each rising :data:`DIM_LINE_MIN_DYNAMIC` × the contrast above its saddle,
    and the landscape (minus the image). Without contrast (the objects no brighter or dimmer
    than the rest, or no background), :func:`_seeds` (by shape)."""
    bright, contrast = _oriented(intensity, mask)
    if contrast <= 0:
        return _seeds(labels, kinds, options, spacing)
    conn = min(options.connectivity, labels.ndim)
    _, radii = _distances(labels, kinds, options.boundary_class, spacing, conn)
    peak = _peak_distance(options, radii, spacing)
    height = np.zeros(labels.shape, dtype=np.float32)  # > 0 on the objects, 0 between them
    height[mask] = bright[mask] - bright[mask].min() + 1.0
    peaks = _peaks(height, peak, spacing) & mask
    peaks = _significant(peaks, height, DIM_LINE_MIN_DYNAMIC * contrast)
    seeds = label_regions(np.where(peaks, _kind_map(labels, kinds), 0), background=0, connectivity=conn)
    return seeds, np.negative(height, out=height)


def _slivers_possible(options: InstanceOptions) -> bool:
    """Whether interior seeds can be slivers (:data:`SLIVER_DEPTH`): a boundary class, the rule on."""
    return SLIVER_DEPTH > 0 and options.boundary_class is not None


def _sliver_marks(kind: np.ndarray, labels: np.ndarray, options: InstanceOptions) -> list[np.ndarray]:
    """For :data:`SLIVER_DEPTH`: the object-class pixels (``kind > 0``) more than that deep in
    their plane, those with a background face neighbour and those with a boundary one."""
    inside = kind > 0
    plane = ndi.generate_binary_structure(2, 1).reshape((1,) * (kind.ndim - 2) + (3, 3))
    face = ndi.generate_binary_structure(kind.ndim, 1)
    deep = ndi.binary_erosion(inside, plane, iterations=SLIVER_DEPTH, border_value=1)
    return [deep] + [inside & ndi.binary_dilation(labels == c, face)
                     for c in (options.background_class, options.boundary_class)]


def _marked(ids: np.ndarray, marks: list[np.ndarray], n: int) -> list[np.ndarray]:
    """Per mark of :func:`_sliver_marks`, ``(n + 1,)`` bool: which region ids ``0..n`` of
    ``ids`` (the same pixels) have a marked pixel."""
    return [np.bincount(ids[m].ravel(), minlength=n + 1) > 0 for m in marks]


def _slivers(marked: list[np.ndarray]) -> np.ndarray:
    """Which region ids are slivers, from :func:`_marked`: they touch the background and the
    boundary class and have no deep pixel (never id 0)."""
    deep, background, boundary = marked
    out = background & boundary & ~deep
    out[0] = False
    return out


def _seeds(labels: np.ndarray, kinds: Sequence[int], options: InstanceOptions,
           spacing: tuple[float, ...]) -> tuple[np.ndarray, np.ndarray | None]:
    """Labelled seeds (raster order) and, for distance seeds, the landscape (minus the distance)."""
    conn = min(options.connectivity, labels.ndim)
    if options.seeds == "interior":
        kind = _kind_map(labels, kinds)
        seeds = label_regions(kind, background=0, connectivity=conn)
        if _slivers_possible(options):
            slivers = _slivers(_marked(seeds, _sliver_marks(kind, labels, options), int(seeds.max(initial=0))))
            if slivers.any():
                kind[slivers[seeds]] = 0
                seeds = label_regions(kind, background=0, connectivity=conn)
        return seeds, None
    dist, radii = _distances(labels, kinds, options.boundary_class, spacing, conn)
    peak = _peak_distance(options, radii, spacing)
    seeds = label_regions(_distance_seeds(dist, labels, kinds, peak, spacing), background=0, connectivity=conn)
    return seeds, np.negative(dist, out=dist)


# --------------------------------------------------------------------------- band by band
class _Scratch:
    """Full-size uint32 arrays in a temporary folder (memory maps), deleted on close."""

    def __init__(self, folder: str | os.PathLike[str] | None) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix=".segstudio-bands-", dir=folder)
        self._n = 0

    def array(self, shape: tuple[int, ...]) -> np.memmap:
        self._n += 1
        return np.lib.format.open_memmap(os.path.join(self._dir.name, f"{self._n}.npy"), mode="w+",
                                         dtype=np.uint32, shape=shape)

    def close(self) -> None:
        self._dir.cleanup()


def _bands(n_rows: int, band_rows: int) -> Iterator[tuple[int, int]]:
    for a in range(0, n_rows, band_rows):
        yield a, min(a + band_rows, n_rows)


def _row_key(a: int, b: int, ndim: int) -> tuple[slice, ...]:
    """Rows ``a:b`` as a full index (what an :class:`~segstudio.core.outofcore.OutputArray` takes)."""
    return (slice(a, b),) + (slice(None),) * (ndim - 1)


def _rows(array: Any, a: int, b: int) -> np.ndarray:
    block = np.array(array[a:b])
    release_pages(array)
    return block


def _label_bands(read: Callable[[int, int], np.ndarray], shape: tuple[int, ...],
                 write: Callable[[int, int, np.ndarray], None], *, band_rows: int, connectivity: int,
                 scratch: _Scratch) -> int:
    """Label connected regions of equal non-zero value, band by band; see :func:`label_bands`."""
    ndim = len(shape)
    conn = min(connectivity, ndim)
    provisional = scratch.array(shape)
    edges: list[np.ndarray] = []
    n_prov = 0
    n_links = 0
    prev_vals = prev_ids = None
    for a, b in _bands(shape[0], band_rows):
        vals = np.asarray(read(a, b))
        ids = label_regions(vals, background=0, connectivity=conn).astype(np.int64)
        ids[ids > 0] += n_prov
        n_prov = max(n_prov, int(ids.max(initial=0)))
        provisional[a:b] = ids
        release_pages(provisional)
        if prev_vals is not None:  # regions that touch across the interface are one
            pair_vals = np.stack([prev_vals, vals[0]])
            pair_ids = np.stack([prev_ids, ids[0]])
            links = label_regions(pair_vals, background=0, connectivity=conn)
            inside = links > 0
            if inside.any():
                pairs = np.unique(np.stack([pair_ids[inside], links[inside].astype(np.int64) + n_links]), axis=1)
                edges.append(pairs)
                n_links += int(links.max())
        prev_vals, prev_ids = vals[-1].copy(), ids[-1].copy()
    n_nodes = n_prov + 1 + n_links
    if edges:
        pairs = np.concatenate(edges, axis=1)
        rows, cols = pairs[0], pairs[1] + n_prov  # link ids start at 1: nodes n_prov + 1 ..
    else:
        rows = cols = np.zeros(0, dtype=np.int64)
    graph = coo_matrix((np.ones(len(rows), dtype=np.int8), (rows, cols)), shape=(n_nodes, n_nodes))
    _, root = connected_components(graph, directed=False)
    final_of_root = np.zeros(int(root.max(initial=0)) + 1, dtype=np.int64)
    n = 0
    for a, b in _bands(shape[0], band_rows):
        ids = _rows(provisional, a, b).astype(np.int64)
        inside = ids > 0
        roots = root[ids[inside]]
        uniq, first = np.unique(roots, return_index=True)
        new = uniq[final_of_root[uniq] == 0]
        if len(new):
            order = np.argsort(first[final_of_root[uniq] == 0], kind="stable")
            final_of_root[new[order]] = np.arange(n + 1, n + 1 + len(new))
            n += len(new)
        out = np.zeros(ids.shape, dtype=np.int64)
        out[inside] = final_of_root[roots]
        write(a, b, out)
    return n


def label_bands(
    source: Any,
    out: Any | None = None,
    *,
    band_rows: int = DEFAULT_BAND_ROWS,
    connectivity: int = 1,
    scratch_dir: str | os.PathLike[str] | None = None,
) -> tuple[Any, int]:
    """Label the connected regions of equal non-zero value of a (lazy) array, band by band.

    Each band of ``band_rows`` rows along the first axis is labelled alone
    (:func:`skimage.measure.label`); regions that touch across the interface of two bands
    (with the same ``connectivity``) are merged by a connected-components pass over the
    graph of those contacts (:func:`scipy.sparse.csgraph.connected_components`), and the ids
    are then renumbered in raster order of each region's first pixel. The result therefore
    equals ``skimage.measure.label(source, background=0, connectivity=connectivity)``, ids
    included, while only one band (and one plane per interface) is in memory; the provisional
    ids live in a memory-mapped scratch file in ``scratch_dir`` (default: the system's
    temporary folder), deleted when done.

    Parameters
    ----------
    source
        Integer or boolean array-like (numpy array, memmap, zarr array), read by row slices.
    out
        Where to write the labels (row slices, in increasing order; e.g. an
        :class:`~segstudio.core.outofcore.OutputArray`); ``None``: a new uint32 array.
    band_rows, connectivity, scratch_dir
        Rows per band, neighbourhood (1 = faces ... rank = corners), scratch folder.

    Returns
    -------
    out, n
        The labels and the number of regions.
    """
    shape = tuple(int(s) for s in source.shape)
    if out is None:
        out = np.zeros(shape, dtype=np.uint32)
    target = out

    def write(a: int, b: int, block: np.ndarray) -> None:
        target[_row_key(a, b, len(shape))] = block.astype(target.dtype, copy=False)

    scratch = _Scratch(scratch_dir)
    try:
        n = _label_bands(lambda a, b: _rows(source, a, b), shape, write, band_rows=band_rows,
                         connectivity=connectivity, scratch=scratch)
    finally:
        scratch.close()
    return out, n


@dataclass(frozen=True)
class _Band:
    """Rows ``[lo, hi)`` read for the band ``[a, b)`` (``halo`` rows around it)."""

    a: int
    b: int
    lo: int
    hi: int

    @property
    def core(self) -> slice:
        return slice(self.a - self.lo, self.b - self.lo)


def _halo_bands(n_rows: int, band_rows: int, halo: int) -> Iterator[_Band]:
    for a, b in _bands(n_rows, band_rows):
        yield _Band(a, b, max(0, a - halo), min(n_rows, b + halo))


def instances_in_bands(
    labels: Any,
    out: Any,
    options: InstanceOptions | None = None,
    spacing: Sequence[float] | None = None,
    *,
    probabilities: Any | None = None,
    band_rows: int = DEFAULT_BAND_ROWS,
    halo: int = DEFAULT_HALO,
    scratch_dir: str | os.PathLike[str] | None = None,
) -> np.ndarray:
    """Objects of a large (lazy) prediction, band by band along the first axis, into ``out``.

    The same recipe as :func:`instances_from_labels` (see the module docstring for when the
    two agree). Memory holds a band plus ``2 * halo`` rows; three or four uint32 scratch volumes are
    memory-mapped in ``scratch_dir`` (default: the system's temporary folder) and deleted
    when done.

    Parameters
    ----------
    labels
        Class labels ``1..K`` (numpy array, memmap or zarr array), 2D or 3D.
    out
        uint32 array-like of the same shape written by row slices in increasing order (e.g.
        :func:`segstudio.core.outofcore.open_output`); receives ``0..N``.
    options, spacing
        As in :func:`instances_from_labels`.
    probabilities
        ``(K, *spatial)`` probabilities (lazy or not): the boundary class's is the flooding
        landscape of interior seeds; ``None``: the distance to the nearest seed.
    band_rows, halo
        Rows per band and rows read around each band.

    Returns
    -------
    numpy.ndarray
        ``(N,)`` class of each object.

    Raises
    ------
    UserInputError
        For labels that are not a 2D or 3D integer image, probabilities of another shape, or
        splitting along dim lines (:attr:`InstanceOptions.reads_image`: in memory only).
    """
    options = options or InstanceOptions()
    if options.reads_image:
        raise UserInputError("splitting touching objects along dim lines is made in memory, not band by band: "
                             "split them by shape")
    shape = tuple(int(s) for s in labels.shape)
    if len(shape) not in (2, 3):
        raise UserInputError(f"objects need a 2D or 3D label image, got shape {shape}")
    if np.dtype(labels.dtype).kind not in "iub":
        raise UserInputError(f"a prediction's labels must be integers (classes 1..K), got dtype {labels.dtype}")
    if probabilities is not None and tuple(probabilities.shape[1:]) != shape:
        raise UserInputError(f"probabilities of shape {tuple(probabilities.shape)} do not fit labels {shape}")
    sp = _spacing(spacing, len(shape))
    conn = min(options.connectivity, len(shape))
    present: set[int] = set()
    for a, b in _bands(shape[0], band_rows):
        present.update(int(v) for v in _present(_rows(labels, a, b)))
    kinds = options.classes_in(sorted(present))
    boundary = options.boundary_class
    lookup = _class_lookup(kinds, max(present, default=0))
    scratch = _Scratch(scratch_dir)
    try:
        objects = scratch.array(shape)

        def into(array: np.memmap) -> Callable[[int, int, np.ndarray], None]:
            def write(a: int, b: int, block: np.ndarray) -> None:
                array[a:b] = block
                release_pages(array)
            return write

        def mask_rows(a: int, b: int) -> np.ndarray:
            return _object_mask(_rows(labels, a, b), kinds, boundary) if kinds else np.zeros((b - a, *shape[1:]), bool)

        if not options.split or not kinds:
            n = _label_bands(mask_rows, shape, into(objects), band_rows=band_rows, connectivity=conn,
                             scratch=scratch)
        else:
            source = labels
            if SEED_HOLES_FILLED and options.seeds == "distance":
                source = _HolesFilled(labels, kinds, boundary)
            n = _seeded_bands(source, probabilities, objects, kinds, options, sp, shape, band_rows, halo,
                              scratch, into)
            unreached = scratch.array(shape)
            n_left = _label_bands(
                lambda a, b: _object_mask(_rows(source, a, b), kinds, boundary) & (_rows(objects, a, b) == 0),
                shape, into(unreached), band_rows=band_rows, connectivity=conn, scratch=scratch)
            if n_left:
                n += _adopt_unreached(objects, unreached, n_left, n, shape, band_rows, conn)
            if source is not labels:  # the objects keep their predicted pixels
                for a, b in _bands(shape[0], band_rows):
                    objects[a:b] = np.where(mask_rows(a, b), _rows(objects, a, b), 0)
                    release_pages(objects)
        classes = _finish_bands(labels, objects, out, n, kinds, lookup, options, sp, shape, band_rows)
    finally:
        scratch.close()
    return classes


class _HolesFilled:
    """Rows of a label image read with :func:`_holes_as_objects` applied to each block read:
    the same as on the whole image in a volume (each slice along the first axis is filled
    on its own); in 2-D, a hole that a band's edge cuts is not filled in that band."""

    def __init__(self, labels: Any, kinds: Sequence[int], boundary: int | None) -> None:
        self.labels, self.kinds, self.boundary = labels, kinds, boundary
        self.shape, self.dtype = tuple(labels.shape), labels.dtype

    def __getitem__(self, key: slice) -> np.ndarray:
        return _holes_as_objects(_rows(self.labels, key.start, key.stop), self.kinds, self.boundary)


def _seeded_bands(labels: Any, probabilities: Any | None, objects: np.memmap, kinds: Sequence[int],
                  options: InstanceOptions, sp: tuple[float, ...], shape: tuple[int, ...], band_rows: int,
                  halo: int, scratch: _Scratch, into: Callable[[np.memmap], Callable[..., None]]) -> int:
    """Seeds labelled across bands, then each band flooded with ``halo`` rows of context."""
    conn = min(options.connectivity, len(shape))
    boundary = options.boundary_class
    distance = options.seeds == "distance"
    regions = None
    if distance:
        peak = options.peak_distance or _peak_distance_bands(labels, kinds, options, sp, conn, shape, band_rows,
                                                             halo, scratch, into)
        seed_store = scratch.array(shape)
        for band in _halo_bands(shape[0], band_rows, halo):
            block = _rows(labels, band.lo, band.hi)
            dist, _ = _distances(block, kinds, boundary, sp, conn)
            seed_store[band.a:band.b] = _distance_seeds(dist, block, kinds, peak, sp)[band.core]
            release_pages(seed_store)

        def seed_rows(a: int, b: int) -> np.ndarray:
            return _rows(seed_store, a, b)
    else:
        regions = _sliver_seeds_bands(labels, kinds, options, shape, band_rows, halo, scratch, into)

        def seed_rows(a: int, b: int) -> np.ndarray:
            kind = _kind_map(_rows(labels, a, b), kinds)
            if regions is not None:
                store, _, drop = regions
                kind[drop[_rows(store, a, b)]] = 0
            return kind
    if regions is not None and not regions[2].any():  # no sliver: the regions are the seeds
        seeds, n = regions[0], regions[1]
    else:
        seeds = scratch.array(shape)
        n = _label_bands(seed_rows, shape, into(seeds), band_rows=band_rows, connectivity=conn, scratch=scratch)
    for band in _halo_bands(shape[0], band_rows, halo):
        block = _rows(labels, band.lo, band.hi)
        seed_block = _rows(seeds, band.lo, band.hi).astype(np.int64)
        landscape = prob = None
        if distance:
            landscape = -_distances(block, kinds, boundary, sp, conn)[0]
        elif probabilities is not None and boundary is not None:
            prob = np.asarray(probabilities[boundary - 1, band.lo:band.hi], dtype=np.float32)
            release_pages(probabilities)
        mask = _object_mask(block, kinds, boundary)
        regions = label_regions(mask, connectivity=conn)
        flooded, _ = _flood(mask, regions, seed_block, None, options, sp, prob, landscape, new_ids_from=None)
        objects[band.a:band.b] = flooded[band.core]
        release_pages(objects)
    return n


def _sliver_seeds_bands(labels: Any, kinds: Sequence[int], options: InstanceOptions, shape: tuple[int, ...],
                        band_rows: int, halo: int, scratch: _Scratch,
                        into: Callable[[np.memmap], Callable[..., None]]
                        ) -> tuple[np.memmap, int, np.ndarray] | None:
    """The object classes' regions labelled across bands, their number and which of them are
    slivers (:data:`SLIVER_DEPTH`, as :func:`_seeds` finds them in memory); ``None`` when no
    region can be one."""
    if not _slivers_possible(options):
        return None
    conn = min(options.connectivity, len(shape))
    store = scratch.array(shape)
    n = _label_bands(lambda a, b: _kind_map(_rows(labels, a, b), kinds), shape, into(store),
                     band_rows=band_rows, connectivity=conn, scratch=scratch)
    seen = [np.zeros(n + 1, bool) for _ in range(3)]
    for band in _halo_bands(shape[0], band_rows, halo):
        block = _rows(labels, band.lo, band.hi)
        ids = _rows(store, band.lo, band.hi)[band.core]
        marks = [m[band.core] for m in _sliver_marks(_kind_map(block, kinds), block, options)]
        seen = [a | b for a, b in zip(seen, _marked(ids, marks, n))]
    return store, n, _slivers(seen)


def _adopt_unreached(objects: np.memmap, unreached: np.memmap, n_left: int, n: int, shape: tuple[int, ...],
                     band_rows: int, connectivity: int) -> int:
    """Unreached object regions (``unreached``: ids 1..n_left, across bands) join the object
    they touch most (a flood path longer than the halo, e.g. a thin strip of boundary along
    the image edge); those touching none are new objects (ids from n + 1, raster order), as
    in memory. Written into ``objects``; returns the number of new objects."""
    nd = len(shape)
    struct = _structure(nd, connectivity)
    offsets = [tuple(int(v) for v in o) for o in np.argwhere(struct) - 1 if tuple(o) > (0,) * nd]  # one of each pair
    contacts: list[np.ndarray] = []
    for a, b in _bands(shape[0], band_rows):
        lo = max(a - 1, 0)  # one row above: contacts across the interface
        obj = _rows(objects, lo, b).astype(np.int64)
        left = _rows(unreached, lo, b).astype(np.int64)
        for off in offsets:
            first = tuple(slice(max(-o, 0), n_ - max(o, 0)) for o, n_ in zip(off, obj.shape))
            second = tuple(slice(max(o, 0), n_ - max(-o, 0)) for o, n_ in zip(off, obj.shape))
            for u, v in ((left[first], obj[second]), (left[second], obj[first])):
                hit = (u > 0) & (v > 0)
                contacts.append(np.stack([u[hit], v[hit]]))
    lut = np.zeros(n_left + 1, dtype=np.int64)
    pairs = np.concatenate(contacts, axis=1) if contacts else np.zeros((2, 0), np.int64)
    if pairs.shape[1]:
        uniq, count = np.unique(pairs, axis=1, return_counts=True)
        order = np.lexsort((uniq[1], -count, uniq[0]))  # per region: most contacts, then the smallest id
        uniq = uniq[:, order]
        first_of_region = np.r_[True, uniq[0, 1:] != uniq[0, :-1]]
        lut[uniq[0, first_of_region]] = uniq[1, first_of_region]
    alone = np.flatnonzero(lut[1:] == 0) + 1
    lut[alone] = np.arange(n + 1, n + 1 + len(alone))
    for a, b in _bands(shape[0], band_rows):
        obj = _rows(objects, a, b)
        left = _rows(unreached, a, b)
        objects[a:b] = np.where(left > 0, lut[left.astype(np.int64)], obj)
        release_pages(objects)
    return len(alone)


def _peak_distance_bands(labels: Any, kinds: Sequence[int], options: InstanceOptions, sp: tuple[float, ...],
                         conn: int, shape: tuple[int, ...], band_rows: int, halo: int, scratch: _Scratch,
                         into: Callable[[np.memmap], Callable[..., None]]) -> float:
    """:func:`_peak_distance` from each whole region's largest distance, as in memory: the
    regions of each class (with the boundary class) labelled across bands, and each one's
    largest distance gathered over the bands' cores (each band's distances seen with its
    halo)."""
    boundary = options.boundary_class
    radii: list[float] = []
    for k in kinds:
        def own_rows(a: int, b: int, k: int = k) -> np.ndarray:
            block = _rows(labels, a, b)
            own = block == k
            return own | (block == boundary) if boundary is not None else own

        ids = scratch.array(shape)
        n = _label_bands(own_rows, shape, into(ids), band_rows=band_rows, connectivity=conn, scratch=scratch)
        if n == 0:
            continue
        largest = np.zeros(n + 1, dtype=np.float64)
        for band in _halo_bands(shape[0], band_rows, halo):
            own = own_rows(band.lo, band.hi)
            dist = np.zeros(own.shape, dtype=np.float64)  # the in-memory maxima are float64
            _region_distances(label_regions(own, connectivity=conn), sp, dist)
            core_ids = _rows(ids, band.a, band.b)
            present = np.unique(core_ids)
            present = present[present > 0]
            if len(present):
                here = ndi.maximum(dist[band.core], labels=core_ids, index=present)
                largest[present] = np.maximum(largest[present], here)
        radii += largest[1:].tolist()
    return _peak_distance(options, radii, sp)


def _finish_bands(labels: Any, objects: np.memmap, out: Any, n: int, kinds: Sequence[int], lookup: np.ndarray,
                  options: InstanceOptions, sp: tuple[float, ...], shape: tuple[int, ...],
                  band_rows: int) -> np.ndarray:
    """Sizes, classes and border contacts in one pass; then small and border objects removed
    and the ids made sequential while writing ``out``."""
    counts = np.zeros((n + 1, len(kinds) + 1), dtype=np.int64)
    on_border = np.zeros(n + 1, dtype=bool)
    for a, b in _bands(shape[0], band_rows):
        ids = _rows(objects, a, b).astype(np.int64)
        counts += _class_counts(ids, _rows(labels, a, b), lookup, len(kinds), n)
        if options.drop_border:
            faces = [ids[(slice(None), *([slice(None)] * i), idx)] for i in range(len(shape) - 1) for idx in (0, -1)]
            if a == 0:
                faces.append(ids[0])
            if b == shape[0]:
                faces.append(ids[-1])
            for face in faces:
                on_border[np.unique(face)] = True
    sizes = counts.sum(axis=1)
    keep = sizes >= max(_min_voxels(options.min_size, sp), 1)
    if options.drop_border:
        keep &= ~on_border
    keep[0] = False
    lut = np.zeros(n + 1, dtype=np.int64)
    lut[keep] = np.arange(1, int(keep.sum()) + 1)
    for a, b in _bands(shape[0], band_rows):
        out[_row_key(a, b, len(shape))] = lut[_rows(objects, a, b).astype(np.int64)].astype(out.dtype, copy=False)
        release_pages(out)
    classes = _classes_from_counts(counts, kinds, options.boundary_class)
    return classes[keep[1:]]


# --------------------------------------------------------------------------- the object table
def object_table(
    objects: np.ndarray,
    image: np.ndarray | None = None,
    *,
    channel_axis: int | None = None,
    spacing: Sequence[float] | None = None,
    classes: Sequence[int] | np.ndarray | None = None,
    class_names: Sequence[str] | None = None,
) -> dict[str, np.ndarray]:
    """One row per object: id, class, size, centroid, mean intensity per channel, bounding box.

    Parameters
    ----------
    objects
        Instance labels (``0`` = background, ``1..N``), 2D or 3D; ids need not be sequential.
    image
        The image, for the mean intensity per channel (spatial shape of ``objects`` plus
        ``channel_axis``); ``None``: no intensity columns.
    spacing
        Physical voxel size per axis (``None`` = 1): sizes and centroids are physical.
    classes
        Class of each object, ``classes[i]`` for id ``i + 1`` (:attr:`Instances.classes`);
        ``None``: no class column.
    class_names
        Names of classes 1..K: adds a ``class_name`` column.

    Returns
    -------
    dict of str to numpy.ndarray
        Columns in order: ``id``; ``class`` and ``class_name`` (when known); ``area`` (2D) or
        ``volume`` (3D) in spacing units squared/cubed; ``centroid_z``, ``centroid_y``,
        ``centroid_x`` (physical: index × spacing); ``mean_intensity`` (one channel) or
        ``mean_intensity_c0``, ``_c1``, ... ; ``bbox_z_start`` ... ``bbox_x_stop`` (pixel
        indices, stop exclusive, as numpy slices).
    """
    obj = np.asarray(objects)
    if obj.ndim not in (2, 3):
        raise UserInputError(f"objects must be a 2D or 3D label image, got shape {obj.shape}")
    if obj.dtype.kind not in "iub" or (obj.dtype.kind == "i" and obj.size and obj.min() < 0):
        raise UserInputError(f"instance labels must be integers >= 0, got dtype {obj.dtype}")
    sp = _spacing(spacing, obj.ndim)
    intensity = None
    if image is not None:
        img = np.asarray(image)
        if channel_axis is not None:
            img = np.moveaxis(img, channel_axis, -1)
        else:
            img = img[..., None]
        if img.shape[:-1] != obj.shape:
            raise UserInputError(f"the image's spatial shape {img.shape[:-1]} does not match the labels' {obj.shape}")
        intensity = img.astype(np.float64, copy=False) if img.dtype.kind != "f" else img
    props = ["label", "area", "centroid", "bbox"] + (["intensity_mean"] if intensity is not None else [])
    raw = regionprops_table(obj.astype(np.int64, copy=False) if obj.dtype.kind == "b" else obj,
                            intensity_image=intensity, properties=props, spacing=sp)
    axes = "zyx"[-obj.ndim:]
    table: dict[str, np.ndarray] = {"id": np.asarray(raw["label"], dtype=np.int64)}
    if classes is not None:
        cls = np.asarray(classes, dtype=np.int64)
        if len(table["id"]) and table["id"].max() > len(cls):
            raise UserInputError(f"object id {table['id'].max()} has no class ({len(cls)} classes given)")
        table["class"] = cls[table["id"] - 1]
        if class_names is not None:
            names = list(class_names)
            table["class_name"] = np.array([names[c - 1] if 1 <= c <= len(names) else "" for c in table["class"]],
                                           dtype=object)
    table["area" if obj.ndim == 2 else "volume"] = np.asarray(raw["area"], dtype=np.float64)
    for i, a in enumerate(axes):
        table[f"centroid_{a}"] = np.asarray(raw[f"centroid-{i}"], dtype=np.float64)
    if intensity is not None:
        n_ch = intensity.shape[-1]
        for c in range(n_ch):
            key = "mean_intensity" if n_ch == 1 else f"mean_intensity_c{c}"
            table[key] = np.asarray(raw[f"intensity_mean-{c}"], dtype=np.float64)
    for i, a in enumerate(axes):
        table[f"bbox_{a}_start"] = np.asarray(raw[f"bbox-{i}"], dtype=np.int64)
    for i, a in enumerate(axes):
        table[f"bbox_{a}_stop"] = np.asarray(raw[f"bbox-{i + obj.ndim}"], dtype=np.int64)
    return table


def object_table_in_bands(
    objects: Any,
    image: Any | None = None,
    *,
    channel_axis: int | None = None,
    spacing: Sequence[float] | None = None,
    classes: Sequence[int] | np.ndarray | None = None,
    class_names: Sequence[str] | None = None,
    band_rows: int = DEFAULT_BAND_ROWS,
) -> dict[str, np.ndarray]:
    """:func:`object_table` of a large (lazy) label volume, with the same columns and values.

    The objects' bounding boxes are found band by band along the first axis; then each object
    is measured by :func:`object_table` in its own box, read from ``objects`` and ``image``
    (lazy arrays are read box by box), so memory holds one band or the largest object's box.
    """
    shape = tuple(int(n) for n in objects.shape)
    nd = len(shape)
    if nd not in (2, 3):
        raise UserInputError(f"objects must be a 2D or 3D label image, got shape {shape}")
    if image is not None:
        ch = None if channel_axis is None else channel_axis % image.ndim
        img_shape = tuple(n for i, n in enumerate(image.shape) if i != ch)
        if img_shape != shape:
            raise UserInputError(f"the image's spatial shape {img_shape} does not match the labels' {shape}")
    sp = _spacing(spacing, nd)
    starts: dict[int, np.ndarray] = {}
    stops: dict[int, np.ndarray] = {}
    for a, b in _bands(shape[0], band_rows):
        block = _rows(objects, a, b)
        ids, compact = np.unique(block, return_inverse=True)
        for k, box in enumerate(ndi.find_objects(compact.reshape(block.shape) + 1), start=0):
            if box is None or ids[k] == 0:
                continue
            shift = np.array([a] + [0] * (nd - 1))
            lo = np.array([s.start for s in box]) + shift
            hi = np.array([s.stop for s in box]) + shift
            key = int(ids[k])
            starts[key] = np.minimum(starts[key], lo) if key in starts else lo
            stops[key] = np.maximum(stops[key], hi) if key in stops else hi
    parts: list[dict[str, np.ndarray]] = []
    for key in sorted(starts):
        box = tuple(slice(int(lo), int(hi)) for lo, hi in zip(starts[key], stops[key]))
        crop = np.asarray(objects[box])
        release_pages(objects)
        crop_image = None
        if image is not None:
            index = list(box)
            if channel_axis is not None:
                index.insert(channel_axis % image.ndim, slice(None))
            crop_image = np.asarray(image[tuple(index)])
            release_pages(image)
        part = object_table(np.where(crop == key, crop, 0), crop_image, channel_axis=channel_axis, spacing=sp,
                            classes=classes, class_names=class_names)
        for i, axis in enumerate("zyx"[-nd:]):
            part[f"centroid_{axis}"] = part[f"centroid_{axis}"] + starts[key][i] * sp[i]
            part[f"bbox_{axis}_start"] = part[f"bbox_{axis}_start"] + starts[key][i]
            part[f"bbox_{axis}_stop"] = part[f"bbox_{axis}_stop"] + starts[key][i]
        parts.append(part)
    if not parts:  # no object: the same columns, empty
        channels = None if image is None else (1 if channel_axis is None else int(image.shape[channel_axis]))
        dummy = None if channels is None else np.zeros((1,) * nd + (channels,), np.float32)
        return object_table(np.zeros((1,) * nd, np.uint8), dummy, channel_axis=nd, spacing=sp, classes=classes,
                            class_names=class_names)
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def merge_tables(parts: Sequence[tuple[str, Mapping[str, np.ndarray]]]) -> dict[str, np.ndarray]:
    """One object table of several images: an ``image`` column (the image's name on each of
    its rows), then the columns of their :func:`object_table`.

    Raises
    ------
    UserInputError
        When the tables have different columns (e.g. images with other channel counts).
    """
    if not parts:
        return {"image": np.zeros(0, dtype=object)}
    columns = list(parts[0][1])
    for name, table in parts[1:]:
        if list(table) != columns:
            raise UserInputError(f"the object table of '{name}' has other columns than that of '{parts[0][0]}' "
                                 f"({', '.join(table)} vs {', '.join(columns)})")
    merged = {"image": np.concatenate([np.array([name] * len(table["id"]), dtype=object) for name, table in parts])}
    for key in columns:
        merged[key] = np.concatenate([np.asarray(table[key]) for _, table in parts])
    return merged


def _cell(value: Any) -> str:
    if isinstance(value, (float, np.floating)):
        return repr(float(value))
    return str(value)


def table_to_csv(table: Mapping[str, np.ndarray], extra: Mapping[str, str] | None = None) -> str:
    """CSV text of an :func:`object_table` (header row, one row per object); ``extra``
    columns (e.g. the image name) come first with the same value on every row."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    extra = dict(extra or {})
    writer.writerow([*extra, *table])
    n = len(next(iter(table.values()))) if table else 0
    for i in range(n):
        writer.writerow([*extra.values(), *(_cell(col[i]) for col in table.values())])
    return buf.getvalue()


def write_table_csv(path: str | os.PathLike[str], table: Mapping[str, np.ndarray],
                    extra: Mapping[str, str] | None = None) -> str:
    """Write :func:`table_to_csv` atomically (the previous file survives a failed write)."""
    return os.fspath(atomic_write_text(path, table_to_csv(table, extra)))
