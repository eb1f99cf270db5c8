"""Out-of-core prediction: lazy inputs read tile by tile, outputs written band by band.

A volume of tens of GB never has to fit in memory:

* the input is any lazy array segstudio's :func:`~segstudio.core.io.read_image` returns with
  ``lazy=True`` (a zarr array for OME-Zarr and compressed TIFF, a :class:`numpy.memmap` for
  uncompressed TIFF, ``.npy`` and ``.nii``). :class:`~segstudio.core.lazy.NormalizedView`
  normalises it on read, one tile at a time;
* the normalisation statistics come from :func:`~segstudio.core.lazy.strided_stats`, a
  strided sample of the volume (about :data:`~segstudio.core.data.MAX_STATS_SAMPLES` voxels
  per channel, read plane by plane), unless the caller passes statistics (e.g. the run's
  stored ones);
* the predictor (:func:`segstudio.core.predictor.iter_predict_normalized`) writes each band of
  finished rows into an :class:`OutputArray`: an OME-Zarr store (chunked, written chunk row
  by chunk row) or an uncompressed TIFF / ``.npy`` written through a memory map whose pages
  are flushed and released after every band.

Peak memory is then one tile (its input and the network's activations, sized by the memory
budget, see :func:`~segstudio.core.predictor.max_tile_voxels`) plus one band of output rows and
one chunk row of the output, independent of the volume's depth. The output is written under
a temporary name and moved into place when complete (:mod:`segstudio.core.atomic`), so a
cancelled or failed prediction leaves no half-written file, and an existing output is only
replaced by one of its own kind.
"""

from __future__ import annotations

import os
import pathlib
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import tifffile

from segstudio.core.annotations import MULTILABEL
from segstudio.core.atomic import (
    check_replaceable_folder,
    commit_file,
    remove_temporary,
    swap_folder,
    temporary_path,
)
from segstudio.core.data import Normalization
from segstudio.core.errors import UserInputError
from segstudio.core.io import create_ome_zarr, is_zarr_store
from segstudio.core.lazy import release_pages, strided_stats
from segstudio.core.predictor import PredictResult, Predictor

__all__ = [
    "OUTPUT_FORMATS",
    "OutputArray",
    "Written",
    "iter_predict_to_file",
    "open_output",
    "output_axes",
]

#: Formats an out-of-core prediction can be written to (lower-case suffix).
OUTPUT_FORMATS: tuple[str, ...] = (".zarr", ".tif", ".tiff", ".npy")

#: Spatial chunk edge of out-of-core OME-Zarr outputs (2D, 3D). One chunk row along the
#: first spatial axis is buffered before it is written, so this bounds that buffer.
OUTPUT_CHUNK_2D = 512
OUTPUT_CHUNK_3D = 64

#: What a ``.zarr`` output folder must be for an existing one to be replaced.
ZARR_STORE = "Zarr store"

#: TIFF files larger than this are written as BigTIFF (classic TIFF offsets are 32-bit).
BIGTIFF_BYTES = 2**32 - 2**25


class _RowBuffer:
    """Collects rows written along ``axis`` and flushes whole chunk rows to a zarr array.

    Writing a band that covers a fraction of a chunk would make zarr read, modify and
    re-write that chunk each time; buffering until a chunk row is complete writes every
    chunk once.
    """

    def __init__(self, array: Any, axis: int) -> None:
        self.array = array
        self.axis = axis
        self.rows = int(array.chunks[axis])
        self.start = 0
        self.buffer = np.zeros(
            tuple(self.rows if i == axis else n for i, n in enumerate(array.shape)), dtype=array.dtype
        )
        self.filled = 0

    def write(self, key: tuple[slice, ...], value: np.ndarray) -> None:
        sl = key[self.axis]
        a, b = sl.start, sl.stop
        if a != self.start + self.filled:
            raise ValueError(f"rows must be written in order: expected {self.start + self.filled}, got {a}")
        value = np.asarray(value)
        while a < b:
            take = min(b - a, self.rows - self.filled)
            dst = [slice(None)] * self.buffer.ndim
            dst[self.axis] = slice(self.filled, self.filled + take)
            src = [slice(None)] * value.ndim
            src[self.axis] = slice(a - sl.start, a - sl.start + take)
            self.buffer[tuple(dst)] = value[tuple(src)]
            self.filled += take
            a += take
            if self.filled == self.rows or self.start + self.filled == self.array.shape[self.axis]:
                self.flush()

    def flush(self) -> None:
        if not self.filled:
            return
        dst = [slice(None)] * self.buffer.ndim
        dst[self.axis] = slice(self.start, self.start + self.filled)
        src = [slice(None)] * self.buffer.ndim
        src[self.axis] = slice(0, self.filled)
        self.array[tuple(dst)] = self.buffer[tuple(src)]
        self.start += self.filled
        self.filled = 0


