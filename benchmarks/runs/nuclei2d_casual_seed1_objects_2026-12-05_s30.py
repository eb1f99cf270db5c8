"""Why seed 1's casual painter of 2-D nuclei gets fewer objects right than the forest (session 30).

Predictions of `quality.py --families nuclei --dims 2 --habits casual --seeds 1` (both modes,
both methods; re-made to the digit, in `predictions_nuclei2d_casual_seed1_2026-12-05_s30.npz`):
per prediction the instance F1, the objects and connected components, truth objects split
(two objects with > 20 % of it each) and predicted objects merged; the small objects of the
multi-label prediction and which truth nucleus they lie in; the background rule on the same
painting inside those nuclei; the nuclei's brightness against the painted strokes'.

    python benchmarks/runs/nuclei2d_casual_seed1_objects_2026-12-05_s30.py > …_s30.txt
"""
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
import numpy as np  # noqa: E402
from scipy import ndimage as ndi  # noqa: E402

import families as fam  # noqa: E402
import users  # noqa: E402
import segstudio.core.background as B  # noqa: E402
from segstudio.core.implied import implied_labels  # noqa: E402
from segstudio.core.instances import InstanceOptions, instances_from_labels  # noqa: E402
from segstudio.core.metrics import instance_scores  # noqa: E402

s = fam.make("nuclei", 2, 1)
p = users.paint(s, "casual", 1)
ti = s.instances
saved = np.load(HERE / "predictions_nuclei2d_casual_seed1_2026-12-05_s30.npz")
options = InstanceOptions(object_classes=(2,), boundary_class=None)
print("truth nuclei", int(ti.max()))
objects = {}
for mode in ("exclusive", "multilabel"):
    for meth in ("segstudio", "rf"):
        pred = saved[f"nuclei_2d_casual_{mode}_s1_{meth}_final"]
        o = instances_from_labels(pred, options, s.spacing).labels
        objects[mode, meth] = o
        k = ndi.label(pred == 2)[1]
        split = sum(sum(1 for i, c in zip(*np.unique(o[ti == t], return_counts=True)) if i and c > 0.2 * (ti == t).sum()) > 1
                    for t in range(1, ti.max() + 1))
        merged = sum(sum(1 for i, c in zip(*np.unique(ti[o == q], return_counts=True)) if i and c > 0.2 * (o == q).sum()) > 1
                     for q in range(1, o.max() + 1))
        print(f"{mode} {meth}: F1 {instance_scores(o, ti).f1:.2f}, objects {o.max()}, components {k}, "
              f"truth split {split}, predicted merged {merged}")
o = objects["multilabel", "segstudio"]
sizes = np.bincount(o.ravel())
print("\nmulti-label segstudio, objects under 150 px: size, truth nucleus it lies in (its size)")
for q in range(1, o.max() + 1):
    if sizes[q] < 150:
        ids, cnt = np.unique(ti[o == q], return_counts=True)
        inside = {int(i): int(np.sum(ti == i)) for i in ids if i}
        print(f"object {q}: {sizes[q]} px, in {inside}, share inside the truth {cnt[ids > 0].sum() / sizes[q]:.2f}")
g = B.smoothed_intensity(s.image, None, 2)
lab = implied_labels(p.paintings, s.image, "exclusive", outlines=True, background=True)["background"]
print("\nbackground rule (exclusive painting; the multi-label one infers the same):", int((lab == 1).sum()),
      "px, of them in a nucleus", int(((lab == 1) & (ti > 0)).sum()))
print("object strokes' 5 % quantile", round(float(np.quantile(g[p.paintings > 1], 0.05)), 1),
      "; background strokes' 90 %", round(float(np.quantile(g[p.paintings == 1], 0.9)), 1),
      "; median nucleus", round(float(np.median([np.median(g[ti == t]) for t in range(1, ti.max() + 1)])), 1))
for t in (1, 10, 13):
    print(f"nucleus {t}: {int(np.sum(ti == t))} px, median {np.median(g[ti == t]):.0f}, painted "
          f"{int(((p.paintings > 1) & (ti == t)).sum())} px, rule's background in it {int(((lab == 1) & (ti == t)).sum())} px, "
          f"segstudio multi-label / exclusive cover {np.mean(objects['multilabel', 'segstudio'][ti == t] > 0):.2f} / "
          f"{np.mean(objects['exclusive', 'segstudio'][ti == t] > 0):.2f}, the forest {np.mean(objects['multilabel', 'rf'][ti == t] > 0):.2f}")
