"""Run every benchmark and print all their summary lines (the README's performance section).

Usage::

    python benchmarks/run_all.py --quick     # under 5 minutes on 2 CPU cores (quiet machine)
    python benchmarks/run_all.py             # full versions

Each benchmark runs in its own process (so memory figures are its own); a benchmark that
fails prints one ``FAILED`` line and the others still run. The first line describes the machine.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_common import machine  # noqa: E402

#: (script, extra arguments) in the order they run.
BENCHMARKS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("inference_vs_monai.py", ()),
    ("throughput.py", ()),
    ("channels_last.py", ()),
    ("predict_scaling.py", ()),
    ("out_of_core.py", ("--size-mib", "256")),  # quick; the full run does 1 GiB
    ("quality.py", ()),
    ("instances_speed.py", ()),
    ("paint_snapshot.py", ()),  # quick: a 256 MiB paint layer; the full run: 2 GiB
    ("paint_change_time.py", ()),  # quick: 32 x 256 x 256; the full run: 64 x 512 x 512
)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="each benchmark's --quick mode")
    p.add_argument("--only", nargs="+", help="run only these scripts (e.g. throughput.py)")
    args = p.parse_args(argv)
    print(f"machine: {machine()}", flush=True)
    failed = 0
    t_all = time.perf_counter()
    for script, extra in BENCHMARKS:
        if args.only and script not in args.only:
            continue
        cmd = [sys.executable, str(HERE / script)] + (["--quick", *extra] if args.quick else [])
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
        for ln in lines:
            print(ln, flush=True)
        if proc.returncode != 0:
            failed += 1
            err = (proc.stderr.strip().splitlines() or ["(no message)"])[-1]
            print(f"{script}: FAILED ({err})", flush=True)
        print(f"  [{script}: {time.perf_counter() - t0:.0f} s]", flush=True)
    print(f"all benchmarks: {time.perf_counter() - t_all:.0f} s; machine after: {machine()}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
