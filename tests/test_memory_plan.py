"""The memory plan's terms against byte counts worked out by hand, and the settings it chooses."""
from __future__ import annotations

import pytest
import torch

from engine.memory_plan import (ModelShape, autocast_weight_bytes, estimate_dto, estimate_forward, estimate_training,
                                layer_bytes, plan_dto, plan_evaluation, plan_selector, plan_training)

# P = 1000 parameters, L = 2, H = 8, I = 32, V = 50 (gpt2: gelu_new, tied embeddings); batch 2, T = 10
TINY = ModelShape(params=1000, layers=2, hidden=8, inner=32, vocab=50)
# the same sizes as a Llama-style model: I = 24, H_kv = 4 (grouped-query attention), untied
LLAMA = ModelShape(params=1000, layers=2, hidden=8, inner=24, vocab=50, kv_hidden=4, family="llama",
                   activation="silu", tied=False)


def test_layer_terms_by_hand():
    # gpt2 fp32: norms 2·(r·H + a·H), attention a·(2H + 2H), MLP 5I·a (gelu_new: 4 saved + the down input)
    assert layer_bytes(TINY, 4) == 4 * (8 * 8 + 5 * 32) == 896
    # gpt2 under autocast: norms keep the fp32 residual (4H) and a bf16 copy (2H) each; attention bf16;
    # gelu_new's pow input, tanh and 1 + tanh in fp32 (3 · 4I), 0.5·x and the down input in bf16 (2 · 2I)
    assert layer_bytes(TINY, 4, autocast=True) == 2 * (4 * 8 + 2 * 8) + 2 * (2 * 8 + 2 * 8) + (12 + 4) * 32 == 672
    # llama fp32: each RMSNorm x, x·rsqrt and its output (12H), attention 4·(2H + 2H_kv), MLP 4·4I
    assert layer_bytes(LLAMA, 4) == 2 * 12 * 8 + 4 * (16 + 8) + 16 * 24 == 4 * (8 * 8 + 2 * 4 + 4 * 24) == 672
    # llama bf16: each RMSNorm its input in fp32 (4H), x·rsqrt and output in bf16 (2H + 2H)
    assert layer_bytes(LLAMA, 2) == 2 * 8 * 8 + 2 * (16 + 8) + 8 * 24 == 368
    # llama under autocast: fp32 x and x·rsqrt (8H) per norm, plus a bf16 copy per reader: 3 (q, k, v), 2 (gate, up)
    assert layer_bytes(LLAMA, 4, autocast=True) == 30 * 8 + 4 * 4 + 8 * 24 == 448
    # LoRA freezes the RMSNorm weight: x·rsqrt is not kept
    assert layer_bytes(LLAMA.with_lora(2), 4) == 672 - 2 * 4 * 8
    # bf16 weight copies under autocast: 2·(L·(2H² + 2H·H_kv + 3HI) + V·H)
    assert autocast_weight_bytes(LLAMA) == 2 * (2 * (128 + 64 + 576) + 400) == 3872
    assert LLAMA.with_lora(4).trainable == 4 * 2 * (9 * 8 + 2 * 4 + 3 * 24)  # r·L·(9H + 2H_kv + 3I)


