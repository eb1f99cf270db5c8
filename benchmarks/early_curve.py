"""How a quality-matrix cell's prediction grows over the first steps: the averaged weights
(what the app previews and the matrix scores) beside the current ones.

One cell of ``quality.py`` (same image, same simulated first strokes, the learning rate planned
over ``--plan`` steps as the corrections habit plans it), trained once per seed; at each of
``--at`` steps the whole image is predicted with both sets of weights and scored as the matrix
scores it (Dice per class).

Usage::

    python benchmarks/early_curve.py --family tissue --dims 3 --habit corrections --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import families as fam  # noqa: E402
import quality  # noqa: E402
import users  # noqa: E402
from bench_common import parse_sets  # noqa: E402


def curve(family: str, dims: int, habit: str, seed: int, plan: int, at: list[int],
          overrides: dict) -> list[dict]:
    """Rows ``{seed, step, weights, <class>: Dice, ...}`` for the averaged and current weights."""
    from segstudio.core.predictor import Predictor

    sample = fam.make(family, dims, seed)
    painting = users.paint(sample, habit, seed)
    session = quality.Session(sample, painting.paintings, "exclusive", len(painting.class_names), seed,
                              overrides, steps=plan)
    rows = []
    try:
        for step in at:
            session.train(steps=step - session.iteration)
            trainer = session.trainer
            for name, model in (("averaged", trainer.preview_model()), ("current", trainer.model.eval())):
                pred = Predictor(model, trainer.config).predict(sample.image).labels
                scores = quality.score(pred, painting, sample)
                rows.append({"seed": seed, "step": session.iteration, "weights": name,
                             **{k: round(v, 3) for k, v in scores.items()}})
            trainer.model.train()
    finally:
        session.close()
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--family", default="tissue", choices=list(fam.FAMILIES))
    p.add_argument("--dims", type=int, default=3, choices=(2, 3))
    p.add_argument("--habit", default="corrections", choices=list(users.HABITS))
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--plan", type=int, default=555, help="steps the learning-rate schedule is planned over")
    p.add_argument("--at", type=int, nargs="+", default=[60, 120, 185, 250, 370], help="steps to predict at")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help="TrainConfig overrides")
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    overrides = parse_sets(args.set)
    for seed in args.seeds:
        for r in curve(args.family, args.dims, args.habit, seed, args.plan, sorted(args.at), overrides):
            scores = " ".join(f"{k} {v:.2f}" for k, v in r.items() if k not in ("seed", "step", "weights"))
            print(f"seed {r['seed']} step {r['step']:4d} {r['weights']:9s} {scores}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
