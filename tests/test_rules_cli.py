"""Phrase rules outside the app: stored with a mask set (engine/store/rules.py), applied to a run's
fixed weights (engine/weights/fixed.py, with the precedence of engine.masks.rules), and given to
`unlearn --rules FILE`, which records them in the run's config."""
from __future__ import annotations

import json

import pytest
import torch

from engine.cli import main
from engine.data import Sample
from engine.fingerprint import tokenizer_fingerprint, text_hash
from engine.masks import Rule, label_offsets, rules_to_json
from engine.store import NotFound, Store
from engine.weights.fixed import FixedWeights, weights_from_mask_set, with_rules

RULES = json.dumps([{"phrase": "Blue Rivers", "target": True, "whole_words": False, "case_sensitive": False}])


@pytest.fixture()
def store(tmp_path):
    s = Store(tmp_path / "store.sqlite")
    s.create_mask_set("a", "m", "d", "tok", None, {"u1": ("h", [1, 0, 0])})
    return s


# ---------------------------------------------------------------- the store

def test_rules_round_trip_and_replace(store):
    assert store.get_rules("a") is None
    store.set_rules("a", RULES)
    assert json.loads(store.get_rules("a")) == json.loads(RULES)
    store.set_rules("a", json.dumps([{"phrase": "x", "target": False}]))
    assert json.loads(store.get_rules("a")) == [{"phrase": "x", "target": False}]
    store.set_rules("a", "[]")  # an empty list removes them
    assert store.get_rules("a") is None


def test_bad_rules_and_unknown_set_write_nothing(store):
    store.set_rules("a", RULES)
    for bad in ("{not json", '{"phrase": "x"}', '["x"]'):
        with pytest.raises(ValueError, match="rules of mask set 'a'"):
            store.set_rules("a", bad)
    assert store.get_rules("a") == RULES
    with pytest.raises(NotFound):
        store.set_rules("nope", RULES)
    with pytest.raises(NotFound):
        store.get_rules("nope")


def test_duplicate_export_import_delete_carry_the_rules(store):
    store.set_rules("a", RULES)
    store.duplicate_mask_set("a", "b")
    assert json.loads(store.get_rules("b")) == json.loads(RULES)
    payload = store.export_mask_set("a")
    assert payload["rules"] == json.loads(RULES)
    assert store.import_mask_set(payload, "c") == "c"
    assert json.loads(store.get_rules("c")) == json.loads(RULES)
    store.delete_mask_set("a")
    assert store.get_rules("b") is not None  # the copy keeps its own rules
    plain = store.export_mask_set("b")
    del plain["rules"]
    store.import_mask_set(plain, "d")
    assert store.get_rules("d") is None
    bad = {**store.export_mask_set("b"), "rules": ["x"]}
    with pytest.raises(ValueError, match="field 'rules'"):
        store.import_mask_set(bad, "e")
    assert "e" not in {m.name for m in store.list_mask_sets()}


# ---------------------------------------------------------------- weights with rules

ANSWER_1 = "Alice Smith wrote Blue Rivers in Oslo."
ANSWER_2 = "Blue Rivers was written by Bob Stone."
SAMPLES = [Sample("Who wrote it?", ANSWER_1, uid="u1"), Sample("What did Bob write?", ANSWER_2, uid="u2")]


def _covering(offsets, text: str, phrase: str) -> list[int]:
    """Label positions whose token overlaps `phrase` in `text` (computed here from the offsets)."""
    s = text.index(phrase)
    e = s + len(phrase)
    return [j for j, (a, b) in enumerate(offsets) if a >= 0 and a < e and b > s]


