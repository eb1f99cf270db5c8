"""Tests for segstudio.core.samples: synthetic nuclei, simulated strokes, corrections."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from segstudio.core.samples import (
    BACKGROUND,
    BOUNDARY,
    INTERIOR,
    Sample,
    coins_sample,
    correction_strokes,
    instances_to_truth,
    sample_2d,
    sample_3d,
    simulate_strokes,
    synthetic_nuclei,
)

PAINTED_RANGE_2D = (0.003, 0.005)


@pytest.fixture(scope="module")
def s2d() -> Sample:
    return sample_2d(0)


@pytest.fixture(scope="module")
def s3d() -> Sample:
    return sample_3d(0)


def _check_sample(sample: Sample) -> None:
    assert sample.image.dtype == np.float32
    assert sample.truth.dtype == np.uint8
    assert sample.paintings.dtype == np.uint8
    assert sample.image.shape == sample.truth.shape == sample.paintings.shape
    assert set(np.unique(sample.truth)) == {BACKGROUND, INTERIOR, BOUNDARY}
    assert set(np.unique(sample.paintings)) <= {0, 1, 2, 3}
    painted = sample.paintings > 0
    np.testing.assert_array_equal(sample.paintings[painted], sample.truth[painted])
    assert np.all(np.isfinite(sample.image))
    assert len(sample.class_names) == 3


def test_sample_2d_shape_dtype_and_consistency(s2d: Sample) -> None:
    _check_sample(s2d)
    assert s2d.name == "nuclei2d"
    assert s2d.image.shape == (512, 512)
    assert s2d.spacing is None
    # camera-like counts, nuclei clearly brighter than background
    assert 50 < s2d.image.min() and s2d.image.max() < 65535
    nucleus = s2d.truth >= INTERIOR
    assert np.median(s2d.image[nucleus]) > 3 * np.median(s2d.image[~nucleus])


def test_sample_2d_has_nuclei_and_touching_ones(s2d: Sample) -> None:
    n_interiors = ndi.label(s2d.truth == INTERIOR)[1]
    n_objects = ndi.label(s2d.truth >= INTERIOR)[1]
    assert 25 <= n_interiors <= 45
    assert n_objects < n_interiors  # some nuclei touch and share a boundary


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_painted_fraction_2d(seed: int) -> None:
    sample = sample_2d(seed)
    fraction = float(np.mean(sample.paintings > 0))
    assert PAINTED_RANGE_2D[0] <= fraction <= PAINTED_RANGE_2D[1], fraction
    counts = np.bincount(sample.paintings.ravel(), minlength=4)
    assert np.all(counts[1:] > 0)  # every class painted


def test_background_strokes_mostly_away_from_nuclei(s2d: Sample) -> None:
    dist = ndi.distance_transform_edt(s2d.truth == BACKGROUND)
    bg = s2d.paintings == BACKGROUND
    assert np.mean(dist[bg] >= 5) > 0.6
    assert np.all(dist[bg] >= 1)


def test_determinism(s2d: Sample) -> None:
    again = sample_2d(0)
    np.testing.assert_array_equal(again.image, s2d.image)
    np.testing.assert_array_equal(again.truth, s2d.truth)
    np.testing.assert_array_equal(again.paintings, s2d.paintings)
    other = synthetic_nuclei((128, 128), seed=1)
    assert not np.array_equal(other.truth, synthetic_nuclei((128, 128), seed=2).truth)


def test_sample_3d(s3d: Sample) -> None:
    _check_sample(s3d)
    assert s3d.name == "nuclei3d"
    assert s3d.image.ndim == 3 and s3d.image.shape == (32, 96, 96)
    assert s3d.spacing == (2.0, 0.5, 0.5)
    # strokes are painted on a few z slices only
    painted_slices = np.flatnonzero((s3d.paintings > 0).any(axis=(1, 2)))
    assert 0 < len(painted_slices) < s3d.image.shape[0]
    assert 0.002 <= float(np.mean(s3d.paintings > 0)) <= 0.008
    # nuclei are flatter in voxels along z (anisotropic spacing)
    objs = ndi.find_objects(ndi.label(s3d.truth >= INTERIOR)[0])
    z_ext = np.median([o[0].stop - o[0].start for o in objs])
    x_ext = np.median([o[2].stop - o[2].start for o in objs])
    assert z_ext < x_ext


def test_small_3d_shape_and_determinism() -> None:
    a = synthetic_nuclei((30, 60, 60), spacing=(2.0, 0.5, 0.5), radius_range=(8, 12), seed=3)
    b = synthetic_nuclei((30, 60, 60), spacing=(2.0, 0.5, 0.5), radius_range=(8, 12), seed=3)
    assert a.image.shape == (30, 60, 60)
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.paintings, b.paintings)


def test_instances_to_truth_rim() -> None:
    inst = np.zeros((20, 30), dtype=np.int32)
    inst[5:15, 5:15] = 1
    inst[5:15, 15:25] = 2  # touching neighbour
    truth = instances_to_truth(inst, boundary_width=2)
    assert truth[0, 0] == BACKGROUND
    assert truth[10, 10] == INTERIOR and truth[10, 20] == INTERIOR
    assert truth[10, 5] == BOUNDARY and truth[10, 6] == BOUNDARY and truth[10, 7] == INTERIOR
    # the shared edge is boundary on both sides
    assert truth[10, 13] == BOUNDARY and truth[10, 14] == BOUNDARY and truth[10, 15] == BOUNDARY


def test_simulate_strokes_agree_with_truth(s2d: Sample) -> None:
    paint = simulate_strokes(s2d.truth, n_objects=3, n_background_strokes=4, seed=5)
    painted = paint > 0
    assert painted.any()
    np.testing.assert_array_equal(paint[painted], s2d.truth[painted])
    assert paint.dtype == np.uint8 and paint.shape == s2d.truth.shape


def _crude_prediction(sample: Sample) -> np.ndarray:
    """A threshold 'model' that misses dim nuclei and all boundaries."""
    threshold = np.percentile(sample.image, 90)
    return np.where(sample.image > threshold, INTERIOR, BACKGROUND).astype(np.uint8)


@pytest.mark.parametrize("which", ["2d", "3d"])
def test_correction_strokes(which: str, s2d: Sample, s3d: Sample) -> None:
    sample = s2d if which == "2d" else s3d
    prediction = _crude_prediction(sample)
    before = sample.paintings.copy()
    after = correction_strokes(sample.truth, prediction, sample.paintings, n_strokes=10, seed=0)
    np.testing.assert_array_equal(sample.paintings, before)  # input untouched
    assert after.dtype == np.uint8
    new = (after > 0) & (before == 0)
    assert new.any()
    np.testing.assert_array_equal(after[before > 0], before[before > 0])
    np.testing.assert_array_equal(after[new], sample.truth[new])
    assert np.all(prediction[new] != sample.truth[new])  # strokes go into wrong regions
    added = float(new.mean())
    if which == "2d":
        assert 0.002 <= added <= 0.004, added  # ~0.03 % per stroke, 0.3 % per round
        again = correction_strokes(sample.truth, prediction, after, n_strokes=10, seed=1)
        assert ((again > 0).sum()) > ((after > 0).sum())


def test_correction_strokes_largest_error_first() -> None:
    truth = np.full((64, 64), BACKGROUND, dtype=np.uint8)
    prediction = truth.copy()
    prediction[5:25, 5:25] = INTERIOR  # big false positive
    prediction[50:52, 50:52] = INTERIOR  # tiny one
    paint = correction_strokes(truth, prediction, np.zeros_like(truth), n_strokes=1, length=30)
    new = paint > 0
    assert new[5:25, 5:25].sum() == new.sum() >= 25
    assert np.all(paint[new] == BACKGROUND)


def test_coins_sample() -> None:
    sample = coins_sample()
    _check_sample(sample)
    assert sample.image.shape == (303, 384)
    assert 0.15 < float(np.mean(sample.truth >= INTERIOR)) < 0.5
