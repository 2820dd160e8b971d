"""`ga`: gradient ascent on the weighted forget tokens."""
from __future__ import annotations

import torch

from .common import token_mean_of, weighted_mean


def ga_loss(nll: torch.Tensor, weights: torch.Tensor, answer_mask: torch.Tensor | None = None, *, gamma: float = 1.0,
            token_mean: bool = False) -> tuple[torch.Tensor, dict]:
    """L = −γ · Σ_t w_t ℓ_t / Σ_t w_t  (gradient ascent; Jang et al. 2023, "Knowledge Unlearning").

    nll: (B, T) per-token NLL ℓ_t of the forget batch (0 off label positions).
    weights: (B, T) w_t, a hard mask (0/1) or soft weights; zero outside the answer tokens.
    Normalisation: divide by Σw over the batch. With the `all` selector this is the usual
    token-mean GA. token_mean=True: divide by the answer-token count instead (Σ w ℓ / N), the
    normalisation of WGA / SatImp (engine.weights.dynamic); needs answer_mask (B, T).
    Returns (scalar loss, {forget, targets}) with detached stats.
    """
    w = weights.float()
    forget = -(token_mean_of(nll, w, answer_mask) if token_mean else weighted_mean(nll, w))  # scalar
    return gamma * forget, {"forget": forget.detach(), "targets": w.sum().detach()}
