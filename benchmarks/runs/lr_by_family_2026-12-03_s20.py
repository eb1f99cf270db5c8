"""Twice the learning rate on the 3-D cells, read per family and seed (session 20).

Pairs rows of the same cell, seed and phase at ``lr`` 0.005 and 0.01 and prints, per family and
(mode, seed), the mean change of the foreground Dice (object / vessel / granular) and how many
rows gain or lose by more than 0.005; then each family over every pair. Usage::

    python benchmarks/runs/lr_by_family_2026-12-03_s20.py
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
#: (rows at 0.005, rows at 0.01); the seed-0 rows at 0.005 are the README's (3-D rows only).
PAIRS = [
    ("quality_seed0_2026-12-03_s18.jsonl", "lr_001_3d_seed0_2026-12-03_s19.jsonl"),
    ("lr_0005_3d_exclusive_seed1_2026-12-03_s19.jsonl", "lr_001_3d_exclusive_seed1_2026-12-03_s19.jsonl"),
    ("lr_0005_3d_exclusive_seed2_2026-12-03_s20.jsonl", "lr_001_3d_exclusive_seed2_2026-12-03_s20.jsonl"),
    ("lr_0005_3d_multilabel_seed1_2026-12-03_s20.jsonl", "lr_001_3d_multilabel_seed1_2026-12-03_s20.jsonl"),
]
FOREGROUND = ("object", "vessel", "granular")


def rows(name: str) -> dict[tuple, float]:
    out = {}
    path = HERE / name
    if not path.exists():
        print(f"(missing: {name})", file=sys.stderr)
        return out
    for line in path.open():
        r = json.loads(line)
        if r["method"] != "segstudio" or r["dims"] != 3:
            continue
        fg = next(r[k] for k in FOREGROUND if k in r)
        out[(r["family"], r["habit"], r["mode"], r["seed"], r["phase"])] = fg
    return out


def main() -> None:
    by = defaultdict(list)
    for before, after in PAIRS:
        a, b = rows(before), rows(after)
        for key in sorted(set(a) & set(b)):
            family, _, mode, seed, _ = key
            by[(family, mode, seed)].append(b[key] - a[key])
    families = sorted({k[0] for k in by})
    print("| family | mode | seed | rows | better | worse | mean change |")
    print("|---|---|---|---|---|---|---|")
    for key in sorted(by):
        d = by[key]
        print(f"| {key[0]} | {key[1]} | {key[2]} | {len(d)} | {sum(x > 0.005 for x in d)} | "
              f"{sum(x < -0.005 for x in d)} | {sum(d) / len(d):+.3f} |")
    print()
    print("| family | rows | better | worse | mean change |")
    print("|---|---|---|---|---|")
    for f in families:
        d = [x for k, v in by.items() if k[0] == f for x in v]
        print(f"| {f} | {len(d)} | {sum(x > 0.005 for x in d)} | {sum(x < -0.005 for x in d)} | {sum(d) / len(d):+.3f} |")


if __name__ == "__main__":
    main()
