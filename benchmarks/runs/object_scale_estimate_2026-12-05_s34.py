"""Can the objects' size be read from the image at the user's strokes? (session 34, no training)

For an *object size* setting on *auto* (RESULTS, *Objects 2–4× larger than the matrix's*):
the characteristic scale of the image at the object strokes (Lindeberg's scale-normalised
Laplacian of Gaussian, ``−σ² ∇²G_σ * I``, its median over the object-stroke pixels, maximised
over σ = 1 … 64 px by √2 steps, signed so that objects brighter than the painted background
are positive; radius ``√2 σ*`` in 2-D), against the truth's median equivalent radius
(``√(area/π)`` of each object). The matrix's 2-D object families, the casual and outline
painters, seeds 0–1, and the zoomed nuclei at K = 1, 2, 4 (strokes ×K and in pixels).

    python benchmarks/runs/object_scale_estimate_2026-12-05_s34.py > …_s34.txt
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import numpy as np  # noqa: E402
from scipy import ndimage as ndi  # noqa: E402

import families as fam  # noqa: E402
import users  # noqa: E402
from bench_common import load_probe  # noqa: E402

SIGMAS = 2.0 ** (np.arange(0, 12.5) / 2)  # 1 … 64 px


def estimate(image: np.ndarray, paint: np.ndarray, interior_only: bool = False) -> tuple[float, float]:
    """(σ*, radius √2 σ*) of the objects at the object strokes (module notes); with
    ``interior_only``, at the first object class's strokes only (not a boundary class's)."""
    img = image.astype(np.float32)
    obj, bg = (paint == 2) if interior_only else (paint > 1), paint == 1
    sign = 1.0 if np.median(img[obj]) >= np.median(img[bg]) else -1.0
    resp = [float(np.median(-sign * s * s * ndi.gaussian_laplace(img, s)[obj])) for s in SIGMAS]
    best = SIGMAS[int(np.argmax(resp))]
    return best, float(np.sqrt(2.0) * best)


def truth_radius(sample) -> float:
    sizes = np.bincount(sample.instances.ravel())[1:]
    return float(np.median(np.sqrt(sizes[sizes > 0] / np.pi)))


print("image | painter | seed | truth radius (median) | σ* | estimated radius | ratio | "
      "interior strokes only: σ* | radius | ratio")
for seed in (0, 1):
    for family in ("nuclei", "cells", "dim"):
        s = fam.make(family, 2, seed)
        for habit in ("casual", "outline"):
            p = users.paint(s, habit, seed)
            sig, r = estimate(s.image, p.paintings)
            sig2, r2 = estimate(s.image, p.paintings, True)
            t = truth_radius(s)
            print(f"{family} | {habit} | {seed} | {t:.1f} | {sig:.1f} | {r:.1f} | {r / t:.2f} | "
                  f"{sig2:.1f} | {r2:.1f} | {r2 / t:.2f}", flush=True)

zoom = load_probe("zoomed_nuclei_probe_2026-12-05_s34.py")
for k in (2, 4):
    for seed in (0, 1):
        s = zoom.zoomed(fam.SHAPE_2D, seed, k)
        t = truth_radius(s)
        for habit in ("casual", "outline"):
            scaled = zoom.scaled_painting(s, habit, seed, k).paintings
            for name, paint in (("strokes ×K", scaled), ("strokes in px", users.paint(s, habit, seed).paintings)):
                sig, r = estimate(s.image, paint)
                sig2, r2 = estimate(s.image, paint, True)
                print(f"nuclei ×{k} | {habit}, {name} | {seed} | {t:.1f} | {sig:.1f} | {r:.1f} | {r / t:.2f} | "
                      f"{sig2:.1f} | {r2:.1f} | {r2 / t:.2f}", flush=True)
