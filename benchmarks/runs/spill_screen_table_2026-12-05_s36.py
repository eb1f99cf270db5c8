"""The session-36 screen of the spill changes on the sloppy cells, seed 0: foreground Dice
(precision) per cell and variant, from the rows beside this script.

The screen's variants ran through a temporary switch that is not in the code (only the kept
change is); the rows are kept for the record:

* ``ignore 0.15`` / ``0.3`` / ``0.5``: the spilled object paint left out, the rim part at that
  share, the threshold read on the whole strokes;
* ``relabel``: the same at 0.15, and the spill learnt as background instead of left out;
* ``trim``: the threshold read on the strokes less their spilled parts, nothing left out;
* ``trim + ignore``: both (every stroke counted as running past an edge);
* ``kept``: the code as committed (strokes that reach a bright object), from the matrix run
  ``quality.py --seeds 0 --habits outline sloppy`` (``final_outline_sloppy_seed0_…``).

    python benchmarks/runs/spill_screen_table_2026-12-05_s36.py
"""
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
BEFORE = HERE / "quality_seed0_2026-12-05_s32.jsonl"
VARIANTS = {
    "ignore 0.15": "spill_screen_ignore015_2d_seed0_2026-12-05_s36.jsonl",
    "relabel": "spill_screen_relabel_2d_seed0_2026-12-05_s36.jsonl",
    "ignore 0.3": "spill_screen_ignore03_2d_seed0_2026-12-05_s36.jsonl",
    "ignore 0.5": "spill_screen_ignore05_2d_seed0_2026-12-05_s36.jsonl",
    "trim": "spill_screen_trim_2d_seed0_2026-12-05_s36.jsonl",
    "trim + ignore": ("spill_screen_trim_ignore_2d_seed0_2026-12-05_s36.jsonl",
                      "spill_screen_trim_ignore_3d_seed0_2026-12-05_s36.jsonl"),
    "kept": "final_outline_sloppy_seed0_2026-12-05_s36.jsonl",
}
FIRST = ("object", "vessel", "granular")


def rows(names):
    out = {}
    for name in (names if isinstance(names, tuple) else (names,)):
        for line in (HERE / name).read_text().splitlines():
            r = json.loads(line)
            if r["method"] == "segstudio":
                key = (r["family"], r["dims"], r["habit"], r["mode"])
                first = next(k for k in FIRST if k in r)
                out[key] = f"{r[first]:.2f} ({r['precision']:.2f})"
    return out


before = rows(BEFORE.name)
table = {v: rows(f) for v, f in VARIANTS.items()}
print("| cell | before | " + " | ".join(VARIANTS) + " |")
print("|---" * (len(VARIANTS) + 2) + "|")
for habit in ("sloppy", "outline"):
    for dims in (2, 3):
        for family in ("nuclei", "cells", "dim", "vessels", "tissue"):
            for mode in ("exclusive", "multilabel"):
                key = (family, dims, habit, mode)
                cells = [table[v].get(key, "") for v in VARIANTS]
                if sum(bool(c) for c in cells) > 1:
                    print(f"| {family} {dims}D {habit} {mode} | {before[key]} | " + " | ".join(cells) + " |")
