"""Where the sloppy habit's false positives are (issue 14, item 2; session 21).

Part 1 (no training): per blob-family cell of seed 0, how much of each painted class lies on
the wrong side of the true object edge, for the outline and sloppy habits.
Part 2 (trains nuclei 2D and 3D sloppy, exclusive, seed 0, at the matrix's step counts): the
false-positive pixels of the object (interior ∪ boundary) by distance to the true objects and
by predicted class. Run from the repository root:

    PYTHONPATH=. python benchmarks/runs/sloppy_halo_2026-12-03_s21.py
"""
import sys
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage as ndi

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import families as fam  # noqa: E402
import quality  # noqa: E402
import users  # noqa: E402

for f in ("nuclei", "cells", "dim"):
    for d in (2, 3):
        for habit in ("outline", "sloppy"):
            s = fam.make(f, d, 0)
            p = users.paint(s, habit, 0)
            fg = s.truth >= 2
            out = []
            for c, name in enumerate(p.class_names[1:], start=2):
                m = p.paintings == c
                out.append(f"{name} {m.sum()} px, {100 * np.mean(~fg[m]):.0f} % outside the objects")
            bg = p.paintings == 1
            out.append(f"background {bg.sum()} px, {100 * np.mean(fg[bg]):.0f} % inside")
            print(f"{f} {d}D {habit}: " + " | ".join(out), flush=True)

torch.set_num_threads(2)
for d, steps in ((2, 1400), (3, 370)):
    s = fam.make("nuclei", d, 0)
    p = users.paint(s, "sloppy", 0)
    sess = quality.Session(s, p.paintings, "exclusive", len(p.class_names), 0, {}, steps=steps)
    sess.train(steps=steps)
    pred = sess.predict()
    sess.close()
    truth_fg, pred_fg = s.truth >= 2, pred >= 2
    fp = pred_fg & ~truth_fg
    tp = pred_fg & truth_fg
    print(f"nuclei {d}D sloppy, {steps} steps: precision {tp.sum() / pred_fg.sum():.3f}, "
          f"recall {tp.sum() / truth_fg.sum():.3f}, false positives {fp.sum()} px", flush=True)
    dist = ndi.distance_transform_edt(~truth_fg, sampling=s.spacing)
    for lo, hi in ((0, 1), (1, 2), (2, 3), (3, 1e9)):
        m = fp & (dist > lo) & (dist <= hi)
        print(f"  at ({lo}, {hi}] px/µm from the objects: {m.sum()} px, predicted boundary {np.sum(m & (pred == 3))}")
