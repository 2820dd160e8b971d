"""The losses brought over from open-unlearning (SimNPO, DPO/IdkDPO, RMU, UNDIAL, CE-U, PDU): each one's
value on a small hand-computed example, CE-U against open-unlearning's own function, the trainer's
new inputs (logits at label positions, hidden states, the preferred batch) on the built-in model at
step 0, and each loss end to end through `python -m engine unlearn` with a token selector and `all`."""
from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F

from engine.losses import LOSSES, ceu_loss, dpo_loss, pdu_dual_step, pdu_loss, rmu_loss, simnpo_loss, undial_loss
from engine.losses.rmu import pick_layer, steering_vector
from engine.tokens import Batch, label_ids, label_logits

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

NEW = ("simnpo", "dpo", "rmu", "undial", "ceu", "pdu")


def log_sigmoid(x: float) -> float:
    return -math.log1p(math.exp(-x))


# ---------------------------------------------------------------- hand-computed values


def test_simnpo_hand_example():
    nll = torch.tensor([[1.0, 2.0, 3.0, 0.0], [0.5, 0.7, 0.0, 0.0], [9.0, 9.0, 0.0, 0.0]])
    answer = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0], [1, 1, 0, 0]], dtype=torch.bool)
    w = torch.tensor([[1.0, 0.0, 1.0, 0.0], [0.5, 0.5, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]])  # row 3: no targets
    loss, stats = simnpo_loss(nll, w, answer, beta=4.5, delta=0.0, gamma=0.125, alpha=0.0)
    avg = [(1 + 3) / 2, (0.25 + 0.35) / 1.0]  # Σ w ℓ / Σ w per row
    forget = sum(-(2 / 4.5) * log_sigmoid(4.5 * a) for a in avg) / 2  # row 3 left out
    assert stats["forget"].item() == pytest.approx(forget, rel=1e-6)
    assert loss.item() == pytest.approx(0.125 * forget, rel=1e-6)
    # the margin δ sits inside β, as in open-unlearning: logsigmoid(β·(ℓ̄ − δ))
    _, s = simnpo_loss(nll[:1], w[:1], answer[:1], beta=2.0, delta=0.5, alpha=0.0)
    assert s["forget"].item() == pytest.approx(-(2 / 2.0) * log_sigmoid(2.0 * (2 - 0.5)), rel=1e-6)
    # retain term: mean NLL over the retain label positions, weighted by α
    r_nll, r_mask = torch.tensor([[1.0, 3.0, 7.0]]), torch.tensor([[1, 1, 0]], dtype=torch.bool)
    loss, s = simnpo_loss(nll[:1], w[:1], answer[:1], r_nll, r_mask, beta=4.5, gamma=1.0, alpha=0.5)
    assert s["retain"].item() == pytest.approx(2.0)
    assert loss.item() == pytest.approx(-(2 / 4.5) * log_sigmoid(9.0) + 0.5 * 2.0, rel=1e-6)
    assert LOSSES["simnpo"].defaults == {"beta": 4.5, "delta": 0.0, "gamma": 0.125, "alpha": 1.0}


def test_dpo_hand_example_and_step0_closed_form():
    nll = torch.tensor([[2.0, 1.0, 4.0]])
    ref = torch.tensor([[1.0, 1.0, 1.0]])
    answer = torch.tensor([[1, 1, 0]], dtype=torch.bool)  # the third position is the EOS
    w = torch.tensor([[1.0, 0.0, 0.0]])  # rescaled to sum to T = 2 answer tokens: [2, 0, 0]
    p_nll, p_ref = torch.tensor([[1.0, 1.0, 0.0]]), torch.tensor([[1.5, 1.0, 0.0]])
    p_mask = torch.tensor([[1, 1, 0]], dtype=torch.bool)
    loss, stats = dpo_loss(nll, ref, w, answer, p_nll, p_ref, p_mask, beta=0.1, alpha=0.0)
    lose = -2 * (2.0 - 1.0)  # log π_θ/π_ref of the forget answer on its weighted tokens
    win = -((1.0 - 1.5) + 0.0)  # of the IDK answer
    assert stats["margin"].item() == pytest.approx(win - lose)
    assert loss.item() == pytest.approx(-(2 / 0.1) * log_sigmoid(0.1 * (win - lose)), rel=1e-6)
    # θ = reference on both sides: (2/β)·ln 2 whatever the tokens
    for beta in (0.1, 0.5):
        loss, _ = dpo_loss(nll, nll, w, answer, p_nll, p_nll, p_mask, beta=beta, alpha=0.0)
        assert loss.item() == pytest.approx(2 / beta * math.log(2), rel=1e-6)
    assert LOSSES["dpo"].defaults == {"beta": 0.1, "gamma": 1.0, "alpha": 1.0}
    assert LOSSES["dpo"].needs_reference


