"""Distributed training with PyTorch's own runtime: ``torchrun`` + DistributedDataParallel.

::

    torchrun --nproc_per_node 4 -m segstudio train --image a.tif --labels a_paint.tif --out RUN

``torchrun`` starts one process per GPU (or CPU worker) and sets ``RANK``, ``LOCAL_RANK``,
``WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT``; :func:`env_from_torchrun` reads them and
:class:`DistributedTrainer` does the rest:

* the process group is initialised from those variables (``init_method="env://"``) with
  ``nccl`` on CUDA and ``gloo`` on CPU; each process uses GPU ``LOCAL_RANK``;
* every rank builds the same model (same seed) and DistributedDataParallel broadcasts rank
  0's weights at start, then all-reduces (averages) gradients at every backward pass, and
  BatchNorm layers become SyncBatchNorm on GPUs (statistics over all ranks' patches; on CPU
  the running statistics are averaged after each step), so the replicas stay identical;
* every rank samples its own patches: its sampler is seeded with ``(seed, rank)``, so the
  effective batch is ``batch × world size`` distinct patches;
* the loss reported is the mean over ranks; the stop decision (iterations or minutes) is
  agreed on by all ranks, so none waits forever for a peer that stopped;
* only rank 0 writes the run directory, validates and prints; the run it writes is an
  ordinary run (plain state dict, no ``module.`` prefix) that loads and predicts as any run.

The learning rate is not scaled with the world size. An out-of-memory error cannot be
recovered by shrinking the batch on one rank only, so under torchrun it ends the training
with a message instead.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from segstudio.core.errors import UserInputError
from segstudio.core.trainer import Event, Trainer, resolve_device

__all__ = ["DistEnv", "DistributedTrainer", "backend_for", "env_from_torchrun", "state_fingerprint"]

#: Environment variable: a folder where every rank writes ``rank<r>.pt`` (its final weights,
#: the local loss of each step) at the end of training -- to check that replicas agree.
DUMP_ENV = "SEGSTUDIO_DIST_DUMP"

_DONE_REASONS = ("", "iterations", "time")


@dataclass(frozen=True)
class DistEnv:
    """Where this process sits in a torchrun job."""

    rank: int
    local_rank: int
    world_size: int

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that writes and prints."""
        return self.rank == 0


def env_from_torchrun(environ: Mapping[str, str] | None = None) -> DistEnv | None:
    """The torchrun placement from ``RANK``/``LOCAL_RANK``/``WORLD_SIZE``, or ``None``.

    ``None`` when not started by torchrun (or with a world of one process): train as usual.
    """
    env = os.environ if environ is None else environ
    try:
        world = int(env.get("WORLD_SIZE", "1"))
        rank = int(env.get("RANK", "0"))
        local = int(env.get("LOCAL_RANK", str(rank)))
    except ValueError as e:
        raise UserInputError(f"torchrun environment is not valid: {e}") from e
    if world <= 1:
        return None
    if not 0 <= rank < world:
        raise UserInputError(f"RANK={rank} is outside WORLD_SIZE={world}")
    return DistEnv(rank=rank, local_rank=local, world_size=world)


def backend_for(device: torch.device) -> str:
    """``nccl`` for CUDA devices, ``gloo`` otherwise."""
    return "nccl" if device.type == "cuda" else "gloo"


