"""Selectors, registered by name: a new method is one new file plus one line in SELECTORS.

`select(name, model, tokenizer, samples, **params)` encodes the samples (or takes a given
batch), runs the selector and checks the contract (shapes, mask inside the answer tokens).
"""
from __future__ import annotations

from ..tokens import Batch, encode_samples
from .all_tokens import select_all
from .base import SelectorInput, SelectorOutput
from .oracle import NoSpansError, select_oracle

SELECTORS = {
    "all": select_all,
    "oracle": select_oracle,
}


def get_selector(name: str):
    if name not in SELECTORS:
        raise KeyError(f"unknown selector {name!r}; known: {', '.join(SELECTORS)}")
    return SELECTORS[name]


def select(name: str, model, tokenizer, samples, batch: Batch | None = None, **params) -> SelectorOutput:
    """Run selector `name` on `samples` (one batch); returns scores (B, T) and mask (B, T)."""
    fn = get_selector(name)
    device = next(model.parameters()).device
    batch = (batch or encode_samples(tokenizer, samples)).to(device)
    out = fn(SelectorInput(model, tokenizer, list(samples), batch), **params)
    if out.scores.shape != batch.input_ids.shape or out.mask.shape != batch.input_ids.shape:
        raise RuntimeError(f"selector {name} returned shapes {tuple(out.scores.shape)}/{tuple(out.mask.shape)}, "
                           f"expected {tuple(batch.input_ids.shape)}")
    out.mask = out.mask & batch.answer_mask
    out.scores = out.scores.float() * batch.label_mask
    return out


__all__ = ["NoSpansError", "SELECTORS", "SelectorInput", "SelectorOutput", "get_selector", "select"]
