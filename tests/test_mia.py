"""Memorisation and membership-inference metrics against open-unlearning's formulas
(src/evals/metrics/memorization.py, mia/*.py, privacy.py), on hand-made examples with the numbers
worked out by hand; then the same numbers from the evaluation's own pass on the built-in models."""
from __future__ import annotations

import math
import zlib

import numpy as np
import pytest
import torch

from engine.data import Sample
from engine.eval import mia, passes
from engine.eval.memorization import exact_memorization, extraction_strength
from engine.eval.privacy import RetainMIA, privacy_metrics

LN2 = math.log(2)


# ---------------------------------------------------------------- pure formulas, by hand

def test_auc_labels_forget_0_holdout_1_and_counts_ties_half():
    # pairs (holdout > forget): 3>1, 3>2, 2>1 count 1 each, 2=2 counts ½: 3.5 / 4
    assert mia.auc([1.0, 2.0], [3.0, 2.0]) == pytest.approx(0.875)
    assert mia.auc([5.0, 6.0], [1.0, 2.0]) == 0.0  # forget answers less likely: AUC 0
    assert mia.auc([1.0], [1.0]) == 0.5
    with pytest.raises(ValueError):
        mia.auc([], [1.0])


def test_loss_zlib_and_reference_scores():
    nll = torch.tensor([1.0, 2.0, 3.0])  # the last one is the EOS: LOSS keeps it
    assert mia.loss_score(nll) == pytest.approx(2.0)
    text = "abcabcabc"
    assert mia.zlib_score(nll, text) == pytest.approx(2.0 / len(zlib.compress(text.encode("utf-8"))))
    assert mia.reference_score(torch.tensor([1.0, 3.0]), torch.tensor([0.5, 0.5])) == pytest.approx(1.5)


def test_min_k_takes_the_smallest_floor_n_k_log_probs():
    lp = torch.tensor([-0.1, -2.0, -0.5, -3.0, -1.0])
    assert mia.min_k_score(lp, 0.4) == pytest.approx(2.5)  # ⌊5·0.4⌋ = 2: −mean(−3, −2)
    assert mia.min_k_score(torch.tensor([-0.2, -0.7]), 0.4) == pytest.approx(0.7)  # ⌊0.8⌋ = 0 → 1 token
    assert mia.min_k_score(torch.tensor([])) == 0.0


def test_min_k_plus_plus_normalises_by_the_vocabulary_distribution():
    # p = (½, ¼, ¼): μ = Σ p log p = −1.5 ln2, σ² = Σ p (log p)² − μ² = 2.5 ln2² − 2.25 ln2² = (½ ln2)²
    logits = torch.log(torch.tensor([[0.5, 0.25, 0.25], [0.5, 0.25, 0.25]]))
    st = passes.token_stats(logits, torch.tensor([0, 1]))
    assert st.hit.tolist() == [True, False]
    assert st.mu.tolist() == pytest.approx([-1.5 * LN2] * 2, rel=1e-6)
    assert st.var.tolist() == pytest.approx([(0.5 * LN2) ** 2] * 2, rel=1e-5)
    lp = torch.tensor([-LN2, -2 * LN2])  # z = (−ln2 + 1.5 ln2)/(½ ln2) = 1, (−2 ln2 + 1.5 ln2)/(½ ln2) = −1
    assert mia.min_k_plus_plus_score(lp, st.mu, st.var, 0.4) == pytest.approx(1.0, rel=1e-5)  # 1 token: −(−1)
    assert mia.min_k_plus_plus_score(lp, st.mu, st.var, 1.0) == pytest.approx(0.0, abs=1e-6)  # −mean(1, −1)
    # a one-hot distribution has σ² = 0: clamped to 1e-6 (σ = 1e-3)
    assert mia.min_k_plus_plus_score(torch.tensor([0.0]), torch.tensor([0.0]), torch.tensor([0.0])) == 0.0
    assert mia.min_k_plus_plus_score(torch.tensor([-0.5]), torch.tensor([0.0]), torch.tensor([0.0])) == \
        pytest.approx(500.0)


def test_gradnorm_score_is_the_mean_of_the_per_tensor_norms():
    assert mia.gradnorm_score([torch.tensor(3.0), torch.tensor(4.0)]) == pytest.approx(3.5)


def test_privleak_is_the_relative_gap_of_one_minus_auc():
    assert mia.privleak(0.9, 0.5) == pytest.approx((0.1 - 0.5) / 0.5 * 100)  # −80 %
    assert mia.privleak(0.3, 0.6) == pytest.approx((0.7 - 0.4) / 0.4 * 100)  # +75 %
    assert mia.privleak(0.6, 0.6) == 0.0


