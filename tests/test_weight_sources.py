"""A new learned-weight method and a new selector are each one definition plus one registry line:
test-only toys registered that way, run through a real short `unlearn`."""
from __future__ import annotations

import pytest
import torch

from engine.selectors import SELECTORS
from engine.selectors.base import SelectorInput, SelectorOutput
from engine.store import Store
from engine.tokens import Batch, encode_samples, iter_batches, label_rows
from engine.train import RunConfig, unlearn
from engine.weights import LEARNED_WEIGHTS, WeightSource


class RampWeights(WeightSource):
    """Toy learned weights: every answer token weighs 0.5 + 0.25·(model steps so far), capped at 1."""

    name = "ramp"

    def __init__(self, tokenizer, samples):
        self.tokenizer, self.samples, self.level, self.seen = tokenizer, samples, 0.5, []

    @classmethod
    def create(cls, config, model, tokenizer, samples, device, accelerator=None) -> "RampWeights":
        return cls(tokenizer, samples)

    def for_batch(self, indices: list[int], batch: Batch) -> torch.Tensor:
        self.seen.append(self.level)
        return batch.answer_mask.float() * self.level  # (B, T)

    def targets(self) -> list[torch.Tensor]:
        rows = []
        for chunk in iter_batches(self.samples, 64):
            batch = encode_samples(self.tokenizer, chunk)
            rows += label_rows(batch.answer_mask, batch)
        return rows

    def after_step(self, step: int) -> dict:
        self.level = min(1.0, self.level + 0.25)
        return {"ramp_level": self.level}


def select_first_token(inp: SelectorInput) -> SelectorOutput:
    """Toy selector: the first answer token of each sample."""
    ans = inp.batch.answer_mask  # (B, T)
    first = ans & (ans.cumsum(1) == 1)  # (B, T)
    return SelectorOutput(first.float(), first, "first_token")


@pytest.fixture()
def store(tmp_path, monkeypatch):
    from engine import paths

    monkeypatch.setattr(paths, "runs_dir", lambda store=None: tmp_path / "runs")
    return Store(tmp_path / "store.sqlite")


SHORT = dict(model="demo", data="demo/forget01", loss="ga", batch_size=5, epochs=1, lr=1e-3, device="cpu",
             save_checkpoints=False, retain_eval_size=4, eval_max_new_tokens=2)


def test_a_learned_weight_method_is_one_class_plus_one_registry_line(store, monkeypatch):
    made = []

    class Recorded(RampWeights):
        @classmethod
        def create(cls, *args, **kwargs):
            made.append(super().create(*args, **kwargs))
            return made[-1]

    monkeypatch.setitem(LEARNED_WEIGHTS, "ramp", Recorded)  # the one registry line
    result = unlearn(RunConfig(selector="ramp", **SHORT), store)
    assert result.status == "finished", result.error
    (source,) = made
    assert source.seen == [0.5, 0.75]  # forget01 in batches of 5: two steps, each after the ramp's update
    assert source.level == 1.0
    assert result.history[-1]["target_fraction"] == 1.0  # its targets() fed the evaluation
    assert result.scorer_path is None  # nothing kept for a later selector


def test_a_selector_is_one_function_plus_one_registry_line(store, monkeypatch):
    monkeypatch.setitem(SELECTORS, "first_token", select_first_token)  # the one registry line
    result = unlearn(RunConfig(selector="first_token", **SHORT), store)
    assert result.status == "finished", result.error
    m = result.history[-1]
    assert 0 < m["target_fraction"] < 0.5  # one token per answer is a target
    assert m["target_prob_drop"] > m["nontarget_prob_drop"]
