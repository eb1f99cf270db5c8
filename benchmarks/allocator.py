"""Training speed with glibc's malloc tuned (``core.allocator``) against malloc left alone.

Each run is a fresh process that trains the built-in sample with its example strokes for a
fixed number of steps, with the trainer in the main thread (as ``segstudio train``) or in a
second thread (as in the app), and reports steps per second after ``--warm-up`` steps. Runs
alternate: tuned, untouched (``SEGSTUDIO_MALLOC=system``), tuned, ... so that a drift of the
machine's speed falls on both; the ratio is taken pair by pair. Linux with glibc only (elsewhere
both runs are the same)::

    python benchmarks/allocator.py --sample nuclei2d --steps 400 --pairs 3
    python benchmarks/allocator.py --sample nuclei3d --steps 60 --pairs 3 --where thread
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time


def child(sample: str, steps: int, warm_up: int, where: str) -> dict:
    """Train ``steps`` steps in this process; steps per second after ``warm_up``."""
    from segstudio.core.allocator import tune_allocator

    tuned = tune_allocator()  # what the CLI and the app do first
    from segstudio.core.data import SnapshotSource, TrainingImage
    from segstudio.core.samples import sample_2d, sample_3d
    from segstudio.core.trainer import Failed, Progress, Trainer, infer_config

    s = sample_2d() if sample == "nuclei2d" else sample_3d()
    config = infer_config(s.image.shape, s.paintings, "exclusive", iterations=steps, spacing=s.spacing,
                          checkpoint_every_s=1e9, preview_every_s=1e9, seed=0)
    source = SnapshotSource()
    source.put([TrainingImage(s.image, s.paintings)])
    times: list[float] = []

    def run() -> None:
        for ev in Trainer(config, source, None).run():
            if isinstance(ev, Progress):
                times.append(time.perf_counter())
            elif isinstance(ev, Failed):
                raise RuntimeError(ev.message)

    if where == "thread":
        t = threading.Thread(target=run)
        t.start()
        t.join()
    else:
        run()
    rate = (len(times) - 1 - warm_up) / (times[-1] - times[warm_up])
    return {"tuned": tuned, "steps_per_s": round(rate, 2)}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sample", default="nuclei2d", choices=("nuclei2d", "nuclei3d"))
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--warm-up", type=int, default=20)
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--where", default="main", choices=("main", "thread"))
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        out = child(args.sample, args.steps, args.warm_up, args.where)
        print(json.dumps(out))
        return out

    def one(tuned: bool) -> float:
        env = dict(os.environ)
        env.pop("SEGSTUDIO_MALLOC", None)
        if not tuned:
            env["SEGSTUDIO_MALLOC"] = "system"
        cmd = [sys.executable, __file__, "--child", "--sample", args.sample, "--steps", str(args.steps),
               "--warm-up", str(args.warm_up), "--where", args.where]
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
        return float(json.loads(done.stdout.strip().splitlines()[-1])["steps_per_s"])

    tuned_rates, system_rates = [], []
    for _ in range(args.pairs):
        tuned_rates.append(one(True))
        system_rates.append(one(False))
    ratios = [a / b for a, b in zip(tuned_rates, system_rates)]
    result = {
        "sample": args.sample, "where": args.where, "steps": args.steps,
        "tuned_steps_per_s": tuned_rates, "system_steps_per_s": system_rates,
        "tuned_median": statistics.median(tuned_rates), "system_median": statistics.median(system_rates),
        "ratio_median": round(statistics.median(ratios), 3), "ratios": [round(r, 3) for r in ratios],
    }
    print(f"allocator {args.sample} ({args.where} thread): tuned {result['tuned_median']} steps/s, "
          f"malloc untouched {result['system_median']} steps/s; ratio pair by pair {result['ratios']} "
          f"(median {result['ratio_median']})")
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
