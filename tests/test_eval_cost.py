"""Evaluation cost (issue 15, item 3): the chunked per-token NLL, the cached step-0 evaluation,
evaluation every N epochs, and batched greedy generation with the KV cache."""
from __future__ import annotations

import pytest
import torch

from engine import tokens
from engine.tokens import Batch, per_token_nll
from engine.train import RunConfig, unlearn

SMALL_EVAL = {"retain_eval_size": 8, "eval_max_new_tokens": 4}


pytestmark = pytest.mark.usefixtures("one_thread")


def _batch(ids: torch.Tensor) -> Batch:
    B, T = ids.shape
    label = torch.zeros((B, T), dtype=torch.bool)
    label[:, 2:] = True
    eos = torch.zeros_like(label)
    eos[:, -1] = True
    return Batch(ids, torch.ones_like(ids), label, eos, torch.full((B, T, 2), -1), [""] * B, [2] * B)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_chunked_nll_equals_the_log_softmax_by_hand(monkeypatch, dtype):
    """ℓ_t = −(z_{t-1,y} − log Σ_v exp z_{t-1,v}), computed here in float64 row by row; the engine
    splits the rows into chunks of 2 (forced) and must agree to 1e-6."""
    g = torch.Generator().manual_seed(0)
    logits = (torch.randn(5, 7, 11, generator=g) * 3).to(dtype)
    ids = torch.randint(0, 11, (5, 7), generator=g)
    batch = _batch(ids)
    monkeypatch.setattr(tokens, "NLL_CHUNK_ELEMENTS", 2 * 6 * 11)  # two rows per chunk: three chunks
    got = per_token_nll(logits, batch)
    want = torch.zeros(5, 7, dtype=torch.float64)
    z = logits.double()
    for b in range(5):
        for t in range(1, 7):
            row = z[b, t - 1]
            want[b, t] = -(row[ids[b, t]] - torch.log(torch.exp(row).sum()))
    want *= batch.label_mask
    assert got.dtype == torch.float32
    torch.testing.assert_close(got.double(), want, atol=1e-6 if dtype == torch.float32 else 1e-5, rtol=1e-6)


def test_chunked_nll_keeps_gradients_equal():
    """The chunked form is differentiable and gives the gradient of cross-entropy to 1e-6."""
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(3, 6, 9, generator=g, requires_grad=True)
    ids = torch.randint(0, 9, (3, 6), generator=g)
    batch = _batch(ids)
    per_token_nll(logits, batch).sum().backward()
    ref = logits.detach().clone().requires_grad_(True)
    ce = torch.nn.functional.cross_entropy(ref[:, :-1].reshape(-1, 9), ids[:, 1:].reshape(-1), reduction="none")
    (ce.view(3, 5) * batch.label_mask[:, 1:]).sum().backward()
    torch.testing.assert_close(logits.grad, ref.grad, atol=1e-6, rtol=1e-6)


def test_bf16_nll_makes_no_full_fp32_copy(monkeypatch):
    """The peak of tensor memory during per_token_nll on bf16 logits stays well under one fp32 copy
    of the logits (B·(T−1)·V·4 bytes): only a chunk is upcast at a time."""
    from torch.profiler import ProfilerActivity, profile

    B, T, V = 8, 33, 4096
    logits = torch.randn(B, T, V).to(torch.bfloat16)
    batch = _batch(torch.randint(0, V, (B, T)))
    monkeypatch.setattr(tokens, "NLL_CHUNK_ELEMENTS", (T - 1) * V)  # one row per chunk
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        per_token_nll(logits, batch)
    events = sorted((e.time_range.start, e.self_cpu_memory_usage) for e in prof.events() if e.self_cpu_memory_usage)
    live = peak = 0
    for _, delta in events:
        live += delta
        peak = max(peak, live)
    full_fp32 = B * (T - 1) * V * 4
    assert peak < full_fp32 / 2, (peak, full_fp32)


def test_step0_evaluation_comes_from_the_cache(tmp_path, monkeypatch):
    """A second run of the same model, data and settings takes its step-0 evaluation from the cache:
    `evaluate` is not called for it, and the step-0 metrics are the same numbers."""
    from engine import paths
    from engine.eval import run as eval_run
    from engine.store import Store

    monkeypatch.setattr(paths, "cache_dir", lambda: tmp_path)
    cfg = RunConfig(model="demo", data="demo/forget01", loss="ga", selector="all", epochs=1, lr=1e-4,
                    batch_size=5, device="cpu", save_checkpoints=False, **SMALL_EVAL)
    store = Store(tmp_path / "store.sqlite")
    first = unlearn(cfg, store)
    assert first.status == "finished", first.error
    assert list(tmp_path.glob("step0_eval_*.json"))
    calls = []
    real = eval_run.evaluate
    monkeypatch.setattr(eval_run, "evaluate", lambda *a, **k: calls.append(1) or real(*a, **k))
    second = unlearn(cfg, store)
    assert second.status == "finished", second.error
    assert len(calls) == 1  # only epoch 1, not step 0
    a, b = first.history[0], second.history[0]
    assert {k: a[k] for k in a if k != "notes"} == {k: b[k] for k in b if k != "notes"}


def test_cache_key_changes_with_the_eval_settings(tmp_path, monkeypatch):
    from engine.eval.run import step0_cache_key
    from engine.train import prepare

    state = prepare(RunConfig(model="demo", data="demo/forget01", selector="all", device="cpu", **SMALL_EVAL))
    k1 = step0_cache_key(state, None)
    state.config.eval_max_new_tokens = 5
    assert step0_cache_key(state, None) != k1
    state.config.eval_max_new_tokens = 4
    assert step0_cache_key(state, None) == k1


def test_evaluation_every_n_epochs_and_always_the_last(tmp_path, monkeypatch):
    """epochs=5, eval_every=2: epochs 0 (cached or not), 2, 4 and the final 5 carry metrics;
    1 and 3 only their training loss."""
    from engine import paths
    from engine.store import Store

    monkeypatch.setattr(paths, "cache_dir", lambda: tmp_path)
    cfg = RunConfig(model="demo", data="demo/forget01", loss="ga", selector="all", epochs=5, eval_every=2, lr=1e-4,
                    batch_size=10, device="cpu", save_checkpoints=False, **SMALL_EVAL)
    result = unlearn(cfg, Store(tmp_path / "store.sqlite"))
    assert result.status == "finished", result.error
    evaluated = [m["epoch"] for m in result.history if "forget_probability" in m]
    assert evaluated == [0, 2, 4, 5]
    assert [m["epoch"] for m in result.history] == [0, 1, 2, 3, 4, 5]


def test_batched_generation_equals_one_at_a_time(builtin):
    """Left-padded batches with the KV cache give the same greedy answers as one question at a time."""
    from engine.eval.metrics import greedy_generate
    from engine.resolve import load_data
    from engine.models import load_model

    model, tok = load_model(builtin.target, "cpu")
    questions = [s.question for s in load_data("demo/forget01").forget[:4]]
    batched = greedy_generate(model, tok, questions, max_new_tokens=12, batch_size=4)
    single = [greedy_generate(model, tok, [q], max_new_tokens=12, batch_size=1)[0] for q in questions]
    assert batched == single
