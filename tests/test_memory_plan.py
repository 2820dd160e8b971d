"""The memory plan's terms against byte counts worked out by hand, and the settings it chooses."""
from __future__ import annotations

import pytest

from engine.memory_plan import (ModelShape, estimate_dto, estimate_forward, estimate_training, plan_dto,
                                plan_evaluation, plan_selector, plan_training)

# P = 1000 parameters, L = 2, H = 8, I = 32, V = 50; fp32 (b = 4); batch 2, T = 10
TINY = ModelShape(params=1000, layers=2, hidden=8, inner=32, vocab=50)


def test_training_terms_by_hand():
    t = estimate_training(TINY, batch=2, seq=10, b=4)
    assert t["weights"] == 4000
    assert t["gradients"] == 4000
    assert t["adamw_states"] == 8000
    assert t["activations"] == 2 * 10 * 2 * (10 * 8 + 5 * 32) * 4  # B·T·L·(10H + 5I)·b = 38400
    assert t["logits"] == 2 * 10 * 50 * (2 * 4 + 16)  # B·T·V·(2b + 4·4) = 24000
    ck = estimate_training(TINY, batch=2, seq=10, b=4, checkpointing=True)
    assert ck["activations"] == 2 * 10 * (2 * 8 + 80 + 160) * 4  # B·T·(L·H + 10H + 5I)·b = 20480
    full = estimate_training(TINY, 2, 10, 4, retain=True, reference_copy=True, orthogonalize=True)
    assert full["retain_activations"] == 38400 and full["retain_logits"] == 24000
    assert full["reference_copy"] == 4000
    assert full["kl"] == 2 * 10 * 50 * (4 + 16)
    assert full["orthogonal_grads"] == 8000
    sep = estimate_training(TINY, 2, 10, 4, retain=True, separate_retain_backward=True)
    assert "retain_activations" not in sep


def test_lora_trains_only_the_adapters():
    lora = TINY.with_lora(4)
    assert lora.trainable == 4 * 2 * (8 * 8 + 2 * 32)  # r·L·(8H + 2I) = 1024
    t = estimate_training(lora, 2, 10, 2)
    assert t["weights"] == 2000 and t["gradients"] == 2048 and t["adamw_states"] == 4096


def test_forward_and_dto_terms_by_hand():
    f = estimate_forward(TINY, rows=4, seq=10, b=2)
    assert f == {"weights": 2000, "logits": 4 * 10 * 50 * (2 + 8), "hidden_transient": 4 * 10 * (24 + 32) * 2}
    d = estimate_dto(TINY, probe_batch=3, seq=10, b=4, form="exact")
    assert d["per_sample_grads"] == 3 * 4000 and d["probed_weights"] == 3 * 4000
    assert d["probe_activations"] == 3 * 10 * 2 * 240 * 4
    first = estimate_dto(TINY, 3, 10, 4, "first_order")
    assert "probed_weights" not in first and first["per_sample_grads"] == 12000
    loop = estimate_dto(TINY, 3, 10, 4, "loop")
    assert loop["per_sample_grads"] == 4000 and "probed_weights" not in loop  # probed in the gradient's storage
    with pytest.raises(ValueError, match="form"):
        estimate_dto(TINY, 1, 10, 4, "second_order")


def test_dto_plan_lowers_the_probe_batch_then_loops_then_refuses():
    roomy = plan_dto(TINY, 10, budget=10**9)
    assert roomy.settings == {"probe_batch": 8, "form": "exact"} and roomy.fits
    k3 = sum(estimate_dto(TINY, 3, 10, 4).values())
    tight = plan_dto(TINY, 10, budget=k3)
    assert tight.settings["probe_batch"] == 3 and tight.fits and "lowered" in tight.notes[0]
    k1 = sum(estimate_dto(TINY, 1, 10, 4).values())
    loop = plan_dto(TINY, 10, budget=k1 - 1)
    assert loop.settings["form"] == "loop" and loop.fits  # the loop holds one gradient list, not two
    refused = plan_dto(TINY, 10, budget=1000)
    assert not refused.fits
    with pytest.raises(MemoryError, match="DOES NOT FIT"):
        refused.require()


def test_7b_dto_fits_80_gb_only_by_lowering_the_probe_batch():
    # Llama-2-7B: P = 6.74e9, L = 32, H = 4096, I = 11008, V = 32000, bf16
    llama = ModelShape(6_738_415_616, 32, 4096, 11008, 32000, 32)
    plan = plan_dto(llama, seq=128, budget=80 * 10**9, b=2)
    # exact: 13.5 GB weights + k·(13.5 + 13.5) GB gradients and probed weights: k = 2 (≈ 69 GB), not 3 (≈ 96 GB)
    assert plan.fits and plan.settings == {"probe_batch": 2, "form": "exact"}
    # first order: k·13.5 GB of gradients only: k = 4 (≈ 71 GB), not 5 (≈ 85 GB)
    first = plan_dto(llama, seq=128, budget=80 * 10**9, b=2, form="first_order")
    assert first.fits and first.settings == {"probe_batch": 4, "form": "first_order"}
    assert "weights" in plan.explain() and "GiB" in plan.explain()


def test_training_plan_turns_on_checkpointing_then_suggests_lora():
    ask = dict(batch=2, seq=10, b=4)
    plain = sum(estimate_training(TINY, **ask).values())
    assert plan_training(TINY, budget=plain, **ask).settings["gradient_checkpointing"] is False
    ck = plan_training(TINY, budget=plain - 1, **ask)
    assert ck.settings["gradient_checkpointing"] is True and ck.fits
    # full + checkpointing: 4000 + 4000 + 8000 + 20480 + 24000 = 60480; LoRA r=1 (P_t = 256):
    # 4000 + 1024 + 2048 + 20480 + 24000 = 51552
    assert not plan_training(TINY, budget=55_000, checkpointing=True, lora=True, lora_r=1, **ask).settings[
        "lora_suggested"]
    lora = plan_training(TINY, budget=55_000, lora_r=1, **ask)
    assert lora.total == 51552
    assert lora.settings["lora_suggested"] is True and lora.fits
    assert not plan_training(TINY, budget=100, **ask).fits


def test_evaluation_batch_halves_to_fit_and_selector_costs():
    one = sum(estimate_forward(TINY, 16, 10, 4).values())
    plan = plan_evaluation(TINY, 10, budget=one)
    assert plan.settings["eval_batch"] == 16
    assert plan_selector("all", TINY, 4, 10, None).terms == {"weights": 4000}
    assert plan_selector("dto", TINY, 4, 10, None).settings["probe_batch"] == 8
    with pytest.raises(KeyError):
        plan_selector("nope", TINY, 4, 10, None)
