"""engine/explore/ (the app's selector score cache), engine/selectors/mask_rules.py and engine/jobs.py
(background runs), no Gradio."""
from __future__ import annotations

import threading
import time

import pytest

from engine.explore import ExploreService, SelectorRow, apply_mask_rule
from engine.jobs import JobManager, RunBusy, preflight
from engine.selectors import SELECTORS
from engine.selectors.mask_rules import mask_by_rule
from engine.store import Store
from engine.train import RunConfig, RunResult
from tokenviz import EOS_DISPLAY, display_tokens


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """A workbench home without ATWU scorers (so `atwu` is unavailable), sharing the built-in models."""
    from benchmarks.harness import isolated_home

    with isolated_home(tmp_path_factory.mktemp("home")) as h:
        yield h


@pytest.fixture(scope="module")
def svc(home):
    return ExploreService(device="cpu", chunk_size=8)


def test_view_has_a_row_per_registered_selector_on_label_positions(svc):
    view = svc.view("demo", "demo", "forget", 3)
    info = view.info
    assert list(view.rows) == list(SELECTORS)
    n = len(info.tokens)
    shown = display_tokens(info.tokens, info.eos)
    assert shown[-1] == EOS_DISPLAY and info.answer_mask[-1] is False and all(info.answer_mask[:-1])
    assert "".join(shown[:-1]) == info.answer  # display strings rebuild the answer exactly
    assert len(info.probs) == n and all(0.0 < p <= 1.0 for p in info.probs)
    assert info.spans is not None and len(info.spans) == n and any(info.spans) and not info.spans[-1]
    ok_rows = [r for r in view.rows.values() if r.ok]
    assert {"all", "oracle"} <= {r.name for r in ok_rows}
    for row in ok_rows:
        assert len(row.scores) == n and len(row.mask) == n, row.name
        assert row.mask[-1] is False, f"{row.name} targets the EOS"
    assert view.rows["oracle"].mask == info.spans


def test_unavailable_selectors_carry_their_message_instead_of_raising(svc):
    view = svc.view("demo", "demo", "world_facts", 0, selectors=["oracle", "atwu", "all"])
    assert view.info.spans is None
    assert not view.rows["oracle"].ok and "spans" in view.rows["oracle"].error
    assert not view.rows["atwu"].ok and "scorer" in view.rows["atwu"].error
    assert view.rows["all"].ok


def test_scores_are_cached_per_chunk_and_forgotten_on_request(svc, monkeypatch):
    import engine.selectors as selectors

    calls = []
    real = selectors.select
    monkeypatch.setattr(selectors, "select", lambda name, *a, **k: calls.append(name) or real(name, *a, **k))
    svc.forget()
    svc.selector_row("demo", "demo", "forget", 0, "wga")
    svc.selector_row("demo", "demo", "forget", 1, "wga")  # same chunk of 8
    assert calls == ["wga"]
    svc.selector_row("demo", "demo", "forget", 9, "wga")  # next chunk
    svc.selector_row("demo", "demo", "forget", 0, "wga", {"beta": 2.0})  # other params
    assert calls == ["wga", "wga", "wga"]
    svc.forget("wga")
    svc.selector_row("demo", "demo", "forget", 0, "wga")
    assert len(calls) == 4


def test_mask_rules_never_pick_the_eos_and_respect_k_and_threshold():
    row = SelectorRow("x", scores=[0.1, 0.9, 0.5, 0.7, 5.0], mask=[False, True, False, False, False])
    allowed = [True, True, True, True, False]  # the last position is the EOS
    assert apply_mask_rule(row, allowed, "default") == row.mask
    assert apply_mask_rule(row, allowed, "top-k", 2) == [False, True, False, True, False]
    assert apply_mask_rule(row, allowed, "top-k", 10) == allowed
    # normalised over answer tokens: 0.1 -> 0, 0.9 -> 1, 0.5 -> 0.5, 0.7 -> 0.75
    assert apply_mask_rule(row, allowed, "threshold", threshold=0.6) == [False, True, False, True, False]
    assert apply_mask_rule(SelectorRow("e", error="nope"), allowed) is None
    with pytest.raises(ValueError, match="unknown mask rule"):
        apply_mask_rule(row, allowed, "bottom-k")


def test_mask_rules_work_on_plain_lists_and_the_service_applies_them_to_every_row(svc):
    scores, default, allowed = [0.1, 0.9, 0.5, 0.7, 5.0], [False, True, False, False, False], [True] * 4 + [False]
    assert mask_by_rule(scores, default, allowed, "default") == default
    assert mask_by_rule(scores, default, allowed, "top-k", 1) == [False, True, False, False, False]
    assert mask_by_rule(scores, default, allowed, "top-k", 0) == [False, True, False, False, False]  # k >= 1
    assert mask_by_rule([2.0] * 5, default, allowed, "threshold", threshold=1.0) == allowed  # constant row: all
    assert mask_by_rule(scores, default, [False] * 5, "threshold") == [False] * 5
    view = svc.view("demo", "demo", "world_facts", 0, selectors=["oracle", "all"])
    masks = svc.masks(view, "top-k", 2)
    assert masks["oracle"] is None  # no spans on world_facts: the row carries its error
    assert masks["all"] == apply_mask_rule(view.rows["all"], view.info.answer_mask, "top-k", 2)
    assert sum(masks["all"]) == 2 and masks["all"][-1] is False


