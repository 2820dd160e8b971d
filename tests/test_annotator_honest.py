"""The honest annotator (benchmarks/annotator.py, issue 20 item 1): it sees only what a person sees."""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from annotator import Case, HonestAnnotator, PeekError, TruthView, simulate, simulate_honest  # noqa: E402
from test_annotation_sim import case  # noqa: E402

from engine.masks.rules import Rule  # noqa: E402


def in_order(cases) -> dict:
    """Voters that put the samples in index order (disagreement n − i tokens on sample i)."""
    n = len(cases)
    none = [[False] * len(c.offsets) for c in cases]
    some = [[j < n - i for j in range(len(c.offsets))] for i, c in enumerate(cases)]
    return {"x": none, "y": some}


def rome_cases() -> list[Case]:
    # "Rome" is a fact in all four samples; sample 0 is reviewed first
    return [case("Ann was born in Rome", [(16, 20)]), case("Bo died in Rome", [(11, 15)]),
            case("Cy lived in Rome", [(12, 16)]), case("Di left Rome", [(8, 12)])]


class CountingCase(Case):
    """A Case that logs every read of its ground truth (its index, into a shared list)."""

    log: list = []

    def __init__(self, base: Case, index: int):
        super().__init__(base.answer, base.offsets, base.spans)
        self.index = index

    @property
    def truth(self):
        CountingCase.log.append(self.index)
        return super().truth


def test_truth_view_refuses_an_unseen_sample():
    view = TruthView(rome_cases())
    with pytest.raises(PeekError):
        view.truth(2)
    view.show(2)
    assert view.truth(2) == [False, False, False, True, False]


def test_a_rule_is_never_adopted_from_unseen_samples():
    cases = rome_cases()
    empty = [[False] * len(c.offsets) for c in cases]
    # the oracle annotator makes "Rome" a rule on the first sample, from the three samples it never saw
    oracle = simulate(cases, empty, in_order(cases), use_rules=True, goal=1.0)
    assert oracle.rules and oracle.rules[0].phrase == "Rome" and oracle.reviewed == [0]
    honest = simulate_honest(cases, empty, in_order(cases), use_rules=True, min_support=2)
    # sample 0: one toggle (no evidence yet); sample 1: "Rome" seen as a fact in 2 reviewed samples ->
    # rule (fixes samples 1, 2, 3); samples 2 and 3 then only need "accept"
    assert honest.rules == [Rule("Rome", True)]
    assert dict(honest.ops) == {"toggle": 1, "rule": 1}
    assert honest.reviewed == [0, 1, 2, 3] and honest.accepts == 4
    assert honest.per_sample(4) == pytest.approx((2 + 4) / 4)
    assert honest.masks == [c.truth for c in cases]


def test_contrary_evidence_in_a_reviewed_sample_blocks_the_rule():
    # "Rome" is NOT a fact in sample 0 (reviewed first), a fact in 1 and 2: no rule, three toggles
    cases = [case("Ann went to Rome", []), case("Born in Rome", [(8, 12)]), case("Died in Rome", [(8, 12)])]
    empty = [[False] * len(c.offsets) for c in cases]
    out = simulate_honest(cases, empty, in_order(cases), use_rules=True)
    assert out.rules == [] and dict(out.ops) == {"toggle": 2}
    assert out.f1 == 1.0 and out.start_f1 == 0.0


def test_only_reviewed_truth_is_read_and_every_sample_is_reviewed():
    CountingCase.log = []
    cases = [CountingCase(c, i) for i, c in enumerate(rome_cases())]
    empty = [[False] * len(c.offsets) for c in cases]
    out = simulate_honest(cases, empty, in_order(cases), use_rules=True, report_f1=False)
    # truth is read once per sample, at the moment it comes up for review, in review order
    assert CountingCase.log == out.reviewed == [0, 1, 2, 3]
    assert out.f1 is None and out.curve == []


def test_the_stop_rule_never_reads_global_f1():
    cases = rome_cases()
    empty = [[False] * len(c.offsets) for c in cases]
    calls = []

    def spy(value):
        def score(masks):
            calls.append(value)
            return value
        return score

    outs = [HonestAnnotator(cases, empty, in_order(cases), True, 2, spy(v)).run() for v in (0.0, 1.0)]
    # whatever the global F1 says (0 or 1 throughout), the same operations, masks and samples
    assert outs[0].ops == outs[1].ops and outs[0].masks == outs[1].masks
    assert outs[0].reviewed == outs[1].reviewed == [0, 1, 2, 3]
    assert calls.count(0.0) == calls.count(1.0) == 5  # once at the start, once after each sample: the report
    assert outs[1].curve == [(0, 1.0), (2, 1.0), (4, 1.0), (5, 1.0), (6, 1.0)]


def test_without_rules_one_fix_per_stretch_and_one_accept_per_sample():
    cases = [case("Ann Lee was born in Rome", [(0, 7), (20, 24)]), case("Ann Lee wrote Blue Sky", [(14, 22)])]
    empty = [[False] * len(c.offsets) for c in cases]
    out = simulate_honest(cases, empty, in_order(cases), use_rules=False)
    assert dict(out.ops) == {"brush": 2, "toggle": 1} and out.accepts == 2
    assert out.per_sample(2) == pytest.approx(5 / 2)
    # global F1 after each sample: 0 -> sample 0 fixed (TP 3, FN 2) 6/8 -> all right 1
    assert [f for _, f in out.curve] == pytest.approx([0.0, 6 / 8, 1.0])


def test_a_word_cut_out_of_facts_never_becomes_a_rule():
    # "of" is inside a fact in both samples; a person marks the facts, not "of" everywhere
    cases = [case("Ann wrote Tide of Rome", [(10, 22)]), case("Bo wrote Sea of Ash", [(9, 19)])]
    base = [[j in (2, 4) for j in range(6)], [j in (2, 4) for j in range(6)]]  # "of" missed in both
    out = simulate_honest(cases, base, in_order(cases), use_rules=True)
    assert out.rules == [] and dict(out.ops) == {"toggle": 2}
    assert out.masks == [c.truth for c in cases]
