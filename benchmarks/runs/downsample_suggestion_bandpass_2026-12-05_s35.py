"""The suggestion reading with a band-pass tied to each scale (session 35): the image less its
Gaussian at 3σ or 6σ before the LoG at σ; counts of false suggestions on the 45 matrix
paintings and the factors on the zoomed nuclei (strokes in px). Output in the .txt beside it."""
import sys
sys.path.insert(0, "benchmarks"); sys.path.insert(0, "benchmarks/runs")
import numpy as np
from scipy import ndimage as ndi
from bench_common import load_probe
import families as fam, users
SIGMAS = 2.0 ** (np.arange(0, 12.5) / 2)
def radius_bp(image, paint, mult):
    img = image.astype(np.float32)
    obj, bg = paint > 1, paint == 1
    sign = 1.0 if np.median(img[obj]) >= np.median(img[bg]) else -1.0
    resp = []
    for s in SIGMAS:
        band = img - ndi.gaussian_filter(img, mult * s)
        resp.append(float(np.median(-sign * s * s * ndi.gaussian_laplace(band, s)[obj])))
    return float(np.sqrt(2.0) * SIGMAS[int(np.argmax(resp))])
factor = lambda r: max(1, int(round(2 * r / 32)))
zoom = load_probe("zoomed_nuclei_probe_2026-12-05_s34.py")
for mult in (3.0, 6.0):
    false = []; zf = []
    for family in ("nuclei", "cells", "dim", "vessels", "tissue"):
        for seed in (0, 1, 2):
            s = fam.make(family, 2, seed)
            for habit in ("casual", "outline", "sloppy"):
                f = factor(radius_bp(s.image, users.paint(s, habit, seed).paintings, mult))
                if f > 1: false.append((family, habit, seed, f))
    for k in (2, 4):
        for seed in (0, 1):
            s = zoom.zoomed(fam.SHAPE_2D, seed, k)
            for habit in ("casual", "outline", "sloppy"):
                zf.append((k, f"×{factor(radius_bp(s.image, users.paint(s, habit, seed).paintings, mult))}"))
    print("mult", mult, "false", len(false), false)
    print("  zoom2", [f for k, f in zf if k == 2], "zoom4", [f for k, f in zf if k == 4], flush=True)