def test_rmu_hand_example():
    c = steering_vector(2, 3.0, seed=0)
    assert c.norm().item() == pytest.approx(3.0) and (c >= 0).all()  # torch.rand: a direction in the positive orthant
    assert torch.equal(c, steering_vector(2, 3.0, seed=0)) and not torch.equal(c, steering_vector(2, 3.0, seed=1))
    emb = torch.zeros(1, 3, 2)
    block0 = torch.stack([c, c + torch.tensor([1.0, 0.0]), c + torch.tensor([2.0, 2.0])]).unsqueeze(0)  # (1, 3, 2)
    block1 = torch.full((1, 3, 2), 100.0)  # HF's last entry: the last block after the final norm
    hidden = (emb, block0, block1)
    assert pick_layer(hidden, 0) is block0 and pick_layer(hidden, 7) is block0  # clamped to block L − 2
    assert pick_layer((emb, emb, block0, block1), 1) is block0 and pick_layer((emb, block1), 7) is block1
    w = torch.tensor([[1.0, 1.0, 0.0]])  # the third position is not steered
    loss, stats = rmu_loss(hidden, w, layer_id=0, steering_coeff=3.0, alpha=0.0)
    assert loss.item() == pytest.approx((0.0 + 0.5) / 2)  # mean_h (h − c)² = 0 and (1² + 0²)/2
    w = torch.tensor([[0.0, 1.0, 3.0]])  # soft weights: (1·0.5 + 3·4) / 4
    loss, _ = rmu_loss(hidden, w, layer_id=0, steering_coeff=3.0, alpha=0.0)
    assert loss.item() == pytest.approx((0.5 + 3 * 4.0) / 4)
    # retain: the block's states held to the reference's, per label position
    r_cur = (emb, torch.tensor([[[2.0, 0.0], [5.0, 5.0]]]), block1[:, :2])
    r_ref = (emb, torch.zeros(1, 2, 2), block1[:, :2])
    loss, stats = rmu_loss(hidden, w, r_cur, r_ref, torch.tensor([[True, False]]), layer_id=0,
                           steering_coeff=3.0, alpha=2.0)
    assert stats["retain"].item() == pytest.approx(2.0)  # (2² + 0²)/2, the second position not a label
    assert loss.item() == pytest.approx((0.5 + 12.0) / 4 + 2 * 2.0)
    assert LOSSES["rmu"].defaults["steering_coeff"] == 2.0 and LOSSES["rmu"].defaults["layer_id"] == 7


def test_undial_hand_example_three_token_vocabulary():
    ln2 = math.log(2)
    ref = torch.zeros(1, 1, 3)  # teacher: z_ref − β at the gold token 1, β = ln 2: q ∝ [1, 1/2, 1] = [.4, .2, .4]
    labels = torch.tensor([[1]])
    w = torch.ones(1, 1)
    loss, _ = undial_loss(torch.zeros(1, 1, 3), ref, labels, w, beta=ln2)
    assert loss.item() == pytest.approx(math.log(3), rel=1e-6)  # uniform student: CE = ln 3
    student = torch.tensor([[[ln2, 0.0, 0.0]]])  # p = [1/2, 1/4, 1/4]
    loss, _ = undial_loss(student, ref, labels, w, beta=ln2)
    assert loss.item() == pytest.approx(-(0.4 * math.log(0.5) + 0.2 * math.log(0.25) + 0.4 * math.log(0.25)),
                                        rel=1e-6)  # = 1.6 ln 2
    # the weights choose positions: a second, unweighted position changes nothing; weights average
    two = torch.cat([student, torch.zeros(1, 1, 3)], 1)
    loss2, _ = undial_loss(two, torch.zeros(1, 2, 3), torch.tensor([[1, 1]]), torch.tensor([[1.0, 0.0]]), beta=ln2)
    assert loss2.item() == pytest.approx(1.6 * ln2, rel=1e-6)
    loss3, _ = undial_loss(two, torch.zeros(1, 2, 3), torch.tensor([[1, 1]]), torch.tensor([[1.0, 3.0]]), beta=ln2)
    assert loss3.item() == pytest.approx((1.6 * ln2 + 3 * math.log(3)) / 4, rel=1e-6)
    assert LOSSES["undial"].defaults == {"beta": 10.0, "gamma": 1.0, "alpha": 0.0}


