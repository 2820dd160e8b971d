"""A memory plan: the peak bytes of scoring, evaluating or training a model, estimated before the
work starts, and the settings that keep it inside the device (or a refusal that shows the numbers).

    shape = ModelShape.from_model(model)
    plan = plan_dto(shape, seq_len=64, budget=free_bytes("cuda"), dtype_bytes=2)
    plan.settings["probe_batch"], plan.fits, print(plan.explain())

Notation used in every formula below: P parameters, P_t trainable parameters (all of them, or the
LoRA adapters'), b bytes per element of the weights (4 fp32, 2 bf16), a bytes per element of the
activations (b; 2 under bf16 autocast over fp32 weights), r bytes of the residual stream (b; 4
under autocast, where the fp32 embeddings set it), B batch rows, T sequence length, N = B·T tokens,
L layers, H hidden size, H_kv keys' and values' width (H without grouped-query attention), I MLP
inner size, V vocabulary.

Every term is a list of the tensors that are alive at the peak, counted from what the code keeps:
the tensors autograd saves for backward were listed with `torch.autograd.graph.saved_tensors_hooks`
on transformers' GPT2Block and LlamaDecoderLayer (sdpa attention, no dropout, no KV cache: the
engine's forwards pass use_cache=False), fp32 and bf16, and match these formulas up to a few fp32
scalars per token (each head's logsumexp, the norms' statistics; `tests/test_memory_plan.py`). Two block families, chosen from the config (`ModelShape.family`):
'gpt2' (LayerNorm, fused qkv, plain MLP) and 'llama' (RMSNorm computed in fp32, separate q/k/v,
gated MLP: Llama, Mistral, Qwen2, Gemma, …). Under bf16 autocast (training on a bf16 GPU) the
terms follow CUDA's autocast lists: matmuls and sdpa in bf16, layer_norm/rms_norm/pow/log_softmax
in fp32; those terms are derived, not yet measured (`benchmarks/gpu_check.py` measures them).
`benchmarks/memory_plan.py` checks the totals against measured peaks on CPU.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

SAFETY = 0.9  # plan against this share of the free memory [choice]
MAX_PROBE_BATCH = 8  # DTO's default probe batch: the plan never goes above it
MAX_EVAL_BATCH = 64  # the evaluation's default batch
NLL_CHUNK_ELEMENTS = 2**24  # = engine.tokens.NLL_CHUNK_ELEMENTS (not imported: this module needs no torch)
# I-sized tensors an MLP activation saves for backward, and how many of them are fp32 under autocast:
# transformers' gelu_new is written in Python (pow, tanh, 0.5·x, 1 + tanh; pow is on autocast's fp32 list,
# and tanh, 1 + tanh follow it); fused activations (gelu, gelu_pytorch_tanh, silu, relu) save one.
ACTIVATION_SAVED = {"gelu_new": (4, 3), "quick_gelu": (2, 0)}


@dataclass(frozen=True)
class ModelShape:
    """The sizes the estimates need. family: 'gpt2' or 'llama' (see the module doc); kv_hidden: H_kv
    (0 = H); activation: the MLP's activation name; tied: the output layer shares the embedding's
    weight; lora_r > 0: P_t are the adapters' (`trainable`)."""

    params: int
    layers: int
    hidden: int
    inner: int
    vocab: int
    heads: int = 1
    lora_r: int = 0
    kv_hidden: int = 0
    family: str = "gpt2"
    activation: str = "gelu_new"
    tied: bool = True

    @property
    def kv(self) -> int:
        """H_kv: the width of the keys and of the values."""
        return self.kv_hidden or self.hidden

    @property
    def layer_linear_params(self) -> int:
        """Weights of one block's projections: gpt2 4H² + 2HI (qkv, out, up, down); llama
        2H² + 2H·H_kv + 3HI (q, o; k, v; gate, up, down)."""
        H = self.hidden
        if self.family == "llama":
            return 2 * H * H + 2 * H * self.kv + 3 * H * self.inner
        return 4 * H * H + 2 * H * self.inner

    @property
    def trainable(self) -> int:
        """P_t: every parameter, or the LoRA adapters' r·(in + out) summed over every projection
        (`all-linear`): gpt2 r·L·(8H + 2I), llama r·L·(9H + 2H_kv + 3I)."""
        if self.lora_r > 0:
            H, inner = self.hidden, self.inner
            per_layer = 9 * H + 2 * self.kv + 3 * inner if self.family == "llama" else 8 * H + 2 * inner
            return self.lora_r * self.layers * per_layer
        return self.params

    def with_lora(self, r: int) -> "ModelShape":
        return replace(self, lora_r=r)

    @classmethod
    def from_config(cls, config, params: int) -> "ModelShape":
        """From a transformers config and the parameter count. family 'llama' when the config has
        rms_norm_eps (an RMSNorm decoder with a gated MLP), else 'gpt2'."""
        hidden = getattr(config, "hidden_size", None) or config.n_embd
        layers = getattr(config, "num_hidden_layers", None) or config.n_layer
        inner = getattr(config, "intermediate_size", None) or getattr(config, "n_inner", None) or 4 * hidden
        heads = getattr(config, "num_attention_heads", None) or getattr(config, "n_head", 1)
        kv_heads = getattr(config, "num_key_value_heads", None) or heads
        head_dim = getattr(config, "head_dim", None) or hidden // heads
        family = "llama" if getattr(config, "rms_norm_eps", None) is not None else "gpt2"
        activation = getattr(config, "hidden_act", None) or getattr(config, "activation_function", "gelu_new")
        tied = bool(getattr(config, "tie_word_embeddings", True))
        return cls(params, layers, hidden, inner, config.vocab_size, heads, 0, kv_heads * head_dim, family,
                   str(activation), tied)

    @classmethod
    def from_model(cls, model) -> "ModelShape":
        """From a loaded model (tied weights counted once); a peft model gives its LoRA rank."""
        params = sum(p.numel() for p in model.parameters())
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        base = getattr(model, "get_base_model", lambda: model)()
        shape = cls.from_config(base.config, params)
        peft_cfg = getattr(model, "peft_config", None)
        if peft_cfg and trainable < params:
            shape = replace(shape, params=params - trainable, lora_r=next(iter(peft_cfg.values())).r)
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


