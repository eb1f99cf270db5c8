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

import users  # noqa: E402

# the matrix's own image and painter (main() stands the zoomed ones in for them)
MATRIX_IMAGE, MATRIX_PAINTER = fam.make, users.paint


def zoomed(shape, seed, k):
    """The *nuclei* family's 2-D image of ``shape`` at zoom ``k`` (module notes)."""
    shape = tuple(int(round(n * k)) for n in shape)
    n = int(round(NUCLEI_PER_PIXEL_2D * np.prod(fam.SHAPE_2D)))  # the matrix image's count, not k² of it
    s = synthetic_nuclei(shape, n, seed=seed, radius_range=(12.0 * k, 20.0 * k), paint=False,
                         min_gap=4.0 * k, bump_sigma=2.5 * k, chromatin_sigmas=(1.2 * k, 4.0 * k),
                         psf_sigma=1.0 * k, haze_cell=int(round(24 * k)))
    lab, _ = ndi.label(s.truth > 1)
    core, _ = ndi.label(s.truth == 2)
    inst = watershed(np.zeros(s.truth.shape, np.float32), core, mask=lab > 0).astype(np.int32)
    return fam.FamilySample(s.image, s.truth, inst, ("background", "nucleus", "boundary"), fam.OBJECTS,
                            "nuclei", s.spacing)


def scaled_painting(sample, habit, seed, k):
    """*Strokes ×K* (module notes): the matrix image's painting by ``habit``, each pixel
    repeated ``k``×``k`` (an integer ``k``), over the zoomed ``sample``'s truth."""
    small = MATRIX_PAINTER(MATRIX_IMAGE("nuclei", 2, seed), habit, seed)
    big = np.kron(small.paintings, np.ones((k, k), small.paintings.dtype))
    return users.Painting(big, sample.truth, small.class_names, habit, small.params)


def main(argv):
    k, seed = float(argv[0]), int(argv[1])
    habits = [a for a in argv[2:] if "=" not in a] or ["casual", "outline"]
    sets = parse_sets([a for a in argv[2:] if "=" in a])
    scaled = sets.pop("strokes", None) == "scaled"
    # quality.run_cell makes and paints the cell's image through these two
    fam.make = lambda family, dims, s: (zoomed(fam.SHAPE_2D, s, k) if family == "nuclei" and dims == 2
                                        else MATRIX_IMAGE(family, dims, s))
    if scaled:
        users.paint = lambda sample, habit, s: scaled_painting(sample, habit, s, int(k))
    try:
        for habit in habits:
            for row in q.run_cell("nuclei", 2, habit, "exclusive", seed, {"steps": 1400}, dict(sets), 1):
                print(json.dumps({**row, "zoom": k, **({"set": sets} if sets else {}),
                                  **({"strokes": "scaled"} if scaled else {})}), flush=True)
    finally:
        fam.make, users.paint = MATRIX_IMAGE, MATRIX_PAINTER


if __name__ == "__main__":
    main(sys.argv[1:])
