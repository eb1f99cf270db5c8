"""Fixed multiscale filter features, computed inside the network as its first layer.

The random-forest baseline (ilastik-style) classifies each pixel from Gaussian-smoothed
intensity, gradient magnitude and Laplacian-of-Gaussian responses at several scales. Giving
the U-Net the same evidence as extra input channels helps it most where the paintings say
least: between the traced outline of a nucleus and the nearest background stroke.

The filters are a fixed (non-trainable) :class:`torch.nn.Module` in front of the U-Net, so
training, sliding-window prediction, live previews and every export see exactly the same
features with no separate pre-processing step. Only the scales are stored (``input_filters``
in ``config.json``); the kernels are rebuilt from them and are not part of the state dict.

Per image channel and scale ``σ`` the features are (scale-normalised):

- ``G_σ * x`` (smoothed intensity),
- ``σ · |∇(G_σ * x)|`` (gradient magnitude),
- ``σ² · Δ(G_σ * x)`` (Laplacian of Gaussian),

plus the channel itself, i.e. ``1 + 3 · len(sigmas)`` channels per image channel (and
``3 · len(context)`` more, below). With
``texture=True`` each scale adds one more, the Hessian's anisotropy

- ``σ² · ‖H − (tr H / d) I‖_F`` (the norm of the Hessian's trace-free part; in 2D
  ``σ² · |λ₁ − λ₂| / √2``),

which is large on ridges and fibres (one strong curvature) and small on round grains and
flat regions (equal or no curvature): the cue the random forest's Hessian-eigenvalue features
give it on textures of the same brightness. It is rotation invariant like the others. Runs
have it off (``TrainConfig.filter_texture``): on the quality matrix it was level
(benchmarks/RESULTS.md, *Ridge filters*).

Per *region scale* ``ρ`` (``context``) three more channels describe the neighbourhood rather
than the pixel, as a random forest's σ 8-16 features do:

- ``B_ρ * x`` (the local mean),
- ``sqrt(B_ρ * x² − (B_ρ * x)²)`` (the local standard deviation: how textured),
- ``‖S − (tr S / d) I‖_F / tr S`` with ``S = B_ρ * (∇u ∇uᵀ)``, ``u = G_1 * x`` (the anisotropy
  of the structure tensor: 0 where the gradients around point every way, as in grains or
  noise, up to ``√((d − 1) / d)`` where they share one direction, as in fibres).

``B_ρ`` stands for a Gaussian of σ ``ρ``: three box filters per axis of the same variance
(:func:`box_widths`), by cumulative sums, so that a wide region costs no more than a narrow
one (with a 49-tap Gaussian a 3-D training step took 2.2× the default's, with the boxes about
1.4×; benchmarks/step_time.py).

A texture's grains and the gaps between them differ most in intensity; these channels are the
same for both, so that the network can call the whole region one class
(benchmarks/RESULTS.md, *Region statistics for textures*).

Training does not compute them on its patches: a region's reach (25 pixels at ρ 8) covers
nearly all of a 3-D patch, whose replicated borders would stand in for the real neighbourhood
that prediction sees. The trainer computes them once on the whole image
(:func:`image_regions`) and each patch carries its crop after the image channels
(:meth:`FilteredNetwork.forward`); a textured 3-D step then costs 1.1× the default's instead
of 1.4× (benchmarks/RESULTS.md, *Region channels from the whole image*).

Derivatives are taken per physical unit (``units="physical"``, the default): on an
anisotropic volume the derivative along an axis of spacing ``s`` is scaled by
``finest / s`` (the second by its square), so that the same physical gradient gives the same
feature along every axis, in units of the finest pixel. Runs written before this existed took
them per voxel (``units="voxel"``: a z gradient on a ``(2, 0.5, 0.5)`` volume came out 4× the
same physical gradient in y, its Laplacian term 16×) and keep loading that way.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from segstudio.core.config import FILTER_UNITS, TrainConfig

#: Kernel half-width in standard deviations.
TRUNCATE = 3.0
#: Features per scale: smoothed, gradient magnitude, LoG (and the Hessian's anisotropy with
#: ``texture``).
FEATURES_PER_SCALE = 3


#: Features per region scale (``context``): local mean, local standard deviation, and the
#: anisotropy of the local structure tensor.
FEATURES_PER_REGION = 3
#: Inner scale (pixels along the finest axis) of the gradients the structure tensor averages.
REGION_INNER_SIGMA = 1.0


def n_filter_channels(
    in_channels: int, sigmas: Sequence[float], texture: bool = False, context: Sequence[float] = ()
) -> int:
    """Number of network input channels after the filter bank (``in_channels`` if no scales)."""
    per_scale = FEATURES_PER_SCALE + int(bool(texture))
    n = 1 + per_scale * len(tuple(sigmas)) + FEATURES_PER_REGION * len(tuple(context))
    return int(in_channels) * n


def config_channels(config: TrainConfig) -> int:
    """Network input channels for a run's config (after its filter bank)."""
    return n_filter_channels(config.in_channels, config.input_filters, config.filter_texture, config.filter_context)


