"""Tests that would catch a broken learner: a fixed number of steps on tiny synthetic images must
reach a Dice floor and beat the best constant predictor, in 2D and 3D, exclusive and
multi-label.

The images are small enough (64², 8×32×32) that these run in seconds on two CPU cores; the
floors sit well below what the steps reach (measured: see each case) and far above what a
model that does not learn (or learns the wrong thing: a flipped target, a dropped loss term, a
mask that ignores the paint) reaches.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from segstudio.core.data import SnapshotSource, TrainingImage
from segstudio.core.predictor import Predictor
from segstudio.core.samples import simulate_strokes, synthetic_nuclei
from segstudio.core.trainer import Failed, Trainer, infer_config

# steps, floor: measured foreground Dice after the steps (seed 0) is in the comment
CASES = {
    # (dims, mode): (steps, floor)
    (2, "exclusive"): (60, 0.75),  # reaches about 0.94
    (2, "multilabel"): (60, 0.75),
    (3, "exclusive"): (100, 0.6),  # reaches about 0.83
}


def _sample(dims: int):
    if dims == 2:
        s = synthetic_nuclei((64, 64), seed=2, radius_range=(7.0, 11.0), n_nuclei=5, paint=False)
    else:
        s = synthetic_nuclei((12, 48, 48), seed=2, spacing=(2.0, 1.0, 1.0), radius_range=(6.0, 9.0),
                             n_nuclei=6, paint=False)
    fg = (s.truth > 1)
    paint = simulate_strokes(s.truth, n_objects=4,
                             n_background_strokes=6, seed=1, stroke_width=2,
                             slices_per_object=(2, 3), min_interior_pixels=6)
    # two classes: background and nucleus (the traced outline counts as nucleus)
    paint = np.where(paint >= 2, 2, paint).astype(np.uint8)
    return s.image, fg, paint, s.spacing


def _train(image, paint, mode, steps, spacing, dims):
    if mode == "multilabel":
        paint = np.where(paint == 2, 1, np.where(paint == 1, 2, 0)).astype(np.uint8)[None]
    cfg = infer_config(image.shape, paint, mode, n_classes=2 if mode == "exclusive" else 1,
                       iterations=steps, spacing=spacing, device="cpu", seed=0, amp=False,
                       patch_size=(32, 32) if dims == 2 else (8, 48, 48), batch_size=4 if dims == 2 else 2,
                       loss="ce" if mode == "exclusive" else "bce", checkpoint_every_s=1e9, num_threads=1)
    src = SnapshotSource()
    src.put([TrainingImage(image, paint)])
    trainer = Trainer(cfg, src, None)
    for ev in trainer.run():
        assert not isinstance(ev, Failed), ev.message
    labels = Predictor(trainer.model, trainer.config, device="cpu").predict(image).labels
    return labels == 2 if mode == "exclusive" else labels[0] > 0


def _dice(p: np.ndarray, t: np.ndarray) -> float:
    return 2.0 * float((p & t).sum()) / max(float(p.sum() + t.sum()), 1.0)


@pytest.mark.parametrize("dims, mode", list(CASES))
def test_fixed_steps_beat_a_floor_and_a_constant_predictor(dims, mode):
    torch.manual_seed(0)
    image, fg, paint, spacing = _sample(dims)
    steps, floor = CASES[(dims, mode)]
    pred = _train(image, paint, mode, steps, spacing, dims)
    d = _dice(pred, fg)
    constant = max(_dice(np.ones_like(fg), fg), _dice(np.zeros_like(fg), fg))
    assert d >= floor, f"foreground Dice {d:.3f} after {steps} steps is below {floor}"
    assert d > constant + 0.2, f"Dice {d:.3f} hardly beats a constant prediction ({constant:.3f})"


def test_swapped_classes_are_learnt_swapped():
    """The learner follows the paint, not a prior: swapping the painted classes swaps the result."""
    image, fg, paint, spacing = _sample(2)
    swapped = np.where(paint == 1, 2, np.where(paint == 2, 1, 0)).astype(np.uint8)
    pred = _train(image, swapped, "exclusive", CASES[(2, "exclusive")][0], spacing, 2)
    assert _dice(~pred, fg) >= CASES[(2, "exclusive")][1]
