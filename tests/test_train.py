"""The trainer: short runs per loss, mask-set runs, cancel, a killed run, checkpoints and the store.

Runs use conftest's tiny GPT-2 (2 layers, 32 dims) saved as a model directory, or the built-in
target model, on demo/forget01 (10 questions), and evaluate on small subsets.
"""
from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from engine.fingerprint import text_hash
from engine.train import FixedWeights, RunConfig, forget_token_probs, loss_inputs, plan_epoch, prepare, step, unlearn

REPO = Path(__file__).resolve().parent.parent
SMALL_EVAL = {"retain_eval_size": 8, "eval_max_new_tokens": 4}


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture()
def tiny_dir(tmp_path, tiny_model, builtin_tokenizer):
    """conftest's tiny GPT-2 saved as a model directory (safetensors), usable as RunConfig.model."""
    path = tmp_path / "tiny"
    tiny_model.save_pretrained(path, safe_serialization=True)
    builtin_tokenizer.save_pretrained(path)
    return path


@pytest.fixture()
def workdirs(tmp_path, monkeypatch):
    """Runs and ATWU scorers go to a temporary directory; a fresh store there."""
    from engine import paths
    from engine.store import Store
    from engine.selectors import atwu_scorer as atwu

    runs = tmp_path / "runs"
    scorers = tmp_path / "atwu"
    runs.mkdir()
    scorers.mkdir()
    monkeypatch.setattr(paths, "runs_dir", lambda store=None: runs)
    monkeypatch.setattr(atwu, "scorer_dir", lambda: scorers)
    return Store(tmp_path / "store.sqlite")


def state_plan(state):
    """The batches of the next epoch of a prepared run."""
    return plan_epoch(state, state.step + 1)


def _target_prob(state) -> float:
    """Mean probability of the label token over the run's target tokens (answer tokens for atwu)."""
    probs = forget_token_probs(state.model, state.tokenizer, state.forget)
    if isinstance(state.weights, FixedWeights):
        masks = state.weights.targets()
    else:
        from engine.tokens import encode_samples

        b = encode_samples(state.tokenizer, state.forget)
        masks = [b.answer_mask[i][b.label_mask[i]] for i in range(len(state.forget))]
    sel = torch.cat(masks)
    return float(torch.cat(probs)[sel].mean())


@pytest.mark.parametrize("loss,selector", [("ga", "all"), ("graddiff", "all"), ("npo", "all"),
                                           ("tpo", "oracle"), ("dto", "oracle"), ("atwu", "atwu")])
def test_short_run_moves_forget_probability_down(loss, selector):
    """Four steps (2 epochs of forget01 in batches of 5) on the built-in target model lower the
    mean probability of the targeted label tokens by more than 0.01."""
    cfg = RunConfig(model="demo", data="demo/forget01", loss=loss, selector=selector, lr=1e-3, batch_size=5,
                    eval_every_epoch=False, save_checkpoints=False, device="cpu")
    state = prepare(cfg)
    before = _target_prob(state)
    for _ in range(2):
        for micro in state_plan(state):
            step(state, micro)
    after = _target_prob(state)
    assert after < before - 0.01, (loss, before, after)


def test_retain_needing_loss_refuses_data_without_retain(tmp_path):
    from engine.data import write_file
    from engine.resolve import load_data

    bench = load_data("demo/forget01")
    d = tmp_path / "noretain"
    d.mkdir()
    write_file(d / "forget01.json", bench.forget)
    with pytest.raises(ValueError, match="retain"):
        prepare(RunConfig(model="demo", data=str(d), loss="graddiff", eval_every_epoch=False))
    prepare(RunConfig(model="demo", data=str(d), loss="dto", selector="oracle", eval_every_epoch=False))


