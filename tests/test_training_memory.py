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
