"""Evaluation cost (issue 15, item 3): the chunked per-token NLL, the cached step-0 evaluation,
evaluation every N epochs (always the last), and one model pass per prompt (engine.eval.passes)
checked against a full forward per text and HF `generate` per question."""
from __future__ import annotations

import pytest
import torch

from test_prompt_format import bpe  # noqa: F401  (fixture: a BPE whose joint tokenisation differs)

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
    `evaluate_and_score` is not called for it, and the step-0 metrics are the same numbers."""
    from engine import paths
    from engine.train import evaluation as eval_run
    from engine.store import Store

    monkeypatch.setattr(paths, "cache_dir", lambda: tmp_path)
    cfg = RunConfig(model="demo", data="demo/forget01", loss="ga", selector="all", epochs=1, lr=1e-4,
                    batch_size=5, device="cpu", save_checkpoints=False, **SMALL_EVAL)
    store = Store(tmp_path / "store.sqlite")
    first = unlearn(cfg, store)
    assert first.status == "finished", first.error
    assert list(tmp_path.glob("step0_eval_*.json"))
    calls = []
    real = eval_run.evaluate_and_score
    monkeypatch.setattr(eval_run, "evaluate_and_score", lambda *a, **k: calls.append(1) or real(*a, **k))
    second = unlearn(cfg, store)
    assert second.status == "finished", second.error
    assert len(calls) == 1  # only epoch 1, not step 0
    a, b = first.history[0], second.history[0]
    assert {k: a[k] for k in a if k != "notes"} == {k: b[k] for k in b if k != "notes"}


def test_cache_key_changes_with_the_eval_settings(tmp_path, monkeypatch):
    from engine.train.evaluation import step0_cache_key
    from engine.train import prepare

    state = prepare(RunConfig(model="demo", data="demo/forget01", selector="all", device="cpu", **SMALL_EVAL))
    k1 = step0_cache_key(state, None)
    state.config.eval_max_new_tokens = 5
    assert step0_cache_key(state, None) != k1
    state.config.eval_max_new_tokens = 4
    assert step0_cache_key(state, None) == k1


@pytest.mark.parametrize("max_steps, evaluated", [(None, [0, 2, 4, 5]), (3, [0, 2, 3])])
def test_evaluation_every_n_epochs_and_always_the_last(tmp_path, monkeypatch, max_steps, evaluated):
    """epochs=5, eval_every=2 (one step per epoch): epochs 0 (cached or not), 2, 4 and the final 5
    carry metrics, 1 and 3 only their training loss; when max_steps=3 ends the run in epoch 3,
    epoch 3 is the last one and is evaluated."""
    from engine import paths
    from engine.store import Store

    monkeypatch.setattr(paths, "cache_dir", lambda: tmp_path)
    cfg = RunConfig(model="demo", data="demo/forget01", loss="ga", selector="all", epochs=5, eval_every=2, lr=1e-4,
                    batch_size=10, device="cpu", save_checkpoints=False, max_steps=max_steps, **SMALL_EVAL)
    result = unlearn(cfg, Store(tmp_path / "store.sqlite"))
    assert result.status == "finished", result.error
    assert [m["epoch"] for m in result.history if "forget_probability" in m] == evaluated
    assert [m["epoch"] for m in result.history] == list(range(evaluated[-1] + 1))


# ---------------------------------------------------------------- one pass per prompt (engine.eval.passes)

def _full_forward_nll(model, tokenizer, question: str, text: str) -> torch.Tensor:
    """Per-token NLL over the label positions of `prompt + text + EOS`, one unpadded forward."""
    from engine.tokens import encode

    b = encode(tokenizer, [question], [text])
    with torch.no_grad():
        return per_token_nll(model(input_ids=b.input_ids).logits, b)[0][b.label_mask[0]]


def _hf_greedy(model, tokenizer, question: str, max_new_tokens: int) -> str:
    """HF `generate(do_sample=False)` on one unpadded prompt, cut at EOS and decoded."""
    from engine.tokens import prompt_ids

    ids = torch.tensor(prompt_ids(tokenizer, [question]))
    with torch.no_grad():
        row = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens,
                             do_sample=False, eos_token_id=tokenizer.eos_token_id,
                             pad_token_id=tokenizer.pad_token_id)[0, ids.shape[1]:].tolist()
    row = row[:row.index(tokenizer.eos_token_id)] if tokenizer.eos_token_id in row else row
    return tokenizer.decode(row, skip_special_tokens=True).strip()


def test_prompt_cache_nll_equals_one_full_forward_per_text(tiny_model, builtin_tokenizer):
    """Texts scored behind a prompt run once (batches of 2 prompts and 2 rows, so several of each,
    an EOS-only text among them) get the per-token NLLs of a full forward of each text alone."""
    from engine.eval import passes

    pairs = [("Who wrote it?", "Someone did."), ("Who wrote it?", "Nobody at all, in the end."),
             ("Who wrote it?", ""), ("Where?", "In Lima, Peru."), ("When was it, then?", "1990."),
             ("Where?", "Oslo.")]
    got = passes.run(tiny_model, builtin_tokenizer, [], pairs, batch_size=2).nll
    for q, text in pairs:
        want = _full_forward_nll(tiny_model, builtin_tokenizer, q, text)
        assert got[(q, text)].shape == want.shape
        torch.testing.assert_close(got[(q, text)], want, atol=1e-5, rtol=1e-5)


@pytest.mark.filterwarnings("ignore:the answer to")  # both texts are cut to the context, on purpose
def test_texts_that_fill_the_context_beside_short_ones(tiny_model, builtin_tokenizer):
    """A ~100-token prompt and a 4-token one share a suffix batch, both texts cut to fill the
    128-token context: the long prompt's row is padded past position 127 (it raised IndexError);
    every NLL still equals a full forward's."""
    from engine.eval import passes

    tok = builtin_tokenizer
    long_q, text = " ".join(["word"] * 28), " ".join(["x"] * 300)
    assert len(tokens.prompt_ids(tok, [long_q])[0]) > 64  # its row is padded to the short row's longer text
    pairs = [(long_q, text), ("Who?", text)]
    got = passes.run(tiny_model, tok, [], pairs, batch_size=2).nll
    for q, t in pairs:
        torch.testing.assert_close(got[(q, t)], _full_forward_nll(tiny_model, tok, q, t), atol=1e-5, rtol=1e-5)


