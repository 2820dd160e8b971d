"""selector-report's extensions, on a two-sample example whose values are computed by hand:
word-level P/R/F1/AUROC, parameter sets as separate rows, the keep-ratio sweep, the per-sample
dump, spans without types, and `lexical` among the selectors."""
from __future__ import annotations

import json

import numpy as np
import pytest

from engine.cli import main
from engine.data import Sample, Span
from engine.eval.selector_report import (
    SelectorVariant,
    selector_report,
    top_ratio_masks,
    variants_from_params,
    word_scores,
)

# words of A1: Alice Smith wrote Blue Rivers in Oslo (7); facts: Blue, Rivers (title), Oslo (place)
Q1, A1 = "Who wrote Blue Rivers?", "Alice Smith wrote Blue Rivers in Oslo."
# words of A2: It is set in Rome (5); fact: Rome (place)
Q2, A2 = "Where is it set?", "It is set in Rome."
SAMPLES = [Sample(Q1, A1, spans=(Span(18, 29, "title"), Span(33, 37, "place")), uid="s1"),
           Sample(Q2, A2, spans=(Span(13, 17, "place"),), uid="s2")]


def _main(rows, name, span_type="all", ratio=None):
    return next(r for r in rows if r.selector == name and r.span_type == span_type and r.ratio == ratio)


def test_pure_helpers_by_hand():
    offsets = [[(0, 1), (1, 2), (2, 3), (3, 4), (-1, -1)]]
    scores = [np.array([0.9, 0.1, 0.5, 0.5, 7.0])]  # the EOS score is never picked
    assert top_ratio_masks(scores, offsets, 0.5)[0].tolist() == [True, False, True, False, False]  # tie: earlier
    assert top_ratio_masks(scores, offsets, 0.1)[0].tolist() == [True, False, False, False, False]  # at least 1
    assert top_ratio_masks(scores, offsets, 0.6)[0].sum() == 3  # ceil(2.4)
    with pytest.raises(ValueError, match="keep ratio"):
        top_ratio_masks(scores, offsets, 0.0)
    assert word_scores(scores[0], offsets[0], [(0, 2), (2, 4)]).tolist() == [0.9, 0.5]
    vs = variants_from_params(["all", "tif", "dto"], {"tif": {"predictor": ["demo", "demo-retain"]},
                                                      "dto": {"ratio": [0.1, 0.2], "mode": ["exact"]}})
    assert [v.label for v in vs] == ["all", "tif[predictor=demo]", "tif[predictor=demo-retain]",
                                     "dto[ratio=0.1,mode=exact]", "dto[ratio=0.2,mode=exact]"]


def test_word_and_token_levels_by_hand(tiny_model, builtin_tokenizer):
    per_sample: list = []
    rows = selector_report(tiny_model, builtin_tokenizer, SAMPLES,
                           variants=[SelectorVariant("all"), SelectorVariant("lexical"), SelectorVariant("oracle")],
                           per_sample=per_sample)
    # all: 4 fact words of 12; P 4/12, R 1, F1 = 2·(1/3)/(4/3) = 0.5; equal scores: AUROC ½
    a = _main(rows, "all")
    assert (a.words, a.word_positives) == (12, 4)
    assert (a.word_precision, a.word_recall, a.word_f1) == pytest.approx((1 / 3, 1.0, 0.5))
    assert a.word_auroc == pytest.approx(0.5) and a.auroc == pytest.approx(0.5) and a.recall == 1.0
    # lexical: A1 marks Alice, Smith, Oslo (wrote/Blue/Rivers are asked, "in" a stop word);
    # A2 marks Rome ("It", "is", "in" stop words, "set" asked). TP 2 (Oslo, Rome), FP 2, FN 2.
    lx = _main(rows, "lexical")
    assert (lx.word_precision, lx.word_recall, lx.word_f1) == pytest.approx((0.5, 0.5, 0.5))
    # word AUROC: positives Blue 0, Rivers 0, Oslo 1, Rome 1; negatives Alice 1, Smith 1, and six 0s.
    # Oslo/Rome: beat 6, tie 2 → 7 each; Blue/Rivers: tie 6, lose 2 → 3 each; (7+7+3+3)/(4·8) = 20/32
    assert lx.word_auroc == pytest.approx(20 / 32)
    # per type: title words Blue, Rivers unmarked (recall 0); place words Oslo, Rome marked (recall 1)
    assert _main(rows, "lexical", "title").word_recall == 0.0
    assert _main(rows, "lexical", "place").word_recall == 1.0
    assert _main(rows, "lexical", "place").word_positives == 2
    o = _main(rows, "oracle")
    assert (o.precision, o.recall, o.f1, o.auroc) == (1.0, 1.0, 1.0, 1.0)
    assert (o.word_precision, o.word_recall, o.word_f1, o.word_auroc) == (1.0, 1.0, 1.0, 1.0)
    # the dump: one record per variant × sample, whose counts add up to the row's
    assert len(per_sample) == 6
    lex = [r for r in per_sample if r["selector"] == "lexical"]
    assert [r["word"]["tp"] for r in lex] == [1, 1] and [r["word"]["fp"] for r in lex] == [2, 0]
    assert [m["text"] for m in lex[1]["mask_spans"]] == ["Rome"]
    assert len(lex[0]["scores"]) == len(lex[0]["mask"]) == len(lex[0]["offsets"])


