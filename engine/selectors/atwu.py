"""`atwu`: the token scores of a saved ATWU scorer (engine.weights.atwu holds ATWU itself)."""
from __future__ import annotations

from pathlib import Path

import torch

from .atwu_scorer import find_scorer, last_hidden, load_scorer
from .base import SelectorInput, SelectorOutput, SelectorUnavailable


def select_atwu(inp: SelectorInput, scorer: str | None = None, threshold: float = 0.5) -> SelectorOutput:
    """score_t = g_t = σ(wᵀh_t + b) of a saved ATWU scorer; mask = g_t > threshold (0.5).

    scorer: path of a saved scorer (.safetensors); default: the newest one fitted for this
    model on these samples (from an ATWU unlearning run or `python -m engine fit-scorer`).
    """
    path = Path(scorer) if scorer else find_scorer(inp.model, inp.samples)
    if path is None or not path.is_file():
        raise SelectorUnavailable(
            "no ATWU scorer has been fitted for this model and data yet: run "
            "`python -m engine fit-scorer --model MODEL --data DATA` (seconds on the built-in model), "
            "or an unlearning run with --selector atwu, then select again"
            + (f" ({path} does not exist)" if path is not None else ""))
    net = load_scorer(path).to(inp.batch.input_ids.device)
    hidden = last_hidden(inp.model, inp.batch)  # (B, T, H)
    if hidden.shape[-1] != net.linear.in_features:
        raise SelectorUnavailable(f"the ATWU scorer {path.name} was fitted on hidden size "
                                  f"{net.linear.in_features}, this model has {hidden.shape[-1]}")
    with torch.no_grad():
        g = net(hidden) * inp.batch.answer_mask  # (B, T)
    return SelectorOutput(g, (g > threshold) & inp.batch.answer_mask, "atwu",
                          {"scorer": str(path), "threshold": threshold})
