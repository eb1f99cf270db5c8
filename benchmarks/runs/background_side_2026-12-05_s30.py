"""Which side the background is on: the paints' medians against the local contrast (session 30).

For every painting the quality matrix makes on seeds 0–2 (every family, 2D and 3D, every habit)
and every correction round that can be re-made from predictions saved before this session
(``runs/predictions_*.npz`` but session 30's;
session 29's seed-1 dim 2D rounds from ``paintings_dim2d_corrections_seed1_2026-12-05_s30.npz``),
it asks which side the background is on, as the background rule reads the image (smoothed; the
dim volumes levelled per slice): by the medians of the image under the two paints (the rule
before session 30), by the image less its Gaussian blur of σ px (4, 8, 16, 32; exact scipy
blur), and by ``core.background.bright_background`` as built. Every image of the matrix has a
dark background, so "bright" is a mistake; it prints each painting's answers and margins
(median local contrast under the objects less under the background, over the image's 1–99 %
range), then the mistakes per method.

    python benchmarks/runs/background_side_2026-12-05_s30.py > …_s30.txt
"""
import glob
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
import numpy as np  # noqa: E402
from scipy import ndimage as ndi  # noqa: E402

import families as fam  # noqa: E402
import users  # noqa: E402
import segstudio.core.background as B  # noqa: E402
from segstudio.core.data import LEVEL_QUANTILE, slice_offsets  # noqa: E402

SIGMAS = (4, 8, 16, 32)
mistakes: dict[str, list[str]] = {k: [] for k in ["medians", "built"] + [f"local{s}" for s in SIGMAS]}
total = 0


def check(name: str, paint: np.ndarray, g: np.ndarray, contrast: dict[int, np.ndarray]) -> None:
    global total
    bg, obj = paint == 1, paint > 1
    if bg.sum() < B.MIN_PIXELS or obj.sum() < B.MIN_PIXELS:
        return
    total += 1
    said = {"medians": np.median(g[bg]) > np.median(g[obj]), "built": B.bright_background(paint, g, 1)}
    span = np.quantile(g, 0.99) - np.quantile(g, 0.01)
    margin = {}
    for s, d in contrast.items():
        said[f"local{s}"] = np.median(d[bg]) > np.median(d[obj])
        margin[s] = round(float((np.median(d[obj]) - np.median(d[bg])) / span), 3)
    for k, v in said.items():
        if v:
            mistakes[k].append(name)
    print(name, "| bright:", {k: int(v) for k, v in said.items()}, "| margin:", margin, flush=True)


# the predictions saved before this session (its own come from the rule it measures)
saved = {npz: np.load(npz) for npz in sorted(glob.glob(str(HERE / "predictions_*.npz"))) if "_s30" not in npz}
for seed in range(3):
    for f in fam.FAMILIES:
        for d in (2, 3):
            s = fam.make(f, d, seed)
            offsets = ()
            if d == 3 and f == "dim":  # level slices are on for the dim volumes
                offsets = [slice_offsets([np.percentile(p, LEVEL_QUANTILE) for p in s.image])]
            g = B.smoothed_intensity(s.image, None, d, offsets)
            contrast = {si: g - ndi.gaussian_filter(g, (0,) * (d - 2) + (si, si), mode="nearest") for si in SIGMAS}
            for h in users.HABITS:
                p = users.paint(s, h, seed)
                check(f"{f} {d}D {h} s{seed} first", p.paintings, g, contrast)
                if h != "corrections":
                    continue
                for npz, z in saved.items():
                    for mode in ("exclusive", "multilabel"):
                        k = f"{f}_{d}d_{h}_{mode}_s{seed}_segstudio_first"
                        if k not in z.files:
                            continue
                        tag = Path(npz).stem.rsplit("_", 1)[-1]
                        p1 = users.correct(p, z[k], seed, 1)
                        check(f"{f} {d}D {h} s{seed} {mode} round1 ({tag})", p1.paintings, g, contrast)
                        if k.replace("first", "round1") in z.files:
                            p2 = users.correct(p1, z[k.replace("first", "round1")], seed, 2)
                            check(f"{f} {d}D {h} s{seed} {mode} round2 ({tag})", p2.paintings, g, contrast)
            if (f, d, seed) == ("dim", 2, 1):
                z = np.load(HERE / "paintings_dim2d_corrections_seed1_2026-12-05_s30.npz")
                for mode in ("exclusive", "multilabel"):
                    for i in (1, 2):
                        check(f"dim 2D corrections s1 {mode} round{i} (s29)", z[f"{mode}_paint{i}"], g, contrast)
print(f"\n{total} paintings; mistakes (bright on a dark background):")
for k, v in mistakes.items():
    print(f"{k}: {len(v)}" + (f" — {'; '.join(v)}" if v else ""))
