"""`all`: every answer token is a target with weight 1 (the sequence-level baseline)."""
from __future__ import annotations

from .base import SelectorInput, SelectorOutput


def select_all(inp: SelectorInput) -> SelectorOutput:
    """score_t = 1 on every answer token (not the closing EOS); mask = all answer tokens."""
    mask = inp.batch.answer_mask
    return SelectorOutput(mask.float(), mask.clone(), "all", {})