class OutputArray:
    """An output being written band by band under a temporary name; see :func:`open_output`.

    Index it like a numpy array (``out[key] = value``, rows in increasing order along the
    first spatial axis), then :meth:`commit` (move into place) or :meth:`abort` (delete).
    Also a context manager: leaving the ``with`` block on an exception aborts.
    """

    def __init__(self, final: pathlib.Path, tmp: pathlib.Path, array: Any, row_axis: int) -> None:
        self.path = final
        self._tmp = tmp
        self._array = array
        self.shape = tuple(array.shape)
        self.dtype = np.dtype(array.dtype)
        self._buffer = _RowBuffer(array, row_axis) if hasattr(array, "chunks") and not isinstance(
            array, np.ndarray) else None

    def __setitem__(self, key: tuple[slice, ...], value: np.ndarray) -> None:
        if self._buffer is not None:
            self._buffer.write(key, value)
        else:
            self._array[key] = value
            release_pages(self._array)

    def __getitem__(self, key: Any) -> np.ndarray:
        return np.asarray(self._array[key])

    def commit(self) -> pathlib.Path:
        """Finish writing and move the file (or store) to its final name (atomically)."""
        if self._buffer is not None:
            self._buffer.flush()
        if isinstance(self._array, np.memmap):
            self._array.flush()
        self._array = None
        if self._tmp.is_dir():
            return swap_folder(self._tmp, self.path, is_expected=is_zarr_store, what=ZARR_STORE)
        return commit_file(self._tmp, self.path)

    def abort(self) -> None:
        """Delete the partial output."""
        self._array = None
        remove_temporary(self._tmp)

    def __enter__(self) -> OutputArray:
        return self

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        if exc_type is not None and self._tmp.exists():
            self.abort()


def _suffix(path: pathlib.Path) -> str:
    name = path.name.lower()
    for ext in (".ome.tiff", ".ome.tif"):
        if name.endswith(ext):
            return ".tif"
    return path.suffix.lower()


def open_output(
    path: str | os.PathLike[str],
    shape: Sequence[int],
    dtype: np.dtype | type,
    *,
    axes: str | None = None,
    spacing: Sequence[float] | None = None,
) -> OutputArray:
    """Create an empty on-disk array to predict into, under a temporary name.

    Parameters
    ----------
    path
        ``.zarr`` (OME-Zarr, NGFF 0.4, array ``"0"``, as :func:`segstudio.core.io.write_image`
        writes), ``.tif``/``.tiff`` (uncompressed, ImageJ hyperstack for uint8/uint16/float32,
        BigTIFF when over 4 GB) or ``.npy``.
    shape, dtype
        Of the array to write.
    axes, spacing
        Axis letters (``"ZYX"``, ``"CZYX"``, ...) and spatial voxel size, stored as metadata.
    """
    final = pathlib.Path(path).expanduser()
    suffix = _suffix(final)
    if suffix not in OUTPUT_FORMATS:
        raise UserInputError(
            f"cannot write '{final}' out of core: expected one of {', '.join(OUTPUT_FORMATS)}"
        )
    if suffix == ".zarr":
        check_replaceable_folder(final, is_zarr_store, ZARR_STORE)  # before hours of predicting
    elif final.is_dir():
        raise UserInputError(f"cannot write '{final}': a folder with this name exists")
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserInputError(f"cannot write '{final}': {e.strerror or e}") from e
    tmp = temporary_path(final, suffix)
    shape = tuple(int(n) for n in shape)
    dt = np.dtype(dtype)
    axes = axes or {2: "YX", 3: "ZYX", 4: "CZYX"}.get(len(shape))
    row_axis = next((i for i, a in enumerate(axes or "") if a in "ZYX"), 0)
    try:
        if suffix == ".zarr":
            edge = OUTPUT_CHUNK_2D if sum(a in "ZYX" for a in axes or "") <= 2 else OUTPUT_CHUNK_3D
            chunks = tuple(min(n, edge) if a in "ZYX" else 1 for n, a in zip(shape, axes or ""))
            array = create_ome_zarr(tmp, shape, dt, axes, None if spacing is None else tuple(spacing),
                                    chunks=chunks or None)
        elif suffix == ".npy":
            array = np.lib.format.open_memmap(tmp, mode="w+", dtype=dt, shape=shape)
        else:
            array = _tiff_memmap(tmp, shape, dt, axes, spacing)
    except UserInputError:
        raise
    except OSError as e:
        remove_temporary(tmp)
        raise UserInputError(f"cannot write '{final}': {e.strerror or e}") from e
    return OutputArray(final, tmp, array, row_axis)


