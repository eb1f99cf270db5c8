"""The learnt share of each class's strokes: against a pixel-by-pixel reference, its decay, and
in the trainer (a class the network has learnt reads high, a class it cannot learn reads low)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from segstudio.core.annotations import IGNORE_INDEX
from segstudio.core.data import SnapshotSource, TrainingImage
from segstudio.core.stroke_fit import MIN_STEPS, StrokeFit, stroke_hits, unlearnt, unlearnt_message
from segstudio.core.trainer import Progress, infer_config, train


def reference_exclusive(logits: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pixel by pixel: for each painted pixel, count it for its class, and a hit when the
    largest logit there is its class's."""
    k = logits.shape[1]
    hits, counts = np.zeros(k), np.zeros(k)
    for idx in np.ndindex(target.shape):
        c = target[idx]
        if c == IGNORE_INDEX:
            continue
        counts[c] += 1
        if int(np.argmax(logits[(idx[0], slice(None), *idx[1:])])) == c:
            hits[c] += 1
    return hits, counts


def reference_multilabel(logits: np.ndarray, target: np.ndarray, mask: np.ndarray):
    k = logits.shape[1]
    hits, counts = np.zeros((2, k)), np.zeros((2, k))
    for idx in np.ndindex(target.shape):
        if not mask[idx]:
            continue
        kind = 0 if target[idx] == 1 else 1
        counts[kind, idx[1]] += 1
        if (logits[idx] > 0) == (kind == 0):
            hits[kind, idx[1]] += 1
    return hits, counts


@pytest.mark.parametrize("spatial", [(7, 9), (3, 5, 6)])
def test_exclusive_hits_match_the_reference(spatial):
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(2, 3, *spatial)).astype(np.float32)
    target = rng.integers(0, 3, size=(2, *spatial))
    target[rng.random(target.shape) < 0.6] = IGNORE_INDEX
    hits, counts = stroke_hits(torch.from_numpy(logits), torch.from_numpy(target), None, "exclusive")
    ref_h, ref_c = reference_exclusive(logits, target)
    np.testing.assert_array_equal(hits.numpy(), ref_h)
    np.testing.assert_array_equal(counts.numpy(), ref_c)
    assert counts.sum() > 0 and 0 < hits.sum() < counts.sum()


def test_multilabel_hits_match_the_reference():
    rng = np.random.default_rng(2)
    logits = rng.normal(size=(2, 3, 6, 7)).astype(np.float32)
    target = rng.integers(0, 2, size=logits.shape).astype(np.float32)
    mask = (rng.random(logits.shape) < 0.5).astype(np.float32)
    hits, counts = stroke_hits(torch.from_numpy(logits), torch.from_numpy(target), torch.from_numpy(mask),
                               "multilabel")
    ref_h, ref_c = reference_multilabel(logits, target, mask)
    np.testing.assert_array_equal(hits.numpy(), ref_h)
    np.testing.assert_array_equal(counts.numpy(), ref_c)


def test_shares_decay_and_take_the_weaker_kind_in_multilabel():
    fit = StrokeFit(2, "exclusive", decay=0.5)
    fit.update(torch.tensor([10.0, 0.0]), torch.tensor([10.0, 0.0]))
    assert fit.shares() == (1.0, None)  # nothing of class 2 painted yet
    fit.update(torch.tensor([0.0, 3.0]), torch.tensor([10.0, 4.0]))
    # class 1: (0.5·10 + 0) / (0.5·10 + 10); class 2: 3 / 4
    assert fit.shares() == pytest.approx((5 / 15, 0.75))
    ml = StrokeFit(2, "multilabel")
    # channel 1: every present stroke right, a fifth of the absent ones; channel 2: no absent paint
    ml.update(torch.tensor([[8.0, 4.0], [2.0, 0.0]]), torch.tensor([[8.0, 5.0], [10.0, 0.0]]))
    assert ml.shares() == pytest.approx((0.2, 0.8))
    ml.new_strokes()  # the tally goes on; the steps on the new strokes count from 0
    assert ml.shares() == pytest.approx((0.2, 0.8)) and ml.steps == 0
    assert StrokeFit(2, "multilabel").shares() == (None, None)


