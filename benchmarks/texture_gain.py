"""The texture gain *textures* on ``auto`` goes by, on the quality matrix's paintings.

For every family, rank and seed, the simulated users' outline, casual and sloppy paintings
(``users.py``, which know nothing of the measure) are measured with
:func:`segstudio.core.textures.texture_gain`, exclusive and multi-label (the same content);
prints one line per image and, per family, how many paintings are above
:data:`segstudio.core.config.TEXTURE_GAIN` (where *auto* turns the region statistics on).

Usage::

    python benchmarks/texture_gain.py --seeds 0 1 2 3 4 5
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import families as fam  # noqa: E402
import users  # noqa: E402

from segstudio.core.config import TEXTURE_GAIN  # noqa: E402
from segstudio.core.textures import texture_gain  # noqa: E402

HABITS = ("outline", "casual", "sloppy")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--families", nargs="+", default=list(fam.FAMILIES), choices=list(fam.FAMILIES))
    args = p.parse_args(argv)
    above: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for family in args.families:
        for dims in (2, 3):
            for seed in args.seeds:
                sample = fam.make(family, dims, seed)
                cells = []
                for habit in HABITS:
                    painting = users.paint(sample, habit, seed)
                    g = texture_gain(sample.image, painting.paintings, "exclusive", None, sample.spacing)
                    ml = users.to_multilabel(painting, sample.kind)[0]
                    gm = texture_gain(sample.image, ml, "multilabel", None, sample.spacing)
                    cells.append(f"{habit} {g:+.2f} / {gm:+.2f}")
                    above[family][0] += int(g is not None and g > TEXTURE_GAIN)
                    above[family][1] += 1
                print(f"{family} {dims}D seed {seed}: " + " | ".join(cells), flush=True)
    print(f"\nabove {TEXTURE_GAIN} (exclusive; multi-label after the slash above):")
    for family, (n, total) in above.items():
        print(f"  {family}: {n} of {total} paintings")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
