"""Why the first correction round lowers the 3-D nuclei's precision (session 29).

The corrections cell of nuclei 3D, exclusive, seed 0, trained as ``quality.py`` trains it
(fixed steps 185 a phase, one thread): per phase the foreground Dice and precision, the false
positives split by where they lie (in the plane ring of an object, or only above/below it in
z), then the background rule on the painting before and after round 1, and after round 1 with
the objects' low quantile (``level``) of the painting before it.

    python benchmarks/runs/corrections_round1_halo_2026-12-05_s29.py > …_s29.txt
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import numpy as np  # noqa: E402
import torch  # noqa: E402
from scipy import ndimage as ndi  # noqa: E402

import families as fam  # noqa: E402
import quality as q  # noqa: E402
import users  # noqa: E402
import segstudio.core.background as B  # noqa: E402

FAMILY, SEED, STEPS = "nuclei", 0, 370
torch.set_num_threads(1)
sample = fam.make(FAMILY, 3, SEED)
p0 = users.paint(sample, "corrections", SEED)
truth = p0.truth > 1
ring = ndi.binary_dilation(truth, structure=np.pad(np.ones((1, 3, 3), bool), ((1, 1), (0, 0), (0, 0))))
above = ndi.binary_dilation(truth, structure=np.pad(np.ones((3, 1, 1), bool), ((0, 0), (1, 1), (1, 1)))) & ~ring

session = q.Session(sample, p0.paintings, "exclusive", len(p0.class_names), SEED, {}, steps=3 * (STEPS // 2))
paintings = [p0]
p = p0
print("phase | steps | object Dice | precision | false pos. | in the plane ring | only above/below in z | false neg. | painted object / background px")
for r in range(3):
    session.train(steps=STEPS // 2)
    pred = session.predict()
    sc = q.score(pred, p, sample)
    fp, fn = (pred > 1) & ~truth, (pred <= 1) & truth
    print(f"{['first', 'round1', 'round2'][r]} | {session.iteration} | {sc['object']:.3f} | {sc['precision']:.3f} | "
          f"{int(fp.sum())} | {int((fp & ring).sum())} | {int((fp & above).sum())} | {int(fn.sum())} | "
          f"{int((p.paintings > 1).sum())} / {int((p.paintings == 1).sum())}")
    if r < 2:
        p = users.correct(p, pred, SEED, r + 1)
        session.paint(p.paintings)
        paintings.append(p)
session.close()

g = B.smoothed_intensity(sample.image, None, 3)
near = ndi.distance_transform_edt(~truth, sampling=sample.spacing)
band_of = lambda paint: (near > 0) & (near <= 2.0) & (paint == 0)  # noqa: E731


def rule(paint, level=None):
    """``core.background._rule`` (exclusive, dark background) with ``level`` optionally given."""
    bg_paint, obj = paint == 1, paint > 1
    level = np.quantile(g[obj], B.DEFAULT_QUANTILES[0]) if level is None else level
    bg = g[bg_paint & ~B.object_like_strokes(paint, g, 1, level, dark=True)]
    t = np.quantile(bg, B.DEFAULT_QUANTILES[1])
    t = t + B.TOWARDS_OBJECTS * (level - t) if t < level else min(np.quantile(bg, 1 - B.BULK), level)
    un = paint == 0
    inf = un & B.reachable(B.patches_only(g <= t), bg_paint, B.MIN_REGION)
    inf |= B.rim(g, inf, un, level, B.RIM_SHARE)
    return level, t, inf


print()
print("painting | objects' 5 % quantile (level) | threshold | inferred | of them object | unlabelled band ≤ 2 µm outside the objects labelled")
level0 = rule(paintings[0].paintings)[0]
for name, paint, lv in (("first", paintings[0].paintings, None), ("after round 1", paintings[1].paintings, None),
                        ("after round 1, the first's level", paintings[1].paintings, level0)):
    level, t, inf = rule(paint, lv)
    band = band_of(paint)
    print(f"{name} | {level:.0f} | {t:.0f} | {int(inf.sum())} | {int((inf & truth).sum())} | {int((inf & band).sum())} of {int(band.sum())}")
