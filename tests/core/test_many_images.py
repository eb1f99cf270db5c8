"""Training on several images: patches in proportion to paint (with a floor), weights over all
images, a snapshot swap that redoes only the image whose paint changed, validation strokes."""

from __future__ import annotations

import numpy as np
import pytest

from segstudio.core import trainer as trainer_module
from segstudio.core.data import (
    Normalization,
    PatchSampler,
    SnapshotSource,
    TrainingImage,
    floored_shares,
    prepare_image,
    split_holdout,
)
from segstudio.core.errors import UserInputError
from segstudio.core.trainer import HELD_OUT, Trainer, Validation, WeightsUpdated, infer_config

TINY = dict(features=(4, 8), patch_size=(32, 32), batch_size=2, num_threads=1, warmup=2, seed=0)
IDENTITY = Normalization(lo=(0.0,), hi=(1.0,))


def _painted(n1: int, n2: int, shape=(40, 40)) -> np.ndarray:
    paint = np.zeros(shape, np.uint8)
    paint.reshape(-1)[:n1] = 1
    paint.reshape(-1)[-n2:] = 2
    return paint


def test_floored_shares_follow_the_amounts_with_a_floor():
    np.testing.assert_allclose(floored_shares(np.array([1.0, 3.0]), 0.0), [0.25, 0.75])
    shares = floored_shares(np.array([1.0, 1000.0, 3000.0]), 0.5)
    assert shares.sum() == pytest.approx(1.0)
    assert shares[0] == pytest.approx(0.5 / 3)  # raised to half an equal share
    assert shares[2] / shares[1] == pytest.approx(3.0)  # the others keep their proportion
    np.testing.assert_allclose(floored_shares(np.array([5.0, 5.0]), 1.0), [0.5, 0.5])
    np.testing.assert_allclose(floored_shares(np.array([1.0, 9.0]), 1.0), [0.5, 0.5])  # floor 1: equal


def test_patches_come_from_each_image_in_proportion_to_its_paint():
    # Image i has intensity i everywhere, so a patch tells which image it was cut from.
    paints = [_painted(20, 20), _painted(180, 180), _painted(2, 2)]
    prepared = [prepare_image(TrainingImage(np.full((40, 40), float(i), np.float32), p), "exclusive", 2,
                              stats=IDENTITY)[0] for i, p in enumerate(paints)]
    sampler = PatchSampler(prepared, "exclusive", (8, 8), random_fraction=0.1, image_floor=0.2,
                           rng=np.random.default_rng(0))
    expected = sampler.image_shares
    assert expected.sum() == pytest.approx(1.0)
    assert expected[2] == pytest.approx(0.2 / 3)  # the lightly painted image keeps its floor
    assert expected[1] / expected[0] == pytest.approx(9.0)
    n = 3000
    seen = np.bincount([int(round(float(sampler.sample()[0].mean()))) for _ in range(n)], minlength=3) / n
    np.testing.assert_allclose(seen, expected, atol=0.03)


def test_one_image_samples_exactly_as_before():
    """A single image draws no extra random numbers: its patches are what they always were."""
    paint = _painted(30, 30)
    prepared, _ = prepare_image(TrainingImage(np.random.default_rng(0).random((40, 40)), paint), "exclusive", 2)
    a = PatchSampler([prepared], "exclusive", (8, 8), rng=np.random.default_rng(3))
    rng = np.random.default_rng(3)
    for _ in range(20):  # the draws of the one-image sampler, spelled out
        if rng.random() < 0.1:
            centre = tuple(int(rng.integers(40)) for _ in range(2))
        else:
            k = int(rng.integers(2))
            coords = prepared.coords[k]
            flat = int(coords[int(rng.integers(coords.size))])
            c = np.unravel_index(flat, (40, 40))
            centre = tuple(int(v) + int(rng.integers(-2, 3)) for v in c)
        x, _, _ = a.sample()
        start = [min(max(v - 4, 0), 32) for v in centre]
        np.testing.assert_array_equal(x[0], prepared.image[0, start[0]:start[0] + 8, start[1]:start[1] + 8])


def _two_image_source(shape=(48, 48)):
    rng = np.random.default_rng(0)
    images, paints = [], []
    for i in range(2):
        img = rng.normal(0, 0.05, shape).astype(np.float32)
        img[16:32, 16:32] += 1.0
        paint = np.zeros(shape, np.uint8)
        paint[2:4, 2:40] = 1
        paint[20:26, 20:26] = 2
        if i == 1:
            paint[40:46, 2:40] = 1  # more background on the second image
        images.append(img)
        paints.append(paint)
    return images, paints


def test_class_weights_count_every_image():
    images, paints = _two_image_source()
    cfg = infer_config(images[0].shape, paints[0], "exclusive", iterations=1, **TINY)
    src = SnapshotSource()
    src.put([TrainingImage(img, p) for img, p in zip(images, paints)])
    events = list(Trainer(cfg, src).run())
    weights = next(e.weights for e in events if isinstance(e, WeightsUpdated))
    both = np.bincount(np.concatenate([p.ravel() for p in paints]), minlength=3)[1:]
    assert list(weights.counts) == list(both)


