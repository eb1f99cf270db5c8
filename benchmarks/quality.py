"""segstudio vs the random-forest baseline on the synthetic nuclei samples.

Protocol (issue 4): train on the simulated strokes for ``--seconds`` (60 s) on the CPU, predict
the whole image, score Dice per class against the truth; then the correction-round scenario:
after 30 s, add 10 correction strokes into the largest wrong regions and resume for 30 s, twice.
The random forest (``baseline_rf.py``) is scored on the same strokes side by side.

Usage::

    python benchmarks/quality.py --quick        # 2D only, seed 0, shorter times
    python benchmarks/quality.py                # 2D and 3D, 60 s and 30 s + 2 x 30 s
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
from baseline_rf import format_line, rf_baseline, scores  # noqa: E402

from segstudio.core.data import SnapshotSource, TrainingImage  # noqa: E402
from segstudio.core.predictor import Predictor  # noqa: E402
from segstudio.core.run import load_run  # noqa: E402
from segstudio.core.samples import Sample, correction_strokes, sample_2d, sample_3d  # noqa: E402
from segstudio.core.trainer import Finished, infer_config, train  # noqa: E402


def train_for(sample: Sample, paintings: np.ndarray, seconds: float, run: Path, resume: bool,
              threads: int) -> np.ndarray:
    """Train (or resume) for ``seconds`` and return the whole-image prediction."""
    cfg = infer_config(sample.image.shape, paintings, "exclusive", n_classes=3, iterations=None,
                       minutes=seconds / 60.0, spacing=sample.spacing, seed=0, num_threads=threads)
    src = SnapshotSource()
    src.put([TrainingImage(sample.image, paintings)])
    events = list(train(cfg, src, run, resume=run if resume else None))
    if not isinstance(events[-1], Finished):
        raise RuntimeError(str(events[-1]))
    loaded = load_run(run)
    return Predictor(loaded.model, loaded.config, device="cpu").predict(sample.image).labels


def run_case(tag: str, sample: Sample, seconds: float, round_seconds: float, threads: int) -> list[str]:
    painted = lambda p: np.count_nonzero(p) / p.size  # noqa: E731
    lines = []
    rf_pred, rf_s = rf_baseline(sample.image, sample.paintings)
    lines.append(format_line(f"rf {tag}", scores(rf_pred, sample.truth), rf_s, painted(sample.paintings)))
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        pred = train_for(sample, sample.paintings, seconds, Path(tmp) / "a", False, threads)
        lines.append(format_line(f"segstudio {tag} {seconds:.0f}s", scores(pred, sample.truth),
                                 time.perf_counter() - t0, painted(sample.paintings)))
        paint = sample.paintings
        pred = train_for(sample, paint, round_seconds, Path(tmp) / "b", False, threads)
        for r in (1, 2):
            paint = correction_strokes(sample.truth, pred, paint, seed=r)
            pred = train_for(sample, paint, round_seconds, Path(tmp) / "b", True, threads)
            lines.append(format_line(f"segstudio {tag} correction round {r}", scores(pred, sample.truth),
                                     round_seconds * (r + 1), painted(paint)))
    return lines


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="2D only, 20 s + 2 x 10 s")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    cases = [("2d", sample_2d(0))] + ([] if args.quick else [("3d", sample_3d(0))])
    seconds, rounds = (20.0, 10.0) if args.quick else (60.0, 30.0)
    for tag, sample in cases:
        for line in run_case(tag, sample, seconds, rounds, args.threads):
            print(line, flush=True)


if __name__ == "__main__":
    main()
