"""Where cells 3D outline (exclusive, seed 0, 370 steps) loses its interior to the forest:
the interior errors of both methods by true class and by plane. Output: the .txt beside it.
``python cells3d_outline_interior_errors_2026-12-03_s19.py dim``: the same for dim 3D outline."""
import sys, numpy as np
sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1]))
import torch; torch.set_num_threads(2)
import families as fam, users, quality
s = fam.make(sys.argv[1] if len(sys.argv) > 1 else "cells", 3, 0); p = users.paint(s, "outline", 0)
print("classes", p.class_names, "spacing", s.spacing, "shape", s.image.shape)
sess = quality.Session(s, p.paintings, "exclusive", len(p.class_names), 0, {}, steps=370)
sess.train(steps=370); pred = sess.predict(); sess.close()
rf = quality.rf_predict(s.image, p.paintings, "exclusive")
t = p.truth
for name, q in (("seg", pred), ("rf", rf)):
    print(name, "interior dice", quality.dice(q == 2, t == 2), "boundary", quality.dice(q == 3, t == 3))
    fn = (t == 2) & (q != 2); fp = (q == 2) & (t != 2)
    print("  interior FN", fn.sum(), "as", {int(k): int(((q == k) & fn).sum()) for k in (1, 3)}, "FP", fp.sum(), "from", {int(k): int(((t == k) & fp).sum()) for k in (1, 3)})
    print("  FN per z", fn.sum((1, 2)).tolist())
    print("  FP per z", fp.sum((1, 2)).tolist())
print("truth interior per z", (t == 2).sum((1, 2)).tolist())
print("truth boundary per z", (t == 3).sum((1, 2)).tolist())
print("painted z", sorted(set(np.nonzero(p.paintings)[0].tolist())))
