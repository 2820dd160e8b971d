"""The simulated annotator of benchmarks/annotation_cost.py: operation counts on hand-made samples."""
import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from annotator import Case, count_stretches, simulate, word_ids  # noqa: E402

from engine.masks.rules import Rule  # noqa: E402


def case(answer: str, spans: list[tuple[int, int]], split: dict[str, int] | None = None) -> Case:
    """One token per word (`split` cuts a word into two tokens at the given character), then the EOS."""
    offsets = []
    for m in re.finditer(r"\S+", answer):
        cut = (split or {}).get(m.group())
        if cut:
            offsets += [(m.start(), m.start() + cut), (m.start() + cut, m.end())]
        else:
            offsets.append((m.start(), m.end()))
    return Case(answer, offsets + [(-1, -1)], list(spans))


def three_cases() -> list[Case]:
    return [case("Ann Lee was born in Rome", [(0, 7), (20, 24)]),   # 6 words
            case("Ann Lee wrote Blue Sky", [(14, 22)]),             # 5 words
            case("Ann Lee left Rome for Porto", [(13, 17), (22, 27)], split={"Porto": 3})]  # 7 tokens


def voters_in_order(cases) -> dict:
    """Two voters disagreeing on 3, 2 and 1 tokens of samples 0, 1, 2: review order 0, 1, 2."""
    none = [[False] * len(c.offsets) for c in cases]
    some = [[j < 3 - i for j in range(len(c.offsets))] for i, c in enumerate(cases)]
    return {"x": none, "y": some}


def test_word_ids_follow_whitespace():
    c = case("Ann Lee left Rome for Porto", [], split={"Porto": 3})
    assert word_ids(c.answer, c.offsets) == [0, 1, 2, 3, 4, 5, 5, -1]


def test_count_stretches_one_fix_per_equal_truth_run_with_a_wrong_token():
    truth = [True, True, True, False, False, True, False]
    answer = [True] * 6 + [False]  # the last position is the EOS: never counted
    assert count_stretches(truth, [False, True, False, False, False, True, True], answer) == 1  # one brush 0..2
    assert count_stretches(truth, [True, True, True, True, False, False, False], answer) == 2
    assert count_stretches(truth, truth, answer) == 0


def test_without_rules_one_hand_fix_per_wrong_stretch():
    cases = three_cases()
    empty = [[False] * len(c.offsets) for c in cases]
    out = simulate(cases, empty, voters_in_order(cases), use_rules=False, goal=1.0)
    # sample 0: brush "Ann Lee" + toggle "Rome"; 1: brush "Blue Sky"; 2: toggle "Rome" + word "Por|to"
    assert dict(out.ops) == {"brush": 2, "toggle": 2, "word": 1}
    assert out.edits == 5
    assert out.reviewed == [0, 1, 2]
    assert out.accepts == 2  # the last fix reaches the goal: no accept needed
    assert out.f1 == 1.0 and out.start_f1 == 0.0
    assert out.masks == [c.truth for c in cases]


def test_a_recurring_span_becomes_one_phrase_rule():
    cases = three_cases()
    empty = [[False] * len(c.offsets) for c in cases]
    out = simulate(cases, empty, voters_in_order(cases), use_rules=True, goal=1.0)
    # sample 0: rule "Rome" (fixes 2 tokens in 2 samples, a toggle fixes 1) + brush "Ann Lee" (a rule
    # would mark it in samples 1 and 2 too: net −2); 1: brush "Blue Sky" (the rule gains 2, no more
    # than the brush); 2: "Rome" already right, word "Por|to"
    assert dict(out.ops) == {"rule": 1, "brush": 2, "word": 1}
    assert out.edits == 4
    assert out.rules == [Rule("Rome", True)]
    assert out.masks == [c.truth for c in cases]


def test_a_recurring_false_target_becomes_one_never_rule_and_the_goal_stops_early():
    cases = [case("Ann Lee was born in Rome", [(20, 24)]),
             case("Ann Lee wrote Blue Sky", [(14, 22)]),
             case("Ann Lee left for Porto", [(17, 22)])]
    # a lexical-like start: the facts and the name marked
    base = [[j in (0, 1, 5) for j in range(7)], [j in (0, 1, 3, 4) for j in range(6)], [j in (0, 1, 4) for j in range(6)]]
    with_rules = simulate(cases, base, voters_in_order(cases), use_rules=True, goal=1.0)
    assert dict(with_rules.ops) == {"rule": 1} and with_rules.rules == [Rule("Ann Lee", False, whole_words=True)]
    assert with_rules.accepts == 0 and with_rules.reviewed == [0]
    by_hand = simulate(cases, base, voters_in_order(cases), use_rules=False, goal=1.0)
    assert dict(by_hand.ops) == {"brush": 3}
    # F1 from the start: TP 4, FP 6 -> 8/14; one brush (sample 0) -> 8/12 = 0.667; two -> 8/10 = 0.8
    assert by_hand.start_f1 == pytest.approx(8 / 14)
    assert simulate(cases, base, voters_in_order(cases), use_rules=False, goal=0.8).edits == 2


def test_hand_edits_beat_a_later_rule():
    # sample 0 is fixed by hand first ("Rome" there is NOT a fact); sample 1's rule "Rome" must not undo it
    cases = [case("Ann went to Rome", []), case("Born in Rome", [(8, 12)]), case("Died in Rome", [(8, 12)])]
    base = [[False, False, False, True, False], [False] * 4, [False] * 4]
    out = simulate(cases, base, voters_in_order(cases), use_rules=True, goal=1.0)
    assert out.reviewed == [0, 1]
    assert dict(out.ops) == {"toggle": 1, "rule": 1} and out.rules == [Rule("Rome", True)]
    assert out.masks == [c.truth for c in cases]
