"""What each image of the quality matrix allows: segstudio trained on its whole truth.

(Also: training from dense labels, ``--crop``: the truth of a crop only, as from an annotated
crop of a larger image; ``--discs``: a big brush; ``--slices``: a few whole slices of a volume.)

The corrections target of issue 14 asks for ≥ 0.95 foreground Dice after two correction
rounds. Whether that is reachable on an image depends on the image too: on a low-SNR image
the true edge of an object is not in the pixels. This script measures that ceiling per
family, dims and seed: the corrections cell's session (the same class set, configuration
choices made from the corrections painter's first strokes, the same schedule over the same
number of steps as the cell's three phases), but every pixel painted with its truth. Scores
are the matrix's (:func:`quality.score`), so a row compares with the corrections cell's
``round2`` row of the same seed.

Usage::

    python benchmarks/ceiling.py --seeds 0 1 --steps 1400 370 --jobs 2 --threads 1 --out runs/ceiling.jsonl
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import families as fam  # noqa: E402
import quality  # noqa: E402
import users  # noqa: E402
from bench_common import emit, parse_sets  # noqa: E402

HABIT = "corrections"


def run(family: str, dims: int, mode: str, seed: int, steps: int, threads: int,
        overrides: dict[str, Any] | None = None, crop: float = 1.0, discs: float = 0.0,
        slices: int = 0) -> dict[str, Any]:
    """One ceiling row: the corrections cell's session trained on the whole truth (or, with
    ``crop`` < 1, on the truth of the first ``crop`` of the last axis only, a densely
    annotated crop; with ``discs`` > 0, in random discs of 12 px radius (balls in 3D, by the
    spacing) that cover that share of the image: a heavy painter's big brush; with ``slices``
    > 0, on that many evenly spaced whole slices of a volume: a user who annotates a few slices
    completely; scored on the whole image)."""
    import numpy as np
    import torch

    torch.set_num_threads(threads)
    sample = fam.make(family, dims, seed)
    painting = users.paint(sample, HABIT, seed)
    kind = sample.kind
    dense = painting.truth.copy()
    dense[..., int(round(crop * dense.shape[-1])):] = 0
    if discs > 0:
        dense[~_discs(dense.shape, sample.spacing, discs, seed)] = 0
    if slices > 0:
        if dims != 3:
            raise ValueError("--slices is for volumes (--dims 3)")
        keep = np.zeros(dense.shape[0], bool)
        keep[np.linspace(0, dense.shape[0] - 1, slices + 2).round().astype(int)[1:-1]] = True
        dense[~keep] = 0
    full = users.Painting(dense, painting.truth, painting.class_names, HABIT, painting.params)

    def paint_of(p: users.Painting):
        return p.paintings if mode == "exclusive" else users.to_multilabel(p, kind)[0]

    n_classes = (len(painting.class_names) if mode == "exclusive"
                 else len(users.multilabel_channels(painting, kind)[0]))
    total = 3 * (steps // 2)  # the corrections cell's three phases
    # choices (wide context, textures, level slices, weights) from the painter's first strokes
    session = quality.Session(sample, paint_of(painting), mode, n_classes, seed, dict(overrides or {}), steps=total)
    try:
        session.paint(paint_of(full))  # before the first step: the trainer only ever sees the truth
        session.train(steps=total)
        pred = session.predict()
    finally:
        session.close()
    excl = quality.as_exclusive(pred, mode, full, kind)
    return {"family": family, "dims": dims, "habit": HABIT, "mode": mode, "seed": seed,
            "method": "segstudio-truth", "phase": "ceiling", "iterations": session.iteration,
            **({"set": overrides} if overrides else {}), **({"crop": crop} if crop < 1 else {}),
            **({"discs": discs} if discs > 0 else {}), **({"slices": slices} if slices > 0 else {}),
            **{k: round(v, 4) for k, v in quality.score(excl, full, sample).items()}}


def _discs(shape: tuple[int, ...], spacing: Any, share: float, seed: int, radius: float = 12.0):
    """A mask of random discs (balls, per axis by ``spacing``) covering ``share`` of ``shape``."""
    import numpy as np

    rng = np.random.default_rng([seed, 33])
    scale = [1.0] * len(shape) if spacing is None else [float(s) / min(spacing) for s in spacing]
    grid = np.indices(shape, dtype=np.float32)
    mask = np.zeros(shape, bool)
    while mask.mean() < share:
        c = [rng.uniform(0, n) for n in shape]
        d2 = sum(((g - ci) * sc) ** 2 for g, ci, sc in zip(grid, c, scale))
        mask |= d2 <= radius ** 2
    return mask


def _setting(row: dict[str, Any]) -> str:
    """What a row trained with: its weights, crop or discs, and code variant."""
    parts = [f"weights {row.get('set', {}).get('weight_method', 'default')}"]
    if "crop" in row:
        parts.append(f"crop {row['crop']}")
    if "discs" in row:
        parts.append(f"discs {row['discs']}")
    if "slices" in row:
        parts.append(f"{row['slices']} slices")
    if "variant" in row:
        parts.append(row["variant"])
    return ", ".join(parts)


def table(rows: list[dict[str, Any]], matrix: list[dict[str, Any]] = ()) -> str:
    """One line per family and dims: each setting's foreground Dice (precision) per seed, and
    with ``matrix`` rows (``quality.py --out``) the corrections cell's ``round2`` beside them."""
    settings = sorted({_setting(r) for r in rows})
    keys = sorted({(r["family"], r["dims"], r["mode"]) for r in rows},
                  key=lambda k: (list(fam.FAMILIES).index(k[0]), k[1], k[2]))
    seeds = sorted({r["seed"] for r in rows})

    def fg(r: dict[str, Any]) -> str:
        name = next(k for k in ("object", "vessel", "granular") if k in r)
        return f"{r[name]:.3f} ({r['precision']:.2f})"

    head = ["family", "dims", "mode"] + settings + (["matrix round 2"] if matrix else [])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for f, d, m in keys:
        cells = []
        for st in settings:
            got = {r["seed"]: fg(r) for r in rows if (r["family"], r["dims"], r["mode"]) == (f, d, m)
                   and _setting(r) == st}
            cells.append(" · ".join(got.get(s, "–") for s in seeds))
        if matrix:
            got = {r["seed"]: fg(r) for r in matrix if (r["family"], r["dims"], r["mode"]) == (f, d, m)
                   and r["habit"] == HABIT and r["method"] == "segstudio" and r["phase"] == "round2"}
            cells.append(" · ".join(got.get(s, "–") for s in seeds))
        lines.append(f"| {f} | {d}D | {m} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + f"\n(seeds {', '.join(map(str, seeds))}, each cell lists them in that order)"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--families", nargs="+", default=list(fam.FAMILIES), choices=list(fam.FAMILIES))
    p.add_argument("--dims", type=int, nargs="+", default=[2, 3], choices=[2, 3])
    p.add_argument("--modes", nargs="+", default=["exclusive"], choices=list(quality.MODES))
    p.add_argument("--steps", type=int, nargs=2, default=[1400, 370], metavar=("STEPS_2D", "STEPS_3D"),
                   help="the matrix's steps per cell (the ceiling trains 1.5× that, as the corrections cell)")
    p.add_argument("--jobs", type=int, default=1)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--crop", type=float, default=1.0,
                   help="paint the truth on this fraction of the last axis only (a dense crop)")
    p.add_argument("--discs", type=float, default=0.0,
                   help="paint the truth in random discs covering this share of the image (a big brush)")
    p.add_argument("--slices", type=int, default=0,
                   help="paint the truth on this many evenly spaced whole slices of each volume")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="a TrainConfig field for every session (as quality.py's --set)")
    p.add_argument("--variant", default=None, help="a name recorded in every row (which code ran)")
    p.add_argument("--out", type=Path, default=None, help="append every row as a JSON line to this file")
    p.add_argument("--table", type=Path, nargs="+", default=None, metavar="FILE",
                   help="print the table of earlier --out files and exit")
    p.add_argument("--matrix", type=Path, nargs="+", default=(), metavar="FILE",
                   help="with --table: quality.py rows whose corrections round 2 to show beside")
    a = p.parse_args(argv)
    if a.table:
        def read(paths):
            return [json.loads(line) for path in paths for line in path.read_text().splitlines() if line.strip()]
        print(table(read(a.table), read(a.matrix)))
        return
    if a.slices and 2 in a.dims:
        p.error("--slices is for volumes: give --dims 3")
    cells = list(itertools.product(a.families, a.dims, a.modes, a.seeds))
    with ProcessPoolExecutor(a.jobs) as pool:
        futures = [pool.submit(run, f, d, m, s, a.steps[0] if d == 2 else a.steps[1], a.threads,
                               parse_sets(a.set), a.crop, a.discs, a.slices)
                   for f, d, m, s in cells]
        for fut in futures:
            row = fut.result()
            if a.variant:
                row["variant"] = a.variant
            emit(row, a.out)


if __name__ == "__main__":
    main()
