"""Planning a selector's scoring: nothing (model-free), a no-grad forward (`evaluation`), or DTO's
probe (`estimate_dto`, the probe batch or the in-place loop that fits)."""
from __future__ import annotations

from .evaluation import estimate_forward
from .plan import Plan, budget_of
from .shape import ModelShape
from .terms import _peak, block_activation_bytes, logits_bytes, tied_gradient_bytes, weights_bytes

MAX_PROBE_BATCH = 8  # DTO's default probe batch: the plan never goes above it


def estimate_dto(s: ModelShape, probe_batch: int, seq: int, b: int, form: str = "exact") -> dict[str, int]:
    """DTO scoring of `probe_batch` = k sequences at once (the selector's 'vmap' path) or one at a
    time (form 'loop' / 'first_order_loop', k = 1). The peak is the larger of two phases:

    gradient phase, vmap: the k per-sample gradients k·P_t·b, and `torch.func.grad` runs autograd
    with create_graph=True, so every activation and logits tensor it saved stays until the gradient
    is complete, and the backward's own intermediates (kept for a second derivative) pile up beside
    them, about as many again: 2·(activations + logits); with tied embeddings the output layer's and
    the embedding's gradients wait to be summed at the end, 2·k·V·H·b more (`tied_gradient_bytes`).
    gradient phase, loop (`torch.autograd.grad`, one row): activations are freed as the gradient
    grows, so the larger of its start (activations, logits) and its end (P_t·b, tied: 2·V·H·b more).
    probe phase, exact (vmap and loop): the gradients' storage becomes the probed weights θ + η·g
    (k·P_t·b once) beside the probe forward's logits; first order: the gradients (scaled in place) and a forward-mode pass that carries a
    tangent beside every activation, 2 × the forward's logits.
    """
    if form not in ("exact", "first_order", "loop", "first_order_loop"):
        raise ValueError(f"form must be exact, first_order, loop or first_order_loop, got {form!r}")
    k = 1 if form in ("loop", "first_order_loop") else probe_batch
    if k < 1:
        raise ValueError(f"probe_batch must be at least 1, got {probe_batch}")
    grads = k * s.trainable * b
    activations = block_activation_bytes(s, k, seq, b)
    logits = logits_bytes(s, k, seq, b, backward=True)
    tied = tied_gradient_bytes(s, k, b)
    if form in ("exact", "first_order"):
        gradient_phase = {"per_sample_grads": grads, "probe_activations": 2 * activations, "probe_logits": 2 * logits}
        if tied:
            gradient_phase["tied_gradients"] = tied
    else:
        start = {"probe_activations": activations, "probe_logits": logits}
        end = {"per_sample_grads": grads, **({"tied_gradients": tied} if tied else {})}
        gradient_phase = max(start, end, key=lambda ph: sum(ph.values()))
    forward = logits_bytes(s, k, seq, b, backward=False)
    if form in ("exact", "loop"):
        probe_phase = {"per_sample_grads": grads, "probe_logits": forward}
    else:
        probe_phase = {"per_sample_grads": grads, "probe_logits": 2 * forward}
    return _peak(weights_bytes(s, b), gradient_phase, probe_phase)


SELECTOR_COST = {  # how each selector scores: no model, one forward pass (at a time), or DTO's probe
    "all": "none", "oracle": "none", "lexical": "none",
    "wga": "forward", "satimp": "forward", "entropy": "forward", "tokenunlearn": "forward",
    "tif": "forward", "atwu": "forward", "dto": "dto",
}


def plan_dto(s: ModelShape, seq: int, budget: int | None, b: int = 4, form: str = "exact",
             probe_batch: int | None = None) -> Plan:
    """DTO scoring: the given probe batch, or the largest k ≤ 8 whose vmap estimate fits; when even
    k = 1 does not fit, the in-place per-sample loop (settings form 'loop' / 'first_order_loop');
    when that does not fit either, the plan does not fit (refuse with `require()`)."""
    base = "first_order" if form.startswith("first_order") else "exact"
    loop = "first_order_loop" if base == "first_order" else "loop"
    if probe_batch is not None:
        chosen = form if form in ("loop", "first_order_loop") else base
        terms = estimate_dto(s, probe_batch, seq, b, chosen)
        return Plan("dto", terms, budget, {"probe_batch": probe_batch, "form": chosen}, ["probe batch given"])
    for k in range(MAX_PROBE_BATCH, 0, -1):
        terms = estimate_dto(s, k, seq, b, base)
        if budget is None or sum(terms.values()) <= budget:
            notes = [] if k == MAX_PROBE_BATCH else [f"probe batch lowered to {k} to fit"]
            return Plan("dto", terms, budget, {"probe_batch": k, "form": base}, notes)
    terms = estimate_dto(s, 1, seq, b, loop)
    plan = Plan("dto", terms, budget, {"probe_batch": 1, "form": loop},
                ["no vmap probe batch fits: one sequence at a time, probed in place"])
    if not plan.fits:
        plan.notes.append("even one sequence does not fit: use a smaller model or a larger device")
    return plan


def plan_selector(name: str, s: ModelShape, rows: int, seq: int, budget: int | None, b: int = 4,
                  **dto_kwargs) -> Plan:
    """Scoring with selector `name`: nothing for model-free selectors, a no-grad forward of `rows`
    for forward-only ones, `plan_dto` for DTO."""
    if name not in SELECTOR_COST:
        raise KeyError(f"unknown selector {name!r}; known: {', '.join(SELECTOR_COST)}")
    cost = SELECTOR_COST[name]
    if cost == "dto":
        return plan_dto(s, seq, budget, b, **dto_kwargs)
    terms = {"weights": weights_bytes(s, b)}
    if cost == "forward":
        terms.update(estimate_forward(s, rows, seq, b))
    return Plan(f"selector {name}", terms, budget, {})


def planned_probe_batch(model, seq: int, device: str, form: str = "exact") -> Plan:
    """`plan_dto` for a loaded model on `device` against the device's free memory (its weights
    are already resident, so they are added back to the free bytes)."""
    s = ModelShape.from_model(model)
    b = next(model.parameters()).element_size()
    return plan_dto(s, seq, budget_of(device) + weights_bytes(s, b), b, form)
