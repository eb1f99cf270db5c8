"""Lazy images: arrays that stay on disk (memmaps, zarr arrays) read one block at a time.

:func:`segstudio.core.io.read_image` with ``lazy=True`` returns such arrays. The helpers here
read blocks of them without keeping their pages resident (:func:`read_block`,
:func:`release_pages`), compute the normalisation statistics from a strided sample
(:func:`strided_stats`), and present a normalised ``(C, *spatial)`` float32 view that is
normalised on read (:class:`NormalizedView`), which the predictor reads tile by tile.
"""

from __future__ import annotations

import mmap
from collections.abc import Sequence
from typing import Any

import numpy as np

from segstudio.core.data import (
    DEFAULT_PERCENTILES,
    LEVEL_QUANTILE,
    MAX_STATS_SAMPLES,
    Normalization,
    check_level_slices,
    finite_percentiles,
    slice_offsets,
)

__all__ = ["NormalizedView", "is_in_memory", "read_block", "release_pages", "strided_stats"]


def is_in_memory(array: Any) -> bool:
    """True for a plain in-memory numpy array (not a memmap, not a zarr/dask array)."""
    return isinstance(array, np.ndarray) and not isinstance(array, np.memmap)


def release_pages(array: Any) -> None:
    """Flush a memmap and drop its pages from this process's resident memory.

    File-backed pages of a memory map count in the process's RSS until the kernel evicts
    them; reading or writing a whole volume through a map would make the RSS grow with the
    volume. After ``madvise(MADV_DONTNEED)`` the data is still in the file (and usually the
    page cache) but no longer resident in this process. No-op for other arrays.
    """
    mm = getattr(array, "_mmap", None)
    if not isinstance(mm, mmap.mmap):
        return
    try:
        if getattr(array, "mode", "r") != "r" and not mm.closed:
            mm.flush()
        if hasattr(mmap, "MADV_DONTNEED"):
            mm.madvise(mmap.MADV_DONTNEED)
    except (ValueError, OSError):  # closed map or a platform without madvise
        pass


def read_block(image: Any, index: tuple[slice, ...]) -> np.ndarray:
    """``image[index]`` as an in-memory array; memmap pages are released afterwards."""
    block = image[index]
    if isinstance(block, np.memmap):
        block = np.array(block)  # a copy, so the memmap pages can go
        release_pages(image)
    return np.asarray(block)


