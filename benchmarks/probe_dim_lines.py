"""Probe: split touching objects where the *image* dips between them (RESULTS.md, *Splitting
touching objects along the image's dim lines*: the merging recipe not kept; ``--seeds image``
with ``--depth -1`` is, up to details, what ships as ``InstanceOptions.declump="intensity"``:
measure that with ``rescore_instances.py --declump intensity``).

Distance seeds cannot split rods lying side by side (their union's distance ridge runs along
the contact) and leave several seeds along one rod's spine. Classical declumping
(CellProfiler's *intensity* method) reads the image instead. This probe measures one such
recipe on session 24's saved predictions, without training again:

1. seeds as the app makes them (:mod:`segstudio.core.instances`, distance seeds), or
   (``--seeds image``) the maxima of the smoothed image a peak distance apart, each rising
   ``--seed-dynamic`` × the contrast above its saddle;
2. flood the object pixels from those seeds by the smoothed image (brightest first), so the
   pieces meet along the image's valleys;
3. for each pair of touching pieces, the *depth* of the line between them: the dimmer
   piece's mean minus the line's mean, over the object/background contrast of the image;
   and the *neck*: the largest distance to the background on that line over the lower of the
   two pieces' largest distances;
4. merge the pairs whose depth is below ``t`` and neck at least ``r`` (no dip: one object);
   the objects are the merged pieces (``--flood image``) or the distance flooding from the
   merged seeds (``--flood distance``).

Only the predictions without a boundary class are scored (casual and corrections habits;
with a boundary class the app splits at the predicted boundary). Prints, per family and
dimension, the mean instance F1 at IoU 0.5 as the app makes objects now and for each
``(t, r)``, and in how many predictions it went up or down::

    python benchmarks/probe_dim_lines.py benchmarks/runs/predictions_nuclei_cells_seed{0,1,2}_2026-12-04_s24.npz
"""
from __future__ import annotations

import argparse
import itertools
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from skimage.feature import peak_local_max
from skimage.measure import label as label_regions
from skimage.segmentation import watershed

sys.path.insert(0, str(Path(__file__).resolve().parent))
import families as fam  # noqa: E402
import rescore_instances  # noqa: E402

import segstudio.core.instances as inst  # noqa: E402
from segstudio.core.metrics import instance_scores  # noqa: E402


def _pairs(pieces: np.ndarray, smooth: np.ndarray, dist: np.ndarray, flank: int) -> tuple[np.ndarray, ...]:
    """Touching pairs ``(i, j)`` of ``pieces`` (face neighbours across the line between them):
    the mean of ``smooth`` on that line, the largest ``dist`` on it, and the mean of ``smooth``
    ``flank`` pixels away from the line on the dimmer side (where both flanks are still the
    two pieces; NaN when never)."""
    n = int(pieces.max(initial=0))
    keys, values, depth, flanks, steps, has = [], [], [], [], [], []
    k = flank
    for axis in range(pieces.ndim):
        a, s, d = (np.moveaxis(x, axis, 0) for x in (pieces, smooth, dist))
        lo, hi = a[:-1], a[1:]
        m = (lo > 0) & (hi > 0) & (lo != hi)
        i, j = lo[m].astype(np.int64), hi[m].astype(np.int64)
        keys.append(np.minimum(i, j) * (n + 1) + np.maximum(i, j))
        values.append(0.5 * (s[:-1][m] + s[1:][m]))
        depth.append(np.minimum(d[:-1][m], d[1:][m]))
        # the flanks: k pixels before the line's first side and after its second
        pos = np.nonzero(m)
        before, after = pos[0] - k, pos[0] + 1 + k
        ok = (before >= 0) & (after < a.shape[0])
        fb = np.full(len(i), np.nan)
        fa = np.full(len(i), np.nan)
        rest = tuple(p[ok] for p in pos[1:])
        fb[ok] = np.where(a[(before[ok], *rest)] == i[ok], s[(before[ok], *rest)], np.nan)
        fa[ok] = np.where(a[(after[ok], *rest)] == j[ok], s[(after[ok], *rest)], np.nan)
        both = ~np.isnan(fb) & ~np.isnan(fa)
        flanks.append(np.where(both, np.fmin(fb, fa), 0.0))
        steps.append(np.where(both, np.abs(fb - fa), 0.0))
        has.append(both)
    key = np.concatenate(keys)
    if not len(key):
        return (np.zeros(0, np.int64),) * 6
    pairs, inverse = np.unique(key, return_inverse=True)
    line = np.bincount(inverse, np.concatenate(values)) / np.bincount(inverse)
    saddle = np.zeros(len(pairs))
    np.maximum.at(saddle, inverse, np.concatenate(depth))
    counted = np.bincount(inverse, np.concatenate(has).astype(float), len(pairs))
    side = np.bincount(inverse, np.concatenate(flanks), len(pairs)) / np.where(counted > 0, counted, np.nan)
    step = np.bincount(inverse, np.concatenate(steps), len(pairs)) / np.where(counted > 0, counted, np.nan)
    return pairs // (n + 1), pairs % (n + 1), line, saddle, side, step


