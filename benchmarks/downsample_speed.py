"""Speed of *downsample* (``TrainConfig.downsample``): training steps and whole-image
prediction on one image, with the factor off and at 2 and 4.

The image is the *nuclei* family's 2-D image at zoom 4 (1536², nuclei of radius 48–80 px;
``runs/zoomed_nuclei_probe_2026-12-05_s34.py``), painted by the casual user. Each factor
trains a fresh model for ``--steps`` steps (the trainer as the app and the CLI run it: the
sampler, the implied labels, the losses, the averaged weights; no previews or checkpoints),
in rounds that alternate the factors so that a shared machine's load falls on each alike; the
median seconds per step over the steps after the first ten of each round. Then each factor's
model predicts the whole image (median of ``--rounds``). Prints one line per factor and the
ratios to factor 1.

Usage::

    python benchmarks/downsample_speed.py [--steps 60] [--rounds 3] [--threads 2] [--factors 1 2 4]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_common import load_probe  # noqa: E402

import users  # noqa: E402
from segstudio.core.data import SnapshotSource, TrainingImage  # noqa: E402
from segstudio.core.predictor import Predictor  # noqa: E402
from segstudio.core.trainer import Progress, Trainer, infer_config  # noqa: E402

#: Steps of each round not timed (the first steps build caches and warm the allocator).
WARM_STEPS = 10


def train_round(image, paint, factor: int, steps: int, threads: int) -> tuple[list[float], Trainer]:
    """Seconds of each step after :data:`WARM_STEPS` of a fresh ``steps``-step run at ``factor``."""
    cfg = infer_config(image.shape, paint, "exclusive", n_classes=int(paint.max()), iterations=steps,
                       device="cpu", seed=0, checkpoint_every_s=1e9, preview_every_s=1e9, num_threads=threads,
                       downsample=factor)
    src = SnapshotSource()
    src.put([TrainingImage(image, paint)])
    trainer = Trainer(cfg, src, None)
    stamps: list[tuple[int, float]] = []
    for ev in trainer.run():
        if isinstance(ev, Progress):
            stamps.append((ev.iteration, time.perf_counter()))
    per_step = [(t1 - t0) / (i1 - i0) for (i0, t0), (i1, t1) in zip(stamps, stamps[1:])
                if i0 >= WARM_STEPS and i1 > i0]
    return per_step, trainer


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--factors", type=int, nargs="+", default=[1, 2, 4])
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    zoom = load_probe("zoomed_nuclei_probe_2026-12-05_s34.py")
    sample = zoom.zoomed((384, 384), 0, 4)
    paint = users.paint(sample, "casual", 0).paintings
    steps: dict[int, list[float]] = {f: [] for f in args.factors}
    trainers: dict[int, Trainer] = {}
    for _ in range(args.rounds):
        for f in args.factors:
            got, trainers[f] = train_round(sample.image, paint, f, args.steps, args.threads)
            steps[f] += got
    predict: dict[int, list[float]] = {f: [] for f in args.factors}
    for _ in range(args.rounds):
        for f in args.factors:
            predictor = Predictor(trainers[f].model, trainers[f].config, device="cpu")
            start = time.perf_counter()
            predictor.predict(sample.image)
            predict[f].append(time.perf_counter() - start)
    print(f"image {sample.image.shape}, {args.threads} thread(s), {args.rounds} rounds of {args.steps} steps")
    base = args.factors[0]
    s0, p0 = statistics.median(steps[base]), statistics.median(predict[base])
    for f in args.factors:
        s, pr = statistics.median(steps[f]), statistics.median(predict[f])
        print(f"downsample {f}: {s * 1000:.0f} ms/step ({s / s0:.2f}× factor {base}), "
              f"predict {pr:.2f} s ({pr / p0:.2f}×)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
