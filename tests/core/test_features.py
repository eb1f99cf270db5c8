"""Fixed multiscale input filters: exact kernels, scipy agreement, run round-trip, prediction."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from scipy import ndimage as ndi

from segstudio.core.config import TrainConfig
from segstudio.core.errors import UserInputError
from segstudio.core.features import (
    FilterBank,
    FilterCache,
    FilteredNetwork,
    axis_sigmas,
    box_filter,
    box_widths,
    gaussian_kernels,
    image_regions,
    n_filter_channels,
)
from segstudio.core.predictor import Predictor
from segstudio.core.run import load_run, model_from_config, save_run
from segstudio.core.trainer import Finished, infer_config, train


@pytest.mark.parametrize("sigma", [0.7, 1.0, 2.5, 8.0])
def test_kernels_have_exact_moments(sigma):
    k = gaussian_kernels(sigma).double()
    r = k.shape[1] // 2
    x = torch.arange(-r, r + 1, dtype=torch.float64)
    assert torch.isclose(k[0].sum(), torch.tensor(1.0, dtype=torch.float64), atol=1e-6)
    assert torch.isclose((k[1] * x).sum(), torch.tensor(1.0, dtype=torch.float64), atol=1e-6)
    assert abs(float(k[1].sum())) < 1e-6
    assert abs(float(k[2].sum())) < 1e-6
    assert torch.isclose((k[2] * x**2).sum(), torch.tensor(2.0, dtype=torch.float64), atol=1e-6)


def test_filter_bank_matches_scipy_away_from_borders():
    rng = np.random.default_rng(0)
    img = ndi.gaussian_filter(rng.random((48, 56)), 1.5).astype(np.float32)
    out = FilterBank(2, (1.0, 3.0))(torch.from_numpy(img)[None, None])[0].numpy()
    assert out.shape == (7, 48, 56)
    np.testing.assert_array_equal(out[0], img)
    inner = (slice(12, -12), slice(12, -12))
    for i, s in enumerate((1.0, 3.0)):
        smooth = ndi.gaussian_filter(img, s, truncate=3.0)
        # scipy's truncated derivative kernels are not zero-sum: compare with long ones
        grad = ndi.gaussian_gradient_magnitude(img, s, truncate=6.0) * s
        lap = ndi.gaussian_laplace(img, s, truncate=6.0) * s**2
        np.testing.assert_allclose(out[1 + 3 * i][inner], smooth[inner], atol=1e-5)
        scale = np.abs(grad[inner]).max()
        assert np.abs(out[2 + 3 * i][inner] - grad[inner]).max() < 0.05 * scale
        scale = np.abs(lap[inner]).max()
        assert np.abs(out[3 + 3 * i][inner] - lap[inner]).max() < 0.1 * scale


def test_filter_bank_3d_anisotropic_and_channels():
    assert axis_sigmas(2.0, 3, (2.0, 0.5, 0.5)) == (0.5, 2.0, 2.0)
    bank = FilterBank(3, (1.0, 2.0), spacing=(2.0, 0.5, 0.5))
    x = torch.rand(2, 2, 6, 20, 24)
    y = bank(x)
    assert y.shape == (2, n_filter_channels(2, (1.0, 2.0)), 6, 20, 24)
    # channel 0 of each image channel is the raw channel
    torch.testing.assert_close(y[:, 0], x[:, 0])
    torch.testing.assert_close(y[:, 7], x[:, 1])
    assert not any(name.startswith("filters") for name in
                   FilteredNetwork(bank, torch.nn.Identity(), 2).state_dict())


def _anisotropic_volume() -> tuple[np.ndarray, tuple[float, float, float]]:
    rng = np.random.default_rng(3)
    spacing = (2.0, 0.5, 0.5)
    vol = ndi.gaussian_filter(rng.random((24, 64, 64)), (1.0, 4.0, 4.0)).astype(np.float32)
    return vol, spacing


def test_derivatives_are_per_physical_unit_on_an_anisotropic_volume():
    """Against scipy: per-axis Gaussian derivatives in voxels, divided by the spacing (in units
    of the finest pixel), give the gradient magnitude and Laplacian the bank reports."""
    vol, spacing = _anisotropic_volume()
    sigma = 4.0
    sig_vox = axis_sigmas(sigma, 3, spacing)  # (1, 4, 4) voxels: the same physical width
    scale = [min(spacing) / s for s in spacing]  # d/d(physical) in finest pixels, per axis
    first, second = [], []
    for a in range(3):
        order = [0, 0, 0]
        order[a] = 1
        first.append(scale[a] * ndi.gaussian_filter(vol, sig_vox, order=order, truncate=6.0))
        order[a] = 2
        second.append(scale[a] ** 2 * ndi.gaussian_filter(vol, sig_vox, order=order, truncate=6.0))
    grad = sigma * np.sqrt(sum(f**2 for f in first))
    lap = sigma**2 * sum(second)
    out = FilterBank(3, (sigma,), spacing)(torch.from_numpy(vol)[None, None])[0].numpy()
    inner = (slice(6, -6), slice(20, -20), slice(20, -20))
    for got, want, tol in ((out[2], grad, 0.05), (out[3], lap, 0.1)):  # tolerances as in 2D above
        err = np.abs(got[inner] - want[inner]).max()
        assert err < tol * np.abs(want[inner]).max()
    # the same physical ramp along z and along y gives the same feature
    z, y, _ = np.meshgrid(*(np.arange(n) * s for n, s in zip((24, 64, 64), spacing)), indexing="ij")
    bank = FilterBank(3, (1.0,), spacing)
    fz = bank(torch.from_numpy(z.astype(np.float32))[None, None])[0, 2].numpy()[inner]
    fy = bank(torch.from_numpy(y.astype(np.float32))[None, None])[0, 2].numpy()[inner]
    np.testing.assert_allclose(fz, fy, rtol=1e-3)


def test_texture_channel_is_the_hessians_anisotropy_in_2d():
    """Against scipy's Hessian: ``σ² |λ₁ − λ₂| / √2`` from the closed-form eigenvalues."""
    rng = np.random.default_rng(5)
    img = ndi.gaussian_filter(rng.random((64, 72)), 2.0).astype(np.float32)
    sigma = 2.0
    out = FilterBank(2, (1.0, sigma), texture=True)(torch.from_numpy(img)[None, None])[0].numpy()
    assert out.shape == (n_filter_channels(1, (1.0, sigma), texture=True), 64, 72) == (9, 64, 72)
    basic = FilterBank(2, (1.0, sigma))(torch.from_numpy(img)[None, None])[0].numpy()
    np.testing.assert_allclose(out[[0, 1, 2, 3, 5, 6, 7]], basic, atol=1e-6)  # the others unchanged
    hyy = ndi.gaussian_filter(img, sigma, order=(2, 0), truncate=6.0)
    hxx = ndi.gaussian_filter(img, sigma, order=(0, 2), truncate=6.0)
    hxy = ndi.gaussian_filter(img, sigma, order=(1, 1), truncate=6.0)
    want = sigma**2 * np.sqrt((hxx - hyy) ** 2 + 4 * hxy**2) / np.sqrt(2.0)
    inner = (slice(14, -14), slice(14, -14))
    assert np.abs(out[8][inner] - want[inner]).max() < 0.1 * np.abs(want[inner]).max()


