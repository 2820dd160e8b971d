"""Training memory (issue 15, item 4): the retain batch backpropagated on its own, gradient
checkpointing, the plan's refusal, LoRA checkpoints saved as adapters and merged on export, and
Explore's models freed before a run."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from engine.train import RunConfig, plan_epoch, prepare, step, unlearn

SMALL_EVAL = {"retain_eval_size": 8, "eval_max_new_tokens": 4}


pytestmark = pytest.mark.usefixtures("one_thread")


def _grads_after_one_step(config: RunConfig, separate: bool) -> list[torch.Tensor]:
    state = prepare(config)
    state.memory["separate_retain_backward"] = separate
    grads = []
    state.optimizer.step = lambda: grads.extend(p.grad.clone() for p in state.trainable)  # capture, no update
    step(state, plan_epoch(state, 1)[0])
    return grads


@pytest.mark.parametrize("loss", ["graddiff", "npo"])
def test_separate_retain_backward_gives_the_joint_gradient(loss):
    """Forget part, then retain part, accumulated: the same gradient as one joint backward (1e-6)."""
    cfg = RunConfig(model="demo", data="demo/forget01", loss=loss, selector="all", batch_size=5, device="cpu",
                    max_grad_norm=0.0)
    joint = _grads_after_one_step(cfg, False)
    split = _grads_after_one_step(cfg, True)
    assert len(joint) == len(split) and any(g.abs().sum() > 0 for g in joint)
    for a, b in zip(joint, split):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)


def _naive_inputs(state, indices, batch, retain) -> dict:
    """The loss's inputs the way the engine took them before issue 15's memory work: the model's
    default forward (KV cache on), ℓ_t = logsumexp_v z_{t-1,v} − z_{t-1,y_t} over the sliced
    logits, the label logit gathered from an fp32 copy."""
    import torch.nn.functional as F

    from engine.tokens import gather_rows

    def up(logits):  # the former .float(), which would also round a float64 model's logits down
        return logits.to(torch.promote_types(logits.dtype, torch.float32))

    def nll(model_out, b):
        logits = up(model_out.logits[:, :-1])  # (B, T-1, V): logits at t-1 predict the label at t
        label_z = logits.gather(-1, b.input_ids[:, 1:, None])[..., 0]  # (B, T-1)
        return F.pad(torch.logsumexp(logits, -1) - label_z, (1, 0)) * b.label_mask

    out = state.model(input_ids=batch.input_ids, attention_mask=batch.attention_mask)
    inputs = {"nll": nll(out, batch), "answer_mask": batch.answer_mask, "label_mask": batch.label_mask,
              "weights": state.weights.for_batch(indices, batch)}
    z = up(out.logits[:, :-1]).gather(-1, batch.input_ids[:, 1:, None])[..., 0]
    inputs["logit"] = F.pad(z, (1, 0)) * batch.label_mask
    for k, rows in (state.reference_rows or {}).items():
        inputs[k] = gather_rows(rows, indices, batch)
    if retain is not None:
        r_out = state.model(input_ids=retain.input_ids, attention_mask=retain.attention_mask)
        inputs["retain_nll"] = nll(r_out, retain)
        inputs["retain_mask"] = retain.label_mask
    return {k: v for k, v in inputs.items() if k in state.spec.inputs}


def _loss_and_grads(state, make, micro) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss, every trainable gradient flattened into one vector) of the loss's inputs from `make`."""
    indices, batch, retain = micro
    value, _ = state.spec(**make(state, indices, batch, retain), **state.loss_kwargs)
    return value.detach(), torch.cat([g.flatten() for g in torch.autograd.grad(value, state.trainable)])