def test_unknown_names_fail_before_loading():
    with pytest.raises(KeyError):
        RunConfig(loss="nope").check()
    with pytest.raises(KeyError):
        RunConfig(loss="ga", selector="nope").check()
    with pytest.raises(ValueError, match="no parameter"):
        RunConfig(loss="ga", loss_params={"alpha": 1}).check()
    with pytest.raises(ValueError, match="preservation"):
        RunConfig(loss="ga", orthogonalize=True).check()


def test_atwu_selector_needs_a_fitted_scorer(tmp_path, monkeypatch):
    from engine.models import load_model
    from engine.resolve import load_data, model_path
    from engine.selectors import select
    from engine.selectors.base import SelectorUnavailable
    from engine.train import fit_atwu_scorer
    from engine.selectors import atwu_scorer as atwu

    monkeypatch.setattr(atwu, "scorer_dir", lambda: tmp_path)
    model, tok = load_model(model_path("demo"), "cpu")
    samples = load_data("demo/forget01").forget[:4]
    with pytest.raises(SelectorUnavailable, match="fit-scorer"):
        select("atwu", model, tok, samples)
    path = fit_atwu_scorer("demo", "demo/forget01", steps=5, device="cpu", batch_size=5)
    assert path.is_file() and path.parent == tmp_path
    out = select("atwu", model, tok, samples)
    assert out.scores.shape == out.mask.shape
    assert torch.equal(out.mask, (out.scores > 0.5) & out.mask)
    assert not torch.allclose(out.scores[out.mask | (out.scores > 0)], torch.tensor(0.5))  # it learned something


def _make_mask_set(store, name, samples, tokenizer, pick, fingerprint=None) -> dict:
    """Store a mask set over label positions: pick(n) -> the marked label positions of each sample."""
    from engine.tokens import encode_samples

    batch = encode_samples(tokenizer, samples)
    masks = {}
    for i, s in enumerate(samples):
        n = int(batch.label_mask[i].sum())
        marked = set(pick(n))
        masks[s.uid] = (text_hash(s.question, s.answer), [int(j in marked) for j in range(n)])
    from engine.fingerprint import tokenizer_fingerprint

    store.create_mask_set(name, "tiny", "demo/forget01", fingerprint or tokenizer_fingerprint(tokenizer), "hand", masks)
    return store.get_mask_set(name)


def test_mask_set_run_trains_exactly_the_marked_positions(tiny_dir, builtin_tokenizer, workdirs):
    from engine.resolve import load_data

    from engine.models import load_tokenizer

    samples = load_data("demo/forget01").forget
    tok = load_tokenizer(tiny_dir)  # with the prompt format a run on tiny_dir uses (engine.prompts: 'base')
    ms = _make_mask_set(workdirs, "hand", samples, tok, lambda n: [1, 3, n - 1])  # n − 1: the EOS
    cfg = RunConfig(model=str(tiny_dir), data="demo/forget01", loss="ga", mask_set="hand", batch_size=4,
                    eval_every_epoch=False, save_checkpoints=False, device="cpu")
    state = prepare(cfg, workdirs)
    captured = []

    def keep_logits(module, args, out):
        out.retain_grad()
        captured.append(out)

    hook = state.model.lm_head.register_forward_hook(keep_logits)
    micro = state_plan(state)[0]
    idx, batch, _ = micro[0]
    inputs = loss_inputs(state, idx, batch, None)
    hook.remove()
    loss, _ = state.spec(**inputs, **state.loss_kwargs)
    loss.backward()
    has_grad = captured[0].grad.abs().sum(-1) > 0  # (B, T): logits at t-1 train label t
    expected = torch.zeros_like(has_grad)
    for r, i in enumerate(idx):
        label_pos = batch.label_mask[r].nonzero().squeeze(1)
        marked = torch.tensor(ms.masks[samples[i].uid].mask, dtype=torch.bool)
        assert marked[-1]
        marked[-1] = False  # the closing EOS is never trained on, even when a mask set marks it
        expected[r, label_pos[marked] - 1] = True
    assert expected.any()
    assert torch.equal(has_grad, expected)


