"""The background rule against the local background, read against the truth before training
(session 30).

For the quality matrix's paintings (every habit), with the rule reading the smoothed image
``g`` as before (blur 0) or ``g`` less its Gaussian blur of σ px in each plane
(``core.background.UNEVEN_SIGMA``): the share of the unpainted background it labels, the
object pixels it labels (wrong), and the share of the unpainted ring ≤ 3 px (2-D) or ≤ 1.5 µm
(3-D) outside the objects it labels. 2-D: dim, nuclei and vessels, seeds 0–1 (dim also seed 2);
3-D: dim, seeds 0–1, on the levelled volume (*level slices* is on for every dim volume there).
Then the in-plane unevenness of the volumes' painted background (5 × 5 local means, 5–95 %
spread over the difference of the two paints' medians, as ``background_unevenness`` reads a
2-D image) for every family, raw and levelled.

    python benchmarks/runs/background_local_probe_2026-12-05_s30.py > …_s30.txt
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import numpy as np  # noqa: E402
from scipy import ndimage as ndi  # noqa: E402

import families as fam  # noqa: E402
import users  # noqa: E402
import segstudio.core.background as B  # noqa: E402
from segstudio.core.data import LEVEL_QUANTILE, slice_offsets  # noqa: E402


def read(paint, truth, image, near, ring, smoothed=None, sigma=0.0):
    un = paint == 0
    if sigma > 0:
        B.UNEVEN_SIGMA = sigma
    inf = B.infer_background(paint, image, smoothed=smoothed, uneven=sigma > 0) == 1
    ring_px = (near > 0) & (near <= ring) & un
    return (f"{inf.sum() / (~truth & un).sum():.2f} / {int((inf & truth).sum())} / "
            f"{(inf & ring_px).sum() / max(ring_px.sum(), 1):.2f}")


print("2-D: per blur σ: share of unpainted background labelled / object px labelled / share of the ring ≤ 3 px")
for f, seeds in (("dim", (0, 1, 2)), ("nuclei", (0, 1)), ("vessels", (0, 1))):
    for seed in seeds:
        s = fam.make(f, 2, seed)
        for h in users.HABITS:
            p = users.paint(s, h, seed)
            truth = p.truth > 1
            near = ndi.distance_transform_edt(~truth)
            cells = [f"σ {int(sg)}: {read(p.paintings, truth, s.image, near, 3.0, sigma=sg)}"
                     for sg in (0.0, 8.0, 12.0, 16.0, 24.0, 32.0)]
            print(f, seed, h, " | ".join(cells), flush=True)

print("\n3-D dim, levelled: off / on (σ 16)")
for seed in (0, 1):
    s = fam.make("dim", 3, seed)
    g = B.smoothed_intensity(s.image, None, 3, [slice_offsets([np.percentile(q, LEVEL_QUANTILE) for q in s.image])])
    for h in users.HABITS:
        p = users.paint(s, h, seed)
        truth = p.truth > 1
        near = ndi.distance_transform_edt(~truth, sampling=s.spacing)
        print("dim", seed, h, " | ".join(f"{name}: {read(p.paintings, truth, s.image, near, 1.5, g, sg)}"
                                       for name, sg in (("off", 0.0), ("on", 16.0))), flush=True)


def unevenness(img, bg, ob):
    m = ndi.uniform_filter(img.astype(np.float64), (1, 5, 5))
    lo, hi = np.percentile(m[bg], [5, 95])
    return (hi - lo) / abs(np.median(m[ob]) - np.median(m[bg]))


print("\n3-D in-plane unevenness of the painted background: raw / levelled")
for seed in (0, 1, 2):
    for f in fam.FAMILIES:
        s = fam.make(f, 3, seed)
        off = np.asarray(slice_offsets([np.percentile(q, LEVEL_QUANTILE) for q in s.image]))
        lev = s.image - off[:, None, None]
        vals = []
        for h in users.HABITS:
            p = users.paint(s, h, seed).paintings
            vals.append(f"{h} {unevenness(s.image, p == 1, p > 1):.2f}/{unevenness(lev, p == 1, p > 1):.2f}")
        print(seed, f, " ".join(vals), flush=True)
