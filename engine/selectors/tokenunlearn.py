"""`tokenunlearn`: TokenUnlearn's importance φ = α·norm(Δ) + (1−α)·norm(H) (knowledge + entropy)."""
from __future__ import annotations

import torch

from ..tokens import entropy, per_token_nll, relocate, with_prompt
from .base import SelectorInput, SelectorOutput, default_mask, logits_of


def minmax_rows(x: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
    """Min-max normalise each row over its allowed positions into [0, 1]; a constant row gives 0."""
    big = torch.finfo(x.dtype).max
    lo = x.masked_fill(~allowed, big).min(dim=1, keepdim=True).values
    hi = x.masked_fill(~allowed, -big).max(dim=1, keepdim=True).values
    span = hi - lo
    out = torch.where(span > 0, (x - lo) / span.clamp(min=1e-12), torch.zeros_like(x))
    return out * allowed


def select_tokenunlearn(inp: SelectorInput, alpha: float = 0.5, ratio: float = 0.3, k: int | None = None,
                        masked_question: str = "") -> SelectorOutput:
    """φ_t = α·norm(Δ_t) + (1−α)·norm(H_t), Δ_t = |log p(y_t | full) − log p(y_t | question masked)|.

    norm: min-max per sequence over its answer tokens [choice]. "Question masked" [choice]: the
    same answer tokens behind the prompt of `masked_question` (default: the empty question),
    so the answer is scored without the knowledge cue. Hard selection: mask = top-r (r = 0.3);
    soft weighting: train with the scores as weights (`weighting='scores'`). Two batched forwards.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    b = inp.batch
    logits = logits_of(inp.model, b)
    masked = with_prompt(inp.tokenizer, b, masked_question)
    logp_full = -per_token_nll(logits, b)
    logp_masked = relocate(-per_token_nll(logits_of(inp.model, masked), masked), masked, b)
    delta = (logp_full - logp_masked).abs()
    allowed = b.answer_mask
    phi = alpha * minmax_rows(delta, allowed) + (1 - alpha) * minmax_rows(entropy(logits, b), allowed)
    return SelectorOutput(phi * allowed, default_mask(phi, allowed, k, ratio), "tokenunlearn",
                          {"alpha": alpha, "ratio": ratio, "k": k, "masked_question": masked_question})