def test_texture_channel_tells_a_ridge_from_a_blob_at_any_angle():
    """A line at any angle scores high, a round spot of the same peak curvature low."""
    yy, xx = np.mgrid[:61, :61].astype(np.float32) - 30
    bank = FilterBank(2, (2.0,), texture=True)
    ridges = []
    for angle in np.deg2rad([0.0, 30.0, 45.0, 80.0]):
        dist = np.abs(-np.sin(angle) * xx + np.cos(angle) * yy)
        line = np.exp(-0.5 * (dist / 1.5) ** 2)
        ridges.append(float(bank(torch.from_numpy(line)[None, None])[0, 4, 30, 30]))
    spot = np.exp(-0.5 * (xx**2 + yy**2) / 1.5**2).astype(np.float32)
    blob = float(bank(torch.from_numpy(spot)[None, None])[0, 4, 30, 30])
    np.testing.assert_allclose(ridges, ridges[0], rtol=0.05)  # sampled kernels: ~3 % off at 45°
    assert blob < 0.05 * ridges[0]


def test_texture_channel_per_physical_unit_in_3d():
    """Against scipy on an anisotropic volume: the trace-free part of the physical Hessian."""
    vol, spacing = _anisotropic_volume()
    sigma = 4.0
    sig_vox = axis_sigmas(sigma, 3, spacing)
    scale = [min(spacing) / s for s in spacing]
    h = np.empty((3, 3) + vol.shape)
    for a in range(3):
        for b in range(3):
            order = [0, 0, 0]
            order[a] += 1
            order[b] += 1
            h[a, b] = scale[a] * scale[b] * ndi.gaussian_filter(vol, sig_vox, order=order, truncate=6.0)
    trace = h[0, 0] + h[1, 1] + h[2, 2]
    free = h - np.eye(3)[:, :, None, None, None] * trace / 3
    want = sigma**2 * np.sqrt((free**2).sum(axis=(0, 1)))
    out = FilterBank(3, (sigma,), spacing, texture=True)(torch.from_numpy(vol)[None, None])[0].numpy()
    assert out.shape[0] == 5
    inner = (slice(6, -6), slice(20, -20), slice(20, -20))
    assert np.abs(out[4][inner] - want[inner]).max() < 0.1 * np.abs(want[inner]).max()


