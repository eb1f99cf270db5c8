"""Analysis behind benchmarks/RESULTS.md, *Object corrections switched the background rule off*
(2026-12-02): for every family, 2D and 3D, each habit and seeds 0-2 (the corrections habit with
the random forest's corrections standing in for the network's, three rounds), the background
rule's inferred pixels before the change (``rule_old``, the tails test) and now (``cur``):
``count/fraction of them that is not background``. Output: ``..._inferred.log`` beside it.

Run from the repository root: ``python benchmarks/runs/background_bulk_2026-12-02_inferred.py``.
"""
import sys
sys.path.insert(0, "benchmarks"); sys.path.insert(0, ".")
import numpy as np
from scipy import ndimage as ndi  # noqa: F401 (used by the copied helper)
import families as fam, users, quality as q
from segstudio.core import background as B
from segstudio.core.annotations import UNPAINTED

CUR = B._rule


def rule_old(paint, g, background, quantiles, robust=True):
    """The rule as committed before this session (tails test, on/off)."""
    bg_paint = paint == background
    bg = g[bg_paint]
    other = g[(paint != UNPAINTED) & (paint != background)]
    if bg.size < B.MIN_PIXELS or other.size < B.MIN_PIXELS:
        return None
    lo, hi = quantiles
    dark = bool(np.median(bg) <= np.median(other))
    level = np.quantile(other, lo if dark else 1.0 - lo)
    bg = g[bg_paint & ~B.object_like_strokes(paint, g, background, level, dark)]
    if bg.size < B.MIN_PIXELS:
        return None
    if dark:
        t = np.quantile(bg, hi)
        if level <= t:
            return None
        like = g <= t
    else:
        t = np.quantile(bg, 1.0 - hi)
        if level >= t:
            return None
        like = g >= t
    return (paint == UNPAINTED) & B.reachable(B.patches_only(like), bg_paint, B.MIN_REGION)


def _like_strokes(paint, g, cls_mask, level, beyond):
    st, n = ndi.label(cls_mask)
    if n == 0:
        return np.zeros(paint.shape, bool)
    med = np.asarray(ndi.median(g, st, np.arange(1, n + 1)))
    return np.concatenate([[False], beyond(med, level)])[st]


VARIANTS = {"base": rule_old, "cur": CUR}


class V:
    @staticmethod
    def use(name):
        B._rule = VARIANTS[name]


fams = sys.argv[1].split(",") if len(sys.argv) > 1 else ["nuclei", "cells", "dim", "vessels", "tissue"]
for family in fams:
    for dims in (2, 3):
        for habit in ("outline", "casual", "sloppy", "corrections"):
            for seed in (0, 1, 2):
                s = fam.make(family, dims, seed); p = users.paint(s, habit, seed)
                for r in range(3 if habit == "corrections" else 1):
                    out = []
                    for v in ("base", "cur"):
                        V.use(v)
                        inf = B.infer_background(p.paintings, s.image) > 0
                        out.append(f"{v}={int(inf.sum())}/{float((s.truth[inf] != 1).mean()) if inf.any() else 0:.3f}")
                    print(family, dims, habit, seed, r, " ".join(out), flush=True)
                    if habit == "corrections" and r < 2:
                        V.use("base")
                        p = users.correct(p, q.rf_predict(s.image, p.paintings, "exclusive"), seed, r + 1)
