"""`npo`: Negative Preference Optimization, per sequence on the weighted tokens."""
from __future__ import annotations

import torch

from .common import npo_term, retain_nll as retain_term


def npo_loss(nll: torch.Tensor, ref_nll: torch.Tensor, weights: torch.Tensor, answer_mask: torch.Tensor,
             retain_nll: torch.Tensor | None = None, retain_mask: torch.Tensor | None = None, *,
             beta: float = 0.1, gamma: float = 1.0, alpha: float = 1.0) -> tuple[torch.Tensor, dict]:
    """L = γ · mean_i −(2/β)·log σ(β·Σ_t w_it (ℓ_θ,it − ℓ_ref,it))  +  α · mean retain NLL.

    Zhang et al. 2024, "Negative Preference Optimization" (eq. 3): log π_θ/π_ref of a sequence is
    −Σ_t ℓ_t; here each token is weighted by w_t, with the weights of each row rescaled to sum to
    T_i (its number of answer tokens), so the `all` selector gives exactly sequence-level NPO.
    At step 0 (θ = ref) the forget term is (2/β)·ln 2.

    nll, ref_nll: (B, T) per-token NLL of the current and the frozen reference model.
    weights: (B, T) hard mask or soft weights; answer_mask: (B, T) bool answer tokens.
    retain_nll, retain_mask: (B', T'), needed when α > 0 (the NPO+RT variant, open-unlearning's
    default α = 1). Normalisation: mean over sequences that have targets; retain term per token.
    Returns (scalar loss, {forget, retain?, log_ratio, targets}) with detached stats.
    """
    forget, delta = npo_term(nll, ref_nll, weights.float(), answer_mask, beta)  # scalar, (B,)
    loss = gamma * forget
    stats = {"forget": forget.detach(), "log_ratio": delta.mean(), "targets": weights.float().sum().detach()}
    if alpha > 0:
        retain = retain_term(retain_nll, retain_mask)
        loss = loss + alpha * retain
        stats["retain"] = retain.detach()
    return loss, stats