def test_texture_filters_are_part_of_the_run(tmp_path):
    """The network is built for the extra channels, and old runs (no field) load without them."""
    cfg = TrainConfig(n_classes=2, features=(4, 8), input_filters=(1.0, 4.0), filter_texture=True)
    model = model_from_config(cfg)
    assert model.filters.texture
    x = torch.rand(1, 1, 32, 32)
    assert model(x).shape == (1, 2, 32, 32)
    save_run(tmp_path / "run", cfg, model)
    loaded = load_run(tmp_path / "run")
    assert loaded.config.filter_texture
    torch.testing.assert_close(loaded.model.eval()(x), model.eval()(x))
    data = json.loads((tmp_path / "run" / "config.json").read_text())
    del data["filter_texture"]
    assert not TrainConfig.from_dict(data).filter_texture


def test_runs_from_before_the_physical_rule_keep_per_voxel_filters(tmp_path):
    """An old config.json has no ``filter_units``: it loads per voxel, as it was trained."""
    vol, spacing = _anisotropic_volume()
    cfg = TrainConfig(n_classes=2, spatial_dims=3, features=(4, 8), spacing=spacing, input_filters=(1.0,))
    assert cfg.filter_units == "physical"
    save_run(tmp_path / "old", cfg, model_from_config(cfg))
    data = json.loads((tmp_path / "old" / "config.json").read_text())
    del data["filter_units"]
    (tmp_path / "old" / "config.json").write_text(json.dumps(data))
    old = load_run(tmp_path / "old")
    assert old.config.filter_units == "voxel"
    x = torch.from_numpy(vol[:8, :32, :32].copy())[None, None]
    per_voxel = FilterBank(3, (1.0,), spacing, units="voxel")(x)
    torch.testing.assert_close(old.model.filters(x), per_voxel)
    assert not torch.allclose(FilterBank(3, (1.0,), spacing)(x), per_voxel)


def test_constant_image_has_zero_derivatives():
    y = FilterBank(2, (2.0,))(torch.full((1, 1, 30, 30), 0.7))
    torch.testing.assert_close(y[0, 1], torch.full((30, 30), 0.7))
    assert float(y[0, 2].abs().max()) < 1e-3  # sqrt(eps) floor of the magnitude
    assert float(y[0, 3].abs().max()) < 1e-5


def test_config_with_filters_round_trips_and_old_runs_load(tmp_path):
    cfg = TrainConfig(n_classes=3, features=(4, 8), input_filters=(1.0, 2.0))
    model = model_from_config(cfg)
    assert isinstance(model, FilteredNetwork)
    assert model.in_channels == 1 and model.divisor == (2, 2)
    save_run(tmp_path / "run", cfg, model)
    loaded = load_run(tmp_path / "run")
    assert loaded.config.input_filters == (1.0, 2.0)
    x = torch.rand(1, 1, 16, 16)
    torch.testing.assert_close(loaded.model(x), model.eval()(x))
    # A run written before input filters existed has no such key: it must load as before.
    plain = TrainConfig(n_classes=2, features=(4, 8), input_filters=())
    save_run(tmp_path / "old", plain, model_from_config(plain))
    data = json.loads((tmp_path / "old" / "config.json").read_text())
    del data["input_filters"]
    (tmp_path / "old" / "config.json").write_text(json.dumps(data))
    old = load_run(tmp_path / "old")
    assert old.config.input_filters == ()
    assert not isinstance(old.model, FilteredNetwork)


def test_training_and_prediction_use_the_filters(tmp_path, two_strokes):
    image, _, src = two_strokes(40)
    cfg = TrainConfig(n_classes=2, features=(4, 8), input_filters=(1.0,), patch_size=(32, 32),
                      batch_size=2, iterations=3, device="cpu", seed=0)
    events = list(train(cfg, src, tmp_path / "run"))
    assert isinstance(events[-1], Finished)
    result = Predictor.from_run(tmp_path / "run", device="cpu").predict(image)
    assert result.labels.shape == (40, 40)
    assert set(np.unique(result.labels)) <= {1, 2}


def test_resume_with_other_input_filters_fails_clearly(tmp_path, two_strokes):
    _, _, src = two_strokes()
    cfg = TrainConfig(n_classes=2, features=(4, 8), input_filters=(1.0,), patch_size=(16, 16),
                      batch_size=1, iterations=1, device="cpu", seed=0)
    assert isinstance(list(train(cfg, src, tmp_path / "run"))[-1], Finished)
    events = list(train(cfg.replace(input_filters=(2.0,)), src, tmp_path / "run", resume=tmp_path / "run"))
    assert events[-1].user_error
    assert "input filters" in events[-1].message


def test_wide_context_is_the_2d_filters_plus_a_wider_one() -> None:
    from segstudio.core.config import DEFAULT_INPUT_FILTERS, WIDE_CONTEXT_SIGMA, wide_context_filters
    from segstudio.core.errors import UserInputError

    assert wide_context_filters(2) == (*DEFAULT_INPUT_FILTERS[2], WIDE_CONTEXT_SIGMA)
    assert max(wide_context_filters(2)) > max(DEFAULT_INPUT_FILTERS[2])
    with pytest.raises(UserInputError, match="2D images"):
        wide_context_filters(3)