def config_bank(config: TrainConfig) -> FilterBank:
    """The filter bank a run's config describes (its scales, spacing, units and texture)."""
    return FilterBank(
        config.spatial_dims, config.input_filters, config.network_spacing,
        units=config.filter_units, texture=config.filter_texture, context=config.filter_context,
    )


def correlate_along(x: torch.Tensor, kernels: torch.Tensor, axis: int, spatial_dims: int) -> torch.Tensor:
    """Correlate ``x`` (``(B, 1, *spatial)``) with ``k`` 1D ``kernels`` (``(k, L)``, ``L`` odd) along
    spatial ``axis``, borders padded by replication → ``(B, k, *spatial)``."""
    r = kernels.shape[-1] // 2
    nd = spatial_dims
    shape = [kernels.shape[0], 1] + [1] * nd
    shape[2 + axis] = kernels.shape[-1]
    pad = [0, 0] * nd
    pad[2 * (nd - 1 - axis)] = r
    pad[2 * (nd - 1 - axis) + 1] = r
    xp = F.pad(x, pad, mode="replicate")
    conv = F.conv2d if nd == 2 else F.conv3d
    return conv(xp, kernels.reshape(shape).to(x.dtype))


def box_widths(sigma: float, passes: int = 3) -> tuple[int, ...]:
    """Odd widths of ``passes`` successive box filters whose variance is closest to ``σ²``.

    Two widths ``w`` and ``w + 2`` as in Kovesi's "fast almost-Gaussian filtering" (2010): ``m``
    passes of ``w`` and the rest of ``w + 2``, ``m`` chosen so that the summed variances
    ``(w² − 1) / 12`` come closest to ``σ²``. Widths of 1 (no smoothing) are left out.
    """
    if sigma <= 0:
        return ()
    ideal = math.sqrt(12.0 * sigma * sigma / passes + 1.0)
    lo = int(math.floor(ideal))
    lo -= 1 - lo % 2  # odd, at most the ideal width
    lo = max(lo, 1)
    hi = lo + 2
    m = round((12.0 * sigma * sigma - passes * lo * lo - 4 * passes * lo - 3 * passes) / (-4.0 * lo - 4.0))
    m = min(max(m, 0), passes)
    return tuple(w for w in (lo,) * m + (hi,) * (passes - m) if w > 1)


def smoothing_boxes(sigma: float, spatial_dims: int, spacing: Sequence[float] | None) -> tuple[tuple[int, ...], ...]:
    """Per spatial axis, the widths of the box filters that smooth a prediction over ``sigma``
    (``TrainConfig.output_smoothing``, pixels along the finest axis); ``()`` for 0."""
    if sigma <= 0:
        return ()
    return tuple(box_widths(s) for s in axis_sigmas(sigma, spatial_dims, spacing))


def box_filter(x: torch.Tensor, width: int, dim: int) -> torch.Tensor:
    """The mean over a centred window of odd ``width`` along ``dim``, borders replicated.

    By a cumulative sum, so that the cost does not grow with the width. Each line's mean is
    taken out first and added back after: the sums then wander about zero rather than growing
    along the line, which keeps float32 as exact as a direct sum. A NaN spoils its whole line
    (the network's inputs are finite: normalisation sets NaN and inf to 0).
    """
    if width <= 1:
        return x
    r = width // 2
    nd = x.dim()
    pad = [0, 0] * (nd - 2)
    pos = nd - 1 - dim  # F.pad lists the last dimension first
    pad[2 * pos] = r + 1
    pad[2 * pos + 1] = r
    xp = F.pad(x, pad, mode="replicate")
    centre = xp.mean(dim=dim, keepdim=True)
    c = torch.cumsum(xp - centre, dim=dim)
    n = xp.shape[dim]
    out = (c.narrow(dim, width, n - width) - c.narrow(dim, 0, n - width)) / width
    return out + centre


def axis_sigmas(sigma: float, spatial_dims: int, spacing: Sequence[float] | None) -> tuple[float, ...]:
    """Per-axis σ in pixels for a σ given in pixels along the finest axis (anisotropic volumes)."""
    if spacing is None:
        return (float(sigma),) * spatial_dims
    finest = min(float(s) for s in spacing)
    return tuple(float(sigma) * finest / float(s) for s in spacing)


