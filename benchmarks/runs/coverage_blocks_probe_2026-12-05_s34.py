"""Coverage of the quality matrix's stroke paintings (seeds 0-2, every family, habit, dims;
exclusive; no training), read three ways: today's bounding box (weights.painted_extent), and the
painted share of the in-plane 64- and 128-px blocks that hold paint, per slice (session 34).

    python benchmarks/runs/coverage_blocks_probe_2026-12-05_s34.py > …_s34.txt
"""
import sys
sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1]))
import numpy as np
import families as fam, users
from segstudio.core.weights import painted_extent

def blocks(m, B):
    """painted / area of in-plane BxB blocks holding paint, per slice"""
    m = m[None] if m.ndim == 2 else m
    ext = 0
    for s in m:
        ny, nx = s.shape
        py, px = -ny % B, -nx % B
        occ = np.pad(s, ((0, py), (0, px))).reshape((ny + py) // B, B, (nx + px) // B, B).any(axis=(1, 3))
        hy = np.minimum(B, ny - np.arange(occ.shape[0]) * B)
        hx = np.minimum(B, nx - np.arange(occ.shape[1]) * B)
        ext += int((occ * np.outer(hy, hx)).sum())
    return m.sum() / max(ext, 1)

rows = []
for seed in (0, 1, 2):
    for f in fam.FAMILIES:
        for d in (2, 3):
            s = fam.make(f, d, seed)
            for h in ("outline", "casual", "sloppy", "corrections"):
                p = users.paint(s, h, seed)
                m = p.paintings > 0
                pe = painted_extent(p.paintings, "exclusive")
                rows.append((seed, f, d, h, pe[0] / pe[1], blocks(m, 64), blocks(m, 128)))
                print(*rows[-1][:4], " ".join(f"{v:.3f}" for v in rows[-1][4:]), flush=True)
a = np.array([r[4:] for r in rows])
print("max bbox %.3f blocks64 %.3f blocks128 %.3f" % tuple(a.max(0)))