@pytest.mark.parametrize("loss", ["ga", "npo", "graddiff", "tpo"])
def test_step_inputs_give_the_loss_and_gradient_of_the_naive_forward(loss):
    """The engine's loss inputs (no KV cache, cross-entropy on unsliced logits in chunks, the
    logits dropped before the retain forward) against the former naive forward (`_naive_inputs`),
    built-in model, one forget (+ retain) batch. In float64 the two are the same computation: loss
    and gradient agree to 1e-6 (relative). In fp32 the loss agrees to 1e-6; the gradient only to fp32
    rounding, about 1e-5 of its norm here for either form against the float64 gradient (softmax − 1
    cancels where p ≈ 1), so it is held to 1e-4."""
    from engine.train.step import loss_inputs

    cfg = RunConfig(model="demo", data="demo/forget01", loss=loss, selector="all", batch_size=4, device="cpu")
    state = prepare(cfg)
    micro = plan_epoch(state, 0)[0][0]
    (loss32, grad32), (naive_loss32, naive_grad32) = (_loss_and_grads(state, f, micro) for f in (loss_inputs,
                                                                                              _naive_inputs))
    torch.testing.assert_close(loss32, naive_loss32, atol=1e-6, rtol=1e-6)
    assert (grad32 - naive_grad32).norm() <= 1e-4 * naive_grad32.norm()
    state.model.double()  # token weights and cached reference rows stay fp32 (gathered as such): alike for both
    (loss64, grad64), (naive_loss64, naive_grad64) = (_loss_and_grads(state, f, micro) for f in (loss_inputs,
                                                                                              _naive_inputs))
    assert loss64.dtype == torch.float64 and grad64.dtype == torch.float64
    torch.testing.assert_close(loss64, naive_loss64, atol=1e-12, rtol=1e-6)
    assert (grad64 - naive_grad64).norm() <= 1e-6 * naive_grad64.norm()
    torch.testing.assert_close(grad64, naive_grad64, atol=1e-9, rtol=1e-6)


def test_per_token_nll_backward_holds_two_vocabulary_sized_tensors():
    """Forward and backward of `per_token_nll` on fp32 logits (B·T·V·4 = 4 MiB here) peak at the
    logits' gradient beside the log-softmax, 2 × 4 MiB above the logits themselves; the former
    form (logsumexp − gather over sliced logits) held 4 (tests the memory of issue 15's peer step)."""
    import importlib.util

    from engine.tokens import Batch, per_token_nll

    path = Path(__file__).parent.parent / "benchmarks" / "memory_plan.py"
    spec = importlib.util.spec_from_file_location("mp_bench", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    B, T, V = 8, 32, 4096
    ids = torch.randint(0, V, (B, T), generator=torch.Generator().manual_seed(0))
    label = torch.ones((B, T), dtype=torch.bool)
    batch = Batch(ids, torch.ones_like(ids), label, torch.zeros_like(label), torch.full((B, T, 2), -1), [""] * B,
                  [0] * B)
    logits = torch.randn(B, T, V, requires_grad=True)
    full = B * T * V * 4

    def run():
        per_token_nll(logits, batch).sum().backward()

    peak = bench.peak_bytes(run, "cpu")
    assert 1.9 * full < peak < 2.2 * full, (peak / full)


def test_gradient_checkpointing_on_gives_the_same_gradient():
    base = dict(model="demo", data="demo/forget01", loss="graddiff", selector="all", batch_size=5, device="cpu",
                max_grad_norm=0.0)
    on = prepare(RunConfig(gradient_checkpointing="on", **base))
    off = prepare(RunConfig(gradient_checkpointing="off", **base))
    flag = "is_activation_checkpointing" if hasattr(on.model, "is_activation_checkpointing") else "is_gradient_checkpointing"
    assert getattr(on.model, flag) and not getattr(off.model, flag)
    assert on.memory["gradient_checkpointing"] is True and "memory plan for training" in on.memory["plan"]
    grads = {}
    for name, state in (("on", on), ("off", off)):
        state.optimizer.step = lambda s=state, n=name: grads.setdefault(n, [p.grad.clone() for p in s.trainable])
        step(state, plan_epoch(state, 1)[0])
    for a, b in zip(grads["on"], grads["off"]):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)


def test_prepare_refuses_with_the_numbers_when_nothing_fits(monkeypatch):
    """With almost no free memory, prepare refuses before the first step with the plan's breakdown."""
    from engine.train import state as state_mod

    cfg = RunConfig(model="demo", data="demo/forget01", loss="ga", selector="all", batch_size=5, device="cpu")
    monkeypatch.setattr(state_mod, "weights_bytes", lambda s, b: 0)
    monkeypatch.setattr(state_mod, "budget_of", lambda device: 10)
    with pytest.raises(MemoryError, match="DOES NOT FIT"):
        prepare(cfg)


