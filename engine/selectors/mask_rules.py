"""Mask rules: the target mask a person asks for from a selector's cached scores (no model call).

    mask_by_rule(scores, default_mask, allowed, "top-k", k=5)   # lists over one sample's label positions

default: the selector's own mask. top-k: the k highest-scoring allowed tokens (ties: earlier
first). threshold: allowed tokens whose score, min-max normalised over the row's allowed
tokens, is at least `threshold` **[choice]**: a relative scale makes one slider mean the same
on bounded (wga) and unbounded (entropy, dto) scores; a constant row selects all.
"""
from __future__ import annotations

import torch

from .base import top_k_mask

MASK_RULES = ("default", "top-k", "threshold")


def mask_by_rule(scores: list[float], default_mask: list[bool], allowed: list[bool], rule: str = "default",
                 k: int = 5, threshold: float = 0.5) -> list[bool]:
    """One sample's mask under `rule`; every list is over its n label positions.

    allowed: positions that may be targets (False at the closing EOS). ValueError for an
    unknown rule.
    """
    if rule == "default":
        return list(default_mask)
    s = torch.tensor(scores, dtype=torch.float32).unsqueeze(0)  # (1, n)
    ok = torch.tensor(allowed, dtype=torch.bool).unsqueeze(0)  # (1, n)
    if rule == "top-k":
        return top_k_mask(s, ok, max(1, int(k)))[0].tolist()
    if rule == "threshold":
        vals = s[ok]
        if vals.numel() == 0:
            return [False] * len(allowed)
        lo, hi = float(vals.min()), float(vals.max())
        norm = (s - lo) / (hi - lo) if hi > lo else torch.ones_like(s)  # (1, n)
        return ((norm >= float(threshold)) & ok)[0].tolist()
    raise ValueError(f"unknown mask rule {rule!r}; use one of {', '.join(MASK_RULES)}")
