"""Device helpers shared by the trainer, the predictor and the exports.

One device choice for all of segstudio: ``auto`` picks CUDA, then MPS, then the CPU; mixed
precision runs on CUDA only; an out-of-memory error is recognised by :func:`is_oom` whatever
the backend calls it.
"""

from __future__ import annotations

import os

import torch

from segstudio.core.errors import UserInputError

__all__ = ["amp_dtype", "is_oom", "memory_bytes", "resolve_device"]


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
