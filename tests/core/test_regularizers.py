"""The pairwise regulariser: its window, its guides, and what it penalises."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage as ndi

from segstudio.core.config import TrainConfig
from segstudio.core.errors import UserInputError
from segstudio.core.regularizers import (
    TEXTURE_SCALE,
    PairwiseAffinityLoss,
    window_offsets,
)


def _grains_beside_flat(shape=(64, 64), seed=0) -> np.ndarray:
    """Left half flat and dark; right half a texture of bright grains (a few pixels across)
    and darker gaps."""
    rng = np.random.default_rng(seed)
    x = np.full(shape, 0.2, np.float32)
    half = shape[-1] // 2
    grains = ndi.gaussian_filter(rng.standard_normal(shape), 1.5) > 0
    x[..., half:] = (0.6 + 0.3 * grains)[..., half:]
    return x + rng.normal(0, 0.01, shape).astype(np.float32)


def _gate(loss: PairwiseAffinityLoss, g: torch.Tensor, a: tuple, b: tuple) -> float:
    """The gate between pixels ``a`` and ``b`` of a guide ``(1, C, *spatial)``."""
    d = g[(0, slice(None), *a)] - g[(0, slice(None), *b)]
    return float(torch.exp(-(d**2).sum() / (2 * loss.sigma**2)))


def test_window_offsets_hold_one_of_each_pair():
    two = window_offsets(2, 2)
    assert len(two) == 12 and not any((-dy, -dx) in two for dy, dx in two)
    three = window_offsets(3, 1)
    assert len(three) == 5 and (1, 0, 0) in three


@pytest.mark.parametrize("dims", [2, 3])
def test_texture_guide_is_the_local_mean_and_std(dims):
    x = _grains_beside_flat()
    if dims == 3:
        x = np.stack([x, np.roll(x, 3, axis=0), x[::-1]])
    loss = PairwiseAffinityLoss("exclusive", dims, guide="texture")
    g = loss.guide(torch.from_numpy(x)[None, None])[0].numpy()
    sigma = (0.0,) * (dims - 2) + (TEXTURE_SCALE, TEXTURE_SCALE)  # in-plane only
    mean = ndi.gaussian_filter(x.astype(np.float64), sigma, mode="nearest", truncate=3.0)
    var = ndi.gaussian_filter(x.astype(np.float64) ** 2, sigma, mode="nearest", truncate=3.0) - mean**2
    np.testing.assert_allclose(g[0], mean, atol=1e-5)
    np.testing.assert_allclose(g[1], np.sqrt(np.clip(var, 0, None)), atol=1e-3)


def test_texture_guide_joins_a_textures_grains_and_keeps_its_border():
    x = torch.from_numpy(_grains_beside_flat())[None, None]
    by_intensity = PairwiseAffinityLoss("exclusive", 2, guide="intensity")
    by_texture = PairwiseAffinityLoss("exclusive", 2, guide="texture")
    gi, gt = by_intensity.guide(x), by_texture.guide(x)
    img = x[0, 0].numpy()
    # pairs inside the texture, a grain's pixel beside a gap's (two pixels apart across its edge)
    inside = [((y, c), (y, c + 2)) for y in range(8, 56) for c in range(40, 56)
              if img[y, c] > 0.75 > img[y, c + 2]]
    assert len(inside) > 20
    within_i = np.mean([_gate(by_intensity, gi, a, b) for a, b in inside])
    within_t = np.mean([_gate(by_texture, gt, a, b) for a, b in inside])
    assert within_t > 0.8 and within_i < 0.5  # grains and gaps alike by texture, not by intensity
    assert _gate(by_texture, gt, (32, 26), (32, 38)) < 0.05  # the region border still gates


@pytest.mark.parametrize("guide", ["intensity", "texture"])
@pytest.mark.parametrize("mode", ["exclusive", "multilabel"])
def test_agreeing_neighbours_cost_nothing(guide, mode):
    x = torch.from_numpy(_grains_beside_flat())[None, None]
    logits = torch.zeros(1, 3, 64, 64)
    logits[:, 1] = 4.0
    assert float(PairwiseAffinityLoss(mode, 2, guide=guide)(logits, x)) == pytest.approx(0.0, abs=1e-7)


def test_texture_guide_penalises_speckle_inside_a_texture_more():
    """A prediction that follows the grains (the speckle the matrix's tissue cells showed) costs
    more under the texture guide, and its gradient pushes the texture towards one class."""
    x = _grains_beside_flat()
    xt = torch.from_numpy(x)[None, None]
    grains = torch.from_numpy((x > 0.75).astype(np.float32))
    logits = torch.zeros(1, 2, 64, 64)
    logits[0, 1] = 6.0 * grains - 3.0  # class 1 on the grains, class 0 on the gaps and the flat side
    costs = {}
    for guide in ("intensity", "texture"):
        lg = logits.clone().requires_grad_(True)
        loss = PairwiseAffinityLoss("exclusive", 2, guide=guide)(lg, xt)
        loss.backward()
        costs[guide] = float(loss.detach())
        assert torch.isfinite(lg.grad).all()
    assert costs["texture"] > 2 * costs["intensity"]


def test_a_guide_that_does_not_exist_is_refused():
    with pytest.raises(ValueError, match="guide must be one of intensity, texture"):
        PairwiseAffinityLoss("exclusive", 2, guide="colour")
    with pytest.raises(UserInputError, match="pairwise_guide must be intensity or texture"):
        TrainConfig(pairwise_guide="colour")
