"""TOFU metric formulas against numbers worked out by hand, and the batched model versions."""
import math

import numpy as np
import pytest
import torch

from engine.eval import metrics
from engine.data import Sample


def test_answer_probability_and_truth_ratio_by_hand():
    assert metrics.answer_probability([0.0, math.log(2)]).tolist() == pytest.approx([1.0, 0.5])
    # para NLL 1.0; perturbed NLLs 2.0 and 4.0 -> mean 3.0 -> TR = e^(1-3) = e^-2
    tr = metrics.truth_ratio([1.0], [[2.0, 4.0]])
    assert tr[0] == pytest.approx(math.exp(-2))
    # forget summary: mean min(TR, 1/TR) of [0.5, 4] = mean(0.5, 0.25) = 0.375
    assert metrics.forget_tr_summary([0.5, 4.0]) == pytest.approx(0.375)
    # retain summary: mean max(0, 1-TR) of [0.25, 2] = mean(0.75, 0) = 0.375
    assert metrics.retain_tr_summary([0.25, 2.0]) == pytest.approx(0.375)


def test_normalised_probability_by_hand():
    # P(a) = 0.5, perturbed 0.25 and 0.25 -> 0.5 / (0.5 + 0.5) = 0.5 ; second row 0.8/(0.8+0.2)=0.8
    nll_a = -np.log([0.5, 0.8])
    nll_p = -np.log([[0.25, 0.25], [0.1, 0.1]])
    assert metrics.normalised_probability(nll_a, nll_p) == pytest.approx((0.5 + 0.8) / 2)


def test_harmonic_mean_and_zero_rule():
    assert metrics.harmonic_mean([1.0, 0.5]) == pytest.approx(2 / (1 + 2))
    assert metrics.harmonic_mean([0.9, 0.0, 0.8]) == 0.0
    comps = {f"{s}_{m}": 0.5 for s in ("retain", "real_authors", "world_facts")
             for m in ("probability", "rouge_l", "truth_ratio")}
    assert metrics.model_utility(comps) == pytest.approx(0.5)
    comps["world_facts_truth_ratio"] = None
    assert metrics.model_utility(comps) is None


def test_forget_quality_is_ks_pvalue():
    from scipy.stats import ks_2samp

    a, b = np.linspace(0.1, 1, 20), np.linspace(0.5, 2, 20)
    assert metrics.forget_quality(a, b) == pytest.approx(ks_2samp(a, b).pvalue)
    assert metrics.forget_quality(a, a) == pytest.approx(1.0)
    # disjoint samples of 20 and 20: p-value of the exact two-sided test is 2 / C(40, 20)
    assert metrics.forget_quality(np.arange(20), np.arange(20) + 100) == pytest.approx(2 / math.comb(40, 20), rel=1e-3)


def test_rouge_l_recall_by_hand():
    # reference 4 tokens, LCS with prediction = "the cat sat" (3) -> recall 0.75
    r = metrics.rouge_l_recall(["the cat sat down quickly"], ["the cat has sat"])
    assert r[0] == pytest.approx(0.75)


def test_mean_answer_nll_matches_a_per_sample_loop(tiny_model, builtin_tokenizer):
    from engine.tokens import encode, per_token_nll

    qs, ans = ["Who wrote it?", "Where?", "When was it?"], ["Someone did.", "In Lima, Peru.", "1990."]
    batched = metrics.mean_answer_nll(tiny_model, builtin_tokenizer, qs, ans, batch_size=3)
    for i in range(3):
        b = encode(builtin_tokenizer, [qs[i]], [ans[i]])
        with torch.no_grad():
            nll = per_token_nll(tiny_model(input_ids=b.input_ids).logits, b)
        assert batched[i] == pytest.approx((nll.sum() / b.label_mask.sum()).item(), rel=1e-5)


def test_truth_ratios_need_perturbed_answers(tiny_model, builtin_tokenizer):
    s = Sample("q?", "a b", "b a", ("c d", "e f"))
    assert metrics.truth_ratios(tiny_model, builtin_tokenizer, [s]).shape == (1,)
    assert metrics.truth_ratios(tiny_model, builtin_tokenizer, [Sample("q?", "a")]) is None


def test_greedy_generation_is_batch_independent(tiny_model, builtin_tokenizer):
    qs = ["Where was the author born?", "Who?", "What genre does the writer use most often today?"]
    together = metrics.greedy_generate(tiny_model, builtin_tokenizer, qs, max_new_tokens=8, batch_size=3)
    alone = [metrics.greedy_generate(tiny_model, builtin_tokenizer, [q], max_new_tokens=8)[0] for q in qs]
    assert together == alone
