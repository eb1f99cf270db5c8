"""Image families for the quality matrix: synthetic images with ground truth, 2D and 3D.

Each family stands for a kind of image our users bring, chosen so that a method tuned on round
nuclei cannot pass them all:

========  ==============  ==========================================================================
family    kind            what it is
========  ==============  ==========================================================================
nuclei    objects         round-ish fluorescent nuclei, some touching (the built-in sample)
cells     objects         elongated rod cells packed in colonies, touching along their sides, a dim
                          contact line between neighbours (bacteria, yeast, elongated cells)
dim       objects         irregular (amoeboid) touching objects at low signal-to-noise on a strongly
                          uneven background (the object contrast is less than the background ramp)
vessels   curvilinear     thin branching tubes 2-6 px wide (vessels, neurites), out-of-focus blobs as
                          distractors
tissue    regions         a tissue-like mosaic of two textures with the same mean intensity (granular,
                          fibrous) and empty background
========  ==============  ==========================================================================

Ground truth, per kind:

* ``objects``: 1 background, 2 interior, 3 boundary (the inner rim of each object, also where
  two objects touch), from instance labels (:func:`segstudio.core.samples.instances_to_truth`).
* ``curvilinear``: 1 background, 2 structure.
* ``regions``: 1 background, 2 granular, 3 fibrous.

Everything is built in physical units (3D volumes are anisotropic, spacing ``(2, 0.5, 0.5)``
by default), blurred by an (axially elongated) PSF and imaged by a camera model with shot and
read noise. This module knows nothing of how segstudio learns: it only makes images.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi
from skimage.segmentation import watershed

from segstudio.core.samples import instances_to_truth, synthetic_nuclei

SHAPE_2D: tuple[int, int] = (384, 384)
SHAPE_3D: tuple[int, int, int] = (32, 96, 96)
SPACING_3D: tuple[float, float, float] = (2.0, 0.5, 0.5)

OBJECTS, CURVILINEAR, REGIONS = "objects", "curvilinear", "regions"


@dataclass(frozen=True, eq=False)
class FamilySample:
    """One generated image with its truth.

    Attributes
    ----------
    image
        float32 intensities, ``(y, x)`` or ``(z, y, x)``.
    truth
        uint8 classes ``1..K`` (never 0), same shape.
    instances
        int32 object ids (0 = none): the objects of an ``objects`` image, the connected
        structures of a ``curvilinear`` one, every region (background regions included) of a
        ``regions`` one. Simulated users pick what to paint from these.
    class_names
        Names of the classes ``1..K``.
    kind
        ``"objects"``, ``"curvilinear"`` or ``"regions"``.
    family
        Family name.
    spacing
        Physical voxel size (``None`` in 2D).
    """

    image: np.ndarray
    truth: np.ndarray
    instances: np.ndarray
    class_names: tuple[str, ...]
    kind: str
    family: str
    spacing: tuple[float, ...] | None


# --------------------------------------------------------------------------------------------
# shared optics and camera
# --------------------------------------------------------------------------------------------


def _px_sigma(shape: Sequence[int], spacing: Sequence[float] | None) -> np.ndarray:
    """Pixels per 'pixel along the finest axis', per axis."""
    sp = np.ones(len(shape)) if spacing is None else np.asarray(spacing, float)
    return sp.min() / sp


def _smooth(rng: np.random.Generator, shape: Sequence[int], sigma: Sequence[float]) -> np.ndarray:
    """Gaussian-filtered white noise, zero mean, unit std."""
    n = ndi.gaussian_filter(rng.standard_normal(tuple(shape)).astype(np.float32), sigma, mode="wrap")
    return (n - n.mean()) / max(float(n.std()), 1e-6)


def _camera(
    rng: np.random.Generator,
    signal: np.ndarray,
    spacing: Sequence[float] | None,
    *,
    psf: float,
    peak: float,
    illumination: float,
    read_noise: float = 4.0,
    offset: float = 100.0,
) -> np.ndarray:
    """Blur (axial PSF 3x the lateral), uneven illumination (random ramp), shot + read noise."""
    shape = signal.shape
    blur = psf * _px_sigma(shape, spacing)
    if signal.ndim == 3:
        blur[0] *= 3.0
    s = ndi.gaussian_filter(signal.astype(np.float32), blur, mode="reflect")
    grids = np.ogrid[tuple(slice(0, n) for n in shape)]
    norm = [g / max(n - 1, 1) - 0.5 for g, n in zip(grids, shape)]
    d = rng.standard_normal(2)
    d /= np.linalg.norm(d)
    illum = 1.0 + illumination * (d[0] * norm[-2] + d[1] * norm[-1])
    photons = np.clip(peak * s * illum, 0.0, None)
    counts = offset + rng.poisson(photons) + rng.normal(0.0, read_noise, shape)
    return np.clip(counts, 0.0, None).astype(np.float32)


def _coords(shape: Sequence[int], spacing: Sequence[float] | None, box: tuple[slice, ...] | None = None) -> list[np.ndarray]:
    """Open (broadcastable) physical coordinate grids in 'finest pixel' units."""
    ps = 1.0 / _px_sigma(shape, spacing)
    box = box or tuple(slice(0, n) for n in shape)
    return [np.arange(b.start, b.stop, dtype=np.float32).reshape([-1 if i == a else 1 for i in range(len(shape))]) * ps[a]
            for a, b in enumerate(box)]


def _box(centre: np.ndarray, reach: float, shape: Sequence[int], spacing: Sequence[float] | None) -> tuple[slice, ...] | None:
    """Voxel box around a physical ``centre`` (finest-pixel units) of physical half-size ``reach``."""
    ps = 1.0 / _px_sigma(shape, spacing)
    lo = np.maximum(np.floor((centre - reach) / ps).astype(int), 0)
    hi = np.minimum(np.ceil((centre + reach) / ps).astype(int) + 1, shape)
    if np.any(hi <= lo):
        return None
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))


# --------------------------------------------------------------------------------------------
# families
# --------------------------------------------------------------------------------------------


def nuclei(shape: Sequence[int], seed: int, spacing: Sequence[float] | None = None) -> FamilySample:
    """Round-ish touching nuclei (segstudio's own generator, without its strokes)."""
    radius = (12.0, 20.0) if len(shape) == 2 else (10.0, 16.0)
    s = synthetic_nuclei(tuple(shape), seed=seed, spacing=spacing, radius_range=radius, paint=False)
    lab, _ = ndi.label(s.truth > 1)
    # split touching nuclei along the boundary class: grow interior components into the rim
    core, _ = ndi.label(s.truth == 2)
    inst = watershed(np.zeros(s.truth.shape, np.float32), core, mask=lab > 0).astype(np.int32)
    return FamilySample(s.image, s.truth, inst, ("background", "nucleus", "boundary"), OBJECTS, "nuclei",
                        s.spacing)


def cells(shape: Sequence[int], seed: int, spacing: Sequence[float] | None = None) -> FamilySample:
    """Rod-shaped cells in aligned colonies, touching along their sides."""
    rng = np.random.default_rng(seed)
    shape = tuple(int(n) for n in shape)
    nd = len(shape)
    extent = np.asarray(shape) / _px_sigma(shape, spacing)  # physical size, finest px
    area = float(np.prod(extent[-2:]))
    n_colonies = max(2, int(round(area / 16000)))
    best = np.full(shape, np.inf, np.float32)
    inst = np.zeros(shape, np.int32)
    bright = np.zeros(shape, np.float32)
    k = 0
    for _ in range(n_colonies):
        c0 = rng.uniform(0.15, 0.85, nd) * extent
        theta0 = rng.uniform(0, np.pi)
        for _ in range(int(rng.integers(5, 10))):
            theta = theta0 + rng.normal(0, 0.25)
            u = np.array([np.sin(theta), np.cos(theta)])
            length = rng.uniform(18, 40)
            radius = rng.uniform(5.0, 7.0)
            # side by side (across the colony axis) and end to end, touching
            off = rng.normal(0, 1, 2) * np.array([radius * 2.4, length * 0.6])
            centre2 = c0[-2:] + off[0] * np.array([u[1], -u[0]]) + off[1] * u
            centre = np.concatenate([[rng.uniform(0.3, 0.7) * extent[0]] if nd == 3 else [], centre2])
            reach = length / 2 + radius * 1.5
            box = _box(centre, reach if nd == 2 else max(reach, radius * 3.0), shape, spacing)
            if box is None:
                continue
            g = _coords(shape, spacing, box)
            a = centre2 - u * length / 2
            rel = [g[-2] - a[0], g[-1] - a[1]]
            t = np.clip(rel[0] * u[0] + rel[1] * u[1], 0, length)
            dy, dx = rel[0] - t * u[0], rel[1] - t * u[1]
            d2 = dy * dy + dx * dx
            if nd == 3:
                dz = (g[0] - centre[0]) / 2.5  # z: at least ~6 slices through a rod
                d2 = d2 + dz * dz
            sdf = np.sqrt(d2) / radius  # < 1 inside
            sub = best[box]
            if np.count_nonzero((sdf < 1) & (sub < 1)) > 0.35 * max(np.count_nonzero(sdf < 1), 1):
                continue  # too much overlap: skip
            k += 1
            win = (sdf < 1) & (sdf < sub)
            inst[box][win] = k
            bright[box][win] = float(np.exp(rng.normal(0, 0.25)))
            sub[win] = sdf[win]
    # a soft edge, a dim line where two cells touch
    profile = np.clip((1.0 - best) / 0.25, 0, 1)
    profile = profile * profile * (3 - 2 * profile)
    hi = ndi.maximum_filter(inst, size=3)
    lo = ndi.minimum_filter(np.where(inst > 0, inst, np.iinfo(np.int32).max), size=3)
    contact = (inst > 0) & ((hi != inst) | (lo != inst)) & (ndi.minimum_filter(inst, size=3) > 0)
    px = _px_sigma(shape, spacing)
    texture = 1.0 + 0.1 * _smooth(rng, shape, 1.5 * px)
    signal = bright * profile * texture * np.where(contact, 0.55, 1.0) + 0.08 * (1 + 0.3 * _smooth(rng, shape, 20 * px))
    image = _camera(rng, signal, spacing, psf=1.0, peak=900.0, illumination=0.3)
    truth = instances_to_truth(inst, 2, spacing)
    return FamilySample(image, truth, inst, ("background", "cell", "boundary"), OBJECTS, "cells",
                        None if spacing is None else tuple(map(float, spacing)))


def dim(shape: Sequence[int], seed: int, spacing: Sequence[float] | None = None) -> FamilySample:
    """Irregular touching objects at low signal-to-noise on a strongly uneven background."""
    rng = np.random.default_rng(seed)
    shape = tuple(int(n) for n in shape)
    px = _px_sigma(shape, spacing)
    field = _smooth(rng, shape, 7.0 * px)
    mask = field > 0.75
    # split touching blobs at the saddles of the field; drop tiny ones
    peaks = (field == ndi.maximum_filter(field, size=tuple(max(3, int(round(9 * p))) for p in px))) & mask
    markers, _ = ndi.label(peaks)
    inst = watershed(-field, markers, mask=mask).astype(np.int32)
    sizes = np.bincount(inst.ravel())
    small = np.flatnonzero(sizes < (60 if len(shape) == 2 else 120))
    inst[np.isin(inst, small[small > 0])] = 0
    inst, _, _ = _relabel(inst)
    obj = (inst > 0).astype(np.float32)
    profile = ndi.gaussian_filter(obj, 0.8 * px)
    texture = 1.0 + 0.15 * _smooth(rng, shape, 2.0 * px)
    bright = np.exp(rng.normal(0, 0.2, inst.max() + 1)).astype(np.float32)[inst]
    background = 0.5 + 0.35 * _smooth(rng, shape, 40.0 * px)  # uneven: larger than the contrast
    signal = background + 0.35 * bright * profile * texture
    image = _camera(rng, signal, spacing, psf=1.2, peak=60.0, illumination=0.8, read_noise=3.0)
    truth = instances_to_truth(inst, 2, spacing)
    return FamilySample(image, truth, inst, ("background", "object", "boundary"), OBJECTS, "dim",
                        None if spacing is None else tuple(map(float, spacing)))


def _relabel(inst: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from skimage.segmentation import relabel_sequential

    return relabel_sequential(inst)


def vessels(shape: Sequence[int], seed: int, spacing: Sequence[float] | None = None) -> FamilySample:
    """Thin branching tubes (1-3 px radius) with out-of-focus blobs as distractors."""
    rng = np.random.default_rng(seed)
    shape = tuple(int(n) for n in shape)
    nd = len(shape)
    extent = np.asarray(shape) / _px_sigma(shape, spacing)
    inside = np.full(shape, -np.inf, np.float32)  # max over points of (r - distance)
    bright_map = np.zeros(shape, np.float32)
    n_roots = max(4 if nd == 2 else 8, int(round(float(np.prod(extent[-2:])) / 20000)))
    stack = []
    for _ in range(n_roots):
        p = rng.uniform(0.05, 0.95, nd) * extent
        d = rng.standard_normal(nd)
        if nd == 3:
            d[0] *= 0.25  # mostly in-plane
        r0 = rng.uniform(1.6, 3.0) * (1.0 if nd == 2 else 1.6)  # 3D: thick enough to span z slices
        stack.append((p, d / np.linalg.norm(d), r0, int(rng.integers(150, 320)),
                      float(np.exp(rng.normal(0, 0.3)))))
    n_branches = 0
    while stack:
        p, d, r, steps, b = stack.pop()
        for _ in range(steps):
            turn = rng.normal(0, 0.12, nd)
            if nd == 3:
                turn[0] *= 0.3
            d = d + turn
            d /= np.linalg.norm(d)
            p = p + d
            if np.any(p < -5) or np.any(p > extent + 5):
                break
            r = float(np.clip(r + rng.normal(0, 0.03), 1.0, 3.2 if nd == 2 else 5.0))
            box = _box(p, r + 1.5, shape, spacing)
            if box is not None:
                g = _coords(shape, spacing, box)
                dist = np.sqrt(sum((gi - pi) ** 2 for gi, pi in zip(g, p)))
                val = r - dist
                sub = inside[box]
                better = val > sub
                sub[better] = val[better]
                bright_map[box][better] = b
            if n_branches < 12 and rng.random() < 0.012:
                n_branches += 1
                nd_ = d + rng.normal(0, 0.9, nd)
                if nd == 3:
                    nd_[0] *= 0.3
                stack.append((p.copy(), nd_ / np.linalg.norm(nd_), max(1.0, r * rng.uniform(0.6, 0.9)),
                              int(rng.integers(40, 140)), b * rng.uniform(0.7, 1.1)))
    vessel = inside > 0
    inst, _ = ndi.label(vessel)
    profile = np.clip(inside + 0.5, 0, 1.5) / 1.5
    px = _px_sigma(shape, spacing)
    blobs = np.clip(_smooth(rng, shape, 6.0 * px) - 1.6, 0, None) * 0.6  # out-of-focus distractors
    signal = bright_map * profile * (1 + 0.15 * _smooth(rng, shape, 2 * px)) + 0.12 + blobs
    image = _camera(rng, signal, spacing, psf=0.9, peak=500.0, illumination=0.5)
    truth = np.where(vessel, 2, 1).astype(np.uint8)
    return FamilySample(image, truth, inst.astype(np.int32), ("background", "vessel"), CURVILINEAR, "vessels",
                        None if spacing is None else tuple(map(float, spacing)))


def tissue(shape: Sequence[int], seed: int, spacing: Sequence[float] | None = None) -> FamilySample:
    """A mosaic of granular and fibrous tissue (same mean intensity) and empty background."""
    rng = np.random.default_rng(seed)
    shape = tuple(int(n) for n in shape)
    nd = len(shape)
    extent = np.asarray(shape) / _px_sigma(shape, spacing)
    n_regions = max(6, int(round(float(np.prod(extent[-2:])) / 9000)))
    seeds = rng.uniform(0, 1, (n_regions, nd)) * extent
    g = _coords(shape, spacing)
    px = _px_sigma(shape, spacing)
    wobble = 6.0 * _smooth(rng, shape, 10.0 * px)
    dist = np.stack([np.sqrt(sum((gi - si) ** 2 for gi, si in zip(g, s))) + wobble * rng.uniform(0.5, 1.5)
                     for s in seeds])
    region = np.argmin(dist, axis=0).astype(np.int32) + 1
    kinds = rng.choice([1, 2, 3], size=n_regions, p=[0.2, 0.4, 0.4])
    kinds[:3] = rng.permutation([1, 2, 3])  # every class present
    truth = kinds[region - 1].astype(np.uint8)
    granular = _smooth(rng, shape, 1.0 * px)
    signal = np.full(shape, 0.3, np.float32) + 0.05 * _smooth(rng, shape, 8 * px)
    signal[truth == 2] = (1.0 + 0.45 * granular)[truth == 2]
    for r in range(1, n_regions + 1):
        if kinds[r - 1] != 3:
            continue
        theta = rng.uniform(0, np.pi)
        # fibres: noise smoothed along a direction (rotate the grid, smooth anisotropically)
        fib = _fibres(rng, shape, px, theta)
        m = region == r
        signal[m] = (1.0 + 0.45 * fib)[m]
    image = _camera(rng, np.clip(signal, 0, None), spacing, psf=0.8, peak=400.0, illumination=0.4)
    return FamilySample(image, truth, region, ("background", "granular", "fibrous"), REGIONS, "tissue",
                        None if spacing is None else tuple(map(float, spacing)))


def _fibres(rng: np.random.Generator, shape: tuple[int, ...], px: np.ndarray, theta: float) -> np.ndarray:
    """Noise elongated along the in-plane direction ``theta`` (fibres), zero mean, unit std."""
    noise = rng.standard_normal(shape).astype(np.float32)
    # smooth along theta by averaging shifted copies, across it only a little
    out = np.zeros(shape, np.float32)
    u = np.array([np.sin(theta), np.cos(theta)])
    for t in np.linspace(-6, 6, 13):
        shift = [0.0] * (len(shape) - 2) + list(t * u)
        out += ndi.shift(noise, shift, order=1, mode="wrap")
    out = ndi.gaussian_filter(out, 0.7 * px)
    return (out - out.mean()) / max(float(out.std()), 1e-6)


FAMILIES: dict[str, Callable[..., FamilySample]] = {
    "nuclei": nuclei, "cells": cells, "dim": dim, "vessels": vessels, "tissue": tissue,
}


def make(family: str, dims: int, seed: int) -> FamilySample:
    """The matrix's image of ``family`` in ``dims`` (2 or 3) for ``seed``."""
    if dims == 2:
        return FAMILIES[family](SHAPE_2D, seed, None)
    return FAMILIES[family](SHAPE_3D, seed, SPACING_3D)
