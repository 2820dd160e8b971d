"""Character spans of an answer and their mapping to label positions by token offsets.

A label position is one answer token or the closing EOS (see `engine.tokens.encode`). Each
position has the character offsets (start, end) of its token inside the answer; the EOS has
(-1, -1) and is never inside a span. A token (a, b) is inside span [s, e) when a < e and b > s
(SPEC §1, the same rule as `engine.tokens.spans_to_mask`).
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..tokens import encode_samples, iter_batches, label_rows

Offsets = Sequence[tuple[int, int]]  # one (start, end) per label position of one sample

WORD = re.compile(r"\w[\w'’\-]*")  # a word: as the `lexical` selector reads words


@dataclass(frozen=True)
class CharSpan:
    """Characters [start, end) of an answer, with an optional span type (None: untyped)."""

    start: int
    end: int
    type: str | None = None

    def to_json(self) -> dict:
        row: dict[str, Any] = {"start": self.start, "end": self.end}
        if self.type is not None:
            row["type"] = self.type
        return row


def as_char_span(span: Any) -> CharSpan:
    """A CharSpan from a CharSpan, an `engine.data.Span`, a (start, end[, type]) tuple or a
    {start, end[, type]} dict."""
    if isinstance(span, CharSpan):
        return span
    if isinstance(span, dict):
        return CharSpan(int(span["start"]), int(span["end"]), span.get("type"))
    if isinstance(span, (tuple, list)):
        return CharSpan(int(span[0]), int(span[1]), span[2] if len(span) > 2 else None)
    return CharSpan(int(span.start), int(span.end), getattr(span, "type", None))


def label_offsets(tokenizer, samples, batch_size: int = 64,
                  max_length: int | None = None) -> list[list[tuple[int, int]]]:
    """Per sample, the (start, end) offsets of its label positions; (-1, -1) for the closing EOS.
    max_length: as `engine.tokens.encode` (default: the tokenizer's model context)."""
    rows: list[list[tuple[int, int]]] = []
    for chunk in iter_batches(list(samples), batch_size):
        batch = encode_samples(tokenizer, chunk, max_length)
        starts = label_rows(batch.offsets[..., 0], batch)
        ends = label_rows(batch.offsets[..., 1], batch)
        rows += [list(zip(s.tolist(), e.tolist())) for s, e in zip(starts, ends)]
    return rows


def is_answer_token(offset: tuple[int, int]) -> bool:
    """True for an answer token, False for the closing EOS (offsets (-1, -1))."""
    return offset[0] >= 0


def overlaps(offset: tuple[int, int], start: int, end: int) -> bool:
    """Token (a, b) overlaps [start, end): a < end and b > start (never the EOS)."""
    return offset[0] >= 0 and offset[0] < end and offset[1] > start


def spans_to_label_mask(offsets: Offsets, spans: Sequence[Any]) -> list[bool]:
    """One bool per label position: True where the token overlaps any of the spans."""
    bounds = [(s.start, s.end) for s in map(as_char_span, spans)]
    return [any(overlaps(o, s, e) for s, e in bounds) for o in offsets]


def label_mask_to_spans(offsets: Offsets, mask: Sequence[Any], answer: str) -> list[CharSpan]:
    """Character spans of a label mask: each run of consecutive target tokens becomes one span from
    its first token's start to its last token's end, with whitespace trimmed at both edges (byte-
    level tokens carry their leading space); spans left empty are dropped. The EOS is ignored."""
    spans: list[CharSpan] = []
    run: list[tuple[int, int]] = []
    for o, m in list(zip(offsets, mask)) + [((-1, -1), False)]:
        if m and is_answer_token(o):
            run.append(o)
            continue
        if run:
            s, e = run[0][0], run[-1][1]
            while s < e and answer[s].isspace():
                s += 1
            while e > s and answer[e - 1].isspace():
                e -= 1
            if s < e:
                spans.append(CharSpan(s, e))
            run = []
    return spans


def word_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of every word of `text` (letters, digits, inner apostrophes and hyphens)."""
    return [(m.start(), m.end()) for m in WORD.finditer(text)]


def check_mask_lengths(masks: Sequence[Sequence[Any]], offsets: Sequence[Offsets], what: str) -> None:
    """ValueError naming the first sample whose mask length differs from its label positions."""
    if len(masks) != len(offsets):
        raise ValueError(f"{what}: {len(masks)} masks for {len(offsets)} samples")
    for i, (m, o) in enumerate(zip(masks, offsets)):
        if len(m) != len(o):
            raise ValueError(f"{what}: sample {i} has {len(m)} positions, its tokenisation has {len(o)} label "
                             f"positions (a mask made for another tokenizer or text?)")