def test_joint_format_prompts_are_each_rows_own(bpe):
    """Under a joint format the prompt tokens of `prompt + text` can differ by text (the boundary
    token merges into the answer) and from the generation prompt: every row is still scored
    behind its own prompt tokens."""
    from test_prompt_format import ANSWERS, QUESTIONS, _with
    from transformers import GPT2Config, GPT2LMHeadModel

    from engine.eval import passes
    from engine.prompts import FAMILIES
    from engine.tokens import encode

    tok = _with(bpe, FAMILIES["phi"])
    texts = ANSWERS + ["Oslo", " x"]
    enc = encode(tok, [QUESTIONS[0]] * len(texts), texts)
    assert len({tuple(enc.input_ids[i, :enc.prompt_lengths[i]].tolist()) for i in range(len(texts))}) == 2
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_positions=128, n_embd=32, n_layer=2, n_head=2,
                                       eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)).eval()
    pairs = [(q, a) for q in QUESTIONS for a in texts]
    got = passes.run(model, tok, QUESTIONS, pairs, max_new_tokens=4, batch_size=3)
    for q, text in pairs:
        torch.testing.assert_close(got.nll[(q, text)], _full_forward_nll(model, tok, q, text), atol=1e-5, rtol=1e-5)
    assert [got.generations[q] for q in QUESTIONS] == [_hf_greedy(model, tok, q, 4) for q in QUESTIONS]


def test_forget_token_probs_are_exp_of_the_per_token_nll(builtin):
    """p(y_t) per label position = exp(−ℓ_t) of a full forward of the sample alone."""
    from engine.train.evaluation import forget_token_probs
    from engine.models import load_model
    from engine.resolve import load_data

    model, tok = load_model(builtin.target, "cpu")
    samples = load_data("demo/forget01").forget[:5]
    got = forget_token_probs(model, tok, samples, batch_size=2)
    for s, p in zip(samples, got):
        torch.testing.assert_close(p, torch.exp(-_full_forward_nll(model, tok, s.question, s.answer)),
                                   atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("noise", [0.0, 0.03])
def test_greedy_generation_equals_hf_generate_one_at_a_time(builtin, noise):
    """Prompt batches sorted by length, the KV cache, finished rows dropped: the same answers as HF
    `generate` on each question alone; the target model stops at EOS, a perturbed copy often runs
    to `max_new_tokens`."""
    from engine.eval.metrics import greedy_generate
    from engine.models import load_model
    from engine.resolve import load_data

    model, tok = load_model(builtin.target, "cpu")
    with torch.no_grad():
        g = torch.Generator().manual_seed(0)
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * noise)
    bench = load_data("demo/forget01")
    questions = [s.question for s in bench.forget[:4] + bench.real_authors[:4]]
    batched = greedy_generate(model, tok, questions, max_new_tokens=12, batch_size=3)
    assert batched == [_hf_greedy(model, tok, q, 12) for q in questions]


