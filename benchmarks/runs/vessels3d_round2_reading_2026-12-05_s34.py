"""Why round 2 lowers the 3-D vessels' precision on seed 1 (session 34).

The corrections cell of vessels 3D, exclusive, seed 1, trained as ``quality.py`` trains it
(185 steps a phase, one thread): per phase the foreground Dice and precision, the false
positives by their distance to the true vessels, the painted pixels per class, and what the
background rule infers on each painting (and how much of it is vessel).

    python benchmarks/runs/vessels3d_round2_reading_2026-12-05_s34.py 1 > …_s34.txt  (seed 1; then 2, appended)
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
from segstudio.core.implied import implied_labels  # noqa: E402

FAMILY, SEED, STEPS = "vessels", int(sys.argv[1]) if len(sys.argv) > 1 else 1, 370
torch.set_num_threads(1)
sample = fam.make(FAMILY, 3, SEED)
p0 = users.paint(sample, "corrections", SEED)
truth = p0.truth > 1
dist = ndi.distance_transform_edt(~truth, sampling=sample.spacing)
print(f"vessels 3D seed {SEED}: shape {sample.image.shape}, spacing {sample.spacing}, truth {int(truth.sum())} voxels")

session = q.Session(sample, p0.paintings, "exclusive", len(p0.class_names), SEED, {}, steps=3 * (STEPS // 2))
print(f"wide {session.wide} textures {session.textures} level {session.level}")
p = p0
preds = []
print("phase | steps | Dice | precision | false pos. | ≤1 µm | 1–3 µm | >3 µm | false neg. | painted vessel / background | rule infers | of it vessel")
for r in range(3):
    session.train(steps=STEPS // 2)
    pred = session.predict()
    preds.append(pred)
    sc = q.score(pred, p, sample)
    fp, fn = (pred > 1) & ~truth, (pred <= 1) & truth
    imp = implied_labels(p.paintings, sample.image, "exclusive", outlines=True, background=True,
                         textures=session.textures).get("background")
    inf = np.zeros(truth.shape, bool) if imp is None else imp == 1
    print(f"{['first', 'round1', 'round2'][r]} | {session.iteration} | {sc['vessel']:.3f} | {sc['precision']:.3f} | "
          f"{int(fp.sum())} | {int((fp & (dist <= 1)).sum())} | {int((fp & (dist > 1) & (dist <= 3)).sum())} | "
          f"{int((fp & (dist > 3)).sum())} | {int(fn.sum())} | {int((p.paintings > 1).sum())} / {int((p.paintings == 1).sum())} | "
          f"{int(inf.sum())} | {int((inf & truth).sum())}")
    if r < 2:
        new = users.correct(p, pred, SEED, r + 1)
        added = (new.paintings > 0) & (p.paintings == 0)
        print(f"  round {r + 1} adds {int((added & (new.paintings > 1)).sum())} vessel, "
              f"{int((added & (new.paintings == 1)).sum())} background voxels; "
              f"of the vessel ones {int((added & (new.paintings > 1) & ~truth).sum())} outside the truth")
        p = new
        session.paint(p.paintings)
session.close()
# where round 2's new false positives are, against round 1's
fp1, fp2 = (preds[1] > 1) & ~truth, (preds[2] > 1) & ~truth
newfp = fp2 & ~fp1
lab, n = ndi.label(newfp)
sizes = np.bincount(lab.ravel())[1:]
print(f"round 2's new false positives: {int(newfp.sum())} voxels in {n} pieces, largest {sorted(sizes)[-5:]}")
g = sample.image.astype(float)
print(f"image: vessels median {np.median(g[truth]):.0f}, background median {np.median(g[~truth & (dist > 3)]):.0f}, "
      f"new false positives median {np.median(g[newfp]) if newfp.any() else float('nan'):.0f}")
