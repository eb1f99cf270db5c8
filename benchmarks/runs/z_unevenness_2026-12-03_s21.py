"""How much a volume's background level runs along z against its classes' contrast, for every
3-D painting of the quality matrix (seeds 0-2; outline, casual, sloppy; exclusive): analysis for
an *auto* of per-slice levelling (session 21; benchmarks/RESULTS.md). No training. The measure:
the range over slices of each slice's 20 % quantile (smoothed along z by σ 1 slice) over the
difference between the medians of the image under the object paint and under the background
paint. Run from the repository root: ``PYTHONPATH=. python benchmarks/runs/z_unevenness_2026-12-03_s21.py``.
"""
import sys
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import families as fam  # noqa: E402
import users  # noqa: E402

for f in ("nuclei", "cells", "dim", "vessels", "tissue"):
    cells = []
    for seed in (0, 1, 2):
        s = fam.make(f, 3, seed)
        b = ndi.gaussian_filter1d(np.percentile(s.image.reshape(s.image.shape[0], -1), 20, axis=1), 1.0, mode="nearest")
        for habit in ("outline", "casual", "sloppy"):
            p = users.paint(s, habit, seed)
            bg, obj = s.image[p.paintings == 1], s.image[p.paintings >= 2]
            contrast = abs(float(np.median(obj)) - float(np.median(bg))) if obj.size and bg.size else float("nan")
            cells.append(f"s{seed} {habit} {float(np.ptp(b)) / contrast:.2f}")
    print(f"{f}: " + ", ".join(cells), flush=True)
