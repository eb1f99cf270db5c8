"""What a paint change costs on a large volume: the trainer's swap and the *show inferred* overlay.

Usage::

    python benchmarks/paint_change_time.py [--shape 64 512 512] [--repeats 3] [--code DIR]
    python benchmarks/paint_change_time.py --quick     # 32 x 256 x 256, two changes (run_all.py)

A volume of blurred blobs on a ramp, painted with object (2) and background (1) strokes on three
slices, exclusive mode, the background rule on. Each repeat changes the paint (one short
background stroke more) and times

* ``swap``: :meth:`segstudio.core.trainer.Trainer.maybe_swap`, which the training loop runs
  between steps when the paintings changed (training waits for it): targets, implied labels,
  sampler and weights;
* ``training``: a run of the fast preset on the volume (2 threads), a paint change after 10
  steps, swapped between two steps (``background: false``, as tests and benchmarks run) or
  prepared in a thread while the steps go on (``background: true``, as the app runs): the
  longest wait between two steps from the change until the new paintings are in use, the
  steps made meanwhile, and the median step;
* ``overlay``: the *show inferred* overlay's worker body
  (:func:`segstudio._qt.inferred.infer`), with *level slices* and the uneven reading off and
  on (the first request computes the smoothed image, later ones read it from the overlay's
  :class:`~segstudio._qt.inferred.SmoothedKeeper`).

``--code DIR``: import segstudio from DIR (e.g. a ``git worktree`` of an older commit) to time
that code on the same volume; an overlay without a keeper is called without one. One JSON line
per measurement, seconds. Runs without a display (the overlay's module imports qtpy, no widget).
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
import time
from types import SimpleNamespace

import numpy as np
from scipy import ndimage as ndi


def volume(shape: tuple[int, ...], seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Blobs on a ramp along x, and a paint with object (2) and background (1) strokes."""
    rng = np.random.default_rng(seed)
    img = ndi.gaussian_filter(rng.random(shape).astype(np.float32), 4) * 1000
    img += rng.normal(0, 5, shape).astype(np.float32)
    img += np.linspace(0, 50, shape[-1], dtype=np.float32)
    paint = np.zeros(shape, np.uint8)
    hi, lo = np.quantile(img, 0.8), np.quantile(img, 0.2)
    for z in np.linspace(0, shape[0] - 1, 5)[1:-1].astype(int):
        ys, xs = np.nonzero(img[z] > hi)
        paint[z, ys[:300], xs[:300]] = 2
        ys, xs = np.nonzero(img[z] < lo)
        paint[z, ys[:300], xs[:300]] = 1
    return img, paint