def test_cached_filters_predict_as_the_uncached_model_with_every_new_weights():
    """A live preview's model keeps its filter responses between previews: with each new set of
    weights its prediction is the uncached model's, the filters run once per distinct tile."""
    cfg = TrainConfig(n_classes=3, spatial_dims=3, spacing=(2.0, 0.5, 0.5), features=(4, 8))
    torch.manual_seed(0)
    cached, plain = model_from_config(cfg), model_from_config(cfg)
    cached.cache_filters()
    img = np.random.default_rng(0).random((40, 32, 32), dtype=np.float32)
    region = (slice(19, 22), slice(0, 32), slice(0, 32))  # a slab whose context is not the volume
    for step in range(3):
        torch.manual_seed(step)
        state = model_from_config(cfg).state_dict()  # the trainer's newest weights
        a = Predictor(cached, cfg, device="cpu")
        a.load_state(state)
        b = Predictor(plain, cfg, device="cpu")
        b.load_state(state)
        for r in (None, region):
            pa, pb = a.predict(img, region=r, probabilities=True), b.predict(img, region=r, probabilities=True)
            np.testing.assert_array_equal(pa.probabilities, pb.probabilities)
    cache = cached.filter_cache
    assert cache.misses == 2 and cache.hits == 4  # two distinct tiles (whole, slab), filtered once each


def test_filter_cache_is_bounded_and_stays_out_of_training():
    bank = FilterBank(2, (1.0,))
    cache = FilterCache(entries=2)
    xs = [torch.rand(1, 1, 16, 16) for _ in range(3)]
    with torch.no_grad():
        first = cache.get(xs[0], bank)
        assert cache.get(xs[0].clone(), bank) is first  # equal values: a hit
        cache.get(xs[1], bank)
        cache.get(xs[2], bank)  # the oldest (xs[0]) goes
        assert cache.get(xs[0], bank) is not first and cache.misses == 4
        small = FilterCache(max_bytes=16 * 16 * 4)  # not even one response fits
        small.get(xs[0], bank)
        small.get(xs[0], bank)
        assert small.hits == 0 and small.misses == 2
    # With gradients (training) the model never looks at its cache.
    cfg = TrainConfig(n_classes=2, features=(4, 8))
    model = model_from_config(cfg)
    model.cache_filters()
    model(torch.rand(1, 1, 16, 16)).sum().backward()
    assert model.filter_cache.hits == model.filter_cache.misses == 0


@pytest.mark.parametrize(("value", "choice"), [(True, "on"), (False, "auto"), (None, "auto"), ("AUTO", "auto"),
                                               ("on", "on"), ("off", "off")])
def test_wide_context_choices_read_old_checkboxes(value, choice) -> None:
    from segstudio.core.config import wide_context_choice

    assert wide_context_choice(value) == choice


def test_wide_context_auto_follows_the_background_on_2d_only() -> None:
    from segstudio.core.background import UNEVEN_BACKGROUND
    from segstudio.core.config import use_wide_context, wide_context_choice
    from segstudio.core.errors import UserInputError

    above, below = UNEVEN_BACKGROUND * 1.01, UNEVEN_BACKGROUND * 0.99
    assert use_wide_context("auto", 2, above) and not use_wide_context("auto", 2, below)
    assert not use_wide_context("auto", 2, None), "unknown: off"
    assert not use_wide_context("auto", 3, 100.0), "measured worse on volumes"
    assert not use_wide_context("off", 2, 100.0) and use_wide_context("on", 2, 0.0)
    with pytest.raises(UserInputError, match="wide context must be one of"):
        wide_context_choice("maybe")


def _boxes(img: np.ndarray, sigmas) -> np.ndarray:
    """scipy's moving averages (``uniform_filter1d``), the widths of :func:`box_widths` per axis."""
    out = np.asarray(img, np.float64)
    for a, s in enumerate(sigmas):
        for w in box_widths(s):
            out = ndi.uniform_filter1d(out, w, axis=a, mode="nearest")
    return out


