"""The README figure of *smooth regions*: the quality matrix's textured tissue (2-D, seed 0)
painted by the casual user (two short strokes a class), its truth, and segstudio's prediction
after 1400 steps without and with the smoothing (the saved predictions of session 32's runs,
``benchmarks/runs/predictions_tissue2d_seed0_{unsmoothed,smoothed}_2026-12-05_s32.npz``)::

    python docs/figure_smoothing.py

Writes ``docs/smoothing_tissue.png``: four panels, background blue, granular yellow, fibrous
green.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
RUNS = HERE.parent / "benchmarks" / "runs"
sys.path.insert(0, str(HERE.parent / "benchmarks"))

COLOURS = np.array([[0, 0, 0], [58, 134, 255], [255, 190, 11], [6, 214, 160]], np.uint8)
NAME = "tissue_2d_casual_exclusive_s0_segstudio_final"


def main() -> None:
    from skimage import io

    import families as fam
    import users

    sample = fam.make("tissue", 2, 0)
    paint = users.paint(sample, "casual", 0).paintings
    img = sample.image.astype(np.float32)
    lo, hi = np.percentile(img, (1, 99.5))
    grey = (np.clip((img - lo) / (hi - lo), 0, 1) * 255).astype(np.uint8)
    strokes = np.stack([grey] * 3, -1)
    wide = np.zeros(paint.shape, bool)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            wide |= np.roll(np.roll(paint > 0, dy, 0), dx, 1)
    grown = paint.copy()
    for dy in (-1, 0, 1):  # the strokes drawn three pixels wide, to be seen
        for dx in (-1, 0, 1):
            shifted = np.roll(np.roll(paint, dy, 0), dx, 1)
            grown = np.where((grown == 0) & (shifted > 0), shifted, grown)
    strokes[wide] = COLOURS[grown[wide]]
    before = np.load(RUNS / "predictions_tissue2d_seed0_unsmoothed_2026-12-05_s32.npz")[NAME]
    after = np.load(RUNS / "predictions_tissue2d_seed0_smoothed_2026-12-05_s32.npz")[NAME]
    gap = np.full((img.shape[0], 8, 3), 255, np.uint8)
    panels = [strokes, COLOURS[sample.truth], COLOURS[before], COLOURS[after]]
    row = np.concatenate([p if i == 0 else np.concatenate([gap, p], 1) for i, p in enumerate(panels)], 1)
    io.imsave(HERE / "smoothing_tissue.png", row, check_contrast=False)


if __name__ == "__main__":
    main()
