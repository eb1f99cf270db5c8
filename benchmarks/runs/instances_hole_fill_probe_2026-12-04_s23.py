"""Instance F1 with and without each slice's holes filled before making objects (session 23).

The casual habit in 3-D, exclusive and multi-label, nuclei and cells, seeds 0 and 1, at the
background rule's default threshold and at ``TOWARDS_OBJECTS`` 0.2: one training each, and the
same prediction scored twice: objects from it as it is (``core.instances``, as the app makes
them) and from it with every slice's holes filled in the object class. Run from the
repository root:

    PYTHONPATH=. python benchmarks/runs/instances_hole_fill_probe_2026-12-04_s23.py
"""
import sys
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage as ndi

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import families as fam  # noqa: E402
import quality  # noqa: E402
import users  # noqa: E402
from segstudio.core.instances import InstanceOptions, instances_from_labels  # noqa: E402
from segstudio.core.metrics import instance_scores  # noqa: E402

import segstudio.core.background as background  # noqa: E402

torch.set_num_threads(2)
for towards in (0.0, 0.2):
    background.TOWARDS_OBJECTS = towards
    for family in ("nuclei", "cells"):
        for seed in (0, 1):
            s = fam.make(family, 3, seed)
            p = users.paint(s, "casual", seed)
            for mode in ("exclusive", "multilabel"):
                paint = p.paintings if mode == "exclusive" else users.to_multilabel(p, s.kind)[0]
                n = len(p.class_names) if mode == "exclusive" else len(users.multilabel_channels(p, s.kind)[0])
                sess = quality.Session(s, paint, mode, n, seed, {}, steps=370)
                sess.train(steps=370)
                pred = quality.as_exclusive(sess.predict(), mode, p, s.kind)
                sess.close()
                obj = pred == 2
                filled = np.stack([ndi.binary_fill_holes(z) for z in obj])
                out = []
                for m in (obj, filled):
                    labels = np.where(m, 2, 1).astype(np.uint8)
                    objects = instances_from_labels(labels, InstanceOptions(object_classes=(2,)), s.spacing).labels
                    sc = instance_scores(objects, s.instances)
                    out.append(f"F1 {sc.f1:.3f} ({int(objects.max())} objects)")
                print(f"towards {towards} {family} seed {seed} {mode}: holes {int((filled & ~obj).sum())}, "
                      f"as predicted {out[0]}, holes filled {out[1]}, true {int(s.instances.max())}", flush=True)
