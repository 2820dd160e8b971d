"""Phrase rules: matching, precedence (hand edits > later rules > earlier rules > base), effects, JSON."""
from __future__ import annotations

import pytest

from engine.data import Sample
from engine.masks import (
    MaskFileError,
    Rule,
    apply_rules,
    dump_rules,
    hand_edits_between,
    label_offsets,
    load_rules,
    parse_rules,
    rule_effects,
    rules_from_json,
    rules_to_json,
)
from engine.masks.phrases import find_phrase

ANSWER = "Ann met Bob and ANN"
# hand-made tokens: "Ann" " met" " Bob" " and" " ANN" <eos>
OFFSETS = [[(0, 3), (3, 7), (7, 11), (11, 15), (15, 19), (-1, -1)]]
SAMPLES = [Sample("Who met whom?", ANSWER)]
BASE = [[0, 0, 1, 0, 0, 0]]
ANN = Rule("ann", True)             # covers tokens 0 and 4 (case-insensitive)
ANN_MET = Rule("Ann met", False)    # covers tokens 0 and 1


def test_phrase_is_case_insensitive_and_whitespace_normalised():
    assert find_phrase(ANSWER, "ann") == [(0, 3), (16, 19)]
    assert find_phrase("Bob\n  and", "bob and") == [(0, 9)]
    assert find_phrase(ANSWER, "ann", case_sensitive=True) == []


def test_whole_words_only():
    assert find_phrase(ANSWER, "an") == [(0, 2), (12, 14), (16, 18)]
    assert find_phrase(ANSWER, "an", whole_words=True) == []
    assert find_phrase(ANSWER, "ANN", whole_words=True) == [(0, 3), (16, 19)]


def test_rules_beat_base_and_later_rules_beat_earlier():
    assert apply_rules(SAMPLES, OFFSETS, BASE, [ANN]) == [[True, False, True, False, True, False]]
    assert apply_rules(SAMPLES, OFFSETS, BASE, [ANN, ANN_MET]) == [[False, False, True, False, True, False]]
    assert apply_rules(SAMPLES, OFFSETS, BASE, [ANN_MET, ANN]) == [[True, False, True, False, True, False]]


def test_hand_edits_beat_rules_and_the_eos_is_never_a_target():
    out = apply_rules(SAMPLES, OFFSETS, BASE, [ANN, ANN_MET], hand_edits=[{0: True, 2: False, 5: True}])
    assert out == [[True, False, False, False, True, False]]


def test_removing_a_rule_removes_its_effect():
    assert apply_rules(SAMPLES, OFFSETS, BASE, []) == [[False, False, True, False, False, False]]


def test_rule_effects_count_matched_decided_and_changed_tokens():
    first, second = rule_effects(SAMPLES, OFFSETS, BASE, [ANN, ANN_MET])
    # ANN covers 0 and 4; token 0 is decided by the later ANN_MET; token 4: 0 -> 1 changed
    assert (first.samples, first.matched, first.decided, first.changed) == (1, 2, 1, 1)
    # ANN_MET covers 0 and 1, decides both, both already 0 in the base
    assert (second.samples, second.matched, second.decided, second.changed) == (1, 2, 2, 0)
    edited = rule_effects(SAMPLES, OFFSETS, BASE, [ANN, ANN_MET], hand_edits=[{1: True}])
    assert edited[1].decided == 1


def test_hand_edits_between_recovers_the_diff():
    assert hand_edits_between([0, 1, 0], [1, 1, 0]) == {0: True}
    with pytest.raises(ValueError):
        hand_edits_between([0], [0, 1])


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="sample 0 has 2 positions"):
        apply_rules(SAMPLES, OFFSETS, [[0, 1]], [ANN])
    with pytest.raises(ValueError, match="position 9"):
        apply_rules(SAMPLES, OFFSETS, BASE, [ANN], hand_edits=[{9: True}])
    with pytest.raises(ValueError, match="visible character"):
        Rule("   ", True)


def test_rules_map_to_real_tokens_by_offsets(builtin_tokenizer):
    samples = [Sample("Who?", "The author is Elvin Mammadov, born in Baku."), Sample("Where?", "In baku.")]
    offsets = label_offsets(builtin_tokenizer, samples)
    base = [[0] * len(o) for o in offsets]
    out = apply_rules(samples, builtin_tokenizer, base, [Rule("Baku", True, whole_words=True)])
    for s, o, m in zip(samples, offsets, out):
        at = s.answer.lower().index("baku")
        assert m == [a >= 0 and a < at + 4 and b > at for a, b in o]
        assert any(m) and not m[-1]


def test_rules_json_round_trip():
    rules = [ANN, Rule("Bob and", False, whole_words=True, case_sensitive=True)]
    assert rules_from_json(rules_to_json(rules)) == rules
    assert parse_rules(dump_rules(rules)) == rules


def test_rules_file_errors_name_line_and_field(tmp_path):
    path = tmp_path / "rules.jsonl"
    cases = [('{"phrase": "x"}', "field 'target': missing"),
             ('{"phrase": "  ", "target": true}', "field 'phrase': empty"),
             ('{"phrase": "x", "target": "yes"}', "field 'target': expected true or false"),
             ('{"phrase": "x", "target": true, "colour": 1}', "field 'colour': unknown field"),
             ('{"phrase": "x", "target": true', "malformed JSON")]
    for bad, message in cases:
        path.write_text('{"phrase": "Ann", "target": true}\n\n' + bad + "\n")
        with pytest.raises(MaskFileError, match=f"rules.jsonl:3: .*{message}"):
            load_rules(path)
    path.write_text("\n")
    with pytest.raises(MaskFileError, match="no rules"):
        load_rules(path)
    with pytest.raises(MaskFileError, match=r"rules\[1\]: field 'phrase'"):
        rules_from_json([{"phrase": "a", "target": True}, {"target": True}])
