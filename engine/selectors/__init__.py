"""Selectors, registered by name: a new method is one new file plus one line in SELECTORS.

`select(name, model, tokenizer, samples, **params)` encodes the samples (or takes a given
batch), runs the selector and checks the contract (shapes, mask inside the answer tokens).
"""
from __future__ import annotations

from ..param_check import check_params
from ..tokens import Batch, encode_samples
from .atwu_scorer import OPTIMIZER_DEFAULTS, SCORER_DEFAULTS
from .all_tokens import select_all
from .atwu import select_atwu
from .base import SelectorInput, SelectorOutput, SelectorUnavailable
from .dto import select_dto
from .entropy import select_entropy
from .lexical import select_lexical
from .oracle import NoSpansError, select_oracle
from .satimp import select_satimp
from .tif import select_tif
from .tokenunlearn import select_tokenunlearn
from .wga import select_wga

SELECTORS = {
    "all": select_all,
    "lexical": select_lexical,
    "oracle": select_oracle,
    "wga": select_wga,
    "satimp": select_satimp,
    "entropy": select_entropy,
    "tokenunlearn": select_tokenunlearn,
    "tif": select_tif,
    "dto": select_dto,
    "atwu": select_atwu,
}


def get_selector(name: str):
    if name not in SELECTORS:
        raise KeyError(f"unknown selector {name!r}; known: {', '.join(SELECTORS)}")
    return SELECTORS[name]


def check_selector_params(name: str, params: dict, in_run: bool = False) -> dict:
    """A selector's parameters checked against its signature (`engine.param_check`). In a run,
    `atwu` also takes its scorer's training settings (init, SCORER_DEFAULTS, OPTIMIZER_DEFAULTS)."""
    extra = None
    if in_run and name == "atwu":
        extra = {"init": str, **{k: float for k in [*SCORER_DEFAULTS, *OPTIMIZER_DEFAULTS]}}
    return check_params(get_selector(name), params, f"selector {name!r}", name, skip_first=True, extra=extra)


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


__all__ = ["NoSpansError", "SELECTORS", "SelectorInput", "SelectorOutput", "SelectorUnavailable", "get_selector",
           "select"]