def test_mask_set_mismatches_are_refused(tiny_dir, builtin_tokenizer, workdirs):
    from engine.resolve import load_data

    samples = load_data("demo/forget01").forget
    cfg = lambda name: RunConfig(model=str(tiny_dir), data="demo/forget01", loss="ga", mask_set=name,  # noqa: E731
                                 eval_every_epoch=False, device="cpu")
    workdirs.create_mask_set("empty", "tiny", "demo/forget01", "builtin")
    with pytest.raises(ValueError, match="empty"):
        prepare(cfg("empty"), workdirs)
    with pytest.raises(ValueError, match="no mask set"):
        prepare(cfg("missing"), workdirs)
    _make_mask_set(workdirs, "long", samples, builtin_tokenizer, lambda n: [1])
    first = samples[0].uid
    entry = workdirs.get_mask_set("long").masks[first]
    workdirs.save_sample_mask("long", first, entry.text_hash, entry.mask + [0])  # another tokenizer's length
    with pytest.raises(ValueError, match="another tokenizer"):
        prepare(cfg("long"), workdirs)
    _make_mask_set(workdirs, "text", samples, builtin_tokenizer, lambda n: [1])
    workdirs.save_sample_mask("text", first, "0000", entry.mask)
    with pytest.raises(ValueError, match="different text"):
        prepare(cfg("text"), workdirs)
    _make_mask_set(workdirs, "blank", samples, builtin_tokenizer, lambda n: [])
    with pytest.raises(ValueError, match="marks no tokens"):
        prepare(cfg("blank"), workdirs)


# ---------------------------------------------------------------- recorded runs

def test_recorded_run_with_lora_keeps_checkpoints(tiny_dir, workdirs):
    """LoRA run, 2 steps per epoch, capped at 3 steps: epoch 2 is cut after its first step and
    still evaluated; both checkpoints are LoRA adapters (safetensors) that load as base + adapter."""
    from engine.models import load_model

    seen = []
    cfg = RunConfig(model=str(tiny_dir), data="demo/forget01", loss="npo", selector="all", epochs=3, lr=1e-3,
                    batch_size=5, lora=True, lora_r=4, max_steps=3, device="cpu", eval_every=1, **SMALL_EVAL)
    result = unlearn(cfg, workdirs, progress=seen.append)
    assert result.status == "finished", result.error
    assert [(m["epoch"], m["step"]) for m in result.history] == [(0, 0), (1, 2), (2, 3)]
    assert result.epochs_completed == 2
    first = result.history[0]
    assert first["forget_quality"] is not None and first["model_utility"] is not None
    assert {"target_prob_drop", "forget_probability", "retain_probability"} <= set(first)
    assert first["target_prob_drop"] == 0.0 and result.history[-1]["target_prob_drop"] > 0
    steps_seen = [i for i in seen if i.phase in ("train", "eval")]  # phase starts come in between
    assert [(i.phase, i.step) for i in steps_seen] == [("eval", 0), ("train", 1), ("train", 2), ("eval", 2),
                                                             ("train", 3), ("eval", 3)]
    assert {i.total_steps for i in steps_seen} == {3}
    assert [i.phase for i in seen[:2]] == ["loading", "evaluating"]
    phases = workdirs.get_run(result.run_id).phase_seconds
    assert set(phases) == {"loading", "evaluating", "training", "saving"} and phases["evaluating"] > 0
    final = Path(result.checkpoints["final"])
    assert (final / "adapter_model.safetensors").is_file() and not (final / "model.safetensors").exists()
    trained, _ = load_model(final, "cpu")  # base + adapter
    trained = trained.merge_and_unload()
    original, _ = load_model(tiny_dir, "cpu")
    assert not torch.allclose(trained.transformer.h[0].attn.c_attn.weight, original.transformer.h[0].attn.c_attn.weight)
    assert torch.equal(trained.transformer.wte.weight, original.transformer.wte.weight)  # LoRA left it alone
    assert "best" in result.checkpoints
    run = workdirs.get_run(result.run_id)
    assert run.status == "finished"


