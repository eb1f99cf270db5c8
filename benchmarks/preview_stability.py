"""How steady the live previews are, headless: the app's preview, every few steps, scored.

The app previews the averaged weights (``ema_decay``) every ~2 s on the slice(s) on screen while
training runs until stopped. This script does the same without a GUI, at fixed step counts, so
that ideas about the moving average and the learning-rate schedule can be compared on several
seeds without the app's timing noise: train on a built-in sample with its example strokes and
the app's settings (fast preset, until stopped), and every ``--every`` steps predict the
preview region (3D: the middle slice ± ``PREVIEW_SLAB``; 2D: the whole image) with
:meth:`Trainer.preview_model` and score its nucleus Dice (interior ∪ boundary) against the
sample's truth. Per seed it reports, after ``--settle`` steps (the app's "first 10 s" after
Train: 34–51 steps in 3D and 128–148 in 2D on the 2-core development machine, session 21's
``gui_responsiveness.py`` runs; it was about 20 and 90 before the app trained faster), the
standard deviation of the previews' Dice and the worst drop below the best preview so far
(issue 14, item 4: ≤ 0.02 and ≤ 0.05). ::

    python benchmarks/preview_stability.py --sample nuclei3d --seeds 0 1 2 3
    python benchmarks/preview_stability.py --sample nuclei3d --set ema_decay=0.98 --set warmup=30
    python benchmarks/preview_stability.py --sample nuclei3d --steps 32 --every 2 --settle 0 --bn-warmup debiased

The last line is one JSON object (``--out`` appends it to a file).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import parse_sets  # noqa: E402
from gui_responsiveness import nucleus_dice, steadiness  # noqa: E402  (the app benchmark's own scores)

#: Steps that stand for the app's first 10 s after Train, per sample: the median step of the
#: app's preview nearest 10 s in session 21's ``gui_responsiveness.py`` runs (2 cores, Xvfb;
#: ``benchmarks/runs/gui_responsiveness_2026-12-03_s21.jsonl``). A faster machine makes more.
SETTLE = {"nuclei2d": 140, "nuclei3d": 40}
STEPS = {"nuclei2d": 600, "nuclei3d": 160}
EVERY = {"nuclei2d": 15, "nuclei3d": 4}


#: ``--bn-warmup`` variants: the BatchNorm momentum for the n-th training batch (PyTorch's is
#: 0.1 throughout, which pulls the running statistics towards the initial mean 0 / variance 1).
BN_WARMUPS: dict[str, Any] = {
    "cumulative": lambda n: None if n <= 10 else 0.1,  # the plain average of the first 10 batches
    "debiased": lambda n: 0.1 / (1.0 - 0.9 ** n),  # momentum 0.1's weighting, bias-corrected
}


def use_bn_warmup(name: str | None) -> None:
    """Make the trainer set every BatchNorm layer's momentum before each step by ``name``
    (:data:`BN_WARMUPS`; ``None``: leave PyTorch's). Benchmark-side only."""
    if name is None:
        return
    from segstudio.core.trainer import Trainer

    momentum, step = BN_WARMUPS[name], Trainer.step

    def step_with_momentum(self: Any) -> float:
        for module in self.model.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                module.momentum = momentum(int(module.num_batches_tracked) + 1)
        return step(self)

    Trainer.step = step_with_momentum


def run_seed(sample_name: str, seed: int, steps: int, every: int, settle: int,
             overrides: dict[str, Any]) -> dict[str, Any]:
    """Train one seed and score the previews on the way."""
    from segstudio._qt.preview import PREVIEW_SLAB
    from segstudio.core.data import SnapshotSource, TrainingImage, image_stats
    from segstudio.core.predictor import Predictor
    from segstudio.core.samples import sample_2d, sample_3d
    from segstudio.core.trainer import Progress, Trainer, infer_config

    sample = sample_2d() if sample_name == "nuclei2d" else sample_3d()
    image, truth = sample.image, sample.truth
    region = None
    if image.ndim == 3:
        z = image.shape[0] // 2
        region = (slice(z - PREVIEW_SLAB, z + PREVIEW_SLAB + 1), slice(None), slice(None))
    cfg = infer_config(image.shape, sample.paintings, "exclusive", spacing=sample.spacing, iterations=None,
                       minutes=None, seed=seed, device="cpu", class_names=sample.class_names, **overrides)
    source = SnapshotSource()
    source.put([TrainingImage(image, sample.paintings)])
    trainer = Trainer(cfg, source, None)
    stats = image_stats(image, None, cfg.percentiles)
    scored = truth if region is None else truth[region]
    series: list[tuple[int, float]] = []
    t0 = time.perf_counter()
    events = trainer.run()
    try:
        for ev in events:
            if not isinstance(ev, Progress):
                continue
            if ev.iteration % every == 0:
                labels = Predictor(trainer.preview_model(), cfg, device="cpu").predict(
                    image, None, region=region, stats=stats).labels
                series.append((ev.iteration, nucleus_dice(labels, scored)))
            if ev.iteration >= steps:
                break
    finally:
        events.close()
    steps_done, dice = [float(i) for i, _ in series], [d for _, d in series]
    late = [d for i, d in series if i >= settle]
    steady = steadiness(steps_done, dice, settle)
    return {"seed": seed, "std": steady["preview_dice_std"], "worst_drop": steady["preview_worst_drop"],
            "last": round(dice[-1], 4), "min_late": round(min(late), 4),
            "seconds": round(time.perf_counter() - t0, 1), "series": [[i, round(d, 4)] for i, d in series]}


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Command-line entry point."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sample", default="nuclei3d", choices=sorted(SETTLE))
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    p.add_argument("--steps", type=int, default=None, help="steps per seed (default: 600 in 2D, 160 in 3D)")
    p.add_argument("--every", type=int, default=None, help="steps between previews (default: 15 in 2D, 4 in 3D)")
    p.add_argument("--settle", type=int, default=None, help="steps before previews count (default: 140 / 40)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="override a TrainConfig default (e.g. --set ema_decay=0.98)")
    p.add_argument("--bn-warmup", choices=sorted(BN_WARMUPS), default=None,
                   help="BatchNorm running statistics without the pull towards their start (RESULTS.md, "
                        "*Early previews in 3D*)")
    p.add_argument("--out", type=Path, default=None, help="append the result as a JSON line to this file")
    args = p.parse_args(argv)
    use_bn_warmup(args.bn_warmup)
    if args.threads:
        torch.set_num_threads(args.threads)
    overrides = parse_sets(args.set)
    steps = args.steps or STEPS[args.sample]
    every = args.every or EVERY[args.sample]
    settle = SETTLE[args.sample] if args.settle is None else args.settle
    if steps // every - max(settle - 1, 0) // every < 2:
        p.error(f"fewer than two previews after step {settle}: lower --every or --settle, or raise --steps")
    runs = []
    for seed in args.seeds:
        r = run_seed(args.sample, seed, steps, every, settle, overrides)
        runs.append(r)
        print(f"seed {seed}: std {r['std']:.4f}  worst drop {r['worst_drop']:.4f}  lowest {r['min_late']:.3f}  "
              f"last {r['last']:.3f}  ({r['seconds']:.0f} s)  "
              + " ".join(f"{d:.2f}" for _, d in r["series"]), flush=True)
    result = {"sample": args.sample, "set": args.set, "bn_warmup": args.bn_warmup, "steps": steps, "every": every, "settle": settle,
              "worst_std": max(r["std"] for r in runs), "worst_drop": max(r["worst_drop"] for r in runs),
              "runs": runs}
    print(f"worst over seeds: std {result['worst_std']:.4f}, drop {result['worst_drop']:.4f}")
    print(json.dumps(result))
    if args.out is not None:
        with args.out.open("a") as fh:
            fh.write(json.dumps(result) + "\n")
    return result


if __name__ == "__main__":
    main()