def gaussian_kernels(sigma: float, truncate: float = TRUNCATE) -> torch.Tensor:
    """1D Gaussian kernel and its first and second derivatives, shape ``(3, 2r + 1)``.

    ``σ <= 0`` (an axis too coarse to smooth) gives the identity kernel and zero derivatives.
    """
    if sigma <= 0.0:
        k = torch.zeros(3, 3, dtype=torch.float64)
        k[0, 1] = 1.0
        return k.float()
    radius = max(1, int(math.ceil(truncate * sigma)))
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    g = torch.exp(-0.5 * (x / sigma) ** 2)
    g = g / g.sum()
    # Correlation kernels (``conv`` in torch correlates) with exact discrete moments: the first
    # derivative maps the ramp ``x`` to 1, the second maps ``x²`` to 2 and constants to 0.
    d1 = x / sigma**2 * g
    d1 = d1 / (d1 * x).sum()
    d2 = (x**2 / sigma**4 - 1.0 / sigma**2) * g
    d2 = d2 - g * d2.sum()
    d2 = 2.0 * d2 / (d2 * x**2).sum()
    return torch.stack([g, d1, d2]).float()


class FilterBank(nn.Module):
    """Fixed multiscale filters: ``(N, C, *spatial)`` → ``(N, C·(1 + 3·len(σ) + 3·len(ρ)), *spatial)``.

    Parameters
    ----------
    spatial_dims
        2 or 3.
    sigmas
        Scales in pixels along the finest axis.
    spacing
        Physical voxel size per axis; coarser axes get proportionally smaller σ.
    units
        ``"physical"``: derivatives per physical unit (along the finest axis's pixel);
        ``"voxel"``: per voxel of each axis (runs written before the physical rule).
    texture
        Add the Hessian's anisotropy per scale (one more channel per scale).
    context
        Region scales (pixels along the finest axis): per scale the local mean, standard
        deviation and structure-tensor anisotropy (:meth:`_regions`).

    Notes
    -----
    Borders are padded by replication, so a tile of a larger image sees nearly the features of
    the whole image (the sliding-window blending down-weights tile borders anyway).
    """

    def __init__(
        self,
        spatial_dims: int,
        sigmas: Sequence[float],
        spacing: Sequence[float] | None = None,
        units: str = "physical",
        texture: bool = False,
        context: Sequence[float] = (),
    ) -> None:
        super().__init__()
        self.texture = bool(texture)
        if spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}")
        if units not in FILTER_UNITS:
            raise ValueError(f"units must be one of {', '.join(FILTER_UNITS)}, got {units!r}")
        # derivative scale per axis: d/d(physical, in finest pixels) = (finest / s_a) d/d(voxel)
        if units == "voxel" or spacing is None:
            self.axis_scale = (1.0,) * spatial_dims
        else:
            finest = min(float(v) for v in spacing)
            self.axis_scale = tuple(finest / float(v) for v in spacing)
        self.spatial_dims = spatial_dims
        self.sigmas = tuple(float(s) for s in sigmas)
        if any(s <= 0 for s in self.sigmas):
            raise ValueError(f"filter scales must be > 0, got {self.sigmas}")
        self._names: list[list[str]] = []
        for i, sigma in enumerate(self.sigmas):
            names = []
            for a, s in enumerate(axis_sigmas(sigma, spatial_dims, spacing)):
                name = f"k{i}_{a}"
                # Axes that are much coarser than σ are hardly smoothed: keep at least 0.3 px.
                self.register_buffer(name, gaussian_kernels(max(s, 0.3)), persistent=False)
                names.append(name)
            self._names.append(names)
        self.context = tuple(float(s) for s in context)
        if any(s <= 0 for s in self.context):
            raise ValueError(f"region scales must be > 0, got {self.context}")
        #: Per region scale and axis, the widths of the box filters that stand for its Gaussian.
        self._region_boxes: list[list[tuple[int, ...]]] = [
            [box_widths(s) for s in axis_sigmas(sigma, spatial_dims, spacing)] for sigma in self.context
        ]
        if self.context:
            for a, s in enumerate(axis_sigmas(REGION_INNER_SIGMA, spatial_dims, spacing)):
                self.register_buffer(f"g_{a}", gaussian_kernels(max(s, 0.3))[:2], persistent=False)

    def radius(self) -> tuple[int, ...]:
        """Per-axis radius (voxels) of the input a feature depends on: the widest kernel, and for
        the region channels the gradient's kernel plus the region's."""
        out = []
        for a in range(self.spatial_dims):
            r = max((getattr(self, names[a]).shape[-1] // 2 for names in self._names), default=0)
            if self.context:
                inner = getattr(self, f"g_{a}").shape[-1] // 2
                r = max(r, inner + max(sum(w // 2 for w in boxes[a]) for boxes in self._region_boxes))
            out.append(r)
        return tuple(out)

    def _along(self, x: torch.Tensor, kernels: torch.Tensor, axis: int) -> torch.Tensor:
        """Correlate ``x`` (``(B, 1, *spatial)``) with ``k`` 1D kernels on ``axis`` → ``(B, k, ...)``."""
        return correlate_along(x, kernels, axis, self.spatial_dims)

    def _orders(self) -> list[tuple[int, ...]]:
        """The derivative orders the features need: none, first and second per axis, mixed."""
        nd = self.spatial_dims
        unit = [tuple(int(b == a) for b in range(nd)) for a in range(nd)]
        orders = [(0,) * nd] + unit + [tuple(2 * o for o in u) for u in unit]
        if self.texture:
            orders += [tuple(x + y for x, y in zip(unit[a], unit[b])) for a in range(nd) for b in range(a + 1, nd)]
        return orders

    def _derivatives(self, flat: torch.Tensor, kernels: Sequence[torch.Tensor]) -> dict[tuple[int, ...], torch.Tensor]:
        """Gaussian derivatives of the orders :meth:`_orders` lists, separably.

        Axis by axis, each partial result (the orders on the axes done so far) gets, in one
        convolution, the orders on the next axis that some wanted derivative continues it with.
        """
        wanted = self._orders()
        done: dict[tuple[int, ...], torch.Tensor] = {(): flat}
        for a in range(self.spatial_dims):
            nxt: dict[tuple[int, ...], torch.Tensor] = {}
            for prefix, y in done.items():
                need = sorted({w[a] for w in wanted if w[:a] == prefix})
                res = self._along(y, kernels[a][need[0] : need[-1] + 1], a)
                for o in need:
                    nxt[prefix + (o,)] = res[:, o - need[0] : o - need[0] + 1]
            done = nxt
        return done

    @property
    def region_features(self) -> int:
        """Region channels per image channel (:meth:`region_channels`)."""
        return FEATURES_PER_REGION * len(self.context)

    def region_channels(self, x: torch.Tensor) -> torch.Tensor:
        """The region channels alone: ``(N, C, *spatial)`` → ``(N, C·3·len(ρ), *spatial)``, per
        image channel and region scale the local mean, standard deviation and anisotropy (the
        order :meth:`forward` puts them in, after the pixel filters)."""
        n, c = x.shape[:2]
        spatial = x.shape[2:]
        if not self.context:
            return x.new_zeros((n, 0, *spatial))
        y = torch.cat(self._regions(x.reshape(n * c, 1, *spatial)), dim=1)
        return y.reshape(n, c * y.shape[1], *spatial)

    def forward(self, x: torch.Tensor, regions: torch.Tensor | None = None) -> torch.Tensor:
        """Return the image channels followed by the filter responses per channel and scale.

        ``regions``: the region channels of ``x`` computed beforehand (:meth:`region_channels`
        of the whole image, cropped as ``x`` was; training, see
        :class:`segstudio.core.data.PatchSampler`), used instead of computing them on ``x``,
        whose borders would otherwise stand in for the neighbourhood they cut off.
        """
        if not self.sigmas and not self.context:
            return x
        n, c = x.shape[:2]
        spatial = x.shape[2:]
        flat = x.reshape(n * c, 1, *spatial)
        nd = self.spatial_dims
        outs = [flat]
        for i, sigma in enumerate(self.sigmas):
            kernels = [getattr(self, name) for name in self._names[i]]
            d = self._derivatives(flat, kernels)
            zero = (0,) * nd
            grad2 = torch.zeros_like(flat)
            lap = torch.zeros_like(flat)
            for a in range(nd):
                first = tuple(1 if b == a else 0 for b in range(nd))
                second = tuple(2 if b == a else 0 for b in range(nd))
                k = self.axis_scale[a]
                grad2 = grad2 + (k * d[first]) ** 2
                lap = lap + (k * k) * d[second]
            outs += [d[zero], sigma * torch.sqrt(grad2 + 1e-12), sigma**2 * lap]
            if self.texture:
                outs.append(sigma**2 * self._anisotropy(d, lap))
        if regions is not None:
            outs.append(regions.reshape(n * c, self.region_features, *spatial).to(flat.dtype))
        elif self.context:
            outs += self._regions(flat)
        y = torch.cat(outs, dim=1)  # (n*c, 1 + (3 or 4)·S + 3·R, *spatial)
        return y.reshape(n, c * y.shape[1], *spatial)

    def _anisotropy(self, d: dict[tuple[int, ...], torch.Tensor], lap: torch.Tensor) -> torch.Tensor:
        """``‖H − (tr H / d) I‖_F`` from the derivatives (``lap`` = ``tr H``, already scaled)."""
        nd = self.spatial_dims
        mean = lap / nd
        total = torch.zeros_like(lap)
        for a in range(nd):
            second = tuple(2 if b == a else 0 for b in range(nd))
            total = total + (self.axis_scale[a] ** 2 * d[second] - mean) ** 2
            for b in range(a + 1, nd):
                mixed = tuple(int(c in (a, b)) for c in range(nd))
                total = total + 2.0 * (self.axis_scale[a] * self.axis_scale[b] * d[mixed]) ** 2
        return torch.sqrt(total + 1e-12)

    def _smooth(self, y: torch.Tensor, boxes: Sequence[tuple[int, ...]]) -> torch.Tensor:
        """Smooth every channel of ``y`` (``(B, k, *spatial)``) with the box filters ``boxes``
        (per axis, the widths of successive passes; :func:`box_filter`)."""
        for a, widths in enumerate(boxes):
            for w in widths:
                y = box_filter(y, w, 2 + a)
        return y

    def _regions(self, flat: torch.Tensor) -> list[torch.Tensor]:
        """Per region scale: the local mean, standard deviation and structure-tensor anisotropy.

        The tensor ``S = B_ρ * (∇u ∇uᵀ)`` averages the outer products of the gradients of
        ``u = G_1 * x`` (per physical unit) over the region scale ``ρ``; its anisotropy is
        ``‖S − (tr S / d) I‖_F / tr S``, 0 where gradients point every way (grains, noise) and up
        to ``√((d − 1) / d)`` where they share one direction (fibres).
        """
        nd = self.spatial_dims
        grads = []
        for a in range(nd):
            y = flat
            for b in range(nd):
                kern = getattr(self, f"g_{b}")
                y = self._along(y, kern[1:2] if b == a else kern[:1], b)
            grads.append(self.axis_scale[a] * y)
        pairs = [(a, b) for a in range(nd) for b in range(a, nd)]
        moments = torch.cat([flat, flat * flat] + [grads[a] * grads[b] for a, b in pairs], dim=1)
        outs: list[torch.Tensor] = []
        for boxes in self._region_boxes:
            m = self._smooth(moments, boxes)
            mean, second = m[:, :1], m[:, 1:2]
            std = torch.sqrt(torch.clamp(second - mean * mean, min=0.0) + 1e-12)
            tensor = {pair: m[:, 2 + i : 3 + i] for i, pair in enumerate(pairs)}
            trace = sum(tensor[(a, a)] for a in range(nd))
            dev = sum((tensor[(a, a)] - trace / nd) ** 2 for a in range(nd))
            dev = dev + sum(2.0 * tensor[(a, b)] ** 2 for a, b in pairs if a != b)
            # ε keeps flat regions (no gradient at all) at 0; normalised images have traces of
            # 1e-4 and more where there is noise or texture
            outs += [mean, std, torch.sqrt(dev + 1e-20) / (trace + 1e-6)]
        return outs

    def extra_repr(self) -> str:
        """Show the scales."""
        return (
            f"spatial_dims={self.spatial_dims}, sigmas={self.sigmas}, axis_scale={self.axis_scale}, "
            f"texture={self.texture}, context={self.context}"
        )


def _nbytes(t: torch.Tensor) -> int:
    return t.numel() * t.element_size()


class FilterCache:
    """The filter responses of the last few inputs, looked up by the input's values.

    Only for inference: a hit returns the stored tensor itself (no copy). An input equal to a
    stored one (shape, dtype, device and every value, :func:`torch.equal`) is a hit; the
    comparison costs a read of the input, the filters several convolutions over it.
    """

    #: Inputs kept (a preview of a few tiles, or of one tile with its TTA flips).
    ENTRIES = 4
    #: Bytes kept at most (inputs and responses); a larger response is not kept.
    MAX_BYTES = 256 * 2**20

    def __init__(self, entries: int = ENTRIES, max_bytes: int = MAX_BYTES) -> None:
        self.entries = max(int(entries), 1)
        self.max_bytes = int(max_bytes)
        self._items: list[tuple[torch.Tensor, torch.Tensor]] = []
        #: Lookups answered from the cache, and those that ran the filters.
        self.hits = 0
        self.misses = 0

    def get(self, x: torch.Tensor, filters: nn.Module) -> torch.Tensor:
        """``filters(x)``, from the cache when ``x`` was seen (the newest entry first)."""
        for i in range(len(self._items) - 1, -1, -1):
            key, value = self._items[i]
            if key.shape == x.shape and key.dtype == x.dtype and key.device == x.device and torch.equal(key, x):
                self._items.append(self._items.pop(i))
                self.hits += 1
                return value
        value = filters(x)
        self.misses += 1
        size = _nbytes(x) + _nbytes(value)
        if size > self.max_bytes:
            return value
        self._items.append((x.clone(), value))
        del self._items[:-self.entries]
        while sum(_nbytes(k) + _nbytes(v) for k, v in self._items) > self.max_bytes:
            self._items.pop(0)
        return value

    def clear(self) -> None:
        """Forget every entry."""
        self._items.clear()


def shrink(x: torch.Tensor, factors: Sequence[int]) -> torch.Tensor:
    """``x`` (``(N, C, *spatial)``) shrunk by ``factors`` per spatial axis: the mean of each
    block (an axis not a multiple of its factor is first padded by replicating its last
    voxels). All factors 1: ``x`` itself."""
    factors = tuple(int(f) for f in factors)
    if all(f == 1 for f in factors):
        return x
    pads: list[int] = []
    for n, f in zip(reversed(x.shape[2:]), reversed(factors)):
        pads += [0, (-n) % f]
    if any(pads):
        x = F.pad(x, pads, mode="replicate")
    pool = F.avg_pool2d if x.dim() == 4 else F.avg_pool3d
    return pool(x, kernel_size=factors, stride=factors)


def enlarge(y: torch.Tensor, factors: Sequence[int], size: Sequence[int]) -> torch.Tensor:
    """``y`` (``(N, C, *spatial)``, the output on an image :func:`shrink` made) back at the
    full ``size``: linear interpolation between the blocks' centres (``align_corners=False``),
    cropped where :func:`shrink` padded. All factors 1: ``y`` itself."""
    factors = tuple(int(f) for f in factors)
    if all(f == 1 for f in factors):
        return y
    mode = "bilinear" if y.dim() == 4 else "trilinear"
    y = F.interpolate(y, scale_factor=tuple(float(f) for f in factors), mode=mode, align_corners=False)
    if tuple(y.shape[2:]) != tuple(size):
        y = y[(..., *(slice(0, int(n)) for n in size))]
    return y


class FilteredNetwork(nn.Module):
    """A network behind a fixed :class:`FilterBank`; exposes the network's shape attributes.

    Parameters
    ----------
    bank
        The filter bank (input: the image channels).
    net
        The network (input: ``n_filter_channels(in_channels, sigmas)`` channels).
    in_channels
        Image channels (before the filters).
    input_norm
        Standardise the filters' channels by a BatchNorm without learnt scale and shift
        (``TrainConfig.input_norm``): batch statistics in training, running ones in prediction.
    smoothing
        ``TrainConfig.output_smoothing``: in prediction (eval mode) the probabilities of the
        classes that form regions are smoothed over this σ (pixels along the finest axis; per
        axis by ``spacing`` as the filters are), three box filters per axis
        (:func:`box_widths`), and returned as logits again (:meth:`smooth`); 0: never. Training
        (train mode) learns the network's own logits at the strokes, and keeps
        :attr:`region_share`, which tells the classes that form regions from thin ones.
    spacing
        Physical voxel size per axis, for ``smoothing``.
    multilabel
        The logits are per-channel sigmoid logits (multi-label mode), not softmax logits.
    reduction
        Per spatial axis, the factor by which the input is shrunk before the filters
        (:func:`shrink`; ``TrainConfig.reduction``); the logits, smoothed or not, are enlarged
        back to the input's size (:func:`enlarge`). ``None`` or all 1: none. The bank, the
        network and ``spacing`` are then those of the shrunk image.
    """

    def __init__(self, bank: FilterBank, net: nn.Module, in_channels: int, input_norm: bool = False,
                 smoothing: float = 0.0, spacing: Sequence[float] | None = None,
                 multilabel: bool = False, reduction: Sequence[int] | None = None) -> None:
        super().__init__()
        #: Per spatial axis, the input's shrink factor (all 1: none).
        self.reduction = tuple(int(f) for f in reduction) if reduction is not None else (1,) * bank.spatial_dims
        if len(self.reduction) != bank.spatial_dims or min(self.reduction) < 1:
            raise ValueError(f"reduction needs {bank.spatial_dims} factors >= 1, got {reduction!r}")
        self.filters = bank
        self.net = net
        self.in_channels = int(in_channels)
        channels = n_filter_channels(
            self.in_channels, bank.sigmas, texture=bank.texture, context=bank.context
        ) if input_norm else 0
        norm = nn.BatchNorm2d if bank.spatial_dims == 2 else nn.BatchNorm3d
        #: The standardisation of the filters' channels, or None.
        self.input_norm = norm(channels, affine=False) if input_norm else None
        self.spatial_dims = bank.spatial_dims
        self.out_channels = getattr(net, "out_channels", None)
        #: Set by :meth:`cache_filters` (live previews); not part of the state dict.
        self.filter_cache: FilterCache | None = None
        if not smoothing >= 0:
            raise ValueError(f"output smoothing must be >= 0, got {smoothing}")
        #: Per spatial axis, the widths of the box filters that smooth the probabilities in prediction.
        self.smoothing_boxes = smoothing_boxes(smoothing, self.spatial_dims, spacing)
        self.multilabel = bool(multilabel)
        if self.smoothing_boxes:
            if self.out_channels is None:
                raise ValueError("output smoothing needs a network with out_channels")
            #: Per class (channel), the running share of the pixels the network calls that class
            #: in training that the smoothing would leave to it (:meth:`_count_regions`): near 1
            #: for classes that form regions, near 0 for thin ones (a boundary a few pixels
            #: wide), which prediction leaves unsmoothed (below :data:`REGION_SHARE`). Kept
            #: like BatchNorm's running statistics, saved with the weights.
            self.register_buffer("region_share", torch.ones(int(self.out_channels)))
        #: Training forwards since the last count (:data:`REGION_COUNT_EVERY`).
        self._uncounted = 0

    def _probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(logits) if self.multilabel else torch.softmax(logits, dim=1)

    def _box_smooth(self, p: torch.Tensor) -> torch.Tensor:
        for axis, boxes in enumerate(self.smoothing_boxes):
            for width in boxes:
                p = box_filter(p, width, 2 + axis)
        return p

    def _decided(self, p: torch.Tensor) -> torch.Tensor:
        """Per class, the pixels that the probabilities ``p`` give it (boolean, ``p``'s shape; a
        tie gives the pixel to each tied class: a count, not a prediction)."""
        if self.multilabel:
            return p > 0.5
        return p >= p.amax(dim=1, keepdim=True)

    @torch.no_grad()
    def _count_regions(self, logits: torch.Tensor) -> None:
        """Move :attr:`region_share` by :data:`REGION_SHARE_MOMENTUM` towards this batch's share
        per class (classes the batch does not predict are left as they are). Training calls it
        in one forward pass of :data:`REGION_COUNT_EVERY`."""
        p = self._probabilities(logits.float())
        raw = self._decided(p)
        kept = raw & self._decided(self._box_smooth(p))
        dims = [0, *range(2, p.dim())]
        n = raw.sum(dim=dims).float()
        share = kept.sum(dim=dims).float() / n.clamp(min=1.0)
        seen = n > 0
        self.region_share[seen] = torch.lerp(self.region_share[seen], share[seen], REGION_SHARE_MOMENTUM)

    def smooth(self, logits: torch.Tensor) -> torch.Tensor:
        """``logits`` (``(N, K, *spatial)``) as probabilities (softmax over the classes, or a
        sigmoid per channel in multi-label mode), those of the classes that form regions
        (:attr:`region_share` at least :data:`REGION_SHARE`) smoothed as
        :attr:`smoothing_boxes` say (exclusive: then normalised to sum to 1 again), and back to
        logits of those probabilities (float32; probabilities kept within
        :data:`SMOOTHED_FLOOR` of 0 and 1).

        Probabilities, not logits: a region's logits are larger on one side of its edge than on
        the other, and their average would move the edge towards the smaller side; the average
        of probabilities keeps a straight edge where it was. Thin classes keep their own
        probabilities: smoothed over σ 4 a boundary two pixels wide would vanish. In multi-label
        mode, where the smoothed probability that some channel is present (the channels'
        maximum, smoothed) exceeds 0.5 and no smoothed channel does, the strongest channel takes
        that probability: a mosaic of two channels does not fall to the background.
        """
        p = self._probabilities(logits.float())
        regions = (self.region_share >= REGION_SHARE).reshape(1, -1, *([1] * (p.dim() - 2)))
        q = torch.where(regions, self._box_smooth(p), p)
        if self.multilabel:
            # Each channel smoothed on its own: where the network left a mosaic of two channels,
            # neither may reach 0.5 although some channel is present all over. Where the smoothed
            # "some channel present" does, its strongest channel is present.
            some = self._box_smooth(p.amax(dim=1, keepdim=True))
            best = q.amax(dim=1, keepdim=True)
            lift = (some > 0.5) & (best <= 0.5) & (q == best)
            q = torch.where(lift, some.expand_as(q), q)
        else:
            q = q / q.sum(dim=1, keepdim=True)
        p = q.clamp(SMOOTHED_FLOOR, 1.0 - SMOOTHED_FLOOR)
        return torch.log(p) - torch.log1p(-p) if self.multilabel else torch.log(p)

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any, **kwargs: Any) -> None:
        # weights saved without smoothing (a run resumed with it): every class starts as a region
        if self.smoothing_boxes and prefix + "region_share" not in state_dict:
            state_dict[prefix + "region_share"] = torch.ones_like(self.region_share)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def cache_filters(self, entries: int = FilterCache.ENTRIES) -> None:
        """Keep the filter responses of the last ``entries`` inputs when not computing
        gradients: a live preview predicts the same tiles again with new weights, and the
        fixed filters are a third of a 3-D preview's time on a CPU."""
        self.filter_cache = FilterCache(entries)

    @property
    def divisor(self) -> tuple[int, ...]:
        """Per-axis input size multiple of the wrapped network (times :attr:`reduction`)."""
        inner = getattr(self.net, "divisor", (1,) * self.spatial_dims)
        return tuple(int(d) * f for d, f in zip(inner, self.reduction))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Filter, then run the network; with ``smoothing``, in prediction (eval mode) smooth
        the probabilities of its classes that form regions (:meth:`smooth`), in training count
        which those are (:meth:`_count_regions`). With a :attr:`reduction`, all of that on the
        input shrunk (:func:`shrink`), and the logits enlarged back to the input's size.

        A training batch may carry, after the image's ``in_channels`` channels, its region
        channels computed on the whole image (:func:`image_regions`, cropped with the patch by
        :class:`segstudio.core.data.PatchSampler`); they stand in for the bank's own.
        """
        size = x.shape[2:]
        x = shrink(x, self.reduction)
        return enlarge(self._shrunk_forward(x), self.reduction, size)

    def _shrunk_forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] > self.in_channels:
            c = self.in_channels
            features = self.filters(x[:, :c], regions=x[:, c:])
        elif self.filter_cache is not None and not torch.is_grad_enabled():
            features = self.filter_cache.get(x, self.filters)
        else:
            features = self.filters(x)
        if self.input_norm is not None:
            features = self.input_norm(features)
        y = self.net(features)
        if self.smoothing_boxes:
            if not self.training:
                return self.smooth(y)
            if self._uncounted % REGION_COUNT_EVERY == 0:
                self._count_regions(y)
            self._uncounted += 1
        return y


#: The smoothed probabilities' distance from 0 and 1 at least (:meth:`FilteredNetwork.smooth`):
#: their logits stay finite.
SMOOTHED_FLOOR = 1e-6
#: A class whose :attr:`FilteredNetwork.region_share` is below this is thin: prediction does not
#: smooth it. On saved predictions of the quality matrix (a majority vote over σ 4 of the
#: network's labels, benchmarks/runs/smoothing_probe_2026-12-05_s32.py) the textures' classes
#: gained and a boundary class a few pixels wide fell from Dice 0.41–0.78 to 0.005–0.16;
#: trained, the share told the boundary apart on each of the four textured paintings of an
#: object family in seeds 0–1 (benchmarks/RESULTS.md, *Smoothing textured predictions*).
REGION_SHARE = 0.5
#: Training counts :attr:`FilteredNetwork.region_share` in one forward pass of this many: the
#: count costs a 2-D step of the fast preset about a tenth of its time (3-D: a fifteenth);
#: counted in every fourth, a step with smoothing took 1.02× one without in 2-D and 3-D
#: (benchmarks/step_time.py ``--set output_smoothing=4``, two threads).
REGION_COUNT_EVERY = 4
#: How far each count moves :attr:`FilteredNetwork.region_share` towards its batch's share
#: (0.2 every fourth step: about 0.05 a step).
REGION_SHARE_MOMENTUM = 0.2


#: Bytes of region channels kept per image at most (:func:`image_regions`); a larger image
#: trains with the channels computed on each patch instead.
REGION_BYTES = 1 << 30
#: Bytes of working memory one slab of :func:`image_regions` may take, about.
REGION_SLAB_BYTES = 256 << 20


@torch.no_grad()
def image_regions(
    bank: FilterBank,
    image: np.ndarray,
    device: torch.device | str = "cpu",
    max_bytes: int = REGION_BYTES,
    reduction: Sequence[int] | None = None,
) -> np.ndarray | None:
    """The region channels of a whole normalised image (``(C, *spatial)`` float32), for training.

    Returns ``(C·3·len(ρ), *spatial)`` float32 (:meth:`FilterBank.region_channels`), or ``None``
    when the bank has no region scales or the result would take more than ``max_bytes``.

    A training patch cut from the image then carries the statistics of its pixels' real
    neighbourhoods, as whole-image prediction sees them, instead of statistics over the
    patch's replicated borders: with ρ 8 nearly every voxel of a 16 × 64 × 64 patch lies within
    reach of its border (benchmarks/RESULTS.md, *Region channels from the whole image*).
    Computed in slabs along the first axis, each with the bank's reach on either side, so that
    the result equals the bank on the whole image while the working memory stays bounded.

    With a ``reduction`` (*downsample*: the bank is that of the shrunk image) the channels are
    computed on the image shrunk (:func:`shrink`) and repeated back over each block, cropped to
    the image's size, so that a patch cut from them and shrunk with the image carries them.
    """
    if not bank.context:
        return None
    factors = tuple(int(f) for f in reduction) if reduction is not None else (1,) * bank.spatial_dims
    if any(f > 1 for f in factors):
        size = image.shape[1:]
        small = shrink(torch.from_numpy(np.ascontiguousarray(image))[None], factors)[0].numpy()
        out = image_regions(bank, small, device, max_bytes // math.prod(factors))
        if out is None:
            return None
        for axis, f in enumerate(factors):
            out = np.repeat(out, f, axis=1 + axis)
        return np.ascontiguousarray(out[(slice(None), *(slice(0, n) for n in size))])
    c, *spatial = image.shape
    out_channels = c * bank.region_features
    if out_channels * math.prod(spatial) * 4 > max_bytes:
        return None
    out = np.empty((out_channels, *spatial), dtype=np.float32)
    reach = bank.radius()[0]
    # the moments (2 + d(d+1)/2 channels), their smoothing's copies and the gradients
    per_row = c * (2 + 2 * bank.spatial_dims * (bank.spatial_dims + 1)) * 4 * math.prod(spatial[1:])
    rows = max(1, REGION_SLAB_BYTES // max(per_row, 1) - 2 * reach)
    for z0 in range(0, spatial[0], rows):
        z1 = min(z0 + rows, spatial[0])
        a, b = max(z0 - reach, 0), min(z1 + reach, spatial[0])
        x = torch.from_numpy(np.ascontiguousarray(image[:, a:b])).to(device)
        y = bank.region_channels(x[None])[0]
        out[:, z0:z1] = y[:, z0 - a : z0 - a + (z1 - z0)].cpu().numpy()
    return out
