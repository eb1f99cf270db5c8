"""Tissue 3D casual seed 2 (exclusive), the thinnest painting, whose granular class collapses:
how well the network fits its own painted voxels (whole-volume prediction, then its own
training batches in train and eval mode) and its softmax at the strokes. Output: the .txt beside it."""
import sys, copy, numpy as np, torch
sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1]))
torch.set_num_threads(2)
import families as fam, users, quality
from segstudio.core.predictor import Predictor
seed = int(sys.argv[1]) if len(sys.argv) > 1 else 2
s = fam.make("tissue", 3, seed); p = users.paint(s, "casual", seed)
print("painted", np.bincount(p.paintings.ravel(), minlength=4)[1:])
sess = quality.Session(s, p.paintings, "exclusive", 3, seed, {}, steps=370)
for stop in (185, 370):
    sess.train(steps=stop - sess.iteration)
    tr = sess.trainer
    for name, model in (("ema", tr.preview_model()), ("raw", copy.deepcopy(tr.model).eval())):
        lab = Predictor(model, tr.config, device="cpu").predict(s.image).labels
        fit = [float((lab[p.paintings == c] == c).mean()) for c in (1, 2, 3)]
        print(stop, name, "painted voxels right per class", np.round(fit, 2), "granular dice", round(quality.dice(lab == 2, p.truth == 2), 3),
              "pred fractions", np.round(np.bincount(lab.ravel(), minlength=4)[1:] / lab.size, 3))
    tr.model.train()
# train-mode fit on the sampler's own batches (BatchNorm on batch statistics, as in training)
tr = sess.trainer
hits = np.zeros(4); tot = np.zeros(4)
with torch.no_grad():
    for mode in ("train", "eval"):
        hits[:] = 0; tot[:] = 0
        getattr(tr.model, mode)()
        for _ in range(30):
            x, y, m = tr.sampler.batch(tr.batch_size)
            lab = tr.model(torch.from_numpy(x)).argmax(1).numpy()
            t = y[:, 0] if y.ndim == x.ndim else y
            for c in (0, 1, 2):
                sel = t == c
                hits[c] += (lab[sel] == c).sum(); tot[c] += sel.sum()
        print(mode, "mode, sampled patches: painted voxels right per class", np.round(hits[:3] / np.maximum(tot[:3], 1), 2), tot[:3])
tr.model.train()
with torch.no_grad():
    P = []; T = []
    for _ in range(30):
        x, y, m = tr.sampler.batch(tr.batch_size)
        pr = torch.softmax(tr.model(torch.from_numpy(x)), 1).numpy()
        t = y[:, 0] if y.ndim == x.ndim else y
        for c in (1, 2):
            sel = t == c
            if sel.any():
                P.append((c, pr[:, 0][sel].mean(), pr[:, 1][sel].mean(), pr[:, 2][sel].mean()))
    for c in (1, 2):
        a = np.array([q[1:] for q in P if q[0] == c and not np.isnan(q[1])])
        print("strokes of class index", c, "mean softmax (bg, granular, fibrous)", np.round(a.mean(0), 3))
print("weights", tr.weights.weights, "rules", tr.rules, [None if f is None else f.weights for f in tr.inferred_loss_fns])
sess.close()
