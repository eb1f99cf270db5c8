"""segstudio vs the random-forest baseline on the synthetic nuclei samples.

Protocol (issue 4), per case (2D ``sample_2d``, 3D ``sample_3d``):

1. ``rf``: the classical baseline (``baseline_rf.py``) on the simulated strokes.
2. ``segstudio <case> 60s``: train on the same strokes for ``--seconds`` (60 s) of wall clock on
   the CPU, from a fresh model, through a run directory (``config.json`` + ``model.pt``, so the
   saved input filters are exercised too), predict the whole image, score Dice per class.
3. ``correction round 1, 2``: one *continuous* training session, as in the GUI: the trainer
   keeps running while the user paints. After ``--round-seconds`` (30 s) the current weights
   predict the image, 10 correction strokes go into the largest wrong regions and reach the
   running trainer through its :class:`~segstudio.core.data.SnapshotSource`; training goes on
   (no restart, no new warm-up) for another 30 s, twice. The time spent predicting and
   painting counts against the training budget (in the GUI the trainer keeps training on the
   old strokes meanwhile), so the figures are conservative.

Dice is computed on the whole image; ``nucleus`` = interior ∪ boundary, predicted vs truth.
Every figure is one summary line, e.g.::

    segstudio 2d 60s: nucleus dice 0.88 interior 0.86 boundary 0.47 background 0.99 in 61.2 s (painted 0.43 %)

Usage::

    python benchmarks/quality.py --quick        # 2D only, seed 0, 20 s and 3 x 10 s (< 5 min)
    python benchmarks/quality.py                # 2D and 3D, 60 s and 30 s + 2 x 30 s
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from baseline_rf import format_line, rf_baseline, scores  # noqa: E402
from bench_common import parse_value  # noqa: E402

from segstudio.core.data import SnapshotSource, TrainingImage  # noqa: E402
from segstudio.core.predictor import Predictor  # noqa: E402
from segstudio.core.run import load_run  # noqa: E402
from segstudio.core.samples import Sample, correction_strokes, sample_2d, sample_3d  # noqa: E402
from segstudio.core.trainer import Failed, Finished, Progress, Trainer, infer_config  # noqa: E402


def painted_fraction(paintings: np.ndarray) -> float:
    """Fraction of pixels that carry paint."""
    return float(np.count_nonzero(paintings)) / paintings.size


def make_config(sample: Sample, seconds: float, threads: int, seed: int, **overrides: Any):
    """The config the app would build for this sample (defaults), trained for ``seconds``."""
    return infer_config(sample.image.shape, sample.paintings, "exclusive", n_classes=3, iterations=None,
                        minutes=seconds / 60.0, spacing=sample.spacing, seed=seed, num_threads=threads,
                        device="cpu", **overrides)


def train_fresh(sample: Sample, seconds: float, run: Path, threads: int, seed: int = 0,
                **overrides: Any) -> tuple[np.ndarray, int]:
    """Train a fresh model for ``seconds`` into ``run``; predict the whole image from disk.

    Returns the prediction and the number of training iterations that fitted in the budget.
    """
    cfg = make_config(sample, seconds, threads, seed, **overrides)
    src = SnapshotSource()
    src.put([TrainingImage(sample.image, sample.paintings)])
    last = None
    for last in Trainer(cfg, src, run).run():
        if isinstance(last, Failed):
            raise RuntimeError(last.message)
    if not isinstance(last, Finished):
        raise RuntimeError(f"training ended with {last!r}")
    loaded = load_run(run)
    return Predictor(loaded.model, loaded.config, device="cpu").predict(sample.image).labels, last.iteration


def correction_session(sample: Sample, round_seconds: float, rounds: int, threads: int, seed: int = 0,
                       **overrides: Any) -> list[tuple[dict[str, float], float, float, int]]:
    """One continuous session: train, and every ``round_seconds`` add 10 correction strokes.

    Returns ``(scores, painted fraction, seconds since start, iteration)`` after each of the ``rounds``
    correction rounds (the prediction after the first ``round_seconds`` only seeds the strokes).
    """
    cfg = make_config(sample, round_seconds * (rounds + 1), threads, seed, **overrides)
    src = SnapshotSource()
    paint = sample.paintings
    src.put([TrainingImage(sample.image, paint)])
    trainer = Trainer(cfg, src, None)
    results: list[tuple[dict[str, float], float, float]] = []
    boundary = round_seconds
    done = 0
    start = time.perf_counter()

    def predict() -> np.ndarray:
        labels = Predictor(trainer.model, trainer.config, device="cpu").predict(sample.image).labels
        trainer.model.train()
        return labels

    for ev in trainer.run():
        if isinstance(ev, Failed):
            raise RuntimeError(ev.message)
        if isinstance(ev, Progress) and ev.seconds >= boundary and done < rounds:
            pred = predict()
            if done:
                results.append((scores(pred, sample.truth), painted_fraction(paint), time.perf_counter() - start,
                                ev.iteration))
            done += 1
            boundary += round_seconds
            paint = correction_strokes(sample.truth, pred, paint, seed=seed + done)
            src.put([TrainingImage(sample.image, paint)])
        if isinstance(ev, Finished):
            pred = predict()
            results.append((scores(pred, sample.truth), painted_fraction(paint), time.perf_counter() - start,
                            ev.iteration))
    return results


def run_case(tag: str, sample: Sample, seconds: float, round_seconds: float, threads: int,
             seed: int = 0, **overrides: Any) -> list[str]:
    """All summary lines of one case (random forest, 60 s, correction rounds)."""
    lines = []
    rf_pred, rf_s = rf_baseline(sample.image, sample.paintings)
    lines.append(format_line(f"rf {tag}", scores(rf_pred, sample.truth), rf_s, painted_fraction(sample.paintings)))
    print(lines[-1], flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        pred, its = train_fresh(sample, seconds, Path(tmp) / "a", threads, seed, **overrides)
        lines.append(format_line(f"segstudio {tag} {seconds:.0f}s ({its} it)", scores(pred, sample.truth),
                                 time.perf_counter() - t0, painted_fraction(sample.paintings)))
        print(lines[-1], flush=True)
    for r, (sc, painted, secs, its) in enumerate(correction_session(sample, round_seconds, 2, threads, seed, **overrides), 1):
        lines.append(format_line(f"segstudio {tag} correction round {r} ({its} it)", sc, secs, painted))
        print(lines[-1], flush=True)
    return lines


def main(argv: Sequence[str] | None = None) -> None:
    """Command-line entry point: print one summary line per figure."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="2D only, 20 s and 3 x 10 s")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (the issue: 2 cores)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0], help="sample seeds")
    p.add_argument("--seconds", type=float, default=None, help="training budget (default 60, quick 20)")
    p.add_argument("--round-seconds", type=float, default=None, help="per correction round (30, quick 10)")
    p.add_argument("--dims", type=int, nargs="+", default=None, help="image ranks to run (default 2 3; quick 2)")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="override a TrainConfig default, as in tune.py (e.g. --set lr=0.005)")
    args = p.parse_args(argv)
    overrides = {k: parse_value(v) for k, v in (s.split("=", 1) for s in args.set)}
    torch.set_num_threads(args.threads)
    seconds = args.seconds or (20.0 if args.quick else 60.0)
    rounds = args.round_seconds or (10.0 if args.quick else 30.0)
    dims = args.dims or ([2] if args.quick else [2, 3])
    kinds = [(f"{d}d", {2: sample_2d, 3: sample_3d}[d]) for d in dims]
    for kind, make in kinds:
        for s in args.seeds:
            tag = kind if len(args.seeds) == 1 else f"{kind} seed{s}"
            run_case(tag, make(s), seconds, rounds, args.threads, s, **overrides)


if __name__ == "__main__":
    main()
