"""torchrun + DistributedDataParallel: 2 CPU processes (gloo) train, replicas stay identical."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import numpy as np
import pytest
import torch

from segstudio.core.distributed import DUMP_ENV, DistEnv, backend_for, env_from_torchrun, state_fingerprint
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
    for k in r0["state"]:
        assert torch.equal(r0["state"][k], r1["state"][k]), k
    # ... although each rank trained on its own patches (seeded by rank).
    assert r0["local_losses"][0] != r1["local_losses"][0]
    # Rank 0 wrote an ordinary run: same weights, no "module." prefix, and it trained.
    run = load_run(tmp_path / "run")
    assert run.iteration == 3
    saved = run.model.state_dict()
    assert state_fingerprint(saved) == r0["fingerprint"]
    torch.manual_seed(0)
    untrained = model_from_config(run.config).state_dict()
    assert any(not torch.equal(saved[k], untrained[k]) for k in saved)
    labels = Predictor(run.model, run.config, device="cpu").predict(img).labels
    assert labels.shape == img.shape and set(np.unique(labels)) <= {1, 2}
