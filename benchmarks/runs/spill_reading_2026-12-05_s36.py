"""Strokes that run on past an edge, read against the truth before training (session 36).

The *sloppy* habit's object strokes run 1–3 px on past the objects' edges, its partial outlines
lie up to 1 px outside them, and its background strokes cross up to 2 px into objects. For the
quality matrix's first paintings (every family, habit, 2-D and 3-D; seeds 0–1), with each run's
own settings (the trainer's smoothed image, *textures*, *level slices*, *wide context*):

* the background rule's threshold read on the whole strokes (the rule before session 36:
  ``background._trusted`` returning the paint as it is) and on the strokes less their spilled
  parts (now): the share of the unpainted background it infers, and the object pixels it
  infers (wrong);
* the object paint on the truth's background (the spill), and what ``spilled_paint`` leaves
  out of training: pixels on the background (right) / on objects (wrong), and the share of the
  spill.

    python benchmarks/runs/spill_reading_2026-12-05_s36.py > …_s36.txt
"""
import sys
from pathlib import Path
from unittest import mock

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import families as fam  # noqa: E402
import quality  # noqa: E402
import users  # noqa: E402
import segstudio.core.background as B  # noqa: E402
from segstudio.core.trainer import _ImageWork  # noqa: E402

print("family dims habit seed | whole strokes: background inferred / object px | less the spill: background "
      "inferred / object px | spill px | left out: on background / on objects (share of the spill)")
for dims in (2, 3):
    for f in fam.FAMILIES:
        for seed in (0, 1):
            s = fam.make(f, dims, seed)
            for h in users.HABITS:
                p = users.paint(s, h, seed)
                sess = quality.Session(s, p.paintings, "exclusive", len(p.class_names), seed, {}, steps=10)
                cfg = sess.trainer.config
                sess.close()
                g = _ImageWork(s.image, None).smoothed(dims, cfg)
                un = p.paintings == 0
                bg_truth = (p.truth == 1) & un
                cells = []
                for whole in (True, False):
                    with mock.patch.object(B, "_trusted", (lambda b, o, *_: (o, b)) if whole else B._trusted):
                        inf = B.infer_background(p.paintings, s.image, smoothed=g, textures=cfg.filter_texture) == 1
                    cells.append(f"{(inf & bg_truth).sum() / max(bg_truth.sum(), 1):.2f} / {int((inf & (p.truth > 1)).sum())}")
                spill = (p.paintings > 1) & (p.truth == 1)
                out = B.spilled_paint(p.paintings, s.image, smoothed=g, textures=cfg.filter_texture)
                right = int((out & spill).sum())
                cells.append(f"{int(spill.sum())}")
                cells.append(f"{right} / {int((out & ~spill).sum())} ({right / max(spill.sum(), 1):.2f})")
                print(f, dims, h, seed, "|", " | ".join(cells), flush=True)
