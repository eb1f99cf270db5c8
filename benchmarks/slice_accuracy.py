"""Where in a volume a quality-matrix cell goes wrong: pixel accuracy per slice, segstudio
beside the forest, and an optional picture of some slices.

One exclusive 3-D cell of ``quality.py`` (same image, same simulated strokes, same fixed steps),
trained once; per ``z`` slice it prints the fraction of pixels whose class is right for both
methods and how many pixels the user painted there. ``--png`` writes the slices side by side:
image, truth, paint, segstudio, forest (class 1 blue, 2 orange, 3 green, 4 red).

Usage::

    python benchmarks/slice_accuracy.py --family tissue --habit casual --seed 0 --png /tmp/t.png
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import families as fam
import quality
import users
from bench_common import parse_sets

#: Class colours of the picture (0 = unpainted: black).
COLORS = np.array([(0, 0, 0), (0.2, 0.2, 0.9), (0.9, 0.6, 0.1), (0.1, 0.8, 0.2), (0.9, 0.2, 0.2)], np.float32)


def slices_png(path: str, image: np.ndarray, maps: dict[str, np.ndarray], zs: list[int]) -> None:
    """Write one row per slice of ``zs``: the image, then each label map of ``maps``."""
    from skimage.io import imsave

    lo, hi = np.percentile(image, [1, 99])
    rows = []
    for z in zs:
        gray = np.clip((image[z] - lo) / max(hi - lo, 1e-6), 0, 1)
        tiles = [np.repeat(gray[..., None], 3, -1)] + [COLORS[np.clip(m[z], 0, len(COLORS) - 1)] for m in maps.values()]
        rows.append(np.concatenate([np.pad(t, ((2, 2), (2, 2), (0, 0)), constant_values=1) for t in tiles], 1))
    out = (np.concatenate(rows, 0) * 255).astype(np.uint8)
    imsave(path, np.kron(out, np.ones((2, 2, 1), np.uint8)), check_contrast=False)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--family", default="tissue", choices=list(fam.FAMILIES))
    p.add_argument("--habit", default="casual", choices=[h for h in users.HABITS if h != "corrections"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=370, help="training iterations (the matrix's 3-D budget)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help="TrainConfig overrides")
    p.add_argument("--every", type=int, default=4, help="print every n-th slice")
    p.add_argument("--png", help="write some slices side by side to this file")
    args = p.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    sample = fam.make(args.family, 3, args.seed)
    painting = users.paint(sample, args.habit, args.seed)
    paint, truth = painting.paintings, painting.truth
    forest = quality.rf_predict(sample.image, paint, "exclusive")
    session = quality.Session(sample, paint, "exclusive", len(painting.class_names), args.seed,
                              parse_sets(args.set),
                              steps=args.steps)
    try:
        session.train(steps=args.steps)
        pred = session.predict()
    finally:
        session.close()
    print(f"{args.family} 3D {args.habit} seed {args.seed}, {args.steps} steps; classes "
          + ", ".join(f"{k + 1} {n}" for k, n in enumerate(painting.class_names)))
    print("z  segstudio  forest  painted px")
    for z in range(0, sample.image.shape[0], args.every):
        print(f"{z:<3d}{(pred[z] == truth[z]).mean():9.2f}{(forest[z] == truth[z]).mean():8.2f}"
              f"{int((paint[z] > 0).sum()):12d}")
    print(f"all{(pred == truth).mean():9.2f}{(forest == truth).mean():8.2f}{int((paint > 0).sum()):12d}")
    if args.png:
        painted = [int(z) for z in np.unique(np.nonzero(paint)[0])]
        zs = sorted(set(range(0, sample.image.shape[0], max(1, sample.image.shape[0] // 4))) | set(painted[:2]))
        slices_png(args.png, sample.image.astype(np.float32),
                   {"truth": truth, "paint": paint, "segstudio": pred, "forest": forest}, zs)
        print(f"slices {zs} -> {args.png}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
