"""Leak check: leak rate on fixed generations (no model), and one CLI call on the built-in model."""
from __future__ import annotations

import csv
import json

import pytest

from engine.cli import main
from engine.masks import leak_rows, summarise, target_texts


def test_target_texts_dedupe_and_drop_punctuation():
    answer = "Elvin met Elvin, in Baku."
    assert target_texts(answer, [(0, 5), (10, 15), (15, 16), (20, 24)]) == ["Elvin", "Baku"]


def test_leak_rate_by_hand():
    rows = leak_rows(["q0", "q1", "q2"],
                     ["He was born in baku, Azerbaijan.", "Elvin  Mammadov wrote it.", "I do not know."],
                     [["Baku", "April 13, 1970"], ["Elvin Mammadov"], []])
    assert rows[0].exact == [False, False] and rows[0].normalised == [True, False]
    assert rows[1].exact == [False] and rows[1].normalised == [True]  # two spaces: only the normalised match
    report = summarise(rows)
    assert report.leak_rate == pytest.approx(2 / 3)        # 2 of 3 targets leak (normalised)
    assert report.exact_leak_rate == 0.0
    assert report.sample_leak_rate == 1.0                  # both samples with targets leak
    assert summarise(leak_rows(["q"], ["x"], [[]])).leak_rate is None


def test_normalised_match_is_whole_words():
    rows = leak_rows(["q"], ["Mammadovich wrote it"], [["Mammadov"]])
    assert rows[0].normalised == [False] and rows[0].exact == [True]


def test_cli_on_the_builtin_model(tmp_path, builtin, capsys):
    out_json, out_csv = tmp_path / "leak.json", tmp_path / "leak.csv"
    rules = tmp_path / "rules.jsonl"
    rules.write_text('{"phrase": "born", "target": true, "whole_words": true}\n')
    rc = main(["leak-check", "--model", "demo", "--data", "demo", "--limit", "3", "--store", str(tmp_path / "s.sqlite"),
               "--json", str(out_json), "--csv", str(out_csv)])
    assert rc == 0
    report = json.loads(out_json.read_text())
    assert len(report["rows"]) == 3 and report["targets"] == "ground-truth spans"
    n = sum(r["n_targets"] for r in report["rows"])
    assert n > 0 and report["leak_rate"] == pytest.approx(sum(r["n_leaked"] for r in report["rows"]) / n)
    assert len(list(csv.DictReader(out_csv.open()))) == 3
    assert "leak rate" in capsys.readouterr().out
    rc = main(["leak-check", "--limit", "3", "--rules", str(rules), "--store", str(tmp_path / "s.sqlite"),
               "--json", str(out_json)])
    assert rc == 0
    with_rules = json.loads(out_json.read_text())
    assert "1 rules" in with_rules["targets"]
    assert any("born" in r["targets"] for r in with_rules["rows"])  # the rule added "born" as a target
    assert not any("born" in r["targets"] for r in report["rows"])


def test_cli_bad_span_file_names_the_line(tmp_path, builtin, capsys):
    bad = tmp_path / "spans.jsonl"
    bad.write_text('{"question": "q", "answer": "a", "spans": [{"start": 0}]}\n')
    rc = main(["leak-check", "--limit", "2", "--spans", str(bad), "--store", str(tmp_path / "s.sqlite")])
    assert rc == 2
    assert "spans.jsonl:1: field 'spans[0].end'" in capsys.readouterr().err


def test_cli_mask_set_targets_are_its_token_spans(tmp_path, builtin, builtin_tokenizer):
    from engine.fingerprint import text_hash, tokenizer_fingerprint
    from engine.masks import label_offsets, spans_to_label_mask
    from engine.resolve import load_data
    from engine.store import Store

    samples = load_data("demo").forget[:2]
    offsets = label_offsets(builtin_tokenizer, samples)
    store = Store(tmp_path / "s.sqlite")
    word = "Porto"  # mark one word of sample 1 only; sample 0 gets an empty mask
    at = samples[1].answer.index(word)
    masks = {samples[0].uid: (text_hash(samples[0].question, samples[0].answer), [0] * len(offsets[0])),
             samples[1].uid: (text_hash(samples[1].question, samples[1].answer),
                              [int(x) for x in spans_to_label_mask(offsets[1], [(at, at + len(word))])])}
    store.create_mask_set("porto", "demo", "demo", tokenizer_fingerprint(builtin_tokenizer), masks=masks)
    out = tmp_path / "leak.json"
    rc = main(["leak-check", "--mask-set", "porto", "--limit", "2", "--store", str(tmp_path / "s.sqlite"),
               "--json", str(out)])
    assert rc == 0
    rows = json.loads(out.read_text())["rows"]
    assert [r["targets"] for r in rows] == [[], [word]]
