"""Losses against numbers worked out by hand, their behaviour at step 0, and which tokens get gradient.

Per-token inputs come from `engine.tokens` on a real batch (built-in tokenizer, tiny GPT-2) or
from tiny hand-made tensors.
"""
from __future__ import annotations

import math

import pytest
import torch

from engine.losses import LOSSES, atwu_loss, dto_loss, ga_loss, graddiff_loss, npo_loss, tpo_loss
from engine.weights.atwu import AtwuScorer, binary_entropy, scorer_loss, scorer_step, make_optimizer
from engine.tokens import encode, kl_ref, label_ids, label_logit, label_logits, per_token_nll

LN2 = math.log(2.0)

# two rows, T = 4; row 0 has answer tokens at 1..2, row 1 at 1..3 (position 0 = prompt)
NLL = torch.tensor([[0.0, 1.0, 2.0, 0.0], [0.0, 3.0, 1.0, 2.0]])
ANSWER = torch.tensor([[False, True, True, False], [False, True, True, True]])
RETAIN_NLL = torch.tensor([[0.0, 2.0, 4.0]])
RETAIN_MASK = torch.tensor([[False, True, True]])


def test_ga_hand_computed():
    w = torch.tensor([[0.0, 1.0, 1.0, 0.0], [0.0, 0.5, 0.0, 0.0]])
    loss, stats = ga_loss(NLL, w)
    # −(1·1 + 1·2 + 0.5·3) / (1 + 1 + 0.5) = −4.5 / 2.5
    assert loss.item() == pytest.approx(-1.8)
    assert stats["targets"].item() == pytest.approx(2.5)
    assert ga_loss(NLL, w, gamma=2.0)[0].item() == pytest.approx(-3.6)


def test_graddiff_hand_computed():
    w = ANSWER.float()
    loss, stats = graddiff_loss(NLL, w, RETAIN_NLL, RETAIN_MASK, alpha=0.5)
    forget = -(1 + 2 + 3 + 1 + 2) / 5  # −1.8
    retain = (2 + 4) / 2  # 3
    assert stats["forget"].item() == pytest.approx(forget)
    assert stats["retain"].item() == pytest.approx(retain)
    assert loss.item() == pytest.approx(forget + 0.5 * retain)


def test_npo_step0_and_rescaling():
    w = ANSWER.float()
    loss, stats = npo_loss(NLL, NLL.clone(), w, ANSWER, alpha=0.0, beta=0.1)
    assert loss.item() == pytest.approx((2 / 0.1) * LN2, rel=1e-6)
    # one target token in a 3-token answer: its weight is rescaled to 3
    ref = torch.zeros_like(NLL)
    w1 = torch.tensor([[0.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0]])
    loss1, s1 = npo_loss(NLL, ref, w1, ANSWER, alpha=0.0, beta=0.5)
    delta = 3 * (3.0 - 0.0)  # only row 1 has targets, the empty row is left out of the mean
    assert loss1.item() == pytest.approx(-(2 / 0.5) * math.log(1 / (1 + math.exp(-0.5 * delta))), rel=1e-6)


def test_npo_retain_variant_needs_retain_batch():
    with pytest.raises(ValueError, match="retain"):
        npo_loss(NLL, NLL, ANSWER.float(), ANSWER)  # alpha = 1 by default
    loss, stats = npo_loss(NLL, NLL, ANSWER.float(), ANSWER, RETAIN_NLL, RETAIN_MASK, beta=0.1, alpha=1.0)
    assert loss.item() == pytest.approx(20 * LN2 + 3.0, rel=1e-6)


def test_atwu_loss_hand_computed():
    g = torch.full_like(NLL, 0.5) * ANSWER
    loss, stats = atwu_loss(NLL, g, ANSWER, alpha=0.0, beta=5.0)
    terms = [0.5 * l * math.exp(-5 * 0.5 * l) for l in (1.0, 2.0, 3.0, 1.0, 2.0)]
    assert loss.item() == pytest.approx(-sum(terms) / 5, rel=1e-6)
    loss2, _ = atwu_loss(NLL, g, ANSWER, RETAIN_NLL, RETAIN_MASK, alpha=2.0)
    assert loss2.item() == pytest.approx(-sum(terms) / 5 + 2 * 3.0, rel=1e-6)


@pytest.fixture()
def real_batch(builtin_tokenizer, tiny_model):
    batch = encode(builtin_tokenizer, ["Where was Ann born?", "What did Bo write?"],
                   ["Ann was born in Lima, Peru.", "Bo wrote The Silent Harbor."])
    logits = tiny_model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits.detach()
    return batch, logits


