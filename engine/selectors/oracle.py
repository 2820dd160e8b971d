"""`oracle`: ground-truth fact spans of the data (built-in benchmark) mapped to tokens."""
from __future__ import annotations

from ..tokens import fact_mask
from .base import SelectorInput, SelectorOutput


class NoSpansError(ValueError):
    """The data carries no ground-truth spans, so `oracle` (and accuracy) are unavailable."""


def select_oracle(inp: SelectorInput) -> SelectorOutput:
    """score_t = 1 for tokens overlapping a fact span (offsets a < e and b > s), else 0."""
    if not any(s.spans for s in inp.samples):
        raise NoSpansError("these samples carry no ground-truth spans: the oracle selector is unavailable")
    mask = fact_mask(inp.batch, inp.samples).to(inp.batch.label_mask.device)
    return SelectorOutput(mask.float(), mask, "oracle", {})
