"""`dto`: Direct Token Optimization: unlearn target tokens, hold non-target tokens to the reference."""
from __future__ import annotations

import torch

from .common import complement, npo_term, weighted_mean


def dto_loss(nll: torch.Tensor, weights: torch.Tensor, answer_mask: torch.Tensor, kl: torch.Tensor,
             ref_nll: torch.Tensor | None = None, *, forget: str = "ga", beta: float = 0.1,
             gamma: float = 1.0, lam: float = 1.0) -> tuple[torch.Tensor, dict]:
    """L = γ·F(target tokens) + λ·Σ_t (1−w_t)·KL_t(p_ref ‖ p_θ) / Σ_t (1−w_t)
    (Lee, Liu, Xiong 2025, arXiv:2510.00125; self-contained: no retain set, no auxiliary model).

    F is gradient ascent (−Σ w ℓ / Σ w) when forget="ga", or per-sequence NPO on the target
    tokens (see `npo_loss`) when forget="npo" [choice: the paper allows either; GA default].
    KL_t: (B, T) per-token KL(p_ref ‖ p_θ) from `engine.tokens.kl_ref`, 0 at step 0.
    nll, ref_nll: (B, T) per-token NLL (ref_nll only for forget="npo"); weights: (B, T) target
    weights in [0, 1] (hard mask or soft); answer_mask: (B, T) bool.
    Normalisation: GA divides by Σw over the batch; KL divides by Σ(1−w) over the batch's
    answer tokens [choice]. The optional gradient orthogonalisation (forget gradient projected
    off the preservation gradient) is a trainer option: `RunConfig.orthogonalize`.
    Returns (scalar loss, {forget, preserve (= mean KL), targets}) with detached stats.
    """
    w = weights.float() * answer_mask  # (B, T)
    if forget == "ga":
        f = -weighted_mean(nll, w)
    elif forget == "npo":
        if ref_nll is None:
            raise ValueError("dto with forget='npo' needs the reference model's per-token NLL")
        f, _ = npo_term(nll, ref_nll, w, answer_mask, beta)
    else:
        raise ValueError(f"dto: forget must be 'ga' or 'npo', got {forget!r}")
    keep = weighted_mean(kl, complement(w, answer_mask))  # scalar
    loss = gamma * f + lam * keep
    return loss, {"forget": f.detach(), "preserve": keep.detach(), "targets": w.sum().detach()}
