"""Live accuracy: token- and word-level P/R/F1 overall and per span type, values by hand."""
from __future__ import annotations

import pytest

from engine.data import Span
from engine.masks import CharSpan, mask_accuracy

ANSWER = "Elvin was born in Baku."
# hand tokens: "El" "vin" " was" " born" " in" " Ba" "ku" "." <eos>
OFFSETS = [(0, 2), (2, 5), (5, 9), (9, 14), (14, 17), (17, 20), (20, 22), (22, 23), (-1, -1)]
MASK = [1, 0, 0, 1, 0, 0, 1, 0, 0]  # El, born, ku
TRUTH = [Span(0, 5, "name"), Span(18, 22, "place")]


def test_token_and_word_level_by_hand():
    acc = mask_accuracy([ANSWER], [OFFSETS], [MASK], [TRUTH])
    # tokens: facts El vin Ba ku; predicted El born ku -> TP 2 (El, ku), FP 1 (born), FN 2 (vin, Ba)
    assert (acc.token.tp, acc.token.fp, acc.token.fn) == (2, 1, 2)
    assert acc.token.precision == pytest.approx(2 / 3)
    assert acc.token.recall == pytest.approx(1 / 2)
    assert acc.token.f1 == pytest.approx(4 / 7)
    # words: Elvin (TP via El), born (FP), Baku (TP via ku)
    assert (acc.word.tp, acc.word.fp, acc.word.fn) == (2, 1, 0)
    assert acc.word.f1 == pytest.approx(0.8)


def test_per_type_leaves_other_types_out():
    acc = mask_accuracy([ANSWER], [OFFSETS], [MASK], [TRUTH])
    name, place = acc.token_by_type["name"], acc.token_by_type["place"]
    # name: El (TP) vin (FN) + non-fact tokens (born FP); Ba/ku not counted
    assert (name.tp, name.fp, name.fn) == (1, 1, 1)
    assert (place.tp, place.fp, place.fn) == (1, 1, 1)
    w = acc.word_by_type["name"]
    assert (w.tp, w.fp, w.fn) == (1, 1, 0) and w.recall == 1.0


def test_untyped_spans_count_overall_only():
    second = ("Hi Bob", [(0, 2), (2, 6), (-1, -1)], [0, 0, 0], [(3, 6)])  # untyped, missed
    acc = mask_accuracy([ANSWER, second[0]], [OFFSETS, second[1]], [MASK, second[2]], [TRUTH, second[3]])
    assert (acc.token.tp, acc.token.fp, acc.token.fn) == (2, 1, 3)
    assert acc.token.recall == pytest.approx(2 / 5)
    assert sorted(acc.token_by_type) == ["name", "place"]
    assert (acc.token_by_type["name"].tp, acc.token_by_type["name"].fp, acc.token_by_type["name"].fn) == (1, 1, 1)
    assert acc.to_dict()["by_type"]["place"]["token"]["precision"] == 0.5


def test_undefined_ratios_are_none():
    acc = mask_accuracy(["Hi"], [[(0, 2), (-1, -1)]], [[0, 0]], [[CharSpan(0, 2)]])
    assert acc.token.precision is None and acc.token.recall == 0.0 and acc.token.f1 is None


def test_lengths_must_agree():
    with pytest.raises(ValueError, match="sample 0 has 2 positions"):
        mask_accuracy([ANSWER], [OFFSETS], [[0, 1]], [TRUTH])


def test_words_past_a_truncated_answer_are_left_out():
    # "Elvin was born in Baku." cut after " born": words "in" and "Baku" have no token
    offsets = [(0, 2), (2, 5), (5, 9), (9, 14), (-1, -1)]
    acc = mask_accuracy([ANSWER], [offsets], [[1, 1, 1, 1, 0]], [TRUTH])
    assert (acc.word.tp, acc.word.fp, acc.word.fn) == (1, 2, 0)