def _act(b: int, autocast: bool) -> tuple[int, int]:
    """(a, r): bytes of an activation and of the residual stream: (b, b), or (2, 4) under autocast."""
    return (2, 4) if autocast else (b, b)


def norm_bytes(s: ModelShape, b: int, autocast: bool = False, consumers: int = 1) -> int:
    """One norm per token, with its output as the projections after it keep it.

    gpt2 LayerNorm keeps its input, r·H; llama RMSNorm its input cast to fp32, 4H, and, for its
    weight's gradient (none with LoRA: the norm is frozen), the normalised x·rsqrt, r·H. The output
    is the projections' input: a·H once, or under autocast one bf16 copy per projection that reads
    it (each casts it for itself), 2H·consumers.
    """
    a, r = _act(b, autocast)
    H = s.hidden
    output = 2 * H * consumers if autocast else a * H
    if s.family == "llama":
        return 4 * H + (0 if s.lora_r else r * H) + output
    return r * H + output


def attention_bytes(s: ModelShape, b: int, autocast: bool = False) -> int:
    """Attention per token: sdpa keeps q, k, v and its output (also the out projection's input,
    one storage): a·(2H + 2H_kv). No T×T matrix: flash/sdpa kernels keep a logsumexp per head only."""
    a, _ = _act(b, autocast)
    return a * (2 * s.hidden + 2 * s.kv)


def mlp_bytes(s: ModelShape, b: int, autocast: bool = False) -> int:
    """The MLP per token: the activation's saved tensors (n, `ACTIVATION_SAVED`, 1 when fused) and
    the down projection's input; a gated MLP (llama) also keeps the up projection's output and the
    activation's output (the product's operands): I·a·(n + 1 + 2·[gated]), of which the
    activation's fp32 ones (under autocast) count 4 bytes."""
    a, _ = _act(b, autocast)
    n, n32 = ACTIVATION_SAVED.get(s.activation, (1, 0))
    n32 = n32 if autocast else 0
    count = n + 1 + (2 if s.family == "llama" else 0)
    return s.inner * (a * (count - n32) + 4 * n32)


