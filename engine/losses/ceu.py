"""`ceu`: CE-U, cross-entropy to the model's own (detached) distribution with the gold token removed."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .common import weighted_mean


def ceu_loss(logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor, answer_mask: torch.Tensor, *,
             ignore_first_n_answer_tokens: int = 1, gamma: float = 1.0) -> tuple[torch.Tensor, dict]:
    """L = γ · Σ_t w'_t CE_t / Σ_t w'_t, with
    CE_t = −Σ_v q_t(v) log p_θ,t(v),  q_t = softmax(sg(z_t) with z_t,y_t = −∞), i.e.
    q_t(v) = p_t(v) / (1 − p_t(y_t)) for v ≠ y_t and 0 at the gold token y_t.

    Yang et al. 2025, "CE-U: Cross Entropy Unlearning" (arXiv:2503.01224), as open-unlearning
    computes it (src/trainer/unlearn/ceu.py, cross_entropy_unlearning_loss): no retain term, no
    reference model. The first `ignore_first_n_answer_tokens` answer tokens of each row are left
    out (the paper's footnote; open-unlearning's default 1, configs/trainer/CEU.yaml): w'_t = w_t
    except 0 there. open-unlearning averages over all label positions (EOS included); here over
    the weighted ones.

    logits: (B, T, V) the logits that predict each label position (`engine.tokens.label_logits`);
    labels: (B, T) long y_t (`engine.tokens.label_ids`); weights: (B, T) hard mask or soft weights;
    answer_mask: (B, T) bool. Normalisation: divide by Σw' over the batch.
    Returns (scalar loss, {forget, targets}) with detached stats.
    """
    z = logits.float()  # (B, T, V)
    target = z.detach().scatter(-1, labels.unsqueeze(-1), float("-inf"))  # (B, T, V) gold token removed
    q = F.softmax(target, dim=-1)  # (B, T, V), 0 at y_t
    ce = -(q * F.log_softmax(z, dim=-1)).sum(-1)  # (B, T)
    later = answer_mask.long().cumsum(1) > ignore_first_n_answer_tokens  # (B, T) past the first n answer tokens
    w = weights.float() * answer_mask * later  # (B, T)
    forget = weighted_mean(ce, w)  # scalar
    return gamma * forget, {"forget": forget.detach(), "targets": w.sum().detach()}
