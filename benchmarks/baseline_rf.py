"""Classical baseline: ilastik-style random forest on multiscale pixel features.

Features: :func:`skimage.feature.multiscale_basic_features` (intensity, edges, texture,
sigma 1..16), classifier: scikit-learn ``RandomForestClassifier`` trained on painted pixels
only, prediction on every pixel. This is what the live U-Net is compared against.

Usage::

    python benchmarks/baseline_rf.py --quick     # sample_2d + sample_3d, seed 0
    python benchmarks/baseline_rf.py             # + coins, 3 seeds, one correction round
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

import numpy as np
from skimage.feature import multiscale_basic_features
from sklearn.ensemble import RandomForestClassifier

from segstudio.core.samples import Sample, coins_sample, correction_strokes, sample_2d, sample_3d

CLASS_LABELS: dict[str, tuple[int, ...]] = {
    "nucleus": (2, 3),
    "interior": (2,),
    "boundary": (3,),
    "background": (1,),
}


def rf_baseline(
    image: np.ndarray,
    paintings: np.ndarray,
    *,
    sigma_min: float = 1.0,
    sigma_max: float = 16.0,
    n_estimators: int = 50,
    max_depth: int = 10,
    n_jobs: int = 2,
    random_state: int = 0,
) -> tuple[np.ndarray, float]:
    """Train a random forest on the painted pixels and predict every pixel.

    Parameters
    ----------
    image
        2D ``(y, x)`` or 3D ``(z, y, x)`` single-channel image.
    paintings
        Same shape; 0 = unpainted, 1..K = class.
    sigma_min, sigma_max
        Feature scales in pixels.
    n_estimators, max_depth, n_jobs, random_state
        Random forest settings.

    Returns
    -------
    prediction
        Uint8 labels 1..K, shape of ``image``.
    seconds
        Wall time of features + training + prediction.
    """
    start = time.perf_counter()
    features = multiscale_basic_features(
        np.asarray(image, dtype=np.float32),
        intensity=True,
        edges=True,
        texture=True,
        sigma_min=sigma_min,
        sigma_max=sigma_max,
        channel_axis=None,
    )
    flat = features.reshape(-1, features.shape[-1])
    labels = np.asarray(paintings).reshape(-1)
    painted = labels > 0
    clf = RandomForestClassifier(
        n_estimators=n_estimators, max_depth=max_depth, n_jobs=n_jobs, random_state=random_state
    )
    clf.fit(flat[painted], labels[painted])
    prediction = clf.predict(flat).reshape(np.shape(image)).astype(np.uint8)
    return prediction, time.perf_counter() - start


def dice(prediction: np.ndarray, truth: np.ndarray, labels: Sequence[int]) -> float:
    """Dice overlap of the pixels whose label is in ``labels`` (1.0 when both are empty)."""
    p = np.isin(prediction, labels)
    t = np.isin(truth, labels)
    denom = int(p.sum()) + int(t.sum())
    return 1.0 if denom == 0 else 2.0 * int((p & t).sum()) / denom


def scores(prediction: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Dice per reported class (nucleus = interior ∪ boundary)."""
    return {name: dice(prediction, truth, labels) for name, labels in CLASS_LABELS.items()}


def format_line(tag: str, result: dict[str, float], seconds: float, painted: float) -> str:
    """One summary line, e.g. ``rf 2d: nucleus dice 0.80 interior ... in 0.9 s``.

    ``tag`` names the method and case (``"rf 2d"``); ``painted`` is a fraction of pixels.
    """
    parts = " ".join(f"{k} {v:.2f}" for k, v in result.items() if k != "nucleus")
    return (
        f"{tag}: nucleus dice {result['nucleus']:.2f} {parts} in {seconds:.1f} s "
        f"(painted {100 * painted:.2f} %)"
    )


def run_case(tag: str, sample: Sample, correction_rounds: int = 0, seed: int = 0) -> list[str]:
    """Baseline on one sample, optionally followed by simulated correction rounds."""
    lines = []
    paintings = sample.paintings
    for round_ in range(correction_rounds + 1):
        prediction, seconds = rf_baseline(sample.image, paintings)
        label = f"rf {tag}" if round_ == 0 else f"rf {tag} +corr{round_}"
        lines.append(format_line(label, scores(prediction, sample.truth), seconds, float(np.mean(paintings > 0))))
        if round_ < correction_rounds:
            paintings = correction_strokes(sample.truth, prediction, paintings, seed=seed + round_)
    return lines


def main(argv: Sequence[str] | None = None) -> None:
    """Command-line entry point: print one summary line per case."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="sample_2d and sample_3d, seed 0 only")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per case without --quick")
    parser.add_argument("--corrections", type=int, default=2, help="correction rounds without --quick")
    args = parser.parse_args(argv)
    if args.quick:
        cases = [("2d", sample_2d(0), 0), ("3d", sample_3d(0), 0)]
        rounds = 0
    else:
        cases = [(f"{kind} seed{s}", fn(s), s) for kind, fn in (("2d", sample_2d), ("3d", sample_3d)) for s in range(args.seeds)]
        cases.append(("coins", coins_sample(0), 0))
        rounds = args.corrections
    for tag, sample, seed in cases:
        for line in run_case(tag, sample, rounds, seed):
            print(line, flush=True)


if __name__ == "__main__":
    main()