def layer_bytes(s: ModelShape, b: int, autocast: bool = False) -> int:
    """One decoder block per token: two norms (gpt2: each read by one projection, the fused qkv and
    the MLP's up; llama: by q, k, v and by gate, up), attention and MLP. fp32: gpt2 4·(8H + 5I),
    llama 4·(8H + 2H_kv + 4I); bf16 llama 20H + 4H_kv + 8I bytes; autocast llama 30H + 4H_kv + 8I."""
    first, second = (3, 2) if s.family == "llama" else (1, 1)
    return (norm_bytes(s, b, autocast, first) + norm_bytes(s, b, autocast, second) + attention_bytes(s, b, autocast)
            + mlp_bytes(s, b, autocast))


def block_activation_bytes(s: ModelShape, rows: int, seq: int, b: int, checkpointing: bool = False,
                           autocast: bool = False) -> int:
    """Saved activations for one backward: N·(L·`layer_bytes` + the final norm read by the output
    layer). With gradient checkpointing each block keeps only its input, the residual stream:
    N·(L·r·H + final norm); the block recomputed during backward is `recomputed_block_bytes`."""
    _, r = _act(b, autocast)
    final = norm_bytes(s, b, autocast, 1)
    if checkpointing:
        return rows * seq * (s.layers * r * s.hidden + final)
    return rows * seq * (s.layers * layer_bytes(s, b, autocast) + final)


def recomputed_block_bytes(s: ModelShape, rows: int, seq: int, b: int, autocast: bool = False) -> int:
    """Gradient checkpointing: the block recomputed in the backward, N·`layer_bytes`, once the
    output layer is done (its weight's gradient made, V·H·b, none with LoRA)."""
    return rows * seq * layer_bytes(s, b, autocast) + (0 if s.lora_r else s.vocab * s.hidden * b)


def autocast_weight_bytes(s: ModelShape) -> int:
    """Under autocast: the bf16 copies of every projection's and the output layer's weight, which
    autograd keeps for the backward (LoRA's frozen base weights too): 2·(L·linear + V·H)."""
    return 2 * (s.layers * s.layer_linear_params + s.vocab * s.hidden)


