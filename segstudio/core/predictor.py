"""Whole-image prediction with tiles chosen for inference (the overlap-tile strategy).

One padding and tiling policy serves every network segstudio predicts with: a run's own
model and its TorchScript, ``torch.export``, ONNX and bioimage.io exports. It is decided from
the run's config alone (:func:`plan_tiles`), so every format sees exactly the same inputs:

1. **Padding.** The image is extended at the far end of each axis, by mirror reflection
   (:func:`reflect_index`), to a size the network accepts: a multiple of its down-sampling step
   and at least twice it (:func:`input_constraints`). The network itself never pads.
2. **Tiles.** As large as the memory budget allows (:func:`max_tile_voxels`), independent of
   the training patch: on a CPU a 2048² image or a 64×256×256 volume of the fast preset is one
   tile. Tile sizes and starts are multiples of the step, so every tile sees the same
   down-sampling grid as the whole image.
3. **Margin.** Neighbouring tiles overlap by twice the network's receptive-field radius
   (:func:`receptive_radius`), and every voxel is taken from the tile whose centre is nearest.
   A voxel is then at least one radius away from every tile border that is not the image's
   own, so its value is the one a single forward pass over the whole (padded) image gives, up
   to float rounding, for networks without per-input statistics (BatchNorm in eval mode, or
   no normalisation: the default). InstanceNorm networks normalise by each tile's statistics
   (tiles are large, so close to the image's).

Tiles are visited band by band along the first spatial axis. Each tile's input is read (and
normalised, see :class:`~segstudio.core.lazy.NormalizedView`) on its own; the labels (and
probabilities) of the voxels it owns are computed on the device and gathered into one band of
output rows, written to the output when the band is done (in memory, or on disk for
out-of-core prediction, see :mod:`segstudio.core.outofcore`). Memory is bounded by one tile and
one band of output rows, not by the image. Exclusive models give ``argmax + 1`` labels (1..K)
and softmax probabilities; multilabel models give ``logits > 0`` per class and sigmoid
probabilities.
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from segstudio.core.annotations import MULTILABEL
from segstudio.core.config import TrainConfig
from segstudio.core.data import Normalization, image_stats, spatial_shape
from segstudio.core.device import amp_dtype, memory_bytes, resolve_device
from segstudio.core.errors import UserInputError
from segstudio.core.features import config_bank, config_channels, smoothing_boxes
from segstudio.core.lazy import NormalizedView, is_in_memory, strided_stats
from segstudio.core.models import pooling_plan
from segstudio.core.run import load_run

#: Tiles run through the network at once. Tiles are already as large as memory allows, so
#: batching them buys nothing on a CPU and little on a GPU.
DEFAULT_TILE_BATCH = 1
#: Memory for one tile's activations on a CPU (or MPS): at most this, and at most
#: :data:`CPU_TILE_FRACTION` of the machine's RAM.
CPU_TILE_BYTES = 2 << 30
CPU_TILE_FRACTION = 1 / 8
#: Share of a CUDA GPU's memory for one tile's activations.
GPU_TILE_FRACTION = 1 / 4
#: Memory for one band of finished output rows (labels, and probabilities when asked for).
BAND_BYTES = 256 << 20
#: Estimated float32 copies alive at once per voxel during a forward pass (see
#: :func:`bytes_per_voxel`): of the network input, of each U-Net level's channels (scaled by
#: the level's resolution), of the logits. Peak RSS measured on a CPU (fast preset): 264 B per
#: voxel in 2D (2048²), 310 in 3D (64×256×256); the estimate gives 372 and 360.
INPUT_COPIES = 3
LEVEL_COPIES = 6
OUTPUT_COPIES = 3
FLOAT_BYTES = 4
#: PyTorch's CPU dispatch (ATen ``ConvParams::use_mkldnn``) runs a float32 convolution whose
#: batch is one through its slow native kernel when ``N·C·D·H`` (the width is not counted) is
#: at most this; oneDNN otherwise, and always for a batch of two or more. A 3-D network on a
#: thin slab (the app's live preview of a few slices: 19×96×96 with its margins) is then 3×
#: slower alone than in a batch with a copy of itself (benchmarks/RESULTS.md, "The app's
#: training speed"; ``benchmarks/preview_slab.py``).
NATIVE_CONV_MAX = 20480

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


# --------------------------------------------------------------------------- the policy
def input_constraints(divisor: Sequence[int]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """``(min_shape, step)`` of the network's spatial input axes.

    A pooled axis (``d > 1``) needs a multiple of ``d`` of at least ``2 d`` (the bottleneck
    keeps two voxels); an axis that is never pooled takes any size of at least 2.
    """
    step = tuple(int(d) for d in divisor)
    return tuple(2 * d if d > 1 else 2 for d in step), step


def _strides(config: TrainConfig) -> list[tuple[int, ...]]:
    return pooling_plan(config.spatial_dims, len(config.features), config.network_spacing, config.patch)


def network_step(config: TrainConfig) -> tuple[int, ...]:
    """Per-axis down-sampling factor of the config's network (its input sizes' step), its
    *downsample* (``TrainConfig.reduction``) included."""
    step = list(config.reduction)
    for stride in _strides(config):
        step = [a * b for a, b in zip(step, stride)]
    return tuple(step)


def receptive_radius(config: TrainConfig) -> tuple[int, ...]:
    """Per-axis radius (voxels) of the receptive field of the config's network.

    An output voxel depends on input voxels at most this far away on each axis: the fixed
    input filters' kernel radius plus the U-Net's (two 3-wide convolutions per block, a strided
    3-wide convolution down and a kernel-equals-stride transposed convolution up per level,
    :class:`~segstudio.core.models.UNet`), plus the reach of the prediction's smoothing of the
    class probabilities (``output_smoothing``). An upper bound: the up-sampling term counts the whole kernel on
    both sides. With *downsample* (``TrainConfig.reduction``) all of that is in voxels of the
    shrunk image: times the factor, plus one factor more for the block means and the
    interpolation back.

    Raises
    ------
    ValueError
        For a model name whose receptive field is not known.
    """
    if config.model != "unet":
        raise ValueError(f"the receptive field of model {config.model!r} is not known")
    strides = _strides(config)
    radius = []
    for axis in range(config.spatial_dims):
        r, jump = 2, 1  # the first block: two 3-wide convolutions
        for stride in strides:
            r += jump  # the strided 3-wide convolution, at the finer resolution
            jump *= stride[axis]
            r += jump  # the block's second convolution, at the coarser one
        for stride in reversed(strides):
            jump //= stride[axis]
            r += (stride[axis] - 1) * jump + 2 * jump  # transposed convolution, two convolutions
        radius.append(r)
    if config.input_filters or config.filter_context:
        radius = [r + e for r, e in zip(radius, config_bank(config).radius())]
    for axis, widths in enumerate(smoothing_boxes(config.output_smoothing, config.spatial_dims, config.network_spacing)):
        radius[axis] += sum(w // 2 for w in widths)
    return tuple(r * f + (f if f > 1 else 0) for r, f in zip(radius, config.reduction))


def bytes_per_voxel(config: TrainConfig) -> int:
    """Estimated peak memory of a forward pass per input voxel (float32 activations); with
    *downsample* the network's share divided by the shrink, plus the input and the enlarged
    logits at full size."""
    channels = INPUT_COPIES * config_channels(config)
    channels += OUTPUT_COPIES * config.n_classes
    scales = [1]
    for stride in _strides(config):
        scales.append(scales[-1] * math.prod(stride))
    channels += sum(LEVEL_COPIES * f / s for f, s in zip(config.features, scales))
    shrunk = math.prod(config.reduction)
    if shrunk > 1:
        channels = channels / shrunk + config.in_channels + OUTPUT_COPIES * config.n_classes
    return int(math.ceil(FLOAT_BYTES * channels))


def max_tile_voxels(config: TrainConfig, device: torch.device, tile_batch: int = DEFAULT_TILE_BATCH) -> int:
    """The largest tile (voxels) whose forward pass fits the memory budget of ``device``.

    CUDA: :data:`GPU_TILE_FRACTION` of the GPU's memory; otherwise :data:`CPU_TILE_BYTES`, at
    most :data:`CPU_TILE_FRACTION` of the RAM. Derived from the device's total memory (not
    what is free now), so the tiles, and with them the results, do not change from call to
    call.
    """
    total = memory_bytes(device)
    if device.type == "cuda" and total is not None:
        budget = total * GPU_TILE_FRACTION
    else:
        budget = CPU_TILE_BYTES if total is None else min(CPU_TILE_BYTES, total * CPU_TILE_FRACTION)
    return max(int(budget // (bytes_per_voxel(config) * max(tile_batch, 1))), 1)


def _round_up(n: int, d: int) -> int:
    return -(-n // d) * d


@dataclass(frozen=True)
class TilePlan:
    """Where the tiles go on an image (see the module notes).

    Attributes
    ----------
    shape
        The image's spatial shape.
    padded
        The shape the tiles cover (``shape`` padded to a size the network accepts).
    tile
        Tile size (every tile has it).
    margin
        Per-axis context each tile keeps around the voxels it owns (the receptive-field
        radius, rounded up to the step).
    starts
        Per axis, the tile start offsets (multiples of the step, increasing).
    """

    shape: tuple[int, ...]
    padded: tuple[int, ...]
    tile: tuple[int, ...]
    margin: tuple[int, ...]
    starts: tuple[tuple[int, ...], ...]

    def owned(self, axis: int, index: int) -> tuple[int, int]:
        """The range ``[lo, hi)`` of the image (clipped to ``shape``) that tile ``index`` owns on
        ``axis``: the voxels nearer its centre than any other tile's (ties: the later tile)."""
        starts = self.starts[axis]
        t = self.tile[axis]
        lo = 0 if index == 0 else (starts[index - 1] + starts[index] + t) // 2
        hi = self.padded[axis] if index == len(starts) - 1 else (starts[index] + starts[index + 1] + t) // 2
        n = self.shape[axis]
        return min(lo, n), min(hi, n)

    @property
    def n_tiles(self) -> int:
        """Number of tiles."""
        return math.prod(len(s) for s in self.starts)


