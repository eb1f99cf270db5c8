"""Sliding-window inference: segstudio vs MONAI's ``sliding_window_inference``.

Same model (segstudio's U-Net, fast preset, seeded weights), same patch, overlap 0.5, batch
of 4 tiles and the same Gaussian importance map (σ = patch/8, passed to MONAI as
``roi_weight_map``), on image sizes where both place the tiles at the same positions. Prints
the time ratio (MONAI time / segstudio time: ≥ 1.0 means segstudio is not slower) and the
largest absolute difference of the softmax probabilities. A second 2D line uses MONAI's own
Gaussian map (clamped at 1e-3), which differs at tile borders.

Also prints the issue-4 figures: whole-image predict time (normalisation included) of a 512²
image and a 64×256×256 volume with the default training patch as tile, fast preset.

MONAI is a benchmark-only extra (``pip install segstudio[bench]``); without it the MONAI lines
say so and the segstudio timings are still printed.

Usage::

    python benchmarks/inference_vs_monai.py --quick    # CPU; 3D comparison on 32x128x128
    python benchmarks/inference_vs_monai.py            # 3D comparison on 64x256x256
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import best_time, interleaved_best, seeded_model, smooth_volume, unet_config  # noqa: E402

from segstudio.core.config import DEFAULT_PATCH  # noqa: E402
from segstudio.core.predictor import Predictor, gaussian_importance, predict_normalized  # noqa: E402

OVERLAP = 0.5
TILE_BATCH = 4


def _monai():
    try:
        from monai.inferers import sliding_window_inference
    except ImportError:
        return None
    return sliding_window_inference


def compare(tag: str, shape: Sequence[int], patch: Sequence[int], device: torch.device, repeats: int,
            own_map: bool = False) -> str:
    """One summary line: segstudio vs MONAI on an image of ``shape``."""
    cfg = unet_config(len(shape), patch)
    model = seeded_model(cfg).to(device)
    x = np.random.default_rng(0).random((1, *shape)).astype(np.float32)
    size = "x".join(map(str, shape))

    def run_ours():
        return predict_normalized(model, x, cfg, overlap=OVERLAP, tile_batch=TILE_BATCH, device=device,
                                  probabilities=True)

    swi = _monai()
    if swi is None:
        ours_s, ours = best_time(run_ours, repeats)
        return (f"inference {tag} {device.type} {size}: segstudio {ours_s:.2f} s; MONAI not installed "
                "(pip install monai) - comparison skipped")
    xt = torch.from_numpy(x)[None].to(device)
    weight = None if own_map else torch.from_numpy(gaussian_importance(patch)).to(device)

    @torch.inference_mode()
    def run_monai() -> np.ndarray:
        logits = swi(xt, tuple(patch), TILE_BATCH, model, overlap=OVERLAP, mode="gaussian", sigma_scale=0.125,
                     roi_weight_map=weight)
        return torch.softmax(logits.float(), 1)[0].cpu().numpy()

    (ours_s, monai_s), (ours, theirs) = interleaved_best([run_ours, run_monai], repeats, warmup=0 if own_map else 1)
    head = f"inference {tag} {device.type} {size} patch {'x'.join(map(str, patch))}: segstudio {ours_s:.2f} s"
    diff = float(np.abs(theirs - ours.probabilities).max())
    agree = float((theirs.argmax(0) + 1 == ours.labels).mean())
    what = "MONAI's own gaussian map" if own_map else "same gaussian map"
    return (f"{head}, MONAI {monai_s:.2f} s, ratio {monai_s / ours_s:.2f}x (goal >= 1.0), "
            f"max|diff| {diff:.1e} ({what}), labels agree {agree:.4%}")


def predict_time(shape: Sequence[int], patch: Sequence[int] | None, device: torch.device, repeats: int) -> str:
    """Whole-image predict time through :class:`Predictor` (normalisation included)."""
    cfg = unet_config(len(shape), patch or DEFAULT_PATCH[len(shape)])
    pred = Predictor(seeded_model(cfg), cfg, device=str(device))
    img = smooth_volume(shape)
    s, _ = best_time(lambda: pred.predict(img), repeats)
    vox = int(np.prod(shape))
    return (f"predict {device.type} {'x'.join(map(str, shape))} (fast preset, patch "
            f"{'x'.join(map(str, cfg.patch))}, overlap {OVERLAP}): {s:.2f} s ({vox / s / 1e6:.2f} Mvoxel/s)")


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="smaller 3D comparison, fewer repeats")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    if not torch.cuda.is_available():
        print("inference gpu: no CUDA GPU reachable - GPU lines skipped", flush=True)
    for dev in devices:
        gpu = dev.type == "cuda"
        print(compare("2d", (512, 512), (128, 128), dev, 3), flush=True)
        print(compare("2d", (512, 512), (128, 128), dev, 1, own_map=True), flush=True)
        shape3 = (32, 128, 128) if args.quick and not gpu else (64, 256, 256)
        patch3 = (16, 64, 64) if args.quick and not gpu else (32, 128, 128)
        print(compare("3d", shape3, patch3, dev, 1 if args.quick else 2), flush=True)
        print(predict_time((512, 512), None, dev, 3), flush=True)
        print(predict_time((64, 256, 256), None, dev, 1 if args.quick else 2), flush=True)


if __name__ == "__main__":
    main()
