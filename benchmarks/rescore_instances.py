"""Instance F1 of saved predictions, as they are scored now and with changed constants.

``quality.py --predictions DIR`` saves every row's prediction (exclusive classes). This script
makes the objects of each saved prediction of an object family (nuclei, cells) twice with
:mod:`segstudio.core.instances` as the app makes them — once with the code as it is, once with
the ``--constant`` settings — and prints F1 at IoU 0.5 against the sample's true objects,
prediction by prediction, then how many went up, stayed (within 0.005) or went down. A change
to how objects are made from a prediction is measured this way on every cell without training
again::

    python benchmarks/quality.py --families nuclei cells --steps 1400 370 --predictions /tmp/preds
    python benchmarks/rescore_instances.py /tmp/preds --constant segstudio.core.instances.SEED_HOLES_FILLED=False

(an ``.npz`` of such a folder's files works too: ``benchmarks/runs`` keeps session 24's).
``--declump intensity`` scores the changed objects split along the image's dim lines (the
app's *at dim lines* choice).

With ``--rows ROWS.jsonl --out NEW.jsonl`` it also writes that run's rows with each object
family's F1 as the changed code scores it (the run's other figures as they were), for
``quality.py --table NEW.jsonl``.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import families as fam  # noqa: E402
from bench_common import constants_set  # noqa: E402
import quality  # noqa: E402
import users  # noqa: E402

NAME = re.compile(r"(?P<family>[a-z]+)_(?P<dims>[23])d_(?P<habit>[a-z]+)_(?P<mode>[a-z]+)_s(?P<seed>\d+)_"
                  r"(?P<method>[a-z]+)_(?P<phase>[a-z0-9]+)\.npy$")


def _predictions(source: Path) -> list[tuple[Path, Callable[[], np.ndarray]]]:
    """``(file name, loader)`` of each saved prediction, from a folder or an ``.npz``."""
    if source.suffix == ".npz":
        archive = np.load(source)
        return [(Path(f"{k}.npy"), lambda k=k: archive[k]) for k in sorted(archive.files)]
    return [(path, lambda path=path: np.load(path)) for path in sorted(source.glob("*.npy"))]


def f1(pred: np.ndarray, painting: users.Painting, sample: fam.FamilySample,
       declump: str = "shape") -> tuple[float, int]:
    """F1 at IoU 0.5 and the number of objects, as ``quality.score`` makes them (``declump``:
    :attr:`segstudio.core.instances.InstanceOptions.declump`)."""
    from segstudio.core.instances import InstanceOptions, instances_from_labels
    from segstudio.core.metrics import instance_scores

    options = InstanceOptions(object_classes=(2,), boundary_class=3 if len(painting.class_names) == 3 else None,
                              declump=declump)
    objects = instances_from_labels(pred, options, sample.spacing, image=sample.image).labels
    return instance_scores(objects, sample.instances).f1, int(objects.max(initial=0))


def main(argv: Sequence[str] | None = None) -> None:
    """Command-line entry point."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folder", type=Path,
                   help="a quality.py --predictions folder, or an .npz of its files (name without .npy: array)")
    p.add_argument("--constant", action="append", default=[], metavar="MODULE.NAME=VALUE")
    p.add_argument("--declump", default="shape", choices=["shape", "intensity"],
                   help="split touching objects this way in the changed scoring (the app's *at dim lines*)")
    p.add_argument("--method", default="segstudio", help="whose predictions: segstudio, rf or all")
    p.add_argument("--rows", type=Path, default=None, help="the quality.py --out file of the same run")
    p.add_argument("--out", type=Path, default=None, help="write --rows here with F1 rescored")
    args = p.parse_args(argv)
    if (args.rows is None) != (args.out is None):
        raise SystemExit("--rows and --out go together")
    changes = quality.parse_constants(args.constant)
    rescored: dict[str, float] = {}
    up = same = down = 0
    deltas = []
    groups: dict[tuple[str, str, int, bool], list[tuple[float, float]]] = {}
    print("| prediction | objects (true) | F1 now | F1 changed |\n|---|---|---|---|")
    for path, load in _predictions(args.folder):
        m = NAME.match(path.name)
        if m is None or (args.method != "all" and m["method"] != args.method):
            continue
        family, dims, seed = m["family"], int(m["dims"]), int(m["seed"])
        sample = fam.make(family, dims, seed)
        if sample.kind != fam.OBJECTS:
            continue
        painting = users.paint(sample, m["habit"], seed)
        pred = load()
        before, n_before = f1(pred, painting, sample)
        after, n_after = before, n_before  # no constants: the code as it is, once
        if changes or args.declump != "shape":
            with constants_set(changes):
                after, n_after = f1(pred, painting, sample, args.declump)
        rescored[path.name] = after
        boundary = len(painting.class_names) == 3
        groups.setdefault((m["method"], family, dims, boundary), []).append((before, after))
        d = after - before
        deltas.append(d)
        up, same, down = up + (d > 0.005), same + (abs(d) <= 0.005), down + (d < -0.005)
        print(f"| {path.stem} | {n_before} → {n_after} ({int(sample.instances.max())}) | {before:.3f} | "
              f"{'**' if d > 0.005 else ''}{after:.3f}{'**' if d > 0.005 else ''} |", flush=True)
    mean = f", mean change {np.mean(deltas):+.3f}" if deltas else ""
    print(f"F1: up in {up}, within 0.005 in {same}, down in {down} of {len(deltas)}{mean}")
    print("\n| method | family | dims | boundary class painted | predictions | mean F1 now | mean F1 changed |"
          "\n|---|---|---|---|---|---|---|")
    for (method, family, dims, boundary), pairs in sorted(groups.items()):
        a = np.asarray(pairs)
        print(f"| {method} | {family} | {dims}D | {'yes' if boundary else 'no'} | {len(a)} | {a[:, 0].mean():.3f} | "
              f"{a[:, 1].mean():.3f} |")
    if args.rows is not None:
        lines = []
        for line in args.rows.read_text().splitlines():
            if not line.strip():
                continue
            row = json.loads(line)
            name = quality.prediction_name(row)
            if "F1" in row:
                if name not in rescored:
                    raise SystemExit(f"no prediction {name} in {args.folder} (rescore with --method all)")
                row["F1"] = round(rescored[name], 4)
                row["rescored"] = args.constant or True  # True: by the code as it is
            lines.append(json.dumps(row))
        args.out.write_text("\n".join(lines) + "\n")
        print(f"wrote {len(lines)} rows to {args.out}")


if __name__ == "__main__":
    main()
