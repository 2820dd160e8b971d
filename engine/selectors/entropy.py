"""`entropy`: predictive entropy of the distribution that predicts each answer token."""
from __future__ import annotations

from ..tokens import entropy
from .base import SelectorInput, SelectorOutput, default_mask, logits_of


def select_entropy(inp: SelectorInput, k: int | None = None, ratio: float = 0.3) -> SelectorOutput:
    """score_t = H_t = −Σ_v p(v | y_<t) log p(v | y_<t) (nats); mask = top-k by score."""
    b = inp.batch
    scores = entropy(logits_of(inp.model, b), b) * b.answer_mask
    return SelectorOutput(scores, default_mask(scores, b.answer_mask, k, ratio), "entropy",
                          {"k": k, "ratio": ratio})
