"""Unsupervised loss terms on every pixel: what the image says where nobody painted.

Sparse strokes leave most pixels unlabelled, and a network trained on the strokes alone fills
the gap next to an object with whatever its receptive field suggests — typically a rim of the
object's class (the *halo*). Regularised losses for weak supervision (Tang et al., "On
Regularized Losses for Weakly-supervised CNN Segmentation", ECCV 2018; Obukhov et al., "Gated
CRF Loss", 2019) add a term on all pixels that asks neighbours that look alike to agree, so the
label changes where the image changes. It depends on no painting habit and works the same for
exclusive (softmax) and multi-label (sigmoid) outputs.

:class:`PairwiseAffinityLoss` is the relaxed Potts model over a local window::

    L = Σ_i Σ_{j ∈ N(i)} w_ij · P(label_i ≠ label_j) / Σ_i Σ_{j ∈ N(i)} 1

    w_ij = exp(-‖g_i − g_j‖² / 2σ²)        (g: the guide)

The guide ``g`` is the input image lightly smoothed (``guide="intensity"``), or, for textures,
its local statistics (``guide="texture"``): per channel the mean and standard deviation over a
Gaussian window of :data:`TEXTURE_SCALE` pixels in-plane. With intensity, the dark gaps between
a texture's grains look unlike the grains and the term lets the label change there; with the
local statistics the whole texture looks alike and only region borders (a change of mean or of
contrast) let it change.

with ``P(label_i ≠ label_j) = 1 − Σ_k p_ik p_jk`` for softmax outputs and the per-channel mean
of ``p_i (1 − p_j) + (1 − p_i) p_j`` for sigmoid outputs. The window holds the in-plane offsets
within ``radius`` pixels and, in 3D, the voxels directly above and below.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from segstudio.core.annotations import EXCLUSIVE, check_mode
from segstudio.core.config import PAIRWISE_GUIDES as GUIDES
from segstudio.core.features import correlate_along, gaussian_kernels

__all__ = ["GUIDES", "TEXTURE_SCALE", "PairwiseAffinityLoss", "window_offsets"]

#: In-plane σ (pixels) of the window the ``texture`` guide takes its statistics over.
TEXTURE_SCALE = 3.0


def window_offsets(spatial_dims: int, radius: int) -> list[tuple[int, ...]]:
    """Half of the neighbour offsets (one of each ``±o`` pair) of the regulariser's window.

    2D: every ``(dy, dx)`` with ``max(|dy|, |dx|) <= radius``; 3D: those in-plane offsets with
    ``dz = 0``, plus ``(±1, 0, 0)`` (z is usually coarse, so only the direct neighbours).
    """
    r = int(radius)
    plane = [(dy, dx) for dy in range(-r, r + 1) for dx in range(-r, r + 1) if (dy, dx) > (0, 0)]
    if spatial_dims == 2:
        return plane
    return [(0, dy, dx) for dy, dx in plane] + [(1, 0, 0)]


def _shifted(t: torch.Tensor, offset: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """Views ``a``, ``b`` of ``t`` (``(N, C, *spatial)``) with ``b[i] = t[i + offset]``."""
    a_idx, b_idx = [slice(None), slice(None)], [slice(None), slice(None)]
    for o, n in zip(offset, t.shape[2:]):
        if o >= 0:
            a_idx.append(slice(0, n - o))
            b_idx.append(slice(o, n))
        else:
            a_idx.append(slice(-o, n))
            b_idx.append(slice(0, n + o))
    return t[tuple(a_idx)], t[tuple(b_idx)]


class PairwiseAffinityLoss(nn.Module):
    """Relaxed Potts regulariser with image-gated weights (see the module notes).

    Parameters
    ----------
    mode
        ``"exclusive"`` (softmax over classes) or ``"multilabel"`` (sigmoid per class).
    spatial_dims
        2 or 3.
    radius
        In-plane window radius in pixels.
    sigma
        Intensity scale of the gate, in units of the normalised image (``p1 .. p99.8`` → 0 .. 1).
    guide
        ``"intensity"`` or ``"texture"`` (see the module notes).
    """

    def __init__(self, mode: str, spatial_dims: int, radius: int = 2, sigma: float = 0.1,
                 form: str = "quadratic", guide: str = "intensity") -> None:
        super().__init__()
        if guide not in GUIDES:
            raise ValueError(f"guide must be one of {', '.join(GUIDES)}, got {guide!r}")
        self.guide_kind = guide
        if form not in ("potts", "quadratic"):
            raise ValueError(f"form must be 'potts' or 'quadratic', got {form!r}")
        self.form = form
        self.exclusive = check_mode(mode) == EXCLUSIVE
        if spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}")
        if radius < 1 or not sigma > 0:
            raise ValueError(f"radius must be >= 1 and sigma > 0, got {radius}, {sigma}")
        self.spatial_dims = spatial_dims
        self.offsets = window_offsets(spatial_dims, radius)
        self.sigma = float(sigma)

    def guide(self, image: torch.Tensor) -> torch.Tensor:
        """The gating image: ``image`` averaged over 3×3 in-plane (noise), float32; or, with the
        ``texture`` guide, each channel's local mean and standard deviation."""
        x = image.float()
        if self.guide_kind == "texture":
            mean = self._smooth(x)
            std = torch.sqrt(torch.clamp(self._smooth(x * x) - mean * mean, min=0.0) + 1e-12)
            return torch.cat([mean, std], dim=1)
        k = (3, 3) if self.spatial_dims == 2 else (1, 3, 3)
        pool = F.avg_pool2d if self.spatial_dims == 2 else F.avg_pool3d
        return pool(x, k, stride=1, padding=tuple(s // 2 for s in k), count_include_pad=False)

    def _smooth(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` (``(N, C, *spatial)``) smoothed in-plane by a Gaussian of :data:`TEXTURE_SCALE` px."""
        k = gaussian_kernels(TEXTURE_SCALE)[:1].to(x)
        nd = self.spatial_dims
        y = x.reshape(-1, 1, *x.shape[2:])
        for axis in (nd - 2, nd - 1):  # the two in-plane axes
            y = correlate_along(y, k, axis, nd)
        return y.reshape(x.shape)

    def forward(self, logits: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        """The regulariser for ``logits`` ``(N, K, *spatial)`` and the input ``image`` ``(N, C, *spatial)``."""
        x = logits.float()
        p = torch.softmax(x, dim=1) if self.exclusive else torch.sigmoid(x)
        g = self.guide(image)
        inv = 1.0 / (2.0 * self.sigma**2)
        total = x.new_zeros(())
        count = 0
        for off in self.offsets:
            if any(abs(o) >= n for o, n in zip(off, x.shape[2:])):
                continue
            pa, pb = _shifted(p, off)
            ga, gb = _shifted(g, off)
            w = torch.exp(-((ga - gb) ** 2).sum(1) * inv)
            if self.form == "potts":
                differ = 1.0 - (pa * pb).sum(1) if self.exclusive else (pa * (1.0 - pb) + (1.0 - pa) * pb).mean(1)
            else:  # quadratic: zero wherever neighbours agree, however unsure both are
                differ = 0.5 * ((pa - pb) ** 2).sum(1) if self.exclusive else ((pa - pb) ** 2).mean(1)
            total = total + (w * differ).sum()
            count += w.numel()
        return total / max(count, 1)
