"""Whole-image prediction beside one forward pass of the same network, and beside MONAI.

For a 2D image (2048² in the full run) and a 3D volume (64×256×256), fast preset, seeded
weights, three things are timed in the same process, interleaved (A B C A B C ..., so that the
load of a shared machine falls on all of them alike):

* ``forward``: ONE forward pass of the network over the whole (already normalised) image, the
  floor any tiled prediction is measured against;
* ``segstudio``: :meth:`Predictor.predict` of the raw image, as ``segstudio predict`` runs it:
  normalisation (percentiles), tiles chosen for inference (as large as the memory budget
  allows, margins of the receptive field), argmax into labels;
* ``MONAI``: ``monai.inferers.sliding_window_inference`` over the normalised image with the
  training patch as window, as a MONAI user would call it: overlap 0.5 with its Gaussian map
  (what segstudio did before it chose its own tiles), then argmax.

Printed per case: the three times, ``segstudio / forward`` (goal ≤ 1.3), ``MONAI / segstudio``
(goal ≥ 1.0), and how many labels agree with the forward pass (segstudio's should be 100 %:
the tiles' margins cover the receptive field) and with MONAI's Gaussian-blended sliding window
(the blending's own deviation).

MONAI is a benchmark-only extra (``pip install segstudio[bench]``); without it the MONAI
columns say so.

Usage::

    python benchmarks/inference_vs_monai.py --quick    # 1024², 32×128×128, one repeat
    python benchmarks/inference_vs_monai.py            # 2048², 64×256×256
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import interleaved_best, seeded_model, smooth_volume, unet_config  # noqa: E402

from segstudio.core.config import DEFAULT_PATCH  # noqa: E402
from segstudio.core.data import image_stats, normalize  # noqa: E402
from segstudio.core.predictor import Predictor, input_constraints, network_step, plan_for  # noqa: E402

MONAI_OVERLAP = 0.5
MONAI_BATCH = 4


def _monai() -> Callable | None:
    try:
        from monai.inferers import sliding_window_inference
    except ImportError:
        return None
    return sliding_window_inference


def _synced(fn: Callable[[], object], device: torch.device) -> Callable[[], object]:
    def run() -> object:
        out = fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return out

    return run


def compare(tag: str, shape: Sequence[int], device: torch.device, repeats: int) -> str:
    """One summary line for an image of ``shape``."""
    dims = len(shape)
    cfg = unet_config(dims, DEFAULT_PATCH[dims])
    model = seeded_model(cfg).to(device)
    img = smooth_volume(shape)
    x = normalize(img, image_stats(img))
    mins, step = input_constraints(network_step(cfg))
    if any(n % d or n < m for n, d, m in zip(shape, step, mins)):
        raise SystemExit(f"{tag}: choose a shape the network takes whole (multiples of {step})")
    xt = torch.from_numpy(x)[None].to(device)
    predictor = Predictor(model, cfg, device=str(device))
    plan = plan_for(cfg, shape, device)

    @torch.inference_mode()
    def forward() -> np.ndarray:
        return (model(xt).argmax(1)[0] + 1).cpu().numpy()

    def ours() -> np.ndarray:
        return predictor.predict(img).labels

    fns = [_synced(forward, device), _synced(ours, device)]
    swi = _monai()
    if swi is not None:
        @torch.inference_mode()
        def monai() -> np.ndarray:
            logits = swi(xt, tuple(cfg.patch), MONAI_BATCH, model, overlap=MONAI_OVERLAP, mode="gaussian")
            return (logits.argmax(1)[0] + 1).cpu().numpy()

        fns.append(_synced(monai, device))
    times, outs = interleaved_best(fns, repeats)
    size = "x".join(map(str, shape))
    head = (f"predict {tag} {device.type} {size} (fast preset; {plan.n_tiles} tile(s) of "
            f"{'x'.join(map(str, plan.tile))}, margin {'x'.join(map(str, plan.margin))}): "
            f"forward {times[0]:.2f} s, segstudio {times[1]:.2f} s = {times[1] / times[0]:.2f}x forward "
            f"(goal <= 1.3), labels = forward {np.mean(outs[1] == outs[0]):.4%}")
    if swi is None:
        return head + "; MONAI not installed (pip install monai) - comparison skipped"
    return (f"{head}; MONAI (window {'x'.join(map(str, cfg.patch))}, overlap {MONAI_OVERLAP}, gaussian) "
            f"{times[2]:.2f} s = {times[2] / times[1]:.2f}x segstudio (goal >= 1.0), labels = MONAI "
            f"{np.mean(outs[1] == outs[2]):.4%}")


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="smaller images, one repeat")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", choices=("all", "cpu", "cuda"), default="all",
                   help="where to predict (all: the CPU, and the GPU when there is one)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    devices = [d for d in devices if args.device in ("all", d.type)]
    if args.device == "cuda" and not devices:
        raise SystemExit("--device cuda: no CUDA GPU reachable")
    if not torch.cuda.is_available() and args.device != "cpu":
        print("predict gpu: no CUDA GPU reachable - GPU lines skipped", flush=True)
    for dev in devices:
        quick = args.quick and dev.type == "cpu"
        repeats = 1 if quick else 2
        print(compare("2d", (1024, 1024) if quick else (2048, 2048), dev, repeats), flush=True)
        print(compare("3d", (32, 128, 128) if quick else (64, 256, 256), dev, repeats), flush=True)


if __name__ == "__main__":
    main()
