"""`dpo`: DPO (IdkDPO): prefer an "I don't know" answer to the forget answer, on the weighted tokens."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .common import mean_over_rows, retain_nll as retain_term, sequence_rescaled


def dpo_loss(nll: torch.Tensor, ref_nll: torch.Tensor, weights: torch.Tensor, answer_mask: torch.Tensor,
             pref_nll: torch.Tensor, pref_ref_nll: torch.Tensor, pref_mask: torch.Tensor,
             retain_nll: torch.Tensor | None = None, retain_mask: torch.Tensor | None = None, *,
             beta: float = 0.1, gamma: float = 1.0, alpha: float = 1.0) -> tuple[torch.Tensor, dict]:
    """L = γ · mean_i −(2/β)·log σ(β·(r_w,i − r_l,i))  +  α · mean retain NLL, with
    r_w,i = −Σ_t m_it (ℓ^w_θ,it − ℓ^w_ref,it)   (log π_θ/π_ref of the preferred "I don't know" answer),
    r_l,i = −Σ_t w_it (ℓ_θ,it − ℓ_ref,it)       (log π_θ/π_ref of the forget answer, weighted tokens).

    Rafailov et al. 2023, "Direct Preference Optimization" (eq. 7), with the 2/β scale and
    win = an "I don't know" answer as in TOFU's IdkDPO (Maini et al. 2024) and open-unlearning
    (src/trainer/unlearn/dpo.py, compute_dpo_loss in src/trainer/utils.py: per-sequence sums of the
    NLL). open-unlearning's defaults (configs/trainer/DPO.yaml): β = 0.1, γ = 1, α = 1 (retain NLL).
    The token mask applies to the dispreferred (forget) side only: its weights are rescaled per row
    to sum to T_i (answer tokens), as in `npo_loss`, so the `all` selector gives sequence-level DPO;
    the preferred side counts every label position of the IDK answer, its EOS included [choice: it
    teaches the model to stop]. The preferred answer is drawn per sample by the trainer
    (engine.train.preferred), not here. At step 0 (θ = ref) the forget term is (2/β)·ln 2.

    nll, ref_nll, weights: (B, T) forget batch; answer_mask: (B, T) bool.
    pref_nll, pref_ref_nll: (B, T_w) per-token NLL of the preferred batch (same rows, same order);
    pref_mask: (B, T_w) bool its label positions. retain_nll, retain_mask: (B', T'), when α > 0.
    Normalisation: mean over rows that have targets; retain term per label token.
    Returns (scalar loss, {forget, retain?, margin (= mean r_w − r_l), targets}) with detached stats.
    """
    w, has = sequence_rescaled(weights.float() * answer_mask, answer_mask)  # (B, T), (B,)
    lose = -(w * (nll - ref_nll)).sum(1)  # (B,) r_l
    win = -((pref_nll - pref_ref_nll) * pref_mask).sum(1)  # (B,) r_w
    per_row = -(2.0 / beta) * F.logsigmoid(beta * (win - lose))  # (B,)
    forget = mean_over_rows(per_row, has)  # scalar
    loss = gamma * forget
    stats = {"forget": forget.detach(), "margin": mean_over_rows(win - lose, has).detach(),
             "targets": (weights.float() * answer_mask).sum().detach()}
    if alpha > 0:
        retain = retain_term(retain_nll, retain_mask)
        loss = loss + alpha * retain
        stats["retain"] = retain.detach()
    return loss, stats
