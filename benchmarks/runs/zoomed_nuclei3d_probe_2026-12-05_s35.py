"""Larger objects in a volume: the *nuclei* family's 3-D volume at in-plane zoom K (session 35).

The 3-D counterpart of ``zoomed_nuclei_probe_2026-12-05_s34.py``: the same generator as the
matrix's 3-D nuclei (32 × 96 × 96, spacing 2 × 0.5 × 0.5, radius 10–16 px in-plane), imaged
with K× finer in-plane pixels: shape 32 × 96K × 96K, spacing 2 × 0.5/K × 0.5/K, every length in
in-plane pixels × K (radii, gaps, bumps, chromatin, haze, the PSF; its z extent stays the same
in µm), the same 12 nuclei; the truth's boundary stays a 2-voxel rim, the noise per voxel.
With ``downsample=K`` the network sees the matrix's grid (blocks of 1 × K × K, spacing
2 × 0.5 × 0.5). Both methods, as ``quality.py`` runs a cell (370 steps, one thread), exclusive
mode; the users paint it as they paint the matrix's (strokes in voxels).

    python benchmarks/runs/zoomed_nuclei3d_probe_2026-12-05_s35.py K SEED HABIT… [FIELD=VALUE…] >> rows.jsonl
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
from segstudio.core.samples import NUCLEI_PER_VOXEL_3D, synthetic_nuclei  # noqa: E402

from bench_common import parse_sets  # noqa: E402

MATRIX_IMAGE = fam.make


def zoomed3d(seed: int, k: int) -> fam.FamilySample:
    """The *nuclei* family's 3-D volume at in-plane zoom ``k`` (module notes); ``k`` = 1 is the
    matrix's volume."""
    z, y, x = fam.SHAPE_3D
    sz, sy, sx = fam.SPACING_3D
    n = int(round(NUCLEI_PER_VOXEL_3D * np.prod(fam.SHAPE_3D)))
    s = synthetic_nuclei((z, y * k, x * k), n, seed=seed, spacing=(sz, sy / k, sx / k),
                         radius_range=(10.0 * k, 16.0 * k), paint=False, min_gap=4.0 * k,
                         bump_sigma=2.5 * k, chromatin_sigmas=(1.2 * k, 4.0 * k), psf_sigma=1.0 * k,
                         haze_cell=24 * k)
    lab, _ = ndi.label(s.truth > 1)
    core, _ = ndi.label(s.truth == 2)
    inst = watershed(np.zeros(s.truth.shape, np.float32), core, mask=lab > 0).astype(np.int32)
    return fam.FamilySample(s.image, s.truth, inst, ("background", "nucleus", "boundary"), fam.OBJECTS,
                            "nuclei", s.spacing)


def main(argv):
    k, seed = int(argv[0]), int(argv[1])
    habits = [a for a in argv[2:] if "=" not in a] or ["casual", "outline"]
    sets = parse_sets([a for a in argv[2:] if "=" in a])
    fam.make = lambda family, dims, s: (zoomed3d(s, k) if family == "nuclei" and dims == 3
                                        else MATRIX_IMAGE(family, dims, s))
    try:
        for habit in habits:
            for row in q.run_cell("nuclei", 3, habit, "exclusive", seed, {"steps": 370}, dict(sets), 1):
                print(json.dumps({**row, "zoom": k, **({"set": sets} if sets else {})}), flush=True)
    finally:
        fam.make = MATRIX_IMAGE


if __name__ == "__main__":
    main(sys.argv[1:])