def _axis_starts(padded: int, tile: int, overlap: int, step: int) -> tuple[int, ...]:
    """Starts of tiles of ``tile`` covering ``padded`` with at least ``overlap`` between
    neighbours, on multiples of ``step``, spread evenly."""
    if tile >= padded:
        return (0,)
    n = -(-(padded - overlap) // (tile - overlap))
    last = padded - tile
    starts = {min((i * last // (n - 1)) // step * step, last) for i in range(n)}
    return tuple(sorted(starts))


def _axis_tile(padded: int, n: int, overlap: int, step: int) -> int:
    """Smallest tile (a multiple of ``step``) with which ``n`` tiles cover ``padded``."""
    if n <= 1:
        return padded
    return min(_round_up(-(-(padded + (n - 1) * overlap) // n), step), padded)


def plan_tiles(
    shape: Sequence[int],
    step: Sequence[int],
    radius: Sequence[int],
    max_voxels: int,
    *,
    tile: Sequence[int] | None = None,
    max_rows: int | None = None,
) -> TilePlan:
    """Place the tiles on an image of spatial ``shape`` (see the module notes).

    Parameters
    ----------
    shape
        The image's spatial shape.
    step, radius
        The network's per-axis size step (:func:`network_step`) and receptive-field radius
        (:func:`receptive_radius`).
    max_voxels
        The largest tile (:func:`max_tile_voxels`). Tiles are split, on the axis where the
        context margins cost least, until they fit; a tile never gets below four margins
        (it owns at least what its context costs).
    tile
        An explicit tile size instead (rounded up to the step, clipped to the image).
    max_rows
        Most rows (first axis) one tile may own: bounds the band of output rows.
    """
    mins, step = input_constraints(step)
    shape = tuple(int(n) for n in shape)
    padded = tuple(max(_round_up(n, d), m) for n, d, m in zip(shape, step, mins))
    margin = tuple(_round_up(int(r), d) for r, d in zip(radius, step))
    # A tile owns at least as much as its two margins: context never costs more than 2x.
    smallest = tuple(min(max(4 * m, d), p) for m, d, p in zip(margin, step, padded))
    if tile is not None:
        sizes = [min(max(_round_up(int(t), d), s), p) for t, d, s, p in zip(tile, step, smallest, padded)]
    else:
        counts = [1] * len(shape)
        sizes = list(padded)
        if max_rows is not None:
            while sizes[0] - margin[0] > max_rows and sizes[0] > smallest[0]:  # owned: tile less a margin
                counts[0] += 1
                sizes[0] = max(_axis_tile(padded[0], counts[0], 2 * margin[0], step[0]), smallest[0])
        while math.prod(sizes) > max_voxels:
            # Split the axis whose tile is largest relative to its margin: the margins then
            # cost the least extra computation for the voxels saved.
            order = sorted(range(len(shape)), key=lambda a: sizes[a] / max(margin[a], step[a]), reverse=True)
            for a in order:
                if sizes[a] <= smallest[a]:
                    continue
                counts[a] += 1
                sizes[a] = max(_axis_tile(padded[a], counts[a], 2 * margin[a], step[a]), smallest[a])
                break
            else:
                break  # every axis is at its smallest: the tile stays over the budget
    starts = tuple(_axis_starts(p, t, 2 * m, d) for p, t, m, d in zip(padded, sizes, margin, step))
    return TilePlan(shape, padded, tuple(sizes), margin, starts)


def plan_for(
    config: TrainConfig,
    shape: Sequence[int],
    device: torch.device,
    *,
    tile: Sequence[int] | None = None,
    tile_batch: int = DEFAULT_TILE_BATCH,
    band_voxel_bytes: int = 1,
) -> TilePlan:
    """The tile plan of ``config``'s network on an image of spatial ``shape`` on ``device``.

    ``band_voxel_bytes``: output bytes per voxel of a band (labels, plus probabilities when
    asked for); the rows a tile owns are limited so that a band fits :data:`BAND_BYTES`.
    """
    inner = math.prod(int(n) for n in shape[1:])
    max_rows = max(BAND_BYTES // max(inner * band_voxel_bytes, 1), 1)
    return plan_tiles(shape, network_step(config), receptive_radius(config),
                      max_tile_voxels(config, device, tile_batch), tile=tile, max_rows=max_rows)


def pair_single_tiles(config: TrainConfig, tile: Sequence[int], device: torch.device) -> bool:
    """Whether a lone 3-D tile runs faster on ``device`` in a batch with a copy of itself.

    True on a CPU when some U-Net level would give a convolution a batch-one input with
    ``C·D·H <= NATIVE_CONV_MAX`` (the slow native kernel, see :data:`NATIVE_CONV_MAX`): the
    copy costs one more oneDNN pass, several times less than the native kernel. The outputs
    are the same: inference never mixes a batch's samples (BatchNorm uses its running
    statistics). The caller checks that the copy fits the memory budget.
    """
    if device.type != "cpu" or len(tile) != 3 or config.model != "unet":
        return False
    d, h = int(tile[0]), int(tile[1])
    channels = min(config_channels(config), config.features[0])
    if channels * d * h <= NATIVE_CONV_MAX:
        return True
    for level, stride in enumerate(_strides(config), start=1):
        d, h = -(-d // stride[0]), -(-h // stride[1])
        if config.features[min(level, len(config.features) - 1)] * d * h <= NATIVE_CONV_MAX:
            return True
    return False


def _pairs(config: TrainConfig, plan: TilePlan, device: torch.device, tile_batch: int) -> bool:
    """Whether a batch of one of ``plan``'s tiles is predicted with a copy of itself
    (:func:`pair_single_tiles`, when the copy fits the memory budget)."""
    return (pair_single_tiles(config, plan.tile, device)
            and 2 * math.prod(plan.tile) <= max_tile_voxels(config, device, tile_batch))


def predict_work(
    config: TrainConfig,
    shape: Sequence[int],
    region: Sequence[slice] | None,
    device: torch.device,
    tile_batch: int = DEFAULT_TILE_BATCH,
) -> int:
    """Voxels the network computes to predict ``region`` (``None``: all) of an image of spatial
    ``shape`` on ``device``: the tiles of the region's context (:func:`context_region`), plus a
    tile's copy for every batch of one that is paired (:func:`pair_single_tiles`).

    A cost estimate to choose between predicting a region and the whole image: a 3-D slab's
    context can cost more than a small volume (its tiles are padded and paired).
    """
    ctx, _ = context_region(region, shape, config)
    plan = plan_for(config, tuple(s.stop - s.start for s in ctx), device, tile_batch=tile_batch)
    voxels = math.prod(plan.tile)
    batch = max(tile_batch, 1)
    inner = math.prod(len(s) for s in plan.starts[1:])
    lone_per_band = inner if batch == 1 else int(inner % batch == 1)  # batches of one tile
    lone = len(plan.starts[0]) * lone_per_band
    return plan.n_tiles * voxels + (lone * voxels if _pairs(config, plan, device, tile_batch) else 0)


def reflect_index(index: np.ndarray, n: int) -> np.ndarray:
    """Mirror-reflect positions into ``[0, n)`` (``numpy.pad``'s ``reflect``, repeated for
    pads longer than the axis; an axis of one voxel is replicated)."""
    if n == 1:
        return np.zeros_like(index)
    period = 2 * (n - 1)
    m = np.mod(index, period)
    return np.where(m < n, m, period - m)


def read_tile(image: Any, starts: Sequence[int], size: Sequence[int]) -> np.ndarray:
    """The ``(C, *size)`` float32 block of ``image`` at ``starts``, reflected past its end.

    ``image`` is a ``(C, *spatial)`` array or a :class:`~segstudio.core.lazy.NormalizedView`;
    only the part inside the image is read.
    """
    spatial = tuple(int(n) for n in image.shape[1:])
    index: list[slice] = []
    takes: list[np.ndarray | None] = []
    for s, t, n in zip(starts, size, spatial):
        if s + t <= n:
            index.append(slice(s, s + t))
            takes.append(None)
        else:
            positions = reflect_index(np.arange(s, s + t), n)
            lo = int(positions.min())
            index.append(slice(lo, int(positions.max()) + 1))
            takes.append(positions - lo)
    block = np.asarray(image[(slice(None), *index)], dtype=np.float32)
    for axis, take in enumerate(takes):
        if take is not None:
            block = np.take(block, take, axis=axis + 1)
    return block


# --------------------------------------------------------------------------- the engine
@torch.inference_mode()
def iter_predict_normalized(
    model: nn.Module,
    image: Any,
    config: TrainConfig,
    *,
    tile: Sequence[int] | None = None,
    tile_batch: int = DEFAULT_TILE_BATCH,
    device: torch.device | str | None = None,
    amp: torch.dtype | None = None,
    tta: bool = False,
    probabilities: bool = False,
    labels_out: ArrayLike | None = None,
    probabilities_out: ArrayLike | None = None,
) -> Iterator[PredictProgress | PredictResult]:
    """Tiled prediction of an already normalised ``(C, *spatial)`` image (see the module notes).

    Parameters
    ----------
    model
        Takes ``(N, C, *tile)`` float32 and returns logits ``(N, K, *tile)``.
    image
        ``(C, *spatial)`` float32 array, or any array-like with ``shape`` whose slices
        return normalised float32 arrays (e.g. :class:`~segstudio.core.lazy.NormalizedView`
        over a lazy zarr/memmap image): it is read one tile at a time.
    tile
        Tile size instead of the largest that fits the memory budget (tests, benchmarks).
    tile_batch
        Tiles per forward pass.
    labels_out, probabilities_out
        Where to write the labels (shape of :attr:`PredictResult.labels`) and, with
        ``probabilities``, the probabilities (``(K, *spatial)``): numpy arrays, memmaps or
        zarr arrays, written one band of rows at a time, in order. ``None``: new in-memory
        arrays.

    Yields :class:`PredictProgress` after each batch of tiles and finally one
    :class:`PredictResult` (region = whole array) holding the outputs.
    """
    dev = torch.device(device) if device is not None else next(iter(model.parameters()), torch.empty(0)).device
    was_training = model.training
    model.eval()
    spatial = tuple(int(n) for n in image.shape[1:])
    k = config.n_classes
    multilabel = config.mode == MULTILABEL
    lead = (slice(None),) if multilabel else ()
    label_dtype = np.dtype(np.uint8 if multilabel or k < 255 else np.uint16)
    if labels_out is None:
        labels_out = np.zeros(((k,) if multilabel else ()) + spatial, dtype=label_dtype)
    if probabilities and probabilities_out is None:
        probabilities_out = np.zeros((k, *spatial), dtype=np.float32)
    per_voxel = (k if multilabel else 1) * label_dtype.itemsize + (FLOAT_BYTES * k if probabilities else 0)
    plan = plan_for(config, spatial, dev, tile=tile, tile_batch=tile_batch, band_voxel_bytes=per_voxel)
    flips = _tta_flips(len(spatial)) if tta else [()]
    # PyTorch's dispatch only: onnxruntime would just compute the copy too.
    pair = getattr(model, "backend", None) != "onnx" and _pairs(config, plan, dev, tile_batch)
    inner = list(itertools.product(*(range(len(s)) for s in plan.starts[1:])))
    done, total = 0, plan.n_tiles
    for bi, s0 in enumerate(plan.starts[0]):
        r0, r1 = plan.owned(0, bi)
        labels_band = np.zeros(((k,) if multilabel else ()) + (r1 - r0, *spatial[1:]), dtype=label_dtype)
        probs_band = np.zeros((k, r1 - r0, *spatial[1:]), dtype=np.float32) if probabilities else None
        for b0 in range(0, len(inner), max(tile_batch, 1)):
            batch = [(bi, *ix) for ix in inner[b0:b0 + max(tile_batch, 1)]]
            starts = [tuple(plan.starts[a][i] for a, i in enumerate(ix)) for ix in batch]
            x = torch.from_numpy(np.stack([read_tile(image, st, plan.tile) for st in starts])).to(dev)
            logits = None
            for axes in flips:
                xi = torch.flip(x, [a + 2 for a in axes]) if axes else x
                with torch.autocast(dev.type, dtype=amp, enabled=amp is not None):
                    if pair and len(xi) == 1:  # see pair_single_tiles: faster twice than once
                        y = model(torch.cat([xi, xi]))[:1].float()
                    else:
                        y = model(xi).float()
                if axes:
                    y = torch.flip(y, [a + 2 for a in axes])
                logits = y if logits is None else logits + y
            logits = logits / len(flips)
            for j, (ix, st) in enumerate(zip(batch, starts)):
                own = [plan.owned(a, i) for a, i in enumerate(ix)]
                if any(hi <= lo for lo, hi in own):
                    continue  # a tile that owns only padding
                y = logits[(j, slice(None), *(slice(lo - s, hi - s) for (lo, hi), s in zip(own, st)))]
                dst = (slice(0, r1 - r0), *(slice(lo, hi) for lo, hi in own[1:]))
                if multilabel:
                    labels_band[(slice(None), *dst)] = (y > 0).cpu().numpy()
                    if probs_band is not None:
                        probs_band[(slice(None), *dst)] = torch.sigmoid(y).cpu().numpy()
                else:
                    labels_band[dst] = _class_labels(y).cpu().numpy()
                    if probs_band is not None:
                        probs_band[(slice(None), *dst)] = torch.softmax(y, dim=0).cpu().numpy()
            done += len(batch)
            yield PredictProgress(done, total)
        if r1 > r0:
            labels_out[(*lead, slice(r0, r1))] = labels_band
            if probs_band is not None:
                probabilities_out[:, r0:r1] = probs_band
        del labels_band, probs_band
    if was_training:
        model.train()
    yield PredictResult(
        labels_out, probabilities_out if probabilities else None, tuple(slice(0, n) for n in spatial)
    )


def _class_labels(logits: torch.Tensor) -> torch.Tensor:
    """``argmax + 1`` over the class axis (the first), ties to the first class.

    One comparison per class: several times faster than ``torch.argmax`` over the outer axis
    of a large tile on a CPU.
    """
    k = logits.shape[0]
    labels = torch.ones(logits.shape[1:], dtype=torch.uint8 if k < 255 else torch.int32, device=logits.device)
    best = logits[0]
    for c in range(1, k):
        labels.masked_fill_(logits[c] > best, c + 1)
        best = torch.maximum(best, logits[c])
    return labels


def _tta_flips(nd: int) -> list[tuple[int, ...]]:
    """All combinations of flips over the spatial axes (identity first)."""
    axes = range(nd)
    return [c for r in range(nd + 1) for c in itertools.combinations(axes, r)]


def predict_normalized(model: nn.Module, image: Any, config: TrainConfig, **kwargs: Any) -> PredictResult:
    """Run :func:`iter_predict_normalized` to the end and return its result."""
    result = None
    for ev in iter_predict_normalized(model, image, config, **kwargs):
        if isinstance(ev, PredictResult):
            result = ev
    assert result is not None
    return result


def context_region(
    region: Sequence[slice] | None, shape: Sequence[int], config: TrainConfig
) -> tuple[tuple[slice, ...], tuple[slice, ...]]:
    """The part of the image to predict for ``region``, and the crop back to ``region``.

    The region is widened by the receptive-field radius on each side (within the image), its
    start moved down to a multiple of the network's step: the region's voxels then come out
    exactly as in a whole-image prediction.
    """
    if region is None:
        full = tuple(slice(0, n) for n in shape)
        return full, full
    if len(region) != len(shape):
        raise UserInputError(f"region has {len(region)} axes, the image has {len(shape)}")
    ctx, crop = [], []
    for sl, n, r, d in zip(region, shape, receptive_radius(config), network_step(config)):
        a, b, _ = sl.indices(n)
        if b <= a:
            raise UserInputError("the region to predict is empty")
        a2, b2 = max(a - r, 0) // d * d, min(b + r, n)
        ctx.append(slice(a2, b2))
        crop.append(slice(a - a2, b - a2))
    return tuple(ctx), tuple(crop)


class Predictor:
    """A trained model plus its config, ready to predict images or regions.

    Parameters
    ----------
    model
        The network (``eval`` mode is set).
    config
        The run's config (classes, mode, network, normalisation rule).
    device
        ``auto``/``cpu``/``cuda``/``mps``.
    amp
        Mixed precision on CUDA.
    """

    def __init__(self, model: nn.Module, config: TrainConfig, device: str = "auto", amp: bool = True) -> None:
        self.config = config
        self.device = resolve_device(device)
        self.amp = amp_dtype(self.device, amp)
        self.model = model.to(self.device).eval()

    @classmethod
    def from_run(cls, run_dir: str | os.PathLike[str], device: str = "auto") -> Predictor:
        """Load a run directory (weights read with ``weights_only=True``)."""
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

    def check_image(self, image: Any, channel_axis: int | None) -> tuple[int, ...]:
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

    def image_stats(self, image: Any, channel_axis: int | None = None) -> Normalization:
        """An image's normalisation by the run's rule (its percentiles and *level slices*, per
        image as in training); for a lazy image (zarr, memmap) from a strided sample
        (:func:`~segstudio.core.lazy.strided_stats`)."""
        cfg = self.config
        if is_in_memory(image):
            return image_stats(image, channel_axis, cfg.percentiles, level_slices=cfg.level_slices)
        return strided_stats(image, channel_axis, cfg.percentiles, level_slices=cfg.level_slices)

    def iter_predict(
        self,
        image: Any,
        channel_axis: int | None = None,
        *,
        region: Sequence[slice] | None = None,
        stats: Normalization | None = None,
        tta: bool = False,
        probabilities: bool = False,
        tile: Sequence[int] | None = None,
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
            Normalisation statistics to use; ``None`` computes them from ``image`` by the
            run's rule (:meth:`image_stats`, the per-image rule used in training).
        tile, tile_batch
            As in :func:`iter_predict_normalized`.
        labels_out, probabilities_out
            Arrays to write the whole-image result into band by band (e.g. an
            :class:`~segstudio.core.outofcore.OutputArray` on disk, or a viewer layer's data);
            only with ``region=None``.

        The image is read one tile at a time, so a lazy image is never loaded whole; with
        on-disk outputs peak memory is bounded by one tile and one band of output rows.
        """
        spatial = self.check_image(image, channel_axis)
        norm = stats if stats is not None else self.image_stats(image, channel_axis)
        ctx, crop = context_region(region, spatial, self.config)
        if (labels_out is not None or probabilities_out is not None) and region is not None:
            raise ValueError("labels_out/probabilities_out need region=None (the whole image)")
        x = NormalizedView(image, channel_axis, norm, ctx)
        for ev in iter_predict_normalized(
            self.model, x, self.config, tile=tile, tile_batch=tile_batch,
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

    def predict(self, image: Any, channel_axis: int | None = None, **kwargs: Any) -> PredictResult:
        """Predict and return the result (see :meth:`iter_predict`)."""
        result = None
        for ev in self.iter_predict(image, channel_axis, **kwargs):
            if isinstance(ev, PredictResult):
                result = ev
        assert result is not None
        return result