def _region_reference(img: np.ndarray, rho_vox, inner_vox, scale) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Local mean, standard deviation and structure-tensor anisotropy with scipy.

    An axis whose inner σ is under a voxel gets the central difference as its derivative (what
    the bank's moment-exact kernel is there; scipy's sampled Gaussian derivative is not).
    """
    mean = _boxes(img, rho_vox)
    second = _boxes(img.astype(np.float64) ** 2, rho_vox)
    nd = img.ndim
    grads = []
    for a in range(nd):
        if inner_vox[a] < 0.5:
            across = [0.0 if b == a else s for b, s in enumerate(inner_vox)]
            u = ndi.gaussian_filter(img, across, truncate=3.0, mode="nearest")
            grads.append(scale[a] * ndi.correlate1d(u, [-0.5, 0.0, 0.5], axis=a, mode="nearest"))
            continue
        order = [0] * nd
        order[a] = 1
        grads.append(scale[a] * ndi.gaussian_filter(img, inner_vox, order=order, truncate=6.0, mode="nearest"))
    s = np.empty((nd, nd) + img.shape)
    for a in range(nd):
        for b in range(nd):
            s[a, b] = _boxes(grads[a] * grads[b], rho_vox)
    trace = np.trace(s)
    free = s - np.eye(nd).reshape((nd, nd) + (1,) * nd) * trace / nd
    return mean, np.sqrt(np.clip(second - mean**2, 0, None)), np.sqrt((free**2).sum(axis=(0, 1))) / trace


@pytest.mark.parametrize("sigma", [0.5, 1.0, 2.0, 4.0, 8.0, 16.0])
def test_box_widths_match_the_gaussians_variance(sigma):
    widths = box_widths(sigma)
    assert all(w % 2 == 1 and w > 1 for w in widths) and len(widths) <= 3
    variance = sum((w * w - 1) / 12 for w in widths)
    # Kovesi: two widths two apart, so the variance moves in steps of about w / 3
    assert abs(np.sqrt(variance) - sigma) <= max(0.03 * sigma, 0.5)
    assert box_widths(0.0) == ()


def test_box_filter_is_a_moving_average_with_replicated_borders():
    rng = np.random.default_rng(0)
    x = (rng.random((2, 3, 9, 40, 50)) * 1000 + 5000).astype(np.float32)  # far from zero: sums grow
    for dim, w in ((2, 5), (3, 17), (4, 33)):
        got = box_filter(torch.from_numpy(x), w, dim).numpy()
        want = ndi.uniform_filter1d(x.astype(np.float64), w, axis=dim, mode="nearest")
        np.testing.assert_allclose(got, want, rtol=1e-6)
    assert box_filter(torch.from_numpy(x), 1, 3) is not None


def test_region_channels_match_scipy_in_2d():
    """Per region scale ρ: ``G_ρ * x``, ``sqrt(G_ρ * x² − (G_ρ * x)²)`` and the anisotropy of the
    structure tensor ``G_ρ * (∇u ∇uᵀ)``, ``u = G_1 * x``, after the usual channels."""
    rng = np.random.default_rng(7)
    img = ndi.gaussian_filter(rng.random((80, 90)), 1.5).astype(np.float32)
    out = FilterBank(2, (1.0,), context=(4.0,))(torch.from_numpy(img)[None, None])[0].numpy()
    assert out.shape == (n_filter_channels(1, (1.0,), context=(4.0,)), 80, 90) == (7, 80, 90)
    basic = FilterBank(2, (1.0,))(torch.from_numpy(img)[None, None])[0].numpy()
    np.testing.assert_allclose(out[:4], basic, atol=1e-6)  # the others unchanged
    mean, std, aniso = _region_reference(img, (4.0, 4.0), (1.0, 1.0), (1.0, 1.0))
    inner = (slice(16, -16), slice(16, -16))
    np.testing.assert_allclose(out[4], mean, atol=1e-5)
    np.testing.assert_allclose(out[5], std, rtol=1e-3, atol=1e-5)
    np.testing.assert_allclose(out[6][inner], aniso[inner], rtol=0.02, atol=2e-3)


def test_region_channels_per_physical_unit_in_3d():
    """On an anisotropic volume the region scale and the gradients are physical, as the others."""
    vol, spacing = _anisotropic_volume()
    vol = 50.0 * vol  # gradients of a normalised image's texture, not ~0.005
    scale = [min(spacing) / s for s in spacing]
    out = FilterBank(3, (), spacing, context=(6.0,))(torch.from_numpy(vol)[None, None])[0].numpy()
    assert out.shape[0] == 4
    # the inner σ 1 is 0.25 voxels along z, which the bank keeps at 0.3 (as its other kernels)
    inner_vox = tuple(max(s, 0.3) for s in axis_sigmas(1.0, 3, spacing))
    mean, std, aniso = _region_reference(vol, axis_sigmas(6.0, 3, spacing), inner_vox, scale)
    inner = (slice(4, -4), slice(20, -20), slice(20, -20))
    np.testing.assert_allclose(out[1], mean, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(out[2][inner], std[inner], rtol=5e-3)  # float32 E[x²] − E[x]²
    np.testing.assert_allclose(out[3][inner], aniso[inner], rtol=0.05, atol=5e-3)


def test_region_anisotropy_tells_fibres_from_grains_at_any_angle():
    """Stripes at any angle: near the 2D maximum ``1/√2``; isotropic grains well below."""
    rng = np.random.default_rng(2)
    yy, xx = np.mgrid[:96, :96].astype(np.float32)
    bank = FilterBank(2, (), context=(8.0,))
    for angle in np.deg2rad([0.0, 30.0, 45.0, 80.0]):
        stripes = np.sin(2 * np.pi * (np.cos(angle) * xx + np.sin(angle) * yy) / 7.0).astype(np.float32)
        fibre = float(bank(torch.from_numpy(stripes)[None, None])[0, 3, 48, 48])
        assert fibre > 0.65, (np.rad2deg(angle), fibre)
    grains = ndi.gaussian_filter(rng.standard_normal((96, 96)), 1.5).astype(np.float32)
    assert float(bank(torch.from_numpy(grains)[None, None])[0, 3, 24:72, 24:72].mean()) < 0.3
    # the local standard deviation of a flat region is ~0, of the grains their spread
    flat = np.full((96, 96), 3.0, np.float32)
    assert float(bank(torch.from_numpy(flat)[None, None])[0, 2].max()) < 1e-3


def test_region_filters_are_part_of_the_run(tmp_path):
    """The network is built for the extra channels, and old runs (no field) load without them."""
    cfg = TrainConfig(n_classes=2, features=(4, 8), input_filters=(1.0,), filter_context=(8,))
    assert cfg.filter_context == (8.0,)
    model = model_from_config(cfg)
    assert model.filters.context == (8.0,)
    x = torch.rand(1, 1, 32, 32)
    assert model(x).shape == (1, 2, 32, 32)
    save_run(tmp_path / "run", cfg, model)
    loaded = load_run(tmp_path / "run")
    assert loaded.config.filter_context == (8.0,)
    torch.testing.assert_close(loaded.model.eval()(x), model.eval()(x))
    data = json.loads((tmp_path / "run" / "config.json").read_text())
    del data["filter_context"]
    assert TrainConfig.from_dict(data).filter_context == ()


@pytest.mark.parametrize("shape, spacing", [((70, 60), None), ((20, 50, 40), (2.0, 0.5, 0.5))])
def test_image_regions_are_the_banks_region_channels_of_the_whole_image(shape, spacing, monkeypatch):
    """Computed in slabs (here forced to a few rows each) they equal the bank on the whole image;
    none without region scales or beyond the byte budget."""
    import segstudio.core.features as features

    rng = np.random.default_rng(4)
    img = ndi.gaussian_filter(rng.standard_normal((2, *shape)), 1.0).astype(np.float32)
    bank = FilterBank(len(shape), (1.0,), spacing, context=(4.0, 8.0))
    whole = bank.region_channels(torch.from_numpy(img)[None])[0].numpy()
    assert whole.shape == (2 * 6, *shape)
    full = bank(torch.from_numpy(img)[None])[0].numpy()
    per_channel = full.shape[0] // 2
    np.testing.assert_array_equal(whole[:6], full[per_channel - 6 : per_channel])  # the bank's order
    monkeypatch.setattr(features, "REGION_SLAB_BYTES", 1)
    np.testing.assert_allclose(image_regions(bank, img), whole, atol=2e-6)
    assert image_regions(FilterBank(len(shape), (1.0,), spacing), img) is None
    assert image_regions(bank, img, max_bytes=whole.nbytes - 1) is None


def test_a_patch_with_the_whole_images_region_channels_sees_its_real_neighbourhood():
    """A training patch that carries its crop of the whole image's region channels gives the
    network the features whole-image prediction gives it there; computed on the patch, the
    region channels near its borders see replicated pixels instead."""
    torch.manual_seed(0)
    cfg = TrainConfig(n_classes=2, spatial_dims=3, features=(4, 8), input_filters=(1.0,),
                      filter_context=(8.0,), spacing=(2.0, 0.5, 0.5), patch_size=(8, 32, 32))
    model = model_from_config(cfg).eval()
    vol = ndi.gaussian_filter(np.random.default_rng(5).standard_normal((1, 24, 96, 96)), 1.0).astype(np.float32)
    regions = image_regions(model.filters, vol)
    crop = (slice(None), slice(8, 16), slice(32, 64), slice(32, 64))
    x = torch.from_numpy(np.ascontiguousarray(vol[crop]))[None]
    r = torch.from_numpy(np.ascontiguousarray(regions[crop]))[None]
    seen = {}
    model.net.register_forward_pre_hook(lambda _, inputs: seen.update(features=inputs[0]))
    with torch.no_grad():
        out = model(torch.cat([x, r], dim=1))
        carried = seen["features"]
        torch.testing.assert_close(out, model.net(model.filters(x, regions=r)))
        whole = model.filters(torch.from_numpy(vol)[None])[(slice(None), *crop)]
        own = model.filters(x)
    n = model.filters.region_features
    torch.testing.assert_close(carried[:, -n:], whole[:, -n:], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(carried[:, :-n], own[:, :-n])  # the pixel filters: the patch's own
    assert float((own[:, -n:] - whole[:, -n:]).abs().max()) > 0.05


def test_standardised_inputs_by_batch_then_by_running_statistics(tmp_path):
    """``input_norm``: the network gets every filter channel at zero mean and unit variance over
    the batch in training, by the running statistics in prediction; kept in the run, off for
    runs written before it, and on with *textures*."""
    cfg = TrainConfig(n_classes=2, features=(4, 8), input_filters=(1.0,), filter_context=(8.0,), input_norm=True)
    model = model_from_config(cfg)
    assert model.input_norm is not None and model.input_norm.num_features == n_filter_channels(1, (1.0,), context=(8.0,))
    seen = {}
    model.net.register_forward_pre_hook(lambda _, inputs: seen.update(x=inputs[0]))
    x = 3.0 + 0.5 * torch.rand(4, 1, 32, 32)
    model.train()(x)
    features = model.filters(x)
    mean = features.mean(dim=(0, 2, 3), keepdim=True)
    var = features.var(dim=(0, 2, 3), unbiased=False, keepdim=True)
    torch.testing.assert_close(seen["x"], (features - mean) / torch.sqrt(var + 1e-5), atol=1e-4, rtol=1e-4)
    with torch.no_grad():
        for _ in range(100):  # momentum 0.1: 0.9^100 of the start left
            model(x)
    model.eval()(x)
    assert float(seen["x"].mean(dim=(0, 2, 3)).abs().max()) < 0.1  # the running statistics have caught up
    save_run(tmp_path / "run", cfg, model)
    loaded = load_run(tmp_path / "run")
    assert loaded.config.input_norm
    torch.testing.assert_close(loaded.model.eval()(x), model(x))
    data = json.loads((tmp_path / "run" / "config.json").read_text())
    del data["input_norm"]
    assert not TrainConfig.from_dict(data).input_norm
    assert model_from_config(TrainConfig(n_classes=2, features=(4, 8))).input_norm is None
    lab = np.zeros((32, 32), np.uint8)
    lab[2:4, 2:20] = 1
    lab[20:24, 5:9] = 2
    assert infer_config((32, 32), lab, "exclusive", textures=True).input_norm
    assert not infer_config((32, 32), lab, "exclusive", textures=False).input_norm


# --------------------------------------------------------------------------- smoothed predictions
@pytest.mark.parametrize("mode", ["exclusive", "multilabel"])
def test_prediction_smooths_the_regions_probabilities_as_box_filters_and_training_does_not(mode):
    """``output_smoothing``: in eval mode the probabilities (softmax; per-channel sigmoid in
    multi-label mode) of the classes that form regions pass through three box filters per axis
    of the σ's variance (per axis by the spacing), checked against scipy's moving average, a
    thin class's stay as they are, exclusive ones are normalised again, and all come back as
    logits; in train mode the output is the network's own (the strokes teach it). The weights
    are the plain network's, plus the running ``region_share``."""
    cfg = TrainConfig(mode=mode, n_classes=3, spatial_dims=3, spacing=(2.0, 0.5, 0.5), features=(4, 8),
                      output_smoothing=4.0)
    torch.manual_seed(0)
    smooth, plain = model_from_config(cfg), model_from_config(cfg.replace(output_smoothing=0.0))
    assert set(smooth.state_dict()) == set(plain.state_dict()) | {"region_share"}
    plain.load_state_dict({k: v for k, v in smooth.state_dict().items() if k != "region_share"})
    smooth.region_share.copy_(torch.tensor([1.0, 0.9, 0.2]))  # the third class is thin
    x = torch.rand(1, 1, 6, 40, 36)
    smooth.eval(), plain.eval()
    with torch.no_grad():
        got, raw = smooth(x).double(), plain(x).double()
    boxes = [box_widths(s) for s in (1.0, 4.0, 4.0)]  # σ 4 px in-plane, 4 · 0.5 / 2 = 1 px in z
    assert smooth.smoothing_boxes == tuple(tuple(b) for b in boxes)
    to_p = torch.sigmoid if mode == "multilabel" else (lambda y: torch.softmax(y, dim=1))
    p = to_p(raw).numpy()
    want = p.copy()
    for axis, widths in enumerate(boxes):
        for w in widths:
            want[:, :2] = ndi.uniform_filter1d(want[:, :2], w, axis=2 + axis, mode="nearest")
    if mode == "exclusive":
        want /= want.sum(axis=1, keepdims=True)
    else:
        np.testing.assert_allclose(to_p(got).numpy()[:, 2], p[:, 2], rtol=1e-4, atol=1e-6)  # thin: as it was
    np.testing.assert_allclose(to_p(got).numpy(), want, rtol=1e-4, atol=1e-6)
    assert np.abs(to_p(got).numpy() - p).max() > 1e-3  # it did smooth
    smooth.train(), plain.train()
    torch.testing.assert_close(smooth(x), plain(x))