def test_exact_memorization_and_extraction_strength():
    assert exact_memorization(torch.tensor([1, 1, 0, 1], dtype=torch.bool)) == 0.75
    assert exact_memorization(torch.tensor([], dtype=torch.bool)) is None
    assert extraction_strength(torch.tensor([True, True, True])) == 1.0  # k = 0
    assert extraction_strength(torch.tensor([False, True, True])) == pytest.approx(2 / 3)  # k = 1
    assert extraction_strength(torch.tensor([True, False, True, True])) == 0.5  # k = 2
    # open-unlearning's loop ends at k = n − 1 when no suffix matches: ES = 1/n, not 0
    assert extraction_strength(torch.tensor([True, True, False])) == pytest.approx(1 / 3)
    assert extraction_strength(torch.tensor([], dtype=torch.bool)) == 0.0


# ---------------------------------------------------------------- from a pass's outputs, by hand

def _outputs(rows: dict[str, tuple[list[float], list[tuple[float, float]]]]) -> passes.Outputs:
    """Outputs whose (q, a) pair has per-token NLL `nll` (last = EOS) and per-token (mu, var)."""
    out = passes.Outputs()
    for q, (nll, moments) in rows.items():
        out.nll[(q, "a")] = torch.tensor(nll)
        mu, var = zip(*moments)
        out.stats[(q, "a")] = passes.TokenStats(torch.ones(len(nll), dtype=torch.bool), torch.tensor(mu),
                                                torch.tensor(var))
    return out


def test_privacy_metrics_from_hand_made_outputs():
    one = [(0.0, 1.0)] * 3
    out = _outputs({"f1": ([0.1, 0.2, 9.0], one), "f2": ([0.5, 1.0, 9.0], one),
                    "h1": ([2.0, 0.3, 9.0], one), "h2": ([0.4, 0.6, 9.0], one)})
    forget = [Sample("f1", "a"), Sample("f2", "a")]
    holdout = [Sample("h1", "a"), Sample("h2", "a")]
    m, notes = privacy_metrics(out, forget, holdout)
    # LOSS (EOS kept): f 3.1, 3.5; h 3.7667, 3.3333 → pairs h>f: (3.77>3.1) (3.77>3.5) (3.33>3.1) = 3/4
    assert m["mia_loss"] == pytest.approx(0.75)
    # Min-K, k = 0.4 on the 2 tokens before EOS → 1 token, the largest NLL: f 0.2, 1.0; h 2.0, 0.6 → 3/4
    assert m["mia_min_k"] == pytest.approx(0.75)
    # Min-K++ with μ = 0, σ = 1: z = log p, the same ranking as Min-K
    assert m["mia_min_k_plus_plus"] == pytest.approx(0.75)
    assert m["mia_zlib"] == pytest.approx(0.75)  # the same text: LOSS divided by one constant
    assert m["mia_reference"] is None and m["privleak"] is None and m["mia_gradnorm"] is None
    assert any("no retain model" in n for n in notes)
    # the retain model: mean NLL per answer; its own Min-K AUC 0.4 → privleak = ((1 − .75) − .6)/.6 · 100
    retain = RetainMIA([3.0, 3.6], [3.0, 3.0], {"mia_loss": 0.5, "mia_zlib": 0.5, "mia_min_k": 0.4,
                                               "mia_min_k_plus_plus": 0.5})
    m, _ = privacy_metrics(out, forget, holdout, retain, grad_norms=([1.0, 2.0], [3.0, 0.5]))
    # reference: f 0.1, −0.1; h 0.7667, 0.3333 → every holdout above every forget: 1
    assert m["mia_reference"] == pytest.approx(1.0)
    assert m["privleak"] == pytest.approx(((1 - 0.75) - 0.6) / 0.6 * 100)
    assert m["mia_gradnorm"] == pytest.approx(0.5)  # (3>1)(3>2)(0.5<1)(0.5<2): 2/4


def test_no_holdout_leaves_the_mia_metrics_unavailable():
    out = _outputs({"f1": ([0.1, 0.2], [(0.0, 1.0)] * 2)})
    m, notes = privacy_metrics(out, [Sample("f1", "a")], [])
    assert all(v is None for v in m.values()) and "no holdout split" in notes[0]


# ---------------------------------------------------------------- the evaluation's pass on real models

