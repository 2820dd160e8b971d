"""The review queue: which sample a person should look at next.

Disagreement of a sample = Σ over its label positions of the vote entropy
    H(p_t) = −p_t·log2 p_t − (1 − p_t)·log2(1 − p_t)   (bits, 0·log 0 = 0),
where p_t is the fraction of the given selectors whose default mask marks token t. A token all
selectors agree on adds 0; a 50/50 split adds 1 bit. The closing EOS is never marked, so it adds 0.

Order: most disagreement first; ties (equal to 1e-9 bits) by the current mask's size, SMALLER
first, then by sample index. Why smaller first: among equally disputed samples, the one with
fewer targets is the one more likely to be missing facts, and a missed fact is what still
leaks after the run and what costs forget quality (the README's oracle diagnostic), whereas an
extra target mostly costs a little utility.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ReviewItem:
    """One sample's place in the queue: its index, disagreement (bits) and current target count."""

    index: int
    disagreement: float
    mask_size: int


def binary_entropy(p: float) -> float:
    """H(p) in bits, 0 at p = 0 and p = 1."""
    if p <= 0.0 or p >= 1.0:
        return 0.0
    return -p * math.log2(p) - (1 - p) * math.log2(1 - p)


def vote_entropy(votes: Sequence[Sequence[Any]]) -> list[float]:
    """Per label position, H(fraction of voters marking it). votes: one mask per voter, equal lengths."""
    if not votes:
        raise ValueError("vote entropy needs at least one voter's mask")
    n = len(votes[0])
    if any(len(v) != n for v in votes):
        raise ValueError(f"voters' masks differ in length: {[len(v) for v in votes]}")
    return [binary_entropy(sum(bool(v[t]) for v in votes) / len(votes)) for t in range(n)]


def sample_disagreement(default_masks: Mapping[str, Sequence[Sequence[Any]]]) -> list[float]:
    """Per sample, Σ_t vote entropy over the selectors' default masks ({selector: per-sample masks})."""
    if not default_masks:
        raise ValueError("the review queue needs at least one selector's default masks")
    sizes = {name: len(m) for name, m in default_masks.items()}
    if len(set(sizes.values())) != 1:
        raise ValueError(f"selectors cover different numbers of samples: {sizes}")
    n = next(iter(sizes.values()))
    return [sum(vote_entropy([m[i] for m in default_masks.values()])) for i in range(n)]


def review_queue(default_masks: Mapping[str, Sequence[Sequence[Any]]],
                 current_masks: Sequence[Sequence[Any]]) -> list[ReviewItem]:
    """All samples in review order (see the module docstring): disagreement descending, then
    current mask size ascending, then index."""
    disagreement = sample_disagreement(default_masks)
    if len(current_masks) != len(disagreement):
        raise ValueError(f"{len(current_masks)} current masks for {len(disagreement)} samples")
    items = [ReviewItem(i, d, sum(bool(v) for v in m)) for i, (d, m) in enumerate(zip(disagreement, current_masks))]
    return sorted(items, key=lambda it: (-round(it.disagreement, 9), it.mask_size, it.index))


def next_to_review(queue: Sequence[ReviewItem], reviewed: set[int] | frozenset[int]) -> int | None:
    """The first sample index of the queue not yet reviewed (None when all are): "accept and next"."""
    return next((it.index for it in queue if it.index not in reviewed), None)
