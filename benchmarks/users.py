"""Simulated users: how people paint, written apart from anything segstudio infers.

Four habits, each drawn with parameters that vary per seed (how many objects, brush widths,
stroke lengths, how close to edges, how exact):

``outline``
    Careful: the traced outline of a few objects (a closed, hand-jittered loop along the
    object's contour, sometimes a pixel inside or outside it) plus a stroke through the inside;
    background scribbles mostly away from objects. Curvilinear images: long strokes along the
    middle of some structures. Regions: loops just inside some regions' borders.
``casual``
    Quick: two classes only (background, object); one short stroke inside each of some
    objects, a few background scribbles, no outlines. Regions keep their classes.
``sloppy``
    Strokes that cross edges by 1-3 px (object strokes overshooting into the background,
    background strokes dipping into objects, a fat brush on thin structures), outlines traced
    only part of the way round and off by a pixel or two.
``corrections``
    Starts as ``casual``, then rounds of short strokes into the largest wrong regions of the
    current prediction (:func:`correct`).

A volume is painted the way people paint one: in single z slices.

The class set depends on the habit (``casual`` and ``corrections`` collapse objects to one
class), so each painting carries the truth mapped to its own classes. :func:`to_multilabel`
gives the same content as multi-label paintings (``0`` unpainted, ``1`` present, ``2`` absent
per channel) with per-channel truth.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage as ndi
from skimage.measure import find_contours
from skimage.morphology import skeletonize

from families import CURVILINEAR, OBJECTS, REGIONS, FamilySample

HABITS: tuple[str, ...] = ("outline", "casual", "sloppy", "corrections")


@dataclass(frozen=True, eq=False)
class Painting:
    """A simulated user's paintings in exclusive form.

    Attributes
    ----------
    paintings
        uint8, 0 = unpainted, ``1..K`` the class the user meant (not always the truth there).
    truth
        uint8 truth in the same class set, ``1..K``.
    class_names
        The ``K`` class names (class 1 is the background).
    habit
        The habit's name.
    params
        The drawn habit parameters (for the record).
    """

    paintings: np.ndarray
    truth: np.ndarray
    class_names: tuple[str, ...]
    habit: str
    params: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------
# class sets
# --------------------------------------------------------------------------------------------


def _class_set(sample: FamilySample, habit: str) -> tuple[np.ndarray, tuple[str, ...]]:
    """Truth and class names for ``habit`` (objects collapse to two classes when casual)."""
    if sample.kind == OBJECTS and habit in ("casual", "corrections"):
        return np.where(sample.truth > 1, 2, 1).astype(np.uint8), sample.class_names[:2]
    return sample.truth, sample.class_names


def multilabel_channels(painting: Painting, kind: str) -> tuple[tuple[str, ...], list[tuple[int, ...]]]:
    """Channel names and, per channel, the exclusive classes that mean *present*."""
    names = painting.class_names
    if kind == OBJECTS and len(names) == 3:  # object (interior or boundary) + boundary
        return (names[1], names[2]), [(2, 3), (3,)]
    if kind == REGIONS:
        return tuple(names[1:]), [(k,) for k in range(2, len(names) + 1)]
    return (names[1],), [tuple(range(2, len(names) + 1))]


def to_multilabel(painting: Painting, kind: str) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """The same content as multi-label paintings: ``(C, *spatial)`` 0/1/2, truth ``(C, *spatial)`` bool."""
    names, present = multilabel_channels(painting, kind)
    p = painting.paintings
    chans = np.zeros((len(names), *p.shape), np.uint8)
    truth = np.zeros((len(names), *p.shape), bool)
    for c, classes in enumerate(present):
        yes = np.isin(p, classes)
        chans[c][p > 0] = 2
        chans[c][yes] = 1
        truth[c] = np.isin(painting.truth, classes)
    return chans, truth, names


# --------------------------------------------------------------------------------------------
# drawing helpers (2D planes)
# --------------------------------------------------------------------------------------------


def _disk(width: float) -> np.ndarray:
    r = max(float(width) - 1.0, 0.0) / 2.0
    ri = int(np.ceil(r))
    yy, xx = np.ogrid[-ri : ri + 1, -ri : ri + 1]
    return (yy * yy + xx * xx) <= r * r + 0.5


def _draw(points: np.ndarray, shape: tuple[int, int], width: float) -> np.ndarray:
    """Pixels of a polyline (dense points, any spacing) drawn with a round brush."""
    mask = np.zeros(shape, bool)
    if len(points) == 0:
        return mask
    # densify so that consecutive points are at most half a pixel apart
    pts = [points[0]]
    for a, b in zip(points[:-1], points[1:]):
        n = int(np.ceil(np.linalg.norm(b - a) * 2))
        if n > 0:
            pts.extend(a + (b - a) * t for t in np.linspace(0, 1, n + 1)[1:])
    q = np.round(np.asarray(pts)).astype(int)
    q = q[np.all((q >= 0) & (q < np.asarray(shape)), axis=1)]
    mask[q[:, 0], q[:, 1]] = True
    if width > 1:
        mask = ndi.binary_dilation(mask, structure=_disk(width))
    return mask


def _jitter(rng: np.random.Generator, n: int, amplitude: float, smooth: float = 4.0) -> np.ndarray:
    """Smooth hand tremor: ``(n,)`` offsets in pixels."""
    if n == 0 or amplitude <= 0:
        return np.zeros(n)
    w = ndi.gaussian_filter1d(rng.standard_normal(n + 8), smooth, mode="wrap")[:n]
    return amplitude * w / max(float(np.abs(w).max()), 1e-6)


def _walk(rng: np.random.Generator, allowed: np.ndarray, length: int, turn: float = 0.2) -> np.ndarray:
    """A smooth scribble of ``length`` unit steps that stays inside ``allowed`` (2D)."""
    starts = np.flatnonzero(allowed)
    if starts.size == 0:
        return np.zeros((0, 2))
    pos = np.array(np.unravel_index(int(rng.choice(starts)), allowed.shape), float)
    angle = rng.uniform(0, 2 * np.pi)
    pts = [pos.copy()]
    for _ in range(length):
        for attempt in range(10):
            angle += rng.normal(0.0, turn if attempt == 0 else np.pi / 2)
            nxt = pos + (np.sin(angle), np.cos(angle))
            j = np.round(nxt).astype(int)
            if np.all(j >= 0) and np.all(j < allowed.shape) and allowed[j[0], j[1]]:
                break
        else:
            break
        pos = nxt
        pts.append(pos.copy())
    return np.asarray(pts)


def _contour(mask: np.ndarray) -> np.ndarray:
    """The longest contour of a 2D mask (closed polyline, ``(n, 2)``)."""
    cs = find_contours(np.pad(mask, 1).astype(float), 0.5)
    if not cs:
        return np.zeros((0, 2))
    return max(cs, key=len) - 1.0


def _offset(contour: np.ndarray, mask: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """Move contour points along the normal: ``offset > 0`` outward, ``< 0`` inward (pixels)."""
    if len(contour) < 3:
        return contour
    tangent = np.gradient(contour, axis=0)
    normal = np.stack([tangent[:, 1], -tangent[:, 0]], 1)
    normal /= np.maximum(np.linalg.norm(normal, axis=1, keepdims=True), 1e-6)
    # orient normals outward: a step along them should leave the mask
    probe = np.round(contour + 1.5 * normal).astype(int)
    probe = np.clip(probe, 0, np.asarray(mask.shape) - 1)
    if mask[probe[:, 0], probe[:, 1]].mean() > 0.5:
        normal = -normal
    return contour + offset[:, None] * normal


def _chord(rng: np.random.Generator, mask: np.ndarray, fraction: float, overshoot: float = 0.0) -> np.ndarray:
    """A straight stroke through the deepest point of ``mask``: ``fraction`` of the chord,
    extended by ``overshoot`` px beyond the edge on both ends when > 0."""
    dist = ndi.distance_transform_edt(mask)
    c = np.array(np.unravel_index(int(np.argmax(dist)), mask.shape), float)
    c += rng.normal(0, 0.25 * dist.max(), 2)
    c = np.clip(c, 0, np.asarray(mask.shape) - 1)
    angle = rng.uniform(0, np.pi)
    d = np.array([np.sin(angle), np.cos(angle)])
    reach = []
    for sign in (1, -1):
        t = 0.0
        while True:
            j = np.round(c + sign * (t + 0.5) * d).astype(int)
            if np.any(j < 0) or np.any(j >= mask.shape) or not mask[j[0], j[1]]:
                break
            t += 0.5
        reach.append(t)
    lo, hi = -reach[1], reach[0]
    mid, half = (lo + hi) / 2, (hi - lo) * fraction / 2
    if overshoot > 0:
        lo, hi = lo - overshoot, hi + overshoot
    else:
        lo, hi = mid - half, mid + half
    return c + np.arange(lo, hi + 0.25, 0.5)[:, None] * d


def _planes(arr: np.ndarray) -> np.ndarray:
    return arr[None] if arr.ndim == 2 else arr


def _pick_plane(rng: np.random.Generator, inst3: np.ndarray, obj: int, spread: bool = True) -> list[int]:
    """z slices in which a user paints object ``obj`` (where it is large)."""
    area = (inst3 == obj).reshape(inst3.shape[0], -1).sum(1)
    zs = np.flatnonzero(area >= max(area.max() * 0.5, 1))
    return [int(z) for z in zs]


def _paint(plane: np.ndarray, mask: np.ndarray, value: int, over: bool = False) -> None:
    """Paint ``value`` where ``mask``; later strokes do not erase earlier ones unless ``over``."""
    plane[mask & ((plane == 0) | over)] = value


# --------------------------------------------------------------------------------------------
# habits
# --------------------------------------------------------------------------------------------


def _background_scribbles(rng: np.random.Generator, paint3: np.ndarray, fg3: np.ndarray, n: int,
                          length: tuple[int, int], width: tuple[float, float], margin: tuple[float, float],
                          bg_value: int = 1, exact: bool = True) -> None:
    """``n`` scribbles at a distance drawn from ``margin`` (px; negative: into objects) of the
    foreground ``fg3``; ``exact``: restricted to true background pixels."""
    dist_cache: dict[int, np.ndarray] = {}
    for _ in range(n):
        z = int(rng.integers(paint3.shape[0]))
        if z not in dist_cache:
            dist_cache[z] = ndi.distance_transform_edt(~fg3[z]) - ndi.distance_transform_edt(fg3[z])
        m = rng.uniform(*margin)
        allowed = dist_cache[z] >= m
        walk = _walk(rng, allowed, int(rng.integers(*length)))
        stroke = _draw(walk, allowed.shape, rng.uniform(*width))
        if exact:
            stroke &= ~fg3[z]
        _paint(paint3[z], stroke, bg_value)


def _objects_outline(rng: np.random.Generator, s: FamilySample, truth: np.ndarray, sloppy: bool) -> tuple[np.ndarray, dict]:
    inst3 = _planes(s.instances)
    paint = np.zeros(truth.shape, np.uint8)
    p3 = _planes(paint)
    ids = np.unique(inst3[inst3 > 0])
    sizes = ndi.sum_labels(np.ones(inst3.shape), inst3, ids)
    big = ids[sizes >= np.percentile(sizes, 25)] if ids.size else ids
    params = {
        "objects": int(rng.integers(5, 11) if truth.ndim == 2 else rng.integers(4, 8)),
        "outline_width": float(rng.choice([1, 1, 2])) if not sloppy else 2.0,
        "outline_offset": float(rng.uniform(-1.2, -0.4)) if not sloppy else float(rng.uniform(-1.5, 1.0)),
        "arc": 1.0 if not sloppy else float(rng.uniform(0.3, 0.7)),
        "interior_width": float(rng.uniform(1, 3)) if not sloppy else float(rng.uniform(2, 4)),
        "interior_fraction": float(rng.uniform(0.4, 0.8)),
        "overshoot": 0.0 if not sloppy else float(rng.uniform(1, 3)),
        "background": int(rng.integers(8, 17)),
        "bg_margin": (2.0, 8.0) if not sloppy else (-2.0, 4.0),
    }
    chosen = rng.choice(big, size=min(params["objects"], big.size), replace=False) if big.size else []
    for obj in chosen:
        zs = _pick_plane(rng, inst3, obj)
        k = 1 if truth.ndim == 2 else min(len(zs), int(rng.integers(1, 4)))
        for z in sorted(rng.choice(zs, size=k, replace=False)):
            mask = inst3[z] == obj
            if mask.sum() < 12:
                continue
            c = _contour(mask)
            if len(c) < 8:
                continue
            if params["arc"] < 1.0:
                start = int(rng.integers(len(c)))
                c = np.roll(c, -start, axis=0)[: max(4, int(len(c) * params["arc"]))]
            off = params["outline_offset"] + _jitter(rng, len(c), 0.6 if not sloppy else 1.2)
            trace = _offset(c, mask, off)
            if params["arc"] >= 1.0:
                trace = np.vstack([trace, trace[:1]])
            _paint(p3[z], _draw(trace, mask.shape, params["outline_width"]), 3, over=True)
            chord = _chord(rng, mask, params["interior_fraction"], params["overshoot"])
            stroke = _draw(chord, mask.shape, params["interior_width"])
            if not sloppy:
                stroke &= ndi.binary_erosion(mask, iterations=1)
            _paint(p3[z], stroke, 2)
    _background_scribbles(rng, p3, inst3 > 0, params["background"], (15, 40), (1, 3) if not sloppy else (2, 4),
                          params["bg_margin"], exact=not sloppy)
    return paint, params


def _objects_casual(rng: np.random.Generator, s: FamilySample, truth: np.ndarray) -> tuple[np.ndarray, dict]:
    inst3 = _planes(s.instances)
    paint = np.zeros(truth.shape, np.uint8)
    p3 = _planes(paint)
    ids = np.unique(inst3[inst3 > 0])
    params = {
        "objects": int(rng.integers(6, 13) if truth.ndim == 2 else rng.integers(4, 9)),
        "length": (4, int(rng.integers(8, 15))),
        "width": float(rng.uniform(1, 3)),
        "background": int(rng.integers(6, 15)),
        "bg_margin": (float(rng.uniform(2, 5)), 10.0),
    }
    chosen = rng.choice(ids, size=min(params["objects"], ids.size), replace=False) if ids.size else []
    for obj in chosen:
        zs = _pick_plane(rng, inst3, obj)
        z = int(zs[len(zs) // 2 + int(rng.integers(-1, 2)) if len(zs) > 2 else 0])
        mask = inst3[z] == obj
        deep = ndi.distance_transform_edt(mask) >= 2
        if not deep.any():
            continue
        walk = _walk(rng, deep, int(rng.integers(*params["length"])), turn=0.05)
        _paint(p3[z], _draw(walk, mask.shape, params["width"]) & mask, 2)
    _background_scribbles(rng, p3, inst3 > 0, params["background"], (10, 30), (1, 3), params["bg_margin"])
    return paint, params


def _curvilinear(rng: np.random.Generator, s: FamilySample, truth: np.ndarray, habit: str) -> tuple[np.ndarray, dict]:
    fg3 = _planes(truth == 2)
    paint = np.zeros(truth.shape, np.uint8)
    p3 = _planes(paint)
    sloppy = habit == "sloppy"
    params = {
        "strokes": int(rng.integers(4, 9)),
        "length": (20, 60) if habit == "outline" else (8, 20) if habit in ("casual", "corrections") else (15, 45),
        "width": float(rng.choice([1, 2])) if not sloppy else -1.0,  # sloppy: wider than the structure
        "spill": float(rng.uniform(2, 6)) if sloppy else 0.0,
        "background": int(rng.integers(8, 17)),
        "bg_margin": (2.0, 8.0) if not sloppy else (0.0, 2.0),
    }
    zs_with = [z for z in range(fg3.shape[0]) if fg3[z].sum() > 30]
    for _ in range(params["strokes"]):
        if not zs_with:
            break
        z = int(rng.choice(zs_with))
        skel = skeletonize(fg3[z])
        walk = _walk(rng, skel | (ndi.distance_transform_edt(fg3[z]) >= 1.5), int(rng.integers(*params["length"])), turn=0.1)
        if sloppy:
            width = 2 * float(np.median(ndi.distance_transform_edt(fg3[z])[skel])) + params["spill"] if skel.any() else 4.0
            stroke = _draw(walk, skel.shape, width)
        else:
            stroke = _draw(walk, skel.shape, params["width"]) & fg3[z]
        _paint(p3[z], stroke, 2)
    _background_scribbles(rng, p3, fg3, params["background"], (15, 40), (1, 3), params["bg_margin"], exact=not sloppy)
    return paint, params


def _regions(rng: np.random.Generator, s: FamilySample, truth: np.ndarray, habit: str) -> tuple[np.ndarray, dict]:
    inst3 = _planes(s.instances)
    t3 = _planes(truth)
    paint = np.zeros(truth.shape, np.uint8)
    p3 = _planes(paint)
    params = {
        "regions_per_class": int(rng.integers(1, 4)),
        "width": float(rng.uniform(1, 4)),
        "inset": float(rng.uniform(3, 7)) if habit == "outline" else 0.0,
        "overshoot": float(rng.uniform(1, 3)) if habit == "sloppy" else 0.0,
        "length": (10, 25) if habit in ("casual", "corrections") else (30, 80),
    }
    for cls in range(1, int(truth.max()) + 1):
        ids = np.unique(inst3[t3 == cls])
        chosen = rng.choice(ids, size=min(params["regions_per_class"], ids.size), replace=False)
        for r in chosen:
            zs = _pick_plane(rng, inst3, r)
            z = int(rng.choice(zs))
            mask = inst3[z] == r
            if habit == "outline":
                inner = ndi.distance_transform_edt(mask) >= params["inset"]
                c = _contour(inner)
                if len(c) >= 8:
                    c = c[: max(8, int(len(c) * rng.uniform(0.5, 1.0)))]
                    _paint(p3[z], _draw(c, mask.shape, params["width"]) & mask, cls)
            if habit == "sloppy":
                # a stroke that starts inside and runs over the border by ``overshoot`` px
                grown = ndi.distance_transform_edt(~mask) <= params["overshoot"]
                walk = _walk(rng, grown, int(rng.integers(*params["length"])))
                _paint(p3[z], _draw(walk, mask.shape, params["width"]), cls)
            else:
                walk = _walk(rng, ndi.distance_transform_edt(mask) >= 2, int(rng.integers(*params["length"])))
                _paint(p3[z], _draw(walk, mask.shape, params["width"]) & mask, cls)
    return paint, params


def paint(sample: FamilySample, habit: str, seed: int) -> Painting:
    """Simulate a user with ``habit`` painting ``sample`` (parameters drawn from ``seed``)."""
    if habit not in HABITS:
        raise ValueError(f"unknown habit {habit!r}; expected one of {', '.join(HABITS)}")
    rng = np.random.default_rng([seed, HABITS.index(habit), 7])
    truth, names = _class_set(sample, habit)
    start = "casual" if habit == "corrections" else habit
    if sample.kind == OBJECTS:
        if start == "casual":
            p, params = _objects_casual(rng, sample, truth)
        else:
            p, params = _objects_outline(rng, sample, truth, sloppy=start == "sloppy")
    elif sample.kind == CURVILINEAR:
        p, params = _curvilinear(rng, sample, truth, start)
    else:
        p, params = _regions(rng, sample, truth, start)
    return Painting(p, truth, names, habit, params)


def correct(painting: Painting, prediction: np.ndarray, seed: int, round_: int) -> Painting:
    """One correction round: short strokes of the right class into the largest wrong regions.

    ``prediction`` holds classes ``1..K`` of the painting's class set. The user looks at the
    largest connected wrong regions (in the z slice where each is largest) and paints a short
    stroke of the class the region really is, inside it.
    """
    rng = np.random.default_rng([seed, round_, 11])
    n = int(rng.integers(6, 13))
    width = float(rng.uniform(2, 4))
    length = int(rng.integers(8, 26))
    truth = painting.truth
    out = painting.paintings.copy()
    t3, o3, pr3 = _planes(truth), _planes(out), _planes(np.asarray(prediction))
    wrong = (pr3 != t3) & (o3 == 0)
    # regions per z slice (users look at one slice at a time)
    comps = []
    for z in range(wrong.shape[0]):
        lab, k = ndi.label(wrong[z])
        if k:
            sizes = ndi.sum_labels(np.ones(lab.shape), lab, np.arange(1, k + 1))
            comps += [(float(sz), z, lab, i + 1) for i, sz in enumerate(sizes)]
    comps.sort(key=lambda c: -c[0])
    for _, z, lab, i in comps[:n]:
        region = lab == i
        dist = ndi.distance_transform_edt(region)
        c = np.unravel_index(int(np.argmax(dist)), region.shape)
        cls = int(t3[z][c])
        allowed = region & (t3[z] == cls)
        walk = _walk(rng, allowed, length, turn=0.3)
        _paint(o3[z], _draw(walk, region.shape, width) & allowed, cls)
    return Painting(out, truth, painting.class_names, painting.habit,
                    {**painting.params, f"round{round_}": {"strokes": n, "width": width, "length": length}})
