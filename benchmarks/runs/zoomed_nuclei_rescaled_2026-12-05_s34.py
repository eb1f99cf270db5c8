"""Larger objects than the matrix's, trained on the image scaled back down (session 34).

``zoomed_nuclei_probe_2026-12-05_s34.py`` makes the *nuclei* family's 2-D image at zoom K
(the same specimen with K× smaller pixels). Here the user paints that full-size image, and
segstudio trains and predicts on it block-averaged by the integer factor K (the paintings
reduced alike: a block takes the class most of its painted pixels have); the prediction is
repeated back to full size and scored there against the full-size truth, as ``quality.py``
scores (the forest's rows are the zoom probe's, on the full-size image). A measurement of
what scaling objects to the network's size would give, not a feature.

    python benchmarks/runs/zoomed_nuclei_rescaled_2026-12-05_s34.py K SEED HABIT… [strokes=scaled] >> rows.jsonl

(``strokes=scaled``: the painting is the matrix image's, enlarged K× with the image, as the
zoom probe's ``strokes=scaled``.)
"""
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import numpy as np  # noqa: E402
import torch  # noqa: E402
from skimage.measure import block_reduce  # noqa: E402

import families as fam  # noqa: E402
import quality as q  # noqa: E402
import users  # noqa: E402
from bench_common import load_probe  # noqa: E402

def main(k: int, seed: int, habits: list[str], scaled: bool = False) -> None:
    zoom = load_probe("zoomed_nuclei_probe_2026-12-05_s34.py")
    torch.set_num_threads(1)
    sample = zoom.zoomed(fam.SHAPE_2D, seed, k)
    for habit in habits:
        p = zoom.scaled_painting(sample, habit, seed, k) if scaled else users.paint(sample, habit, seed)
        small = block_reduce(sample.image, (k, k), np.mean).astype(np.float32)
        n = len(p.class_names)
        votes = np.stack([block_reduce((p.paintings == c).astype(np.int32), (k, k), np.sum) for c in range(1, n + 1)])
        paint = np.where(votes.sum(0) > 0, votes.argmax(0) + 1, 0).astype(np.uint8)
        small_sample = fam.FamilySample(small, block_reduce(sample.truth, (k, k), np.max), np.zeros(small.shape, np.int32),
                                        sample.class_names, sample.kind, sample.family, None)
        session = q.Session(small_sample, paint, "exclusive", n, seed, {}, steps=1400)
        try:
            session.train(steps=1400)
            pred = np.kron(session.predict(), np.ones((k, k), np.uint8))[: sample.image.shape[0], : sample.image.shape[1]]
        finally:
            session.close()
        row = {"family": "nuclei", "dims": 2, "habit": habit, "mode": "exclusive", "seed": seed,
               "method": "segstudio-rescaled", "phase": "final", "zoom": float(k), "scaled_by": 1.0 / k,
               "iterations": session.iteration, **({"strokes": "scaled"} if scaled else {}),
               **{kk: round(v, 4) for kk, v in q.score(pred, p, sample).items()}}
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "strokes=scaled"]
    main(int(args[0]), int(args[1]), args[2:] or ["casual"], "strokes=scaled" in sys.argv[1:])
