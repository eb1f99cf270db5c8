"""The table of the zoomed-nuclei probes (session 34):

    python benchmarks/runs/zoomed_nuclei_table_2026-12-05_s34.py benchmarks/runs/zoomed_nuclei_2026-12-05_s34.jsonl benchmarks/runs/zoomed_nuclei_rescaled_2026-12-05_s34.jsonl
"""
import json, sys
rows = [json.loads(l) for f in sys.argv[1:] for l in open(f) if l.strip()]
def key(r):
    return (r["habit"], r["zoom"], r["seed"])
cols = [("rf", False), ("segstudio", False), ("segstudio-rescaled", False), ("rf", True), ("segstudio", True), ("segstudio-rescaled", True)]
names = ["forest", "segstudio", "segstudio, image scaled down", "forest", "segstudio", "segstudio, image scaled down"]
got = {}
for r in rows:
    if r.get("set"):
        continue
    got[(key(r), r["method"], r.get("strokes") == "scaled")] = r
keys = sorted({key(r) for r in rows}, key=lambda k: (["casual", "outline", "sloppy"].index(k[0]), k[1], k[2]))
print("| habit | zoom | seed | " + " | ".join(f"{n} ({'strokes ×K' if s else 'strokes in px'})" for n, (m, s) in zip(names, cols)) + " |")
print("|" + "---|" * (3 + len(cols)))
for k in keys:
    cells = []
    for m, s in cols:
        r = got.get((k, m, s))
        cells.append("–" if r is None else f"{r['object']:.3f} · F1 {r['F1']:.2f}")
    print(f"| {k[0]} | {k[1]:g} | {k[2]} | " + " | ".join(cells) + " |")