def test_tpo_step0_is_2_over_beta_ln2(real_batch):
    batch, logits = real_batch
    z = label_logit(logits, batch)
    nll = per_token_nll(logits, batch)
    mask = batch.answer_mask.clone()
    mask[:, ::2] = False  # some targets, some non-targets
    for beta in (0.2, 0.25, 0.3):
        loss, stats = tpo_loss(z, z.clone(), nll, mask.float(), batch.answer_mask, beta=beta, pl_weight=0.0)
        assert loss.item() == pytest.approx((2 / beta) * LN2, rel=1e-6)
        assert stats["forget"].item() == pytest.approx((2 / beta) * LN2, rel=1e-6)
    # PL = Σ over non-target answer tokens of ℓ, averaged over the batch
    _, stats = tpo_loss(z, z, nll, mask.float(), batch.answer_mask)
    expected = (nll * (batch.answer_mask & ~mask)).sum(1).mean()
    assert stats["preserve"].item() == pytest.approx(expected.item(), rel=1e-6)


def test_tpo_uses_raw_logits():
    """Adding a constant to every logit of the current model changes s (log-probs would not)."""
    z_ref = torch.tensor([[0.0, 5.0, 4.0, 0.0]])
    mask = torch.tensor([[False, True, True, False]])
    nll = torch.zeros_like(z_ref)
    loss, stats = tpo_loss(z_ref - 1.0, z_ref, nll, mask.float(), mask, beta=0.25)
    assert stats["margin"].item() == pytest.approx(1.0)
    assert loss.item() == pytest.approx(-(2 / 0.25) * math.log(1 / (1 + math.exp(-0.25))), rel=1e-6)


def test_dto_kl_is_zero_at_step0(real_batch):
    batch, logits = real_batch
    kl = kl_ref(logits.clone(), logits, batch)
    assert kl.abs().max().item() < 1e-6
    nll = per_token_nll(logits, batch)
    mask = batch.answer_mask.clone()
    mask[:, 1::2] = False
    loss, stats = dto_loss(nll, mask.float(), batch.answer_mask, kl)
    assert stats["preserve"].item() == pytest.approx(0.0, abs=1e-6)
    assert loss.item() == pytest.approx(-(nll * mask).sum().item() / mask.sum().item(), rel=1e-6)
    loss_npo, _ = dto_loss(nll, mask.float(), batch.answer_mask, kl, nll.clone(), forget="npo", beta=0.1)
    assert loss_npo.item() == pytest.approx(20 * LN2, rel=1e-6)


def _forget_only_call(name: str, logits, batch, weights):
    """Call loss `name` with its preservation side off; returns the loss."""
    spec = LOSSES[name]
    nll = per_token_nll(logits, batch)
    ref = logits.detach()
    tensors = {"nll": nll, "weights": weights, "answer_mask": batch.answer_mask,
               "ref_nll": per_token_nll(ref, batch), "logit": label_logit(logits, batch),
               "ref_logit": label_logit(ref, batch), "kl": kl_ref(ref, logits, batch),
               "retain_nll": torch.zeros(1, 3), "retain_mask": torch.zeros(1, 3, dtype=torch.bool),
               "logits": label_logits(logits, batch), "ref_logits": label_logits(ref, batch), "labels": label_ids(batch),
               "pref_nll": torch.zeros(len(nll), 1), "pref_ref_nll": torch.zeros(len(nll), 1),
               "pref_mask": torch.zeros(len(nll), 1, dtype=torch.bool)}  # DPO's preferred side: constant here
    params = {k: 0.0 for k in spec.preserve_params}
    if "ignore_first_n_answer_tokens" in spec.defaults:  # CE-U: every target counts here
        params["ignore_first_n_answer_tokens"] = 0
    loss, _ = spec(**{k: v for k, v in tensors.items() if k in spec.inputs}, **params)
    return loss


@pytest.mark.parametrize("name", sorted(set(LOSSES) - {"rmu"}))  # rmu acts on hidden states: its own test
def test_hard_mask_gives_no_gradient_to_masked_out_tokens(name, real_batch, tiny_model):
    batch, _ = real_batch
    mask = batch.answer_mask.clone()
    mask[:, 1::2] = False  # targets: every other position
    logits = tiny_model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits.detach()
    logits.requires_grad_(True)  # θ = ref here: NPO's and TPO's forget gradients are still non-zero there
    loss = _forget_only_call(name, logits, batch, mask.float())
    loss.backward()
    has_grad = logits.grad.abs().sum(-1) > 0  # (B, T): logits at t-1 predict label t
    expected = torch.zeros_like(has_grad)
    expected[:, :-1] = mask[:, 1:]
    assert torch.equal(has_grad, expected), name


