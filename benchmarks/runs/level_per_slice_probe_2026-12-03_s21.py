"""Probe (session 21): each 3-D image levelled per slice before both methods see it.

Used by copying it to ``benchmarks/level_probe.py`` in a worktree, adding
``import level_probe  # noqa: E402,F401`` after ``import families as fam`` in ``quality.py``, and
running ``SEG_LEVEL=1 python benchmarks/quality.py --steps 1400 370 --jobs 2 --threads 1 --seeds 0
--dims 3 --families dim nuclei cells --out FILE`` (benchmarks/RESULTS.md, session 21).
"""
import os

import numpy as np
from scipy import ndimage as ndi

import families as fam

_make = fam.make


def level(image: np.ndarray, q: float = 20.0, sigma: float = 1.0) -> np.ndarray:
    """Subtract each z slice's ``q`` % quantile (smoothed along z), keep the mean level."""
    b = np.percentile(image.reshape(image.shape[0], -1), q, axis=1)
    b = ndi.gaussian_filter1d(b, sigma, mode="nearest")
    return (image - b[:, None, None] + b.mean()).astype(np.float32)


def make(family, dims, seed):
    s = _make(family, dims, seed)
    if dims == 3 and os.environ.get("SEG_LEVEL") == "1":
        import dataclasses
        s = dataclasses.replace(s, image=level(s.image))
    return s


fam.make = make
