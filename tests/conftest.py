"""Shared fixtures: tiny images with strokes, tiny model settings for GUI tests."""

from __future__ import annotations

import numpy as np
import pytest

#: TrainConfig overrides that make GUI training runs take well under a second per dozen steps.
TINY_TRAINING = {
    "features": (4, 8),
    "batch_size": 2,
    "warmup": 2,
    "amp": False,
    "device": "cpu",
    "seed": 0,
    "preview_every_s": 0.2,
    "checkpoint_every_s": 3600.0,
}


@pytest.fixture
def tiny_training() -> dict:
    return dict(TINY_TRAINING)


def _tiny(ndim: int, seed: int = 1, depth: int = 8, name: str | None = None):
    from segstudio.core.samples import synthetic_nuclei

    if ndim == 2:
        s = synthetic_nuclei((64, 64), seed=seed, radius_range=(6.0, 10.0), name=name or "tiny2d")
    else:
        s = synthetic_nuclei((depth, 32, 32), seed=seed, spacing=(2.0, 1.0, 1.0), radius_range=(4.0, 7.0),
                             name=name or "tiny3d")
    return s


@pytest.fixture
def tiny2d():
    """64 x 64 synthetic nuclei: ``Sample`` with image, truth (1..3) and paintings."""
    return _tiny(2)


@pytest.fixture
def tiny3d():
    """8 x 32 x 32 synthetic nuclei volume (spacing 2, 1, 1)."""
    return _tiny(3)


@pytest.fixture
def tall3d():
    """40 x 32 x 32 synthetic nuclei volume (spacing 2, 1, 1): tall enough that a live preview
    of the current slab costs less than the whole volume."""
    return _tiny(3, depth=40, name="tall3d")


@pytest.fixture
def two_strokes():
    """A random ``size`` x ``size`` image with one stroke of class 1 and one of class 2, and a
    :class:`SnapshotSource` already holding them: ``make(size) -> (image, paint, source)``."""
    from segstudio.core.data import SnapshotSource, TrainingImage

    def make(size: int = 32):
        image = np.random.default_rng(0).random((size, size)).astype(np.float32)
        paint = np.zeros((size, size), np.uint8)
        paint[4, 4:12] = 1
        paint[20, 10:20] = 2
        source = SnapshotSource()
        source.put([TrainingImage(image, paint)])
        return image, paint, source

    return make


@pytest.fixture
def paintings_of():
    """Paint every ``step``-th pixel of the truth: all classes present, still sparse."""

    def make(truth: np.ndarray, step: int = 7) -> np.ndarray:
        out = np.zeros(truth.shape, dtype=np.uint8)
        flat = out.reshape(-1)
        flat[::step] = truth.reshape(-1)[::step]
        return out

    return make


@pytest.fixture(autouse=True)
def _segstudio_home(tmp_path_factory, monkeypatch):
    """Untitled autosaves of the app go to a temporary folder, never the user's home."""
    monkeypatch.setenv("SEGSTUDIO_HOME", str(tmp_path_factory.mktemp("segstudio-home")))


@pytest.fixture(autouse=True)
def _train_in_thread(request, monkeypatch):
    """The app trains in a child process where it can; most tests train in the app's own
    thread instead (a child costs seconds to start, and fault injection patches this
    process's trainer). Tests marked ``train_in_process`` run the app's default."""
    if request.node.get_closest_marker("train_in_process") is None:
        monkeypatch.setenv("SEGSTUDIO_TRAIN_IN", "thread")


@pytest.fixture
def disk_full_at(monkeypatch):
    """``restore = disk_full_at(name)``: every ``os.replace`` onto a file whose path ends with
    ``name`` fails with "No space left on device", until ``restore()`` or the test's end."""
    import os

    real = os.replace

    def arm(name: str):
        def full(src, dst):
            if str(dst).endswith(name):
                raise OSError(28, "No space left on device")
            return real(src, dst)

        monkeypatch.setattr(os, "replace", full)
        return lambda: monkeypatch.setattr(os, "replace", real)

    return arm


def _background_along_z(size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """A 10 × ``size`` × ``size`` volume whose background rises along z by 3 (the objects'
    contrast is 1: *level slices* on *auto* turns on), painted on slice 5: a background stroke
    along the top and an object stroke inside the square object. Returns ``(volume, paint)``."""
    rng = np.random.default_rng(0)
    vol = (10.0 + np.linspace(0, 3, 10, dtype=np.float32)[:, None, None]
           + rng.normal(0, 0.1, (10, size, size))).astype(np.float32)
    a, b = size // 4, size // 2
    vol[:, a:b, a:b] += 1.0
    paint = np.zeros(vol.shape, np.uint8)
    paint[5, 1:3, :] = 1
    paint[5, a + 2:b - 1, a + 2:b - 1] = 2
    return vol, paint


@pytest.fixture
def background_along_z():
    """``make(size=32) -> (volume, paint)``: a 10 × size × size volume whose background rises
    along z more than its object stands out (*level slices* on *auto* turns on), painted on
    slice 5 (:func:`_background_along_z`)."""
    return _background_along_z


def _spots_on_a_ramp(bright: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bright spots on a background that runs from dark (left) to brighter than the spots on
    the left (right): most background strokes lie on the bright right, the object strokes in
    two spots on the left, so the object paint's median is below the background paint's.
    ``bright``: the image mirrored (dark spots on a bright background). Returns ``(image,
    paint, spots)``."""
    y, x = np.mgrid[0:96, 0:192].astype(np.float32)
    img = 10.0 + 60.0 * x / 191.0
    spots = np.zeros(img.shape, bool)
    for cy, cx in ((30, 30), (66, 40), (30, 100), (66, 160)):
        spots |= ((y - cy) ** 2 + (x - cx) ** 2) <= 36
    img += 30.0 * spots
    img += np.random.default_rng(0).normal(0.0, 1.0, img.shape).astype(np.float32)
    if bright:
        img = 200.0 - img
    paint = np.zeros(img.shape, np.uint8)
    paint[5:7, 2:14] = 1  # a short stroke on the dark left
    paint[84:87, 120:186] = 1  # a long one on the bright right
    paint[29:32, 27:34] = 2
    paint[65:68, 37:44] = 2
    return img.astype(np.float32), paint, spots


@pytest.fixture
def spots_on_a_ramp():
    """``make(bright=False) -> (image, paint, spots)``: spots on a background that runs brighter
    than the spots elsewhere, most background strokes on its bright end (:func:`_spots_on_a_ramp`)."""
    return _spots_on_a_ramp


@pytest.fixture
def blurred_disk() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(image, paint, disk)``: a bright disk (radius 12) blurred into a dark background (σ 2 px,
    like a microscope's blur), with a noisy background; strokes: background far away, one
    stroke inside the disk."""
    from scipy import ndimage as ndi

    yy, xx = np.mgrid[:64, :64]
    disk = (yy - 32) ** 2 + (xx - 32) ** 2 <= 12 ** 2
    rng = np.random.default_rng(0)
    img = (ndi.gaussian_filter(disk * 50.0, 2.0) + 10.0 + rng.normal(0, 1.0, disk.shape)).astype(np.float32)
    paint = np.zeros(disk.shape, np.uint8)
    paint[2:5, 2:40] = 1
    paint[30:34, 26:38] = 2
    return img, paint, disk