def strided_stats(
    image: Any,
    channel_axis: int | None = None,
    percentiles: tuple[float, float] = DEFAULT_PERCENTILES,
    *,
    level_slices: bool = False,
    max_samples: int = MAX_STATS_SAMPLES,
) -> Normalization:
    """Percentile statistics per channel from a strided sample of a (lazy) image.

    The same stride ``s`` is used on every spatial axis, chosen so that about
    ``max_samples`` voxels per channel are read (``s = ceil((n / max_samples) ** (1/d))``);
    reading goes plane by plane along the first spatial axis, so memory stays at one strided
    plane. NaN/inf are ignored, a constant image gets ``hi = lo + 1`` (as
    :func:`segstudio.core.data.image_stats`). For images of at most ``max_samples`` voxels
    per channel every voxel is used, so the result equals ``image_stats``.

    ``level_slices`` (volumes only): every plane is read (with the in-plane stride that keeps
    about ``max_samples`` voxels in all) for its level, and the offsets of
    :func:`segstudio.core.data.slice_offsets` are returned with ``lo``/``hi`` of the levelled
    sample.
    """
    shape = tuple(int(n) for n in image.shape)
    ndim = len(shape)
    ch_axis = None if channel_axis is None else channel_axis % ndim
    spatial_axes = [a for a in range(ndim) if a != ch_axis]
    n_vox = int(np.prod([shape[a] for a in spatial_axes], dtype=np.int64))
    d = len(spatial_axes)
    first = spatial_axes[0]
    if level_slices:
        check_level_slices(d)
        per_plane = max(1, max_samples // shape[first])
        plane = n_vox // shape[first]
        stride = max(1, int(np.ceil((plane / per_plane) ** (1.0 / (d - 1))))) if plane > per_plane else 1
        plane_step = 1
    else:
        stride = max(1, int(np.ceil((n_vox / max_samples) ** (1.0 / d)))) if n_vox > max_samples else 1
        plane_step = stride
    n_ch = 1 if ch_axis is None else shape[ch_axis]
    parts: list[list[np.ndarray]] = [[] for _ in range(n_ch)]
    for i in range(0, shape[first], plane_step):
        index = [slice(None, None, stride)] * ndim
        index[first] = slice(i, i + 1)
        if ch_axis is not None:
            index[ch_axis] = slice(None)
        block = read_block(image, tuple(index))
        block = block[None] if ch_axis is None else np.moveaxis(block, ch_axis, 0)
        for c in range(n_ch):
            v = block[c].reshape(-1).astype(np.float64)
            parts[c].append(v[np.isfinite(v)])
    lo: list[float] = []
    hi: list[float] = []
    offsets: list[tuple[float, ...]] = []
    for c in range(n_ch):
        if level_slices:
            levels = [np.percentile(v, LEVEL_QUANTILE) if v.size else np.nan for v in parts[c]]
            off = slice_offsets(levels)
            offsets.append(off)
            parts[c] = [v - o for v, o in zip(parts[c], off)]
        vals = np.concatenate(parts[c]) if parts[c] else np.empty(0)
        a, b = finite_percentiles(vals, percentiles)
        lo.append(a)
        hi.append(b)
    return Normalization(percentiles=tuple(percentiles), lo=tuple(lo), hi=tuple(hi),  # type: ignore[arg-type]
                         offsets=tuple(offsets))


class NormalizedView:
    """A lazy ``(C, *spatial)`` float32 view of an image, normalised on read.

    Parameters
    ----------
    image
        The raw image (numpy array, memmap or zarr array), any dtype.
    channel_axis
        Axis of the channels in ``image`` (``None``: one channel).
    stats
        Percentile statistics (``lo``/``hi`` per channel).
    region
        Spatial slices (with step 1) the view covers; ``None``: the whole image.

    Slicing with ``view[(slice(None), *spatial_slices)]`` reads only that part of ``image``,
    applies the normalisation per channel (:meth:`~segstudio.core.data.Normalization.subtract`,
    as :func:`segstudio.core.data.normalize`; NaN/inf → 0) and releases memmap pages afterwards.
    """

    def __init__(
        self,
        image: Any,
        channel_axis: int | None,
        stats: Normalization,
        region: Sequence[slice] | None = None,
    ) -> None:
        self.image = image
        self.channel_axis = None if channel_axis is None else channel_axis % len(image.shape)
        self.stats = stats
        full = [int(n) for i, n in enumerate(image.shape) if i != self.channel_axis]
        if region is None:
            region = tuple(slice(0, n) for n in full)
        self.region = tuple(slice(*s.indices(n)[:2]) for s, n in zip(region, full))
        channels = 1 if self.channel_axis is None else int(image.shape[self.channel_axis])
        self.shape = (channels, *(s.stop - s.start for s in self.region))
        self.dtype = np.dtype(np.float32)
        self.ndim = len(self.shape)

    def __getitem__(self, key: tuple[slice, ...]) -> np.ndarray:
        if not isinstance(key, tuple):
            key = (key,)
        if key and key[0] != slice(None):
            raise IndexError("NormalizedView: the channel axis must be taken whole (slice(None))")
        spatial_key = list(key[1:]) + [slice(None)] * (self.ndim - len(key))
        index: list[slice] = []
        for sl, reg in zip(spatial_key, self.region):
            a, b, step = sl.indices(reg.stop - reg.start)
            if step != 1:
                raise IndexError("NormalizedView supports contiguous slices only")
            index.append(slice(reg.start + a, reg.start + b))
        if self.channel_axis is not None:
            index.insert(self.channel_axis, slice(None))
        raw = read_block(self.image, tuple(index))
        chw = raw[None] if self.channel_axis is None else np.moveaxis(raw, self.channel_axis, 0)
        first = index[0 if self.channel_axis != 0 else 1].start
        return self.stats.subtract(chw.astype(np.float32, copy=True), first)