def test_soft_weights_scale_the_gradient(real_batch, tiny_model):
    batch, _ = real_batch
    logits = tiny_model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits.detach()
    grads = []
    hard = batch.answer_mask.float()
    soft = hard.clone()
    soft[0, batch.answer_mask[0].nonzero()[0, 0]] = 0.25  # first answer token of row 0 at a quarter weight
    for w in (hard, soft):
        x = logits.clone().requires_grad_(True)
        ga_loss(per_token_nll(x, batch), w)[0].backward()
        grads.append(x.grad)
    # GA's gradient at token t is −w_t/Σw · ∂ℓ_t: the ratio soft/hard is (w_t/Σw_soft)/(1/Σw_hard)
    ratio = hard.sum() / soft.sum()
    rows, cols = batch.answer_mask.nonzero(as_tuple=True)
    for r, c in zip(rows.tolist(), cols.tolist()):
        expect = grads[0][r, c - 1] * soft[r, c] * ratio
        assert torch.allclose(grads[1][r, c - 1], expect, atol=1e-7, rtol=1e-4)


# ---------------------------------------------------------------- ATWU scorer

def test_atwu_scorer_starts_at_half():
    scorer = AtwuScorer(16)
    g = scorer(torch.randn(2, 5, 16))
    assert torch.allclose(g, torch.full((2, 5), 0.5))
    assert scorer.linear.weight.dtype == torch.float32
    assert scorer(torch.randn(2, 5, 16, dtype=torch.bfloat16)).dtype == torch.float32


def test_atwu_scorer_loss_terms_hand_computed():
    g = torch.tensor([[0.5, 0.8, 0.2, 0.0], [0.6, 0.3, 0.0, 0.0]], requires_grad=True)
    nll = torch.tensor([[1.0, 0.5, 2.0, 0.0], [0.1, 0.4, 0.0, 0.0]])
    mask = torch.tensor([[True, True, True, False], [True, True, False, False]])
    w = torch.tensor([[0.5, -1.0]])
    loss, stats = scorer_loss(g, nll, mask, w, beta=5.0, lam_h=1.0, lam_pop=10.0, budget=0.2, lam_2=1.0)
    pairs = [(0.5, 1.0), (0.8, 0.5), (0.2, 2.0), (0.6, 0.1), (0.3, 0.4)]
    gain = sum(gi * l * math.exp(-5 * gi * l) for gi, l in pairs) / 5
    hb = lambda p: -(p * math.log(p) + (1 - p) * math.log(1 - p))  # noqa: E731
    ent = sum(hb(gi) for gi, _ in pairs) / 5
    frac0, frac1 = 1 / 3, 1 / 2  # g > 0.5: (0.8) of 3, (0.6) of 2
    pop = ((frac0 - 0.2) ** 2 + (frac1 - 0.2) ** 2) / 2
    l2 = 0.25 + 1.0
    assert stats["gain"].item() == pytest.approx(gain, rel=1e-5)
    assert stats["entropy"].item() == pytest.approx(ent, rel=1e-5)
    assert stats["population"].item() == pytest.approx(pop, rel=1e-5)
    assert stats["l2"].item() == pytest.approx(l2)
    assert loss.item() == pytest.approx(-gain + ent + 10 * pop + l2, rel=1e-5)
    # straight-through: the population term's gradient is that of mean(g) per row
    g2 = g.detach().clone().requires_grad_(True)
    only_pop = scorer_loss(g2, torch.zeros_like(nll), mask, w * 0, lam_h=0.0, lam_pop=1.0, lam_2=0.0)[0]
    only_pop.backward()
    expected_row0 = 2 * (frac0 - 0.2) / 3 / 2
    assert g2.grad[0, 0].item() == pytest.approx(expected_row0, rel=1e-5)
    assert g2.grad[0, 3].item() == 0.0  # not an answer token


def test_binary_entropy_at_half_is_ln2():
    assert binary_entropy(torch.tensor(0.5)).item() == pytest.approx(LN2)


def test_atwu_scorer_step_moves_off_half():
    torch.manual_seed(0)
    scorer = AtwuScorer(8)
    opt = make_optimizer(scorer)
    h = torch.randn(3, 6, 8)
    nll = torch.rand(3, 6) * 0.3
    mask = torch.ones(3, 6, dtype=torch.bool)
    stats = scorer_step(scorer, opt, h, nll, mask)
    assert stats["fraction"].item() == 0.0  # g = 0.5 is not > 0.5
    assert not torch.allclose(scorer(h), torch.full((3, 6), 0.5))
