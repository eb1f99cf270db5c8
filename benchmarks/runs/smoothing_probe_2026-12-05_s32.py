"""Session 32's probe: does a region-scale smoothing of the *decisions* lift textured predictions,
the forest's as much as segstudio's, and what does it do to a thin class? (No training: saved
predictions.)

Each saved exclusive 2-D prediction (``quality.py --predictions``: the tissue cells of seed 0
before smoothing existed, ``predictions_tissue2d_seed0_unsmoothed_2026-12-05_s32.npz``; the
outline and sloppy cells of nuclei, cells and dim, whose third class is a boundary a few pixels
wide, ``predictions_outline_sloppy_seed0_2026-12-05_s29.npz``) is one-hot encoded, each class
map Gaussian-smoothed over σ px, and the argmax taken again: a majority vote over a
neighbourhood, which any method's labels can be given. Prints Dice per class (tissue:
background / granular / fibrous; the others: background / interior / boundary) at σ 0 (as
saved), 2, 4 and 8.

    python benchmarks/runs/smoothing_probe_2026-12-05_s32.py benchmarks/runs/predictions_tissue2d_seed0_unsmoothed_2026-12-05_s32.npz benchmarks/runs/predictions_outline_sloppy_seed0_2026-12-05_s29.npz
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import families  # noqa: E402


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2 * np.count_nonzero(a & b) / max(1, np.count_nonzero(a) + np.count_nonzero(b))


def main(paths: list[str]) -> None:
    truths: dict[tuple[str, int, int], np.ndarray] = {}
    for path in paths:
        probe(np.load(path), truths)


def probe(saved: np.lib.npyio.NpzFile, truths: dict[tuple[str, int, int], np.ndarray]) -> None:
    for name in sorted(saved.files):
        m = re.match(r"(\w+?)_2d_(\w+?)_(exclusive|multilabel)_s(\d+)_(rf|segstudio)_(\w+)$", name)
        if m is None:
            continue
        family, seed = m.group(1), int(m.group(4))
        truth = truths.setdefault((family, 2, seed), families.make(family, 2, seed).truth)
        p = saved[name]
        cells = []
        for sigma in (0, 2, 4, 8):
            q = p
            if sigma:
                votes = [ndi.gaussian_filter((p == c).astype(np.float32), (0,) * (p.ndim - 2) + (sigma, sigma))
                         for c in (1, 2, 3)]
                q = np.argmax(np.stack(votes), axis=0) + 1
            cells.append(f"σ {sigma}: " + " / ".join(f"{dice(q == c, truth == c):.3f}" for c in (1, 2, 3)))
        print(f"{name}: " + " | ".join(cells))


if __name__ == "__main__":
    main(sys.argv[1:])
