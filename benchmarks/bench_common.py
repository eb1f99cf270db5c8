"""Shared helpers of the speed benchmarks: machine description, timing, memory, models."""

from __future__ import annotations

import ast
import contextlib
import json
import os
import platform
import resource
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from segstudio.core.config import MODEL_PRESETS, TrainConfig
from segstudio.core.run import model_from_config


def machine() -> str:
    """One line: CPU model, cores, RAM, torch, GPU (if any), load average."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
        ram_s = f", {ram:.0f} GiB RAM"
    except (ValueError, OSError):
        ram_s = ""
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    load = ", load avg %.1f" % os.getloadavg()[0] if hasattr(os, "getloadavg") else ""
    return f"{cpu}, {os.cpu_count()} cores{ram_s}, torch {torch.__version__}, {gpu}{load}"


def best_time(fn: Callable[[], object], repeats: int, warmup: int = 1) -> tuple[float, object]:
    """Best wall time of ``repeats`` calls after ``warmup`` calls; returns (seconds, last result)."""
    out = None
    for _ in range(warmup):
        out = fn()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def interleaved_best(fns: Sequence[Callable[[], object]], repeats: int, warmup: int = 1
                     ) -> tuple[list[float], list[object]]:
    """Best wall time of each function, calling them in turn (A B A B ...).

    Interleaving spreads the load of a shared machine evenly over the contenders, so their
    ratio is fairer than timing one after the other.
    """
    outs: list[object] = [None] * len(fns)
    for _ in range(warmup):
        outs = [fn() for fn in fns]
    best = [float("inf")] * len(fns)
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            t0 = time.perf_counter()
            outs[i] = fn()
            best[i] = min(best[i], time.perf_counter() - t0)
    return best, outs


def rss_bytes() -> int:
    """Current resident set size of this process (Linux /proc; else the peak)."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return peak_rss_bytes()


def peak_rss_bytes() -> int:
    """Peak resident set size of this process so far (``ru_maxrss``)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak) * (1 if platform.system() == "Darwin" else 1024)


def unet_config(spatial_dims: int, patch: Sequence[int], preset: str = "fast", n_classes: int = 3,
                features: Sequence[int] | None = None) -> TrainConfig:
    """The config of a segstudio U-Net (``preset`` features unless ``features`` given)."""
    return TrainConfig(n_classes=n_classes, spatial_dims=spatial_dims, patch_size=tuple(patch),
                       features=tuple(features) if features else MODEL_PRESETS[preset])


def seeded_model(config: TrainConfig, seed: int = 0) -> torch.nn.Module:
    """An untrained model with reproducible weights (speed does not depend on training)."""
    torch.manual_seed(seed)
    return model_from_config(config).eval()


def smooth_volume(shape: Sequence[int], seed: int = 0, dtype: type = np.uint16) -> np.ndarray:
    """A smooth-ish synthetic image (blobs + noise) in the range of ``dtype``."""
    rng = np.random.default_rng(seed)
    grids = np.meshgrid(*[np.linspace(0, 6.0, n, dtype=np.float32) for n in shape], indexing="ij", sparse=True)
    phase = rng.random(len(shape)) * 6.28
    img = sum(np.sin(g * (1.3 + i) + p) for i, (g, p) in enumerate(zip(grids, phase)))
    img = img + 0.3 * rng.standard_normal(shape, dtype=np.float32)
    lo, hi = float(img.min()), float(img.max())
    top = np.iinfo(dtype).max if np.issubdtype(dtype, np.integer) else 1.0
    return ((img - lo) / (hi - lo) * top * 0.9).astype(dtype)


def mib(n: float) -> str:
    return f"{n / 2**20:.0f} MiB"


def parse_value(text: str) -> Any:
    """A ``--set field=value`` value.

    ``8,16,32`` -> tuple, ``0.1`` -> float, ``none`` -> None, ``'none'`` -> the string, else a
    Python literal or the text itself.
    """
    if text.lower() == "none":
        return None
    if "," in text:
        return tuple(parse_value(t) for t in text.split(",") if t)
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


@contextlib.contextmanager
def constants_set(changes: Sequence[tuple[Any, str, Any]]) -> Iterator[None]:
    """Each ``(module, name, value)`` of ``changes`` in force for the block, the constants as
    they were after it (also when it raises)."""
    kept = [(mod, name, getattr(mod, name)) for mod, name, _ in changes]
    try:
        for mod, name, value in changes:
            setattr(mod, name, value)
        yield
    finally:
        for mod, name, value in kept:
            setattr(mod, name, value)


def parse_sets(items: Sequence[str]) -> dict[str, Any]:
    """``--set field=value`` arguments as a dict of overrides (values by :func:`parse_value`)."""
    return {k: parse_value(v) for k, v in (item.split("=", 1) for item in items)}


def emit(row: Mapping[str, Any], out: Path | None = None) -> None:
    """Print one result row as a JSON line and, with ``out``, append the line to that file."""
    line = json.dumps(row)
    print(line, flush=True)
    if out is not None:
        with Path(out).open("a") as fh:
            fh.write(line + "\n")


def load_probe(name: str) -> Any:
    """The script ``benchmarks/runs/NAME`` as a module (a dated probe's file name is not an
    importable module name), to reuse its functions; its ``__main__`` part does not run."""
    import importlib.util

    path = Path(__file__).resolve().parent / "runs" / name
    spec = importlib.util.spec_from_file_location(path.stem.replace("-", "_"), path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module

