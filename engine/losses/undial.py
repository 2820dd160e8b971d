"""`undial`: UNDIAL, self-distillation to the reference's logits with the gold token's logit lowered."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .common import retain_nll as retain_term, weighted_mean


def undial_loss(logits: torch.Tensor, ref_logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor,
                retain_nll: torch.Tensor | None = None, retain_mask: torch.Tensor | None = None, *,
                beta: float = 10.0, gamma: float = 1.0, alpha: float = 0.0) -> tuple[torch.Tensor, dict]:
    """L = γ · Σ_t w_t CE_t / Σ_t w_t  +  α · mean retain NLL, with
    CE_t = −Σ_v q_t(v) log p_θ,t(v),  q_t = softmax(z_ref,t − β·onehot(y_t))   (detached teacher).

    Dong et al. 2024, "UNDIAL: Self-Distillation with Adjusted Logits for Robust Unlearning in Large
    Language Models" (arXiv:2402.10052): the student is distilled to the frozen reference's
    distribution with the gold token's logit lowered by β. As open-unlearning computes it
    (compute_undial_loss in src/trainer/utils.py): cross-entropy with soft labels (KL plus the
    teacher's entropy, a constant), not KL. open-unlearning's defaults (configs/trainer/UNDIAL.yaml):
    β = 10, γ = 1, α = 0 (no retain term), lr 1e-4. open-unlearning averages over every position of
    the batch, prompt and padding included; here only the weighted label positions count [choice:
    the token mask chooses them; the `all` selector gives the answer tokens].

    logits, ref_logits: (B, T, V) the current and the reference model's logits that predict each
    label position (`engine.tokens.label_logits`); labels: (B, T) long, y_t (`engine.tokens.label_ids`);
    weights: (B, T) hard mask or soft weights, zero off answer tokens. retain_nll, retain_mask:
    (B', T'), only when α > 0. Normalisation: divide by Σw over the batch.
    Returns (scalar loss, {forget, retain?, targets}) with detached stats.
    """
    w = weights.float()  # (B, T)
    teacher = ref_logits.detach().float().scatter_add(  # (B, T, V): z_ref − β at the gold token
        -1, labels.unsqueeze(-1), torch.full(labels.shape + (1,), -beta, device=labels.device))
    q = F.softmax(teacher, dim=-1)  # (B, T, V)
    ce = -(q * F.log_softmax(logits.float(), dim=-1)).sum(-1)  # (B, T)
    forget = weighted_mean(ce, w)  # scalar
    loss = gamma * forget
    stats = {"forget": forget.detach(), "targets": w.sum().detach()}
    if alpha > 0:
        retain = retain_term(retain_nll, retain_mask)
        loss = loss + alpha * retain
        stats["retain"] = retain.detach()
    return loss, stats
