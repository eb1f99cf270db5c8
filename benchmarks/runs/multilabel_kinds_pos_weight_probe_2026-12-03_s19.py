"""Probe: multi-label pos_weight balanced over kinds of stroke (as exclusive balances classes),
pinned through TrainConfig.pinned_weights; everything else as quality.py.

Usage: python multilabel_kinds_pos_weight_probe_2026-12-03_s19.py OUT.jsonl dim:3:sloppy:0 ...
"""
import json, sys
from concurrent.futures import ProcessPoolExecutor
import numpy as np
sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1]))
import families as fam, users, quality

def kinds_weights(ml):
    flat = ml.reshape(ml.shape[0], -1)
    codes = np.tensordot(3 ** np.arange(ml.shape[0]), flat.astype(np.int64), axes=1)
    out = []
    for c in range(ml.shape[0]):
        pos, neg = flat[c] == 1, flat[c] == 2
        kp, kn = len(np.unique(codes[pos])), len(np.unique(codes[neg]))
        w = (kp / kn) * neg.sum() / pos.sum() if pos.sum() and neg.sum() else 1.0
        out.append((c, float(np.clip(w, 0.1, 10.0))))
    return tuple(out), [(c, float(neg.sum()/max(pos.sum(),1))) for c in range(ml.shape[0]) for pos,neg in [(flat[c]==1, flat[c]==2)]]

def task(args):
    f, d, h, s = args
    sample = fam.make(f, d, s); p = users.paint(sample, h, s)
    ml = users.to_multilabel(p, sample.kind)[0]
    pins, plain = kinds_weights(ml)
    rows = quality.run_cell(f, d, h, "multilabel", s, {"steps": 1400 if d == 2 else 370}, {"pinned_weights": pins}, 1)
    for r in rows:
        r["pins"] = pins; r["plain"] = plain
    return rows

cells = [tuple(x.split(":")[:3]) + (int(x.split(":")[3]),) for x in sys.argv[2:]]
cells = [(f, int(d), h, s) for f, d, h, s in cells]
with ProcessPoolExecutor(2) as pool, open(sys.argv[1], "a") as fh:
    for rows in pool.map(task, cells):
        for r in rows:
            if r["method"] == "segstudio":
                print(json.dumps(r), flush=True); fh.write(json.dumps(r) + "\n")
