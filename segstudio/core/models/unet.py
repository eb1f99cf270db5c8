"""A U-Net for 2D and 3D with anisotropy-aware pooling.

One class serves both ranks (``spatial_dims`` 2 or 3), as in MONAI and
segmentation_models_pytorch. Each resolution level has two ``conv → norm → LeakyReLU`` blocks
(norm: BatchNorm, InstanceNorm or none); down-sampling is a strided convolution and
up-sampling a transposed convolution, both with a per-axis stride so that thin or anisotropic
axes (z in most microscopy) are not pooled (nnU-Net's rule: pool an axis only while its
spacing is at most twice the finest spacing and it still has room).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

NEGATIVE_SLOPE = 0.01
ANISOTROPY_RATIO = 2.0
MIN_FEATURE_MAP = 4
#: Run the U-Net's layers channels-last on a CPU (see :func:`cpu_memory_format`).
CHANNELS_LAST_ON_CPU = True


def cpu_memory_format(x: torch.Tensor) -> torch.memory_format | None:
    """The memory format the U-Net's layers run in for input ``x`` (``None``: as it comes).

    On a CPU, PyTorch's oneDNN convolutions run forward and backward 2.3–2.4× faster on
    channels-last tensors than on the default layout (``benchmarks/channels_last.py``; RESULTS,
    *Channels-last on the CPU*): a 3D training step of the fast preset 237 → 151 ms, 2D
    70 → 52 ms on two cores. Other devices keep their layout (not measured there), and so do
    traces and exports, whose graphs stay free of layout changes.
    """
    if not CHANNELS_LAST_ON_CPU or x.device.type != "cpu" or x.dim() not in (4, 5):
        return None
    if torch.jit.is_scripting() or torch.jit.is_tracing() or torch.compiler.is_compiling():
        return None
    return torch.channels_last if x.dim() == 4 else torch.channels_last_3d


def pooling_plan(
    spatial_dims: int,
    depth: int,
    spacing: Sequence[float] | None = None,
    patch_size: Sequence[int] | None = None,
    *,
    anisotropy_ratio: float = ANISOTROPY_RATIO,
    min_size: int = MIN_FEATURE_MAP,
) -> list[tuple[int, ...]]:
    """Per-level strides (``depth - 1`` tuples of 1 or 2 per axis).

    Parameters
    ----------
    spatial_dims
        2 or 3.
    depth
        Number of resolution levels (``depth - 1`` down-samplings).
    spacing
        Physical voxel size per axis; ``None`` means isotropic.
    patch_size
        Training patch size; an axis stops being pooled when it would fall below ``min_size``.
    """
    spacing_now = list(spacing) if spacing is not None else [1.0] * spatial_dims
    size_now = list(patch_size) if patch_size is not None else [1 << 30] * spatial_dims
    plan: list[tuple[int, ...]] = []
    for _ in range(depth - 1):
        finest = min(spacing_now)
        stride = tuple(
            2 if (s <= anisotropy_ratio * finest and n // 2 >= min_size) else 1
            for s, n in zip(spacing_now, size_now)
        )
        plan.append(stride)
        spacing_now = [s * k for s, k in zip(spacing_now, stride)]
        size_now = [n // k for n, k in zip(size_now, stride)]
    return plan


def _conv(spatial_dims: int) -> type[nn.Module]:
    return nn.Conv2d if spatial_dims == 2 else nn.Conv3d


#: Normalisation layers :class:`UNet` accepts (``norm=``).
NORMS: tuple[str, ...] = ("instance", "batch", "none")


def _norm(spatial_dims: int, channels: int, norm: str) -> nn.Module:
    if norm == "instance":
        return (nn.InstanceNorm2d if spatial_dims == 2 else nn.InstanceNorm3d)(channels, affine=True)
    if norm == "batch":
        return (nn.BatchNorm2d if spatial_dims == 2 else nn.BatchNorm3d)(channels)
    return nn.Identity()


class ConvBlock(nn.Sequential):
    """``conv → norm → LeakyReLU``, twice. The first conv may be strided."""

    def __init__(
        self,
        spatial_dims: int,
        cin: int,
        cout: int,
        stride: Sequence[int] | int = 1,
        norm: str = "instance",
    ) -> None:
        conv = _conv(spatial_dims)
        stride_t = tuple(stride) if not isinstance(stride, int) else (stride,) * spatial_dims
        bias = norm == "none"
        super().__init__(
            conv(cin, cout, 3, stride=stride_t, padding=1, bias=bias),
            _norm(spatial_dims, cout, norm),
            nn.LeakyReLU(NEGATIVE_SLOPE, inplace=True),
            conv(cout, cout, 3, padding=1, bias=bias),
            _norm(spatial_dims, cout, norm),
            nn.LeakyReLU(NEGATIVE_SLOPE, inplace=True),
        )


class UNet(nn.Module):
    """U-Net for 2D or 3D images of any size.

    Parameters
    ----------
    spatial_dims
        2 or 3.
    in_channels
        Image channels.
    out_channels
        Classes (logits per class; no activation).
    features
        Channels per level, e.g. ``(16, 32, 64, 128)``; its length is the depth.
    strides
        Per-level strides from :func:`pooling_plan`; default: 2 on every axis.
    norm
        ``"instance"`` (per-sample statistics), ``"batch"`` or ``"none"`` (convolutions with
        bias); see :data:`NORMS`.

    Notes
    -----
    Inputs whose size is not a multiple of the total stride (or smaller than twice it) are
    padded (reflect where possible) and the output is cropped back, so any input size works.
    """

    def __init__(
        self,
        spatial_dims: int = 2,
        in_channels: int = 1,
        out_channels: int = 2,
        features: Sequence[int] = (16, 32, 64, 128),
        strides: Sequence[Sequence[int]] | None = None,
        norm: str = "instance",
    ) -> None:
        super().__init__()
        if norm not in NORMS:
            raise ValueError(f"norm must be one of {', '.join(NORMS)}, got {norm!r}")
        if spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}")
        feats = list(features)
        if len(feats) < 2:
            raise ValueError("a U-Net needs at least two levels (len(features) >= 2)")
        plan = [tuple(s) for s in strides] if strides is not None else [(2,) * spatial_dims] * (len(feats) - 1)
        if len(plan) != len(feats) - 1:
            raise ValueError(f"strides must have len(features) - 1 = {len(feats) - 1} entries")
        self.spatial_dims = spatial_dims
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.strides = plan
        self.norm = norm
        self.encoder = nn.ModuleList([ConvBlock(spatial_dims, in_channels, feats[0], norm=norm)])
        for i, stride in enumerate(plan):
            self.encoder.append(ConvBlock(spatial_dims, feats[i], feats[i + 1], stride, norm=norm))
        tconv = nn.ConvTranspose2d if spatial_dims == 2 else nn.ConvTranspose3d
        self.upsamplers = nn.ModuleList()
        self.decoder = nn.ModuleList()
        for i in reversed(range(len(plan))):
            self.upsamplers.append(tconv(feats[i + 1], feats[i], plan[i], stride=plan[i], bias=False))
            self.decoder.append(ConvBlock(spatial_dims, 2 * feats[i], feats[i], norm=norm))
        self.head = _conv(spatial_dims)(feats[0], out_channels, 1)

    @property
    def divisor(self) -> tuple[int, ...]:
        """Per-axis factor that input sizes are padded to internally."""
        total = [1] * self.spatial_dims
        for stride in self.strides:
            total = [t * s for t, s in zip(total, stride)]
        return tuple(total)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return logits with the spatial size of ``x`` (contiguous; the layers in between run
        in :func:`cpu_memory_format`)."""
        layout = cpu_memory_format(x)
        if layout is not None:
            x = x.contiguous(memory_format=layout)
        spatial = x.shape[2:]
        pads: list[int] = []
        for n, d in zip(reversed(spatial), reversed(self.divisor)):
            # A multiple of the total stride, and at least 2 at the bottleneck (Instance/BatchNorm
            # needs more than one element per channel).
            target = max(n + (-n) % d, 2 * d) if d > 1 else n
            pads += [0, target - n]
        padded = any(pads)
        if padded:
            mode = "reflect" if all(p < n for p, n in zip(pads[1::2], reversed(spatial))) else "replicate"
            x = F.pad(x, pads, mode=mode)
        skips = []
        for block in self.encoder:
            x = block(x)
            skips.append(x)
        x = skips.pop()
        for up, block in zip(self.upsamplers, self.decoder):
            x = up(x)
            x = block(torch.cat([x, skips.pop()], dim=1))
        x = self.head(x)
        if padded:
            x = x[(..., *(slice(0, n) for n in spatial))]
        return x if layout is None else x.contiguous()
