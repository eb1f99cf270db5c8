# Experiment (session 21): class-normalised trust weighting of the paint term, p_y^q.
# Used by copying it to benchmarks/trust_patch.py in a worktree, calling trust_patch.install()
# at the start of quality.run_cell, and running quality.py with SEG_TRUST_Q=1 (RESULTS.md,
# "Where the sloppy habit's halo comes from"). At q = 0 both losses equal the trainer's.
import os
import torch
import torch.nn.functional as F
from segstudio.core.losses import broadcast_pos_weight

IGNORE = -100


def trust_ce(x, target, w, q):
    painted = target != IGNORE
    safe = torch.where(painted, target, torch.zeros_like(target))
    logp = F.log_softmax(x.float(), 1)
    lp = logp.gather(1, safe.unsqueeze(1)).squeeze(1)
    r = lp.detach().exp().pow(q) * painted
    C = x.shape[1]
    cnt = torch.bincount(safe[painted], minlength=C).to(r.dtype)
    tot = torch.zeros(C, dtype=r.dtype, device=r.device).index_add_(0, safe[painted], r[painted])
    mean_r = tot / cnt.clamp_min(1)
    rn = r / mean_r[safe].clamp_min(1e-6)
    cw = torch.ones(C, dtype=r.dtype, device=r.device) if w is None else w.to(r.dtype)
    pw = cw[safe] * painted
    den = pw.sum()
    return (pw * rn * -lp).sum() / den.clamp_min(1e-12)


def trust_bce(x, target, mask, pos_weight, q):
    x = x.float()
    pw = None if pos_weight is None else broadcast_pos_weight(pos_weight, x.dim() - 2)
    bce = F.binary_cross_entropy_with_logits(x, target, pos_weight=pw, reduction="none")
    p = torch.sigmoid(x.detach())
    pt = torch.where(target > 0.5, p, 1 - p)
    r = pt.pow(q)
    m = (mask > 0).to(x.dtype)
    dims = [0] + list(range(2, x.dim()))
    rn = torch.zeros_like(r)
    for kind in (target > 0.5, target <= 0.5):
        mk = m * kind
        s = (r * mk).sum(dims, keepdim=True)
        n = mk.sum(dims, keepdim=True)
        rn = rn + mk * r / (s / n.clamp_min(1)).clamp_min(1e-6)
    bce = torch.where(mask > 0, bce * mask * rn, 0.0)
    return bce.sum() / mask.sum().clamp_min(1.0)


def install():
    q = float(os.environ.get("SEG_TRUST_Q", "0") or 0)
    if q <= 0:
        return
    from segstudio.core import losses
    ce_fwd = losses.MaskedCrossEntropyLoss.forward
    bce_fwd = losses.MaskedBCELoss.forward

    def ce(self, logits, target, mask=None):
        if not getattr(self, "_paint_term", False):
            return ce_fwd(self, logits, target, mask)
        x, target, painted = self._check_exclusive(logits, target)
        return trust_ce(x, target, self._weights_for(x.shape[1], x.dtype), q)

    def bce(self, logits, target, mask=None):
        if not getattr(self, "_paint_term", False):
            return bce_fwd(self, logits, target, mask)
        x, target, mask = self._check_multilabel(logits, target, mask)
        return trust_bce(x, target, mask, self._weights_for(x.shape[1], x.dtype), q)

    losses.MaskedCrossEntropyLoss.forward = ce
    losses.MaskedBCELoss.forward = bce
    from segstudio.core import trainer
    orig = trainer.Trainer.swap_snapshot

    def swap(self, snapshot):
        out = orig(self, snapshot)
        self.loss_fn._paint_term = True
        return out

    trainer.Trainer.swap_snapshot = swap
