"""Live accuracy of a mask set against ground-truth character spans: precision, recall and F1,
token level and word level, overall and per span type. Pure Python, no model.

Token level: the units are answer tokens (label positions without the closing EOS); a token is
a positive when it overlaps a span (a < e and b > s) and predicted when the mask marks it.
Word level: the units are the answer's words (`spans.WORD`); a word is a positive when it
overlaps a span and predicted when any of its tokens is marked. Words no token covers (past the
end of an answer cut to fit the model's context) are left out: no mask can reach them.
Per span type t: the units are those of type t (overlapping a type-t span) plus those of no
span; units of other types only are left out, neither right nor wrong (a mask carries no types).
Untyped spans (type None) count overall and in no type's row.

precision = TP/(TP+FP), recall = TP/(TP+FN), F1 = 2PR/(P+R); each None when its denominator is 0.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .spans import (
    Offsets,
    as_char_span,
    check_mask_lengths,
    is_answer_token,
    overlaps,
    word_spans,
)


@dataclass
class Counts:
    """True positives, false positives and false negatives, with P/R/F1 from them."""

    tp: int = 0
    fp: int = 0
    fn: int = 0

    @classmethod
    def of_arrays(cls, pred, truth) -> "Counts":
        """Counts of two aligned 0/1 arrays (numpy or anything `np.asarray` takes)."""
        pred, truth = np.asarray(pred).astype(bool), np.asarray(truth).astype(bool)
        return cls(int((pred & truth).sum()), int((pred & ~truth).sum()), int((~pred & truth).sum()))

    def add(self, predicted: bool, positive: bool) -> None:
        self.tp += predicted and positive
        self.fp += predicted and not positive
        self.fn += positive and not predicted

    @property
    def precision(self) -> float | None:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else None

    @property
    def recall(self) -> float | None:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else None

    @property
    def f1(self) -> float | None:
        p, r = self.precision, self.recall
        if p is None or r is None:
            return None
        return 0.0 if p + r == 0 else 2 * p * r / (p + r)

    def to_dict(self) -> dict:
        return {"tp": self.tp, "fp": self.fp, "fn": self.fn, "precision": self.precision,
                "recall": self.recall, "f1": self.f1}


@dataclass
class MaskAccuracy:
    """Overall token and word counts, and the same per span type."""

    token: Counts = field(default_factory=Counts)
    word: Counts = field(default_factory=Counts)
    token_by_type: dict[str, Counts] = field(default_factory=dict)
    word_by_type: dict[str, Counts] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"token": self.token.to_dict(), "word": self.word.to_dict(),
                "by_type": {t: {"token": self.token_by_type[t].to_dict(), "word": self.word_by_type[t].to_dict()}
                            for t in sorted(self.token_by_type)}}


def _count(acc_all: Counts, by_type: dict[str, Counts], types: list[str], predicted: bool, unit_types: set) -> None:
    """Add one unit (token or word) with the set of span types it overlaps (None = untyped)."""
    acc_all.add(predicted, bool(unit_types))
    for t in types:
        if t in unit_types:
            by_type[t].add(predicted, True)
        elif not unit_types:
            by_type[t].add(predicted, False)


def mask_accuracy(answers: Sequence[str], offsets: Sequence[Offsets], masks: Sequence[Sequence[Any]],
                  truth_spans: Sequence[Sequence[Any]]) -> MaskAccuracy:
    """P/R/F1 of per-sample label masks against per-sample ground-truth spans (see module doc).

    answers: the answer texts; offsets: per-sample label offsets (`spans.label_offsets`); masks:
    one 0/1 per label position; truth_spans: per sample, spans as CharSpan, `engine.data.Span`,
    (start, end[, type]) or {start, end[, type]}.
    """
    check_mask_lengths(masks, offsets, "mask accuracy")
    if not len(answers) == len(truth_spans) == len(offsets):
        raise ValueError(f"mask accuracy: {len(answers)} answers, {len(truth_spans)} span lists, {len(offsets)} masks")
    truth = [[as_char_span(s) for s in spans] for spans in truth_spans]
    types = sorted({s.type for spans in truth for s in spans if s.type is not None})
    acc = MaskAccuracy(token_by_type={t: Counts() for t in types}, word_by_type={t: Counts() for t in types})
    for answer, offs, mask, spans in zip(answers, offsets, masks, truth):
        for o, m in zip(offs, mask):
            if is_answer_token(o):
                hit = {s.type for s in spans if overlaps(o, s.start, s.end)}
                _count(acc.token, acc.token_by_type, types, bool(m), hit)
        for ws, we in word_spans(answer):
            if not any(overlaps(o, ws, we) for o in offs):
                continue  # past a truncated answer's last token
            hit = {s.type for s in spans if s.start < we and s.end > ws}
            predicted = any(bool(m) and overlaps(o, ws, we) for o, m in zip(offs, mask))
            _count(acc.word, acc.word_by_type, types, predicted, hit)
    return acc