def changed(paint: np.ndarray, i: int) -> np.ndarray:
    """``paint`` with one short background stroke more (a paint change)."""
    p = paint.copy()
    p[paint.shape[0] // 2, i, :4] = 1
    return p


def time_swap(img: np.ndarray, paint: np.ndarray, repeats: int) -> list[float]:
    """Seconds of the trainer's swap after each paint change (the first swap not counted)."""
    from segstudio.core.config import TrainConfig
    from segstudio.core.data import SnapshotSource, TrainingImage
    from segstudio.core.trainer import Trainer

    cfg = TrainConfig(mode="exclusive", n_classes=2, spatial_dims=3, infer_background=True)
    source = SnapshotSource()
    source.put([TrainingImage(img, paint)])
    trainer = Trainer(cfg, source)
    trainer.setup()
    trainer.maybe_swap()
    times = []
    for i in range(repeats):
        source.put([TrainingImage(img, changed(paint, i))])
        t = time.perf_counter()
        trainer.maybe_swap()
        times.append(round(time.perf_counter() - t, 2))
    return times


def time_training(img: np.ndarray, paint: np.ndarray, background: bool, changes: int = 3) -> dict:
    """A run with ``changes`` paint changes, every 10 steps: the longest wait between two steps
    from each change until it is in use, the steps made meanwhile, and the median step."""
    from segstudio.core.config import TrainConfig
    from segstudio.core.data import SnapshotSource, TrainingImage
    from segstudio.core.trainer import Progress, Trainer, WeightsUpdated

    cfg = TrainConfig(mode="exclusive", n_classes=2, spatial_dims=3, infer_background=True, iterations=None,
                      seed=0, num_threads=2, preview_every_s=1e9, checkpoint_every_s=1e9, val_every=0)
    source = SnapshotSource()
    source.put([TrainingImage(img, paint)])
    try:
        trainer = Trainer(cfg, source, swap_in_background=background)
    except TypeError:  # code without background swaps
        if background:
            return {}
        trainer = Trainer(cfg, source)
    waits, steps_during, step_s = [], [], []
    last = put_at = None
    made = done = 0
    gen = trainer.run()
    for ev in gen:
        now = time.perf_counter()
        if isinstance(ev, Progress):
            if last is not None:
                step_s.append(now - last)
                if put_at is not None:
                    waits[-1] = max(waits[-1], now - last)
                    made += 1
            last = now
            if put_at is None and ev.iteration % 10 == 0 and done < changes:
                source.put([TrainingImage(img, changed(paint, done))])
                put_at, made = now, 0
                waits.append(0.0)
        elif isinstance(ev, WeightsUpdated) and put_at is not None:
            waits[-1] = max(waits[-1], now - last)
            steps_during.append(made)
            put_at, done = None, done + 1
            if done == changes:
                break
    gen.close()
    return {"longest_wait_s": [round(w, 2) for w in waits], "steps_while_preparing": steps_during,
            "median_step_s": round(float(np.median(step_s)), 3)}


def time_overlay(img: np.ndarray, paint: np.ndarray, repeats: int, level: bool, uneven: bool) -> tuple[list[float], int]:
    """Seconds of the overlay's worker per paint change, and how often it smoothed the image."""
    from segstudio._qt import inferred

    keeper = inferred.SmoothedKeeper() if hasattr(inferred, "SmoothedKeeper") else None
    times = []
    for i in range(repeats):
        p = changed(paint, i)
        request = inferred.InferRequest("img", img, None, SimpleNamespace(paintings=lambda p=p: p), "exclusive",
                                        True, True, None, level, False, uneven)
        args = (request, keeper) if len(inspect.signature(inferred.infer).parameters) > 1 else (request,)
        t = time.perf_counter()
        inferred.infer(*args)
        times.append(round(time.perf_counter() - t, 2))
    return times, (keeper.computed if keeper is not None else len(times))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shape", type=int, nargs="+", default=[64, 512, 512])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--code", help="import segstudio from this directory (an older commit's worktree)")
    ap.add_argument("--quick", action="store_true", help="a 32 x 256 x 256 volume, two paint changes")
    args = ap.parse_args()
    if args.quick:
        args.shape, args.repeats = [32, 256, 256], 2
    if args.code:
        sys.path.insert(0, args.code)
    import segstudio
    import torch

    torch.set_num_threads(2)
    img, paint = volume(tuple(args.shape))
    common = {"code": segstudio.__file__.rsplit("/segstudio/", 1)[0], "shape": list(img.shape)}
    print(json.dumps({**common, "measure": "swap", "seconds": time_swap(img, paint, args.repeats)}), flush=True)
    for background in (False, True):
        result = time_training(img, paint, background, args.repeats)
        if result:
            print(json.dumps({**common, "measure": "training", "background": background, **result}), flush=True)
    for level, uneven in ((False, False), (True, True)):
        times, computed = time_overlay(img, paint, args.repeats, level, uneven)
        print(json.dumps({**common, "measure": "overlay", "level_slices": level, "uneven": uneven,
                          "seconds": times, "smoothed_computed": computed}), flush=True)


if __name__ == "__main__":
    main()
