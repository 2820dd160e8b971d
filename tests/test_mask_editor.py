"""tokenviz/mask_editor.py: the Edit tab's rules on one sample, every expected mask written out by hand.

The sample has six label positions: five answer tokens and the closing EOS (answer_mask False)."""
import pytest

from engine.mask_sets import bulk_plan
from tokenviz.mask_editor import ACTIONS, MaskEditor, Refused, check_action, eos_rule

TOKENS = ["The", " capital", " is", " Lis", "bon", "⟨eos⟩"]
ANSWER = [True, True, True, True, True, False]
EMPTY = [0, 0, 0, 0, 0, 0]


def edit(ed, action, mask, start=None, end=None, default=None):
    return ed.apply(action, mask, ANSWER, TOKENS, start, end, default)


def test_toggle_flips_one_token_and_sets_the_anchor():
    ed = MaskEditor.start(EMPTY)
    assert edit(ed, "toggle", EMPTY, 2) == [0, 0, 1, 0, 0, 0]
    assert ed.anchor == 2
    assert edit(ed, "toggle", [0, 0, 1, 0, 0, 0], 2) == EMPTY


def test_toggling_the_eos_is_refused_and_changes_nothing():
    ed = MaskEditor.start(EMPTY)
    with pytest.raises(Refused, match="closing EOS is never a forget target"):
        edit(ed, "toggle", EMPTY, 5)
    assert ed.anchor is None and not ed.history.can_undo


def test_brush_sets_the_span_to_the_opposite_of_its_first_token_and_skips_the_eos():
    ed = MaskEditor.start([0, 1, 0, 0, 0, 0])
    assert edit(ed, "brush", [0, 1, 0, 0, 0, 0], 3, 1) == [0, 1, 1, 1, 0, 0]  # token 3 was 0: paint 1 over 1..3
    assert ed.anchor == 1  # the end of the drag
    assert edit(ed, "brush", [0, 1, 1, 1, 0, 0], 1, 5) == EMPTY  # token 1 was 1: paint 0 to the EOS
    assert edit(ed, "brush", EMPTY, 0, 5) == [1, 1, 1, 1, 1, 0]  # the EOS stays 0


def test_shift_click_brushes_from_the_anchor_with_the_anchor_value():
    ed = MaskEditor.start(EMPTY)
    m = edit(ed, "toggle", EMPTY, 1)  # anchor 1, now a target
    assert m == [0, 1, 0, 0, 0, 0]
    m = edit(ed, "shift", m, 4)
    assert m == [0, 1, 1, 1, 1, 0] and ed.anchor == 4
    m = edit(ed, "toggle", m, 3)  # anchor 3, now not a target
    assert m == [0, 1, 1, 0, 1, 0]
    assert edit(ed, "shift", m, 0) == [0, 0, 0, 0, 1, 0]  # 0..3 take the anchor's 0


def test_shift_click_without_an_anchor_or_on_it_flips_the_clicked_token():
    ed = MaskEditor.start(EMPTY)
    assert edit(ed, "shift", EMPTY, 3) == [0, 0, 0, 1, 0, 0] and ed.anchor == 3
    assert edit(ed, "shift", [0, 0, 0, 1, 0, 0], 3) == EMPTY


def test_word_flips_every_token_of_the_clicked_word():
    ed = MaskEditor.start(EMPTY)
    assert edit(ed, "word", EMPTY, 4) == [0, 0, 0, 1, 1, 0]  # " Lis" + "bon"
    assert ed.anchor == 4
    assert edit(ed, "word", [0, 0, 0, 1, 1, 0], 3) == EMPTY


def test_undo_and_redo_walk_the_edits_and_report_nothing_to_do():
    ed = MaskEditor.start(EMPTY)
    assert edit(ed, "undo", EMPTY) is None and edit(ed, "redo", EMPTY) is None
    a = edit(ed, "toggle", EMPTY, 0)
    b = edit(ed, "toggle", a, 4)
    assert (a, b) == ([1, 0, 0, 0, 0, 0], [1, 0, 0, 0, 1, 0])
    assert edit(ed, "undo", b) == a
    assert edit(ed, "undo", a) == EMPTY
    assert edit(ed, "undo", EMPTY) is None
    assert edit(ed, "redo", EMPTY) == a
    assert edit(ed, "redo", a) == b
    assert edit(ed, "redo", b) is None


def test_reset_takes_the_default_mask_without_its_eos_and_can_be_undone():
    ed = MaskEditor.start([0, 1, 0, 0, 0, 0])
    assert edit(ed, "reset", [0, 1, 0, 0, 0, 0], default=[True, False, True, False, False, True]) == \
        [1, 0, 1, 0, 0, 0]
    assert edit(ed, "undo", [1, 0, 1, 0, 0, 0]) == [0, 1, 0, 0, 0, 0]
    with pytest.raises(ValueError, match="choose a selector to reset to"):
        edit(ed, "reset", EMPTY)


def test_sync_restarts_the_history_when_the_mask_changed_elsewhere_but_keeps_the_anchor():
    ed = MaskEditor.start(EMPTY)
    edit(ed, "toggle", EMPTY, 2)
    assert ed.sync([0, 0, 1, 0, 0, 0]) is ed  # still where this editor left it
    fresh = ed.sync([1, 1, 1, 1, 1, 0])  # a bulk apply wrote another mask
    assert fresh.history.current == [1, 1, 1, 1, 1, 0] and not fresh.history.can_undo and fresh.anchor == 2


def test_bad_requests():
    ed = MaskEditor.start(EMPTY)
    with pytest.raises(ValueError, match="unknown edit 'paint'; use one of toggle, brush"):
        edit(ed, "paint", EMPTY, 0)
    with pytest.raises(IndexError, match=r"token 6 is out of range \(0..5\)"):
        edit(ed, "toggle", EMPTY, 6)
    with pytest.raises(IndexError, match=r"token \? is out of range"):
        edit(ed, "brush", EMPTY)
    with pytest.raises(IndexError, match=r"token 0 is out of range"):
        edit(ed, "brush", EMPTY, 0, 9)
    check_action("undo")
    assert ACTIONS == ("toggle", "brush", "shift", "word", "undo", "redo", "reset")


def test_eos_rule_and_bulk_plan():
    assert eos_rule([1, True, 0, 1, 1, 1], ANSWER) == [1, 1, 0, 1, 1, 0]
    defaults = {"a": ("h", [1]), "b": ("h", [0]), "c": ("h", [1])}
    assert bulk_plan(defaults, {"b"}, keep_edited=True) == {"a": ("h", [1]), "c": ("h", [1])}
    assert bulk_plan(defaults, {"b"}, keep_edited=False) == defaults