def state_fingerprint(state: Mapping[str, torch.Tensor]) -> str:
    """A hex digest of a state dict's tensors (order and bytes): equal states, equal digests."""
    import hashlib

    h = hashlib.sha256()
    for key in sorted(state):
        h.update(key.encode())
        h.update(state[key].detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


class DistributedTrainer(Trainer):
    """A :class:`~segstudio.core.trainer.Trainer` for one rank of a torchrun job.

    Parameters
    ----------
    env
        This process's rank, local rank and the world size (:func:`env_from_torchrun`).
    config, source, run_dir, **kwargs
        As for :class:`~segstudio.core.trainer.Trainer`; ``run_dir`` and ``validation`` are
        used by rank 0 only.
    """

    def __init__(self, env: DistEnv, config: Any, source: Any, run_dir: Any = None, **kwargs: Any) -> None:
        if not env.is_main:
            kwargs["validation"] = None
        super().__init__(config, source, run_dir if env.is_main else None, **kwargs)
        self.env = env
        self.local_losses: list[float] = []
        self._owns_group = False

    def setup(self) -> None:
        """Join the process group, build the model as usual, wrap it in DDP."""
        from torch.nn.parallel import DistributedDataParallel

        cfg = self.config
        device = resolve_device(cfg.device)
        if device.type == "cuda":
            if self.env.local_rank >= torch.cuda.device_count():
                raise UserInputError(
                    f"LOCAL_RANK {self.env.local_rank} but only {torch.cuda.device_count()} GPU(s) on this node; "
                    "use --nproc_per_node up to the number of GPUs"
                )
            torch.cuda.set_device(self.env.local_rank)
            self.config = cfg = cfg.replace(device=f"cuda:{self.env.local_rank}")
        if not dist.is_initialized():
            dist.init_process_group(backend=backend_for(device), init_method="env://",
                                    rank=self.env.rank, world_size=self.env.world_size)
            self._owns_group = True
        super().setup()
        # Same initial weights on every rank (same seed; DDP also broadcasts rank 0's), but
        # each rank draws its own patches and augmentations.
        if cfg.seed is not None:
            self.rng = np.random.default_rng([cfg.seed, self.env.rank])
            torch.manual_seed(cfg.seed * 1000 + self.env.rank + 1)
        else:
            self.rng = np.random.default_rng()
        ids = [self.env.local_rank] if self.device.type == "cuda" else None
        if self.device.type == "cuda":
            # BatchNorm statistics over every rank's patches (the conversion keeps the
            # parameters the optimizer holds). SyncBatchNorm is GPU-only: on CPU the running
            # statistics are averaged over the ranks after each step instead (see step()).
            self.model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(self.model)
        self.ddp = DistributedDataParallel(self.model, device_ids=ids)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Forward through the DDP wrapper, so backward all-reduces the gradients."""
        return self.ddp(x)

    def step(self) -> float:
        """One step on this rank's patches; returns the loss averaged over ranks."""
        local = super().step()
        if self.device.type != "cuda":
            self._average_buffers()
        self.local_losses.append(local)
        t = torch.tensor([local], dtype=torch.float64, device=self._collective_device())
        dist.all_reduce(t)
        return float(t.item()) / self.env.world_size

    def _average_buffers(self) -> None:
        """Average floating-point buffers (BatchNorm running statistics) over the ranks."""
        for buf in self.model.buffers():
            if buf.is_floating_point():
                dist.all_reduce(buf)
                buf.div_(self.env.world_size)

    def _done(self, started: float) -> str | None:
        reason = super()._done(started) or ""
        code = torch.tensor([_DONE_REASONS.index(reason)], device=self._collective_device())
        dist.all_reduce(code, op=dist.ReduceOp.MAX)  # one rank out of time stops everyone
        return _DONE_REASONS[int(code.item())] or None

    def shrink_for_oom(self) -> str:
        """Ranks cannot shrink alone (their peers would wait forever): stop with a message."""
        raise UserInputError("out of GPU memory under torchrun: lower --batch or --patch and start again")

    def _collective_device(self) -> torch.device:
        return self.device if self.device.type == "cuda" else torch.device("cpu")

    def run(self) -> Iterator[Event]:
        """The trainer's events (rank 0 only writes); leaves the process group at the end."""
        try:
            yield from super().run()
            self._dump()
        finally:
            if self._owns_group and dist.is_initialized():
                dist.destroy_process_group()
                self._owns_group = False

    def _dump(self) -> None:
        folder = os.environ.get(DUMP_ENV)
        if not folder or not hasattr(self, "model"):
            return
        from segstudio.core.run import atomic_torch_save
        from segstudio.core.trainer import cpu_state

        state = cpu_state(self.model)
        atomic_torch_save(os.path.join(folder, f"rank{self.env.rank}.pt"), {
            "state": state, "fingerprint": state_fingerprint(state), "local_losses": self.local_losses,
            "rank": self.env.rank, "world_size": self.env.world_size, "iteration": self.iteration,
        })


def train(env: DistEnv | None, config: Any, source: Any, run_dir: Any = None, **kwargs: Any) -> Iterator[Event]:
    """:func:`segstudio.core.trainer.train`, or its DDP version when ``env`` is given."""
    if env is None:
        from segstudio.core.trainer import train as train_local

        return train_local(config, source, run_dir, **kwargs)
    return DistributedTrainer(env, config, source, run_dir, **kwargs).run()
