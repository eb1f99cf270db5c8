"""Paint snapshots on the GUI thread: how long copying what a stroke changed takes.

A napari Labels layer of ``--shape`` (default 512 x 2048 x 2048 uint8, 2 GiB) gets brush strokes
through napari's own ``Labels.paint`` (the same paint events as the mouse); after each group
of strokes (what one debounce interval collects) the app's
:class:`segstudio._qt.layers.PaintCopy` takes its snapshot: it re-copies only the blocks the
paint events name. That ``take`` is the only part on the GUI thread. For comparison, a full
copy of the volume (what a save or training start used to do with the live array), and the
worker-side check that finds changes made without a paint event (undo).

Run: ``python benchmarks/paint_snapshot.py [--shape 512 2048 2048] [--groups 20]``. The last
line of output is one JSON object; the goal is ``take_max_ms`` <= 50.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import machine  # noqa: E402

#: Strokes per group (one debounce interval of painting), and dabs per stroke.
STROKES_PER_GROUP = 3
DABS_PER_STROKE = 8
BRUSH_SIZE = 10


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", type=int, nargs=3, default=(512, 2048, 2048))
    parser.add_argument("--groups", type=int, default=20, help="groups of strokes (snapshots) to time")
    parser.add_argument("--quick", action="store_true", help="a 64-slice volume, 10 groups")
    args = parser.parse_args(argv)
    shape = (64, *args.shape[1:]) if args.quick else tuple(args.shape)
    groups = 10 if args.quick else args.groups

    from napari.layers import Labels

    from segstudio._qt.layers import PaintCopy

    print(f"machine: {machine()}", flush=True)
    data = np.zeros(shape, np.uint8)
    layer = Labels(data)
    layer.brush_size = BRUSH_SIZE
    copy = PaintCopy(layer.data, blank=True)  # a paint layer segstudio made: starts as zeros
    layer.events.paint.connect(lambda event: copy.mark(event.value))
    rng = np.random.default_rng(0)
    takes = []
    for _ in range(groups):
        for _ in range(STROKES_PER_GROUP):
            z = int(rng.integers(shape[0]))
            y, x = (int(rng.integers(BRUSH_SIZE, n - 4 * DABS_PER_STROKE)) for n in shape[1:])
            for d in range(DABS_PER_STROKE):
                layer.paint((z, y + d, x + 2 * d), int(rng.integers(1, 4)), refresh=False)
        t0 = time.perf_counter()
        taken = copy.take(layer.data)
        takes.append(time.perf_counter() - t0)
    np.testing.assert_array_equal(taken.array(), layer.data)  # the snapshot is the painting

    t0 = time.perf_counter()
    full = np.array(layer.data, copy=True)
    full_s = time.perf_counter() - t0
    del full
    t0 = time.perf_counter()
    copy.differing(layer.data, taken)
    verify_s = time.perf_counter() - t0

    ms = np.asarray(takes) * 1000
    result = {
        "shape": list(shape),
        "mib": round(data.nbytes / 2**20),
        "take_p50_ms": round(float(np.percentile(ms, 50)), 2),
        "take_max_ms": round(float(ms.max()), 2),
        "full_copy_ms": round(full_s * 1000, 1),
        "verify_in_worker_ms": round(verify_s * 1000, 1),
        "groups": groups,
        "strokes_per_group": STROKES_PER_GROUP,
    }
    print(f"paint snapshot of a {'x'.join(map(str, shape))} uint8 volume ({result['mib']} MiB): "
          f"GUI thread p50 {result['take_p50_ms']} ms, max {result['take_max_ms']} ms per snapshot "
          f"of {STROKES_PER_GROUP} strokes (a full copy: {result['full_copy_ms']} ms; the worker's check "
          f"for unannounced changes: {result['verify_in_worker_ms']} ms)")
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
