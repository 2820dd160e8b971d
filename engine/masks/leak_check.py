"""Leak check: does a model still say the targets? For every forget question, the model's greedy
answer (engine.eval.leak_check runs the model), and whether each target span's text occurs in it.

Target texts per sample: the answer's characters under each span, distinct by normalised form
(a name said twice in the answer counts once); spans whose normalised text is empty (punctuation
only) are dropped. A target leaks exactly when its text occurs verbatim in the generation, and
leaks (normalised) when `phrases.normalise(text)` occurs as whole words in the normalised generation.

leak rate = leaked targets / targets over all samples (normalised match: the headline);
exact leak rate the same with the exact match; sample leak rate = samples with ≥ 1 normalised
leak / samples with ≥ 1 target. Each is None when there is no target.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .phrases import contains_exact, contains_normalised, normalise
from .spans import as_char_span


@dataclass
class LeakRow:
    """One forget sample: its question, the model's greedy answer and each target's two matches."""

    index: int
    question: str
    generation: str
    targets: list[str]
    exact: list[bool]
    normalised: list[bool]

    @property
    def leaked(self) -> int:
        return sum(self.normalised)

    def to_dict(self) -> dict:
        return {"index": self.index, "question": self.question, "generation": self.generation,
                "targets": self.targets, "exact": self.exact, "normalised": self.normalised,
                "n_targets": len(self.targets), "n_leaked_exact": sum(self.exact), "n_leaked": self.leaked}


@dataclass
class LeakReport:
    rows: list[LeakRow]
    leak_rate: float | None
    exact_leak_rate: float | None
    sample_leak_rate: float | None

    def to_dict(self) -> dict:
        return {"leak_rate": self.leak_rate, "exact_leak_rate": self.exact_leak_rate,
                "sample_leak_rate": self.sample_leak_rate, "rows": [r.to_dict() for r in self.rows]}


def target_texts(answer: str, spans: Sequence[Any]) -> list[str]:
    """The answer's text under each span, distinct by normalised form, empty ones dropped."""
    texts, seen = [], set()
    for sp in map(as_char_span, spans):
        text = answer[sp.start:sp.end].strip()
        key = normalise(text)
        if key and key not in seen:
            seen.add(key)
            texts.append(text)
    return texts


def leak_rows(questions: Sequence[str], generations: Sequence[str], targets: Sequence[Sequence[str]]) -> list[LeakRow]:
    """Per-sample rows from fixed generations (no model): exact and normalised match per target."""
    if not len(questions) == len(generations) == len(targets):
        raise ValueError(f"leak rows: {len(questions)} questions, {len(generations)} generations, "
                         f"{len(targets)} target lists")
    return [LeakRow(i, q, g, list(ts), [contains_exact(g, t) for t in ts], [contains_normalised(g, t) for t in ts])
            for i, (q, g, ts) in enumerate(zip(questions, generations, targets))]


def summarise(rows: list[LeakRow]) -> LeakReport:
    """The three rates of the module docstring over the rows."""
    n = sum(len(r.targets) for r in rows)
    with_targets = [r for r in rows if r.targets]
    return LeakReport(rows,
                      sum(r.leaked for r in rows) / n if n else None,
                      sum(sum(r.exact) for r in rows) / n if n else None,
                      sum(r.leaked > 0 for r in with_targets) / len(with_targets) if with_targets else None)