def test_one_evaluation_pass_equals_separate_passes(builtin):
    """`evaluate_and_score`'s numbers, from one pass per prompt, against the separate computation
    done here: HF `generate` per question for ROUGE-L, a full forward per text for every mean NLL,
    then SPEC §4's formulas; and the extra rows against full forwards. To 1e-6."""
    import dataclasses

    import numpy as np

    from engine.eval import metrics
    from engine.eval.full import eval_splits, evaluate_and_score
    from engine.models import load_model
    from engine.resolve import load_data

    model, tok = load_model(builtin.target, "cpu")
    with torch.no_grad():  # a perturbed copy: some answers wrong, some generations long
        g = torch.Generator().manual_seed(1)
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.02)
    bench = load_data("demo/forget01")
    bench = dataclasses.replace(bench, real_authors=bench.real_authors[:6], world_facts=bench.world_facts[:6])
    extra = bench.forget[:3]
    reference_tr = np.linspace(0.2, 1.5, 10)
    report, rows = evaluate_and_score(model, tok, bench, reference_tr, retain_size=6, max_new_tokens=16,
                                      batch_size=4, also_score=extra)

    def mean_nll(q, text):
        return _full_forward_nll(model, tok, q, text).double().mean().item()

    want = {}
    for key, kind, samples in eval_splits(bench, 6):
        gens = [_hf_greedy(model, tok, s.question, 16) for s in samples]
        want[f"{key}_rouge_l"] = metrics.rouge_l_recall(gens, [s.answer for s in samples]).mean()
        first = [s.answer if kind == "real_world" else s.paraphrased_answer for s in samples]
        para = np.array([mean_nll(s.question, t) for s, t in zip(samples, first)])
        pert = np.array([[mean_nll(s.question, t) for t in s.perturbed_answers] for s in samples])
        tr = metrics.truth_ratio(para, pert)
        if kind == "real_world":
            want[f"{key}_probability"] = metrics.normalised_probability(para, pert)
        else:
            want[f"{key}_probability"] = np.mean([np.exp(-mean_nll(s.question, s.answer)) for s in samples])
        want[f"{key}_truth_ratio"] = metrics.forget_tr_summary(tr) if kind == "forget" else metrics.retain_tr_summary(tr)
        if key == "forget":
            assert report.forget_truth_ratios == pytest.approx(tr.tolist(), rel=1e-6, abs=1e-6)  # TR = exp(Δ of fp32 means): relative
            assert report.forget_quality == pytest.approx(metrics.forget_quality(tr, reference_tr), abs=1e-6)
    assert report.components == pytest.approx(want, abs=1e-6)
    assert report.model_utility == pytest.approx(metrics.model_utility(want), abs=1e-6)
    assert 0 < want["retain_rouge_l"] < 1  # the perturbed copy gets some generations wrong
    for s, row in zip(extra, rows):
        torch.testing.assert_close(row, _full_forward_nll(model, tok, s.question, s.answer), atol=1e-6, rtol=1e-5)


def test_progress_counts_questions_once_each(tiny_model, builtin_tokenizer):
    """progress(done, total): from (0, total) to (total, total), never backwards; total counts
    distinct questions (generated or scored)."""
    from engine.eval import passes

    seen = []
    qs = ["a?", "bb bb?", "c c c?", "a?"]
    passes.run(tiny_model, builtin_tokenizer, qs, [("a?", "x"), ("d?", "y")], max_new_tokens=2, batch_size=2,
               progress=lambda done, total: seen.append((done, total)))
    assert seen[0] == (0, 4) and seen[-1] == (4, 4)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
