"""How much of each class's own strokes the network gets right while it trains.

A class painted with a few thin strokes can stay unlearnt: the loss falls on the other
classes while the network predicts something else on this one's strokes (benchmarks/RESULTS.md,
*The thinnest tissue painting*: after 370 steps 1 % of the granular strokes were predicted
granular, and the whole image had none). The previews then show the class missing, but not
whether that is the network not having learnt the strokes yet (train longer, raise the
learning rate, paint more of it) or having learnt them and generalising badly (paint where it
errs). This tally tells the two apart, at no extra forward pass: it reads the training step's
own logits on the painted pixels of its patches (train mode, augmented), and keeps an
exponentially decaying sum over the recent steps.

Per class the *learnt* share is

exclusive
    the painted pixels of the class whose arg-max is the class, over its painted pixels;
multi-label
    the smaller of two recalls: present strokes predicted present (logit > 0) and absent
    strokes predicted absent (logit <= 0), each over its own painted pixels (a channel that
    says "present" everywhere gets every present stroke right and is not learnt).

Only the user's strokes count, not what the implied-label rules add.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from segstudio.core.annotations import EXCLUSIVE, IGNORE_INDEX, MULTILABEL, check_mode

#: Per step, the tally's older counts are multiplied by this (about the last 20 steps weigh).
DECAY = 0.95
#: A class whose learnt share is below this after :data:`MIN_STEPS` steps is flagged.
UNLEARNT_BELOW = 0.5
#: Steps on the same strokes before a low share is flagged: the first steps get nothing right
#: yet, and new strokes (a correction painted into an error) are wrong until learnt.
MIN_STEPS = 50


@torch.no_grad()
def stroke_hits(logits: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None,
                mode: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Painted pixels predicted as painted, and painted pixels, per class (and kind).

    Parameters
    ----------
    logits
        ``(N, K, *spatial)`` network output.
    target
        Exclusive: ``(N, *spatial)`` integer labels in ``[0, K)``, :data:`IGNORE_INDEX` where
        unpainted. Multi-label: ``(N, K, *spatial)``, 1 present, 0 absent.
    mask
        Multi-label: ``(N, K, *spatial)``, nonzero where painted. Ignored in exclusive mode.
    mode
        ``"exclusive"`` or ``"multilabel"``.

    Returns
    -------
    hits, counts
        Exclusive: two ``(K,)`` float64 CPU tensors. Multi-label: two ``(2, K)`` tensors, row
        0 present strokes, row 1 absent strokes.
    """
    mode = check_mode(mode)
    k = logits.shape[1]
    # Only the painted pixels are read (a few per cent of a patch): the logits are gathered
    # there before anything else is computed on them.
    if mode == EXCLUSIVE:
        painted = target != IGNORE_INDEX
        labels = target[painted].long()
        right = labels[logits.movedim(1, -1)[painted].argmax(-1) == labels]
        counts = torch.bincount(labels, minlength=k)[:k]
        hits = torch.bincount(right, minlength=k)[:k]
        return hits.double().cpu(), counts.double().cpu()
    if mask is None:
        raise ValueError("multi-label stroke hits need the painted mask")
    at = (mask.reshape(-1) != 0).nonzero().squeeze(1)  # flat (N, K, *spatial) indices
    channel = (at // logits[0, 0].numel()) % k
    present = target.reshape(-1)[at] > 0.5
    positive = logits.reshape(-1)[at] > 0
    counts = torch.stack([torch.bincount(channel[present], minlength=k)[:k],
                          torch.bincount(channel[~present], minlength=k)[:k]])
    hits = torch.stack([torch.bincount(channel[present & positive], minlength=k)[:k],
                        torch.bincount(channel[~present & ~positive], minlength=k)[:k]])
    return hits.double().cpu(), counts.double().cpu()


class StrokeFit:
    """A decaying tally of :func:`stroke_hits` over the training steps.

    Parameters
    ----------
    n_classes
        Classes (exclusive) or channels (multi-label).
    mode
        ``"exclusive"`` or ``"multilabel"``.
    decay
        Factor on the older counts at each :meth:`update` (:data:`DECAY`).
    """

    def __init__(self, n_classes: int, mode: str, decay: float = DECAY) -> None:
        self.mode = check_mode(mode)
        self.decay = float(decay)
        shape = (n_classes,) if self.mode == EXCLUSIVE else (2, n_classes)
        self.hits = torch.zeros(shape, dtype=torch.float64)
        self.counts = torch.zeros(shape, dtype=torch.float64)
        #: Updates since the strokes last changed (:meth:`new_strokes`).
        self.steps = 0

    def update(self, hits: torch.Tensor, counts: torch.Tensor) -> None:
        """Add one step's :func:`stroke_hits` (older steps decay)."""
        self.hits.mul_(self.decay).add_(hits)
        self.counts.mul_(self.decay).add_(counts)
        self.steps += 1

    def new_strokes(self) -> None:
        """The strokes changed: the tally goes on, the count of steps on them starts again."""
        self.steps = 0

    def shares(self) -> tuple[float | None, ...]:
        """The learnt share per class (see the module); ``None`` where nothing of it (or, in
        multi-label mode, of either kind it has) was painted in the recent patches."""
        seen = self.counts > 0
        ratio = torch.where(seen, self.hits / self.counts.clamp_min(1e-12), torch.ones_like(self.hits))
        if self.mode == MULTILABEL:
            ratio, seen = ratio.min(0).values, seen.any(0)
        return tuple(float(r) if s else None for r, s in zip(ratio.tolist(), seen.tolist()))


def unlearnt(shares: Sequence[float | None], steps: int) -> list[int]:
    """Classes whose learnt share is below :data:`UNLEARNT_BELOW` after :data:`MIN_STEPS`
    steps on the same strokes (none before)."""
    if steps < MIN_STEPS:
        return []
    return [i for i, s in enumerate(shares) if s is not None and s < UNLEARNT_BELOW]


def unlearnt_message(names: Sequence[str], shares: Sequence[float | None], steps: int) -> str:
    """One line naming the classes :func:`unlearnt` flags ("" when none), with what to do."""
    flagged = unlearnt(shares, steps)
    if not flagged:
        return ""
    named = [(names[i] if i < len(names) else f"class {i + 1}", 100 * float(shares[i] or 0.0)) for i in flagged]
    if len(named) == 1:
        name, pct = named[0]
        return (f"Not learnt yet: {name} ({pct:.0f} % of its strokes predicted right). "
                "Train longer, or paint more of it.")
    which = ", ".join(f"{name} ({pct:.0f} %)" for name, pct in named)
    return (f"Not learnt yet: {which} of their strokes predicted right. "
            "Train longer, or paint more of them.")


__all__ = [
    "DECAY", "MIN_STEPS", "UNLEARNT_BELOW", "StrokeFit", "stroke_hits", "unlearnt", "unlearnt_message",
]
