"""Training throughput: segstudio's trainer vs a bare PyTorch loop on the same model and patches.

Both train the same U-Net (fast preset, same seed) with AdamW and class-weighted
cross-entropy on the same patches: the bare loop draws them from the same
:class:`~segstudio.core.data.PatchSampler` (same seed, same augmentation), so what differs is
only what the trainer adds around the step (events, learning-rate schedule, history,
previews every 2 s, checkpoints). Prints voxels/s of both and the trainer's overhead
(goal ≤ 10 %). The two are run in turn (trainer, bare, trainer, bare) and the best of each
counts, which evens out the load of a shared machine. On CUDA both use autocast (bf16/fp16)
with a GradScaler for fp16.

Usage::

    python benchmarks/throughput.py --quick     # default batches and patches, few steps
    python benchmarks/throughput.py
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import smooth_volume  # noqa: E402

from segstudio.core.data import PatchSampler, SnapshotSource, TrainingImage, prepare_image  # noqa: E402
from segstudio.core.run import model_from_config  # noqa: E402
from segstudio.core.trainer import Progress, Trainer, amp_dtype, infer_config  # noqa: E402
from segstudio.core.weights import compute_weights  # noqa: E402


def _data(dims: int) -> tuple[np.ndarray, np.ndarray]:
    shape = (256, 256) if dims == 2 else (64, 160, 160)
    img = smooth_volume(shape, seed=1)
    paint = np.zeros(shape, np.uint8)
    sl = tuple(slice(n // 8, n // 8 + max(n // 10, 2)) for n in shape)
    paint[sl] = 1
    paint[tuple(slice(n // 2, n // 2 + max(n // 10, 2)) for n in shape)] = 2
    paint[tuple(slice(3 * n // 4, 3 * n // 4 + max(n // 12, 2)) for n in shape)] = 3
    return img, paint


def run_trainer(img, paint, device: str, steps: int, warm: int) -> float:
    """Seconds for ``steps`` trainer iterations after ``warm`` warm-up iterations."""
    cfg = infer_config(img.shape, paint, "exclusive", iterations=warm + steps, seed=0, device=device)
    src = SnapshotSource()
    src.put([TrainingImage(img, paint)])
    with tempfile.TemporaryDirectory() as tmp:
        t_warm = t_end = None
        for ev in Trainer(cfg, src, tmp).run():
            if isinstance(ev, Progress):
                if ev.iteration == warm:
                    t_warm = time.perf_counter()
                elif ev.iteration == warm + steps:
                    t_end = time.perf_counter()
            elif type(ev).__name__ == "Failed":
                raise RuntimeError(ev.message)
    assert t_warm is not None and t_end is not None
    return t_end - t_warm


def run_bare(img, paint, device: str, steps: int, warm: int) -> float:
    """The same training as a plain PyTorch loop: sample, forward, loss, backward, step."""
    cfg = infer_config(img.shape, paint, "exclusive", iterations=warm + steps, seed=0, device=device)
    dev = torch.device(device)
    torch.manual_seed(0)
    model = model_from_config(cfg).to(dev)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    prepared, _ = prepare_image(TrainingImage(img, paint), cfg.mode, cfg.n_classes, None, cfg.percentiles)
    sampler = PatchSampler([prepared], cfg.mode, cfg.patch, random_fraction=cfg.random_fraction,
                           augment=cfg.augment, rng=np.random.default_rng(0))
    w = compute_weights([paint], "exclusive", cfg.weight_method, n_classes=cfg.n_classes).weights
    loss_fn = torch.nn.CrossEntropyLoss(weight=torch.tensor(w, dtype=torch.float32, device=dev), ignore_index=-100)
    amp = amp_dtype(dev, cfg.amp)
    scaler = torch.amp.GradScaler("cuda") if amp == torch.float16 else None
    model.train()
    t0 = 0.0
    for it in range(warm + steps):
        if it == warm:
            if dev.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
        x, y, _ = sampler.batch(cfg.batch)
        xt, yt = torch.from_numpy(x).to(dev), torch.from_numpy(y).to(dev)
        opt.zero_grad(set_to_none=True)
        with torch.autocast(dev.type, dtype=amp, enabled=amp is not None):
            logits = model(xt)
        loss = loss_fn(logits.float(), yt)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        else:
            loss.backward()
            opt.step()
        float(loss.detach())  # the trainer reads the loss every step too
    if dev.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def compare(dims: int, device: str, steps: int, warm: int, rounds: int) -> str:
    img, paint = _data(dims)
    cfg = infer_config(img.shape, paint, "exclusive")
    vox = cfg.batch * int(np.prod(cfg.patch)) * steps
    best_t = best_b = float("inf")
    for _ in range(rounds):
        best_t = min(best_t, run_trainer(img, paint, device, steps, warm))
        best_b = min(best_b, run_bare(img, paint, device, steps, warm))
    amp = amp_dtype(torch.device(device), True)
    amp_s = f", AMP {str(amp).removeprefix('torch.')}" if amp is not None else ""
    return (f"throughput {dims}d {device}{amp_s} batch {cfg.batch} x {'x'.join(map(str, cfg.patch))}: "
            f"trainer {vox / best_t / 1e6:.3f} Mvoxel/s, bare loop {vox / best_b / 1e6:.3f} Mvoxel/s, "
            f"overhead {100 * (best_t / best_b - 1):+.1f}% (goal <= 10%)")


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="fewer steps and rounds")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    # 2D steps of the fast preset take ~0.04 s on 2 cores, 3D steps ~0.25 s: count accordingly.
    steps, warm, rounds = (30, 5, 2) if args.quick else (150, 10, 3)
    print(compare(2, "cpu", steps, warm, rounds), flush=True)
    print(compare(3, "cpu", max(steps // 3, 2), warm, rounds), flush=True)
    if torch.cuda.is_available():
        print(compare(2, "cuda", steps * 5, warm * 5, rounds), flush=True)
        print(compare(3, "cuda", steps * 5, warm * 5, rounds), flush=True)
    else:
        print("throughput gpu: no CUDA GPU reachable - GPU/AMP lines skipped", flush=True)


if __name__ == "__main__":
    main()
