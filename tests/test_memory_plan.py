"""The memory plan's terms against byte counts worked out by hand, and the settings it chooses."""
from __future__ import annotations

import pytest
import torch

from engine.memory_plan import (ModelShape, estimate_dto, estimate_forward, estimate_training, plan_dto,
                                plan_evaluation, plan_selector, plan_training)

# P = 1000 parameters, L = 2, H = 8, I = 32, V = 50; fp32 (b = 4); batch 2, T = 10
TINY = ModelShape(params=1000, layers=2, hidden=8, inner=32, vocab=50)


def test_training_terms_by_hand():
    t = estimate_training(TINY, batch=2, seq=10, b=4)
    act = 2 * 10 * 2 * (10 * 8 + 5 * 32) * 4  # B·T·L·(10H + 5I)·b = 38400
    logits = 2 * 10 * 50 * (4 + 4 + 4)  # B·T·V·(b + 4 + b): logits, log-softmax, gradient = 12000
    # backward phase 50400 beats the step phase 4000 + 8000
    assert t == {"weights": 4000, "activations": act, "logits": logits}
    ck = estimate_training(TINY, batch=2, seq=10, b=4, checkpointing=True)
    assert ck["activations"] == 2 * 10 * (2 * 8 + 80 + 160) * 4  # B·T·(L·H + 10H + 5I)·b = 20480
    full = estimate_training(TINY, 2, 10, 4, retain=True, reference_copy=True, orthogonalize=True)
    assert full == {"weights": 4000, "activations": act, "logits": logits, "retain_activations": act,
                    "retain_logits": logits, "kl": 2 * 10 * 50 * (4 + 12), "reference_copy": 4000,
                    "orthogonal_grads": 8000}
    sep = estimate_training(TINY, 2, 10, 4, retain=True, separate_retain_backward=True)
    assert "retain_activations" not in sep
    # one token: the step phase (gradients 4000 + AdamW 8000) beats 1920 + 600
    assert estimate_training(TINY, 1, 1, 4) == {"weights": 4000, "gradients": 4000, "adamw_states": 8000}


def test_lora_trains_only_the_adapters():
    lora = TINY.with_lora(4)
    assert lora.trainable == 4 * 2 * (8 * 8 + 2 * 32)  # r·L·(8H + 2I) = 1024
    t = estimate_training(lora, 1, 1, 2)
    assert t == {"weights": 2000, "gradients": 2048, "adamw_states": 4096}


def test_forward_and_dto_terms_by_hand():
    f = estimate_forward(TINY, rows=4, seq=10, b=2)
    assert f == {"weights": 2000, "logits": 4 * 10 * 50 * (2 + 4 + 4)}  # bf16 logits, fp32 copy, log-softmax
    # T = 10: the gradient phase (grads 12000 + activations 57600 + logits 18000) is the peak
    d = estimate_dto(TINY, probe_batch=3, seq=10, b=4, form="exact")
    assert d == {"weights": 4000, "per_sample_grads": 12000, "probe_activations": 3 * 10 * 2 * 240 * 4,
                 "probe_logits": 3 * 10 * 50 * 12}
    # T = 1: the probed weights live in the gradients' storage, so the probe phase (12000 + forward
    # logits 1200) never beats the gradient phase (12000 + 5760 + 1800)
    d1 = estimate_dto(TINY, 3, 1, 4, "exact")
    assert d1 == {"weights": 4000, "per_sample_grads": 12000, "probe_activations": 5760, "probe_logits": 1800}
    first = estimate_dto(TINY, 3, 1, 4, "first_order")  # 12000 + 2·1200 < 12000 + 5760 + 1800
    assert first == {"weights": 4000, "per_sample_grads": 12000, "probe_activations": 5760, "probe_logits": 1800}
    loop = estimate_dto(TINY, 3, 1, 4, "loop")  # one row; probed in the gradient's storage
    assert loop == {"weights": 4000, "per_sample_grads": 4000, "probe_activations": 1920, "probe_logits": 600}
    with pytest.raises(ValueError, match="form"):
        estimate_dto(TINY, 1, 10, 4, "second_order")


def test_dto_plan_lowers_the_probe_batch_then_refuses():
    roomy = plan_dto(TINY, 10, budget=10**9)
    assert roomy.settings == {"probe_batch": 8, "form": "exact"} and roomy.fits
    k3 = sum(estimate_dto(TINY, 3, 10, 4).values())
    tight = plan_dto(TINY, 10, budget=k3)
    assert tight.settings["probe_batch"] == 3 and tight.fits and "lowered" in tight.notes[0]
    k1 = sum(estimate_dto(TINY, 1, 1, 4).values())  # 4000 + 4000 + 1920 + 600 = 10520, as the loop
    assert k1 == sum(estimate_dto(TINY, 1, 1, 4, "loop").values())
    loop = plan_dto(TINY, 1, budget=k1 - 1)  # the loop is the last resort, and it does not fit either
    assert loop.settings["form"] == "loop" and not loop.fits
    refused = plan_dto(TINY, 10, budget=1000)
    assert not refused.fits
    with pytest.raises(MemoryError, match="DOES NOT FIT"):
        refused.require()


def test_7b_dto_fits_80_gb_only_by_lowering_the_probe_batch():
    # Llama-2-7B: P = 6.74e9, L = 32, H = 4096, I = 11008, V = 32000, bf16
    llama = ModelShape(6_738_415_616, 32, 4096, 11008, 32000, 32)
    plan = plan_dto(llama, seq=128, budget=80 * 10**9, b=2)
    # exact: 13.5 GB weights + k·13.5 GB gradients (which become the probed weights) + k·0.8 GB
    # activations: k = 4 (≈ 71 GB), not 5 (≈ 85 GB)
    assert plan.fits and plan.settings == {"probe_batch": 4, "form": "exact"}
    # first order: k·13.5 GB of gradients only: k = 4 (≈ 71 GB), not 5 (≈ 85 GB)
    first = plan_dto(llama, seq=128, budget=80 * 10**9, b=2, form="first_order")
    assert first.fits and first.settings == {"probe_batch": 4, "form": "first_order"}
    assert "weights" in plan.explain() and "GiB" in plan.explain()


def test_training_plan_turns_on_checkpointing_then_suggests_lora():
    ask = dict(batch=2, seq=10, b=4)
    plain = sum(estimate_training(TINY, **ask).values())  # 4000 + 50400
    assert plain == 54400
    assert plan_training(TINY, budget=plain, **ask).settings["gradient_checkpointing"] is False
    ck = plan_training(TINY, budget=plain - 1, **ask)  # 4000 + 20480 + 12000 = 36480
    assert ck.settings["gradient_checkpointing"] is True and ck.fits and ck.total == 36480
    # one token: full fine-tuning needs 4000 + 12000 (step phase); LoRA r=1 (P_t = 256): 4000 + 3072
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
