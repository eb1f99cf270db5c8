"""Probe: do segstudio's predictions carry the balanced training prior, and does undoing it help?

Training balances the classes twice (patches centred on each painted class equally often, and
``balanced`` class weights), so the network's softmax is close to the posterior under equal
class priors. On an image where the background is 85 % of the pixels that calls ambiguous
pixels (blurred edges, the axial blur of a volume) object. Saerens, Latinne & Decaestecker
(2002, "Adjusting the outputs of a classifier to new a priori probabilities") estimate the
image's own prior by EM from the posteriors and re-weigh them: p'(k|x) ∝ (π_k / π⁰_k) p(k|x),
π_k ← mean_x p'(k|x), with π⁰ the training prior (here uniform).

Each cell of the matrix (matrix steps, one thread) is trained once as ``quality.py`` trains it,
predicted with probabilities, and scored three ways: as is (the table's row), after the EM prior
(``em``), and after one EM step (``em1``). Multi-label channels: each sigmoid as a binary
posterior with training prior 1/2. Prints one JSON line per cell.

    python benchmarks/runs/prior_shift_probe_2026-12-05_s33.py --jobs 2 --out rows.jsonl
"""

from __future__ import annotations

import argparse
import itertools
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import families as fam  # noqa: E402
import quality  # noqa: E402
import users  # noqa: E402
from bench_common import emit  # noqa: E402


def em_prior(prob: np.ndarray, iterations: int = 100, tol: float = 1e-6,
             fixed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Saerens EM on ``(K, N)`` posteriors made under a uniform prior: the posteriors adjusted
    to the prior estimated in ``iterations`` steps (or to ``fixed``), and that prior."""
    k = prob.shape[0]
    p0 = np.full(k, 1.0 / k)

    def adjust(pi: np.ndarray) -> np.ndarray:
        w = (pi / p0)[:, None] * prob
        return w / w.sum(0, keepdims=True)

    pi = p0.copy() if fixed is None else np.asarray(fixed, np.float64)
    for _ in range(0 if fixed is not None else iterations):
        new = adjust(pi).mean(1)
        done = np.abs(new - pi).max() < tol
        pi = new
        if done:
            break
    return adjust(pi), pi


def adjusted_labels(prob: np.ndarray, mode: str, iterations: int,
                    fixed: np.ndarray | None = None) -> tuple[np.ndarray, list[float]]:
    """Labels after the EM prior, or the ``fixed`` one (exclusive 1..K; multi-label 0/1 per
    channel, ``fixed`` then holds each channel's present share)."""
    spatial = prob.shape[1:]
    flat = prob.reshape(prob.shape[0], -1).astype(np.float64)
    if mode == "exclusive":
        post, pi = em_prior(flat, iterations, fixed=fixed)
        return (post.argmax(0) + 1).reshape(spatial).astype(np.uint8), [round(float(v), 4) for v in pi]
    out, pis = [], []
    for c in range(flat.shape[0]):
        two = np.stack([1.0 - flat[c], flat[c]])
        post, pi = em_prior(two, iterations, fixed=None if fixed is None else [1 - fixed[c], fixed[c]])
        out.append(post[1] > 0.5)
        pis.append(round(float(pi[1]), 4))
    return np.stack(out).reshape(prob.shape).astype(np.uint8), pis


def run(family: str, dims: int, habit: str, mode: str, seed: int, steps: int) -> dict:
    import torch

    from segstudio.core.predictor import Predictor

    torch.set_num_threads(1)
    sample = fam.make(family, dims, seed)
    painting = users.paint(sample, habit, seed)
    kind = sample.kind
    paint = painting.paintings if mode == "exclusive" else users.to_multilabel(painting, kind)[0]
    n_classes = (len(painting.class_names) if mode == "exclusive"
                 else len(users.multilabel_channels(painting, kind)[0]))
    session = quality.Session(sample, paint, mode, n_classes, seed, {}, steps=steps)
    try:
        session.train(steps=steps)
        model = session.trainer.preview_model()
        res = Predictor(model, session.trainer.config).predict(sample.image, probabilities=True)
    finally:
        session.close()
    # the oracle: the truth's own class shares (what a perfect prior estimate would give)
    if mode == "exclusive":
        truth_prior = np.bincount(painting.truth.ravel(), minlength=n_classes + 1)[1:] / painting.truth.size
    else:
        truth_ml = users.to_multilabel(painting, kind)[1]
        truth_prior = truth_ml.reshape(n_classes, -1).mean(1)
    row = {"family": family, "dims": dims, "habit": habit, "mode": mode, "seed": seed}
    for name, labels in (("as_is", res.labels),
                         ("em", adjusted_labels(res.probabilities, mode, 100)[0]),
                         ("em1", adjusted_labels(res.probabilities, mode, 1)[0]),
                         ("oracle", adjusted_labels(res.probabilities, mode, 0, truth_prior)[0])):
        excl = quality.as_exclusive(labels, mode, painting, kind)
        row[name] = {k: round(v, 4) for k, v in quality.score(excl, painting, sample).items()}
    row["prior"] = adjusted_labels(res.probabilities, mode, 100)[1]
    row["truth_prior"] = [round(float(v), 4) for v in truth_prior]
    return row


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--families", nargs="+", default=list(fam.FAMILIES))
    p.add_argument("--dims", type=int, nargs="+", default=[2, 3])
    p.add_argument("--habits", nargs="+", default=["outline", "casual", "sloppy"])
    p.add_argument("--modes", nargs="+", default=["exclusive"])
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--steps", type=int, nargs=2, default=[1400, 370])
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--out", type=Path, default=None)
    a = p.parse_args()
    cells = list(itertools.product(a.families, a.dims, a.habits, a.modes, a.seeds))
    with ProcessPoolExecutor(a.jobs) as pool:
        futs = [pool.submit(run, f, d, h, m, s, a.steps[0] if d == 2 else a.steps[1]) for f, d, h, m, s in cells]
        for fut in futs:
            emit(fut.result(), a.out)


if __name__ == "__main__":
    main()
