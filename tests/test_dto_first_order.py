"""DTO's first-order score against gradients taken by hand, and the fallback that copies nothing."""
from __future__ import annotations

import copy
import logging

import pytest
import torch

from engine.data import Sample
from engine.selectors import dto as dto_module
from engine.selectors import select
from engine.tokens import encode_samples, per_token_nll

SAMPLES = [Sample("Where was Ana Lopes born?", "Ana Lopes was born in Lisbon."),
           Sample("When?", "In 1970, during a storm.")]


@pytest.fixture()
def one_layer(builtin_tokenizer):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(1)
    tok = builtin_tokenizer
    cfg = GPT2Config(vocab_size=len(tok), n_positions=64, n_embd=16, n_layer=1, n_head=2, resid_pdrop=0.0,
                     embd_pdrop=0.0, attn_pdrop=0.0, eos_token_id=tok.eos_token_id,
                     bos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    return GPT2LMHeadModel(cfg).eval()


def _hand_first_order(model, tokenizer, sample, lr):
    """Δ_t = η·⟨∇ log p_t, ∇ mean_s log p_s⟩ over the answer tokens, one autograd.grad per token."""
    batch = encode_samples(tokenizer, [sample])
    params = [p for p in model.parameters()]
    logp = -per_token_nll(model(input_ids=batch.input_ids).logits, batch)[0]  # (T,)
    answer = batch.answer_mask[0]
    g_seq = torch.autograd.grad(logp[answer].mean(), params, retain_graph=True)
    out = {}
    for t in answer.nonzero().flatten().tolist():
        g_t = torch.autograd.grad(logp[t], params, retain_graph=True)
        out[t] = lr * sum((a * b).sum() for a, b in zip(g_t, g_seq)).item()
    return batch, out


@pytest.mark.parametrize("mode", ["vmap", "loop"])
def test_first_order_equals_hand_computed_inner_product(one_layer, builtin_tokenizer, mode):
    lr = 0.05
    out = select("dto", one_layer, builtin_tokenizer, SAMPLES, mode=mode, method="first_order", probe_lr=lr,
                 probe_batch=2)
    full = encode_samples(builtin_tokenizer, SAMPLES)
    for i, sample in enumerate(SAMPLES):
        batch, want = _hand_first_order(one_layer, builtin_tokenizer, sample, lr)
        for t, value in want.items():  # same prompt, right padding: positions agree
            assert out.scores[i, t].item() == pytest.approx(value, rel=1e-3, abs=1e-6)
        assert not full.answer_mask[i][batch.input_ids.shape[1]:].any()


def test_first_order_approaches_exact_for_a_small_step(one_layer, builtin_tokenizer):
    lr = 1e-3
    a = select("dto", one_layer, builtin_tokenizer, SAMPLES, method="first_order", probe_lr=lr, probe_batch=2)
    b = select("dto", one_layer, builtin_tokenizer, SAMPLES, method="exact", probe_lr=lr, probe_batch=2)
    rel = (a.scores - b.scores).norm() / b.scores.norm()
    assert rel < 0.05


@pytest.mark.parametrize("method", ["exact", "first_order"])
def test_fallback_leaves_weights_bit_identical_and_copies_no_model(tiny_model, builtin_tokenizer, monkeypatch,
                                                                   caplog, method):
    expect = select("dto", tiny_model, builtin_tokenizer, SAMPLES, mode="vmap", method=method, probe_batch=2)
    before = {k: v.clone() for k, v in tiny_model.state_dict().items()}

    def out_of_memory(*args, **kwargs):
        raise torch.OutOfMemoryError("simulated: tried to allocate 48.00 GiB")

    def no_deepcopy(*args, **kwargs):
        raise AssertionError("DTO's fallback must not copy the model")

    monkeypatch.setattr(dto_module, "_probe_vmap", out_of_memory)
    monkeypatch.setattr(copy, "deepcopy", no_deepcopy)
    with caplog.at_level(logging.WARNING, logger="engine.selectors.dto"):
        out = select("dto", tiny_model, builtin_tokenizer, SAMPLES, mode="auto", method=method, probe_batch=2)
    assert out.params["mode"] == "loop"
    assert any("OutOfMemoryError" in r.getMessage() and "fall" in r.getMessage() for r in caplog.records)
    assert all(torch.equal(before[k], v) for k, v in tiny_model.state_dict().items())
    assert torch.allclose(out.scores, expect.scores, atol=1e-5)


def test_probe_batch_is_planned_and_validated(tiny_model, builtin_tokenizer):
    out = select("dto", tiny_model, builtin_tokenizer, SAMPLES)
    assert 1 <= out.params["probe_batch"] <= 8
    with pytest.raises(ValueError, match="probe_batch"):
        select("dto", tiny_model, builtin_tokenizer, SAMPLES, probe_batch=0)
    with pytest.raises(ValueError, match="method"):
        select("dto", tiny_model, builtin_tokenizer, SAMPLES, method="second_order")
