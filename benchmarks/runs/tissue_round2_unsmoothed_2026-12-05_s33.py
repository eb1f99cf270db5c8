"""Is tissue's round-2 flip the network's, or the smoothing vote's? (session 33 probe)

The corrections cell's session as ``quality.py`` runs it (strokes follow the smoothed
predictions, as in the matrix), but each phase is predicted twice: smoothed (the table's) and
with the same weights unsmoothed (``smoothing_boxes`` emptied on the preview copy). Also prints
the network's counted ``region_share`` per class.

    python benchmarks/runs/tissue_round2_unsmoothed_2026-12-05_s33.py tissue 2 1
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import families as fam  # noqa: E402
import quality  # noqa: E402
import users  # noqa: E402


def main() -> None:
    import torch

    from segstudio.core.predictor import Predictor

    family, dims, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    modes = sys.argv[4:] or ["exclusive", "multilabel"]
    torch.set_num_threads(1)
    sample = fam.make(family, dims, seed)
    for mode in modes:
        painting = users.paint(sample, "corrections", seed)
        kind = sample.kind

        def paint_of(p: users.Painting):
            return p.paintings if mode == "exclusive" else users.to_multilabel(p, kind)[0]

        n = len(painting.class_names) if mode == "exclusive" else len(users.multilabel_channels(painting, kind)[0])
        steps = 1400 if dims == 2 else 370
        session = quality.Session(sample, paint_of(painting), mode, n, seed, {}, steps=3 * (steps // 2))
        p = painting
        try:
            for r, phase in enumerate(["first", "round1", "round2"]):
                session.train(steps=steps // 2)
                model = session.trainer.preview_model()
                config = session.trainer.config
                smoothed = Predictor(model, config).predict(sample.image).labels
                shares = [round(float(v), 3) for v in model.region_share]
                model.smoothing_boxes = ()
                raw = Predictor(model, config).predict(sample.image).labels
                session.trainer.model.train()
                for name, pred in (("smoothed", smoothed), ("unsmoothed", raw)):
                    s = quality.score(quality.as_exclusive(pred, mode, p, kind), p, sample)
                    print(mode, phase, name, {k: round(v, 4) for k, v in s.items()}, "region_share", shares,
                          flush=True)
                if r < 2:
                    p = users.correct(p, quality.as_exclusive(smoothed, mode, p, kind), seed, r + 1)
                    session.paint(paint_of(p))
        finally:
            session.close()


if __name__ == "__main__":
    main()
