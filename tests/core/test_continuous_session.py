"""Correction strokes reach a running trainer: no restart, no second warm-up (issue 4 protocol)."""

from __future__ import annotations

from segstudio.core.config import TrainConfig
from segstudio.core.data import TrainingImage
from segstudio.core.trainer import Progress, Trainer, WeightsUpdated


def test_new_strokes_mid_session_keep_the_lr_schedule(two_strokes):
    image, paint, src = two_strokes()
    cfg = TrainConfig(n_classes=2, features=(4, 8), input_filters=(1.0,), patch_size=(16, 16),
                      batch_size=2, iterations=12, warmup=3, device="cpu", seed=0)
    trainer = Trainer(cfg, src, None)
    lrs: list[float] = []
    swaps = []
    for ev in trainer.run():
        if isinstance(ev, Progress):
            lrs.append(ev.lr)
            if ev.iteration == 6:  # the user paints a correction while training runs
                more = paint.copy()
                more[28, 2:30] = 1
                src.put([TrainingImage(image, more)])
        if isinstance(ev, WeightsUpdated):
            swaps.append(ev.iteration)
    assert swaps == [0, 6]
    assert len(lrs) == 12
    # warm-up once, then a monotone cosine decay across the swap
    assert lrs[0] < lrs[1] < lrs[2]
    assert all(b <= a for a, b in zip(lrs[2:], lrs[3:]))
    assert trainer.iteration == 12
