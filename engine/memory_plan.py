"""A memory plan: the peak bytes of scoring, evaluating or training a model, estimated before the
work starts, and the settings that keep it inside the device (or a refusal that shows the numbers).

    shape = ModelShape.from_model(model)
    plan = plan_dto(shape, seq_len=64, budget=free_bytes("cuda"), dtype_bytes=2)
    plan.settings["probe_batch"], plan.fits, print(plan.explain())

Notation used in every formula below: P parameters, P_t trainable parameters (all of them, or the
LoRA adapters'), b bytes per element of the model's dtype (4 fp32, 2 bf16), B batch rows, T sequence
length, L layers, H hidden size, I MLP inner size, V vocabulary.

Per-token activation elements saved for backward by one decoder block, `10·H + 5·I`, were counted
with `torch.autograd.graph.saved_tensors_hooks` on transformers' GPT2Block (sdpa attention, no
dropout): layer norms, qkv, attention output, projections (≈10·H) and the MLP's up projection plus
the tanh-GELU intermediates and its input to the down projection (≈5·I). Flash/sdpa attention keeps no
T×T matrix. Llama-style blocks (RMSNorm, SwiGLU) save a similar count; the benchmark
`benchmarks/memory_plan.py` checks the totals against measured peaks.
"""
from __future__ import annotations

from dataclasses import dataclass, field

ACT_H, ACT_I = 10, 5  # saved elements per token per block: ACT_H·H + ACT_I·I (counted, see above)
SAFETY = 0.9  # plan against this share of the free memory [choice]
MAX_PROBE_BATCH = 8  # DTO's default probe batch: the plan never goes above it
MAX_EVAL_BATCH = 64  # the evaluation's default batch


@dataclass(frozen=True)
class ModelShape:
    """The sizes the estimates need. lora_r > 0: P_t = lora_r·L·(8H + 2I) (adapters on the four
    attention projections, in+out = 2H each, and the MLP's up and down, H + I each)."""

    params: int
    layers: int
    hidden: int
    inner: int
    vocab: int
    heads: int = 1
    lora_r: int = 0

    @property
    def trainable(self) -> int:
        """P_t: every parameter, or the LoRA adapters' r·L·(8H + 2I)."""
        if self.lora_r > 0:
            return self.lora_r * self.layers * (8 * self.hidden + 2 * self.inner)
        return self.params

    def with_lora(self, r: int) -> "ModelShape":
        return ModelShape(self.params, self.layers, self.hidden, self.inner, self.vocab, self.heads, r)

    @classmethod
    def from_config(cls, config, params: int) -> "ModelShape":
        """From a transformers config (GPT-2 or Llama-style names) and the parameter count."""
        hidden = getattr(config, "hidden_size", None) or config.n_embd
        layers = getattr(config, "num_hidden_layers", None) or config.n_layer
        inner = getattr(config, "intermediate_size", None) or getattr(config, "n_inner", None) or 4 * hidden
        heads = getattr(config, "num_attention_heads", None) or getattr(config, "n_head", 1)
        return cls(params, layers, hidden, inner, config.vocab_size, heads)

    @classmethod
    def from_model(cls, model) -> "ModelShape":
        """From a loaded model (tied weights counted once); a peft model gives its LoRA rank."""
        params = sum(p.numel() for p in model.parameters())
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        base = getattr(model, "get_base_model", lambda: model)()
        shape = cls.from_config(base.config, params)
        r = 0
        peft_cfg = getattr(model, "peft_config", None)
        if peft_cfg and trainable < params:
            r = next(iter(peft_cfg.values())).r
            shape = ModelShape(params - trainable, shape.layers, shape.hidden, shape.inner, shape.vocab,
                               shape.heads, r)
        return shape


@dataclass
class Plan:
    """An estimate broken down by term (bytes), the chosen settings, and whether it fits.

    terms: name → bytes, summed by `total`; budget: the bytes planned against (SAFETY · free);
    settings: what the plan chose (probe_batch, eval_batch, gradient_checkpointing, lora_suggested,
    separate_retain_backward, form); notes: why, one line each.
    """

    method: str
    terms: dict[str, int]
    budget: int | None
    settings: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.terms.values())

    @property
    def fits(self) -> bool:
        return self.budget is None or self.total <= self.budget

    def explain(self) -> str:
        """A readable breakdown: one line per term, the total against the budget, settings, notes."""
        lines = [f"memory plan for {self.method}:"]
        lines += [f"  {k:<24} {_gib(v)}" for k, v in self.terms.items()]
        budget = "no limit" if self.budget is None else _gib(self.budget)
        lines.append(f"  {'total':<24} {_gib(self.total)} of {budget} -> {'fits' if self.fits else 'DOES NOT FIT'}")
        if self.settings:
            lines.append("  settings: " + ", ".join(f"{k}={v}" for k, v in self.settings.items()))
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)

    def require(self) -> "Plan":
        """The plan itself when it fits; MemoryError with `explain()` otherwise."""
        if not self.fits:
            raise MemoryError(self.explain())
        return self


