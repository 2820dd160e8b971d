"""The mask-set service (engine/mask_sets.py): one home for creating, editing, bulk applying
and rule changes, with one rule precedence that the Edit tab and a run share, and the `masks` CLI
command over it."""
from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from engine.cli import main
from engine.data import Sample
from engine.fingerprint import text_hash, tokenizer_fingerprint
from engine.masks import Rule, label_offsets
from engine.mask_sets import MaskSets
from engine.store import Store
from engine.weights.fixed import weights_from_mask_set

ANSWERS = ["Blue Rivers wrote of Oslo and Blue Rivers again.", "Stone Blue Rivers lived in Oslo."]
SAMPLES = [Sample(question=f"Who is {i}?", answer=a, uid=f"u{i}") for i, a in enumerate(ANSWERS)]


def _covering(offsets, answer: str, phrase: str) -> list[int]:
    start = answer.index(phrase)
    end = start + len(phrase)
    return [j for j, (a, b) in enumerate(offsets) if b > a and a < end and b > start]


class FakeExplore:
    """The provider the service needs (engine.explore.ExploreService's names), on two samples
    with a fixed 'selector' marking each answer's first token."""

    def __init__(self, tokenizer):
        self.tok = tokenizer
        self.offsets = label_offsets(tokenizer, SAMPLES)

    def model(self, name):
        return None, self.tok

    def samples(self, data, split="forget"):
        return SAMPLES

    def fingerprint(self, name):
        return tokenizer_fingerprint(self.tok)

    def default_masks(self, model, data, selector, split="forget", params=None, progress=None):
        return {s.uid: (text_hash(s.question, s.answer), [1] + [0] * (len(o) - 1))
                for s, o in zip(SAMPLES, self.offsets)}

    def info(self, model, data, split, index):
        s, o = SAMPLES[index], self.offsets[index]
        return SimpleNamespace(uid=s.uid, question=s.question, answer=s.answer, tokens=o,
                               text_hash=text_hash(s.question, s.answer))

    def selector_row(self, model, data, split, index, selector, params=None):
        return SimpleNamespace(ok=True, mask=[1] + [0] * (len(self.offsets[index]) - 1), error=None)


@pytest.fixture()
def service(tmp_path, builtin_tokenizer, monkeypatch):
    monkeypatch.setattr("engine.selectors.SELECTORS", {"first": None})
    return MaskSets(Store(tmp_path / "store.sqlite"), FakeExplore(builtin_tokenizer))


def test_create_edit_rules_and_bulk_through_the_service(service):
    offs = service.explore.offsets
    assert service.create("s", "first", "m", "d") == 2
    with pytest.raises(ValueError, match="already exists"):
        service.create("s", "first", "m", "d")
    # a hand edit: unmark the first token of sample 0 (its selector marked it)
    ms, info, mask = service.sample("s", 0)
    assert mask[0] == 1
    service.save("s", info.uid, info.text_hash, [0] + mask[1:])
    # a rule marks "Oslo" everywhere; the hand edit survives it; removing the rule removes only its effect
    written = service.add_rule("s", Rule("Oslo", True))
    assert written == ["u0", "u1"]
    oslo0 = set(_covering(offs[0], ANSWERS[0], "Oslo"))
    sd = service.read("s")
    assert {j for j, v in enumerate(sd.masks[0]) if v} == oslo0  # token 0 stays unmarked (hand edit)
    rule, written = service.remove_rule("s", 0)
    assert rule.phrase == "Oslo" and written == ["u0", "u1"]
    assert service.read("s").masks[0] == [0] * len(offs[0])
    with pytest.raises(ValueError, match="no rule #1"):
        service.remove_rule("s", 0)
    # bulk apply keeping the hand-edited sample 0
    written, total = service.bulk_apply("s", "first", keep_edited=True)
    assert (written, total) == (["u1"], 2)
    assert service.read("s").masks[0][0] == 0


def test_a_run_and_the_edit_tab_give_the_same_masks(service, builtin_tokenizer):
    """One precedence from one base: a hand edit on a token no rule of the set covers is kept by a
    run's extra rule exactly as the Edit tab keeps it when the same rule is added there."""
    offs = service.explore.offsets
    service.create("s", "first", "m", "d")
    ms, info, mask = service.sample("s", 0)
    service.save("s", info.uid, info.text_hash, [0] + mask[1:])  # hand edit on token 0 (no rule covers it)
    service.add_rule("s", Rule("Oslo", True))
    first_word = ANSWERS[0].split()[0]  # "Blue": covers token 0
    extra = Rule(first_word, True)
    base = service.base(service.read("s"))
    run = weights_from_mask_set(service.store, "s", builtin_tokenizer, SAMPLES, [extra], base=base)
    service.add_rule("s", extra)  # the same rule, added in the Edit tab
    tab = service.read("s").masks
    for i in range(2):
        got = [int(v) for v in run.target_rows[i].tolist()]
        want = list(tab[i])
        want[-1] = 0  # the closing EOS is never a target in a run
        assert got == want, i
    assert run.target_rows[0][0].item() is False  # the hand edit beat the later rule
    blue1 = _covering(offs[1], ANSWERS[1], first_word)
    assert all(run.target_rows[1][j].item() for j in blue1)  # no hand edit there: the rule decides


def test_masks_cli_create_rule_export_import(tmp_path, builtin, capsys):
    store = str(tmp_path / "s.sqlite")
    base = ["masks", "--store", store]
    assert main([*base, "--create", "lex", "--selector", "lexical", "--data", "demo/forget01"]) == 0
    assert main([*base, "--add-rule", "lex", "--phrase", "the", "--never", "--whole-words"]) == 0
    assert main([*base, "--remove-rule", "lex", "--rule", "2"]) == 2  # no rule #2: bad input
    assert "no rule #2" in capsys.readouterr().err
    out = tmp_path / "lex.json"
    assert main([*base, "--export", "lex", "--json", str(out)]) == 0
    payload = json.loads(out.read_text())
    assert payload["rules"][0]["phrase"] == "the" and payload["rules"][0]["target"] is False
    assert main([*base, "--import", str(out), "--name", "lex2"]) == 0
    assert main([*base, "--apply", "lex2", "--selector", "all", "--keep-edited"]) == 0
    assert main([*base, "--create", "x"]) == 2  # --selector missing
    capsys.readouterr()
    assert main(base) == 0
    listed = capsys.readouterr().out
    assert "lex\t" in listed and "lex2\t" in listed
