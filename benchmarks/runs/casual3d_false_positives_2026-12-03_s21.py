"""False positives of the casual habit in 3D, exclusive, seed 0, 370 steps (session 21): by
where they lie: within 1 px of an object in their own slice, else within 2 slices above or
below one (the axial blur), else elsewhere. Run from the repository root:

    PYTHONPATH=. python benchmarks/runs/casual3d_false_positives_2026-12-03_s21.py nuclei dim
"""
import sys, numpy as np, torch
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import families as fam, users, quality
from scipy import ndimage as ndi
torch.set_num_threads(2)
for f in sys.argv[1:]:
    s = fam.make(f, 3, 0); p = users.paint(s, 'casual', 0)
    sess = quality.Session(s, p.paintings, 'exclusive', len(p.class_names), 0, {}, steps=370)
    sess.train(steps=370); pred = sess.predict(); sess.close()
    t = s.truth >= 2; q = pred >= 2; fp = q & ~t
    print(f, 'precision %.3f recall %.3f FP %d' % ((q & t).sum() / q.sum(), (q & t).sum() / t.sum(), fp.sum()))
    # a FP voxel is a "z halo" voxel when the object is in the same xy column within 1 slice above/below
    # but not in its own slice within 1 px laterally
    near_xy = np.stack([ndi.binary_dilation(t[z], iterations=1) for z in range(t.shape[0])])
    near_z = ndi.binary_dilation(t, structure=np.ones((3, 1, 1), bool), iterations=2)
    print('  FP within 1 px of an object in its slice: %d; only above/below one (<= 2 slices): %d; neither: %d' % (
        (fp & near_xy).sum(), (fp & ~near_xy & near_z).sum(), (fp & ~near_xy & ~near_z).sum()))
    print('  per slice FP/TP:', ' '.join('%d/%d' % ((fp[z]).sum(), (q[z] & t[z]).sum()) for z in range(0, t.shape[0], 2)))
