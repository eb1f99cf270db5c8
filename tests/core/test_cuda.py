"""The CUDA path: AMP training in 2D and 3D, GPU prediction against the CPU, out-of-memory
recovery settings. Skipped where no CUDA GPU is present (CI); `benchmarks/gpu_check.sh` runs
them on a GPU machine (``pytest -m cuda``)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from segstudio.core.data import SnapshotSource, TrainingImage
from segstudio.core.predictor import Predictor
from segstudio.core.samples import synthetic_nuclei
from segstudio.core.trainer import Failed, Finished, Progress, Started, Trainer, amp_dtype, infer_config

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]


def _sample(dims: int):
    if dims == 2:
        return synthetic_nuclei((128, 128), seed=0, radius_range=(8.0, 14.0))
    return synthetic_nuclei((16, 64, 64), seed=0, spacing=(2.0, 0.5, 0.5), radius_range=(8.0, 12.0))


@pytest.mark.parametrize("textures", [False, True])
@pytest.mark.parametrize("dims", [2, 3])
def test_amp_training_on_cuda_learns(dims, textures, tmp_path):
    """With and without the region statistics (products and cumulative sums under autocast)."""
    s = _sample(dims)
    cfg = infer_config(s.image.shape, s.paintings, "exclusive", n_classes=3, iterations=60, device="cuda",
                       spacing=s.spacing, seed=0, ema_decay=0.9, textures=textures)
    src = SnapshotSource()
    src.put([TrainingImage(s.image, s.paintings)])
    events = list(Trainer(cfg, src, tmp_path / "run").run())
    assert not any(isinstance(e, Failed) for e in events), [e for e in events if isinstance(e, Failed)]
    started = next(e for e in events if isinstance(e, Started))
    assert started.device.startswith("cuda")
    assert started.amp == str(amp_dtype(torch.device("cuda"), True)).removeprefix("torch.")
    losses = [e.loss for e in events if isinstance(e, Progress)]
    assert all(np.isfinite(losses)) and np.mean(losses[-10:]) < np.mean(losses[:10])
    assert isinstance(events[-1], Finished)


@pytest.mark.parametrize("textures", [False, True])
@pytest.mark.parametrize("dims", [2, 3])
def test_gpu_prediction_matches_the_cpu(dims, textures):
    s = _sample(dims)
    cfg = infer_config(s.image.shape, s.paintings, "exclusive", n_classes=3, spacing=s.spacing, textures=textures)
    from segstudio.core.run import model_from_config

    torch.manual_seed(0)
    model = model_from_config(cfg)
    cpu = Predictor(model, cfg, device="cpu").predict(s.image, probabilities=True)
    gpu = Predictor(model, cfg, device="cuda").predict(s.image, probabilities=True)  # AMP on
    agree = float(np.mean(cpu.labels == gpu.labels))
    assert agree > 0.99
    assert np.abs(cpu.probabilities - gpu.probabilities).max() < 0.05  # bf16/fp16 activations


@pytest.mark.parametrize("dims", [2, 3])
def test_downsampled_amp_training_and_gpu_prediction(dims, tmp_path):
    """*Downsample* 2 on a GPU: block means and the linear enlargement under autocast train
    (finite, falling loss) and predict as the CPU does."""
    s = _sample(dims)
    cfg = infer_config(s.image.shape, s.paintings, "exclusive", n_classes=3, iterations=40, device="cuda",
                       spacing=s.spacing, seed=0, downsample=2)
    src = SnapshotSource()
    src.put([TrainingImage(s.image, s.paintings)])
    trainer = Trainer(cfg, src, tmp_path / "run")
    events = list(trainer.run())
    assert isinstance(events[-1], Finished), events[-1]
    losses = [e.loss for e in events if isinstance(e, Progress)]
    assert all(np.isfinite(losses)) and np.mean(losses[-10:]) < np.mean(losses[:10])
    model = trainer.model.cpu()
    cpu = Predictor(model, trainer.config, device="cpu").predict(s.image, probabilities=True)
    gpu = Predictor(model, trainer.config, device="cuda").predict(s.image, probabilities=True)
    assert cpu.labels.shape == s.image.shape
    assert float(np.mean(cpu.labels == gpu.labels)) > 0.99


@pytest.mark.parametrize("textures", [False, True])
def test_paintings_prepared_beside_amp_steps_on_cuda(textures, monkeypatch):
    """The app's trainer on a GPU: a newer snapshot (a second image, whose region channels are
    computed on the device in the preparation's thread) comes in while AMP steps go on, and
    training goes on after it."""
    from segstudio.core import trainer as trainer_module
    from segstudio.core.trainer import WeightsUpdated

    monkeypatch.setattr(trainer_module, "BACKGROUND_SWAP_S", 0.0)
    s = _sample(3)
    cfg = infer_config(s.image.shape, s.paintings, "exclusive", n_classes=3, iterations=60, device="cuda",
                       spacing=s.spacing, seed=0, textures=textures)
    src = SnapshotSource()
    src.put([TrainingImage(s.image, s.paintings)])
    second = np.ascontiguousarray(s.image[:, ::-1])
    trainer = Trainer(cfg, src, swap_in_background=True)
    events = []
    for ev in trainer.run():
        events.append(ev)
        if isinstance(ev, Progress) and ev.iteration == 5:
            src.put([TrainingImage(s.image, s.paintings), TrainingImage(second, s.paintings[:, ::-1].copy())])
    assert not any(isinstance(e, Failed) for e in events), [e for e in events if isinstance(e, Failed)]
    swaps = [e for e in events if isinstance(e, WeightsUpdated)]
    assert len(swaps) == 2 and swaps[1].iteration >= 5
    assert swaps[1].weights.counts[0] == 2 * swaps[0].weights.counts[0]
    assert isinstance(events[-1], Finished) and trainer._swapper is None
