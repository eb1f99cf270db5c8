"""Where a correction round 2 loses on tissue (session 33 reading).

Predictions from:  python benchmarks/quality.py --families tissue --dims 2 --habits corrections
                   --seeds 1 --steps 1400 370 --jobs 2 --threads 1 --predictions DIR
Then:              python benchmarks/runs/tissue_round2_reading_2026-12-05_s33.py tissue 2 1 DIR
Regenerates each round's strokes (users.correct on the saved predictions), prints the confusion
of each phase, the pixels round 2 made wrong, how far they lie from round 2's strokes, and the
connected components per class.
"""
import sys
import numpy as np
from scipy import ndimage as ndi
sys.path.insert(0, "benchmarks")
import families as fam, users

fam_, dims, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
d = sys.argv[4]
s = fam.make(fam_, dims, seed)
p0 = users.paint(s, "corrections", seed)
names = p0.class_names
for mode in ("exclusive", "multilabel"):
    pre = f"{d}/{fam_}_{dims}d_corrections_{mode}_s{seed}_segstudio_"
    first, r1, r2 = (np.load(pre + ph + ".npy") for ph in ("first", "round1", "round2"))
    p1 = users.correct(p0, first, seed, 1)
    p2 = users.correct(p1, r1, seed, 2)
    t = p0.truth
    print(f"== {mode}; classes {names}; truth shares", [round(float((t == k).mean()), 3) for k in range(1, len(names) + 1)])
    for name, a, b in (("round1 strokes", p0, p1), ("round2 strokes", p1, p2)):
        new = (b.paintings > 0) & (a.paintings == 0)
        print(f"  {name}: {new.sum()} px;", {names[k - 1]: int((b.paintings[new] == k).sum()) for k in range(1, len(names) + 1)})
    for ph, pr in (("first", first), ("round1", r1), ("round2", r2)):
        wrong = pr != t
        conf = {f"{names[a-1][:4]}->{names[b-1][:4]}": int(((t == a) & (pr == b)).sum())
                for a in range(1, len(names) + 1) for b in range(1, len(names) + 1) if a != b}
        print(f"  {ph}: wrong {wrong.sum()} ({wrong.mean():.3f})", conf)
    got_worse = (r1 == t) & (r2 != t)
    got_better = (r1 != t) & (r2 == t)
    print(f"  round1->round2: {got_worse.sum()} px got wrong, {got_better.sum()} got right")
    lab, k = ndi.label(got_worse)
    sizes = np.sort(ndi.sum_labels(np.ones(lab.shape), lab, np.arange(1, k + 1)))[::-1] if k else []
    print("  largest newly wrong regions:", [int(x) for x in sizes[:8]])
    # how far newly wrong pixels are from the round-2 strokes
    new2 = (p2.paintings > 0) & (p1.paintings == 0)
    dist = ndi.distance_transform_edt(~new2)
    if got_worse.any():
        dw = dist[got_worse]
        print("  newly wrong px: distance to round-2 strokes median", round(float(np.median(dw)), 1), "share within 10 px", round(float((dw <= 10).mean()), 3))
        for a in range(1, len(names) + 1):
            m = got_worse & (t == a)
            if m.any():
                print(f"    truth {names[a-1]}: {m.sum()} px, predicted", {names[b-1]: int((r2[m] == b).sum()) for b in range(1, len(names) + 1) if b != a})
for mode in ("exclusive", "multilabel"):
    pre = f"{d}/{fam_}_{dims}d_corrections_{mode}_s{seed}_segstudio_"
    for ph in ("first", "round1", "round2"):
        p = np.load(pre + ph + ".npy")
        out = []
        for k in range(1, len(names) + 1):
            lab, c = ndi.label(p == k)
            sizes = ndi.sum_labels(np.ones(lab.shape), lab, np.arange(1, c + 1)) if c else np.array([0])
            out.append(f"{names[k - 1]}: {c} components, {int((sizes < 50).sum())} under 50 px")
        print(mode, ph, "; ".join(out))
