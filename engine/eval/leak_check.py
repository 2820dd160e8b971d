"""The leak check on a model: its greedy answers to every sample's question, checked against the
sample's target spans (the matching and the rates: engine.masks.leak_check)."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..masks.leak_check import LeakReport, leak_rows, summarise, target_texts
from .metrics import greedy_generate


def leak_check(model, tokenizer, samples, spans_per_sample: Sequence[Sequence[Any]], max_new_tokens: int = 64,
               batch_size: int = 32) -> LeakReport:
    """Greedy answers of `model` to every sample's question, checked against the target spans."""
    if len(spans_per_sample) != len(samples):
        raise ValueError(f"leak check: {len(spans_per_sample)} span lists for {len(samples)} samples")
    questions = [s.question for s in samples]
    generations = greedy_generate(model, tokenizer, questions, max_new_tokens=max_new_tokens, batch_size=batch_size)
    targets = [target_texts(s.answer, spans) for s, spans in zip(samples, spans_per_sample)]
    return summarise(leak_rows(questions, generations, targets))
