"""The headless path end to end on one device, as a user runs it from a shell.

Writes a synthetic nuclei image (2D 512² or 3D 32×128×128 with spacing 2, 0.5, 0.5), its
simulated strokes and its truth as TIFF files, then runs ``segstudio train --device DEVICE``,
``segstudio predict``, ``segstudio metrics`` against the truth and ``segstudio export``
(TorchScript and ONNX), each as a separate process, and prints one line per command with its
wall time and, for the prediction, the Dice per class. It fails (exit 1) when a command fails
or the nucleus Dice is under ``--floor``. ``benchmarks/gpu_check.sh`` runs it on the GPU::

    python benchmarks/cli_check.py --device cuda --iterations 400
    python benchmarks/cli_check.py --device cpu --iterations 20 --floor 0   # checks the script
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import tifffile

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from segstudio.core.samples import synthetic_nuclei  # noqa: E402


def _segstudio(*args: str) -> tuple[str, float]:
    """Run ``python -m segstudio ARGS``; its stdout and wall time, or SystemExit with its stderr."""
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "segstudio", *args], capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"segstudio {args[0]} failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
    return done.stdout, seconds


def check(dims: int, device: str, iterations: int, floor: float, folder: Path) -> bool:
    """Train, predict, score and export one sample; True when the nucleus Dice reaches ``floor``."""
    if dims == 2:
        s = synthetic_nuclei((512, 512), seed=3)
    else:
        s = synthetic_nuclei((32, 128, 128), seed=3, spacing=(2.0, 0.5, 0.5), radius_range=(8.0, 14.0))
    d = folder / f"{dims}d"
    d.mkdir()
    tifffile.imwrite(d / "image.tif", s.image)
    tifffile.imwrite(d / "labels.tif", s.paintings)
    tifffile.imwrite(d / "truth.tif", s.truth)
    _, t_train = _segstudio("train", "--image", str(d / "image.tif"), "--labels", str(d / "labels.tif"),
                            "--mode", "exclusive", "--out", str(d / "run"), "--iterations", str(iterations),
                            "--device", device, "--seed", "0")
    _, t_pred = _segstudio("predict", "--model", str(d / "run"), "--image", str(d / "image.tif"),
                           "--out", str(d / "pred.tif"), "--device", device)
    out, _ = _segstudio("metrics", "--pred", str(d / "pred.tif"), "--truth", str(d / "truth.tif"), "--json")
    dice = {str(m["class"]): round(float(m["dice"]), 4) for m in json.loads(out)}
    times = []
    for fmt, name in (("torchscript", "model.pt"), ("onnx", "model.onnx")):
        _, t = _segstudio("export", "--model", str(d / "run"), "--format", fmt, "--out", str(d / name))
        times.append(f"{fmt} {t:.1f} s")
    nucleus = dice.get("2", float("nan"))  # the samples' classes: 1 background, 2 nucleus, 3 boundary
    ok = bool(nucleus >= floor)
    print(f"cli {dims}d {device} {'x'.join(map(str, s.image.shape))}: train {iterations} iterations {t_train:.1f} s, "
          f"predict {t_pred:.1f} s, export {', '.join(times)}; Dice {json.dumps(dice)} "
          f"({'ok' if ok else 'FAILED'}: nucleus >= {floor})", flush=True)
    return ok


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--iterations", type=int, default=400)
    p.add_argument("--floor", type=float, default=0.8, help="least nucleus Dice that passes")
    p.add_argument("--dims", type=int, nargs="+", default=[2, 3], choices=[2, 3])
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="segstudio-cli-") as tmp:
        results = [check(d, args.device, args.iterations, args.floor, Path(tmp)) for d in args.dims]
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