def objects(pred: np.ndarray, image: np.ndarray, spacing: Sequence[float],
            settings: Sequence[tuple[float, float]], flood: str, reference: str = "mean",
            max_step: float = np.inf, seed_from: str = "distance", seed_dynamic: float = 0.1) -> list[np.ndarray]:
    """The probe's objects of an exclusive prediction (object class 2, no boundary class) for
    each ``(t, r)`` of ``settings``; the dip is measured from the pieces' means (``reference``
    ``"mean"``) or from the image a peak distance away on either side of the line
    (``"flank"``: the dimmer side's mean; the pieces' means where no flank pixel lies in
    the two pieces); pairs whose two sides differ by ``max_step`` of the contrast or more (a
    bright object beside a dim one) are not merged."""
    sp = tuple(float(s) for s in spacing)
    smooth = ndi.gaussian_filter(image.astype(np.float32), [min(sp) / s for s in sp])
    filled = inst._holes_as_objects(pred, (2,), None)
    mask = filled == 2
    dist, radii = inst._distances(filled, (2,), None, sp, 1)
    peak = inst._peak_distance(inst.InstanceOptions(), radii, sp)
    inside, outside = pred == 2, pred != 2
    contrast = abs(float(np.median(smooth[inside])) - float(np.median(smooth[outside]))) if outside.any() else 1.0
    if seed_from == "image":  # maxima of the image a peak distance apart, rising h above their saddle
        half = [max(1, int(round(peak / s))) for s in sp]
        coords = peak_local_max(np.where(mask, smooth, smooth.min()), footprint=np.ones([2 * h + 1 for h in half], bool),
                                labels=mask.astype(np.int32), exclude_border=False)
        peaks = np.zeros(mask.shape, bool)
        peaks[tuple(coords.T)] = True
        lifted = np.where(mask, smooth - smooth[mask].min() + 1e-3, 0.0)
        peaks = inst._significant(peaks, lifted, seed_dynamic * contrast)
        seeds = label_regions(peaks, background=0)
    else:
        seeds = label_regions(inst._distance_seeds(dist, filled, (2,), peak, sp), background=0)
    pieces = watershed(-smooth, seeds, mask=mask).astype(np.int64)
    n = int(pieces.max(initial=0))
    mean = np.bincount(pieces.ravel(), smooth.ravel(), n + 1) / np.maximum(np.bincount(pieces.ravel(), minlength=n + 1), 1)
    top = np.asarray(ndi.maximum(dist, pieces, np.arange(n + 1)))
    i, j, line, saddle, side, step = _pairs(pieces, smooth, dist, max(1, int(round(peak / min(sp)))))
    ref = np.minimum(mean[i], mean[j])
    if reference == "flank":  # where no flank pixel is the two pieces', their means
        ref = np.where(np.isnan(side), ref, side)
    dip = (ref - line) / max(contrast, 1e-6)
    neck = saddle / np.maximum(np.minimum(top[i], top[j]), 1e-6)
    out = []
    step = np.nan_to_num(np.abs(mean[i] - mean[j]) if reference == "mean" else step, nan=np.inf) / max(contrast, 1e-6)
    for t, r in settings:
        join = (dip < t) & (neck >= r) & (step < max_step)
        graph = coo_matrix((np.ones(int(join.sum())), (i[join], j[join])), shape=(n + 1, n + 1))
        _, root = connected_components(graph, directed=False)
        root = root.astype(np.int64) + 1
        root[0] = 0
        o = root[pieces] if flood == "image" else watershed(-dist, root[seeds] * (seeds > 0), mask=mask)
        out.append(np.where(inside, o, 0))
    return out


