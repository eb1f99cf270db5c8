"""Where a trainer step's time goes: ``cProfile`` over the trainer on ``throughput.py``'s data.

Runs the trainer for ``--steps`` iterations (after a warm-up) on the 2D or 3D throughput image
and prints the functions with the most time of their own and the most time in all, so that the
trainer's overhead beside a bare loop (``throughput.py``) can be traced to its code. On CUDA the
time a step waits for the GPU shows where the step synchronises (the loss read every step)::

    python benchmarks/profile_trainer.py --device cuda --dims 2
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from throughput import _data  # noqa: E402

from segstudio.core.data import SnapshotSource, TrainingImage  # noqa: E402
from segstudio.core.trainer import Progress, Trainer, infer_config  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--dims", type=int, default=2, choices=[2, 3])
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--warm", type=int, default=30)
    p.add_argument("--top", type=int, default=25)
    args = p.parse_args()
    img, paint = _data(args.dims)
    cfg = infer_config(img.shape, paint, "exclusive", iterations=args.warm + args.steps, seed=0, device=args.device)
    src = SnapshotSource()
    src.put([TrainingImage(img, paint)])
    prof = cProfile.Profile()
    with tempfile.TemporaryDirectory() as tmp:
        for ev in Trainer(cfg, src, tmp).run():
            if isinstance(ev, Progress):
                if ev.iteration == args.warm:
                    prof.enable()
                elif ev.iteration == args.warm + args.steps:
                    prof.disable()
            elif type(ev).__name__ == "Failed":
                raise SystemExit(ev.message)
    print(f"profile {args.dims}d {args.device}: {args.steps} steps, batch {cfg.batch} x {cfg.patch}")
    stats = pstats.Stats(prof)
    stats.sort_stats("tottime").print_stats(args.top)
    stats.sort_stats("cumulative").print_stats(args.top)


if __name__ == "__main__":
    main()
