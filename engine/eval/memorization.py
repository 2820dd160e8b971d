"""Exact memorisation and extraction strength of a forget answer, teacher-forced, as open-unlearning
computes them (locuslab/open-unlearning `src/evals/metrics/memorization.py`,
`configs/eval/tofu_metrics/{exact_memorization,extraction_strength}.yaml`).

Both take `hit`: per label position but the closing EOS (`tokenwise_vocab_logprobs` drops it),
whether the greedy token under teacher forcing, argmax_v p(v | q, y_<t), equals the label y_t.
"""
from __future__ import annotations

import torch


def exact_memorization(hit: torch.Tensor) -> float | None:
    """EM = (1/n) Σ_t 1[argmax p(· | q, y_<t) = y_t] (Tirumala et al. 2022; open-unlearning
    `exact_memorization`); None for an answer with no tokens (open-unlearning skips it too)."""
    if hit.numel() == 0:
        return None
    return float(hit.float().mean())


def extraction_strength(hit: torch.Tensor) -> float:
    """ES = 1 − k/n with k the smallest index whose suffix the model reproduces under teacher
    forcing: all(hit[k:]) (Carlini et al. 2021's extraction, as Wang et al. 2025 score it;
    open-unlearning `extraction_strength`). 1: every token is the greedy one; 0 for no tokens.

    Kept from open-unlearning's loop `for k in range(n): if equal(preds[k:], labels[k:]): break`:
    when not even the last token is reproduced the loop ends at k = n − 1, so ES = 1/n, not 0."""
    n = hit.numel()
    if n == 0:
        return 0.0
    h = hit.bool().tolist()
    k = 0
    for k in range(n):
        if all(h[k:]):
            break
    return 1.0 - k / n
