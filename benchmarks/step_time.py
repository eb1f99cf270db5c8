"""Time of one training step (forward, backward, AdamW) with and without config overrides.

The same fast-preset network for the rank, on random patches of the default patch and batch
size, built twice: as configured by default (``A``) and with the ``--set`` overrides (``B``).
A network with region scales gets its region channels with the patch, computed beforehand,
as the trainer gives them (from the whole image, :func:`segstudio.core.features.image_regions`);
``--regions-on-patch`` computes them on the patch in every step instead, as training did
before.
Rounds alternate A and B, so that a shared machine's load falls on both alike; prints the
median seconds per step of each and their ratio.

Usage::

    python benchmarks/step_time.py --dims 3 --set filter_context=8,
    python benchmarks/step_time.py --dims 2 --set input_filters=1,4 --threads 1
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_common import parse_sets  # noqa: E402

from segstudio.core.config import TrainConfig  # noqa: E402
from segstudio.core.run import model_from_config  # noqa: E402


def step_seconds(config: TrainConfig, steps: int, seed: int = 0, regions_on_patch: bool = False) -> list[float]:
    """Seconds of each of ``steps`` training steps (after two warm-up steps) of ``config``'s network."""
    torch.manual_seed(seed)
    model = model_from_config(config).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    shape = (config.batch, config.in_channels, *config.sample_patch)  # at full size with *downsample*
    x = torch.rand(shape)
    bank = getattr(model, "filters", None)
    if getattr(bank, "context", ()) and not regions_on_patch:
        with torch.no_grad():
            x = torch.cat([x, bank.region_channels(x)], dim=1)
    target = torch.randint(0, config.n_classes, (config.batch, *config.sample_patch))
    times = []
    for i in range(steps + 2):
        start = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(model(x), target)
        loss.backward()
        opt.step()
        if i >= 2:
            times.append(time.perf_counter() - start)
    return times


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dims", type=int, choices=(2, 3), default=3)
    p.add_argument("--classes", type=int, default=3)
    p.add_argument("--steps", type=int, default=10, help="steps per round")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help="B's TrainConfig overrides")
    p.add_argument("--regions-on-patch", action="store_true",
                   help="compute region channels on each patch in the step (training before 2026-12-03)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    spacing = (2.0, 0.5, 0.5) if args.dims == 3 else None
    base = TrainConfig(n_classes=args.classes, spatial_dims=args.dims, spacing=spacing)
    configs = {"A": base, "B": base.replace(**parse_sets(args.set))}
    times: dict[str, list[float]] = {"A": [], "B": []}
    for _ in range(args.rounds):
        for name, cfg in configs.items():
            times[name] += step_seconds(cfg, args.steps, regions_on_patch=args.regions_on_patch)
    a, b = (statistics.median(times[k]) for k in "AB")
    print(f"{args.dims}D, {args.threads} thread(s), {args.rounds}×{args.steps} steps each: "
          f"A (default) {a * 1000:.1f} ms/step, B ({' '.join(args.set) or 'default'}) {b * 1000:.1f} ms/step, "
          f"B/A {b / a:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