def test_cancel_stops_within_a_step(tiny_dir, workdirs):
    """Cancel set during the first step of epoch 2 (5 steps per epoch): no further step runs;
    the run is recorded as cancelled with epoch 1 finished and its metrics kept."""
    cancel = threading.Event()
    steps = []

    def progress(info):
        if info.phase == "train":
            steps.append(info.step)
            if info.epoch == 2:
                cancel.set()

    cfg = RunConfig(model=str(tiny_dir), data="demo/forget01", loss="ga", epochs=3, batch_size=2,
                    eval_every_epoch=False, device="cpu")
    result = unlearn(cfg, workdirs, progress=progress, cancel=cancel)
    assert result.status == "cancelled"
    assert steps == [1, 2, 3, 4, 5, 6]
    assert result.epochs_completed == 1
    run = workdirs.get_run(result.run_id)
    assert run.status == "cancelled"
    assert [m.epoch for m in run.metrics] == [1]
    assert "final" not in run.checkpoints


@pytest.mark.parametrize("lora", [False, True])
def test_reference_equals_the_model_at_step0(tiny_dir, lora):
    """On a prepared batch at step 0 the reference equals the model: TPO's and NPO's forget terms
    are (2/β)·ln 2 (their per-token reference values are cached, no model copy), DTO's KL is 0
    (a frozen copy, or LoRA with its adapter off). A loss without reference inputs gets neither."""
    common = dict(model=str(tiny_dir), data="demo/forget01", selector="oracle", lora=lora, batch_size=5,
                  eval_every_epoch=False, device="cpu")
    for loss, params in (("tpo", {"beta": 0.25}), ("npo", {"beta": 0.1, "alpha": 0.0}), ("dto", {})):
        state = prepare(RunConfig(loss=loss, loss_params=params, **common))
        assert (state.reference is None) == (lora or loss != "dto")
        assert (state.reference_rows is None) == (loss == "dto")
        idx, batch, retain = state_plan(state)[0][0]
        inputs = loss_inputs(state, idx, batch, retain)
        _, stats = state.spec(**inputs, **state.loss_kwargs)
        if loss == "dto":
            assert inputs["kl"].abs().max().item() < 1e-5
            assert stats["preserve"].item() == pytest.approx(0.0, abs=1e-6)
        else:
            assert stats["forget"].item() == pytest.approx(2 / params["beta"] * math.log(2), rel=1e-5), loss
    plain = prepare(RunConfig(loss="ga", **common))
    assert plain.reference is None and plain.reference_rows is None


def test_soft_scores_are_scaled_into_unit_range():
    from engine.train import normalise_scores

    scores = torch.tensor([[0.5, 2.0, -1.0, 4.0], [0.2, 0.4, 0.0, 9.0]])
    allowed = torch.tensor([[True, True, True, False], [True, True, False, False]])
    expected = torch.tensor([[0.25, 1.0, 0.0, 0.0], [0.2, 0.4, 0.0, 0.0]])  # row 0 ÷ its max 2; row 1 kept
    assert torch.allclose(normalise_scores(scores, allowed), expected)


def test_failure_is_recorded(tiny_dir, workdirs, monkeypatch):
    import engine.train.loop as loop

    def boom(state, micro):
        raise RuntimeError("exploded")

    monkeypatch.setattr(loop, "step", boom)
    cfg = RunConfig(model=str(tiny_dir), data="demo/forget01", loss="ga", eval_every_epoch=False, device="cpu")
    result = unlearn(cfg, workdirs)
    assert result.status == "failed" and "exploded" in result.error
    run = workdirs.get_run(result.run_id)
    assert run.status == "failed" and "exploded" in (run.error or "")