def _gib(n: int) -> str:
    return f"{n / 2**30:9.3f} GiB"


def free_bytes(device: str) -> int:
    """Free memory of `device`: cuda's mem_get_info, or MemAvailable of /proc/meminfo on the CPU."""
    if str(device).startswith("cuda"):
        import torch

        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import psutil

    return int(psutil.virtual_memory().available)


def budget_of(device: str) -> int:
    """SAFETY · free bytes of the device: what plans are made against."""
    return int(SAFETY * free_bytes(device))


# ---- terms, one function per formula -------------------------------------------------------------

def weights_bytes(s: ModelShape, b: int) -> int:
    """P·b: the model's weights (resident before any work starts)."""
    return s.params * b


def block_activation_bytes(s: ModelShape, rows: int, seq: int, b: int, checkpointing: bool = False) -> int:
    """Saved activations of the decoder blocks for one backward: rows·T·L·(10H + 5I)·b.

    With gradient checkpointing only each block's input is kept, plus one block recomputed during
    backward: rows·T·(L·H + 10H + 5I)·b.
    """
    per_block = ACT_H * s.hidden + ACT_I * s.inner
    if checkpointing:
        return rows * seq * (s.layers * s.hidden + per_block) * b
    return rows * seq * s.layers * per_block * b


def logits_bytes(s: ModelShape, rows: int, seq: int, b: int, backward: bool) -> int:
    """The vocabulary-sized tensors of one per-token NLL (`engine.tokens.per_token_nll`): the logits
    (b), an fp32 copy when b < 4, and cross-entropy's fp32 log-softmax; a backward adds one more
    vocabulary-sized gradient (b). rows·T·V·(b + 4 + 4·[b < 4] + b·[backward])."""
    return rows * seq * s.vocab * (b + 4 + (4 if b < 4 else 0) + (b if backward else 0))


def kl_bytes(s: ModelShape, rows: int, seq: int, b: int) -> int:
    """`engine.tokens.kl_ref` with a backward: the reference logits (b) and three fp32
    vocabulary-sized tensors (reference log-probs and probabilities, current log-softmax):
    rows·T·V·(b + 12)."""
    return rows * seq * s.vocab * (b + 12)


def _peak(weights: int, *phases: dict[str, int]) -> dict[str, int]:
    """Weights plus the terms of the largest phase: tensors of different phases never coexist."""
    return {"weights": weights, **max(phases, key=lambda ph: sum(ph.values()))}


# ---- methods -----------------------------------------------------------------------------------

def estimate_forward(s: ModelShape, rows: int, seq: int, b: int) -> dict[str, int]:
    """A no-grad forward plus per-token NLL (evaluation, forward-only selectors): the weights and
    `logits_bytes` without a backward (the blocks' hidden transients are freed before the logits)."""
    return {"weights": weights_bytes(s, b), "logits": logits_bytes(s, rows, seq, b, backward=False)}


def estimate_dto(s: ModelShape, probe_batch: int, seq: int, b: int, form: str = "exact") -> dict[str, int]:
    """DTO scoring of `probe_batch` = k sequences at once (the selector's 'vmap' path) or one at a
    time (form 'loop' / 'first_order_loop', k = 1). The peak is the larger of two phases:

    gradient phase: k per-sample gradients k·P_t·b beside the k rows' saved activations and logits
    with a backward (`block_activation_bytes`, `logits_bytes`);
    probe phase, exact (vmap and loop): the gradients' storage becomes the probed weights θ + η·g
    (k·P_t·b once) beside the probe forward's logits; first order: the gradients (scaled in place)
    and a forward-mode pass that carries a tangent beside every activation, 2 × the forward's logits.
    """
    if form not in ("exact", "first_order", "loop", "first_order_loop"):
        raise ValueError(f"form must be exact, first_order, loop or first_order_loop, got {form!r}")
    k = 1 if form in ("loop", "first_order_loop") else probe_batch
    if k < 1:
        raise ValueError(f"probe_batch must be at least 1, got {probe_batch}")
    grads = k * s.trainable * b
    gradient_phase = {"per_sample_grads": grads, "probe_activations": block_activation_bytes(s, k, seq, b),
                      "probe_logits": logits_bytes(s, k, seq, b, backward=True)}
    forward = logits_bytes(s, k, seq, b, backward=False)
    if form in ("exact", "loop"):
        probe_phase = {"per_sample_grads": grads, "probe_logits": forward}
    else:
        probe_phase = {"per_sample_grads": grads, "probe_logits": 2 * forward}
    return _peak(weights_bytes(s, b), gradient_phase, probe_phase)


