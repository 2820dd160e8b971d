"""`satimp`: saturation-importance weight, sg(p_t)^β1 · (1 − sg(p_t))^β2."""
from __future__ import annotations

import torch

from ..tokens import per_token_nll
from .base import SelectorInput, SelectorOutput, default_mask, logits_of


def select_satimp(inp: SelectorInput, beta1: float = 5.0, beta2: float = 1.0, k: int | None = None,
                  ratio: float = 0.3) -> SelectorOutput:
    """score_t = p_t^β1 · (1 − p_t)^β2, β1 = 5, β2 = 1 (peaks at p = β1/(β1+β2)); mask = top-k by score."""
    b = inp.batch
    p = torch.exp(-per_token_nll(logits_of(inp.model, b), b))  # (B, T)
    scores = p.pow(beta1) * (1 - p).pow(beta2) * b.answer_mask
    return SelectorOutput(scores, default_mask(scores, b.answer_mask, k, ratio), "satimp",
                          {"beta1": beta1, "beta2": beta2, "k": k, "ratio": ratio})