def test_ratio_sweep_rows(tiny_model, builtin_tokenizer):
    rows = selector_report(tiny_model, builtin_tokenizer, SAMPLES, variants=[SelectorVariant("lexical")],
                           ratios=[1.0, 0.1])
    # keep ratio 1: every answer token, so the same as `all`; AUROC does not depend on the ratio
    full, own = _main(rows, "lexical", ratio=1.0), _main(rows, "lexical")
    assert full.recall == 1.0 and full.word_recall == 1.0
    assert full.precision == pytest.approx(full.base_rate)
    assert full.auroc == own.auroc and full.word_auroc == own.word_auroc
    # keep ratio 0.1: ceil(0.1·n) = 1 token per sample (n ≤ 10 here), the first top-scored one:
    # "Alice" (A1's first content word, not a fact) and "Rome" (a fact): word TP 1, FP 1
    low = _main(rows, "lexical", ratio=0.1)
    assert (low.word_precision, low.word_recall) == pytest.approx((0.5, 0.25))


def test_spans_without_types(tiny_model, builtin_tokenizer, tmp_path):
    from engine.resolve import load_data

    rows = [{"question": Q1, "answer": A1, "spans": [{"start": 18, "end": 29}, {"start": 33, "end": 37}]},
            {"question": Q2, "answer": A2, "spans": [{"start": 13, "end": 17}]}]
    (tmp_path / "forget10.json").write_text("".join(json.dumps(r) + "\n" for r in rows))
    samples = load_data(str(tmp_path / "forget10")).forget
    report = selector_report(tiny_model, builtin_tokenizer, samples, ["lexical"])
    assert [r.span_type for r in report] == ["all"]  # one (default) type: no row repeating 'all'
    assert report[0].word_f1 == pytest.approx(0.5)
    untyped = [Sample(Q1, A1, spans=(Span(18, 29, ""), Span(33, 37, "place")))]
    report = selector_report(tiny_model, builtin_tokenizer, untyped, ["all"])
    assert [r.span_type for r in report] == ["all", "place"]
    assert _main(report, "all").word_positives == 3 and _main(report, "all", "place").word_positives == 1


def test_cli_parameter_sets_ratios_and_dump(builtin, tmp_path, capsys):
    out_json, dump = tmp_path / "rows.json", tmp_path / "samples.jsonl"
    rc = main(["selector-report", "--data", "demo/forget01", "--selectors", "lexical,entropy",
               "--param", "entropy.ratio=0.1", "--param", "entropy.ratio=0.5", "--ratios", "0.2",
               "--json", str(out_json), "--per-sample", str(dump)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "entropy[ratio=0.1]" in text and "entropy[ratio=0.5]" in text and "lexical @0.2" in text
    rows = [r for r in json.loads(out_json.read_text())["rows"] if r["span_type"] == "all"]
    assert [(r["selector"], r["ratio"]) for r in rows] == [
        ("lexical", None), ("lexical", 0.2), ("entropy[ratio=0.1]", None), ("entropy[ratio=0.1]", 0.2),
        ("entropy[ratio=0.5]", None), ("entropy[ratio=0.5]", 0.2)]
    by = {r["selector"]: r for r in rows if r["ratio"] is None}
    assert by["entropy[ratio=0.1]"]["recall"] < by["entropy[ratio=0.5]"]["recall"]
    # the ratio sweep ignores the selector's own ratio: both entropy rows at 0.2 are the same
    swept = [r for r in rows if r["ratio"] == 0.2 and r["selector"].startswith("entropy")]
    assert swept[0]["f1"] == swept[1]["f1"]
    lines = dump.read_text().splitlines()
    n = 10  # forget01: 10 samples
    assert len(lines) == 6 * n
    assert main(["selector-report", "--data", "demo/forget01", "--ratios", "0,5"]) == 2
    assert "--ratios" in capsys.readouterr().err
    assert main(["selector-report", "--data", "demo/forget01", "--selectors", "all", "--param", "tif.with_question=true"]) == 2
    assert "not in --selectors" in capsys.readouterr().err