def test_a_swap_redoes_only_the_image_whose_paint_changed(monkeypatch):
    images, paints = _two_image_source()
    calls = {"normalize": [], "implied": []}
    real_norm, real_implied = trainer_module.normalize, trainer_module.implied_labels

    def normalize(image, *a, **k):
        calls["normalize"].append(id(image))
        return real_norm(image, *a, **k)

    def implied(paintings, image, *a, **k):
        calls["implied"].append(id(image))
        return real_implied(paintings, image, *a, **k)

    monkeypatch.setattr(trainer_module, "normalize", normalize)
    monkeypatch.setattr(trainer_module, "implied_labels", implied)
    cfg = infer_config(images[0].shape, paints[0], "exclusive", iterations=1, **TINY)
    src = SnapshotSource()
    items = [TrainingImage(img, p) for img, p in zip(images, paints)]
    src.put(items)
    trainer = Trainer(cfg, src)
    trainer.setup()
    trainer.maybe_swap()
    assert sorted(calls["normalize"]) == sorted(map(id, images))
    assert sorted(calls["implied"]) == sorted(map(id, images))
    calls["normalize"].clear()
    calls["implied"].clear()
    more = paints[1].copy()
    more[30, 30] = 2  # a stroke on the second image; the first image's objects are handed in again
    src.put([items[0], TrainingImage(images[1], more)])
    weights = trainer.maybe_swap().weights
    assert calls["normalize"] == [], "no image was normalised again"
    assert calls["implied"] == [id(images[1])], "only the changed image's implied labels were redone"
    assert weights.counts[1] == (paints[0] == 2).sum() + (more == 2).sum()
    assert trainer.sampler.images[0] is not None and len(trainer.prepared) == 2


def test_split_holdout_of_a_region_and_of_a_whole_image():
    paint = _painted(10, 10, (8, 8))
    item = TrainingImage(np.zeros((8, 8)), paint)
    assert split_holdout(item, "exclusive") == (item, None)
    train_item, held = split_holdout(TrainingImage(np.zeros((8, 8)), paint, holdout=True), "exclusive")
    assert train_item is None and held is paint
    region = np.zeros((8, 8), bool)
    region[:4] = True
    train_item, held = split_holdout(TrainingImage(np.zeros((8, 8)), paint, holdout=region), "exclusive")
    np.testing.assert_array_equal(held, np.where(region, paint, 0))
    np.testing.assert_array_equal(train_item.paintings, np.where(region, 0, paint))
    multi = np.stack([paint, (paint == 2).astype(np.uint8)])
    train_item, held = split_holdout(TrainingImage(np.zeros((8, 8)), multi, holdout=region), "multilabel")
    assert held.shape == (2, 8, 8) and not held[:, 4:].any() and not train_item.paintings[:, :4].any()
    with pytest.raises(UserInputError, match="validation region has shape"):
        split_holdout(TrainingImage(np.zeros((8, 8)), paint, holdout=np.zeros((4, 4), bool)), "exclusive")


@pytest.mark.parametrize("mode", ["exclusive", "multilabel"])
def test_validation_images_are_not_trained_on_and_report_dice_on_their_paint(mode):
    images, paints = _two_image_source()
    if mode == "multilabel":  # class 1 background, class 2 square; present 1 / absent 2
        paints = [np.stack([np.where(p == 1, 1, np.where(p == 2, 2, 0)),
                            np.where(p == 2, 1, np.where(p == 1, 2, 0))]).astype(np.uint8) for p in paints]
    cfg = infer_config(images[0].shape, paints[0], mode, n_classes=2, iterations=8, val_every=4,
                       loss="ce" if mode == "exclusive" else "bce", **TINY)
    src = SnapshotSource()
    src.put([TrainingImage(images[0], paints[0]), TrainingImage(images[1], paints[1], holdout=True)])
    events = list(Trainer(cfg, src).run())
    weights = next(e.weights for e in events if isinstance(e, WeightsUpdated))
    first = paints[0] if mode == "exclusive" else paints[0]
    if mode == "exclusive":
        assert list(weights.counts) == list(np.bincount(first.ravel(), minlength=3)[1:])  # image 2 not counted
    else:
        assert list(weights.counts) == [int((first[k] == 1).sum()) for k in range(2)]
    vals = [e for e in events if isinstance(e, Validation)]
    assert [v.iteration for v in vals] == [4, 8] and all(v.kind == HELD_OUT for v in vals)
    assert all(len(v.dice) == 2 and all(0.0 <= d <= 1.0 for d in v.dice) for v in vals)


def test_nothing_left_to_train_on_is_one_clear_error():
    images, paints = _two_image_source()
    cfg = infer_config(images[0].shape, paints[0], "exclusive", iterations=1, **TINY)
    src = SnapshotSource()
    src.put([TrainingImage(images[0], paints[0], holdout=True)])
    events = list(Trainer(cfg, src).run())
    assert events[-1].user_error and "validation" in events[-1].message
