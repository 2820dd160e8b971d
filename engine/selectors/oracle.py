"""`oracle`: ground-truth fact spans of the data (built-in benchmark) mapped to tokens."""
from __future__ import annotations

from ..tokens import spans_to_mask
from .base import SelectorInput, SelectorOutput


class NoSpansError(ValueError):
    """The data carries no ground-truth spans, so `oracle` (and accuracy) are unavailable."""


def select_oracle(inp: SelectorInput) -> SelectorOutput:
    """score_t = 1 for tokens overlapping a fact span (offsets a < e and b > s), else 0."""
    if not any(s.spans for s in inp.samples):
        raise NoSpansError("these samples carry no ground-truth spans: the oracle selector is unavailable")
    spans = [[(sp.start, sp.end) for sp in s.spans] for s in inp.samples]
    mask = spans_to_mask(inp.batch.offsets, spans).to(inp.batch.label_mask.device) & inp.batch.answer_mask
    return SelectorOutput(mask.float(), mask, "oracle", {})
