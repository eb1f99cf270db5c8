"""The U-Net's CPU memory layout: channels-last against PyTorch's default, in one process.

Why it exists: oneDNN's convolutions on a CPU run much faster on channels-last tensors
(NHWC / NDHWC), backward most. ``segstudio.core.models.unet`` runs its layers channels-last on
a CPU (:data:`~segstudio.core.models.unet.CHANNELS_LAST_ON_CPU`); this measures what that buys,
turning the switch off and on in turn (A B A B ...) so the machine's drift falls on both:

- one 3×3(×3) convolution of the fast preset's sizes, forward, and forward + backward;
- a whole training step of the trainer on the built-in samples (fast preset, batch and patch as
  the app chooses them), the median over ``--steps`` steps after 5 warm-up steps;
- one whole-volume prediction of the 3-D sample (what a live preview predicts).

::

    python benchmarks/channels_last.py            # 2 threads, 3 rounds
    python benchmarks/channels_last.py --quick    # 1 round, fewer steps

The last line is one JSON object with every figure (ms, medians over the rounds).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

from segstudio.core.models import unet as unet_module

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import machine  # noqa: E402

LAYOUTS = {"default": False, "channels_last": True}


def _ms(fn: Callable[[], object], repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


def conv_ms(dims: int, repeats: int = 10) -> dict[str, float]:
    """One convolution 8 → 8 channels (the preset's first level) on a training batch."""
    shape = (2, 8, 16, 64, 64) if dims == 3 else (8, 8, 128, 128)
    conv = (torch.nn.Conv3d if dims == 3 else torch.nn.Conv2d)(8, 8, 3, padding=1, bias=False)
    x = torch.randn(*shape).requires_grad_()

    def forward() -> None:
        with torch.no_grad():
            conv(x)

    def both() -> None:
        y = conv(x)
        y.backward(torch.ones_like(y))

    out = {}
    for name, on in LAYOUTS.items():
        layout = (torch.channels_last_3d if dims == 3 else torch.channels_last) if on else torch.contiguous_format
        conv.to(memory_format=layout)
        x = x.detach().contiguous(memory_format=layout).requires_grad_()
        out[f"conv{dims}d_forward_{name}"] = _ms(forward, repeats)
        out[f"conv{dims}d_forward_backward_{name}"] = _ms(both, repeats)
    return out


def step_ms(dims: int, steps: int, channels_last: bool) -> float:
    """Median trainer step (ms) on the built-in sample after 5 warm-up steps."""
    from segstudio.core.data import SnapshotSource, TrainingImage
    from segstudio.core.samples import sample_2d, sample_3d
    from segstudio.core.trainer import Progress, Trainer, infer_config

    unet_module.CHANNELS_LAST_ON_CPU = channels_last
    sample = sample_3d(0) if dims == 3 else sample_2d(0)
    config = infer_config(sample.image.shape, sample.paintings, "exclusive", iterations=steps + 5,
                          spacing=sample.spacing, checkpoint_every_s=1e9, seed=0)
    source = SnapshotSource()
    source.put([TrainingImage(sample.image, sample.paintings)])
    events = Trainer(config, source, None).run()
    times, last = [], None
    for event in events:
        if isinstance(event, Progress):
            now = time.perf_counter()
            if event.iteration > 5 and last is not None:
                times.append(now - last)
            last = now
            if event.iteration >= steps + 5:
                break
    events.close()
    return 1000 * statistics.median(times)


def predict_ms(channels_last: bool, repeats: int = 5) -> float:
    """Median whole-volume prediction of the 3-D sample (fast preset, untrained weights)."""
    from segstudio.core.config import TrainConfig
    from segstudio.core.data import image_stats
    from segstudio.core.predictor import Predictor
    from segstudio.core.run import model_from_config
    from segstudio.core.samples import sample_3d

    unet_module.CHANNELS_LAST_ON_CPU = channels_last
    sample = sample_3d()
    config = TrainConfig(n_classes=3, spatial_dims=3, spacing=sample.spacing)
    torch.manual_seed(0)
    predictor = Predictor(model_from_config(config), config, device="cpu")
    stats = image_stats(sample.image, None, config.percentiles)
    return _ms(lambda: predictor.predict(sample.image, None, stats=stats), repeats)


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="1 round, 10 steps in 3D, 20 in 2D")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    rounds = 1 if args.quick else args.rounds
    steps = {2: 20, 3: 10} if args.quick else {2: 60, 3: 30}
    print(machine(), flush=True)
    figures: dict[str, list[float]] = {}
    for r in range(rounds):
        for dims in (2, 3):
            for k, v in conv_ms(dims).items():
                figures.setdefault(k, []).append(v)
            for name, on in LAYOUTS.items():
                figures.setdefault(f"step{dims}d_{name}", []).append(step_ms(dims, steps[dims], on))
        for name, on in LAYOUTS.items():
            figures.setdefault(f"predict3d_whole_{name}", []).append(predict_ms(on))
        print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:.1f}" for k, v in figures.items()), flush=True)
    unet_module.CHANNELS_LAST_ON_CPU = True
    out = {k: round(statistics.median(v), 2) for k, v in figures.items()}
    for key in [k for k in out if k.endswith("_channels_last")]:
        base = key.removesuffix("_channels_last")
        print(f"{base}: {out[base + '_default']:.1f} -> {out[key]:.1f} ms "
              f"({out[base + '_default'] / out[key]:.2f}x)")
    out["threads"] = args.threads
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
