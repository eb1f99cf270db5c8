"""Time of the *show inferred* overlay's worker on a large volume, per paint change.

Usage::

    python benchmarks/inferred_overlay_time.py [--shape 64 512 512] [--repeats 3]

A volume of blurred blobs on a ramp, painted with a few object and background strokes on three
slices; the overlay's worker body (:func:`segstudio._qt.inferred.infer`) is asked as after a
paint change, with the background rule on, *level slices* and the uneven reading on and off.
Prints, per setting, the first request (the smoothed image computed) and the later ones (kept
by :class:`segstudio._qt.inferred.SmoothedKeeper`), in seconds. Runs without a display: the
worker body imports qtpy but creates no widget.
"""

from __future__ import annotations

import argparse
import json
import time
from types import SimpleNamespace

import numpy as np
from scipy import ndimage as ndi


def volume(shape: tuple[int, ...], seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Blobs on a ramp along x, and a paint with object (2) and background (1) strokes."""
    rng = np.random.default_rng(seed)
    img = ndi.gaussian_filter(rng.random(shape).astype(np.float32), 4) * 1000
    img += rng.normal(0, 5, shape).astype(np.float32)
    img += np.linspace(0, 50, shape[-1], dtype=np.float32)
    paint = np.zeros(shape, np.uint8)
    hi, lo = np.quantile(img, 0.8), np.quantile(img, 0.2)
    for z in np.linspace(0, shape[0] - 1, 5)[1:-1].astype(int):
        ys, xs = np.nonzero(img[z] > hi)
        paint[z, ys[:300], xs[:300]] = 2
        ys, xs = np.nonzero(img[z] < lo)
        paint[z, ys[:300], xs[:300]] = 1
    return img, paint


def main() -> None:
    from segstudio._qt.inferred import InferRequest, SmoothedKeeper, infer

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shape", type=int, nargs="+", default=[64, 512, 512])
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    img, paint = volume(tuple(args.shape))
    for level, uneven in ((False, False), (True, True)):
        keeper = SmoothedKeeper()
        times = []
        for i in range(args.repeats):
            p = paint.copy()
            p[paint.shape[0] // 2, i, :4] = 1  # a paint change
            snap = SimpleNamespace(paintings=lambda p=p: p)
            t = time.perf_counter()
            infer(InferRequest("img", img, None, snap, "exclusive", True, True, None, level, False, uneven), keeper)
            times.append(round(time.perf_counter() - t, 2))
        print(json.dumps({"shape": list(img.shape), "level_slices": level, "uneven": uneven,
                          "first_s": times[0], "later_s": times[1:], "smoothed_computed": keeper.computed}))


if __name__ == "__main__":
    main()