@pytest.mark.parametrize("mode", ["exclusive", "multilabel"])
def test_training_counts_which_classes_form_regions(mode):
    """The running ``region_share``: each training forward moves it towards the share of each
    class's pixels that the smoothing would leave to it. Two half planes are regions (near 1);
    a line two pixels wide is thin (near 0); a class the batches never predict stays where it
    was. Weights saved before the share existed load with every class a region."""
    cfg = TrainConfig(mode=mode, n_classes=4, features=(4, 8), output_smoothing=4.0)
    model = model_from_config(cfg)
    labels = np.zeros((64, 64), np.int64)
    labels[:, 32:] = 1
    labels[:, 40:42] = 2  # a thin line inside the right half
    logits = torch.from_numpy(np.eye(4)[labels].transpose(2, 0, 1)[None] * 20.0 - 10.0).float()
    for _ in range(100):
        model._count_regions(logits)
    share = model.region_share.numpy()
    assert share[0] > 0.9 and share[1] > 0.9 and share[2] < 0.1 and share[3] == 1.0
    model.eval()
    with torch.no_grad():  # the line survives prediction; smoothed as a region it would not
        kept = model.smooth(logits)
        model.region_share.fill_(1.0)
        lost = model.smooth(logits)
    decided = (kept[0] > 0).numpy() if mode == "multilabel" else np.eye(4, dtype=bool)[kept[0].argmax(0).numpy()].transpose(2, 0, 1)
    assert decided[2].sum() == (labels == 2).sum()
    lost_line = (lost[0, 2] > 0).numpy() if mode == "multilabel" else (lost[0].argmax(0) == 2).numpy()
    assert lost_line.sum() == 0
    fresh = model_from_config(cfg)
    fresh.load_state_dict({k: v for k, v in model.state_dict().items() if k != "region_share"})
    assert torch.equal(fresh.region_share, torch.ones(4))


