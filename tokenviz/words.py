"""Chips grouped into words: word ids over a row's display tokens and per-word aggregates (pure).

    ids = word_ids(["Ana", " Li", "ma", "⟨eos⟩"], eos=[0, 0, 0, 1])   # [0, 1, 1, 2]
    aggregate(ids, [0.2, 0.5, 0.9, 0.0], "max")                     # [0.2, 0.9, 0.0]

A word starts where `word_ids_from_tokens` says (a token beginning with whitespace, or after one
ending with it); the closing EOS / cut marker is always a word of its own. As the word-level
selector report does, a word's score is the max or the mean of its tokens' scores, and a word is
a target when any of its tokens is.
"""
from __future__ import annotations

import math
from typing import Sequence

from .mask_edit import word_ids_from_tokens

HOW = ("max", "mean")


def word_ids(tokens: Sequence[str], eos: Sequence[bool] | None = None) -> list[int]:
    """Word id per display token (0, 1, …); EOS positions (eos[i] True) each form their own word."""
    ids, word, prev_eos = [], -1, False
    base = word_ids_from_tokens(list(tokens))
    for j, b in enumerate(base):
        is_eos = bool(eos[j]) if eos is not None else False
        if j == 0 or is_eos or prev_eos or b != base[j - 1]:
            word += 1
        ids.append(word)
        prev_eos = is_eos
    return ids


def groups(ids: Sequence[int]) -> list[list[int]]:
    """Token positions of each word, in order."""
    out: list[list[int]] = []
    for j, w in enumerate(ids):
        if not out or w != ids[j - 1]:
            out.append([])
        out[-1].append(j)
    return out


def aggregate(ids: Sequence[int], values: Sequence[float], how: str = "max") -> list[float]:
    """One value per word: the max or mean of its tokens' finite values (NaN when none is finite)."""
    if how not in HOW:
        raise ValueError(f"unknown aggregation {how!r}: use one of {', '.join(HOW)}")
    if len(ids) != len(values):
        raise ValueError(f"{len(values)} values for {len(ids)} tokens")
    out = []
    for g in groups(ids):
        xs = [float(values[j]) for j in g if values[j] is not None and math.isfinite(values[j])]
        out.append(float("nan") if not xs else (max(xs) if how == "max" else sum(xs) / len(xs)))
    return out


def any_per_word(ids: Sequence[int], flags: Sequence[bool]) -> list[bool]:
    """One flag per word: True when any of its tokens is flagged (a word is a target if any token is)."""
    return [any(bool(flags[j]) for j in g) for g in groups(ids)]


def join_words(ids: Sequence[int], tokens: Sequence[str]) -> list[str]:
    """One display string per word: its tokens joined."""
    return ["".join(tokens[j] for j in g) for g in groups(ids)]