def test_ceu_hand_example_and_gradient():
    z = torch.tensor([[[0.0, math.log(2), 0.0]]]).requires_grad_()  # vocabulary of 3: p = [1/4, 1/2, 1/4]
    logits = torch.cat([torch.zeros(1, 1, 3), z], 1)  # (1, 2, 3): the first answer token, then z
    labels = torch.tensor([[0, 1]])
    answer = torch.tensor([[1, 1]], dtype=torch.bool)
    loss, stats = ceu_loss(logits, labels, torch.ones(1, 2), answer)
    assert stats["targets"].item() == 1.0  # the first answer token is left out (open-unlearning's default)
    assert loss.item() == pytest.approx(math.log(4), rel=1e-6)  # q = [1/2, 0, 1/2]: −(½ ln ¼ + ½ ln ¼)
    loss.backward()
    # ∂CE/∂z = p − q (q detached): the gold token's logit goes down, the others up
    torch.testing.assert_close(z.grad[0, 0], torch.tensor([0.25 - 0.5, 0.5, 0.25 - 0.5]))
    loss0, _ = ceu_loss(logits, labels, torch.ones(1, 2), answer, ignore_first_n_answer_tokens=0)
    assert loss0.item() == pytest.approx((math.log(3) + math.log(4)) / 2, rel=1e-6)  # uniform, gold 0 removed: ln 3
    assert LOSSES["ceu"].defaults == {"ignore_first_n_answer_tokens": 1, "gamma": 1.0}


def test_pdu_hand_example_and_dual_step():
    logits = torch.tensor([[[2.0, 0.0, 1.0], [0.0, 0.0, 0.0], [5.0, -1.0, 2.0]]])  # margins (2−1)², 0, (5−2)²
    w = torch.tensor([[1.0, 1.0, 0.0]])
    r_nll, r_mask = torch.tensor([[0.5, 0.7]]), torch.tensor([[True, True]])
    loss, stats = pdu_loss(logits, w, r_nll, r_mask, retain_loss_eps=0.3, alpha=100.0)
    assert stats["forget"].item() == pytest.approx((1.0 + 0.0) / 2)
    assert loss.item() == pytest.approx(0.5 + 100 * (0.6 - 0.3), rel=1e-6)
    params = LOSSES["pdu"].params({})
    assert params == {"retain_loss_eps": 0.3, "gamma": 1.0, "alpha": 100.0, "primal_dual": True,
                      "dual_step_size": 5.0, "dual_warmup_epochs": 5}
    assert pdu_dual_step(params, {"retain": 0.5}, epoch=5) == {}  # still warming up
    assert pdu_dual_step(params, {"retain": 0.5}, epoch=6)["alpha"] == pytest.approx(100 + 5 * (0.5 - 0.3))
    assert pdu_dual_step(params, {"retain": 0.0}, epoch=6)["alpha"] == pytest.approx(100 - 5 * 0.3)
    assert pdu_dual_step({**params, "alpha": 1.0}, {"retain": 0.0}, epoch=6)["alpha"] == 0.0  # λ ≥ 0
    assert pdu_dual_step({**params, "primal_dual": False}, {"retain": 0.5}, epoch=9) == {}


def test_pdu_dual_variable_moves_in_the_trainer():
    from engine.train import plan_epoch, step

    state = _state("pdu", dual_warmup_epochs=0, retain_loss_eps=0.01)
    stats = step(state, plan_epoch(state, 1)[0])
    assert stats["alpha"] == 100.0  # the step's loss used λ₀
    assert state.loss_kwargs["alpha"] == pytest.approx(100 + 5 * (stats["retain"] - 0.01), rel=1e-6)
    state = _state("pdu", dual_warmup_epochs=1)
    step(state, plan_epoch(state, 1)[0])
    assert state.loss_kwargs["alpha"] == 100.0  # epoch 1 is the warm-up


