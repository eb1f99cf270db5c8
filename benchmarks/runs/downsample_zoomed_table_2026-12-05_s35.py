"""The built-in *downsample* on the zoomed nuclei (session 35), beside session 34's rows:

    python benchmarks/runs/downsample_zoomed_table_2026-12-05_s35.py \\
        benchmarks/runs/zoomed_nuclei_2026-12-05_s34.jsonl \\
        benchmarks/runs/zoomed_nuclei_rescaled_2026-12-05_s34.jsonl \\
        benchmarks/runs/downsample_zoomed_nuclei_2026-12-05_s35.jsonl

Rows with ``set: {"downsample": K}`` are segstudio with ``TrainConfig.downsample = K`` (made
by ``runs/zoomed_nuclei_probe_2026-12-05_s34.py K SEED HABIT… downsample=K``); the others
are session 34's (forest, segstudio as it was, and the probe that trained on the image
block-averaged outside segstudio). Prints the table, then per zoom the count of cells where
the built-in factor is better / level (within 0.005) / worse than none, on Dice and on F1.
"""
import json
import sys

rows = [json.loads(line) for f in sys.argv[1:] for line in open(f) if line.strip()]
got = {}
for r in rows:
    s = r.get("set") or {}
    if s and set(s) != {"downsample"}:
        continue
    method = "builtin" if s else r["method"]
    scaled = r.get("strokes") == "scaled"
    got[(r["habit"], r["zoom"], r["seed"], scaled, method)] = r
cells = sorted({k[:4] for k in got if k[4] == "builtin"},
               key=lambda k: (k[3], ["casual", "outline", "sloppy"].index(k[0]), k[1], k[2]))
methods = [("rf", "forest"), ("segstudio", "segstudio"), ("segstudio-rescaled", "image scaled down outside"),
           ("builtin", "**downsample K**")]
print("| strokes | habit | zoom | seed | " + " | ".join(n for _, n in methods) + " | seconds (none → K) |")
print("|" + "---|" * (5 + len(methods)))
for c in cells:
    out = []
    for m, _ in methods:
        r = got.get((*c, m))
        out.append("–" if r is None else f"{r['object']:.3f} · F1 {r['F1']:.2f}")
    t0, t1 = (got.get((*c, m), {}).get("seconds") for m in ("segstudio", "builtin"))
    secs = "–" if t0 is None or t1 is None else f"{t0:.0f} → {t1:.0f}"
    print(f"| {'×K' if c[3] else 'px'} | {c[0]} | {c[1]:g} | {c[2]} | " + " | ".join(out) + f" | {secs} |")
print()


def counts(zoom, metric, other, words):
    """Cells at ``zoom`` where the built-in factor is above / level / below ``other`` on ``metric``."""
    n = dict.fromkeys(words, 0)
    for c in cells:
        if c[1] == zoom and (*c, other) in got:
            d = got[(*c, "builtin")][metric] - got[(*c, other)][metric]
            n[words[0] if d > 0.005 else words[2] if d < -0.005 else words[1]] += 1
    return ", ".join(f"{k} {v}" for k, v in n.items())


for zoom in sorted({c[1] for c in cells}):
    for other, name, words in (("segstudio", "none", ("better", "level", "worse")),
                               ("rf", "the forest", ("above", "level", "below"))):
        for metric in ("object", "F1"):
            label = "Dice" if metric == "object" else "F1"
            print(f"zoom {zoom:g}, {label}, downsample K against {name}: {counts(zoom, metric, other, words)}")