@pytest.mark.parametrize("family", ["gpt2", "llama"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_layer_bytes_match_what_autograd_saves(family, dtype):
    """`layer_bytes` against the bytes autograd saves for one more decoder block (3 blocks minus 1),
    counted with saved_tensors_hooks over distinct storages: equal up to the per-head logsumexp and
    the norms' per-token statistics (a few fp32 scalars per token) the formula leaves out."""
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    def build(layers):
        torch.manual_seed(0)
        if family == "llama":
            return LlamaForCausalLM(LlamaConfig(vocab_size=64, hidden_size=64, intermediate_size=176,
                                                num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                                                max_position_embeddings=64, attn_implementation="sdpa")).to(dtype)
        return GPT2LMHeadModel(GPT2Config(vocab_size=64, n_positions=64, n_embd=64, n_layer=layers, n_head=4,
                                          resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)).to(dtype)

    def saved(model, ids):
        storages = {}

        def pack(t):
            storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
            return t

        params = {p.untyped_storage().data_ptr() for p in model.parameters()}
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            model(input_ids=ids, use_cache=False)
        return sum(n for k, n in storages.items() if k not in params)

    ids = torch.randint(0, 64, (2, 16), generator=torch.Generator().manual_seed(0))
    per_token = (saved(build(3), ids) - saved(build(1), ids)) / 2 / ids.numel()
    shape = ModelShape.from_model(build(1))
    assert shape.family == family and (shape.kv == 32) == (family == "llama")
    formula = layer_bytes(shape, dtype.itemsize)
    assert formula <= per_token <= formula + 4 * (4 + 2 * 2), (per_token, formula)  # lse per head, norm stats


def test_the_plan_chunks_the_nll_as_the_engine_does():
    from engine import memory_plan, tokens

    assert memory_plan.NLL_CHUNK_ELEMENTS == tokens.NLL_CHUNK_ELEMENTS


def test_training_terms_by_hand():
    t = estimate_training(TINY, batch=2, seq=10, b=4)
    act = 20 * (2 * 896 + 64)  # N·(L·layer + final norm 2H·4) = 37120
    # logits and cross-entropy's log-softmax N·V·(4 + 4) = 8000 beat the output layer's gradients
    # N·V·4 + V·H·4 = 5600; the backward phase 45120 beats the step phase 4000 + 8000 + 2·400·4
    assert t == {"weights": 4000, "activations": act, "logits": 8000}
    ck = estimate_training(TINY, batch=2, seq=10, b=4, checkpointing=True)
    # block inputs N·(L·H·4 + final) = 2560; a block recomputed N·896 + the output weight's gradient 1600
    assert ck == {"weights": 4000, "activations": 2560, "recomputed_block": 17920 + 1600}
    retain = estimate_training(TINY, 2, 10, 4, retain=True)
    assert retain == {"weights": 4000, "activations": act, "retain_activations": act, "log_softmax": 4000,
                      "retain_logits": 8000}
    sep = estimate_training(TINY, 2, 10, 4, retain=True, separate_retain_backward=True)
    assert sep == t
    kl = estimate_training(TINY, 2, 10, 4, reference_copy=True, orthogonalize=True)
    assert kl == {"weights": 4000, "activations": act, "logits": 8000, "kl": 20 * 50 * (4 + 20),
                  "reference_copy": 4000, "orthogonal_grads": 8000}
    # one token: the step phase (gradients 4000, AdamW's states 8000; fused: no temporaries) beats 1856 + 1800
    assert estimate_training(TINY, 1, 1, 4) == {"weights": 4000, "gradients": 4000, "adamw_states": 8000}
    assert estimate_training(TINY, 1, 1, 4, device="cuda:0") == estimate_training(TINY, 1, 1, 4)
    # where AdamW is not fused, its foreach kernels take √v of every tensor at once: P_t·b
    assert estimate_training(TINY, 1, 1, 4, device="mps")["adamw_temporaries"] == 4000


def test_autocast_training_terms_by_hand():
    t = estimate_training(LLAMA, 2, 10, 4, autocast=True, device="cuda")
    # N·(L·448 + final norm 4H + 4H + 2H) = 20·976; bf16 logits + fp32 log-softmax N·V·6 + one fp32
    # chunk 4·c (c = 10 tokens · V) = 8000 beat the output gradients N·V·2 + V·H·(4 + 2) = 4400
    assert t == {"weights": 4000, "activations": 20 * 976, "autocast_weights": 3872, "logits": 8000}


def test_lora_trains_only_the_adapters():
    lora = TINY.with_lora(4)
    assert lora.trainable == 4 * 2 * (8 * 8 + 2 * 32)  # r·L·(8H + 2I) = 1024
    t = estimate_training(lora, 1, 1, 2)
    # step phase: 2048 + 4096 (fused AdamW); backward 928 + 500 (no output weight gradient)
    assert t == {"weights": 2000, "gradients": 2048, "adamw_states": 4096}


def test_forward_and_dto_terms_by_hand():
    # bf16 logits N·V·2 and one chunk (half the tokens: 20·V = 1000) upcast and log-softmaxed: 4·1000·2
    assert estimate_forward(TINY, rows=4, seq=10, b=2) == {"weights": 2000, "logits": 4000 + 8000}
    assert estimate_forward(TINY, rows=4, seq=10, b=4) == {"weights": 4000, "logits": 8000 + 4000}
    # vmap, k = 3, T = 10: torch.func.grad's create_graph keeps 2·(activations 55680 + logits 12000),
    # and the tied output/embedding gradients 2·k·V·H·4 = 9600 beside the gradients 12000
    d = estimate_dto(TINY, probe_batch=3, seq=10, b=4, form="exact")
    assert d == {"weights": 4000, "per_sample_grads": 12000, "probe_activations": 2 * 55680, "probe_logits": 24000,
                 "tied_gradients": 9600}
    assert estimate_dto(TINY, 3, 10, 4, "first_order") == d
    # untied, P = 10^5, T = 1: exact writes the probed weights into the gradients' storage, so its
    # probe phase (1.2e6 + forward logits 600 + one chunk's log-softmax 400) loses to the gradient
    # phase 1.2e6 + 11136 + 2400, as first order's (1.2e6 + 2 · 1000) does
    big = ModelShape(params=100_000, layers=2, hidden=8, inner=32, vocab=50, tied=False)
    gradient_phase = {"weights": 400000, "per_sample_grads": 1200000, "probe_activations": 11136, "probe_logits": 2400}
    assert estimate_dto(big, 3, 1, 4, "exact") == gradient_phase
    assert estimate_dto(big, 3, 1, 4, "first_order") == gradient_phase
    # loop: one row; activations are freed as its gradient grows: the larger of the start (18560 + 4000)
    # and the end (4000 + tied 3200), beside the probe phase 4000 + 3000
    assert estimate_dto(TINY, 3, 10, 4, "loop") == {"weights": 4000, "probe_activations": 18560, "probe_logits": 4000}
    assert estimate_dto(big, 3, 1, 4, "loop") == {"weights": 400000, "per_sample_grads": 400000, "probe_logits": 400}
    with pytest.raises(ValueError, match="form"):
        estimate_dto(TINY, 1, 10, 4, "second_order")


def test_dto_plan_lowers_the_probe_batch_then_refuses():
    roomy = plan_dto(TINY, 10, budget=10**9)
    assert roomy.settings == {"probe_batch": 8, "form": "exact"} and roomy.fits
    k3 = sum(estimate_dto(TINY, 3, 10, 4).values())
    tight = plan_dto(TINY, 10, budget=k3)
    assert tight.settings["probe_batch"] == 3 and tight.fits and "lowered" in tight.notes[0]
    k1 = sum(estimate_dto(TINY, 1, 1, 4).values())  # 4000 + 4000 + 3712 + 800 + 3200 = 15712; the loop 11200
    loop = plan_dto(TINY, 1, budget=k1 - 1)
    assert loop.settings["form"] == "loop" and loop.fits  # the loop holds one gradient list, not two
    refused = plan_dto(TINY, 10, budget=1000)
    assert not refused.fits
    with pytest.raises(MemoryError, match="DOES NOT FIT"):
        refused.require()


def test_7b_dto_fits_80_gb_only_by_lowering_the_probe_batch():
    # Llama-2-7B: P = 6.74e9, L = 32, H = 4096, I = 11008, V = 32000, bf16, untied
    llama = ModelShape(6_738_415_616, 32, 4096, 11008, 32000, 32, family="llama", activation="silu", tied=False)
    plan = plan_dto(llama, seq=128, budget=80 * 10**9, b=2)
    # exact: 13.5 GB weights + k·13.5 GB gradients (which become the probed weights) beside
    # 2·(activations + logits), k·1.5 GB: k = 4 (≈ 74 GB), not 5 (≈ 88 GB); the same as first order
    assert plan.fits and plan.settings == {"probe_batch": 4, "form": "exact"}
    # first order: k·13.5 GB of gradients beside 2·(activations + logits), k·1.5 GB: k = 4 (≈ 74 GB), not 5 (≈ 88 GB)
    first = plan_dto(llama, seq=128, budget=80 * 10**9, b=2, form="first_order")
    assert first.fits and first.settings == {"probe_batch": 4, "form": "first_order"}
    assert "weights" in plan.explain() and "GiB" in plan.explain()


def test_training_plan_turns_on_checkpointing_then_suggests_lora():
    ask = dict(batch=2, seq=10, b=4)
    plain = sum(estimate_training(TINY, **ask).values())  # 4000 + 37120 + 8000
    assert plain == 49120
    assert plan_training(TINY, budget=plain, **ask).settings["gradient_checkpointing"] is False
    ck = plan_training(TINY, budget=plain - 1, **ask)  # 4000 + 2560 + 19520 = 26080
    assert ck.settings["gradient_checkpointing"] is True and ck.fits and ck.total == 26080
    # one token: full fine-tuning needs 4000 + 12000 (step phase); LoRA r=1 (P_t = 256): 4000 + 1024 + 2048
    one = dict(batch=1, seq=1, b=4)
    lora = plan_training(TINY, budget=10_000, lora_r=1, **one)
    assert lora.settings["lora_suggested"] is True and lora.fits and lora.total == 7072
    assert not plan_training(TINY, budget=100, **ask).fits


def test_evaluation_batch_halves_to_fit_and_selector_costs():
    one = sum(estimate_forward(TINY, 16, 10, 4).values())
    plan = plan_evaluation(TINY, 10, budget=one)
    assert plan.settings["eval_batch"] == 16
    assert plan_selector("all", TINY, 4, 10, None).terms == {"weights": 4000}
    assert plan_selector("dto", TINY, 4, 10, None).settings["probe_batch"] == 8
    with pytest.raises(KeyError):
        plan_selector("nope", TINY, 4, 10, None)


def test_exact_dto_probe_holds_the_per_sample_models_once(builtin_tokenizer):
    """The exact vmap probe writes θ + η·g into the per-sample gradients' storage: its peak of
    tensor memory (torch profiler) stays under 1.8 × k gradient-sized copies of the model. Making
    the probed weights as new tensors beside the gradients measured 2.1 ×; in place, 1.5 × (the
    tied embedding's two gradient terms are summed in the gradient phase)."""
    from torch.profiler import ProfilerActivity, profile
    from transformers import GPT2Config, GPT2LMHeadModel

    from engine.data import Sample
    from engine.selectors import dto
    from engine.tokens import encode_samples

    torch.manual_seed(0)
    tok = builtin_tokenizer
    cfg = GPT2Config(vocab_size=len(tok), n_positions=64, n_embd=128, n_layer=2, n_head=2, resid_pdrop=0.0,
                     embd_pdrop=0.0, attn_pdrop=0.0, eos_token_id=tok.eos_token_id, bos_token_id=tok.eos_token_id,
                     pad_token_id=tok.pad_token_id)
    model = GPT2LMHeadModel(cfg).eval()  # weights ≫ short rows' activations and logits
    samples = [Sample("Who?", "Ana."), Sample("Where?", "In Lisbon."), Sample("When?", "In 1970."),
               Sample("Why?", "Rain.")]
    b = encode_samples(tok, samples)
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        delta = dto._probe_vmap(model, b.input_ids, b.label_mask, b.answer_mask, 1e-2)
    events = sorted((e.time_range.start, e.self_cpu_memory_usage) for e in prof.events() if e.self_cpu_memory_usage)
    live = peak = 0
    for _, change in events:
        live += change
        peak = max(peak, live)
    k_models = len(samples) * sum(p.numel() for p in model.parameters()) * 4
    assert delta.shape == b.input_ids.shape and delta.abs().sum() > 0
    assert peak < 1.8 * k_models, (peak / k_models)