def _ou_cross_entropy_unlearning_loss(logits, labels, ignore_index=-100):
    """open-unlearning's src/trainer/unlearn/ceu.py, cross_entropy_unlearning_loss (MIT), verbatim maths."""
    valid = labels != ignore_index
    valid_logits, valid_labels = logits[valid], labels[valid]
    target = valid_logits.detach().clone()
    target.scatter_(dim=-1, index=valid_labels.unsqueeze(-1), value=float("-inf"))
    return F.cross_entropy(input=valid_logits, target=F.softmax(target, dim=-1))


def _ou_compute_batch_ceu(logits, labels, n=1):
    """open-unlearning's compute_batch_ceu after the model call: ignore the first n answer tokens, shift."""
    valid = labels != -100
    update = (valid.cumsum(dim=-1) <= n) & valid
    labels = labels.masked_fill(update, -100)
    return _ou_cross_entropy_unlearning_loss(logits[..., :-1, :], labels[..., 1:])


def test_ceu_and_label_logits_match_open_unlearning_on_random_logits():
    torch.manual_seed(0)
    B, T, V = 3, 7, 11
    ids = torch.randint(0, V, (B, T))
    label = torch.zeros(B, T, dtype=torch.bool)
    for i, (start, end) in enumerate([(2, 7), (3, 6), (4, 7)]):  # prompt, answer (+ EOS), padding
        label[i, start:end] = True
    batch = Batch(ids, torch.ones(B, T, dtype=torch.long), label, torch.zeros(B, T, dtype=torch.bool),
                  torch.full((B, T, 2), -1), ["a"] * B, [2, 3, 4])
    logits = torch.randn(B, T, V)
    z = label_logits(logits, batch)
    torch.testing.assert_close(z[:, 1:][label[:, 1:]], logits[:, :-1][label[:, 1:]])  # logits at t−1 predict t
    assert (z[~label] == 0).all()
    ou_labels = ids.masked_fill(~label, -100)
    ours, _ = ceu_loss(z, label_ids(batch), label.float(), label)  # every label position counted, as there
    torch.testing.assert_close(ours, _ou_compute_batch_ceu(logits, ou_labels))


# ---------------------------------------------------------------- the trainer's inputs, built-in model, step 0


def _state(loss: str, **params):
    from engine.train import RunConfig, prepare

    return prepare(RunConfig(model="demo", data="demo/forget01", loss=loss, selector="all", batch_size=4,
                             device="cpu", loss_params=params, eval_every_epoch=False, save_checkpoints=False))


def test_dpo_preferred_batch_and_step0():
    from engine.tokens import encode_samples, per_token_nll
    from engine.train import loss_inputs, plan_epoch
    from engine.train.preferred import idk_answers

    state = _state("dpo")
    idk = set(idk_answers())
    assert len(idk) == 100
    assert [s.question for s in state.preferred] == [s.question for s in state.forget]
    assert all(s.answer in idk for s in state.preferred)
    assert [s.answer for s in _state("dpo").preferred] == [s.answer for s in state.preferred]  # seeded
    idx, batch, retain = plan_epoch(state, 1)[0][0]
    inputs = loss_inputs(state, idx, batch, retain)
    pref = encode_samples(state.tokenizer, [state.preferred[i] for i in idx])
    with torch.no_grad():
        fresh = per_token_nll(state.model(input_ids=pref.input_ids, attention_mask=pref.attention_mask).logits, pref)
    torch.testing.assert_close(inputs["pref_ref_nll"], fresh, atol=1e-5, rtol=1e-5)  # the cached reference rows
    torch.testing.assert_close(inputs["pref_nll"].detach(), fresh, atol=1e-5, rtol=1e-5)
    assert torch.equal(inputs["pref_mask"], pref.label_mask)
    _, stats = state.spec(**inputs, **state.loss_kwargs)
    assert stats["forget"].item() == pytest.approx(2 / 0.1 * math.log(2), rel=1e-5)  # θ = ref at step 0


def test_rmu_hidden_states_are_the_block_output_open_unlearning_hooks():
    from engine.train import loss_inputs, plan_epoch

    state = _state("rmu", layer_id=1)
    assert state.reference is not None  # the retain side needs the reference's hidden states
    captured = []
    hook = state.model.transformer.h[1].register_forward_hook(lambda m, a, out: captured.append(out[0]
                                                              if isinstance(out, tuple) else out))
    idx, batch, retain = plan_epoch(state, 1)[0][0]
    inputs = loss_inputs(state, idx, batch, retain)
    hook.remove()
    h = captured[0]  # the forget forward comes first: model.layers.1's output, as open-unlearning hooks it
    torch.testing.assert_close(pick_layer(inputs["hidden_states"], 1), h)
    _, stats = state.spec(**inputs, **state.loss_kwargs)
    c = steering_vector(h.shape[-1], 2.0, 0)
    w = inputs["weights"]
    per_row = (((h - c) ** 2).mean(-1) * w).sum(1) / w.sum(1)
    assert stats["forget"].item() == pytest.approx(per_row.mean().item(), rel=1e-5)
    assert stats["retain"].item() == pytest.approx(0.0, abs=1e-10)  # θ = ref at step 0


