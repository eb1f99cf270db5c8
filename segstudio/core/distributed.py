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
  the running statistics are averaged after each step), so the replicas stay identical. Only
  that state is communicated: the fixed input-filter kernels (buffers that never change) are
  neither broadcast nor averaged, so they stay bit-identical to the config's;
* every rank samples its own patches: its sampler is seeded with ``(seed, rank)``, so the
  effective batch is ``batch × world size`` distinct patches;
* the loss reported is the mean over ranks; the stop decision (iterations or minutes) is
  agreed on by all ranks, so none waits forever for a peer that stopped;
* only rank 0 writes the run directory, validates and prints; the run it writes is an
  ordinary run (plain state dict, no ``module.`` prefix) that loads and predicts as any run;
* a rank that fails writes its message into the process group's key-value store and leaves
  the group; its peers, whose next collective then fails, report that message (``rank 1 of
  2 failed: ...``) instead of a transport error, and every rank stops within seconds.

The learning rate is not scaled with the world size. An out-of-memory error cannot be
recovered by shrinking the batch on one rank only, so under torchrun it ends the training
with a message instead.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from segstudio.core.atomic import atomic_torch_save
from segstudio.core.device import resolve_device
from segstudio.core.errors import UserInputError
from segstudio.core.trainer import Event, Failed, Trainer, cpu_state
from segstudio.core.trainer import train as train_local

__all__ = ["DistEnv", "DistributedTrainer", "backend_for", "env_from_torchrun", "state_fingerprint"]

#: Environment variable: a folder where every rank writes ``rank<r>.pt`` (its final weights,
#: the local loss of each step) at the end of training -- to check that replicas agree.
DUMP_ENV = "SEGSTUDIO_DIST_DUMP"

_DONE_REASONS = ("", "iterations", "time")

#: Key in the process group's store under which the first rank that fails leaves its message.
FAILURE_KEY = "segstudio/failure"
#: Seconds a store operation may take while reporting a failure (the store may be gone).
FAILURE_STORE_TIMEOUT_S = 10
#: Buffers averaged over the ranks on CPU (BatchNorm running statistics), by name suffix.
RUNNING_STATS = ("running_mean", "running_var")


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
        # No buffer broadcast: the running statistics are kept identical by SyncBatchNorm (GPU)
        # or by averaging (CPU, see step()), and the filter kernels never change.
        self.ddp = DistributedDataParallel(self.model, device_ids=ids, broadcast_buffers=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Forward through the DDP wrapper, so backward all-reduces the gradients."""
        return self.ddp(x)

    def step(self) -> float:
        """One step on this rank's patches; returns the loss averaged over ranks."""
        local = super().step()
        self.local_losses.append(local)
        t = torch.tensor([local], dtype=torch.float64, device=self._collective_device())
        dist.all_reduce(t)
        return float(t.item()) / self.env.world_size

    def after_optimizer_step(self) -> None:
        """On CPU, average the running statistics before the moving average takes them."""
        if self.device.type != "cuda":
            self._average_buffers()

    def _average_buffers(self) -> None:
        """Average the BatchNorm running statistics over the ranks (one all-reduce).

        Only :data:`RUNNING_STATS` buffers: constant buffers (the input filters' kernels) would
        drift by rounding if averaged at every step.
        """
        stats = [b for name, b in self.model.named_buffers() if name.endswith(RUNNING_STATS)]
        if not stats:
            return
        flat = torch.cat([b.reshape(-1) for b in stats])
        dist.all_reduce(flat)
        flat.div_(self.env.world_size)
        offset = 0
        for b in stats:
            b.copy_(flat[offset:offset + b.numel()].view_as(b))
            offset += b.numel()

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
        """The trainer's events (rank 0 only writes); leaves the process group at the end.

        A failure is reported with the message of the rank that failed first (see
        :meth:`report_failure`).
        """
        try:
            for ev in super().run():
                yield self.report_failure(ev) if isinstance(ev, Failed) else ev
            self._dump()
        finally:
            if self._owns_group and dist.is_initialized():
                dist.destroy_process_group()  # closes the connections: blocked peers fail now
                self._owns_group = False

    def report_failure(self, failed: Failed) -> Failed:
        """The failure to report: this rank's own if it failed first, else the first one's.

        The first rank to fail stores its message in the process group's store (an atomic
        compare-and-set, so there is one first). A rank whose collective failed because a peer
        left then finds the peer's message there. Without a store (or when it is gone) the
        rank's own failure is reported.
        """
        mine = json.dumps({"rank": self.env.rank, "message": failed.message, "user_error": failed.user_error})
        try:
            store = dist.distributed_c10d._get_default_store()
            store.set_timeout(datetime.timedelta(seconds=FAILURE_STORE_TIMEOUT_S))
            first = json.loads(store.compare_set(FAILURE_KEY, "", mine))
        except Exception:  # noqa: BLE001 - no group, or its store went with a failed rank 0
            return failed
        return Failed(f"rank {first.get('rank')} of {self.env.world_size} failed: {first.get('message')}",
                      traceback=failed.traceback, user_error=bool(first.get("user_error")))

    def _dump(self) -> None:
        folder = os.environ.get(DUMP_ENV)
        if not folder or not hasattr(self, "model"):
            return
        state = cpu_state(self.model)
        averaged = self.preview_state()  # a CPU copy of the moving average (what the run saves)
        atomic_torch_save(os.path.join(folder, f"rank{self.env.rank}.pt"), {
            "state": state, "fingerprint": state_fingerprint(state), "local_losses": self.local_losses,
            "averaged_fingerprint": state_fingerprint(averaged),
            "rank": self.env.rank, "world_size": self.env.world_size, "iteration": self.iteration,
        })


def train(env: DistEnv | None, config: Any, source: Any, run_dir: Any = None, **kwargs: Any) -> Iterator[Event]:
    """:func:`segstudio.core.trainer.train`, or its DDP version when ``env`` is given."""
    if env is None:
        return train_local(config, source, run_dir, **kwargs)
    return DistributedTrainer(env, config, source, run_dir, **kwargs).run()