def test_unlearnt_waits_for_the_first_steps_and_names_the_classes():
    shares = (0.97, 0.12, None)
    assert unlearnt(shares, MIN_STEPS - 1) == []
    assert unlearnt(shares, MIN_STEPS) == [1]
    msg = unlearnt_message(["background", "granular"], shares, 400)
    assert msg == "Not learnt yet: granular (12 % of its strokes predicted right). Train longer, or paint more of it."
    two = unlearnt_message(["a", "b"], (0.3, 0.1), 400)
    assert two.startswith("Not learnt yet: a (30 %), b (10 %) of their strokes")
    assert unlearnt_message(["a", "b"], (0.9, 0.8), 400) == ""


def _disk():
    """A bright disk on a noisy dark 48² image; a background stroke along the top, a disk
    stroke across its middle."""
    yy, xx = np.mgrid[:48, :48]
    img = ((yy - 24) ** 2 + (xx - 24) ** 2 < 10 ** 2).astype(np.float32)
    img += np.random.default_rng(0).normal(0, 0.05, img.shape).astype(np.float32)
    lab = np.zeros(img.shape, np.uint8)
    lab[2:5, 2:40] = 1
    lab[22:26, 18:30] = 2
    return img, lab


def _last_progress(cfg, img, lab) -> Progress:
    src = SnapshotSource()
    src.put([TrainingImage(img, lab)])
    return [e for e in train(cfg, src) if isinstance(e, Progress)][-1]


def test_new_strokes_start_the_count_of_steps_on_them_again():
    """A correction is wrong until learnt: the steps before a flag count from the last swap."""
    img, lab = _disk()
    cfg = infer_config(img.shape, lab, "exclusive", iterations=12, **TINY)
    src = SnapshotSource()
    src.put([TrainingImage(img, lab)])
    steps = []
    for ev in train(cfg, src):
        if isinstance(ev, Progress):
            steps.append(ev.learnt_steps)
            if ev.iteration == 6:
                more = lab.copy()
                more[40:44, 4:12] = 1
                src.put([TrainingImage(img, more)])
    assert steps == [1, 2, 3, 4, 5, 6, 1, 2, 3, 4, 5, 6]


TINY = dict(features=(4, 8), patch_size=(32, 32), batch_size=2, num_threads=1, warmup=2, seed=0)


def test_trainer_reports_what_it_has_learnt():
    """A bright disk against a dark background is learnt within 100 steps. On a blank image,
    strokes of two classes, one row of the second to three of the first, cannot be told apart
    (the network sees the same everywhere): unweighted, after 60 steps it predicts the first
    everywhere, and the second reads low."""
    img, lab = _disk()
    cfg = infer_config(img.shape, lab, "exclusive", iterations=100, lr=0.01, **TINY)
    learnt = _last_progress(cfg, img, lab).learnt
    assert len(learnt) == 2 and min(learnt) > 0.9
    rows = np.zeros_like(lab)
    rows[8:40, 8:40] = 1
    rows[8:40:4, 8:40] = 2
    cfg = infer_config(img.shape, rows, "exclusive", iterations=60, lr=0.01, weight_method="none",
                       infer_background=False, infer_outlines=False, **TINY)
    blank = _last_progress(cfg, np.zeros_like(img), rows).learnt
    assert blank[0] > 0.5 and blank[1] < 0.5


def test_multilabel_trainer_reports_per_channel():
    img, lab = _disk()
    paint = np.zeros((2, *img.shape), np.uint8)
    paint[0][lab == 2], paint[0][lab == 1] = 1, 2  # channel 1: the square present, background absent
    paint[1][lab == 1], paint[1][lab == 2] = 1, 2  # channel 2: its opposite
    cfg = infer_config(img.shape, paint, "multilabel", iterations=100, lr=0.01, loss="bce", **TINY)
    learnt = _last_progress(cfg, img, paint).learnt
    assert len(learnt) == 2 and min(learnt) > 0.9


def test_a_step_of_accumulated_batches_is_one_update_of_the_tally():
    img, lab = _disk()
    cfg = infer_config(img.shape, lab, "exclusive", iterations=3, grad_accum=2, **TINY)
    src = SnapshotSource()
    src.put([TrainingImage(img, lab)])
    progress = [e for e in train(cfg, src) if isinstance(e, Progress)]
    assert [p.learnt_steps for p in progress] == [1, 2, 3]
    assert all(len(p.learnt) == 2 for p in progress)
