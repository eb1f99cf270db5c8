"""Device helpers shared by the trainer, the predictor and the exports.

One device choice for all of segstudio: ``auto`` picks CUDA, then MPS, then the CPU; mixed
precision runs on CUDA only; an out-of-memory error is recognised by :func:`is_oom` whatever
the backend calls it.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import threading
from typing import Any

import torch

from segstudio.core.errors import UserInputError

__all__ = ["ComputeTurns", "amp_dtype", "is_oom", "memory_bytes", "resolve_device"]


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` → CUDA, then MPS, then CPU. Asking for an absent device is a user error."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserInputError("--device cuda was asked for, but no CUDA GPU is available")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise UserInputError("--device mps was asked for, but MPS is not available")
    if name not in ("cpu", "mps") and not name.startswith("cuda"):
        raise UserInputError(f"unknown device {name!r}: expected auto, cpu, cuda or mps")
    return torch.device(name)


def amp_dtype(device: torch.device, enabled: bool) -> torch.dtype | None:
    """bf16 where the GPU supports it, else fp16 (with a GradScaler); ``None`` off CUDA."""
    if not enabled or device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def is_oom(exc: BaseException) -> bool:
    """Whether ``exc`` is an out-of-memory error (CUDA, MPS or the CPU allocator)."""
    return isinstance(exc, torch.OutOfMemoryError) or "out of memory" in str(exc).lower()


def memory_bytes(device: torch.device) -> int | None:
    """Total memory of ``device`` in bytes (GPU memory, or the machine's RAM); ``None`` if unknown.

    The total, not what is free now: sizes derived from it (inference tiles) stay the same
    from one call to the next on a machine.
    """
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return int(torch.cuda.get_device_properties(index).total_memory)
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):  # no sysconf (Windows)
        return None


class ComputeTurns:
    """A fair (first come, first served) lock for work that uses every CPU core.

    In the app the trainer and the live previews run in two threads. On a CPU each torch call
    uses all cores, so running both at once oversubscribes the cores (OpenMP threads spin
    waiting for each other) and each slows down several times. Taking turns, each step and each
    preview gets all the cores: the trainer holds a turn for one optimisation step, a preview
    for one prediction. The lock is fair, so a waiting preview gets the next turn instead of
    losing every race to the trainer's loop.

    Use as a context manager: ``with turns: ...``. On a GPU the device already interleaves the
    work; :meth:`for_device` gives a no-op then. ``shared=True`` makes turns that a training
    process started with ``multiprocessing``'s *spawn* takes too (hand the object to it as an
    argument of the process): the tickets then live in shared memory.
    """

    def __init__(self, shared: bool = False) -> None:
        self.shared = shared
        if shared:
            ctx = multiprocessing.get_context("spawn")
            self._cond: Any = ctx.Condition()
            self._tickets: Any = ctx.RawArray("q", 2)  # next ticket, ticket served
        else:
            self._cond = threading.Condition()
            self._tickets = [0, 0]
        # The holder, per process (only one thread of one process holds the turn).
        self._owner: int | None = None
        self._depth = 0

    def __getstate__(self) -> dict[str, Any]:  # to a spawned process: the shared parts only
        if not self.shared:
            raise TypeError("only ComputeTurns(shared=True) can go to another process")
        return {"shared": True, "_cond": self._cond, "_tickets": self._tickets}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state, _owner=None, _depth=0)

    @classmethod
    def for_device(cls, device: torch.device | str) -> contextlib.AbstractContextManager:
        """Turns for work on ``device``: a :class:`ComputeTurns` on the CPU, else a no-op."""
        return cls() if torch.device(device).type == "cpu" else contextlib.nullcontext()

    def __enter__(self) -> ComputeTurns:
        me = threading.get_ident()
        with self._cond:
            if self._owner == me:  # re-entrant for the thread that holds the turn
                self._depth += 1
                return self
            tickets = self._tickets
            ticket = tickets[0]
            tickets[0] = ticket + 1
            while tickets[1] != ticket:
                self._cond.wait()
            self._owner, self._depth = me, 1
        return self

    def __exit__(self, *exc: object) -> None:
        with self._cond:
            self._depth -= 1
            if self._depth == 0:
                self._owner = None
                self._tickets[1] += 1
                self._cond.notify_all()
