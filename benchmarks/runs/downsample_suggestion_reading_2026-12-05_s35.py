"""Could the app suggest a *Downsample* factor from the strokes? A reading, no training
(session 35).

Session 34's estimator (Lindeberg's scale-normalised Laplacian of Gaussian at the object
strokes, its median maximised over σ = 1 … 64 px; radius √2 σ*; exclusive class 1 is the
background, classes 2.. the objects, as the background rule reads them) on every exclusive
painting of the matrix's 2-D families (casual, outline, sloppy; seeds 0–2), and on the zoomed
nuclei at K = 2 and 4, read two ways: on the image, and on the image less its local background
(a Gaussian of σ ``UNEVEN_SIGMA`` = 16 px, as the background rule reads an uneven one; the
guard session 34 proposed against background ramps). The factor a rule would suggest:
``round(2 r / 32)`` (objects ~32 px across after the shrink), shown where it is at least 2.
Wanted: no suggestion on the matrix (objects 24–40 px across), ×2–3 at K = 2, ×4 at K = 4.

    python benchmarks/runs/downsample_suggestion_reading_2026-12-05_s35.py > …_s35.txt
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import numpy as np  # noqa: E402
from scipy import ndimage as ndi  # noqa: E402

import families as fam  # noqa: E402
import users  # noqa: E402
from bench_common import load_probe  # noqa: E402
from segstudio.core.background import UNEVEN_SIGMA  # noqa: E402

SIGMAS = 2.0 ** (np.arange(0, 12.5) / 2)  # 1 … 64 px


def radius(image: np.ndarray, paint: np.ndarray) -> float:
    """√2 σ* at the object strokes (module notes)."""
    img = image.astype(np.float32)
    obj, bg = paint > 1, paint == 1
    sign = 1.0 if np.median(img[obj]) >= np.median(img[bg]) else -1.0
    resp = [float(np.median(-sign * s * s * ndi.gaussian_laplace(img, s)[obj])) for s in SIGMAS]
    return float(np.sqrt(2.0) * SIGMAS[int(np.argmax(resp))])


def factor(r: float) -> int:
    return max(1, int(round(2.0 * r / 32.0)))


def truth_diameter(sample) -> float:
    sizes = np.bincount(sample.instances.ravel())[1:] if sample.instances is not None else np.array([])
    sizes = sizes[sizes > 0]
    return float(2.0 * np.median(np.sqrt(sizes / np.pi))) if sizes.size else float("nan")


def row(name, habit, seed, sample, paint):
    img = sample.image.astype(np.float32)
    r_raw = radius(img, paint)
    r_flat = radius(img - ndi.gaussian_filter(img, UNEVEN_SIGMA), paint)
    print(f"| {name} | {habit} | {seed} | {truth_diameter(sample):.0f} | {2 * r_raw:.0f} | ×{factor(r_raw)} | "
          f"{2 * r_flat:.0f} | ×{factor(r_flat)} |", flush=True)
    return factor(r_raw), factor(r_flat)


print("| image | painter | seed | truth diameter (median) | diameter read | suggests | "
      "read less local background | suggests |")
print("|---|---|---|---|---|---|---|---|")
false = {"raw": 0, "flat": 0}
n = 0
for family in ("nuclei", "cells", "dim", "vessels", "tissue"):
    for seed in (0, 1, 2):
        s = fam.make(family, 2, seed)
        for habit in ("casual", "outline", "sloppy"):
            a, b = row(family, habit, seed, s, users.paint(s, habit, seed).paintings)
            false["raw"] += a > 1
            false["flat"] += b > 1
            n += 1
zoom = load_probe("zoomed_nuclei_probe_2026-12-05_s34.py")
for k in (2, 4):
    for seed in (0, 1):
        s = zoom.zoomed(fam.SHAPE_2D, seed, k)
        for habit in ("casual", "outline", "sloppy"):
            row(f"nuclei ×{k}", f"{habit}, strokes in px", seed, s, users.paint(s, habit, seed).paintings)
            row(f"nuclei ×{k}", f"{habit}, strokes ×K", seed, s, zoom.scaled_painting(s, habit, seed, k).paintings)
print(f"\nmatrix paintings with a suggestion (should be none): read on the image {false['raw']} of {n}, "
      f"less its local background {false['flat']} of {n}")
