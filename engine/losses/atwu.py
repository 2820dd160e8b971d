"""`atwu`: Alternating Token-Weighted Unlearning, the model's side (the scorer is a selector)."""
from __future__ import annotations

import torch

from .common import retain_nll as retain_term


def atwu_loss(nll: torch.Tensor, weights: torch.Tensor, answer_mask: torch.Tensor,
              retain_nll: torch.Tensor | None = None, retain_mask: torch.Tensor | None = None, *,
              beta: float = 5.0, gamma: float = 1.0, alpha: float = 1.0) -> tuple[torch.Tensor, dict]:
    """L = −γ · mean_t( g_t ℓ_t · sg(exp(−β g_t ℓ_t)) ) + α · mean retain NLL   (ATWU, 2026).

    g_t are the token weights (the ATWU scorer's σ(wᵀh_t + b), or any selector's mask/weights).
    The stop-gradient factor exp(−β g ℓ) fades the ascent on tokens already forgotten, so the
    forget term is bounded. nll, weights: (B, T); answer_mask: (B, T) bool;
    retain_nll, retain_mask: (B', T') (needed: α = 1 by default).
    Normalisation: mean over the batch's answer tokens (the weights scale, they do not
    normalise); retain term per retain label token.
    Returns (scalar loss, {forget, retain?, targets}) with detached stats.
    """
    g = weights.float() * answer_mask  # (B, T)
    fade = torch.exp(-beta * g * nll).detach()  # (B, T) sg(exp(−β g ℓ))
    forget = -(g * nll * fade).sum() / answer_mask.sum().clamp(min=1)  # scalar
    loss = gamma * forget
    stats = {"forget": forget.detach(), "targets": g.sum().detach()}
    if alpha > 0:
        retain = retain_term(retain_nll, retain_mask)
        loss = loss + alpha * retain
        stats["retain"] = retain.detach()
    return loss, stats
