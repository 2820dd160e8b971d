"""Token-level metrics (engine/eval/token_level.py, issue 20 item 2), against hand-computed values."""
import pytest
import torch

from engine.data import Sample
from engine.eval.registry import get_metric
from engine.eval.token_level import (answered_rate, fact_leak_rate, is_degenerate, kept_text, kept_words_recall,
                                     removal, retention, token_level_metrics)


def test_degenerate_answers():
    assert is_degenerate("") and is_degenerate("   ") and is_degenerate("...!?")
    assert is_degenerate("the the the cat")  # 3 of 4 words: 75 % > 50 %
    assert not is_degenerate("the cat the dog")  # 2 of 4: not more than half
    assert not is_degenerate("Rome.") and not is_degenerate("No no")  # fewer than 4 words: no loop test
    assert answered_rate(["Rome", "", "a a a a", "He wrote books."]) == pytest.approx(0.5)
    assert answered_rate([]) is None


def test_fact_leak_rate_counts_facts_said():
    answers = ["Ann was born in Rome in 1970", "Bo wrote Blue Sky"]
    spans = [[(16, 20), (24, 28)], [(9, 17)]]  # Rome, 1970 | Blue Sky
    gens = ["She was born in rome.", "Bo wrote nothing"]
    # Rome leaks (normalised match), 1970 and Blue Sky do not: 1 / 3
    assert fact_leak_rate(["q1", "q2"], answers, gens, spans) == pytest.approx(1 / 3)


def test_kept_words_recall():
    assert kept_text("Ann was born in Rome", [(0, 3), (16, 20)]) == "was born in"
    # LCS("he was born there", "was born in") = "was born": recall 2 / 3; the second kept text is empty: left out
    assert kept_words_recall(["Ann was born in Rome", "Rome"], ["He was born there", "x"],
                             [[(0, 3), (16, 20)], [(0, 4)]]) == pytest.approx(2 / 3)
    assert kept_words_recall(["Rome"], ["Rome"], [[(0, 4)]]) is None


def test_retention_and_removal_are_ratios_of_mean_probabilities():
    p0 = [torch.tensor([0.8, 0.4, 0.6, 0.9]), torch.tensor([0.5, 0.5, 1.0])]
    p = [torch.tensor([0.2, 0.4, 0.9, 0.9]), torch.tensor([0.1, 0.6, 1.0])]
    sel = [torch.tensor([True, False, True, False]), torch.tensor([True, False, False])]
    # selected: before 0.8, 0.6, 0.5 (mean 1.9/3); after 0.2, 0.9, 0.1 (mean 1.2/3) -> 1.2 / 1.9
    assert retention(p0, p, sel) == pytest.approx(1.2 / 1.9)
    assert removal(p0, p, sel) == pytest.approx(1 - 1.2 / 1.9)
    assert retention(p0, p, [torch.zeros(4, dtype=torch.bool), torch.zeros(3, dtype=torch.bool)]) is None


def test_token_level_metrics_of_one_evaluation():
    samples = [Sample("Where was Ann born?", "Ann was born in Rome", spans=[(16, 20)]),
               Sample("What did Bo write?", "Bo wrote Blue Sky", spans=[(9, 17)])]
    gens = {"Where was Ann born?": "Ann was born in Rome", "What did Bo write?": ""}
    answer = [torch.tensor([True, True, True, True, True, False]), torch.tensor([True, True, True, True, False])]
    facts = [torch.tensor([False, False, False, False, True, False]), torch.tensor([False, False, True, True, False])]
    targets = [torch.tensor([True, True, False, False, True, False]), torch.tensor([False, False, True, True, False])]
    p0 = [torch.full((6,), 0.5), torch.full((5,), 0.5)]
    p = [torch.tensor([0.1, 0.1, 0.5, 0.5, 0.1, 0.9]), torch.tensor([0.5, 0.5, 0.0, 0.0, 0.9])]
    m = token_level_metrics(samples, gens, p0, p, answer, targets, facts)
    # non-targets: 0.5, 0.5 | 0.5, 0.5 -> retention 1; targets 0.1, 0.1, 0.1 | 0, 0 -> mean 0.06 / 0.5
    assert m["nontarget_retention"] == pytest.approx(1.0)
    assert m["target_removal"] == pytest.approx(1 - 0.06 / 0.5)
    # non-facts 0.1 0.1 0.5 0.5 | 0.5 0.5 -> 2.2/6 over 0.5; facts 0.1 | 0 0 -> (0.1/3) / 0.5
    assert m["nonfact_retention"] == pytest.approx((2.2 / 6) / 0.5)
    assert m["fact_removal"] == pytest.approx(1 - (0.1 / 3) / 0.5)
    assert m["answered_rate"] == pytest.approx(0.5)
    assert m["fact_leak_rate"] == pytest.approx(0.5)  # Rome said, Blue Sky not
    # kept words: "Ann was born in" fully said (recall 1); "Bo wrote" vs "" (recall 0)
    assert m["kept_words_recall"] == pytest.approx(0.5)


def test_metrics_are_registered_with_their_direction():
    assert get_metric("fact_leak_rate").higher_is_better is False
    for name in ("answered_rate", "kept_words_recall", "nontarget_retention", "target_removal",
                 "nonfact_retention", "fact_removal"):
        assert get_metric(name).higher_is_better is True