def nll_chunk(s: ModelShape, tokens: int) -> int:
    """Logits per chunk of `engine.tokens.per_token_nll`: min(⌊2^24 / V⌋, ⌈N/2⌉)·V (two at least)."""
    return max(1, min(NLL_CHUNK_ELEMENTS // s.vocab, (tokens + 1) // 2)) * s.vocab


def logits_bytes(s: ModelShape, rows: int, seq: int, a: int, backward: bool) -> int:
    """The vocabulary-sized tensors of one per-token NLL (`engine.tokens.per_token_nll`), a bytes
    per logit, c = `nll_chunk`. With a backward: the logits and cross-entropy's fp32 log-softmax
    (kept for backward), and one chunk's fp32 copy when a < 4: N·V·(a + 4) + 4c·[a < 4]; the
    backward holds no more (one chunk's gradients at a time). Forward only: the logits and one
    chunk's log-softmax and fp32 copy: N·V·a + 4c·(1 + [a < 4])."""
    tokens = rows * seq
    c = nll_chunk(s, tokens)
    upcast = 4 * c if a < 4 else 0
    if backward:
        return tokens * s.vocab * (a + 4) + upcast
    return tokens * s.vocab * a + 4 * c + upcast


def log_softmax_bytes(s: ModelShape, rows: int, seq: int) -> int:
    """N·V·4: the fp32 log-softmax a per-token NLL keeps for its backward (its logits are freed)."""
    return rows * seq * s.vocab * 4


def output_gradient_bytes(s: ModelShape, rows: int, seq: int, b: int, autocast: bool = False) -> int:
    """The backward's first layer, the output layer: the logits' gradient N·V·a and its weight's
    gradient V·H·b (under autocast first the bf16 copy's, V·H·2, then cast), none with LoRA (the
    output layer is frozen): N·V·a + V·H·(b + 2·[autocast])·[no LoRA]."""
    a, _ = _act(b, autocast)
    weight = 0 if s.lora_r else s.vocab * s.hidden * (b + (2 if autocast else 0))
    return rows * seq * s.vocab * a + weight


def tied_gradient_bytes(s: ModelShape, k: int, b: int) -> int:
    """Tied embeddings, at the end of a backward: the output layer's and the embedding's gradients
    of the shared weight, for k rows each, before their sum replaces them: 2·k·V·H·b (0 untied)."""
    return 2 * k * s.vocab * s.hidden * b if s.tied else 0


def kl_bytes(s: ModelShape, rows: int, seq: int, a: int) -> int:
    """`engine.tokens.kl_ref` beside the current logits: the reference logits (a) and five fp32
    vocabulary-sized tensors alive at once (reference log-probs and their exp, the current
    log-softmax, the difference and the product): N·V·(a + 20)."""
    return rows * seq * s.vocab * (a + 20)


def adamw_bytes(s: ModelShape, b: int, device: str = "cpu") -> dict[str, int]:
    """AdamW's first step: exp_avg and exp_avg_sq, 2·P_t·b. The engine's optimiser is fused on cpu
    and cuda (`engine.models.device.adamw`): one kernel in place, no temporaries (measured: the
    110M GPT-2 step peaks at gradients + states exactly); elsewhere torch's foreach kernels take
    √v of every tensor at once, P_t·b more."""
    fused = str(device).split(":")[0] in ("cpu", "cuda")
    return {"adamw_states": 2 * s.trainable * b, **({} if fused else {"adamw_temporaries": s.trainable * b})}


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


def estimate_training(s: ModelShape, batch: int, seq: int, b: int, loss: str = "ga",
                      checkpointing: bool = False, retain: bool = False, reference_copy: bool = False,
                      orthogonalize: bool = False, separate_retain_backward: bool = False,
                      autocast: bool = False, device: str = "cpu") -> dict[str, int]:
    """One AdamW step of `engine.train.step` at its peak, the first step (states are created): the
    larger of two phases beside the weights P·b (and the reference copy, another P·b, when a loss
    needs the KL without LoRA, e.g. `dto`). b: the weights' bytes; autocast: the forward runs in
    bf16 over them (activations a = 2, `autocast_weight_bytes`).

    backward phase: the forget batch's block activations and the largest of: the end of its
    forward (`logits_bytes` with a backward), the backward's first step (`output_gradient_bytes`)
    or, with checkpointing, a recomputed block (`recomputed_block_bytes`); with the KL, the logits
    and `kl_bytes`; a retain batch in the same graph adds its own activations and logits while the
    forget side keeps only its log-softmax (separate_retain_backward: backpropagated on its own,
    only the forget graph is live); orthogonalize: the two gradient lists g_f, g_p (2·P_t·b) taken
    while the graph is still held.
    step phase: gradients P_t·b and AdamW's states (and temporaries where it is not fused; `adamw_bytes`).
    """
    weights, backward, step = training_phases(s, batch, seq, b, loss, checkpointing, retain, reference_copy,
                                              orthogonalize, separate_retain_backward, autocast, device)
    return _peak(weights, backward, step)


def training_phases(s: ModelShape, batch: int, seq: int, b: int, loss: str = "ga",
                    checkpointing: bool = False, retain: bool = False, reference_copy: bool = False,
                    orthogonalize: bool = False, separate_retain_backward: bool = False,
                    autocast: bool = False, device: str = "cpu") -> tuple[int, dict[str, int], dict[str, int]]:
    """(weights bytes, backward phase's terms, step phase's terms) of `estimate_training`."""
    a, _ = _act(b, autocast)
    backward = {"activations": block_activation_bytes(s, batch, seq, b, checkpointing, autocast)}
    if autocast:
        backward["autocast_weights"] = autocast_weight_bytes(s)
    # the loss side: never two of these at once, the largest counts
    loss_side = {"logits": logits_bytes(s, batch, seq, a, backward=True),
                 "output_gradients": output_gradient_bytes(s, batch, seq, b, autocast)}
    if checkpointing:
        loss_side["recomputed_block"] = recomputed_block_bytes(s, batch, seq, b, autocast)
    largest = max(loss_side, key=loss_side.get)
    loss_terms = {largest: loss_side[largest]}
    if reference_copy:  # kl_ref runs beside the current logits
        loss_terms = {"logits": loss_side["logits"], "kl": kl_bytes(s, batch, seq, a)}
    if retain and not separate_retain_backward:
        backward["retain_activations"] = backward["activations"]
        backward["log_softmax"] = log_softmax_bytes(s, batch, seq)  # the forget side's, beside the retain's
        backward.update({f"retain_{k}": v for k, v in loss_terms.items()})
    else:
        backward.update(loss_terms)
    step = {"gradients": s.trainable * b, **adamw_bytes(s, b, device)}
    if reference_copy:
        backward["reference_copy"] = step["reference_copy"] = weights_bytes(s, b)
    if orthogonalize:
        backward["orthogonal_grads"] = 2 * s.trainable * b
    return weights_bytes(s, b), backward, step


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
                  orthogonalize: bool = False, checkpointing: bool | None = None, autocast: bool = False,
                  device: str = "cpu") -> Plan:
    """Training settings that fit, tried in order: as asked; gradient checkpointing on; the retain
    batch backpropagated on its own; LoRA (suggested, rank `lora_r`; its reference is the adapter
    switched off, so no copy). checkpointing=None lets the plan decide; True/False is kept.
    autocast, device: as `estimate_training`.
    The first fitting setting is chosen; when none fits, the last one is returned not fitting."""
    def build(ckpt, sep, use_lora, notes):
        shape = s.with_lora(lora_r) if use_lora and s.lora_r == 0 else s
        terms = estimate_training(shape, batch, seq, b, loss, ckpt, retain, reference_copy and not use_lora,
                                  orthogonalize, sep, autocast, device)
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


# ---- several GPUs: FSDP / ZeRO-3 ----------------------------------------------------------------

GPU_80GB = 80 * 10**9  # an "80 GB" card (H100/A100 80GB: 79.6-85 GB usable; the table assumes 80e9)


def shard_terms(terms: dict[str, int], gpus: int) -> dict[str, int]:
    """Per-GPU bytes of `estimate_training`'s terms under FSDP / ZeRO-3 over `gpus` ranks: the
    weights, gradients, AdamW states (and a reference copy's weights) are divided by N (ceil);
    activations, logits and every other per-batch term are each rank's own batch, not divided."""
    sharded = ("weights", "gradients", "adamw_states", "adamw_temporaries", "reference_copy")
    return {k: -(-v // gpus) if k in sharded else v for k, v in terms.items()}


def plan_sharded(s: ModelShape, gpus: int, batch: int, seq: int, budget: int | None = int(SAFETY * GPU_80GB),
                 loss: str = "npo", lora: bool = False, lora_r: int = 8, retain: bool = True,
                 autocast: bool = True, checkpointing: bool | None = None) -> Plan:
    """Per-GPU peak of a run sharded over `gpus` GPUs (`engine.train.distributed`, FSDP2): fp32
    master weights (b = 4) under bf16 autocast; `batch` rows per GPU.

    training: from the second step on, weights, AdamW states and the accumulating gradients
    (each / N, `shard_terms`) beside the backward's activations and logits (`training_phases`;
    `estimate_training` plans the first step, before the states exist), plus (N > 1) the all-gathered
    units: FSDP2 holds the current decoder layer's and the prefetched next one's full weights
    (2 · layer params · 4 bytes) and, at the root, the embedding and head (V·H·4, twice untied).
    rank 0's evaluation: the shards' weights and AdamW states stay resident while the unsharded
    fp32 copy (P·4) is on the GPU, plus an evaluation batch's logits (`logits_bytes`, 8 rows).
    The peak is the larger; checkpointing None tries off, then on. LoRA: the frozen base
    weights are sharded too; the adapters' gradients and states are tiny."""
    b = 4
    for ckpt in ([False, True] if checkpointing is None else [checkpointing]):
        shape = s.with_lora(lora_r) if lora and s.lora_r == 0 else s
        weights, backward, step = training_phases(shape, batch, seq, b, loss, ckpt, retain, False, False, False,
                                                  autocast, "cuda")
        # from the second step on, AdamW's states stay resident through the backward, while the
        # gradients accumulate: weights + states + gradients + the backward's activations at once
        terms = shard_terms({"weights": weights, **backward, "gradients": step["gradients"],
                             "adamw_states": step["adamw_states"]}, gpus)
        if gpus > 1:
            layer = shape.layer_linear_params + 2 * shape.hidden
            root = shape.vocab * shape.hidden * (1 if shape.tied else 2)
            terms["gathered_units"] = 2 * layer * b + root * b
        resident = terms.get("weights", 0) + terms.get("adamw_states", 0) + terms.get("adamw_temporaries", 0)
        full_copy = weights_bytes(shape, b) if gpus > 1 else 0
        evaluation = resident + full_copy + logits_bytes(shape, 8, seq, 2, backward=False)
        settings = {"gpus": gpus, "gradient_checkpointing": ckpt, "lora": lora, "batch_per_gpu": batch,
                    "separate_retain_backward": False, "lora_suggested": False,
                    "train_peak": sum(terms.values()), "rank0_eval_peak": evaluation}
        if evaluation > sum(terms.values()):
            terms["rank0_eval_excess"] = evaluation - sum(terms.values())
        plan = Plan(f"training {loss} on {gpus} GPU(s)" + (" (LoRA)" if lora else ""), terms, budget, settings,
                    ["gradient checkpointing on to fit"] if ckpt and checkpointing is None else [])
        if plan.fits:
            return plan
    return plan


def llama_shape(hidden: int, layers: int, inner: int, vocab: int, kv_hidden: int, tied: bool) -> ModelShape:
    """A Llama-family ModelShape with its parameter count from the sizes (embedding, head when
    untied, per layer the projections and two RMSNorms, the final norm)."""
    s = ModelShape(0, layers, hidden, inner, vocab, hidden // 128, 0, kv_hidden, "llama", "silu", tied)
    params = vocab * hidden * (1 if tied else 2) + layers * (s.layer_linear_params + 2 * hidden) + hidden
    return replace(s, params=params)


REFERENCE_SHAPES = {  # published configs: Llama-3.2-1B/3B, Llama-2-7B/13B, Llama-3.1-8B/70B
    "1B": llama_shape(2048, 16, 8192, 128256, 512, True),
    "3B": llama_shape(3072, 28, 8192, 128256, 1024, True),
    "7B": llama_shape(4096, 32, 11008, 32000, 4096, False),
    "8B": llama_shape(4096, 32, 14336, 128256, 1024, False),
    "13B": llama_shape(5120, 40, 13824, 32000, 5120, False),
    "70B": llama_shape(8192, 80, 28672, 128256, 1024, False),
}


def fit_table(gpus: tuple[int, ...] = (1, 2, 4, 8), batch: int = 4, seq: int = 512) -> str:
    """docs/memory-fit.md's table: per model size and GPU count, the per-GPU peak of full
    fine-tuning and of LoRA (r = 8) under `plan_sharded` against 0.9 × 80 GB; ✓ fits, ✗ does not."""
    head = "| model | params | " + " | ".join(f"full, {n}×80 GB" for n in gpus) + " | " + \
        " | ".join(f"LoRA, {n}×80 GB" for n in gpus) + " |"
    rows = [head, "|" + "---|" * (2 + 2 * len(gpus))]
    for name, shape in REFERENCE_SHAPES.items():
        cells = []
        for lora in (False, True):
            for n in gpus:
                p = plan_sharded(shape, n, batch, seq, lora=lora)
                ck = " ckpt" if p.settings["gradient_checkpointing"] else ""
                cells.append(f"{'✓' if p.fits else '✗'} {p.total / 10**9:.0f} GB{ck}")
        rows.append(f"| {name} | {shape.params / 10**9:.2f} B | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def planned_probe_batch(model, seq: int, device: str, form: str = "exact") -> Plan:
    """`plan_dto` for a loaded model on `device` against the device's free memory (its weights
    are already resident, so they are added back to the free bytes)."""
    s = ModelShape.from_model(model)
    b = next(model.parameters()).element_size()
    return plan_dto(s, seq, budget_of(device) + weights_bytes(s, b), b, form)
