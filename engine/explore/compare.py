"""Per-token comparisons for Explore's extra rows: Δ log-prob between two models, selector agreement.

    delta_logprob([0.5, 0.01], [0.25, 0.01])     # [log 2, 0.0]: what the first model knows more
    agreement({"wga": [1, 0], "dto": [1, 1], "oracle": [0, 1]})   # [2, 1]: oracle and all left out

Pure list maths (no torch); `other_info` fetches the second model's SampleInfo through the
explore service's cache and checks that both models read the same tokens.
"""
from __future__ import annotations

import math

AGREEMENT_EXCLUDE = ("oracle", "all")  # the ground truth and the every-token baseline are not votes
PROB_FLOOR = 1e-12  # p below this counts as this (log 0 would be -inf)


def delta_logprob(p_target: list[float], p_other: list[float], floor: float = PROB_FLOOR) -> list[float]:
    """Per token: log p_target(y_t) − log p_other(y_t) (natural log; p floored at `floor`).

    Positive: the target model finds the token likelier than the other model (with the retain model
    as the other: what the target learned from the forget set; with a run's checkpoint: what the run
    removed). ValueError when the lengths differ.
    """
    if len(p_target) != len(p_other):
        raise ValueError(f"the two models scored {len(p_target)} and {len(p_other)} tokens: not the same tokens")
    return [math.log(max(float(a), floor)) - math.log(max(float(b), floor)) for a, b in zip(p_target, p_other)]


def agreement(masks: dict[str, list | None], exclude: tuple[str, ...] = AGREEMENT_EXCLUDE) -> tuple[list[int], list[str]]:
    """(votes per token, the selectors counted): how many selectors' masks mark each token.

    Selectors that could not run (mask None) and those in `exclude` are not counted. ([], []) when
    no selector counts.
    """
    counted = [n for n, m in masks.items() if m is not None and n not in exclude]
    if not counted:
        return [], []
    n = len(masks[counted[0]])
    for name in counted:
        if len(masks[name]) != n:
            raise ValueError(f"{name}'s mask has {len(masks[name])} entries, {counted[0]}'s {n}")
    return [sum(bool(masks[name][t]) for name in counted) for t in range(n)], counted


def other_info(service, model_spec: str, other_spec: str, data_spec: str, split: str, index: int):
    """(target SampleInfo, other SampleInfo) of one sample; ValueError when the two models do not
    read the same label tokens (another tokenizer or prompt format: a Δ would compare different things)."""
    a = service.info(model_spec, data_spec, split, index)
    b = service.info(other_spec, data_spec, split, index)
    if a.tokens != b.tokens:
        raise ValueError(f"{other_spec} does not read this answer as the same tokens as {model_spec} "
                         f"({len(b.tokens)} vs {len(a.tokens)} tokens): Δ log-prob needs the same tokenizer")
    return a, b