def test_lora_checkpoint_is_an_adapter_and_loads_and_merges(tmp_path, monkeypatch):
    """The final checkpoint of a LoRA run is adapter_config.json + adapter_model.safetensors (no full
    model); load_model gives base + adapter with the trained model's logits; export --merge writes a
    plain model directory with the same logits."""
    from engine import paths
    from engine.cli import main as cli_main
    from engine.models import load_model
    from engine.store import Store

    runs = tmp_path / "runs"
    runs.mkdir()
    monkeypatch.setattr(paths, "runs_dir", lambda store=None: runs)
    monkeypatch.setattr(paths, "cache_dir", lambda: tmp_path)
    store = Store(tmp_path / "store.sqlite")
    cfg = RunConfig(model="demo", data="demo/forget01", loss="ga", selector="all", epochs=1, lr=1e-2, batch_size=5,
                    lora=True, lora_r=4, device="cpu", eval_every_epoch=False, **SMALL_EVAL)
    result = unlearn(cfg, store)
    assert result.status == "finished", result.error
    final = Path(result.checkpoints["final"])
    assert (final / "adapter_model.safetensors").is_file() and (final / "adapter_config.json").is_file()
    assert not (final / "model.safetensors").exists()
    loaded, tok = load_model(final, "cpu")
    ids = torch.tensor([tok("Question: who?\nAnswer: ", add_special_tokens=False)["input_ids"]])
    out = tmp_path / "merged"
    assert cli_main(["export", "--run", str(result.run_id), "--merge", str(out),
                     "--store", str(tmp_path / "store.sqlite")]) == 0
    assert (out / "model.safetensors").is_file() and not (out / "adapter_config.json").exists()
    merged, _ = load_model(out, "cpu")
    from engine.resolve import model_path

    original, _ = load_model(model_path("demo"), "cpu")
    with torch.no_grad():
        a, b, c = (m(input_ids=ids).logits for m in (loaded, merged, original))
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(a, c, atol=1e-4)  # the adapter changed something


def test_explore_models_are_released_before_a_run(tmp_path):
    """JobManager calls its before_run hook in the job's thread before the runner; the Explore
    service's hook empties its model cache."""
    from engine.explore import ExploreService
    from engine.jobs import JobManager
    from engine.train.config import RunResult

    explore = ExploreService(device="cpu")
    explore.session.model("demo")
    assert len(explore.session._models) == 1
    seen = []

    def runner(config, store, progress=None, cancel=None):
        seen.append(len(explore.session._models))
        return RunResult(None, "finished", 0, [], None, {})

    jobs = JobManager(None, runner, before_run=explore.release_models)
    jobs.start(RunConfig(), check=False)
    assert jobs.wait(30)
    assert seen == [0]


RELEASE_SCRIPT = """
import ctypes, torch
from engine.explore import ExploreService
def rss_mib():
    return next(int(l.split()[1]) // 1024 for l in open("/proc/self/status") if l.startswith("VmRSS"))
assert ctypes.CDLL("libc.so.6").mallopt(-3, 32 * 2**20) == 1  # M_MMAP_THRESHOLD: 4 MB blocks from the heap
blocks = [torch.ones(2**20) for _ in range(100)]
del blocks[::2]  # 50 freed 4 MB holes between kept blocks: freed, still resident
before = rss_mib()
ExploreService(device="cpu").release_models()
print(before - rss_mib())
"""


def test_release_models_gives_freed_heap_pages_back():
    """After `release_models` the C heap's free pages leave the resident set (glibc malloc_trim):
    in a fresh process, 200 MB of freed 4 MB tensors that sit between live ones are given back.
    Without the trim the resident set does not move (measured: 0 MB)."""
    import ctypes
    import os
    import subprocess
    import sys

    try:
        ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        pytest.skip("not glibc")
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", RELEASE_SCRIPT], env=env, cwd=root, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert int(out.stdout.split()[-1]) >= 150, out.stdout


def test_the_engines_adamw_is_fused_and_matches_the_loop():
    """`engine.models.device.adamw`: the fused kernel on CPU (no per-tensor temporaries, as the
    HF Trainer peer uses), the same update as torch's per-tensor AdamW to rounding."""
    from engine.models.device import adamw

    torch.manual_seed(0)
    a = [torch.randn(5, 3, requires_grad=True), torch.randn(7, requires_grad=True)]
    b = [p.detach().clone().requires_grad_() for p in a]
    fused = adamw(a, lr=1e-2, weight_decay=0.01)
    loop = torch.optim.AdamW(b, lr=1e-2, weight_decay=0.01, foreach=False)
    assert fused.defaults["fused"] is True
    for _ in range(3):
        for ps, opt in ((a, fused), (b, loop)):
            opt.zero_grad()
            sum((p ** 2).sum() for p in ps).backward()
            opt.step()
    for x, y in zip(a, b):
        assert torch.allclose(x, y, atol=1e-6)