def test_with_rules_later_rule_wins_and_soft_weights_keep_base(builtin_tokenizer):
    offsets = label_offsets(builtin_tokenizer, SAMPLES)
    n = [len(o) for o in offsets]
    oslo = _covering(offsets[0], ANSWER_1, "Oslo")
    targets = [torch.zeros(n[0], dtype=torch.bool), torch.zeros(n[1], dtype=torch.bool)]
    targets[0][oslo] = True
    weights = [torch.full((n[0],), 0.3), torch.full((n[1],), 0.3)]
    out = with_rules(FixedWeights(weights, targets, "selector:x"), builtin_tokenizer, SAMPLES,
                     [Rule("blue rivers", True), Rule("rivers", False)])
    for i, text in enumerate((ANSWER_1, ANSWER_2)):
        blue = set(_covering(offsets[i], text, "Blue"))
        rivers = set(_covering(offsets[i], text, "Rivers"))
        expect = (blue - rivers) | (set(oslo) if i == 0 else set())
        assert {j for j, v in enumerate(out.target_rows[i].tolist()) if v} == expect
        for j in range(n[i]):  # a rule-made target weighs 1, an unmade 0, an untouched token keeps 0.3
            want = 1.0 if j in blue - rivers else 0.0 if j in rivers else 0.3
            assert out.weights[i][j].item() == pytest.approx(want)
    assert out.name == "selector:x+rules(2)"


def test_mask_set_rules_keep_hand_edits_and_cover_missing_samples(tmp_path, builtin_tokenizer):
    offsets = label_offsets(builtin_tokenizer, SAMPLES)
    blue_rivers = _covering(offsets[0], ANSWER_1, "Blue Rivers")
    edited = blue_rivers[0]  # a person unmarked the first token the set's rule marks
    wrote = _covering(offsets[0], ANSWER_1, "wrote")
    stored = [0] * len(offsets[0])
    for j in blue_rivers[1:] + wrote:
        stored[j] = 1
    s = Store(tmp_path / "store.sqlite")
    s.create_mask_set("m", "demo", "d", tokenizer_fingerprint(builtin_tokenizer), None,
                      {"u1": (text_hash(SAMPLES[0].question, ANSWER_1), stored)})  # u2 not in the set
    s.set_rules("m", json.dumps(rules_to_json([Rule("Blue Rivers", True)])))
    fw = weights_from_mask_set(s, "m", builtin_tokenizer, SAMPLES,
                               [Rule("blue", True), Rule("wrote", False), Rule("Stone", True)])
    got = [{j for j, v in enumerate(t.tolist()) if v} for t in fw.target_rows]
    # sample 1: the hand edit beats the later "blue" rule; "wrote" (not a rule's, so base) is unmade
    assert got[0] == set(blue_rivers) - {edited}
    # sample 2: no stored mask, so the set's rule and the later rules decide
    assert got[1] == set(_covering(offsets[1], ANSWER_2, "Blue Rivers")) | set(_covering(offsets[1], ANSWER_2, "Stone"))
    assert fw.name == "mask_set:m+rules(4)"


# ---------------------------------------------------------------- the CLI

def test_unlearn_rules_recorded_in_the_run_config(tiny_env, capsys):
    model_dir, tmp = tiny_env
    rules_file = tmp / "rules.jsonl"
    rules_file.write_text('{"phrase": "the", "target": false, "whole_words": true}\n'
                          '{"phrase": "Oslo", "target": true}\n')
    out_json = tmp / "run.json"
    rc = main(["unlearn", "--model", str(model_dir), "--data", "demo/forget01", "--loss", "ga", "--epochs", "1",
               "--max-steps", "1", "--no-eval", "--no-checkpoints", "--rules", str(rules_file),
               "--json", str(out_json)])
    assert rc == 0
    config = json.loads(out_json.read_text())["config"]
    assert config["rules"] == [{"phrase": "the", "target": False, "whole_words": True, "case_sensitive": False},
                               {"phrase": "Oslo", "target": True, "whole_words": False, "case_sensitive": False}]
    run = Store(tmp / "store.sqlite").list_runs()[0]
    assert run.config.rules == config["rules"]


def test_unlearn_bad_rules_file_names_line_and_field(tiny_env, capsys):
    model_dir, tmp = tiny_env
    rules_file = tmp / "rules.jsonl"
    rules_file.write_text('{"phrase": "Oslo", "target": true}\n{"phrase": "x", "target": "yes"}\n')
    rc = main(["unlearn", "--model", str(model_dir), "--data", "demo/forget01", "--loss", "ga",
               "--rules", str(rules_file)])
    assert rc == 2
    err = capsys.readouterr().err
    assert f"{rules_file}:2" in err and "'target'" in err
    assert Store(tmp / "store.sqlite").list_runs() == []
