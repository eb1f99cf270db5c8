"""Tiled prediction: the padding/tiling policy, exactness against one forward pass, regions,
sizes, channels, TTA."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from segstudio.core import predictor as P
from segstudio.core.config import TrainConfig
from segstudio.core.data import image_stats, normalize
from segstudio.core.errors import UserInputError
from segstudio.core.predictor import (
    PredictProgress,
    Predictor,
    input_constraints,
    network_step,
    plan_tiles,
    predict_normalized,
    read_tile,
    receptive_radius,
    reflect_index,
)
from segstudio.core.run import model_from_config


def make_predictor(mode="exclusive", dims=2, channels=1, patch=(16, 16), n=3, features=(4, 8), **kw):
    torch.manual_seed(0)
    cfg = TrainConfig(mode=mode, n_classes=n, spatial_dims=dims, in_channels=channels,
                      features=features, patch_size=patch, **kw)
    return Predictor(model_from_config(cfg), cfg, device="cpu")


def whole_image_forward(model, config, x: np.ndarray) -> np.ndarray:
    """Softmax of ONE forward pass over the whole normalised image ``(C, *spatial)``, padded at
    the far end by numpy's mirror reflection to a size the network takes (the reference)."""
    mins, step = input_constraints(network_step(config))
    shape = x.shape[1:]
    size = [max(-(-n // d) * d, m) for n, d, m in zip(shape, step, mins)]
    xp = np.pad(x, [(0, 0)] + [(0, s - n) for s, n in zip(size, shape)], mode="reflect")
    with torch.no_grad():
        logits = model(torch.from_numpy(np.ascontiguousarray(xp))[None].float())
    return torch.softmax(logits, 1)[0].numpy()[(slice(None), *(slice(0, n) for n in shape))]


# --------------------------------------------------------------------------- the policy
@pytest.mark.parametrize("n", [1, 2, 3, 7])
@pytest.mark.parametrize("pad", [0, 1, 5, 20])
def test_reflect_index_is_numpy_reflect(n, pad):
    a = np.arange(n) * 10
    ours = a[reflect_index(np.arange(n + pad), n)]
    mode = "reflect" if n > 1 else "edge"
    np.testing.assert_array_equal(ours, np.pad(a, (0, pad), mode=mode))


def test_read_tile_reads_inside_and_reflects_past_the_end():
    x = np.random.default_rng(0).random((2, 5, 7)).astype(np.float32)
    np.testing.assert_array_equal(read_tile(x, (1, 2), (3, 4)), x[:, 1:4, 2:6])
    ref = np.pad(x, [(0, 0), (0, 3), (0, 9)], mode="reflect")
    np.testing.assert_array_equal(read_tile(x, (2, 0), (6, 16)), ref[:, 2:8, 0:16])


@pytest.mark.parametrize(("shape", "step", "radius", "budget"), [
    ((61, 77), (4, 4), (23, 23), 3000),
    ((9, 61, 57), (1, 2, 2), (9, 14, 14), 9000),
    ((5, 300), (2, 8), (3, 40), 4000),
    ((1, 1), (2, 2), (11, 11), 10),
    ((200,), (1,), (0,), 50),
])
def test_tiles_cover_every_voxel_once_with_a_full_margin(shape, step, radius, budget):
    plan = plan_tiles(shape, step, radius, budget)
    mins, _ = input_constraints(step)
    for n, p, d, m in zip(shape, plan.padded, step, mins):
        assert p >= max(n, m) and p % d == 0 and p - n < max(d, m)
    owner = np.zeros(shape, int)
    for ix in itertools.product(*(range(len(s)) for s in plan.starts)):
        own = [plan.owned(a, i) for a, i in enumerate(ix)]
        owner[tuple(slice(lo, hi) for lo, hi in own)] += 1
        for a, (i, (lo, hi)) in enumerate(zip(ix, own)):
            start, t = plan.starts[a][i], plan.tile[a]
            assert start % step[a] == 0 and t % step[a] == 0 and start + t <= plan.padded[a]
            if hi > lo:  # every owned voxel is a full margin away from the tile's inner borders
                assert start == 0 or lo - start >= radius[a]
                assert start + t == plan.padded[a] or start + t - hi >= radius[a]
    np.testing.assert_array_equal(owner, 1)


def test_tiles_fit_the_budget_and_are_not_the_training_patch():
    plan = plan_tiles((64, 256, 256), (2, 2, 2), (20, 20, 20), 2_000_000)
    assert np.prod(plan.tile) <= 2_000_000 and plan.n_tiles > 1
    assert all(t >= 64 for t in plan.tile)  # large tiles, not 16x64x64 patches
    one = plan_tiles((64, 256, 256), (2, 2, 2), (20, 20, 20), 64 * 256 * 256)
    assert one.n_tiles == 1 and one.tile == (64, 256, 256)


def test_max_tile_voxels_follows_the_device_memory(monkeypatch):
    cfg = TrainConfig(spatial_dims=3, features=(8, 16))
    monkeypatch.setattr(P, "memory_bytes", lambda device: 24 << 30)
    cpu = P.max_tile_voxels(cfg, torch.device("cpu"))
    assert cpu == P.CPU_TILE_BYTES // P.bytes_per_voxel(cfg)
    assert P.max_tile_voxels(cfg, torch.device("cpu"), tile_batch=2) == P.CPU_TILE_BYTES // (2 * P.bytes_per_voxel(cfg))
    gpu = P.max_tile_voxels(cfg, torch.device("cuda"))
    assert gpu == int((24 << 30) * P.GPU_TILE_FRACTION) // P.bytes_per_voxel(cfg)
    monkeypatch.setattr(P, "memory_bytes", lambda device: 4 << 30)  # a small laptop: 1/8 of the RAM
    assert P.max_tile_voxels(cfg, torch.device("cpu")) == (4 << 30) // 8 // P.bytes_per_voxel(cfg)
    # On a 24 GiB machine the benchmark volume of the fast preset is one tile.
    monkeypatch.setattr(P, "memory_bytes", lambda device: 24 << 30)
    assert P.plan_for(cfg.replace(patch_size=(16, 64, 64)), (64, 256, 256), torch.device("cpu")).n_tiles == 1


def test_a_band_of_output_rows_is_bounded(monkeypatch):
    """A big budget would take the whole depth in one tile; the band of output rows (with
    probabilities: 9 bytes a voxel) must still fit BAND_BYTES."""
    monkeypatch.setattr(P, "memory_bytes", lambda device: 1 << 50)
    monkeypatch.setattr(P, "CPU_TILE_BYTES", 1 << 50)
    cfg = TrainConfig(spatial_dims=3, features=(8, 16), patch_size=(16, 64, 64))
    shape = (400, 512, 512)
    assert P.plan_for(cfg, shape, torch.device("cpu")).n_tiles == 1  # labels only: fits
    plan = P.plan_for(cfg, shape, torch.device("cpu"), band_voxel_bytes=9)
    rows = max(hi - lo for lo, hi in (plan.owned(0, i) for i in range(len(plan.starts[0]))))
    assert len(plan.starts[0]) > 1 and rows * 512 * 512 * 9 <= P.BAND_BYTES
    assert plan.tile[1:] == (512, 512)


@pytest.mark.parametrize(("cfg", "size"), [
    (TrainConfig(n_classes=2, spatial_dims=2, features=(8, 16), norm="batch"), (64, 64)),
    (TrainConfig(n_classes=2, spatial_dims=2, features=(4, 8, 16, 32), norm="none", input_filters=()), (200, 200)),
    (TrainConfig(n_classes=2, spatial_dims=3, features=(4, 8, 16), spacing=(3.0, 1.0, 1.0),
                 patch_size=(16, 64, 64)), (36, 72, 72)),
    (TrainConfig(n_classes=2, spatial_dims=2, features=(8, 16), norm="none", filter_context=(4.0,)), (120, 120)),
    (TrainConfig(n_classes=2, spatial_dims=3, features=(4, 8), spacing=(2.0, 0.5, 0.5), norm="none",
                 filter_context=(4.0,), patch_size=(8, 32, 32)), (24, 96, 96)),
    # downsample: the field of the shrunk image's network, times the shrink, plus the blocks
    (TrainConfig(n_classes=2, spatial_dims=2, features=(8, 16), norm="none", downsample=3), (150, 150)),
    (TrainConfig(n_classes=2, spatial_dims=3, features=(4, 8), spacing=(2.0, 0.5, 0.5), norm="none",
                 patch_size=(8, 16, 16), downsample=2), (24, 120, 120)),
])
def test_receptive_radius_bounds_the_measured_field(cfg, size):
    """The gradient of one output voxel reaches no input voxel beyond the radius (and the
    bound is tight to within one step)."""
    torch.manual_seed(0)
    model = model_from_config(cfg).eval()
    x = torch.rand(1, 1, *size, requires_grad=True)
    centre = tuple(n // 2 for n in size)
    model(x)[(0, 0, *centre)].backward()
    reach = x.grad[0, 0].abs()
    tight = not cfg.filter_context
    if not tight:
        # the region statistics' box filters run on cumulative sums: beyond their window the
        # gradient is a sum of cancelling terms, round-off (< 1e-6 of the largest), not a reach;
        # cut at that level the weakest true reach may go too, so only the bound is checked
        reach = torch.where(reach > 1e-6 * reach.max(), reach, torch.zeros_like(reach))
    radius, step = receptive_radius(cfg), network_step(cfg)
    for a in range(len(size)):
        hit = np.nonzero(reach.sum(tuple(b for b in range(len(size)) if b != a)).numpy())[0]
        measured = max(centre[a] - hit.min(), hit.max() - centre[a])
        assert measured <= radius[a], (a, measured, radius)
        assert measured >= radius[a] - step[a] or not tight, (a, measured, radius)


# --------------------------------------------------------------------------- exactness
@pytest.mark.parametrize(("dims", "shape", "tile", "kw"), [
    (2, (61, 150), (64, 100), dict(features=(4, 8, 16))),
    (2, (5, 130), (6, 40), dict(features=(4, 8))),
    (3, (9, 61, 57), (9, 40, 40), dict(features=(4, 8), spacing=(2.5, 1.0, 1.0), patch_size=(8, 32, 32))),
    (3, (20, 130, 66), (20, 112, 68), dict(features=(4, 8, 16), input_filters=(), norm="none", patch_size=(8, 16, 16))),
    (2, (90, 150), (64, 64), dict(features=(4, 8), filter_context=(4.0,))),
    # downsample: tiles start on whole blocks of the shrink, so each sees the blocks one pass does
    (2, (131, 150), (80, 80), dict(features=(4, 8), downsample=2)),
    (3, (9, 221, 57), (9, 108, 60), dict(features=(4, 8), spacing=(2.5, 1.0, 1.0), patch_size=(8, 8, 8),
                                        downsample=3)),
])
def test_tiled_prediction_equals_one_forward_pass(dims, shape, tile, kw):
    """Several small tiles or one large one: the result is that of one pass over the image."""
    p = make_predictor(dims=dims, patch=kw.pop("patch_size", (16,) * dims), **kw)
    x = np.random.default_rng(0).random((1, *shape)).astype(np.float32)
    ref = whole_image_forward(p.model, p.config, x)
    totals = []
    for t in (None, tile):
        events = list(P.iter_predict_normalized(p.model, x, p.config, probabilities=True, tile=t))
        r = events[-1]
        progress = [e for e in events if isinstance(e, PredictProgress)]
        assert progress[-1].done == progress[-1].total == P.plan_for(p.config, shape, p.device, tile=t).n_tiles
        totals.append(progress[-1].total)
        np.testing.assert_allclose(r.probabilities, ref, atol=1e-5)
        np.testing.assert_array_equal(r.labels, ref.argmax(0) + 1)
    assert totals[0] == 1 and totals[1] > 1


def _torch_takes_its_slow_conv3d_kernel(net: torch.nn.Module, x: torch.Tensor) -> bool:
    """Whether PyTorch runs one of ``net``'s 3×3×3 convolutions of ``x`` by its native kernel
    (a 1×1×1 one goes there too when a test before left PyTorch on one thread)."""
    from torch.profiler import profile

    with torch.no_grad(), profile(record_shapes=True) as prof:
        net(x)
    return any(e.key == "aten::slow_conv3d_forward" and tuple(e.input_shapes[1][-3:]) == (3, 3, 3)
               for e in prof.key_averages(group_by_input_shape=True))


@pytest.mark.parametrize(("tile", "slow"), [
    ((19, 96, 96), True),    # the app's live preview of three slices with their margins
    ((16, 128, 128), True),
    ((32, 96, 96), False),
])
def test_lone_3d_tiles_are_paired_exactly_where_torch_would_take_its_slow_kernel(tile, slow):
    """The rule agrees with PyTorch's own dispatch (a PyTorch that changes it fails here), and
    pairing changes nothing in the output."""
    cfg = TrainConfig(n_classes=3, spatial_dims=3, spacing=(2.0, 0.5, 0.5))  # the fast preset
    model = model_from_config(cfg).eval()
    x = torch.from_numpy(np.random.default_rng(0).random((1, 1, *tile), dtype=np.float32))
    with torch.no_grad():
        filtered = model.filters(x)
    assert _torch_takes_its_slow_conv3d_kernel(model.net, filtered) is slow
    assert not _torch_takes_its_slow_conv3d_kernel(model.net, torch.cat([filtered, filtered]))
    assert P.pair_single_tiles(cfg, tile, torch.device("cpu")) is slow
    assert not P.pair_single_tiles(cfg, tile, torch.device("meta"))  # only a CPU dispatches so
    assert not P.pair_single_tiles(TrainConfig(n_classes=3, spatial_dims=2), tile[1:], torch.device("cpu"))
    if slow:
        with torch.no_grad():
            alone, paired = model(x), model(torch.cat([x, x]))[:1]
        torch.testing.assert_close(paired, alone, atol=1e-5, rtol=1e-5)


class _CountingModel(torch.nn.Module):
    """A model that counts the voxels it is given (a paired copy included)."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model, self.voxels = model, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.voxels += x.shape[0] * int(np.prod(x.shape[2:]))
        return self.model(x)


@pytest.mark.parametrize(("dims", "shape", "budget", "region"), [
    (3, (32, 96, 96), None, None),                                               # one tile, not paired
    (3, (32, 96, 96), None, (slice(15, 18), slice(0, 96), slice(0, 96))),        # the slab: paired
    (3, (32, 96, 96), None, (slice(0, 3), slice(0, 96), slice(0, 96))),          # an end slab
    (3, (32, 60, 96), 2 * 24 * 48 * 48, None),                                   # several tiles (each fills the budget)
    (2, (90, 70), 40 * 40, (slice(20, 40), slice(5, 30))),                       # 2D tiles: never paired
])
def test_predict_work_counts_what_the_network_computes(monkeypatch, dims, shape, budget, region):
    """The estimate to choose between a region and the whole image is the count of voxels the
    model is actually given, paired copies included."""
    if budget is not None:  # a small memory budget: several tiles
        monkeypatch.setattr(P, "max_tile_voxels", lambda *a, **k: budget)
    spacing = (2.0, 0.5, 0.5) if dims == 3 else None
    cfg = TrainConfig(n_classes=3, spatial_dims=dims, spacing=spacing)  # the app's fast preset
    counting = _CountingModel(model_from_config(cfg))
    img = np.random.default_rng(0).random(shape, dtype=np.float32)
    Predictor(counting, cfg, device="cpu").predict(img, region=region)
    assert counting.voxels == P.predict_work(cfg, shape, region, torch.device("cpu"))
    if budget is not None:
        assert P.plan_for(cfg, shape, torch.device("cpu")).n_tiles > 1


def test_a_small_volume_costs_less_whole_than_its_middle_slab():
    """Why the app previews a small volume whole: the slab's context is padded and paired."""
    cfg = TrainConfig(n_classes=3, spatial_dims=3, spacing=(2.0, 0.5, 0.5))
    cpu, shape = torch.device("cpu"), (32, 96, 96)
    whole = P.predict_work(cfg, shape, None, cpu)
    assert whole < P.predict_work(cfg, shape, (slice(15, 18), slice(0, 96), slice(0, 96)), cpu)
    assert whole > P.predict_work(cfg, shape, (slice(0, 3), slice(0, 96), slice(0, 96)), cpu)
    big = (120, 512, 512)
    assert P.predict_work(cfg, big, None, cpu) > 5 * P.predict_work(cfg, big, (slice(60, 63), slice(0, 512), slice(0, 512)), cpu)


def test_sliding_window_equals_one_pass_for_a_pointwise_model():
    cfg = TrainConfig(n_classes=2, features=(4, 8), patch_size=(16, 16))
    model = torch.nn.Conv2d(1, 2, 1)
    pred = Predictor(model, cfg, device="cpu")
    img = np.random.default_rng(0).random((37, 50)).astype(np.float32)
    r = pred.predict(img, probabilities=True, tile=(16, 16))
    x = torch.from_numpy(normalize(img, image_stats(img)))[None]
    ref = torch.softmax(model(x), 1)[0].detach().numpy()
    np.testing.assert_allclose(r.probabilities, ref, atol=1e-5)
    assert (r.labels == ref.argmax(0) + 1).all()


def test_region_matches_the_same_part_of_a_full_prediction():
    """A region (the GUI's visible box) comes out exactly as in the whole-image prediction."""
    p = make_predictor(features=(4, 8, 16))
    img = np.random.default_rng(1).random((90, 70)).astype(np.float32)
    stats = image_stats(img)
    full = p.predict(img, stats=stats, probabilities=True)
    for region in [(slice(20, 40), slice(5, 30)), (slice(61, 90), slice(3, 4)), (slice(0, 90), slice(50, 70))]:
        part = p.predict(img, region=region, stats=stats, probabilities=True)
        assert part.region == region
        np.testing.assert_allclose(part.probabilities, full.probabilities[(slice(None), *region)], atol=1e-5)
        np.testing.assert_array_equal(part.labels, full.labels[region])


@pytest.mark.parametrize("shape", [(1, 1), (5, 7), (16, 16), (40, 23)])
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
    assert network_step(p.config) == (1, 2, 2)  # the image's size is valid: no padding
    with torch.no_grad():
        logits = p.model(torch.from_numpy(normalize(img, image_stats(img, 0), 0))[None])
    np.testing.assert_allclose(r.probabilities, torch.sigmoid(logits)[0].numpy(), atol=1e-5)


def test_tta_averages_flipped_passes():
    p = make_predictor()
    img = np.random.default_rng(0).random((20, 24)).astype(np.float32)
    r = p.predict(img, tta=True, probabilities=True)
    assert r.labels.shape == (20, 24) and np.allclose(r.probabilities.sum(0), 1, atol=1e-5)
    x = torch.from_numpy(normalize(img, image_stats(img)))[None]
    with torch.no_grad():
        logits = sum(torch.flip(p.model(torch.flip(x, d)), d) for d in ([], [2], [3], [2, 3])) / 4
    np.testing.assert_allclose(r.probabilities, torch.softmax(logits, 1)[0].numpy(), atol=1e-5)


def test_predict_normalized_keeps_the_models_training_mode():
    p = make_predictor()
    p.model.train()
    predict_normalized(p.model, np.zeros((1, 8, 8), np.float32), p.config)
    assert p.model.training


def test_wrong_rank_or_channels_is_a_user_error():
    p = make_predictor()
    with pytest.raises(UserInputError, match="trained on 2D"):
        p.predict(np.zeros((4, 16, 16)))
    with pytest.raises(UserInputError, match="expects 1 channel"):
        p.predict(np.zeros((16, 16, 3)), channel_axis=-1)
    with pytest.raises(UserInputError, match="region to predict is empty"):
        p.predict(np.zeros((16, 16)), region=(slice(3, 3), slice(0, 4)))


def test_class_labels_are_argmax_plus_one_with_ties_to_the_first_class():
    logits = torch.tensor([[[0.0, 1.0, 2.0, 5.0]], [[0.0, 3.0, 2.0, 1.0]], [[-1.0, 3.0, 2.0, 0.0]]])
    np.testing.assert_array_equal(P._class_labels(logits).numpy(), [[1, 2, 1, 1]])
    many = torch.randn(300, 4, 5)
    assert P._class_labels(many).dtype == torch.int32
    np.testing.assert_array_equal(P._class_labels(many).numpy(), many.argmax(0).numpy() + 1)
