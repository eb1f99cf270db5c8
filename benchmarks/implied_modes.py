"""Do the two modes infer the same labels from the same content? (no training)

For every family, dimensionality, habit and seed of the quality matrix, the simulated user's
painting is read both as exclusive classes and as multi-label channels with the same content
(``users.to_multilabel``), and the implied-label rules (``core.implied``: outlines and the
background rule) run on each, and the paint each leaves out of training (``SPILLED``) is
compared too (a line where the two masks differ). The exclusive labels are mapped into each channel (present where
the class is one of the channel's, absent otherwise) and compared with what the channel infers
itself. A line is printed for every channel where the two differ on more than ``--tolerance``
of what exclusive mode infers there: the counts, how many of each are wrong against the truth,
the pixels only one mode infers, and conflicts.

Usage::

    python benchmarks/implied_modes.py                       # every cell, seeds 0-2
    python benchmarks/implied_modes.py --families dim --dims 3 --seeds 0

By design the outline rule's band outside a filled object is not inferred in a boundary
channel (``core.outlines``), so outline paintings of the object families show ``only_e`` there.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import families as fam  # noqa: E402
import users  # noqa: E402

from segstudio.core.implied import SPILLED, implied_labels, merged  # noqa: E402

FAMILIES = tuple(fam.FAMILIES)


def pooled(labels: dict[str, np.ndarray | None], shape: tuple[int, ...]) -> np.ndarray:
    """The rules' labels in one array, the first rule winning where they overlap (as trained;
    :func:`~segstudio.core.implied.merged`), zeros where no rule says anything."""
    out = merged(labels)
    return np.zeros(shape, np.uint8) if out is None else out


def compare(family: str, dims: int, habit: str, seed: int, tolerance: float) -> list[str]:
    """One line per channel whose labels differ between the modes by more than ``tolerance``."""
    sample = fam.make(family, dims, seed)
    painting = users.paint(sample, habit, seed)
    ml, truth, names = users.to_multilabel(painting, sample.kind)
    _, present = users.multilabel_channels(painting, sample.kind)
    read_e = implied_labels(painting.paintings, sample.image, "exclusive", outlines=True, background=True)
    read_m = implied_labels(ml, sample.image, "multilabel", outlines=True, background=True)
    excl, multi = pooled(read_e, painting.paintings.shape), pooled(read_m, ml.shape)
    lines = []
    # the paint left out of training (SPILLED): one spatial mask, the same in both modes
    spilled = [np.zeros(painting.paintings.shape, bool) if r.get(SPILLED) is None else r[SPILLED]
               for r in (read_e, read_m)]
    if (spilled[0] != spilled[1]).any():
        lines.append(f"not learnt: exclusive {int(spilled[0].sum())} multi-label {int(spilled[1].sum())} "
                     f"differ {int((spilled[0] != spilled[1]).sum())}")
    for c, classes in enumerate(present):
        e = np.where(excl == 0, 0, np.where(np.isin(excl, classes), 1, 2)).astype(np.uint8)
        e[ml[c] > 0] = 0  # painted in this channel: no rule says anything there
        m = multi[c]
        only_e = int(((e > 0) & (m == 0)).sum())
        only_m = int(((m > 0) & (e == 0)).sum())
        conflict = int(((e > 0) & (m > 0) & (e != m)).sum())

        def wrong(lab: np.ndarray) -> int:
            return int(((lab == 1) & ~truth[c]).sum() + ((lab == 2) & truth[c]).sum())

        if (only_e + only_m + conflict) / max(int((e > 0).sum()), 1) > tolerance:
            lines.append(f"{names[c]}: exclusive {int((e > 0).sum())} (wrong {wrong(e)}) multi-label "
                         f"{int((m > 0).sum())} (wrong {wrong(m)}) only_e {only_e} only_m {only_m} "
                         f"conflict {conflict}")
    return lines


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--families", nargs="+", default=list(FAMILIES), choices=FAMILIES)
    p.add_argument("--dims", nargs="+", type=int, default=[2, 3], choices=[2, 3])
    p.add_argument("--habits", nargs="+", default=list(users.HABITS), choices=users.HABITS)
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--tolerance", type=float, default=0.05, help="fraction of exclusive mode's labels")
    a = p.parse_args()
    n = 0
    for family in a.families:
        for dims in a.dims:
            for habit in a.habits:
                for seed in a.seeds:
                    lines = compare(family, dims, habit, seed, a.tolerance)
                    n += 1
                    if lines:
                        print(family, f"{dims}D", habit, f"seed {seed}:", " | ".join(lines), flush=True)
    print(f"[{n} paintings compared]")


if __name__ == "__main__":
    main()
