"""Review queue order: summed vote entropy, ties by current mask size (smaller first), then index."""
from __future__ import annotations

import math

import pytest

from engine.masks import next_to_review, review_queue, sample_disagreement, vote_entropy

H_THIRD = -(1 / 3) * math.log2(1 / 3) - (2 / 3) * math.log2(2 / 3)  # 0.918296 bits

DEFAULTS = {  # three selectors' default masks over label positions (last = EOS)
    "a": [[1, 0, 0], [1, 1, 0], [1, 0, 0, 0], [0, 1, 0], [0, 1, 0]],
    "b": [[0, 0, 0], [1, 1, 0], [0, 1, 0, 0], [0, 0, 0], [0, 0, 0]],
    "c": [[1, 1, 0], [1, 1, 0], [0, 0, 1, 0], [1, 1, 0], [1, 1, 0]],
}
CURRENT = [[1, 1, 0], [0, 0, 0], [1, 0, 0, 0], [1, 0, 0], [0, 1, 0]]


def test_vote_entropy_by_hand():
    assert vote_entropy([[1, 0, 1], [0, 0, 1]]) == [1.0, 0.0, 0.0]
    assert vote_entropy([[1], [0], [0]])[0] == pytest.approx(0.918296, abs=1e-6)


def test_sample_disagreement_by_hand():
    d = sample_disagreement(DEFAULTS)
    assert d == pytest.approx([2 * H_THIRD, 0.0, 3 * H_THIRD, 2 * H_THIRD, 2 * H_THIRD])


def test_queue_order_ties_by_smaller_mask_then_index():
    queue = review_queue(DEFAULTS, CURRENT)
    # 2 (2.75 bits) first; 0, 3, 4 tie at 1.84 bits: sizes 2, 1, 1 -> 3, 4 (index), then 0; 1 (0 bits) last
    assert [it.index for it in queue] == [2, 3, 4, 0, 1]
    assert [it.mask_size for it in queue] == [1, 1, 1, 2, 0]


def test_accept_and_next():
    queue = review_queue(DEFAULTS, CURRENT)
    assert next_to_review(queue, set()) == 2
    assert next_to_review(queue, {2, 3}) == 4
    assert next_to_review(queue, {0, 1, 2, 3, 4}) is None


def test_mismatched_inputs_are_errors():
    with pytest.raises(ValueError, match="different numbers of samples"):
        sample_disagreement({"a": [[0]], "b": [[0], [1]]})
    with pytest.raises(ValueError, match="current masks"):
        review_queue(DEFAULTS, CURRENT[:2])
