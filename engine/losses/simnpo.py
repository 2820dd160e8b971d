"""`simnpo`: SimNPO, reference-free, length-normalised NPO with a margin, on the weighted tokens."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .common import mean_over_rows, retain_nll as retain_term, row_weighted_mean


def simnpo_loss(nll: torch.Tensor, weights: torch.Tensor, answer_mask: torch.Tensor,
                retain_nll: torch.Tensor | None = None, retain_mask: torch.Tensor | None = None, *,
                beta: float = 4.5, delta: float = 0.0, gamma: float = 0.125,
                alpha: float = 1.0) -> tuple[torch.Tensor, dict]:
    """L = γ · mean_i −(2/β)·log σ(β·(ℓ̄_i − δ))  +  α · mean retain NLL, with
    ℓ̄_i = Σ_t w_it ℓ_it / Σ_t w_it, the length-normalised (per weighted token) NLL of sequence i.

    Fan et al. 2024, "Simplicity Prevails: Rethinking Negative Preference Optimization for LLM
    Unlearning" (arXiv:2410.07163, eq. 4: −(2/β)·log σ(−(β/|y|)·log π_θ(y|x) − γ_paper)), as
    open-unlearning computes it (src/trainer/unlearn/simnpo.py): logsigmoid(β·(ℓ_sum/|y| − δ)),
    so the margin δ (the paper's γ) sits inside the β. No reference model.
    open-unlearning's defaults (configs/trainer/SimNPO.yaml): β = 4.5, δ = 0, γ = 0.125 (the
    forget term's weight, `npo_coeff` in the authors' code), α = 1 (retain NLL).
    Here |y| is Σ_t w_t over the row (its weighted token count: the `all` selector gives the
    answer-token count) [choice]; open-unlearning counts every label position incl. the EOS.

    nll, weights: (B, T) per-token NLL and weights (hard mask or soft); answer_mask: (B, T) bool.
    retain_nll, retain_mask: (B', T'), needed when α > 0.
    Normalisation: per row by its Σ w; mean over rows with targets; retain term per label token.
    At ℓ̄ = L for every row the forget term is −(2/β)·log σ(β(L − δ)).
    Returns (scalar loss, {forget, retain?, avg_nll, targets}) with detached stats.
    """
    w = weights.float() * answer_mask  # (B, T)
    avg, has = row_weighted_mean(nll, w)  # (B,), (B,)
    per_row = -(2.0 / beta) * F.logsigmoid(beta * (avg - delta))  # (B,)
    forget = mean_over_rows(per_row, has)  # scalar
    loss = gamma * forget
    stats = {"forget": forget.detach(), "avg_nll": mean_over_rows(avg, has).detach(), "targets": w.sum().detach()}
    if alpha > 0:
        retain = retain_term(retain_nll, retain_mask)
        loss = loss + alpha * retain
        stats["retain"] = retain.detach()
    return loss, stats
