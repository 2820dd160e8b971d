"""WGA and SatImp as per-step weight sources (engine/weights/dynamic.py, issue 20 item 4), the
token-mean normaliser, and the per-model training defaults (engine/train/config.py)."""
import math
from types import SimpleNamespace

import pytest
import torch

from engine.losses import LOSSES
from engine.tokens import Batch, per_token_nll
from engine.train import RunConfig
from engine.weights import LEARNED_WEIGHTS, SatImpWeights, WgaWeights


class Bigram(torch.nn.Module):
    """logits at position t = Z[input_ids[t]]: p(y_t | y_{t-1}) = softmax(Z[y_{t-1}])[y_t]."""

    def __init__(self, vocab: int = 2):
        super().__init__()
        self.Z = torch.nn.Parameter(torch.zeros(vocab, vocab))

    def forward(self, input_ids, attention_mask=None, use_cache=False):
        return SimpleNamespace(logits=self.Z[input_ids])


def one_row() -> Batch:
    # prompt token 0, answer token 1 (predicted from 0), closing EOS 0 (predicted from 1)
    ids = torch.tensor([[0, 1, 0]])
    return Batch(ids, torch.ones_like(ids), torch.tensor([[False, True, True]]), torch.tensor([[False, False, True]]),
                 torch.full((1, 3, 2), -1), ["a"], [1])


def wga_step(model, source, batch, lr=1.0):
    """One GA step with the WGA weights of the current model and the token-mean normaliser."""
    out = model(batch.input_ids)
    nll = per_token_nll(out.logits, batch)
    source.observe(batch, out, nll)
    w = source.for_batch([0], batch)
    loss, _ = LOSSES["ga"](nll=nll, weights=w, answer_mask=batch.answer_mask, token_mean=True)
    model.zero_grad()
    loss.backward()
    with torch.no_grad():
        model.Z -= lr * model.Z.grad
    return w.detach()


@pytest.mark.parametrize("beta", [1.0, 2.0])
def test_wga_weights_are_recomputed_from_the_current_model_after_one_update(beta):
    model, batch = Bigram(), one_row()
    src = WgaWeights({"beta": beta}, model, None, [], "cpu")
    w0 = wga_step(model, src, batch)
    # step 0: Z = 0, p(1 | 0) = 1/2, w = (1/2)^β on the answer token, 0 on the EOS
    assert w0[0].tolist() == pytest.approx([0.0, 0.5 ** beta, 0.0])
    # the step: L = −w·ℓ / N (N = 1 answer token), dℓ/dZ[0] = softmax(Z[0]) − e_1 = (1/2, −1/2);
    # SGD lr 1 (w detached): Z[0] ← Z[0] + w·(1/2, −1/2)
    assert model.Z.detach()[0].tolist() == pytest.approx([0.5 * 0.5 ** beta, -0.5 * 0.5 ** beta])
    w1 = wga_step(model, src, batch)
    # after it: p(1 | 0) = σ(Z01 − Z00) = σ(−(1/2)^β); the weight is its β-th power, not the step-0 one
    p1 = 1 / (1 + math.exp(0.5 ** beta))
    assert w1[0, 1].item() == pytest.approx(p1 ** beta)
    assert w1[0, 1].item() < w0[0, 1].item()


def test_satimp_weight_and_token_mean():
    p = torch.tensor([[0.2, 0.5, 0.9]])
    assert SatImpWeights.weight(p)[0].tolist() == pytest.approx([0.2 ** 5 * 0.8, 0.5 ** 6, 0.9 ** 5 * 0.1])
    assert SatImpWeights.weight(p, beta1=1, beta2=2)[0].tolist() == pytest.approx([0.2 * 0.64, 0.125, 0.9 * 0.01])
    nll = torch.tensor([[2.0, 1.0, 4.0, 0.0]])
    w = torch.tensor([[0.5, 1.0, 0.25, 0.0]])
    mask = torch.tensor([[True, True, True, False]])
    tm, _ = LOSSES["ga"](nll=nll, weights=w, answer_mask=mask, token_mean=True)
    wm, _ = LOSSES["ga"](nll=nll, weights=w, answer_mask=mask)
    assert tm.item() == pytest.approx(-(1 + 1 + 1) / 3)  # Σ w ℓ = 3 over N = 3 answer tokens
    assert wm.item() == pytest.approx(-3 / 1.75)  # over Σ w = 1.75


def test_wga_and_satimp_are_learned_weights_with_the_papers_token_mean():
    assert LEARNED_WEIGHTS["wga"] is WgaWeights and LEARNED_WEIGHTS["satimp"] is SatImpWeights
    assert RunConfig(loss="graddiff", selector="wga").loss_kwargs()["token_mean"] is True
    assert RunConfig(loss="ga", selector="all").loss_kwargs()["token_mean"] is False
    assert RunConfig(loss="ga", selector="satimp", loss_params={"token_mean": False}).loss_kwargs()["token_mean"] is False
    with pytest.raises(ValueError, match="weighting 'mask'"):
        RunConfig(selector="wga", weighting="mask").check()
    with pytest.raises(ValueError, match="no parameter"):
        RunConfig(selector="wga", selector_params={"ratio": 0.3}).check()
    RunConfig(selector="satimp", selector_params={"beta1": 3, "beta2": 1}).check()


def test_per_model_defaults_and_schedule():
    tiny = RunConfig(model="demo")
    assert (tiny.lr, tiny.weight_decay, tiny.warmup_epochs, tiny.lr_schedule) == (3e-4, 0.0, 0.0, "constant")
    real = RunConfig(model="/models/smollm2", epochs=3, batch_size=4)
    assert (real.lr, real.weight_decay, real.warmup_epochs, real.lr_schedule) == (1e-5, 0.01, 1.0, "linear")
    assert real.to_dict()["lr_schedule"] == "linear"  # recorded with the run
    # 8 forget samples, batch 4: 2 steps per epoch, 6 in all; warm-up 2 steps, then linear decay to 0
    assert [real.lr_at(s, 8) for s in range(6)] == pytest.approx([5e-6, 1e-5, 1e-5, 7.5e-6, 5e-6, 2.5e-6])
    assert [tiny.lr_at(s, 8) for s in range(3)] == [3e-4] * 3
    assert RunConfig(model="/m", lr=2e-5).lr == 2e-5  # an explicit value wins
    old = RunConfig.from_dict({"model": "/m", "lr": 1e-4})  # a record from before the defaults
    assert (old.lr_schedule, old.warmup_epochs) == ("constant", 0.0)


def test_tpo_preservation_includes_the_closing_eos_as_the_official_code():
    nll = torch.tensor([[0.0, 1.0, 2.0, 4.0]])  # prompt, two answer tokens, the closing EOS
    answer = torch.tensor([[False, True, True, False]])
    labels = torch.tensor([[False, True, True, True]])
    w = torch.tensor([[0.0, 1.0, 0.0, 0.0]])  # token 1 is the target, token 2 a general word
    z = torch.zeros(1, 4)
    _, with_eos = LOSSES["tpo"](logit=z, ref_logit=z, nll=nll, weights=w, answer_mask=answer, label_mask=labels)
    _, without = LOSSES["tpo"](logit=z, ref_logit=z, nll=nll, weights=w, answer_mask=answer, label_mask=labels,
                               pl_eos=False)
    assert with_eos["preserve"].item() == pytest.approx(2.0 + 4.0)  # general word + EOS
    assert without["preserve"].item() == pytest.approx(2.0)
    assert "label_mask" in LOSSES["tpo"].inputs and LOSSES["tpo"].defaults["pl_eos"] is True
