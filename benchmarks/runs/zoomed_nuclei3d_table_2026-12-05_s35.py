"""The 3-D zoom probe's table (session 35):

    python benchmarks/runs/zoomed_nuclei3d_table_2026-12-05_s35.py benchmarks/runs/zoomed_nuclei3d_2026-12-05_s35.jsonl benchmarks/runs/quality_seed0_2026-12-05_s32.jsonl benchmarks/runs/quality_seed1_2026-12-05_s32.jsonl

Per habit and seed, foreground Dice · precision · instance F1 of the forest and of segstudio
without a factor and with ``downsample=4`` on the volume at zoom 4, beside segstudio on the
matrix's own volume (zoom 1, exclusive, from the seed files given; "–" where absent).
"""
import json
import sys

rows = [json.loads(line) for f in sys.argv[1:] for line in open(f) if line.strip()]
got = {}
for r in rows:
    if r.get("family") != "nuclei" or r.get("dims") != 3 or r.get("mode") != "exclusive" or r.get("phase") != "final":
        continue
    zoom = r.get("zoom", 1)
    ds = (r.get("set") or {}).get("downsample", 1)
    got[(r["habit"], r["seed"], zoom, ds, r["method"])] = r


def cell(r):
    return "–" if r is None else f"{r['object']:.3f} · {r['precision']:.2f} · F1 {r['F1']:.2f}"


print("| habit | seed | forest (zoom 4) | segstudio (zoom 4) | **downsample 4** (zoom 4) | segstudio (zoom 1, the matrix) |")
print("|---|---|---|---|---|---|")
for habit in ("casual", "outline", "sloppy"):
    for seed in (0, 1):
        print(f"| {habit} | {seed} | {cell(got.get((habit, seed, 4, 1, 'rf')))} | "
              f"{cell(got.get((habit, seed, 4, 1, 'segstudio')))} | {cell(got.get((habit, seed, 4, 4, 'segstudio')))} | "
              f"{cell(got.get((habit, seed, 1, 1, 'segstudio')))} |")
