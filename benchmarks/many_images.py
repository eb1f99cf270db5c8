"""A project of many images in the app: open time, switch time and resident memory.

Writes ``--n`` synthetic ``--size``² uint16 TIFF images (made by code: smooth blobs and noise,
no download) into a temporary folder, makes a project of them with ``segstudio project
create`` (strokes on the first ``--painted`` images), then in the app (a napari viewer with the
segstudio widget, under a display):

* **open**: ``Open project`` until the first image, its paintings and the image list of all
  ``n`` images are on screen (the event loop drained);
* **switch**: selecting another image until its pixels, paintings and prediction are shown
  (painted and unpainted images in turn, each shown for the first time);
* **memory**: the process's resident memory before opening, after opening and after the
  switches, next to the size of all the images (a project must not hold them all).

The last line is one JSON object. Run it under a display::

    xvfb-run -a -s "-screen 0 1600x1000x24" python benchmarks/many_images.py

Goals (issue 17): open ≤ 3 s, switch ≤ 300 ms for 2048² images, memory far below the images'
size. ``--quick``: 20 images of 1024².
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import machine  # noqa: E402

#: Strokes per painted image: background rows and a square of the second class.
STROKE_ROWS = 4


def rss_mib() -> float:
    """The process's resident memory (``VmRSS``), MiB."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def write_images(folder: Path, n: int, size: int, seed: int = 0) -> list[Path]:
    """``n`` synthetic uint16 images: bright blobs on a smooth background, camera noise."""
    import tifffile

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    background = (200 + 300 * (xx + yy)).astype(np.float32)
    paths = []
    for i in range(n):
        img = background.copy()
        for cy, cx in rng.random((12, 2)):
            r2 = (yy - cy) ** 2 + (xx - cx) ** 2
            img += 2000.0 * np.exp(-r2 / (2 * 0.02 ** 2))
        img += rng.normal(0, 40, (size, size)).astype(np.float32)
        path = folder / f"img{i:03d}.tif"
        tifffile.imwrite(path, np.clip(img, 0, 65535).astype(np.uint16))
        paths.append(path)
    return paths


def strokes(size: int) -> np.ndarray:
    paint = np.zeros((size, size), np.uint8)
    paint[10:10 + STROKE_ROWS, : size // 2] = 1
    paint[size // 2: size // 2 + 20, size // 2: size // 2 + 20] = 2
    return paint


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="images in the project")
    parser.add_argument("--size", type=int, default=2048, help="image edge (pixels)")
    parser.add_argument("--painted", type=int, default=10, help="images with strokes")
    parser.add_argument("--switches", type=int, default=12, help="switches to time")
    parser.add_argument("--quick", action="store_true", help="20 images of 1024²")
    parser.add_argument("--keep", help="write the images and project here (kept, and used again by the next "
                        "run) instead of a temporary folder")
    args = parser.parse_args(argv)
    n, size = (20, 1024) if args.quick else (args.n, args.size)
    print(f"machine: {machine()}", flush=True)

    from qtpy.QtWidgets import QApplication

    from segstudio._qt.app import build_viewer
    from segstudio.cli import main as cli

    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="segstudio-many-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        folder = work / "project"
        painted = min(args.painted, n)
        if args.keep and (folder / "project.json").exists():  # made by an earlier run with --keep
            paths = sorted(work.glob("img*.tif"))
            n, size = len(paths), int(np.load(work / "lab000.npy", mmap_mode="r").shape[0])
        else:
            t0 = time.perf_counter()
            paths = write_images(work, n, size)
            labels = []
            for i in range(painted):
                np.save(work / f"lab{i:03d}.npy", strokes(size))
                labels.append(str(work / f"lab{i:03d}.npy"))
            if cli(["project", "create", str(folder), *map(str, paths), "--labels", *labels]) != 0:
                raise SystemExit("project create failed")
            print(f"images and project written in {time.perf_counter() - t0:.1f} s", flush=True)
        image_mib = sum(p.stat().st_size for p in paths) / 2**20
        print(f"{n} images of {size}² ({image_mib:.0f} MiB)", flush=True)

        viewer, widget = build_viewer([], None, show=True)
        app = QApplication.instance()
        c = widget.controller
        c.ask = lambda message: False  # an autosave left by an earlier run is not recovered
        app.processEvents()
        before = rss_mib()
        t0 = time.perf_counter()
        assert c.open_project(folder), c.last_error
        app.processEvents()
        open_s = time.perf_counter() - t0
        assert len(c.images.entries) == n and widget.image_list.table.rowCount() == n
        after_open = rss_mib()

        names = c.images.names()
        order = [names[i] for i in range(1, n) if i < painted][: args.switches // 2]
        order += [names[i] for i in range(painted, n)][: args.switches - len(order)]
        times = []
        for name in order:
            t0 = time.perf_counter()
            c.select_image(name)
            while c.images.current != name or c.images.switching is not None:
                app.processEvents()
                time.sleep(0.001)
            app.processEvents()  # the layers redrawn
            times.append(time.perf_counter() - t0)
            if c.last_error:
                raise SystemExit(c.last_error)
        after_switches = rss_mib()
        result = {
            "images": n, "size": size, "image_mib": round(image_mib, 1), "open_s": round(open_s, 3),
            "switch_median_ms": round(1000 * statistics.median(times), 1),
            "switch_max_ms": round(1000 * max(times), 1), "switches": len(times),
            "rss_before_mib": round(before, 1), "rss_after_open_mib": round(after_open, 1),
            "rss_after_switches_mib": round(after_switches, 1),
        }
        print(f"open: {open_s:.2f} s · switch: median {result['switch_median_ms']} ms, max "
              f"{result['switch_max_ms']} ms ({len(times)} switches) · resident memory {before:.0f} → "
              f"{after_open:.0f} (open) → {after_switches:.0f} MiB (after switching), images {image_mib:.0f} MiB",
              flush=True)
        print(json.dumps(result), flush=True)
        viewer.close()
        return result
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