def test_undial_and_ceu_inputs_at_step0(monkeypatch):
    import importlib

    from engine.train import loss_inputs, plan_epoch

    step_module = importlib.import_module("engine.train.step")  # the module (engine.train.step is also a function)
    state = _state("undial")
    idx, batch, retain = plan_epoch(state, 1)[0][0]
    inputs = loss_inputs(state, idx, batch, retain)
    torch.testing.assert_close(inputs["logits"].detach(), inputs["ref_logits"])  # θ = ref at step 0
    assert torch.equal(inputs["labels"], batch.input_ids * batch.label_mask)
    # β = 0: the teacher is the student's own distribution, so CE = its entropy on the answer tokens
    loss, _ = undial_loss(inputs["logits"], inputs["ref_logits"], inputs["labels"], inputs["weights"], beta=0.0)
    logp = F.log_softmax(inputs["logits"].detach(), -1)
    ent = -(logp.exp() * logp).sum(-1)
    w = inputs["weights"]
    assert loss.item() == pytest.approx(((ent * w).sum() / w.sum()).item(), rel=1e-5)
    # a loss that does not name them gets no full-vocabulary logits and no hidden states
    monkeypatch.setattr(step_module, "label_logits", lambda *a: pytest.fail("label_logits computed for npo"))
    state = _state("npo")
    idx, batch, retain = plan_epoch(state, 1)[0][0]
    assert set(loss_inputs(state, idx, batch, retain)) == set(state.spec.inputs)


# ---------------------------------------------------------------- end to end, CLI


@pytest.mark.parametrize("loss", NEW)
def test_unlearn_cli_end_to_end(tiny_env, capsys, loss):
    from engine.cli import main

    model_dir, tmp = tiny_env
    for selector in ("tif", "all"):
        out_json = tmp / f"{loss}-{selector}.json"
        rc = main(["unlearn", "--model", str(model_dir), "--data", "demo/forget01", "--loss", loss,
                   "--selector", selector, "--epochs", "1", "--batch-size", "5", "--lr", "1e-3",
                   "--retain-eval-size", "8", "--eval-max-new-tokens", "4", "--no-checkpoints",
                   "--json", str(out_json)])
        printed = capsys.readouterr()
        assert rc == 0, printed.out + printed.err
        result = json.loads(out_json.read_text())
        assert result["status"] == "finished", result.get("error")
        assert result["config"]["loss"] == loss and result["config"]["selector"] == selector
        assert [m["epoch"] for m in result["history"]] == [0, 1]
        last = result["history"][-1]
        assert math.isfinite(last["train_loss"]) and 0 <= last["forget_quality"] <= 1


def test_rmu_hard_mask_gives_no_gradient_to_masked_out_positions():
    torch.manual_seed(0)
    h = torch.randn(2, 5, 8, requires_grad=True)
    mask = torch.tensor([[0, 1, 0, 1, 1], [0, 0, 1, 0, 0]], dtype=torch.float)
    loss, _ = rmu_loss((torch.zeros(2, 5, 8), h), mask, layer_id=0, alpha=0.0)
    loss.backward()
    assert torch.equal(h.grad.abs().sum(-1) > 0, mask.bool())  # steered exactly where the mask says


def test_run_tab_offers_the_new_losses_and_its_form_accepts_them(tmp_path):
    import app

    demo = app.build_demo(tmp_path / "store.sqlite")
    loss_box = next(b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "run-loss")
    offered = {c[0] if isinstance(c, (tuple, list)) else c for c in loss_box.choices}
    assert set(NEW) <= offered
    from ui.run_tab import config_from_form

    for loss in NEW:
        cfg = config_from_form(source="selector", model="demo", data="demo/forget01", loss=loss, selector="tif",
                               epochs=1, loss_params="")
        cfg.check()  # the form's config is one a run accepts