def _tiff_memmap(tmp: pathlib.Path, shape: tuple[int, ...], dtype: np.dtype, axes: str | None,
                 spacing: Sequence[float] | None) -> np.memmap:
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    kwargs: dict[str, Any] = {}
    sp = list(spacing) if spacing is not None else []
    if len(sp) >= 2 and all(s > 0 for s in sp[-2:]):
        kwargs["resolution"] = (1.0 / sp[-1], 1.0 / sp[-2])
    imagej = dtype in (np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.float32)) and (
        nbytes < BIGTIFF_BYTES and axes in ("YX", "ZYX", "CYX"))
    if imagej:  # what write_image writes for these axes and dtypes
        meta: dict[str, Any] = {"axes": axes, "unit": "um"}
        if len(sp) == 3:
            meta["spacing"] = float(sp[0])
        return tifffile.memmap(os.fspath(tmp), shape=shape, dtype=dtype, imagej=True, metadata=meta,
                               **kwargs)
    return tifffile.memmap(os.fspath(tmp), shape=shape, dtype=dtype, bigtiff=nbytes >= BIGTIFF_BYTES,
                           metadata={"axes": axes or ""}, **kwargs)


@dataclass(frozen=True)
class Written:
    """An out-of-core prediction finished: where its files are."""

    labels: str
    probabilities: str | None
    seconds: float


def output_axes(meta_axes: str | None, n_spatial: int, leading_classes: bool) -> str:
    """Axis letters of a prediction written for an image with axes ``meta_axes``."""
    spatial = "".join(a for a in (meta_axes or "").upper() if a in "ZYX")
    if len(spatial) != n_spatial:
        spatial = "ZYX"[-n_spatial:]
    return ("C" if leading_classes else "") + spatial


def iter_predict_to_file(
    predictor: Predictor,
    image: Any,
    labels_path: str | os.PathLike[str],
    *,
    channel_axis: int | None = None,
    probabilities_path: str | os.PathLike[str] | None = None,
    axes: str | None = None,
    spacing: Sequence[float] | None = None,
    stats: Normalization | None = None,
    **kwargs: Any,
) -> Iterator[Any]:
    """Predict ``image`` (lazy or not) straight into files, band by band.

    Parameters
    ----------
    predictor
        A :class:`segstudio.core.predictor.Predictor`.
    image
        The raw image; a zarr array or memmap is read one tile at a time.
    labels_path, probabilities_path
        Outputs (:data:`OUTPUT_FORMATS`); probabilities (``float32 (K, *spatial)``) only when
        a path is given.
    axes, spacing
        The image's axis letters and spatial voxel size, kept in the outputs' metadata.
    stats
        Normalisation statistics; ``None``: :func:`~segstudio.core.lazy.strided_stats` of ``image`` by the run's
        rule (its percentiles and *level slices*: the per-image rule used in training). Pass the run's stored
        ``config.normalization`` to reuse the training image's statistics instead.
    **kwargs
        ``tta``, ``tile``, ``tile_batch`` as in ``Predictor.iter_predict``.

    Yields
    ------
    :class:`~segstudio.core.predictor.PredictProgress` after each batch of tiles, then one
    :class:`Written`. Closing the generator early (cancel) or an error deletes the partial outputs.
    """
    t0 = time.perf_counter()
    cfg = predictor.config
    spatial = predictor.check_image(image, channel_axis)
    multilabel = cfg.mode == MULTILABEL
    k = cfg.n_classes
    shape = ((k,) if multilabel else ()) + tuple(spatial)
    dtype = np.uint8 if multilabel or k < 255 else np.uint16
    if stats is None:
        stats = strided_stats(image, channel_axis, cfg.percentiles, level_slices=cfg.level_slices)
    out_axes = output_axes(axes, len(spatial), multilabel)
    with open_output(labels_path, shape, dtype, axes=out_axes, spacing=spacing) as labels_out:
        probs_out = None
        if probabilities_path is not None:
            probs_out = open_output(probabilities_path, (k, *spatial), np.float32,
                                    axes=output_axes(axes, len(spatial), True), spacing=spacing)
        try:
            for ev in predictor.iter_predict(
                image, channel_axis, stats=stats, probabilities=probs_out is not None,
                labels_out=labels_out, probabilities_out=probs_out, **kwargs,
            ):
                if not isinstance(ev, PredictResult):
                    yield ev
        except BaseException:
            if probs_out is not None:
                probs_out.abort()
            labels_out.abort()
            raise
        written = labels_out.commit()
        pwritten = None if probs_out is None else probs_out.commit()
    yield Written(os.fspath(written), None if pwritten is None else os.fspath(pwritten),
                  time.perf_counter() - t0)
