"""The memory terms, one function per formula (bytes of the tensors alive at a peak).

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

from .shape import ModelShape

NLL_CHUNK_ELEMENTS = 2**24  # = engine.tokens.NLL_CHUNK_ELEMENTS (not imported: this module needs no torch)
# I-sized tensors an MLP activation saves for backward, and how many of them are fp32 under autocast:
# transformers' gelu_new is written in Python (pow, tanh, 0.5·x, 1 + tanh; pow is on autocast's fp32 list,
# and tanh, 1 + tanh follow it); fused activations (gelu, gelu_pytorch_tanh, silu, relu) save one.
ACTIVATION_SAVED = {"gelu_new": (4, 3), "quick_gelu": (2, 0)}


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
