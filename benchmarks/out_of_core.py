"""Out-of-core prediction of a 1 GiB uint16 volume: peak memory stays bounded.

The volume (``--size-mib``, default 1024 MiB: 1024 x 512 x 1024 voxels, uint16) is made by code
and written, band by band, to an OME-Zarr store (``--input tif`` writes an uncompressed
TIFF instead). A child process then runs ``iter_predict_to_file`` into an OME-Zarr output and
reports its resident memory: ``baseline`` after loading torch and the model and predicting a
volume of one tile (the size the predictor chooses for the real volume, from its memory
budget) through the same path (imports, thread pools, the model's working memory for a tile:
the model's own footprint), ``peak`` (``ru_maxrss``) at the end. The baseline is the peak
resident memory reached during that warm-up. The goal: ``peak - baseline`` under 1 GiB for
the 1 GiB volume, i.e. memory bounded by one tile and one band of output rows, not by the
volume.

The model is a 1x1x1 convolution with the segstudio U-Net's input and output channels (the
tiles are those of the U-Net's config: its memory budget and receptive-field margins), so the
run measures the pipeline (lazy reads, normalisation, tiling, band-by-band writes) in
minutes on two cores; a U-Net's own memory (weights, activations of one tile) is part of the
baseline. ``--unet`` uses the fast-preset U-Net instead (hours on a CPU). ``--patch`` is the
training patch of the config (it sets the U-Net's pooling, not the inference tiles).

Usage::

    python benchmarks/out_of_core.py --quick            # 1 GiB zarr -> zarr
    python benchmarks/out_of_core.py --input tif        # 1 GiB TIFF (memmap) -> zarr
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import mib, peak_rss_bytes  # noqa: E402

from segstudio.core.config import TrainConfig  # noqa: E402

PATCH = (32, 128, 128)
N_CLASSES = 2


def shape_for(size_mib: int, itemsize: int = 2) -> tuple[int, int, int]:
    """A Z x 512 x 1024 volume of about ``size_mib`` MiB."""
    z = max(int(size_mib * 2**20 / (512 * 1024 * itemsize)), PATCH[0])
    return (z, 512, 1024)


def volume_rows(shape: Sequence[int], a: int, b: int) -> np.ndarray:
    """Rows ``a:b`` (first axis) of a deterministic synthetic uint16 volume."""
    z = np.arange(a, b, dtype=np.float32)[:, None, None]
    y = np.arange(shape[1], dtype=np.float32)[None, :, None]
    x = np.arange(shape[2], dtype=np.float32)[None, None, :]
    v = np.sin(z / 17.0) + np.sin(y / 23.0 + 1.0) * np.cos(x / 29.0)
    noise = np.random.default_rng(a).integers(0, 2000, size=v.shape, dtype=np.uint16)
    return ((v + 2.0) * 12000.0).astype(np.uint16) + noise


def make_volume(path: Path, shape: Sequence[int]) -> Path:
    """Write the synthetic volume to ``.zarr`` (OME-Zarr) or ``.tif`` band by band."""
    from segstudio.core.outofcore import open_output

    out = open_output(path, shape, np.uint16, axes="ZYX", spacing=(1.0, 1.0, 1.0))
    step = 64
    for a in range(0, shape[0], step):
        b = min(a + step, shape[0])
        out[(slice(a, b),)] = volume_rows(shape, a, b)
    return out.commit()


class Pointwise(torch.nn.Module):
    """A 1x1x1 convolution: a model whose cost does not hide the pipeline's."""

    def __init__(self, dims: int, cin: int, cout: int) -> None:
        super().__init__()
        conv = torch.nn.Conv2d if dims == 2 else torch.nn.Conv3d
        self.conv = conv(cin, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


def child(args: argparse.Namespace) -> None:
    """Predict ``args.child_in`` into ``args.child_out``; print one JSON line of figures."""
    from segstudio.core.io import read_image, write_image
    from segstudio.core.outofcore import Written, iter_predict_to_file
    from segstudio.core.predictor import Predictor, plan_for
    from segstudio.core.run import model_from_config

    torch.set_num_threads(args.threads)
    dims = 3
    cfg = TrainConfig(n_classes=N_CLASSES, spatial_dims=dims, patch_size=tuple(args.patch),
                      features=(8, 16, 32, 64) if args.unet else (4, 8))
    torch.manual_seed(0)
    model = model_from_config(cfg) if args.unet else Pointwise(dims, 1, N_CLASSES)
    pred = Predictor(model, cfg, device="cpu")
    # Warm-up on a volume of one tile of the real run's size through the same path: imports
    # (zarr, codecs), thread pools and the model's working memory for one tile. What stays
    # resident is the model's own footprint.
    warm_dir = Path(args.child_out).parent / "warm-up"
    shape = read_image(args.child_in, lazy=True)[0].shape
    tile = plan_for(cfg, shape, pred.device).tile
    tiny = make_volume(warm_dir / "in.zarr", tile)
    for _ in iter_predict_to_file(pred, read_image(tiny, lazy=True)[0], warm_dir / "out.zarr"):
        pass
    # The model's footprint includes its transient working memory for a tile (a CPU conv3d
    # allocates scratch memory per call): the peak so far, not the current RSS.
    baseline = peak_rss_bytes()
    t0 = time.perf_counter()
    if args.mode == "ooc":
        image, meta = read_image(args.child_in, lazy=True)
        for ev in iter_predict_to_file(pred, image, args.child_out, axes=meta.axes, spacing=meta.spacing):
            if isinstance(ev, Written):
                break
    else:  # the in-memory path: read everything, predict, write
        image, meta = read_image(args.child_in)
        result = pred.predict(image)
        write_image(args.child_out, result.labels, like=meta)
    seconds = time.perf_counter() - t0
    print(json.dumps({"baseline": baseline, "peak": peak_rss_bytes(), "seconds": seconds,
                      "voxels": int(np.prod(image.shape)), "tile": list(tile)}), flush=True)


def run_child(mode: str, src: Path, dst: Path, threads: int, patch: Sequence[int] = PATCH,
              unet: bool = False) -> dict:
    """Run :func:`child` in a fresh process (so its peak memory is its own)."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child-in", str(src), "--child-out", str(dst),
           "--mode", mode, "--threads", str(threads), "--patch", *map(str, patch)] + (["--unet"] if unet else [])
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False,
                          env=dict(os.environ, OMP_NUM_THREADS=str(threads)))
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-2000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="the 1 GiB zarr case only")
    p.add_argument("--size-mib", type=int, default=1024)
    p.add_argument("--input", choices=("zarr", "tif"), default="zarr")
    p.add_argument("--unet", action="store_true", help="fast-preset U-Net instead of a 1x1x1 convolution")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--patch", type=int, nargs=3, default=list(PATCH))
    p.add_argument("--mode", choices=("ooc", "mem"), default="ooc", help=argparse.SUPPRESS)
    p.add_argument("--child-in", help=argparse.SUPPRESS)
    p.add_argument("--child-out", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child_in:
        child(args)
        return
    shape = shape_for(args.size_mib)
    inputs = [args.input] if args.quick else sorted({args.input, "zarr", "tif"})
    with tempfile.TemporaryDirectory(dir=os.environ.get("SEGSTUDIO_BENCH_TMP")) as tmp:
        for kind in inputs:
            t0 = time.perf_counter()
            src = make_volume(Path(tmp) / f"volume.{kind}", shape)
            made = time.perf_counter() - t0
            r = run_child("ooc", src, Path(tmp) / "pred.zarr", args.threads, args.patch, args.unet)
            nbytes = int(np.prod(shape)) * 2
            above = r["peak"] - r["baseline"]
            model = "fast U-Net" if args.unet else "1x1x1 conv"
            print(f"out-of-core {kind}->zarr {'x'.join(map(str, shape))} uint16 ({mib(nbytes)}, written in {made:.0f} s), "
                  f"{model}, tiles {'x'.join(map(str, r['tile']))}: {r['seconds']:.0f} s, peak RSS {mib(r['peak'])} = "
                  f"model baseline {mib(r['baseline'])} + {mib(above)} "
                  f"({'under' if above < 2**30 else 'OVER'} the 1 GiB goal)", flush=True)


if __name__ == "__main__":
    main()
