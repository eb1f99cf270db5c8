"""What the rim adds to the background rule's time (session 28): a 2048² image and a 48×512×512 volume of
blurred blobs, the rule with the smoothed image given, RIM_SHARE 0 and 0.15, median of 3."""
import time, numpy as np
from scipy import ndimage as ndi
from segstudio.core import background as b
rng = np.random.default_rng(0)
for shape in ((2048, 2048), (48, 512, 512)):
    blobs = rng.random(shape) > 0.9995
    img = ndi.gaussian_filter(ndi.binary_dilation(blobs, iterations=4).astype(np.float32) * 100, 2) + 10 + rng.normal(0, 1, shape).astype(np.float32)
    paint = np.zeros(shape, np.uint8)
    idx = (slice(None),) * (len(shape) - 2)
    paint[idx + (slice(2, 6), slice(2, 400))] = 1
    pts = np.argwhere(blobs)[:40]
    for pt in pts:
        paint[tuple(slice(c, c + 2) for c in pt)] = 2
    g = b.smoothed_intensity(img, None, len(shape))
    for share in (0.0, 0.15):
        b.RIM_SHARE = share
        ts = []
        for _ in range(3):
            t = time.perf_counter(); out = b.infer_background(paint, img, smoothed=g); ts.append(time.perf_counter() - t)
        print(shape, share, f"median {sorted(ts)[1]:.2f} s", (out > 0).sum())
