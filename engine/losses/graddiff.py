"""`graddiff`: gradient ascent on the forget tokens + gradient descent on the retain batch."""
from __future__ import annotations

import torch

from .common import retain_nll as retain_term, token_mean_of, weighted_mean


def graddiff_loss(nll: torch.Tensor, weights: torch.Tensor, retain_nll: torch.Tensor | None = None,
                  retain_mask: torch.Tensor | None = None, answer_mask: torch.Tensor | None = None, *,
                  gamma: float = 1.0, alpha: float = 1.0, token_mean: bool = False) -> tuple[torch.Tensor, dict]:
    """L = −γ · Σ w ℓ / Σ w  +  α · mean retain NLL  (gradient difference; Liu et al. 2022, TOFU baseline).

    nll, weights: (B, T) forget batch per-token NLL and weights (hard mask or soft).
    retain_nll: (B', T') per-token NLL of a retain batch; retain_mask: (B', T') its label positions;
    needed only when α > 0 (α = 0 is plain gradient ascent, no retain data).
    Normalisation: forget term divides by Σw over the batch (token_mean=True: by the answer-token
    count of answer_mask, WGA's / SatImp's token mean); retain term by its label-token count.
    Returns (scalar loss, {forget, retain?, targets}) with detached stats.
    """
    w = weights.float()
    forget = -(token_mean_of(nll, w, answer_mask) if token_mean else weighted_mean(nll, w))  # scalar
    loss = gamma * forget
    stats = {"forget": forget.detach(), "targets": w.sum().detach()}
    if alpha > 0:
        retain = retain_term(retain_nll, retain_mask)  # scalar
        loss = loss + alpha * retain
        stats["retain"] = retain.detach()
    return loss, stats
