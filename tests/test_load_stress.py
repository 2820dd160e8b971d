"""Issue 25, point 2: model loading is safe under concurrency.

Root cause of "builtin/target: 1 weight(s) missing: lm_head.weight" when a run started while
Explore loaded models: transformers' `from_pretrained` swaps process-wide globals while it builds a
model (`no_tie_weights` replaces `PreTrainedModel.tie_weights` by a no-op and restores what it
found on entry), so two overlapping loads leave the no-op in place and every later load of a
tied-embedding model comes back untied, 'missing' its head. `engine.models.loading.model_loading`
is one process-wide lock around every load, and puts such globals back.
"""
from __future__ import annotations

import threading

import pytest
import torch


def test_two_overlapping_transformers_loads_leave_tie_weights_disabled_and_model_loading_repairs_it(builtin):
    """The race, replayed deterministically: A enters, B enters, A leaves, B leaves (B restores the
    no-op it found). Without repair the next load reports lm_head.weight missing; with
    `model_loading` (every load_model) the global is put back and the model loads tied."""
    from transformers import AutoModelForCausalLM
    from transformers import initialization as init
    from transformers.modeling_utils import PreTrainedModel

    from engine.models import load_model

    real = PreTrainedModel.__dict__["tie_weights"]
    load_model(builtin.target, "cpu")  # the loader has seen the real globals
    a, b = init.no_tie_weights(), init.no_tie_weights()
    a.__enter__()
    b.__enter__()
    a.__exit__(None, None, None)
    b.__exit__(None, None, None)
    try:
        assert PreTrainedModel.__dict__["tie_weights"] is not real  # left patched: the bug
        _, info = AutoModelForCausalLM.from_pretrained(str(builtin.target), output_loading_info=True)
        assert info["missing_keys"] == {"lm_head.weight"} or list(info["missing_keys"]) == ["lm_head.weight"]
        model, _ = load_model(builtin.target, "cpu")
        assert PreTrainedModel.__dict__["tie_weights"] is real
        assert model.lm_head.weight.data_ptr() == model.transformer.wte.weight.data_ptr()
    finally:
        PreTrainedModel.tie_weights = real


def test_a_missing_weight_the_checkpoint_holds_is_a_loader_fault_not_the_checkpoint(builtin):
    from engine.cli.errors import describe
    from engine.models import LoaderFault, ModelLoadError
    from engine.models.loading import check_loading_info

    with pytest.raises(LoaderFault, match="not the checkpoint") as info:
        check_loading_info(builtin.target, {"missing_keys": ["transformer.wte.weight"]})
    msg, code = describe(info.value)
    assert code == 1 and "not the checkpoint" in msg
    with pytest.raises(ModelLoadError, match="does not match its config.json"):  # not in the file: blamed
        check_loading_info(builtin.target, {"missing_keys": ["transformer.h.9.mlp.c_fc.weight"]})


REPEATS = 20


def test_a_run_load_against_concurrent_explore_and_compare_loads_never_fails(builtin, one_thread):
    """20 times: the run's load (engine.train's load_model), three Explore sessions and one
    Compare/leak-check load start together; every model comes back whole and tied, with the
    checkpoint's weights. 0 failures allowed."""
    from safetensors.torch import load_file

    from engine.explore.session import Session
    from engine.models import load_model

    want = load_file(str(builtin.target / "model.safetensors"))
    failures: list[str] = []
    loaded: list = []
    lock = threading.Lock()

    def keep(fn):
        try:
            model = fn()
        except Exception as err:  # noqa: BLE001 - every failure is counted, none is expected
            with lock:
                failures.append(f"{type(err).__name__}: {err}")
            return
        with lock:
            loaded.append(model)

    for _ in range(REPEATS):
        barrier = threading.Barrier(5)

        def run_load():
            barrier.wait()
            return load_model(builtin.target, "cpu")[0]

        def explore_load():
            barrier.wait()
            return Session(device="cpu").model(str(builtin.target))[0]

        threads = [threading.Thread(target=keep, args=(run_load,))]
        threads += [threading.Thread(target=keep, args=(explore_load,)) for _ in range(3)]
        threads += [threading.Thread(target=keep, args=(run_load,))]  # Compare / leak check
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert failures == []
    assert len(loaded) == 5 * REPEATS
    for model in loaded[:: max(1, len(loaded) // 10)] + loaded[-3:]:
        assert model.lm_head.weight.data_ptr() == model.transformer.wte.weight.data_ptr()
        state = model.state_dict()
        for name, tensor in want.items():
            assert torch.equal(state[name], tensor), name


def test_five_users_browsing_while_a_run_trains_fail_nothing_and_change_no_number(tmp_path, one_thread):
    """benchmarks/load_test.py, small: 5 gradio_client users on Explore and Compare while a
    1-epoch run trains; no failed request, and the run's per-epoch numbers equal those of the
    same run alone (no timing assertion: the latencies are the benchmark's)."""
    from benchmarks.load_test import run_load_test

    r = run_load_test(users=5, epochs=1, home=tmp_path / "home")
    assert r["requests"] > 0 and r["views"] > 0
    assert r["failed"] == 0, r["failures"]
    assert r["epochs_alone"] and r["identical_epochs"], (r["epochs_alone"], r["epochs_under_load"])
