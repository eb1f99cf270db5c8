"""Sliding-window prediction: blending, regions, sizes, channels, TTA."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from segstudio.core.config import TrainConfig
from segstudio.core.errors import UserInputError
from segstudio.core.predictor import Predictor, gaussian_importance, tile_starts
from segstudio.core.run import model_from_config


def make_predictor(mode="exclusive", dims=2, channels=1, patch=(16, 16), n=3):
    torch.manual_seed(0)
    cfg = TrainConfig(mode=mode, n_classes=n, spatial_dims=dims, in_channels=channels,
                      features=(4, 8), patch_size=patch)
    return Predictor(model_from_config(cfg), cfg, device="cpu")


def test_gaussian_importance_shape_and_range():
    w = gaussian_importance((16, 8))
    assert w.shape == (16, 8) and w.max() == pytest.approx(1.0) and w.min() > 0
    assert w[8, 4] > w[0, 0]


@pytest.mark.parametrize(("size", "patch"), [(100, 32), (32, 32), (10, 32), (33, 32)])
def test_tiles_cover_everything(size, patch):
    starts = tile_starts(size, patch, 0.5)
    covered = np.zeros(size, bool)
    for s in starts:
        covered[s : s + patch] = True
    assert covered.all() and starts[0] == 0


def test_sliding_window_equals_one_pass_for_a_pointwise_model():
    """With a 1x1 conv model tiling must not change anything: blending is exact."""
    cfg = TrainConfig(n_classes=2, features=(4, 8), patch_size=(16, 16))
    model = torch.nn.Conv2d(1, 2, 1)
    pred = Predictor(model, cfg, device="cpu")
    img = np.random.default_rng(0).random((37, 50)).astype(np.float32)
    r = pred.predict(img, probabilities=True)
    from segstudio.core.data import image_stats, normalize

    x = torch.from_numpy(normalize(img, image_stats(img)))[None]
    ref = torch.softmax(model(x), 1)[0].detach().numpy()
    np.testing.assert_allclose(r.probabilities, ref, atol=1e-5)
    assert (r.labels == ref.argmax(0) + 1).all()


@pytest.mark.parametrize("shape", [(5, 7), (16, 16), (40, 23)])
def test_any_size_2d(shape):
    r = make_predictor().predict(np.random.default_rng(0).random(shape))
    assert r.labels.shape == shape and r.labels.dtype == np.uint8
    assert set(np.unique(r.labels)) <= {1, 2, 3}


def test_3d_multichannel_and_multilabel():
    p = make_predictor(mode="multilabel", dims=3, channels=2, patch=(4, 16, 16), n=2)
    img = np.random.default_rng(0).random((2, 6, 20, 20)).astype(np.float32)
    r = p.predict(img, channel_axis=0, probabilities=True)
    assert r.labels.shape == (2, 6, 20, 20) and set(np.unique(r.labels)) <= {0, 1}
    assert r.probabilities.shape == (2, 6, 20, 20)
    assert ((r.probabilities > 0.5) == (r.labels == 1)).all()


def test_region_matches_the_same_part_of_a_full_prediction():
    """With a pointwise model, a region prediction must equal that part of the full one."""
    cfg = TrainConfig(n_classes=2, features=(4, 8), patch_size=(16, 16))
    p = Predictor(torch.nn.Conv2d(1, 2, 1), cfg, device="cpu")
    img = np.random.default_rng(1).random((64, 64)).astype(np.float32)
    from segstudio.core.data import image_stats

    stats = image_stats(img)
    full = p.predict(img, stats=stats, probabilities=True)
    region = (slice(20, 40), slice(5, 30))
    part = p.predict(img, region=region, stats=stats, probabilities=True)
    assert part.region == region and part.labels.shape == (20, 25)
    np.testing.assert_allclose(part.probabilities, full.probabilities[:, 20:40, 5:30], atol=1e-5)
    assert (part.labels == full.labels[20:40, 5:30]).all()


def test_tta_gives_the_same_shape():
    p = make_predictor()
    r = p.predict(np.random.default_rng(0).random((20, 20)), tta=True, probabilities=True)
    assert r.labels.shape == (20, 20) and np.allclose(r.probabilities.sum(0), 1, atol=1e-5)


def test_wrong_rank_or_channels_is_a_user_error():
    p = make_predictor()
    with pytest.raises(UserInputError, match="trained on 2D"):
        p.predict(np.zeros((4, 16, 16)))
    with pytest.raises(UserInputError, match="expects 1 channel"):
        p.predict(np.zeros((16, 16, 3)), channel_axis=-1)
