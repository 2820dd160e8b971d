"""`wga`: weighted gradient ascent's token weight, sg(p_t)^β (high-probability tokens weigh more)."""
from __future__ import annotations

import torch

from ..tokens import per_token_nll
from .base import SelectorInput, SelectorOutput, default_mask, logits_of


def select_wga(inp: SelectorInput, beta: float = 1.0, k: int | None = None, ratio: float = 0.3) -> SelectorOutput:
    """score_t = p_t^β with p_t = p(y_t | y_<t), β = 1; mask = top-k (or top `ratio`) by score."""
    b = inp.batch
    p = torch.exp(-per_token_nll(logits_of(inp.model, b), b))  # (B, T)
    scores = p.pow(beta) * b.answer_mask
    return SelectorOutput(scores, default_mask(scores, b.answer_mask, k, ratio), "wga",
                          {"beta": beta, "k": k, "ratio": ratio})