def test_multilabel_smoothing_keeps_a_mosaic_of_two_channels_present():
    """Multi-label: a region the network fills with a fine mosaic of two channels (a third of
    it each, the rest unsure) is present all over after the smoothing, where each channel
    smoothed alone stays below a half; the empty half of the image stays absent in both."""
    cfg = TrainConfig(mode="multilabel", n_classes=2, features=(4, 8), output_smoothing=4.0)
    model = model_from_config(cfg).eval()
    yy, xx = np.mgrid[:64, :64]
    tile = (yy // 3 + xx // 3) % 3  # thirds: the first channel, the second, neither quite
    first, second, unsure = ((tile == k) & (xx >= 32) for k in range(3))
    logits = np.stack([first, second])[None] * 20.0 - 10.0
    logits[:, :, unsure] = -1.0  # both channels at 0.27
    logits = torch.from_numpy(logits).float()
    with torch.no_grad():
        out = model.smooth(logits)[0].numpy() > 0
        plain_q = model._box_smooth(torch.sigmoid(logits))[0].numpy()
    inner = (slice(8, 56), slice(44, 60))  # away from the region's edge
    assert (plain_q[(slice(None), *inner)] <= 0.5).all(axis=0).any()  # smoothed alone: holes
    assert out[(slice(None), *inner)].any(axis=0).all()  # lifted: some channel everywhere
    assert not out[:, :, :24].any()  # the empty half stays absent


def test_textures_smooth_the_predictions_and_old_runs_do_not(tmp_path):
    """*textures* comes with :data:`TEXTURE_SMOOTHING`; without it none; a run written before the
    setting existed loads with none; the tiles of a prediction reach far enough for it (tiled
    and whole-image predictions agree)."""
    from segstudio.core.config import TEXTURE_SMOOTHING

    lab = np.zeros((40, 40), np.uint8)
    lab[0:2] = 1
    lab[20:22, 5:30] = 2
    assert infer_config((40, 40), lab, "exclusive", textures=True).output_smoothing == TEXTURE_SMOOTHING > 0
    assert infer_config((40, 40), lab, "exclusive").output_smoothing == 0.0
    assert infer_config((40, 40), lab, "exclusive", textures=True, output_smoothing=0.0).output_smoothing == 0.0
    cfg = TrainConfig(n_classes=2, features=(4, 8), output_smoothing=5.0)
    data = cfg.to_dict()
    del data["output_smoothing"]
    assert TrainConfig.from_dict(data).output_smoothing == 0.0
    with pytest.raises(UserInputError, match="output_smoothing"):
        TrainConfig(n_classes=2, output_smoothing=-1.0)
    torch.manual_seed(0)
    model = model_from_config(cfg)
    save_run(tmp_path / "run", cfg, model)
    loaded = load_run(tmp_path / "run")
    assert loaded.config.output_smoothing == 5.0 and loaded.model.smoothing_boxes
    img = np.random.default_rng(0).random((150, 170), dtype=np.float32)
    whole = Predictor(loaded.model, loaded.config, device="cpu").predict(img, probabilities=True)
    tiled = Predictor(loaded.model, loaded.config, device="cpu").predict(img, probabilities=True, tile=(64, 64))
    np.testing.assert_allclose(tiled.probabilities, whole.probabilities, atol=1e-5)


def test_a_trained_run_keeps_its_counted_region_shares(tmp_path, two_strokes):
    """The trainer's steps count ``region_share``, and the saved run (the averaged weights that
    predict) carries the counts."""
    image, paint, source = two_strokes(48)
    cfg = infer_config(image.shape, paint, "exclusive", iterations=6, patch_size=(32, 32), batch_size=2,
                       features=(4, 8), seed=0, num_threads=1, textures=True)
    assert cfg.output_smoothing > 0
    events = list(train(cfg, source, tmp_path / "run"))
    assert isinstance(events[-1], Finished)
    share = load_run(tmp_path / "run").model.region_share
    assert share.shape == (2,) and not torch.equal(share, torch.ones(2))  # counted, and averaged
    assert ((share >= 0) & (share <= 1)).all()
