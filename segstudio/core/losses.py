"""Segmentation losses for sparse (painted) supervision, exclusive and multi-label.

One factory, :func:`make_loss`, builds every loss. Every module it returns has the same call
signature in both modes::

    loss = module(logits, target, mask=None)  # -> 0-dim float32 (or float64) tensor

Exclusive mode (one class per pixel)
    ``logits`` ``(N, C, *spatial)`` float, raw (never softmax-ed); ``target`` ``(N, *spatial)``
    integer labels in ``[0, C)`` with unpainted pixels set to ``IGNORE_INDEX`` (-100); never
    one-hot. ``mask`` is accepted for signature compatibility and ignored: the painted set is
    always ``target != IGNORE_INDEX``.

Multi-label mode (independent sigmoid per class)
    ``logits`` ``(N, C, *spatial)``; ``target`` float ``{0, 1}`` ``(N, C, *spatial)``; ``mask``
    float/bool ``{0, 1}`` broadcastable to ``(N, C, *spatial)``, 1 where that class was painted
    (positively or negatively) at that pixel. ``mask`` is required.

Shared rules
    * A batch with no painted pixel gives a loss of exactly 0 with finite, all-zero gradients
      (never NaN).
    * Losses are evaluated in float32 even for fp16/bf16 logits (AMP); float64 logits stay
      float64 (so :func:`torch.autograd.gradcheck` works).
    * Class weights (exclusive) / ``pos_weight`` (multi-label) are a registered buffer, so
      ``module.to(device)`` moves them; the spatial rank is read from the logits at every call,
      so one module serves 2D and 3D.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from segstudio.core.annotations import EXCLUSIVE, IGNORE_INDEX, MULTILABEL
from segstudio.core.errors import UserInputError

__all__ = [
    "LOSS_ALIASES",
    "LOSS_DEFAULTS",
    "LOSS_NAMES",
    "DiceBCELoss",
    "DiceCELoss",
    "ExclusiveFocalLoss",
    "GeneralizedDiceLoss",
    "LossDefaults",
    "MaskedBCELoss",
    "MaskedCrossEntropyLoss",
    "MultilabelFocalLoss",
    "SegmentationLoss",
    "SoftDiceLoss",
    "broadcast_pos_weight",
    "make_loss",
]


@dataclasses.dataclass(frozen=True)
class LossDefaults:
    """Default hyper-parameters of the losses (overridable through ``make_loss(**options)``).

    Attributes
    ----------
    gamma : float
        Focusing exponent of the focal losses (Lin et al. 2017); 0 gives back (weighted) CE/BCE.
    smooth : float
        Additive smoothing of every Dice ratio, ``(2 I + smooth) / (P + T + smooth)``.
    dice_weight : float
        Weight of the Dice term in the compound losses ``dice_ce`` and ``dice_bce``.
    ce_weight : float
        Weight of the cross-entropy term in ``dice_ce``.
    bce_weight : float
        Weight of the BCE term in ``dice_bce``.
    """

    gamma: float = 2.0
    smooth: float = 1e-5
    dice_weight: float = 1.0
    ce_weight: float = 1.0
    bce_weight: float = 1.0


LOSS_DEFAULTS = LossDefaults()

LOSS_NAMES: dict[str, tuple[str, ...]] = {
    EXCLUSIVE: ("ce", "focal", "gdl", "dice_ce"),
    MULTILABEL: ("bce", "focal", "dice", "dice_bce"),
}
"""Canonical loss names per annotation mode (the first one is the default choice)."""

LOSS_ALIASES: dict[str, dict[str, str]] = {
    EXCLUSIVE: {
        "cross_entropy": "ce",
        "weighted_ce": "ce",
        "generalized_dice": "gdl",
        "dice+ce": "dice_ce",
    },
    MULTILABEL: {
        "focal_bce": "focal",
        "soft_dice": "dice",
        "dice+bce": "dice_bce",
    },
}
"""Accepted alternative spellings, mapped to the canonical names of :data:`LOSS_NAMES`."""

_OPTION_NAMES: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(LossDefaults))


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------


def broadcast_pos_weight(p: torch.Tensor, spatial_dims: int) -> torch.Tensor:
    """Reshape a per-class ``pos_weight`` so it broadcasts against ``(N, C, *spatial)``.

    ``nn.BCEWithLogitsLoss(pos_weight=p)`` broadcasts ``p`` against the *last* dimension, so a
    plain ``(C,)`` vector silently lines up with the width axis (or raises when ``C != W``).
    The class axis of segmentation logits is dim 1, hence the trailing singleton dims.

    Parameters
    ----------
    p : torch.Tensor
        1-D tensor of shape ``(C,)``.
    spatial_dims : int
        Number of spatial dimensions of the logits (2 for ``(N, C, H, W)``, 3 for
        ``(N, C, D, H, W)``).

    Returns
    -------
    torch.Tensor
        A view of ``p`` with shape ``(C, 1, ..., 1)`` (``spatial_dims`` ones).

    Raises
    ------
    ValueError
        If ``p`` is not 1-D or ``spatial_dims`` is negative.
    """
    if p.dim() != 1:
        raise ValueError(f"pos_weight must be 1-D of shape (C,), got shape {tuple(p.shape)}")
    if spatial_dims < 0:
        raise ValueError(f"spatial_dims must be >= 0, got {spatial_dims}")
    return p.reshape(p.shape[0], *([1] * spatial_dims))


def _compute_dtype(logits: torch.Tensor) -> torch.dtype:
    """Float64 stays float64; everything else (fp16, bf16, fp32) is computed in float32."""
    return torch.float64 if logits.dtype == torch.float64 else torch.float32


def _safe_div(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    """``num / den`` where ``den > 0`` and 0 elsewhere, with finite gradients everywhere."""
    positive = den > 0
    return torch.where(positive, num / torch.where(positive, den, torch.ones_like(den)), 0.0)


def _dice_ratio(
    inter: torch.Tensor, psum: torch.Tensor, tsum: torch.Tensor, smooth: float
) -> torch.Tensor:
    """Soft Dice ``(2 I + s) / (P + T + s)``; defined as 1 (perfect) when ``P + T + s == 0``."""
    den = psum + tsum + smooth
    positive = den > 0
    ratio = (2.0 * inter + smooth) / torch.where(positive, den, torch.ones_like(den))
    return torch.where(positive, ratio, torch.ones_like(ratio))


def _reduce_dims(ndim: int) -> tuple[int, ...]:
    """All dims except the class dim 1 of an ``(N, C, *spatial)`` tensor."""
    return (0, *range(2, ndim))


def _as_weight_tensor(weights: torch.Tensor | Sequence[float] | None) -> torch.Tensor | None:
    """Validate user class weights and turn them into a detached float32 1-D tensor."""
    if weights is None:
        return None
    w = torch.as_tensor(weights).detach().to(torch.float32).clone()
    if w.dim() != 1:
        raise UserInputError(f"class weights must be a 1-D sequence, got shape {tuple(w.shape)}")
    if not bool(torch.isfinite(w).all()) or bool((w < 0).any()):
        raise UserInputError(f"class weights must be finite and >= 0, got {w.tolist()}")
    return w


# ---------------------------------------------------------------------------------------------
# base class
# ---------------------------------------------------------------------------------------------


class SegmentationLoss(nn.Module):
    """Base class: holds the optional per-class weights buffer and validates inputs.

    Parameters
    ----------
    weights : torch.Tensor or sequence of float, optional
        Per-class weights ``(C,)``: class weights in exclusive mode, ``pos_weight`` in
        multi-label mode. Stored as the buffer ``weights`` (``None`` when not given).

    Attributes
    ----------
    mode : str
        ``EXCLUSIVE`` or ``MULTILABEL``.
    """

    mode: str = EXCLUSIVE
    weights: torch.Tensor | None

    def __init__(self, weights: torch.Tensor | Sequence[float] | None = None) -> None:
        super().__init__()
        self.register_buffer("weights", _as_weight_tensor(weights))

    def _weights_for(self, num_classes: int, dtype: torch.dtype) -> torch.Tensor | None:
        """Return the weights cast to ``dtype``, checking their length against ``C``."""
        if self.weights is None:
            return None
        if self.weights.numel() != num_classes:
            raise ValueError(
                f"{type(self).__name__}: {self.weights.numel()} class weights given but the "
                f"logits have C={num_classes} channels"
            )
        return self.weights.to(dtype)

    # -- exclusive -------------------------------------------------------------------------

    @staticmethod
    def _check_exclusive(
        logits: torch.Tensor, target: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Validate exclusive inputs; return ``(x, target_long, painted)``.

        ``x`` is the logits in the compute dtype, ``painted`` a bool ``(N, *spatial)`` mask.
        """
        if logits.dim() < 2:
            raise ValueError(f"logits must be (N, C, *spatial), got shape {tuple(logits.shape)}")
        if target.is_floating_point() or target.is_complex() or target.dtype == torch.bool:
            raise ValueError(
                "exclusive loss needs an integer label map (N, *spatial) with "
                f"{IGNORE_INDEX} for unpainted pixels, not a {target.dtype} tensor "
                "(one-hot / probability targets are not accepted)"
            )
        expected = (logits.shape[0], *logits.shape[2:])
        if tuple(target.shape) != expected:
            raise ValueError(
                f"exclusive target must have shape (N, *spatial) = {expected}, got "
                f"{tuple(target.shape)} (one-hot targets are not accepted)"
            )
        target = target.long()
        painted = target != IGNORE_INDEX
        num_classes = logits.shape[1]
        if bool((painted & ((target < 0) | (target >= num_classes))).any()):
            raise ValueError(
                f"painted labels must lie in [0, {num_classes - 1}] (unpainted = {IGNORE_INDEX})"
            )
        return logits.to(_compute_dtype(logits)), target, painted

    @staticmethod
    def _one_hot(target: torch.Tensor, painted: torch.Tensor, num_classes: int,
                 dtype: torch.dtype) -> torch.Tensor:
        """Masked one-hot ``(N, C, *spatial)``: zero at unpainted pixels."""
        safe = torch.where(painted, target, torch.zeros_like(target))
        onehot = F.one_hot(safe, num_classes).movedim(-1, 1).to(dtype)
        return onehot * painted.unsqueeze(1).to(dtype)

    # -- multi-label -----------------------------------------------------------------------

    @staticmethod
    def _check_multilabel(
        logits: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Validate multi-label inputs; return ``(x, target, mask)`` in the compute dtype."""
        if mask is None:
            raise ValueError(
                "multi-label losses need mask (N, C, *spatial) of painted pixels per class"
            )
        if logits.dim() < 2:
            raise ValueError(f"logits must be (N, C, *spatial), got shape {tuple(logits.shape)}")
        if tuple(target.shape) != tuple(logits.shape):
            raise ValueError(
                f"multi-label target must have the logits' shape {tuple(logits.shape)}, got "
                f"{tuple(target.shape)}"
            )
        try:
            shape = torch.broadcast_shapes(mask.shape, logits.shape)
        except RuntimeError as exc:
            raise ValueError(
                f"mask of shape {tuple(mask.shape)} does not broadcast to the logits' shape "
                f"{tuple(logits.shape)}"
            ) from exc
        if tuple(shape) != tuple(logits.shape):
            raise ValueError(
                f"mask of shape {tuple(mask.shape)} does not broadcast to the logits' shape "
                f"{tuple(logits.shape)}"
            )
        dtype = _compute_dtype(logits)
        return logits.to(dtype), target.to(dtype), mask.to(dtype).expand(logits.shape)

    def extra_repr(self) -> str:
        """Show the weights in ``repr(module)``."""
        w = None if self.weights is None else [round(v, 4) for v in self.weights.tolist()]
        return f"weights={w}"


# ---------------------------------------------------------------------------------------------
# exclusive losses
# ---------------------------------------------------------------------------------------------


def _weighted_ce(x: torch.Tensor, target: torch.Tensor, painted: torch.Tensor,
                 w: torch.Tensor | None) -> torch.Tensor:
    """Torch-semantics weighted mean CE over painted pixels; 0 (not NaN) when ``Σ w[t] == 0``."""
    per_pixel = F.cross_entropy(x, target, weight=w, ignore_index=IGNORE_INDEX, reduction="none")
    if w is None:
        den = painted.sum().to(x.dtype)
    else:
        safe = torch.where(painted, target, torch.zeros_like(target))
        den = (w[safe] * painted.to(x.dtype)).sum()
    return _safe_div(per_pixel.sum(), den)


class MaskedCrossEntropyLoss(SegmentationLoss):
    """Weighted cross-entropy on raw logits, ignoring unpainted pixels (exclusive mode).

    Same value as ``F.cross_entropy(logits, target, weight=w, ignore_index=-100)`` (mean
    reduction: ``Σ w[t_i] · (-log p_i,t_i) / Σ w[t_i]`` over painted pixels ``i``), except that
    it returns 0 with zero gradients, instead of NaN, when no pixel is painted or when all
    painted pixels belong to weight-0 classes.

    Parameters
    ----------
    weights : torch.Tensor or sequence of float, optional
        Class weights ``(C,)``.
    """

    mode = EXCLUSIVE

    def forward(
        self, logits: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Compute the loss.

        Parameters
        ----------
        logits : torch.Tensor
            Raw scores ``(N, C, *spatial)``.
        target : torch.Tensor
            Integer labels ``(N, *spatial)``, ``IGNORE_INDEX`` where unpainted.
        mask : torch.Tensor, optional
            Ignored (the painted set is ``target != IGNORE_INDEX``).

        Returns
        -------
        torch.Tensor
            Scalar loss.
        """
        x, target, painted = self._check_exclusive(logits, target)
        return _weighted_ce(x, target, painted, self._weights_for(x.shape[1], x.dtype))


class ExclusiveFocalLoss(SegmentationLoss):
    """Softmax focal loss (Lin et al. 2017), mean over painted pixels (exclusive mode).

    ``loss = Σ_i α[t_i] (1 - p_i,t_i)^γ (-log p_i,t_i) / n_painted`` with ``log p`` from
    ``log_softmax``. Note the normalisation is by the *number* of painted pixels (as in the
    focal-loss paper), not by ``Σ α`` as in weighted CE, so ``gamma=0`` with weights is not
    identical to :class:`MaskedCrossEntropyLoss` (it is when no weights are given).

    Parameters
    ----------
    weights : torch.Tensor or sequence of float, optional
        Per-class ``α`` ``(C,)``; 1 for every class when omitted.
    gamma : float
        Focusing exponent ``γ >= 0``.
    """

    mode = EXCLUSIVE

    def __init__(
        self,
        weights: torch.Tensor | Sequence[float] | None = None,
        gamma: float = LOSS_DEFAULTS.gamma,
    ) -> None:
        super().__init__(weights)
        if gamma < 0:
            raise UserInputError(f"focal gamma must be >= 0, got {gamma}")
        self.gamma = float(gamma)

    def forward(
        self, logits: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Compute the loss (same arguments as :meth:`MaskedCrossEntropyLoss.forward`)."""
        x, target, painted = self._check_exclusive(logits, target)
        w = self._weights_for(x.shape[1], x.dtype)
        safe = torch.where(painted, target, torch.zeros_like(target))
        logp_t = F.log_softmax(x, dim=1).gather(1, safe.unsqueeze(1)).squeeze(1)
        p_t = logp_t.exp()
        term = -((1.0 - p_t).clamp_min(0.0) ** self.gamma) * logp_t
        if w is not None:
            term = term * w[safe]
        term = torch.where(painted, term, torch.zeros_like(term))
        return _safe_div(term.sum(), painted.sum().to(x.dtype))

    def extra_repr(self) -> str:
        """Show gamma and the weights."""
        return f"gamma={self.gamma}, {super().extra_repr()}"


class GeneralizedDiceLoss(SegmentationLoss):
    """Generalized Dice loss (Sudre et al. 2017) over painted pixels (exclusive mode).

    With softmax probabilities ``p``, the masked one-hot target ``t`` and sums over the batch
    and spatial dims restricted to painted pixels::

        T_c = Σ t_c,   P_c = Σ p_c,   I_c = Σ p_c t_c
        w_c = 1 / T_c²  if T_c > 0  else 0
        loss = 1 - (2 Σ_c w̃_c I_c + s) / (Σ_c w̃_c (P_c + T_c) + s),   w̃ = w / max_c w_c

    A class with no painted pixel gets weight 0 (not inf): it is absent from the sparse
    supervision, so it neither dominates nor contributes directly (probability mass put on it
    is still penalised through the softmax). Dividing by ``max w`` only rescales the weights —
    the unsmoothed ratio is unchanged — but keeps the smoothing ``s`` negligible whatever the
    number of painted pixels. The ``weights`` argument is accepted for a uniform factory API
    but unused: the loss computes its own weights. No painted pixel → 0 with zero gradient.

    Parameters
    ----------
    weights : torch.Tensor or sequence of float, optional
        Unused (kept for a uniform signature).
    smooth : float
        Smoothing ``s >= 0``.
    """

    mode = EXCLUSIVE

    def __init__(
        self,
        weights: torch.Tensor | Sequence[float] | None = None,
        smooth: float = LOSS_DEFAULTS.smooth,
    ) -> None:
        super().__init__(weights)
        if smooth < 0:
            raise UserInputError(f"Dice smooth must be >= 0, got {smooth}")
        self.smooth = float(smooth)

    def forward(
        self, logits: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Compute the loss.

        Parameters
        ----------
        logits : torch.Tensor
            Raw scores ``(N, C, *spatial)``.
        target : torch.Tensor
            Integer labels ``(N, *spatial)``, ``IGNORE_INDEX`` where unpainted.
        mask : torch.Tensor, optional
            Ignored.

        Returns
        -------
        torch.Tensor
            Scalar loss.
        """
        x, target, painted = self._check_exclusive(logits, target)
        num_classes = x.shape[1]
        self._weights_for(num_classes, x.dtype)  # only validates the length
        m = painted.unsqueeze(1).to(x.dtype)
        probs = F.softmax(x, dim=1) * m
        onehot = self._one_hot(target, painted, num_classes, x.dtype)
        dims = _reduce_dims(x.dim())
        tsum = onehot.sum(dims)
        psum = probs.sum(dims)
        inter = (probs * onehot).sum(dims)
        w = _safe_div(torch.ones_like(tsum), tsum * tsum)
        w_max = w.max()
        w = _safe_div(w, w_max)
        ratio = _dice_ratio((w * inter).sum(), (w * psum).sum(), (w * tsum).sum(), self.smooth)
        return 1.0 - ratio

    def extra_repr(self) -> str:
        """Show the smoothing."""
        return f"smooth={self.smooth}"


def _exclusive_soft_dice(x: torch.Tensor, target: torch.Tensor, painted: torch.Tensor,
                         smooth: float) -> torch.Tensor:
    """Masked soft Dice loss on softmax probs, mean over classes present among painted pixels."""
    num_classes = x.shape[1]
    m = painted.unsqueeze(1).to(x.dtype)
    probs = F.softmax(x, dim=1) * m
    onehot = SegmentationLoss._one_hot(target, painted, num_classes, x.dtype)
    dims = _reduce_dims(x.dim())
    tsum = onehot.sum(dims)
    dice = _dice_ratio((probs * onehot).sum(dims), probs.sum(dims), tsum, smooth)
    present = (tsum > 0).to(x.dtype)
    return _safe_div((present * (1.0 - dice)).sum(), present.sum())


class DiceCELoss(SegmentationLoss):
    """``ce_weight · CE + dice_weight · soft Dice`` (exclusive mode).

    CE is :class:`MaskedCrossEntropyLoss` (class-weighted). The Dice term uses softmax
    probabilities and the one-hot target on painted pixels only, per class
    ``(2 I_c + s) / (P_c + T_c + s)``, averaged (unweighted) over the classes present among
    the painted pixels; ``1 - mean``. No painted pixel → 0 with zero gradient.

    Parameters
    ----------
    weights : torch.Tensor or sequence of float, optional
        Class weights for the CE term.
    smooth : float
        Dice smoothing ``s >= 0``.
    dice_weight : float
        Weight of the Dice term.
    ce_weight : float
        Weight of the CE term.
    """

    mode = EXCLUSIVE

    def __init__(
        self,
        weights: torch.Tensor | Sequence[float] | None = None,
        smooth: float = LOSS_DEFAULTS.smooth,
        dice_weight: float = LOSS_DEFAULTS.dice_weight,
        ce_weight: float = LOSS_DEFAULTS.ce_weight,
    ) -> None:
        super().__init__(weights)
        if smooth < 0:
            raise UserInputError(f"Dice smooth must be >= 0, got {smooth}")
        self.smooth = float(smooth)
        self.dice_weight = float(dice_weight)
        self.ce_weight = float(ce_weight)

    def forward(
        self, logits: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Compute the loss.

        Parameters
        ----------
        logits : torch.Tensor
            Raw scores ``(N, C, *spatial)``.
        target : torch.Tensor
            Integer labels ``(N, *spatial)``, ``IGNORE_INDEX`` where unpainted.
        mask : torch.Tensor, optional
            Ignored.

        Returns
        -------
        torch.Tensor
            Scalar loss.
        """
        x, target_l, painted = self._check_exclusive(logits, target)
        ce = _weighted_ce(x, target_l, painted, self._weights_for(x.shape[1], x.dtype))
        dice = _exclusive_soft_dice(x, target_l, painted, self.smooth)
        return self.ce_weight * ce + self.dice_weight * dice

    def extra_repr(self) -> str:
        """Show the term weights."""
        return (f"ce_weight={self.ce_weight}, dice_weight={self.dice_weight}, "
                f"smooth={self.smooth}, {super().extra_repr()}")


# ---------------------------------------------------------------------------------------------
# multi-label losses
# ---------------------------------------------------------------------------------------------


def _masked_bce(x: torch.Tensor, target: torch.Tensor, mask: torch.Tensor,
                pos_weight: torch.Tensor | None) -> torch.Tensor:
    """``(bce * mask).sum() / mask.sum().clamp_min(1)`` with a broadcast ``pos_weight``."""
    pw = None if pos_weight is None else broadcast_pos_weight(pos_weight, x.dim() - 2)
    bce = F.binary_cross_entropy_with_logits(x, target, pos_weight=pw, reduction="none")
    bce = torch.where(mask > 0, bce * mask, 0.0)
    return bce.sum() / mask.sum().clamp_min(1.0)


class MaskedBCELoss(SegmentationLoss):
    """Masked BCE-with-logits with per-class ``pos_weight`` (multi-label mode).

    ``loss = (bce · mask).sum() / mask.sum().clamp_min(1)`` where ``bce`` is
    ``BCEWithLogitsLoss(reduction="none", pos_weight=p.view(C, 1, ..., 1))``.

    Parameters
    ----------
    weights : torch.Tensor or sequence of float, optional
        ``pos_weight`` ``(C,)`` (typically ``n_neg_c / n_pos_c``).
    """

    mode = MULTILABEL

    def forward(
        self, logits: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Compute the loss.

        Parameters
        ----------
        logits : torch.Tensor
            Raw scores ``(N, C, *spatial)``.
        target : torch.Tensor
            ``{0, 1}`` float ``(N, C, *spatial)``.
        mask : torch.Tensor
            ``{0, 1}`` painted-pixel mask broadcastable to ``(N, C, *spatial)``; required.

        Returns
        -------
        torch.Tensor
            Scalar loss.
        """
        x, target, mask = self._check_multilabel(logits, target, mask)
        return _masked_bce(x, target, mask, self._weights_for(x.shape[1], x.dtype))


class MultilabelFocalLoss(SegmentationLoss):
    """Sigmoid focal BCE with ``pos_weight`` on the positive term (multi-label mode).

    Per element, with ``p = σ(x)``::

        -[pos_weight_c · t · (1 - p)^γ · log p + (1 - t) · p^γ · log(1 - p)]

    (log-sigmoid for stability), masked and normalised like :class:`MaskedBCELoss`;
    ``gamma=0`` gives back :class:`MaskedBCELoss` exactly.

    Parameters
    ----------
    weights : torch.Tensor or sequence of float, optional
        ``pos_weight`` ``(C,)``.
    gamma : float
        Focusing exponent ``γ >= 0``.
    """

    mode = MULTILABEL

    def __init__(
        self,
        weights: torch.Tensor | Sequence[float] | None = None,
        gamma: float = LOSS_DEFAULTS.gamma,
    ) -> None:
        super().__init__(weights)
        if gamma < 0:
            raise UserInputError(f"focal gamma must be >= 0, got {gamma}")
        self.gamma = float(gamma)

    def forward(
        self, logits: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Compute the loss (same arguments as :meth:`MaskedBCELoss.forward`)."""
        x, target, mask = self._check_multilabel(logits, target, mask)
        p = torch.sigmoid(x)
        pos = target * (1.0 - p) ** self.gamma * F.logsigmoid(x)
        pw = self._weights_for(x.shape[1], x.dtype)
        if pw is not None:
            pos = pos * broadcast_pos_weight(pw, x.dim() - 2)
        neg = (1.0 - target) * p**self.gamma * F.logsigmoid(-x)
        term = torch.where(mask > 0, -(pos + neg) * mask, 0.0)
        return term.sum() / mask.sum().clamp_min(1.0)

    def extra_repr(self) -> str:
        """Show gamma and the weights."""
        return f"gamma={self.gamma}, {super().extra_repr()}"


class SoftDiceLoss(SegmentationLoss):
    """Masked soft Dice on sigmoid probabilities (multi-label mode).

    Per class ``c``, over painted pixels (``mask_c = 1``) of the whole batch:
    ``D_c = (2 Σ p t + s) / (Σ p + Σ t + s)``; ``loss = mean_c (1 - D_c)`` over the classes
    that have at least one painted pixel. A painted class whose prediction and target are
    both empty on its painted pixels counts as ``D_c = 1``. No painted pixel → 0 with zero
    gradient. ``weights`` (``pos_weight``) is accepted for a uniform signature but unused.

    Parameters
    ----------
    weights : torch.Tensor or sequence of float, optional
        Unused.
    smooth : float
        Smoothing ``s >= 0``.
    """

    mode = MULTILABEL

    def __init__(
        self,
        weights: torch.Tensor | Sequence[float] | None = None,
        smooth: float = LOSS_DEFAULTS.smooth,
    ) -> None:
        super().__init__(weights)
        if smooth < 0:
            raise UserInputError(f"Dice smooth must be >= 0, got {smooth}")
        self.smooth = float(smooth)

    def forward(
        self, logits: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Compute the loss (same arguments as :meth:`MaskedBCELoss.forward`)."""
        x, target, mask = self._check_multilabel(logits, target, mask)
        self._weights_for(x.shape[1], x.dtype)  # only validates the length
        return _multilabel_soft_dice(x, target, mask, self.smooth)

    def extra_repr(self) -> str:
        """Show the smoothing."""
        return f"smooth={self.smooth}"


def _multilabel_soft_dice(x: torch.Tensor, target: torch.Tensor, mask: torch.Tensor,
                          smooth: float) -> torch.Tensor:
    """Masked sigmoid soft-Dice loss, mean over classes with painted pixels."""
    dims = _reduce_dims(x.dim())
    p = torch.sigmoid(x) * mask
    t = target * mask
    dice = _dice_ratio((p * t).sum(dims), p.sum(dims), t.sum(dims), smooth)
    painted = (mask.sum(dims) > 0).to(x.dtype)
    return _safe_div((painted * (1.0 - dice)).sum(), painted.sum())


class DiceBCELoss(SegmentationLoss):
    """``bce_weight · BCE + dice_weight · soft Dice`` (multi-label mode).

    BCE is :class:`MaskedBCELoss` (with ``pos_weight``), Dice is :class:`SoftDiceLoss`.

    Parameters
    ----------
    weights : torch.Tensor or sequence of float, optional
        ``pos_weight`` ``(C,)`` for the BCE term.
    smooth : float
        Dice smoothing ``s >= 0``.
    dice_weight : float
        Weight of the Dice term.
    bce_weight : float
        Weight of the BCE term.
    """

    mode = MULTILABEL

    def __init__(
        self,
        weights: torch.Tensor | Sequence[float] | None = None,
        smooth: float = LOSS_DEFAULTS.smooth,
        dice_weight: float = LOSS_DEFAULTS.dice_weight,
        bce_weight: float = LOSS_DEFAULTS.bce_weight,
    ) -> None:
        super().__init__(weights)
        if smooth < 0:
            raise UserInputError(f"Dice smooth must be >= 0, got {smooth}")
        self.smooth = float(smooth)
        self.dice_weight = float(dice_weight)
        self.bce_weight = float(bce_weight)

    def forward(
        self, logits: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Compute the loss (same arguments as :meth:`MaskedBCELoss.forward`)."""
        x, target, mask = self._check_multilabel(logits, target, mask)
        bce = _masked_bce(x, target, mask, self._weights_for(x.shape[1], x.dtype))
        dice = _multilabel_soft_dice(x, target, mask, self.smooth)
        return self.bce_weight * bce + self.dice_weight * dice

    def extra_repr(self) -> str:
        """Show the term weights."""
        return (f"bce_weight={self.bce_weight}, dice_weight={self.dice_weight}, "
                f"smooth={self.smooth}, {super().extra_repr()}")


# ---------------------------------------------------------------------------------------------
# factory
# ---------------------------------------------------------------------------------------------

_REGISTRY: dict[str, dict[str, tuple[type[SegmentationLoss], tuple[str, ...]]]] = {
    EXCLUSIVE: {
        "ce": (MaskedCrossEntropyLoss, ()),
        "focal": (ExclusiveFocalLoss, ("gamma",)),
        "gdl": (GeneralizedDiceLoss, ("smooth",)),
        "dice_ce": (DiceCELoss, ("smooth", "dice_weight", "ce_weight")),
    },
    MULTILABEL: {
        "bce": (MaskedBCELoss, ()),
        "focal": (MultilabelFocalLoss, ("gamma",)),
        "dice": (SoftDiceLoss, ("smooth",)),
        "dice_bce": (DiceBCELoss, ("smooth", "dice_weight", "bce_weight")),
    },
}


def make_loss(
    mode: str,
    name: str,
    weights: torch.Tensor | Sequence[float] | None = None,
    **options: Any,
) -> nn.Module:
    """Build a loss module for an annotation mode.

    Parameters
    ----------
    mode : str
        ``"exclusive"`` or ``"multilabel"``.
    name : str
        One of ``LOSS_NAMES[mode]`` (case-insensitive) or an alias from ``LOSS_ALIASES[mode]``
        (e.g. ``"focal_bce"`` for multi-label ``"focal"``).
    weights : torch.Tensor or sequence of float, optional
        Exclusive: class weights ``(C,)`` (CE, focal α, CE term of ``dice_ce``). Multi-label:
        ``pos_weight`` ``(C,)`` (BCE, focal, BCE term of ``dice_bce``). Dice-only losses
        accept and ignore them.
    **options
        Hyper-parameters among the fields of :class:`LossDefaults` (``gamma``, ``smooth``,
        ``dice_weight``, ``ce_weight``, ``bce_weight``). Options that the chosen loss does not
        use are ignored, so one option set can be passed whatever the loss; unknown option
        names raise.

    Returns
    -------
    torch.nn.Module
        A :class:`SegmentationLoss` whose ``forward(logits, target, mask=None)`` returns a
        scalar tensor.

    Raises
    ------
    UserInputError
        (a ``ValueError``) for an unknown mode, name or option, or invalid weights.
    """
    mode_key = str(mode).strip().lower()
    if mode_key not in _REGISTRY:
        raise UserInputError(
            f"unknown annotation mode {mode!r}; choose one of: {', '.join(_REGISTRY)}"
        )
    key = str(name).strip().lower()
    key = LOSS_ALIASES[mode_key].get(key, key)
    if key not in _REGISTRY[mode_key]:
        raise UserInputError(
            f"unknown {mode_key} loss {name!r}; choose one of: {', '.join(LOSS_NAMES[mode_key])}"
        )
    unknown = sorted(set(options) - set(_OPTION_NAMES))
    if unknown:
        raise UserInputError(
            f"unknown loss option(s) {', '.join(unknown)}; valid options: "
            f"{', '.join(_OPTION_NAMES)}"
        )
    cls, accepted = _REGISTRY[mode_key][key]
    kwargs: Mapping[str, Any] = {k: v for k, v in options.items() if k in accepted}
    return cls(weights, **kwargs)
