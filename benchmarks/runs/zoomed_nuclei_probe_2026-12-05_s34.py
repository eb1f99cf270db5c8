"""Larger objects than the matrix's: 2-D nuclei seen at a higher magnification (session 34).

The matrix's 2-D nuclei have radii of 12–20 px. Real nuclei at 40–60× may be 2–3× that, and
segstudio's network is shallow (two levels, small input filters), so its receptive field may
not span an object. This probe makes the *nuclei* family's 2-D image at zoom ``K``: the same
generator with every length in pixels (image size, radii, gaps, chromatin and haze scales, the
PSF) multiplied by ``K`` — the same specimen imaged with ``K``× smaller pixels; the truth's
boundary stays a 2-px rim and the camera noise stays per pixel. The simulated users paint
it as they paint the matrix's (their strokes are in pixels). Both methods, as ``quality.py``
runs a cell (``run_cell``, 1400 steps, one thread), exclusive mode.

    python benchmarks/runs/zoomed_nuclei_probe_2026-12-05_s34.py K SEED HABIT… [FIELD=VALUE…] >> rows.jsonl

(``FIELD=VALUE``: a TrainConfig override as ``quality.py --set`` takes it; ``strokes=scaled``,
for an integer K: the user paints the matrix's image as ``users.py`` paints it and the
strokes are enlarged K× with the image, as a user who paints the zoomed image at the same
size on screen would.)
"""
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from scipy import ndimage as ndi  # noqa: E402
from skimage.segmentation import watershed  # noqa: E402

import families as fam  # noqa: E402
import numpy as np  # noqa: E402
import quality as q  # noqa: E402
from segstudio.core.samples import NUCLEI_PER_PIXEL_2D, synthetic_nuclei  # noqa: E402

from bench_common import parse_sets  # noqa: E402

K, SEED = float(sys.argv[1]), int(sys.argv[2])
HABITS = [a for a in sys.argv[3:] if "=" not in a] or ["casual", "outline"]
SETS = parse_sets([a for a in sys.argv[3:] if "=" in a])
SCALED = SETS.pop("strokes", None) == "scaled"


def zoomed(shape, seed, spacing=None):
    """The *nuclei* family's 2-D image at zoom K (module notes)."""
    shape = tuple(int(round(n * K)) for n in shape)
    n = int(round(NUCLEI_PER_PIXEL_2D * np.prod(fam.SHAPE_2D)))  # the matrix image's count, not K² of it
    s = synthetic_nuclei(shape, n, seed=seed, radius_range=(12.0 * K, 20.0 * K), paint=False,
                         min_gap=4.0 * K, bump_sigma=2.5 * K, chromatin_sigmas=(1.2 * K, 4.0 * K),
                         psf_sigma=1.0 * K, haze_cell=int(round(24 * K)))
    lab, _ = ndi.label(s.truth > 1)
    core, _ = ndi.label(s.truth == 2)
    inst = watershed(np.zeros(s.truth.shape, np.float32), core, mask=lab > 0).astype(np.int32)
    return fam.FamilySample(s.image, s.truth, inst, ("background", "nucleus", "boundary"), fam.OBJECTS,
                            "nuclei", s.spacing)


make = fam.make
if SCALED:
    import users  # noqa: E402

    paint = users.paint

    def scaled_paint(sample, habit, seed):
        """The matrix image's painting, each pixel repeated K×K (module notes)."""
        k = int(K)
        small = paint(make("nuclei", 2, seed), habit, seed)
        big = np.kron(small.paintings, np.ones((k, k), small.paintings.dtype))
        return users.Painting(big, sample.truth, small.class_names, habit, small.params)

    users.paint = scaled_paint
fam.make = lambda family, dims, seed: zoomed(fam.SHAPE_2D, seed) if family == "nuclei" and dims == 2 else make(family, dims, seed)
for habit in HABITS:
    for row in q.run_cell("nuclei", 2, habit, "exclusive", SEED, {"steps": 1400}, dict(SETS), 1):
        print(json.dumps({**row, "zoom": K, **({"set": SETS} if SETS else {}),
                          **({"strokes": "scaled"} if SCALED else {})}), flush=True)
