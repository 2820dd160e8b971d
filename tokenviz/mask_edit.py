"""Mask edits as pure functions: each returns a NEW list and never mutates its input.

A mask is a list of bools or of 0/1 ints (one per label position); results keep the input's
kind (all-bool in -> bools out, otherwise 0/1 ints). `EditHistory` keeps undo/redo stacks of
past masks.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

Mask = list  # list[bool] | list[int] of 0/1

_WORD_BREAK = (" ", "\n", "\t", "⏎", "⇥", "Ġ", "Ċ", "▁")


def _kind(mask: Sequence) -> type:
    return bool if all(isinstance(v, bool) for v in mask) else int


def _as_mask(mask: Sequence, values) -> Mask:
    cast = _kind(mask)
    return [cast(bool(v)) for v in values]


def _check_mask(mask) -> None:
    if not isinstance(mask, (list, tuple)):
        raise TypeError(f"a mask must be a list of bools or 0/1, got {type(mask).__name__}")


def _check_index(mask: Sequence, i, name: str = "index") -> int:
    if isinstance(i, bool) or not isinstance(i, int):
        raise TypeError(f"{name} must be an int, got {type(i).__name__} {i!r}")
    if not 0 <= i < len(mask):
        raise IndexError(f"{name} {i} is out of range for a mask of {len(mask)} tokens (valid: 0..{len(mask) - 1})")
    return i


def toggle(mask: Sequence, i: int) -> Mask:
    """Flip token i."""
    _check_mask(mask)
    _check_index(mask, i)
    return _as_mask(mask, (not v if j == i else v for j, v in enumerate(mask)))


def brush(mask: Sequence, start: int, end: int, value: bool) -> Mask:
    """Set tokens start..end (inclusive, either direction) to `value`."""
    _check_mask(mask)
    _check_index(mask, start, "start")
    _check_index(mask, end, "end")
    lo, hi = min(start, end), max(start, end)
    return _as_mask(mask, (value if lo <= j <= hi else v for j, v in enumerate(mask)))


def word_ids_from_tokens(tokens: Sequence[str]) -> list[int]:
    """Word id per token: a word starts at index 0, at a token whose display begins with whitespace
    (' ', newline/'⏎', tab/'⇥', or raw 'Ġ' 'Ċ' '▁'), and after a token that ends with whitespace."""
    ids, word = [], 0
    for j, tok in enumerate(tokens):
        if j > 0 and (tok.startswith(_WORD_BREAK) or tokens[j - 1].endswith(_WORD_BREAK)):
            word += 1
        ids.append(word)
    return ids


def select_word(mask: Sequence, words: Sequence, i: int, value: bool | None = None) -> Mask:
    """Set every token of the word containing token i to `value` (None: the opposite of mask[i]).

    words: explicit word ids (ints, one per token; tokens with equal ids form a word) or the
    tokens' display strings (words found by `word_ids_from_tokens`).
    """
    _check_mask(mask)
    _check_index(mask, i)
    if len(words) != len(mask):
        raise ValueError(f"words has {len(words)} entries but the mask has {len(mask)}")
    ids = word_ids_from_tokens(words) if all(isinstance(w, str) for w in words) else list(words)
    new = (not mask[i]) if value is None else bool(value)
    return _as_mask(mask, (new if ids[j] == ids[i] else v for j, v in enumerate(mask)))


def reset(default_mask: Sequence) -> Mask:
    """A fresh copy of the selector's default mask."""
    _check_mask(default_mask)
    return _as_mask(default_mask, default_mask)


def count_targets(mask: Sequence) -> int:
    """Number of tokens marked as targets."""
    return sum(1 for v in mask if v)


@dataclass
class EditHistory:
    """Undo/redo over masks: `past` is the undo stack (oldest first), `future` the redo stack.

    push(m) records the current mask in `past` and makes m current (a push equal to the current
    mask is ignored) and clears `future`; undo()/redo() step back/forward and return the new
    current mask, or leave it unchanged when there is nothing to undo/redo. At most `limit`
    past masks are kept.
    """
    current: Mask
    past: list[Mask] = field(default_factory=list)
    future: list[Mask] = field(default_factory=list)
    limit: int = 200

    def __post_init__(self) -> None:
        if self.limit < 1:
            raise ValueError(f"limit must be at least 1, got {self.limit}")
        self.current = list(self.current)

    @property
    def can_undo(self) -> bool:
        return bool(self.past)

    @property
    def can_redo(self) -> bool:
        return bool(self.future)

    def push(self, mask: Sequence) -> Mask:
        mask = list(mask)
        if mask == self.current:
            return list(self.current)
        self.past.append(self.current)
        del self.past[:-self.limit]
        self.current = mask
        self.future.clear()
        return list(self.current)

    def undo(self) -> Mask:
        if self.past:
            self.future.append(self.current)
            self.current = self.past.pop()
        return list(self.current)

    def redo(self) -> Mask:
        if self.future:
            self.past.append(self.current)
            self.current = self.future.pop()
        return list(self.current)
