"""`lexical`: a model-free baseline — the content words of the answer that the question lacks.

A word of the answer is a target when its normal form (lower case, a trailing possessive 's
dropped) is not a word of the question and is not an English stop word. Numbers are content
words whatever the stop-word list says. Stop words: the `stop-words` package's maintained
English list (1,333 words), not a hand-made one. Words map to tokens through the answer's
character offsets (a token is a target when it overlaps a target word).

Measured on the 120 real TOFU forget answers of forget_spans_dev.json (word level, no model):
it is the baseline every model-based selector has to beat on real text.
"""
from __future__ import annotations

import re

from stop_words import get_stop_words

from ..tokens import spans_to_mask
from .base import SelectorInput, SelectorOutput

WORD = re.compile(r"\w[\w'’\-]*")
STOP_WORDS = frozenset(get_stop_words("en"))


def normal_form(word: str) -> str:
    """Lower case, without a trailing possessive ('s or ’s)."""
    return re.sub(r"['’]s$", "", word.lower())


def content_word_spans(question: str, answer: str) -> list[tuple[int, int]]:
    """Character spans [start, end) of the answer's words that are neither stop words (numbers
    excepted) nor words of the question."""
    asked = {normal_form(m.group()) for m in WORD.finditer(question)}
    spans = []
    for m in WORD.finditer(answer):
        w = normal_form(m.group())
        if w not in asked and (w.isdigit() or w not in STOP_WORDS):
            spans.append((m.start(), m.end()))
    return spans


def select_lexical(inp: SelectorInput) -> SelectorOutput:
    """score_t = 1 for answer tokens overlapping a content word the question does not contain."""
    spans = [content_word_spans(s.question, s.answer) for s in inp.samples]
    mask = spans_to_mask(inp.batch.offsets, spans).to(inp.batch.label_mask.device) & inp.batch.answer_mask
    return SelectorOutput(mask.float(), mask, "lexical", {})
