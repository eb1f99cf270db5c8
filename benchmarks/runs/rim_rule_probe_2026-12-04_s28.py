"""Probe (session 28, issue 14 item 2): a rim rule "halfway in brightness", read against the truth
without training.

The background rule (``core.background._rule``) takes unpainted pixels up to a global threshold
``t``; between ``t`` and the objects lies a rim nobody labelled, and the network puts the edge
halfway across it in space (the halo). The forest puts it halfway in brightness. The rim rule
read here adds, next to what the rule inferred (``M``), the unpainted pixels darker than halfway
between the local background (the mean of ``M`` in an 11-px window of the plane) and the local
peak (the maximum in a 7-px window, ±1 slice), where that peak is object-like (at least the
object strokes' 5 % quantile) and the pixel is not (below it).

Prints, per cell (exclusive paintings, seed given): pixels the rule infers and how many of them
are truly object; pixels the rim adds and how many are object; the unpainted true background
within 3 px of an object that neither takes.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
import families as fam  # noqa: E402
import users  # noqa: E402

from segstudio.core import background as bgm  # noqa: E402


def rim(g: np.ndarray, m: np.ndarray, paint: np.ndarray, level: float, window: int = 11, peak: int = 7,
        share: float = 0.5) -> np.ndarray:
    """The rim rule (objects brighter than the background; ``g`` flipped by the caller)."""
    size = (1, window, window) if g.ndim == 3 else (window, window)
    mf = m.astype(np.float32)
    near = ndi.uniform_filter(mf, size)
    b = ndi.uniform_filter(np.where(m, g, 0).astype(np.float32), size) / np.maximum(near, 1e-6)
    psize = (3, peak, peak) if g.ndim == 3 else (peak, peak)
    p = ndi.maximum_filter(g, psize)
    cand = (paint == 0) & ~m & (near > 0.02) & (g <= b + share * (p - b)) & (p >= level) & (g < level)
    lab, _ = ndi.label(cand | m)
    keep = np.zeros(lab.max() + 1, bool)
    keep[np.unique(lab[m])] = True
    keep[0] = False
    return cand & keep[lab]


def probe(family: str, dims: int, habit: str, seed: int, **kw) -> str:
    sample = fam.make(family, dims, seed)
    p = users.paint(sample, habit, seed)
    paint = p.paintings
    g = bgm.smoothed_intensity(sample.image, None, paint.ndim)
    m = bgm._rule(paint, g, 1, bgm.DEFAULT_QUANTILES, bgm.towards_objects(False))
    truth_obj = p.truth != 1
    if m is None:
        return f"{family:8s} {dims}D {habit:8s} rule off"
    bg_paint = paint == 1
    obj_paint = (paint != 0) & ~bg_paint
    gg = -g if np.median(g[bg_paint]) > np.median(g[obj_paint]) else g
    level = float(np.quantile(gg[obj_paint], bgm.DEFAULT_QUANTILES[0]))
    r = rim(gg, m, paint, level, **kw)
    dist = ndi.distance_transform_edt(~truth_obj)
    opportunity = (paint == 0) & ~truth_obj & (dist <= 3) & ~m
    return (f"{family:8s} {dims}D {habit:8s} rule {m.sum():7d} ({(m & truth_obj).sum():5d} obj)  "
            f"rim {r.sum():6d} ({(r & truth_obj).sum():5d} obj)  "
            f"rim-zone bg left {opportunity.sum():6d} -> {(opportunity & ~r).sum():6d}")


if __name__ == "__main__":
    seed = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    share = float(sys.argv[2]) if len(sys.argv) > 2 else 0.5
    print(f"seed {seed}, share {share}")
    for family in ("nuclei", "cells", "dim", "vessels"):
        for dims in (2, 3):
            for habit in ("casual", "outline", "sloppy"):
                print(probe(family, dims, habit, seed, share=share), flush=True)