def test_the_engine_returns_raw_tokens_and_never_imports_tokenviz():
    import subprocess
    import sys

    code = ("import sys, engine.explore, engine.eval.reference_points, engine.selectors.mask_rules; "
            "sys.exit('tokenviz' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_default_masks_cover_every_forget_sample_without_eos(svc):
    masks = svc.default_masks("demo", "demo/forget01", "oracle")
    samples = svc.samples("demo/forget01", "forget")
    assert set(masks) == {s.uid for s in samples}
    for uid, (text_hash, mask) in masks.items():
        assert len(text_hash) == 16 and set(mask) <= {0, 1} and mask[-1] == 0
    assert any(any(m) for _, m in masks.values())
    with pytest.raises(ValueError, match="scorer"):
        svc.default_masks("demo", "demo/forget01", "atwu")


def test_search_and_index_errors(svc):
    samples = svc.samples("demo", "forget")
    hits = svc.search("demo", "forget", "porto")
    assert hits and all("porto" in (samples[i].question + samples[i].answer).lower() for i in hits)
    assert svc.search("demo", "forget", "") == list(range(len(samples)))
    assert svc.search("demo", "forget", "zzz-no-such-text") == []
    with pytest.raises(IndexError, match="out of range"):
        svc.info("demo", "demo", "forget", len(samples))


# ---------------------------------------------------------------- jobs

def _fake_runner(gate: threading.Event, steps: int = 3):
    """A stand-in for engine.train.unlearn: reports steps, waits on `gate`, honours cancel."""
    def run(config, store, progress=None, cancel=None):
        for s in range(1, steps + 1):
            progress({"run_id": 7, "phase": "train", "step": s, "total_steps": steps, "epoch": 1, "loss": 1.0 / s,
                      "metrics": None})
            while not gate.is_set():
                if cancel.is_set():
                    return RunResult(7, "cancelled", 0, [], None, {})
                time.sleep(0.01)
        return RunResult(7, "finished", 1, [], None, {})
    return run


def _wait_for(predicate, timeout=10.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


def test_one_run_at_a_time_and_cancel(tmp_path):
    gate = threading.Event()
    jobs = JobManager(Store(tmp_path / "s.sqlite"), runner=_fake_runner(gate))
    snap = jobs.start(RunConfig(epochs=1), check=False)
    assert snap.state == "starting" and snap.job == 1
    assert _wait_for(lambda: jobs.snapshot().step == 1)
    s = jobs.snapshot()
    assert (s.state, s.run_id, s.total_steps, s.loss) == ("running", 7, 3, 1.0)
    with pytest.raises(RunBusy, match="one run at a time"):
        jobs.start(RunConfig(epochs=1), check=False)
    assert jobs.cancel() is True
    assert jobs.wait(10)
    assert jobs.snapshot().state == "cancelled"
    assert jobs.cancel() is False
    gate.set()
    jobs.start(RunConfig(epochs=1), check=False)  # a finished job frees the slot
    assert jobs.wait(10)
    s = jobs.snapshot()
    assert (s.state, s.job, s.step) == ("finished", 2, 3)


def test_a_runner_exception_is_reported_not_raised(tmp_path):
    def broken(config, store, progress=None, cancel=None):
        raise ValueError("mask set 'x' marks no tokens")
    jobs = JobManager(Store(tmp_path / "s.sqlite"), runner=broken)
    jobs.start(RunConfig(), check=False)
    assert jobs.wait(10)
    s = jobs.snapshot()
    assert s.state == "failed" and "marks no tokens" in s.error and not s.active


def test_preflight_names_what_a_person_got_wrong(home, tmp_path):
    import shutil

    store = Store(tmp_path / "s.sqlite")
    only_forget = tmp_path / "tofu"
    only_forget.mkdir()
    shutil.copy(home / "builtin" / "data" / "forget01.json", only_forget / "forget01.json")
    with pytest.raises(ValueError, match="needs retain data"):
        preflight(RunConfig(data=str(only_forget), loss="graddiff"), store)
    preflight(RunConfig(data=str(only_forget), loss="ga"), store)  # no retain term: fine
    with pytest.raises(ValueError, match="no such model directory"):
        preflight(RunConfig(model=str(tmp_path / "nowhere")), store)
    with pytest.raises(ValueError, match="unknown loss"):
        preflight(RunConfig(loss="nope"), store)
    with pytest.raises(ValueError, match="no mask set"):
        preflight(RunConfig(mask_set="missing"), store)
    store.create_mask_set("empty", "demo", "demo/forget01", "fp", masks={"forget01:1": ("h", [0, 0, 0])})
    with pytest.raises(ValueError, match="empty"):
        preflight(RunConfig(mask_set="empty", data="demo/forget01"), store)
    store.create_mask_set("other", "demo", "demo/forget01", "fp", masks={"forget01:1": ("h", [1, 0, 0])})
    with pytest.raises(ValueError, match="covers none"):
        preflight(RunConfig(mask_set="other", data="demo/forget05"), store)
