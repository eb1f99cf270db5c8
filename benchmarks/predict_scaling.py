"""Predict time and peak memory vs volume size: in memory vs out of core.

Four volumes of growing depth (same 256 x 256 cross-section in ``--quick``, 512 x 512 in the full
run) are made by code and written to OME-Zarr; each is predicted in a fresh process, once
through the in-memory path (read all, predict, write) and once out of core
(``iter_predict_to_file``: lazy tile reads, band-by-band zarr writes). One line per size and
path gives the time, the time per voxel and the peak resident memory above the model's own
footprint, i.e. above a warm-up prediction of one tile of the size the predictor chooses for
that volume (see ``out_of_core.py``; same 1x1x1-convolution model, so the pipeline is what is
measured). The last lines fit time and memory against size: time grows linearly in both
paths; memory above one tile grows with the volume in memory and stays bounded by a band of
output rows out of core. (The quick volumes are only one or two tiles of the memory budget,
so both paths stay close to their warm-up until the last one.)

Usage::

    python benchmarks/predict_scaling.py --quick
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import mib  # noqa: E402
from out_of_core import make_volume, run_child  # noqa: E402


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="4..32 MiB volumes")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    side = 256 if args.quick else 512
    depths = (32, 64, 128, 256) if args.quick else (64, 128, 256, 512)
    rows: dict[str, list[tuple[int, float, float]]] = {"mem": [], "ooc": []}
    with tempfile.TemporaryDirectory(dir=os.environ.get("SEGSTUDIO_BENCH_TMP")) as tmp:
        for z in depths:
            shape = (z, side, side)
            src = make_volume(Path(tmp) / f"v{z}.zarr", shape)
            nbytes = int(np.prod(shape)) * 2
            for mode in ("mem", "ooc"):
                r = run_child(mode, src, Path(tmp) / f"p{z}_{mode}.zarr", args.threads, patch=(32, 128, 128))
                above = r["peak"] - r["baseline"]
                rows[mode].append((nbytes, r["seconds"], above))
                name = "in memory" if mode == "mem" else "out of core"
                print(f"scaling {name} {'x'.join(map(str, shape))} uint16 ({mib(nbytes)}): {r['seconds']:.2f} s "
                      f"({r['seconds'] / r['voxels'] * 1e9:.0f} ns/voxel), peak RSS above model {mib(above)}",
                      flush=True)
    for mode, data in rows.items():
        size = np.array([d[0] for d in data], float)
        secs = np.array([d[1] for d in data], float)
        mem = np.array([d[2] for d in data], float)
        slope_t = np.polyfit(size / 2**20, secs, 1)[0]
        r2 = np.corrcoef(size, secs)[0, 1] ** 2
        name = "in memory" if mode == "mem" else "out of core"
        print(f"scaling {name} fit over {len(size)} sizes ({mib(size[0])}..{mib(size[-1])}): time "
              f"{slope_t * 1000:.0f} ms/MiB (linear, R^2 {r2:.3f}); peak memory {mib(mem[0])} -> {mib(mem[-1])} "
              f"(x{mem[-1] / max(mem[0], 2**20):.1f} of max(first, 1 MiB) for x{size[-1] / size[0]:.0f} the volume)",
              flush=True)


if __name__ == "__main__":
    main()
