"""The preferred side of DPO (IdkDPO): each forget question paired with an "I don't know" answer.

The answers are TOFU's `idontknow.jsonl` (engine/data/, MIT, see idontknow.LICENSE): one refusal
sentence a line, as open-unlearning reads it (src/data/qa.py: QAwithIdkDataset). Each forget
sample gets one answer, drawn once per run from Random(seed) in sample order [choice:
open-unlearning draws anew every time a sample is read; a fixed draw lets the reference model's
NLL on it be cached like the forget side's], so the preferred batch of a micro-batch is a pure
function of its forget indices.
"""
from __future__ import annotations

import random
from pathlib import Path

from ..data import Sample
from ..tokens import Batch, encode_samples

IDK_PATH = Path(__file__).resolve().parent.parent / "data" / "idontknow.jsonl"


def idk_answers(path: Path = IDK_PATH) -> list[str]:
    """The non-empty lines of the IDK file, stripped."""
    answers = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not answers:
        raise ValueError(f"{path}: no 'I don't know' answers")
    return answers


def draw_preferred(forget: list[Sample], seed: int, answers: list[str] | None = None) -> list[Sample]:
    """Per forget sample, the same question with an IDK answer drawn from Random(seed)."""
    answers = answers if answers is not None else idk_answers()
    rng = random.Random(seed)
    return [Sample(question=s.question, answer=answers[rng.randrange(len(answers))], uid=s.uid) for s in forget]


def preferred_batch(tokenizer, preferred: list[Sample], indices: list[int]) -> Batch:
    """The preferred batch of the forget micro-batch `indices`: same rows, same order."""
    return encode_samples(tokenizer, [preferred[i] for i in indices])


__all__ = ["IDK_PATH", "draw_preferred", "idk_answers", "preferred_batch"]