KILL_SCRIPT = """
import sys, time
from pathlib import Path
import engine.paths as paths
paths.runs_dir = lambda store=None: Path(sys.argv[3])
from engine.store import Store
from engine.train import RunConfig, unlearn

def progress(info):
    if info.phase not in ("eval", "train"):  # loading/evaluating/saving reports: not yet a finished step
        return
    Path(sys.argv[2]).write_text(str(info.run_id))
    time.sleep(0.5)

cfg = RunConfig(model=sys.argv[4], data="demo/forget01", loss="ga", epochs=50, batch_size=2, device="cpu",
                retain_eval_size=4, eval_max_new_tokens=2)
unlearn(cfg, Store(sys.argv[1]), progress=progress)
"""


def test_killed_run_leaves_a_readable_store(tiny_dir, tmp_path):
    from engine.store import Store

    marker = tmp_path / "started"
    db = tmp_path / "store.sqlite"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, str(db), str(marker), str(tmp_path / "runs"),
                             str(tiny_dir)], env=env, cwd=REPO)
    try:
        deadline = time.time() + 60
        while not marker.exists() or not marker.read_text():
            assert proc.poll() is None, "the run ended before it was killed"
            assert time.time() < deadline, "the run did not start in time"
            time.sleep(0.1)
        time.sleep(0.3)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    run_id = int(marker.read_text())
    store = Store(db)
    run = store.get_run(run_id)
    assert run.status == "running"
    assert run.config.loss == "ga"
    assert [m.epoch for m in run.metrics] == [0]  # the step-0 evaluation was committed
    assert store.mark_stale_runs() == [run_id]
    assert store.get_run(run_id).status == "interrupted"


def test_orthogonalised_forget_gradient_is_orthogonal_to_preservation():
    from engine.train import orthogonal_backward

    cfg = RunConfig(model="demo", data="demo/forget01", loss="dto", selector="oracle", lr=1e-3, batch_size=5,
                    eval_every_epoch=False, device="cpu")
    state = prepare(cfg)
    plan = state_plan(state)
    step(state, plan[0])  # move off the reference: at θ = ref the KL gradient is 0
    idx, batch, _ = plan[1][0]
    params = state.trainable
    orthogonal_backward(state, loss_inputs(state, idx, batch, None), 1.0)
    total = [p.grad.clone() for p in params]
    state.optimizer.zero_grad(set_to_none=True)
    p_loss, _ = state.spec(**loss_inputs(state, idx, batch, None), **{**state.loss_kwargs, "gamma": 0.0})
    g_p = torch.autograd.grad(p_loss, params, allow_unused=True)
    g_p = [torch.zeros_like(p) if g is None else g for g, p in zip(g_p, params)]
    forget_part = [t - g for t, g in zip(total, g_p)]
    dot = sum((a * b).sum() for a, b in zip(forget_part, g_p))
    norms = math.sqrt(sum((a ** 2).sum() for a in forget_part)) * math.sqrt(sum((b ** 2).sum() for b in g_p))
    assert norms > 0
    assert abs(float(dot)) / norms < 1e-4


def test_eval_gradnorm_off_skips_only_the_gradient_norm_auc(tmp_path):
    """RunConfig.eval_gradnorm=False: no backward pass in evaluation, so mia_gradnorm is None at
    step 0 and at the end, while the forward-only MIA AUCs are still recorded."""
    from engine.store import Store
    from engine.train import RunConfig, unlearn

    store = Store(tmp_path / "s.sqlite")
    got = {}
    for flag in (True, False):
        cfg = RunConfig(model="demo", data="demo/forget01", loss="ga", selector="all", epochs=1, lr=1e-4,
                        batch_size=5, max_steps=1, device="cpu", save_checkpoints=False, eval_gradnorm=flag,
                        **SMALL_EVAL)
        res = unlearn(cfg, store)
        assert res.status == "finished", res.error
        got[flag] = res.history
    for m in got[True]:
        assert m["mia_gradnorm"] is not None and m["mia_loss"] is not None
    for m in got[False]:
        assert m["mia_gradnorm"] is None and m["mia_loss"] is not None