def estimate_training(s: ModelShape, batch: int, seq: int, b: int, loss: str = "ga",
                      checkpointing: bool = False, retain: bool = False, reference_copy: bool = False,
                      orthogonalize: bool = False, separate_retain_backward: bool = False) -> dict[str, int]:
    """One AdamW step of `engine.train.step` at its peak, the first step (states are created): the
    larger of two phases beside the weights P·b (and the reference copy, another P·b, when a loss
    needs the KL without LoRA, e.g. `dto`).

    backward phase: the forget batch's block activations and logits (`block_activation_bytes`,
    `logits_bytes` with a backward); a retain batch in the same graph doubles both
    (separate_retain_backward: backpropagated on its own, only the larger is live); the KL's
    tensors (`kl_bytes`); orthogonalize: the two gradient lists g_f, g_p (2·P_t·b) taken while
    the graph is still held.
    step phase: gradients P_t·b and AdamW's exp_avg and exp_avg_sq 2·P_t·b.
    """
    backward = {"activations": block_activation_bytes(s, batch, seq, b, checkpointing),
                "logits": logits_bytes(s, batch, seq, b, backward=True)}
    if retain and not separate_retain_backward:
        backward["retain_activations"] = backward["activations"]
        backward["retain_logits"] = backward["logits"]
    step = {"gradients": s.trainable * b, "adamw_states": 2 * s.trainable * b}
    if reference_copy:
        backward["kl"] = kl_bytes(s, batch, seq, b)
        backward["reference_copy"] = step["reference_copy"] = weights_bytes(s, b)
    if orthogonalize:
        backward["orthogonal_grads"] = 2 * s.trainable * b
    return _peak(weights_bytes(s, b), backward, step)


# ---- plans: choose settings that fit -----------------------------------------------------------

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


def plan_training(s: ModelShape, batch: int, seq: int, budget: int | None, b: int = 4, loss: str = "ga",
                  lora: bool = False, lora_r: int = 8, retain: bool = False, reference_copy: bool = False,
                  orthogonalize: bool = False, checkpointing: bool | None = None) -> Plan:
    """Training settings that fit, tried in order: as asked; gradient checkpointing on; the retain
    batch backpropagated on its own; LoRA (suggested, rank `lora_r`; its reference is the adapter
    switched off, so no copy). checkpointing=None lets the plan decide; True/False is kept.
    The first fitting setting is chosen; when none fits, the last one is returned not fitting."""
    def build(ckpt, sep, use_lora, notes):
        shape = s.with_lora(lora_r) if use_lora and s.lora_r == 0 else s
        terms = estimate_training(shape, batch, seq, b, loss, ckpt, retain, reference_copy and not use_lora,
                                  orthogonalize, sep)
        settings = {"gradient_checkpointing": ckpt, "separate_retain_backward": sep, "lora": use_lora,
                    "lora_suggested": use_lora and not lora}
        return Plan(f"training {loss}", terms, budget, settings, list(notes))

    ckpt0 = bool(checkpointing)
    tries = [(ckpt0, False, lora, [])]
    if checkpointing is None:
        tries.append((True, False, lora, ["gradient checkpointing on to fit"]))
    ck = True if checkpointing is None else ckpt0
    if retain:
        tries.append((ck, True, lora, ["retain batch backpropagated on its own to fit"]))
    if not lora:
        tries.append((ck, retain, True, [f"full fine-tuning does not fit: LoRA (r={lora_r}) suggested"]))
    plan = None
    for ckpt, sep, use_lora, notes in tries:
        plan = build(ckpt, sep, use_lora, notes)
        if plan.fits:
            return plan
    plan.notes.append("no setting fits: use a smaller model, batch or sequence, or a larger device")
    return plan


def planned_probe_batch(model, seq: int, device: str, form: str = "exact") -> Plan:
    """`plan_dto` for a loaded model on `device` against the device's free memory (its weights
    are already resident, so they are added back to the free bytes)."""
    s = ModelShape.from_model(model)
    b = next(model.parameters()).element_size()
    return plan_dto(s, seq, budget_of(device) + weights_bytes(s, b), b, form)
