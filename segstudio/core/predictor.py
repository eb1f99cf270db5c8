"""Sliding-window inference with Gaussian importance blending (nnU-Net style).

Tiles of the training patch size are placed with ``overlap`` (default 0.5, i.e. a step of half
a patch), run through the model in batches, weighted by a Gaussian importance map
(σ = patch / 8) and accumulated band by band along the first spatial axis: only one band
(one tile height across the other axes) of logits and weights is in memory, and the rows no
later tile touches are finished and written to the output (in memory, or on disk for
out-of-core prediction, see :mod:`segstudio.core.outofcore`). Exclusive models give ``argmax + 1``
labels (1..K) and softmax probabilities; multilabel models give ``logits > 0`` per class and
sigmoid probabilities.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from segstudio.core.annotations import MULTILABEL
from segstudio.core.config import TrainConfig
from segstudio.core.data import Normalization, image_stats, normalize, spatial_shape
from segstudio.core.errors import UserInputError

DEFAULT_OVERLAP = 0.5
SIGMA_SCALE = 1.0 / 8
DEFAULT_TILE_BATCH = 4
#: Rows (along the first spatial axis) finished at a time when a band is written out.
FINISH_ROWS = 4

#: An output array: numpy array, :class:`numpy.memmap` or zarr array (written by slices).
ArrayLike = Any


@dataclass(frozen=True)
class PredictProgress:
    """``done`` of ``total`` tiles predicted."""

    done: int
    total: int


@dataclass(frozen=True)
class PredictResult:
    """Labels (and optionally probabilities) of the predicted region.

    ``labels``: exclusive ``uint8/uint16`` 1..K with the spatial shape; multilabel ``uint8``
    0/1 ``(K, *spatial)``. ``probabilities``: ``float32 (K, *spatial)`` or ``None``.
    ``region``: the slices (in image coordinates) that were predicted.
    """

    labels: np.ndarray
    probabilities: np.ndarray | None
    region: tuple[slice, ...]


def gaussian_importance(patch: Sequence[int], sigma_scale: float = SIGMA_SCALE) -> np.ndarray:
    """Gaussian importance map of the patch size, max 1, no zeros (float32)."""
    grids = []
    for n in patch:
        c = (n - 1) / 2.0
        sigma = max(n * sigma_scale, 1e-6)
        grids.append(np.exp(-0.5 * ((np.arange(n) - c) / sigma) ** 2))
    w = grids[0]
    for g in grids[1:]:
        w = np.multiply.outer(w, g)
    w = w / w.max()
    w = np.maximum(w, w[w > 0].min())
    return w.astype(np.float32)


def tile_starts(size: int, patch: int, overlap: float) -> list[int]:
    """Start offsets covering ``size`` with tiles of ``patch`` and the given overlap."""
    if size <= patch:
        return [0]
    step = max(int(patch * (1.0 - overlap)), 1)
    n = int(np.ceil((size - patch) / step)) + 1
    return [int(round(i * (size - patch) / (n - 1))) for i in range(n)] if n > 1 else [0]


def _expand_region(
    region: Sequence[slice] | None, shape: Sequence[int], patch: Sequence[int]
) -> tuple[tuple[slice, ...], tuple[slice, ...]]:
    """Region to compute (with half a patch of context) and the crop back to ``region``."""
    if region is None:
        full = tuple(slice(0, n) for n in shape)
        return full, tuple(slice(0, n) for n in shape)
    if len(region) != len(shape):
        raise UserInputError(f"region has {len(region)} axes, the image has {len(shape)}")
    ctx, crop = [], []
    for sl, n, p in zip(region, shape, patch):
        a, b, _ = sl.indices(n)
        if b <= a:
            raise UserInputError("the region to predict is empty")
        a2, b2 = max(a - p // 2, 0), min(b + p // 2, n)
        ctx.append(slice(a2, b2))
        crop.append(slice(a - a2, b - a2))
    return tuple(ctx), tuple(crop)


@torch.inference_mode()
def iter_predict_normalized(
    model: nn.Module,
    image: np.ndarray,
    config: TrainConfig,
    *,
    patch: Sequence[int] | None = None,
    overlap: float = DEFAULT_OVERLAP,
    tile_batch: int = DEFAULT_TILE_BATCH,
    device: torch.device | str | None = None,
    amp: torch.dtype | None = None,
    tta: bool = False,
    probabilities: bool = False,
    labels_out: ArrayLike | None = None,
    probabilities_out: ArrayLike | None = None,
) -> Iterator[PredictProgress | PredictResult]:
    """Sliding-window prediction of an already normalised ``(C, *spatial)`` array.

    Tiles are visited band by band along the first spatial axis. Only the band being
    predicted is held in memory (logits and weights of one tile height across the other
    axes); the rows no later tile can touch are finished (divided by the weights, arg-maxed)
    and written to the output, then released. So memory is bounded by one band, not by the
    image, and the output may live on disk.

    Parameters
    ----------
    image
        ``(C, *spatial)`` float32 array, or any array-like with ``shape`` whose slices
        return normalised float32 arrays (e.g. :class:`segstudio.core.outofcore.NormalizedView`
        over a lazy zarr/memmap image): it is read one band at a time.
    labels_out, probabilities_out
        Where to write the labels (shape of :attr:`PredictResult.labels`) and, with
        ``probabilities``, the probabilities (``(K, *spatial)``): numpy arrays, memmaps or
        zarr arrays, written band by band. ``None``: new in-memory arrays.

    Yields :class:`PredictProgress` after each batch of tiles and finally one
    :class:`PredictResult` (region = whole array) holding the outputs.
    """
    dev = torch.device(device) if device is not None else next(model.parameters()).device
    was_training = model.training
    model.eval()
    spatial = tuple(int(n) for n in image.shape[1:])
    p = tuple(int(x) for x in (patch or config.patch))
    # A tile never exceeds the image (the model pads small inputs itself).
    tile = tuple(min(a, b) for a, b in zip(p, spatial))
    importance = torch.from_numpy(gaussian_importance(tile)).to(dev)
    importance_np = importance.cpu().numpy()
    k = config.n_classes
    multilabel = config.mode == MULTILABEL
    lead = (slice(None),) if multilabel else ()
    if labels_out is None:
        dtype = np.uint8 if multilabel or k < 255 else np.uint16
        labels_out = np.zeros(((k,) if multilabel else ()) + spatial, dtype=dtype)
    if probabilities and probabilities_out is None:
        probabilities_out = np.zeros((k, *spatial), dtype=np.float32)
    band_starts = tile_starts(spatial[0], tile[0], overlap)
    inner = list(itertools.product(*(tile_starts(n, t, overlap) for n, t in zip(spatial[1:], tile[1:]))))
    total = len(band_starts) * len(inner)
    flips = _tta_flips(len(spatial)) if tta else [()]
    rows = tile[0]
    # acc/wsum hold rows [band_start, band_start + rows) of the logits and weights.
    acc = np.zeros((k, rows, *spatial[1:]), dtype=np.float32)
    wsum = np.zeros((rows, *spatial[1:]), dtype=np.float32)
    done = 0
    for bi, s0 in enumerate(band_starts):
        band = np.asarray(image[(slice(None), slice(s0, s0 + rows))], dtype=np.float32)
        # Even batches (9 tiles at most 4 a batch: 3+3+3, not 4+4+1): a lone tile runs
        # several times slower per voxel than a batch of them on a CPU.
        n_batches = -(-len(inner) // max(tile_batch, 1))
        bounds = [round(i * len(inner) / n_batches) for i in range(n_batches + 1)]
        for b0, b1 in zip(bounds[:-1], bounds[1:]):
            slices = [
                (slice(0, rows), *(slice(s, s + t) for s, t in zip(st, tile[1:])))
                for st in inner[b0:b1]
            ]
            x = torch.from_numpy(np.stack([band[(slice(None), *sl)] for sl in slices])).to(dev)
            out = None
            for axes in flips:
                xi = torch.flip(x, [a + 2 for a in axes]) if axes else x
                with torch.autocast(dev.type, dtype=amp, enabled=amp is not None):
                    y = model(xi).float()
                if axes:
                    y = torch.flip(y, [a + 2 for a in axes])
                out = y if out is None else out + y
            out = (out / len(flips)) * importance
            out_np = out.cpu().numpy()
            for j, sl in enumerate(slices):
                acc[(slice(None), *sl)] += out_np[j]
                wsum[sl] += importance_np
            done += len(slices)
            yield PredictProgress(done, total)
        del band
        # Rows before the next band's start are final: write them out and roll the buffers.
        nxt = band_starts[bi + 1] if bi + 1 < len(band_starts) else s0 + rows
        n_final = nxt - s0
        labels_band = np.empty(((k,) if multilabel else ()) + (n_final, *spatial[1:]), dtype=labels_out.dtype)
        probs_band = np.empty((k, n_final, *spatial[1:]), dtype=np.float32) if probabilities else None
        for r0 in range(0, n_final, FINISH_ROWS):  # a few rows at a time: small temporaries
            r1 = min(r0 + FINISH_ROWS, n_final)
            logits = acc[:, r0:r1] / wsum[None, r0:r1]
            if multilabel:
                labels_band[:, r0:r1] = logits > 0
                if probs_band is not None:
                    probs_band[:, r0:r1] = 1.0 / (1.0 + np.exp(-logits))
            else:
                labels_band[r0:r1] = np.argmax(logits, axis=0) + 1
                if probs_band is not None:
                    e = np.exp(logits - logits.max(axis=0, keepdims=True))
                    probs_band[:, r0:r1] = e / e.sum(axis=0, keepdims=True)
        labels_out[(*lead, slice(s0, nxt))] = labels_band
        if probs_band is not None:
            probabilities_out[:, s0:nxt] = probs_band
        del labels_band, probs_band
        keep = rows - n_final
        acc[:, :keep] = acc[:, n_final:]
        acc[:, keep:] = 0.0
        wsum[:keep] = wsum[n_final:]
        wsum[keep:] = 0.0
    if was_training:
        model.train()
    yield PredictResult(
        labels_out, probabilities_out if probabilities else None, tuple(slice(0, n) for n in spatial)
    )


def _tta_flips(nd: int) -> list[tuple[int, ...]]:
    """All combinations of flips over the spatial axes (identity first)."""
    axes = range(nd)
    return [c for r in range(nd + 1) for c in itertools.combinations(axes, r)]


def predict_normalized(model: nn.Module, image: np.ndarray, config: TrainConfig, **kwargs) -> PredictResult:
    """Run :func:`iter_predict_normalized` to the end and return its result."""
    result = None
    for ev in iter_predict_normalized(model, image, config, **kwargs):
        if isinstance(ev, PredictResult):
            result = ev
    assert result is not None
    return result


class Predictor:
    """A trained model plus its config, ready to predict images or regions.

    Parameters
    ----------
    model
        The network (``eval`` mode is set).
    config
        The run's config (classes, mode, patch, normalisation rule).
    device
        ``auto``/``cpu``/``cuda``/``mps``.
    amp
        Mixed precision on CUDA.
    """

    def __init__(self, model: nn.Module, config: TrainConfig, device: str = "auto", amp: bool = True) -> None:
        from segstudio.core.trainer import amp_dtype, resolve_device

        self.config = config
        self.device = resolve_device(device)
        self.amp = amp_dtype(self.device, amp)
        self.model = model.to(self.device).eval()

    @classmethod
    def from_run(cls, run_dir: str | os.PathLike[str], device: str = "auto") -> Predictor:
        """Load a run directory (weights read with ``weights_only=True``)."""
        from segstudio.core.run import load_run

        loaded = load_run(run_dir)
        return cls(loaded.model, loaded.config, device=device)

    def load_state(self, state_dict: dict[str, torch.Tensor]) -> None:
        """Swap in new weights (live previews while training).

        Raises
        ------
        UserInputError
            Weights of another model (other mode, class count or size).
        """
        try:
            self.model.load_state_dict(state_dict)
        except (RuntimeError, KeyError, TypeError) as e:
            raise UserInputError(
                f"these weights do not fit this model ({self.config.n_classes} {self.config.mode} classes, "
                f"features {self.config.features}): {str(e).splitlines()[0]}"
            ) from e
        self.model.eval()

    def check_image(self, image: np.ndarray, channel_axis: int | None) -> tuple[int, ...]:
        """Validate rank and channels against the model; returns the spatial shape."""
        cfg = self.config
        shape = tuple(image.shape)
        if channel_axis is not None and not -len(shape) <= channel_axis < len(shape):
            raise UserInputError(f"channel axis {channel_axis} is out of range for shape {shape}")
        spatial = spatial_shape(shape, channel_axis)
        channels = 1 if channel_axis is None else shape[channel_axis]
        if len(spatial) != cfg.spatial_dims:
            raise UserInputError(
                f"this model was trained on {cfg.spatial_dims}D images; got a {len(spatial)}D image "
                f"of shape {shape}" + ("" if channel_axis is not None else " (is there a channel axis?)")
            )
        if channels != cfg.in_channels:
            raise UserInputError(
                f"this model expects {cfg.in_channels} channel(s); the image has {channels}"
            )
        return spatial

    def iter_predict(
        self,
        image: np.ndarray,
        channel_axis: int | None = None,
        *,
        region: Sequence[slice] | None = None,
        stats: Normalization | None = None,
        overlap: float = DEFAULT_OVERLAP,
        tta: bool = False,
        probabilities: bool = False,
        tile_batch: int = DEFAULT_TILE_BATCH,
        labels_out: ArrayLike | None = None,
        probabilities_out: ArrayLike | None = None,
    ) -> Iterator[PredictProgress | PredictResult]:
        """Predict an image (or a ``region`` of it, with context), yielding progress.

        Parameters
        ----------
        image
            Raw image (any dtype) with ``channel_axis`` if it has channels.
        region
            Spatial slices to predict (the GUI's visible box or slice); ``None`` = everything.
        stats
            Normalisation statistics to use; ``None`` computes them from ``image`` with the
            run's percentiles (the per-image rule used in training); for a lazy image
            (zarr, memmap) from a strided sample (:func:`~segstudio.core.outofcore.strided_stats`).
        labels_out, probabilities_out
            Arrays to write the whole-image result into band by band (e.g. an
            :class:`~segstudio.core.outofcore.OutputArray` on disk, or a viewer layer's data);
            only with ``region=None``.

        The image is read one band of tiles at a time, so a lazy image is never loaded
        whole; with on-disk outputs peak memory is bounded by one band
        (see :mod:`segstudio.core.outofcore`).
        """
        from segstudio.core.outofcore import NormalizedView, is_in_memory, strided_stats

        spatial = self.check_image(image, channel_axis)
        if stats is not None:
            norm = stats
        elif is_in_memory(image):
            norm = image_stats(image, channel_axis, self.config.percentiles)
        else:  # lazy (zarr, memmap): a strided sample, read plane by plane
            norm = strided_stats(image, channel_axis, self.config.percentiles)
        ctx, crop = _expand_region(region, spatial, self.config.patch)
        if (labels_out is not None or probabilities_out is not None) and region is not None:
            raise ValueError("labels_out/probabilities_out need region=None (the whole image)")
        # Read lazily (zarr/memmap stay on disk): one band of tiles of the region at a time.
        x = NormalizedView(image, channel_axis, norm, ctx)
        for ev in iter_predict_normalized(
            self.model, x, self.config, overlap=overlap, tile_batch=tile_batch,
            device=self.device, amp=self.amp, tta=tta, probabilities=probabilities,
            labels_out=labels_out, probabilities_out=probabilities_out,
        ):
            if isinstance(ev, PredictResult) and region is None:
                yield ev
            elif isinstance(ev, PredictResult):
                lead = (slice(None),) if self.config.mode == MULTILABEL else ()
                labels = ev.labels[(*lead, *crop)]
                probs = None if ev.probabilities is None else ev.probabilities[(slice(None), *crop)]
                out_region = tuple(
                    slice(c.start + r.start, c.start + r.stop) for c, r in zip(ctx, crop)
                )
                yield PredictResult(np.ascontiguousarray(labels), probs, out_region)
            else:
                yield ev

    def predict(self, image: np.ndarray, channel_axis: int | None = None, **kwargs) -> PredictResult:
        """Predict and return the result (see :meth:`iter_predict`)."""
        result = None
        for ev in self.iter_predict(image, channel_axis, **kwargs):
            if isinstance(ev, PredictResult):
                result = ev
        assert result is not None
        return result