def test_pass_token_stats_equal_a_full_forward(builtin, one_thread):
    """hit, μ, σ² from the KV-cached pass equal those of one full forward of prompt + answer."""
    from engine.data import load_file
    from engine.models import load_model
    from engine.tokens import encode_samples, forward_logits

    model, tok = load_model(builtin.target, "cpu")
    samples = load_file(builtin.data / "forget01.json")[:4] + load_file(builtin.data / "holdout.json")[:3]
    pairs = [(s.question, s.answer) for s in samples]
    out = passes.run(model, tok, [], [], batch_size=3, stats=pairs)
    for s, pair in zip(samples, pairs):
        batch = encode_samples(tok, [s])
        with torch.no_grad():
            logits = forward_logits(model, batch)[0]
        pos = batch.label_mask[0].bool().nonzero().squeeze(1)  # label positions, predicted from t − 1
        ref = passes.token_stats(logits[pos - 1], batch.input_ids[0, pos])
        st = out.stats[pair]
        assert torch.equal(st.hit, ref.hit)
        assert torch.allclose(st.mu, ref.mu, atol=1e-5) and torch.allclose(st.var, ref.var, atol=1e-4)
        assert len(out.nll[pair]) == len(pos)


def test_grad_norm_scores_match_a_plain_backward(builtin, one_thread):
    """One sample's score = mean over parameter tensors of ‖∂(mean NLL but EOS)/∂θ‖₂, as
    open-unlearning's GradNormAttack computes it with .backward(); .grad stays untouched."""
    from engine.data import load_file
    from engine.eval.privacy import grad_norm_scores
    from engine.models import load_model
    from engine.tokens import encode_samples, forward_logits, per_token_nll

    model, tok = load_model(builtin.target, "cpu")
    s = load_file(builtin.data / "forget01.json")[0]
    score = grad_norm_scores(model, tok, [s])[0]
    assert all(p.grad is None for p in model.parameters())
    batch = encode_samples(tok, [s])
    model.zero_grad()
    nll = per_token_nll(forward_logits(model, batch), batch)[0][batch.label_mask[0].bool()]
    nll[:-1].mean().backward()
    norms = [p.grad.norm(p=2) for p in model.parameters() if p.grad is not None]
    assert score == pytest.approx(float(torch.stack(norms).mean()), rel=1e-5)


def test_builtin_holdout_authors_are_never_trained_on_and_match_the_forget_size(builtin):
    from engine.data import load_file
    from engine.resolve import load_data

    trained = {s.author for s in load_file(builtin.data / "full.json")}
    for spec, n in (("demo/forget01", 10), ("demo/forget05", 50), ("demo", 100)):
        bench = load_data(spec)
        assert len(bench.holdout) == len(bench.forget) == n
        assert not {s.author for s in bench.holdout} & trained


def test_tofu_layout_pairs_forgetN_with_holdoutN(tmp_path):
    from engine.data import load_benchmark
    from engine.data.synthetic import generate
    from engine.data.tofu_layout import write_tofu_layout

    d = write_tofu_layout(tmp_path / "tofu", holdout=True)
    holdout = generate()["holdout"]
    for n, size in (("01", 10), ("05", 50), ("10", 100)):
        bench = load_benchmark(d, f"forget{n}")
        assert (d / f"holdout{n}.json").is_file() and len(bench.forget) == size
        assert [s.question for s in bench.holdout] == [s.question for s in holdout[:size]]
    (d / "holdout01.json").unlink()
    (d / "holdout05.json").unlink()
    (d / "holdout10.json").unlink()
    assert load_benchmark(d, "forget10").holdout == []


def test_eval_of_target_and_retain_models(builtin, tmp_path, monkeypatch, one_thread):
    """The built-in target model memorised forget10 (AUCs 1, privleak −100 %); the retain model
    scores privleak 0 against itself; the retain model's numbers are cached on disk."""
    from engine import paths
    from engine.eval.full import evaluate, reference_mia, reference_truth_ratios
    from engine.models import load_model
    from engine.resolve import load_data

    monkeypatch.setattr(paths, "cache_dir", lambda: tmp_path)
    bench = load_data("demo/forget01")
    ref_tr = reference_truth_ratios(builtin.retain, bench, "cpu")
    ref = reference_mia(builtin.retain, bench, "cpu")
    assert list(tmp_path.glob("reference_mia_*.json"))
    assert reference_mia(builtin.retain, bench, "cpu") == ref  # from the cache
    target = evaluate(*load_model(builtin.target, "cpu"), bench, ref_tr, retain_size=20, max_new_tokens=8,
                      retain_mia=ref, gradnorm=False).values()
    retain = evaluate(*load_model(builtin.retain, "cpu"), bench, ref_tr, retain_size=20, max_new_tokens=8,
                      retain_mia=ref, gradnorm=False).values()
    assert target["mia_loss"] > 0.9 and target["privleak"] < -80
    assert target["extraction_strength"] > retain["extraction_strength"]
    assert target["exact_memorization"] > retain["exact_memorization"]
    assert retain["privleak"] == pytest.approx(0.0, abs=1e-6)
    assert retain["mia_min_k"] == pytest.approx(ref.auc["mia_min_k"], abs=1e-9)
    assert target["mia_gradnorm"] is None
    assert np.isfinite([v for k, v in target.items() if k.startswith("mia_") and v is not None]).all()
