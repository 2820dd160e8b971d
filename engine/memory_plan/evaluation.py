"""Planning an evaluation (and a forward-only selector's scoring): a no-grad forward with its
per-token NLL, and the largest evaluation batch that fits."""
from __future__ import annotations

from .plan import Plan
from .shape import ModelShape
from .terms import logits_bytes, weights_bytes

MAX_EVAL_BATCH = 64  # the evaluation's default batch


def estimate_forward(s: ModelShape, rows: int, seq: int, b: int) -> dict[str, int]:
    """A no-grad forward plus per-token NLL (evaluation, forward-only selectors): the weights and
    `logits_bytes` without a backward (the blocks' hidden transients are freed before the logits)."""
    return {"weights": weights_bytes(s, b), "logits": logits_bytes(s, rows, seq, b, backward=False)}


def plan_evaluation(s: ModelShape, seq: int, budget: int | None, b: int = 4, resident: int = 0) -> Plan:
    """The largest evaluation batch (64, 32, …, 1) whose no-grad forward fits beside `resident`
    bytes already held (e.g. gradients and optimiser states during a run)."""
    batch = MAX_EVAL_BATCH
    while True:
        terms = estimate_forward(s, batch, seq, b)
        if resident:
            terms["resident"] = resident
        if budget is None or sum(terms.values()) <= budget or batch == 1:
            break
        batch //= 2
    plan = Plan("evaluation", terms, budget, {"eval_batch": batch})
    if batch < MAX_EVAL_BATCH:
        plan.notes.append(f"evaluation batch lowered to {batch} to fit")
    return plan
