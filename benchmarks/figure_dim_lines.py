"""The figure of README's *At dim lines*: objects by shape and at dim lines, side by side.

One saved prediction of the quality matrix (session 24, seed 0: *cells* 2-D, casual habit,
exclusive mode, segstudio after 1400 steps) is made into objects twice by
:mod:`segstudio.core.instances`, by shape (the default) and at the image's dim lines
(``declump="intensity"``), and drawn over the image beside the true objects, with each
panel's instance F1 at IoU 0.5::

    python benchmarks/figure_dim_lines.py  # writes docs/dim_lines_cells.png
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from skimage import io
from skimage.color import label2rgb
from skimage.segmentation import find_boundaries

sys.path.insert(0, str(Path(__file__).resolve().parent))
import families as fam  # noqa: E402

from segstudio.core.instances import InstanceOptions, instances_from_labels  # noqa: E402
from segstudio.core.metrics import instance_scores  # noqa: E402

HERE = Path(__file__).resolve().parent
PREDICTIONS = HERE / "runs" / "predictions_nuclei_cells_seed0_2026-12-04_s24.npz"
KEY = "cells_2d_casual_exclusive_s0_segstudio_final"


def _panel(image: np.ndarray, objects: np.ndarray) -> np.ndarray:
    """Objects tinted over the grey image, their outlines white."""
    rgb = label2rgb(objects, image, alpha=0.35, bg_label=0)
    rgb[find_boundaries(objects, mode="inner")] = 1.0
    return rgb


def main(argv: Sequence[str] | None = None) -> None:
    """Command-line entry point."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=HERE.parent / "docs" / "dim_lines_cells.png")
    args = p.parse_args(argv)
    sample = fam.make("cells", 2, 0)
    pred = np.load(PREDICTIONS)[KEY]
    image = sample.image.astype(np.float64)
    lo, hi = np.percentile(image, [0.5, 99.8])
    image = np.clip((image - lo) / (hi - lo), 0, 1)
    panels = [_panel(image, sample.instances)]
    for declump in ("shape", "intensity"):
        found = instances_from_labels(pred, InstanceOptions(object_classes=(2,), declump=declump), image=sample.image)
        score = instance_scores(found.labels, sample.instances)
        print(f"{declump}: {found.n} objects of {score.n_true}, F1 {score.f1:.3f}")
        panels.append(_panel(image, found.labels))
    gap = np.ones((image.shape[0], 6, 3))
    io.imsave(args.out, (np.concatenate([panels[0], gap, panels[1], gap, panels[2]], 1) * 255).astype(np.uint8),
              check_contrast=False)
    print(f"wrote {args.out}: true objects | by shape | at dim lines")


if __name__ == "__main__":
    main()
