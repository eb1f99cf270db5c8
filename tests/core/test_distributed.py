"""torchrun + DistributedDataParallel: 2 CPU processes (gloo) train, replicas stay identical, only
running statistics are averaged, and a failing rank stops every rank with its message."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from segstudio.core.distributed import DUMP_ENV, DistEnv, backend_for, env_from_torchrun, state_fingerprint
from segstudio.core.config import TrainConfig
from segstudio.core.errors import UserInputError
from segstudio.core.predictor import Predictor
from segstudio.core.run import load_run, model_from_config


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_env_from_torchrun():
    assert env_from_torchrun({}) is None
    assert env_from_torchrun({"WORLD_SIZE": "1", "RANK": "0"}) is None
    env = env_from_torchrun({"WORLD_SIZE": "4", "RANK": "3", "LOCAL_RANK": "1"})
    assert env == DistEnv(rank=3, local_rank=1, world_size=4) and not env.is_main
    with pytest.raises(UserInputError):
        env_from_torchrun({"WORLD_SIZE": "2", "RANK": "2"})
    assert backend_for(torch.device("cpu")) == "gloo" and backend_for(torch.device("cuda", 0)) == "nccl"


def test_state_fingerprint_sees_one_changed_weight():
    a = {"w": torch.zeros(3), "b": torch.ones(2)}
    b = {"w": torch.zeros(3), "b": torch.ones(2)}
    assert state_fingerprint(a) == state_fingerprint(b)
    b["w"][1] = 1e-7
    assert state_fingerprint(a) != state_fingerprint(b)


def test_torchrun_two_cpu_processes_keep_replicas_identical(tmp_path):
    rng = np.random.default_rng(0)
    img = rng.random((48, 48)).astype(np.float32)
    lab = np.zeros((48, 48), np.uint8)
    lab[5:10, 5:30] = 1
    lab[30:40, 10:40] = 2
    np.save(tmp_path / "img.npy", img)
    np.save(tmp_path / "lab.npy", lab)
    dump = tmp_path / "dump"
    env = dict(os.environ, **{DUMP_ENV: str(dump), "OMP_NUM_THREADS": "1"})
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
        "--master_addr", "127.0.0.1", "--master_port", str(_free_port()),
        "-m", "segstudio", "train", "--image", str(tmp_path / "img.npy"), "--labels", str(tmp_path / "lab.npy"),
        "--out", str(tmp_path / "run"), "--iterations", "3", "--device", "cpu", "--seed", "0",
        "--patch", "32", "32", "--batch", "2",
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stderr.count("torchrun: 2 processes") == 1  # only rank 0 prints
    assert proc.stderr.count("finished: 3 iterations") == 1
    r0 = torch.load(dump / "rank0.pt", weights_only=True)
    r1 = torch.load(dump / "rank1.pt", weights_only=True)
    assert (r0["rank"], r1["rank"], r0["world_size"], r0["iteration"]) == (0, 1, 2, 3)
    # Gradients were all-reduced: both replicas hold exactly the same weights ...
    assert r0["fingerprint"] == r1["fingerprint"]
    assert r0["averaged_fingerprint"] == r1["averaged_fingerprint"]  # so are their moving averages
    for k in r0["state"]:
        assert torch.equal(r0["state"][k], r1["state"][k]), k
    # ... although each rank trained on its own patches (seeded by rank).
    assert r0["local_losses"][0] != r1["local_losses"][0]
    # Rank 0 wrote an ordinary run: the averaged weights (what predicts), no "module." prefix,
    # and it trained.
    run = load_run(tmp_path / "run")
    assert run.iteration == 3 and run.config.ema_decay > 0
    saved = run.model.state_dict()
    assert state_fingerprint(saved) == r0["averaged_fingerprint"] != r0["fingerprint"]
    torch.manual_seed(0)
    untrained = model_from_config(run.config).state_dict()
    assert any(not torch.equal(saved[k], untrained[k]) for k in saved)
    labels = Predictor(run.model, run.config, device="cpu").predict(img).labels
    assert labels.shape == img.shape and set(np.unique(labels)) <= {1, 2}


def test_only_running_statistics_are_averaged_and_the_filter_kernels_never_drift(monkeypatch):
    """Averaging over 3 ranks used to all-reduce the fixed filter kernels every step:
    (k + k + k) / 3 is not always k in floats, so they drifted by an ulp."""
    from segstudio.core import distributed as D
    from segstudio.core.features import FilterBank

    cfg = TrainConfig(spatial_dims=3, features=(4, 8), norm="batch", input_filters=(1.0, 2.0),
                      spacing=(3.0, 1.0, 1.0))
    trainer = D.DistributedTrainer.__new__(D.DistributedTrainer)
    trainer.env = DistEnv(rank=0, local_rank=0, world_size=3)
    trainer.model = model_from_config(cfg)
    reduced = []

    def all_reduce(t, op=None):  # three ranks holding the same values
        reduced.append(t.numel())
        t.mul_(3)

    monkeypatch.setattr(D.dist, "all_reduce", all_reduce)
    for _ in range(200):
        trainer._average_buffers()
    stats = [b for n, b in trainer.model.named_buffers() if n.endswith(("running_mean", "running_var"))]
    assert stats and reduced == [sum(b.numel() for b in stats)] * 200  # one collective per step
    fresh = dict(FilterBank(3, (1.0, 2.0), (3.0, 1.0, 1.0)).named_buffers())
    for name, buf in trainer.model.filters.named_buffers():
        assert torch.equal(buf, fresh[name]), name


FAILING_RANK = '''
import os, sys, time
from segstudio.core.trainer import Trainer
real = Trainer.step
def step(self):
    if os.environ["RANK"] == os.environ["FAIL_RANK"] and self.iteration >= 2:
        with open(os.environ["FAIL_STAMP"], "w") as fh:
            fh.write(repr(time.time()))
        raise RuntimeError("rank " + os.environ["RANK"] + " exploded")
    return real(self)
Trainer.step = step
from segstudio.cli import main
sys.exit(main(sys.argv[1:]))
'''


@pytest.mark.parametrize("fail_rank", [1, 0])
def test_a_failing_rank_stops_every_rank_within_seconds_with_its_message(tmp_path, fail_rank):
    """Two gloo processes (started as torchrun would, without torchrun's agent killing the
    peer): one raises at step 3; both stop within seconds, not at the backend timeout, and
    rank 0 reports the failing rank's own message."""
    rng = np.random.default_rng(0)
    np.save(tmp_path / "img.npy", rng.random((48, 48)).astype(np.float32))
    lab = np.zeros((48, 48), np.uint8)
    lab[5:10, 5:30], lab[30:40, 10:40] = 1, 2
    np.save(tmp_path / "lab.npy", lab)
    (tmp_path / "failing.py").write_text(FAILING_RANK)
    port = _free_port()
    procs = []
    for rank in (0, 1):
        env = dict(os.environ, RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1",
                   MASTER_PORT=str(port), OMP_NUM_THREADS="1", FAIL_RANK=str(fail_rank),
                   FAIL_STAMP=str(tmp_path / "failed_at"))
        cmd = [sys.executable, str(tmp_path / "failing.py"), "train", "--image", str(tmp_path / "img.npy"),
               "--labels", str(tmp_path / "lab.npy"), "--out", str(tmp_path / f"run{rank}"), "--iterations", "100000",
               "--device", "cpu", "--seed", "0", "--patch", "32", "32", "--batch", "2"]
        procs.append(subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
                                      cwd=tmp_path))
    ended = {}
    deadline = time.time() + 300
    while len(ended) < 2 and time.time() < deadline:
        for rank, proc in enumerate(procs):
            if rank not in ended and proc.poll() is not None:
                ended[rank] = time.time()
        time.sleep(0.1)
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
    errs = [proc.communicate()[1] for proc in procs]
    assert len(ended) == 2, errs
    failed_at = float((tmp_path / "failed_at").read_text())
    assert max(ended.values()) - failed_at < 30, (ended, failed_at)  # gloo's own timeout: 30 min
    assert all(proc.returncode == 1 for proc in procs), [p.returncode for p in procs]
    last = [e.strip().splitlines()[-1] for e in errs]
    want = f"segstudio: training failed: rank {fail_rank} of 2 failed: RuntimeError: rank {fail_rank} exploded"
    assert last[0] == want and last[fail_rank] == want, last
    assert "Traceback" not in errs[0]
