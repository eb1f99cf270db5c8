"""Speed of objects from a prediction (``segstudio.core.instances``) and of the instance scores.

Goals (issue 18): a 2048 x 2048 image in <= 1 s and a 64 x 512 x 512 volume in <= 5 s on 2 CPU
cores. The inputs are synthetic nuclei (``segstudio.core.samples.synthetic_nuclei``, made by
code) with their true classes (1 background, 2 nucleus, 3 boundary) standing in for a
prediction, so the objects are also scored against the true objects (F1 at IoU 0.5). Cases:

* ``labels, interior seeds``: the 3-class labels; seeds = nucleus regions, flooding by the
  distance to the nearest seed (``instances_from_labels``).
* ``probabilities, interior seeds``: smoothed one-hot probabilities (K, *spatial); flooding by
  the boundary probability (``instances_from_probabilities``; argmax included).
* ``2 classes, distance seeds``: nucleus = nucleus or boundary, no boundary class: seeds from
  the distance transform's maxima (each plane's holes filled for them, the default), and the
  same with the holes as they are (``SEED_HOLES_FILLED`` off), for what the filling costs.
* ``2 classes, seeds at dim lines``: the same labels split along the image's dim lines
  (``declump="intensity"``, a choice for cells whose contacts are dimmer than their inside; on
  these textured nuclei it over-splits, so its F1 is not the point here, its time is).
* ``no split``: connected regions of the 3-class object pixels.
* ``object table``: ``object_table`` of the interior-seed objects with the image's intensity.
* ``instance scores``: ``instance_scores`` of those objects against the true objects.
* ``band by band`` (3D only): ``instances_in_bands`` of the 3-class labels into an in-memory
  output (scratch memory maps on disk), the out-of-core path.

Each figure is the best of ``--repeats`` runs. Usage::

    python benchmarks/instances_speed.py            # 2048^2 and 64x512x512
    python benchmarks/instances_speed.py --quick    # 1024^2 and 32x256x256
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import best_time, constants_set, machine  # noqa: E402

from segstudio.core.instances import (  # noqa: E402
    InstanceOptions,
    instances_from_labels,
    instances_from_probabilities,
    instances_in_bands,
    object_table,
)
from segstudio.core.metrics import instance_scores  # noqa: E402
from segstudio.core.samples import synthetic_nuclei  # noqa: E402

GOAL_S = {2: 1.0, 3: 5.0}
#: Blur (pixels) of the one-hot truth that stands in for a network's probabilities.
PROB_SIGMA = 1.0


def _probabilities(truth: np.ndarray, k: int = 3) -> np.ndarray:
    one_hot = np.stack([(truth == c + 1).astype(np.float32) for c in range(k)])
    blurred = np.stack([ndi.gaussian_filter(p, PROB_SIGMA) for p in one_hot])
    return blurred / blurred.sum(axis=0, keepdims=True)


def _holes_kept(fn: Callable[[], object]) -> object:
    """``fn()`` with distance seeds reading holes as they are (``SEED_HOLES_FILLED`` off)."""
    import segstudio.core.instances as instances

    with constants_set([(instances, "SEED_HOLES_FILLED", False)]):
        return fn()


def run(shape: tuple[int, ...], spacing: tuple[float, ...] | None, repeats: int, seed: int = 0) -> None:
    nd = len(shape)
    radius = (12.0, 22.0) if nd == 2 else (10.0, 16.0)
    s = synthetic_nuclei(shape, seed=seed, spacing=spacing, radius_range=radius, paint=False)
    name = "x".join(map(str, shape))
    three = InstanceOptions(boundary_class=3)
    two_labels = np.where(s.truth >= 2, 2, 1).astype(np.uint8)
    probs = _probabilities(s.truth)
    cases: list[tuple[str, Callable[[], object]]] = [
        ("labels, interior seeds", lambda: instances_from_labels(s.truth, three, s.spacing)),
        ("probabilities, interior seeds", lambda: instances_from_probabilities(probs, three, s.spacing)),
        ("2 classes, distance seeds", lambda: instances_from_labels(two_labels, InstanceOptions(), s.spacing)),
        ("2 classes, distance seeds, holes not filled", lambda: _holes_kept(
            lambda: instances_from_labels(two_labels, InstanceOptions(), s.spacing))),
        ("2 classes, seeds at dim lines", lambda: instances_from_labels(
            two_labels, InstanceOptions(declump="intensity"), s.spacing, image=s.image)),
        ("no split", lambda: instances_from_labels(s.truth, InstanceOptions(boundary_class=3, split=False),
                                                   s.spacing)),
    ]
    objects = instances_from_labels(s.truth, three, s.spacing)
    cases += [
        ("object table", lambda: object_table(objects.labels, s.image, spacing=s.spacing, classes=objects.classes)),
        ("instance scores", lambda: instance_scores(objects.labels, s.instances)),
    ]
    if nd == 3:
        out = np.zeros(shape, np.uint32)
        cases.append(("band by band", lambda: instances_in_bands(s.truth, out, three, s.spacing)))
    for label, fn in cases:
        seconds, result = best_time(fn, repeats, warmup=0)
        extra = ""
        if hasattr(result, "labels"):
            sc = instance_scores(result.labels, s.instances)
            extra = f"; {result.n} objects of {sc.n_true}, F1 {sc.f1:.3f}"
        goal = f" (goal <= {GOAL_S[nd]:.0f} s)" if "seeds" in label or label == "no split" else ""
        print(f"instances {name}: {label}: {seconds:.2f} s{goal}{extra}", flush=True)


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="1024^2 and 32x256x256")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)
    print(f"machine: {machine()}", flush=True)
    if args.quick:
        run((1024, 1024), None, args.repeats)
        run((32, 256, 256), (2.0, 0.5, 0.5), args.repeats)
    else:
        run((2048, 2048), None, args.repeats)
        run((64, 512, 512), (2.0, 0.5, 0.5), args.repeats)
    print(f"machine after: {machine()}", flush=True)


if __name__ == "__main__":
    main()
