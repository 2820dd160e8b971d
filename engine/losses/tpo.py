"""`tpo`: Targeted Preference Optimization (TIF framework): logit preference + preservation."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .common import complement, mean_over_rows, retain_nll as retain_term


def tpo_loss(logit: torch.Tensor, ref_logit: torch.Tensor, nll: torch.Tensor, weights: torch.Tensor,
             answer_mask: torch.Tensor, retain_nll: torch.Tensor | None = None,
             retain_mask: torch.Tensor | None = None, label_mask: torch.Tensor | None = None, *,
             beta: float = 0.25, gamma: float = 1.0, pl_weight: float = 1.0, alpha: float = 0.0,
             pl_eos: bool = True) -> tuple[torch.Tensor, dict]:
    """L = γ·LPL + pl_weight·PL + α·retain NLL   (Zhou et al. 2025, arXiv:2506.03142, §TPO).

    LPL (Logit Preference Loss) = −(2/β)·log σ(β·s), with
        s = mean over sequences i of [Σ_t w_it (z_ref,it − z_θ,it) / Σ_t w_it],
    z the RAW logit of the label token (not its log-probability), w the target weights.
    PL (Preservation Loss) = mean over sequences of Σ_t (1 − w_it)·ℓ_it over answer tokens
    (the non-target "general words"; a sum per sequence, as in the paper, not a mean), plus the
    closing EOS's ℓ when pl_eos (default True, as the official code: Unlearning-TPO, TOFU/
    dataloader.py, loss_type 'tpo', builds the preservation labels from every position labelled
    −100 in the forget labels after the answer tag, masks "all occurrences [of the pad/EOS id]
    except the first", so the first EOS after the answer, the closing one, is kept; needs
    label_mask (B, T), the label positions: the EOS is label_mask & ~answer_mask).
    At step 0 (θ = ref) LPL = (2/β)·ln 2.

    logit, ref_logit: (B, T) label-token logits from `engine.tokens.label_logit`.
    nll: (B, T) per-token NLL; weights: (B, T) hard mask or soft weights in [0, 1];
    answer_mask: (B, T) bool. retain_nll/retain_mask: (B', T'), only when α > 0.
    Normalisation: s averages rows that have targets; PL divides by the batch size B.
    Returns (scalar loss, {forget (= LPL), preserve (= PL), margin (= s), retain?, targets}).
    """
    w = weights.float() * answer_mask  # (B, T)
    row_w = w.sum(1)  # (B,)
    per_row = (w * (ref_logit - logit)).sum(1) / row_w.clamp(min=1e-8)  # (B,)
    s = mean_over_rows(per_row, row_w > 0)  # scalar
    lpl = -(2.0 / beta) * F.logsigmoid(beta * s)  # scalar
    keep = complement(w, answer_mask)  # (B, T) non-target weights
    if pl_eos and label_mask is not None:
        keep = keep + (label_mask & ~answer_mask).float()  # the closing EOS
    pl = (keep * nll).sum(1).mean()  # scalar: Σ over non-targets (+ EOS), mean over batch
    loss = gamma * lpl + pl_weight * pl
    stats = {"forget": lpl.detach(), "preserve": pl.detach(), "margin": s.detach(), "targets": row_w.sum().detach()}
    if alpha > 0:
        retain = retain_term(retain_nll, retain_mask)
        loss = loss + alpha * retain
        stats["retain"] = retain.detach()
    return loss, stats
