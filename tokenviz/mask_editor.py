"""The Edit tab's rules as a pure editor of one sample's mask: no Gradio, no torch, no store.

    ed = MaskEditor.start(stored_mask)
    new = ed.apply("toggle", answer_mask, tokens, start=3)   # the mask to save, or None
    new = ed.apply("undo", answer_mask, tokens)              # None: nothing to undo

Rules: a click toggles a token and becomes the shift-click anchor; a drag brushes start..end to
the opposite of the first token; shift-click brushes from the anchor to the clicked token with the
anchor's value (the clicked token's opposite when it is the anchor); alt-click (`word`) flips the
whole word; undo/redo step through the edits; reset takes a selector's default mask. Whatever the
action, the closing EOS (answer_mask False) is never a target, and toggling it is refused.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from .mask_edit import EditHistory, brush, select_word, toggle

ACTIONS = ("toggle", "brush", "shift", "word", "undo", "redo", "reset")
POINTED = ("toggle", "brush", "shift", "word")  # the actions at a token


class Refused(ValueError):
    """An edit the rules refuse (not a malformed request): toggling the closing EOS."""


def check_action(action: str) -> None:
    if action not in ACTIONS:
        raise ValueError(f"unknown edit {action!r}; use one of {', '.join(ACTIONS)}")


def eos_rule(mask: Sequence, answer_mask: Sequence[bool]) -> list[int]:
    """0/1 mask with every position outside the answer (the closing EOS) cleared."""
    return [int(bool(v) and a) for v, a in zip(mask, answer_mask)]


@dataclass
class MaskEditor:
    """Undo/redo of one sample's mask and the last clicked token (the shift-click anchor)."""

    history: EditHistory
    anchor: int | None = None

    @classmethod
    def start(cls, mask: Sequence) -> "MaskEditor":
        return cls(EditHistory(list(mask)))

    def sync(self, mask: Sequence) -> "MaskEditor":
        """This editor when it is at `mask`; else a fresh history at `mask` (the mask was changed
        elsewhere: a bulk apply, another tab) keeping the anchor."""
        if self.history.current == list(mask):
            return self
        return MaskEditor(EditHistory(list(mask)), self.anchor)

    def apply(self, action: str, mask: Sequence, answer_mask: Sequence[bool], tokens: Sequence[str],
              start: int | None = None, end: int | None = None, default: Sequence | None = None) -> list[int] | None:
        """The new 0/1 mask after `action` on `mask`, with the EOS rule applied and (except for
        undo/redo) recorded in the history; None when there is nothing to undo or redo.

        start/end: token positions of a pointed action (end defaults to start); default: the
        selector mask for `reset`. IndexError for a position out of range, Refused for a toggle
        of the closing EOS, ValueError for an unknown action or a reset without a default.
        """
        check_action(action)
        n = len(mask)
        start = None if start is None else int(start)
        end = start if end is None else int(end)
        if action in POINTED:
            if start is None or not (0 <= start < n and 0 <= end < n):
                raise IndexError(f"token {start if start is not None else '?'} is out of range (0..{n - 1})")
            if action == "toggle" and not answer_mask[start]:
                raise Refused("the closing EOS is never a forget target")
        if action == "toggle":
            new, self.anchor = toggle(mask, start), start
        elif action == "brush":
            new, self.anchor = brush(mask, start, end, not mask[start]), end
        elif action == "shift":
            anchor = self.anchor if self.anchor is not None else end
            value = bool(mask[anchor]) if anchor != end else not mask[end]
            new, self.anchor = brush(mask, anchor, end, value), end
        elif action == "word":
            new, self.anchor = select_word(mask, tokens, start), start
        elif action in ("undo", "redo"):
            if not (self.history.can_undo if action == "undo" else self.history.can_redo):
                return None
            new = self.history.undo() if action == "undo" else self.history.redo()
        else:  # reset
            if default is None:
                raise ValueError("choose a selector to reset to")
            new = list(default)
        new = eos_rule(new, answer_mask)
        if action not in ("undo", "redo"):
            self.history.push(new)
        return new