def main(argv: Sequence[str] | None = None) -> None:
    """Command-line entry point."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("sources", nargs="+", type=Path, help="quality.py --predictions folders or .npz files")
    p.add_argument("--depth", nargs="+", type=float, default=[0.0, 0.05, 0.1], help="t: merge below this dip")
    p.add_argument("--neck", nargs="+", type=float, default=[0.0, 0.85], help="r: merge from this neck up")
    p.add_argument("--flood", nargs="+", default=["image", "distance"], choices=["image", "distance"])
    p.add_argument("--step", type=float, default=float("inf"),
                   help="merge only where the two sides differ by less than this fraction of the contrast")
    p.add_argument("--seeds", default="distance", choices=["distance", "image"],
                   help="seeds: the app's distance seeds, or the image's maxima (--seed-dynamic × contrast)")
    p.add_argument("--seed-dynamic", type=float, default=0.1)
    p.add_argument("--reference", default="mean", choices=["mean", "flank"],
                   help="the dip from the pieces' means, or from the image a peak distance either side")
    args = p.parse_args(argv)
    settings = list(itertools.product(args.depth, args.neck))
    scores: dict[tuple[str, int, str], list[list[float]]] = {}
    for source in args.sources:
        for path, load in rescore_instances._predictions(source):
            m = rescore_instances.NAME.match(path.name)
            if m is None or m["method"] != "segstudio" or m["habit"] not in ("casual", "corrections"):
                continue
            dims, seed = int(m["dims"]), int(m["seed"])
            sample = fam.make(m["family"], dims, seed)
            if sample.kind != fam.OBJECTS:
                continue
            pred = load()
            sp = sample.spacing or (1.0,) * dims
            now = instance_scores(inst.instances_from_labels(pred, inst.InstanceOptions(object_classes=(2,)), sp).labels,
                                  sample.instances).f1
            for flood in args.flood:
                row = [now] + [instance_scores(o, sample.instances).f1
                               for o in objects(pred, sample.image, sp, settings, flood, args.reference, args.step,
                                                                 args.seeds, args.seed_dynamic)]
                scores.setdefault((m["family"], dims, flood), []).append(row)
            print(f"{path.stem}: F1 now {now:.3f}", file=sys.stderr, flush=True)
    print("| family | dims | flood | t | neck ≥ | mean F1 now | mean F1 merged | up | down | of |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for (family, dims, flood), rows in sorted(scores.items()):
        a = np.asarray(rows)
        for c, (t, r) in enumerate(settings, start=1):
            d = a[:, c] - a[:, 0]
            print(f"| {family} | {dims}D | {flood} | {t} | {r} | {a[:, 0].mean():.3f} | {a[:, c].mean():.3f} | "
                  f"{int(np.sum(d > 0.005))} | {int(np.sum(d < -0.005))} | {len(d)} |")


if __name__ == "__main__":
    main()
