"""Tissue 3D multi-label: each channel's own Dice against the Dice read through exclusive classes
(the table's), and how much of the volume both channels claim. Output: the .txt beside it."""
import sys, json
from concurrent.futures import ProcessPoolExecutor
sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1]))
import families as fam, users, quality

def task(a):
    f, h, seed = a
    import torch; torch.set_num_threads(1)
    s = fam.make(f, 3, seed); p = users.paint(s, h, seed)
    ml, truth, names = users.to_multilabel(p, s.kind)
    sess = quality.Session(s, ml, "multilabel", len(names), seed, {}, steps=370)
    sess.train(steps=370); pred = sess.predict(); sess.close()
    rf = quality.rf_predict(s.image, ml, "multilabel")
    out = {"cell": f"{f} {h} {seed}", "names": names}
    for meth, q in (("seg", pred), ("rf", rf)):
        pos = q > 0
        ex = quality.as_exclusive(q, "multilabel", p, s.kind)
        sc = quality.score(ex, p, s)
        out[meth] = {"both": round(float((pos[0] & pos[1]).mean()), 4),
                     "channel": [round(quality.dice(pos[c], truth[c]), 3) for c in range(len(names))],
                     "via_exclusive": {k: round(v, 3) for k, v in sc.items()}}
    return out

cells = [("tissue", "casual", 0), ("tissue", "sloppy", 0), ("tissue", "sloppy", 1), ("tissue", "casual", 1)]
with ProcessPoolExecutor(2) as pool:
    for r in pool.map(task, cells):
        print(json.dumps(r), flush=True)
