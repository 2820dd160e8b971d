"""Selectors: formulas on a hand-built bigram model, alignment on real tokenizers, the contract
(EOS never a target, shapes), DTO's untouched weights, and the accuracy report on the built-in model."""
from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from engine.data import Sample, Span
from engine.eval.selector_report import auroc, precision_recall_f1, rank_by_f1, selector_report
from engine.selectors import SELECTORS, NoSpansError, SelectorInput, select
from engine.selectors.base import top_fraction_mask, top_k_mask
from engine.selectors.tif import word_ids, words_missed
from engine.selectors.tokenunlearn import minmax_rows
from engine.tokens import Batch, encode, encode_samples, format_prompt, per_token_nll, relocate, with_prompt

# p(next | previous) of a 3-token bigram "language model", rows = previous token
BIGRAM = torch.tensor([[0.5, 0.25, 0.25],
                       [0.1, 0.6, 0.3],
                       [0.2, 0.2, 0.6]])


class BigramLM(torch.nn.Module):
    """logits[b, t] = log BIGRAM[input_ids[b, t]]: every probability is known by hand."""

    def __init__(self):
        super().__init__()
        self.table = torch.nn.Parameter(BIGRAM.log())

    def forward(self, input_ids, attention_mask=None, **kw):
        return SimpleNamespace(logits=self.table[input_ids])


def bigram_input() -> SelectorInput:
    """One row [0, 1, 2, 2]: prompt token 0, answer tokens 1, 2, closing EOS 2."""
    ids = torch.tensor([[0, 1, 2, 2]])
    label = torch.tensor([[False, True, True, True]])
    eos = torch.tensor([[False, False, False, True]])
    offsets = torch.tensor([[[-1, -1], [0, 1], [1, 2], [-1, -1]]])
    batch = Batch(ids, torch.ones_like(ids), label, eos, offsets, ["ab"], [1])
    return SelectorInput(BigramLM(), None, [Sample("q", "ab")], batch)


def test_wga_satimp_entropy_match_hand_values():
    inp = bigram_input()
    # label 1 after 0: p = 0.25; label 2 after 1: p = 0.3; the EOS (2 after 2, p = 0.6) scores 0
    wga = SELECTORS["wga"](inp)
    assert wga.scores[0].tolist() == pytest.approx([0, 0.25, 0.3, 0])
    sat = SELECTORS["satimp"](inp)
    assert sat.scores[0].tolist() == pytest.approx([0, 0.25**5 * 0.75, 0.3**5 * 0.7, 0])
    ent = SELECTORS["entropy"](inp)
    h_after_0 = -(0.5 * math.log(0.5) + 2 * 0.25 * math.log(0.25))
    h_after_1 = -(0.1 * math.log(0.1) + 0.6 * math.log(0.6) + 0.3 * math.log(0.3))
    assert ent.scores[0].tolist() == pytest.approx([0, h_after_0, h_after_1, 0], rel=1e-5)
    # top 30 % of 2 answer tokens = ceil(0.6) = 1 token: the higher score
    assert wga.mask[0].tolist() == [False, False, True, False]
    assert sat.mask[0].tolist() == [False, False, True, False]
    assert ent.mask[0].tolist() == [False, True, False, False]
    assert SELECTORS["wga"](inp, beta=2.0).scores[0, 1].item() == pytest.approx(0.0625)


def test_top_fraction_and_top_k_masks_by_hand():
    scores = torch.tensor([[0.1, 0.9, 0.5, 0.7, 0.0], [3.0, 1.0, 2.0, 0.0, 0.0]])
    allowed = torch.tensor([[True, True, True, True, False], [True, True, True, False, False]])
    # row 0: ceil(0.5·4) = 2 → 0.9, 0.7; row 1: ceil(0.5·3) = 2 → 3.0, 2.0
    assert top_fraction_mask(scores, allowed, 0.5).tolist() == [[False, True, False, True, False],
                                                                [True, False, True, False, False]]
    assert top_k_mask(scores, allowed, 1).tolist() == [[False, True, False, False, False],
                                                       [True, False, False, False, False]]
    with pytest.raises(ValueError):
        top_fraction_mask(scores, allowed, 0.0)


def test_minmax_rows_by_hand():
    x = torch.tensor([[2.0, 4.0, 6.0, 100.0], [5.0, 5.0, 0.0, 0.0]])
    allowed = torch.tensor([[True, True, True, False], [True, True, False, False]])
    out = minmax_rows(x, allowed)
    assert out[0].tolist() == pytest.approx([0.0, 0.5, 1.0, 0.0])
    assert out[1].tolist() == [0.0, 0.0, 0.0, 0.0]  # a constant row carries no ranking


def test_tokenunlearn_matches_independent_computation(tiny_model, builtin_tokenizer):
    """φ = ½ norm|log p(full) − log p(question masked)| + ½ norm H, recomputed here prompt by prompt."""
    tok = builtin_tokenizer
    samples = [Sample("Where was Ana Lopes born?", "Ana Lopes was born in Lisbon."),
               Sample("What does she write?", "She writes crime novels about sailors.")]
    out = select("tokenunlearn", tiny_model, tok, samples)
    batch = encode_samples(tok, samples)
    for i, s in enumerate(samples):
        a_ids = tok(s.answer, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        logp = {}
        for key, q in (("full", s.question), ("masked", "")):
            p_ids = tok(format_prompt(tok, q), add_special_tokens=False)["input_ids"]
            ids = torch.tensor([p_ids + a_ids])
            with torch.no_grad():
                logits = tiny_model(input_ids=ids).logits[0]
            lp = torch.log_softmax(logits.float(), -1)
            rows = lp[len(p_ids) - 1:len(p_ids) + len(a_ids) - 2]  # predicting the answer tokens, not EOS
            logp[key] = rows.gather(1, torch.tensor(a_ids[:-1])[:, None]).squeeze(1)
            if key == "full":
                ent = -(rows.exp() * rows).sum(-1)
        delta = (logp["full"] - logp["masked"]).abs()
        norm = lambda v: (v - v.min()) / (v.max() - v.min())  # noqa: E731
        phi = 0.5 * norm(delta) + 0.5 * norm(ent)
        got = out.scores[i][batch.answer_mask[i]]
        assert got.tolist() == pytest.approx(phi.tolist(), abs=1e-5)
        n = len(a_ids) - 1
        assert int(out.mask[i].sum()) == math.ceil(0.3 * n)


def test_with_prompt_keeps_answer_tokens_and_relocates(builtin_tokenizer):
    tok = builtin_tokenizer
    batch = encode(tok, ["A long question about a writer?", "Q?"], ["Born in Oslo.", "Yes, in 1970 twice."])
    other = with_prompt(tok, batch, "")
    for i in range(2):
        assert other.input_ids[i][other.label_mask[i]].tolist() == batch.input_ids[i][batch.label_mask[i]].tolist()
        assert other.offsets[i][other.label_mask[i]].tolist() == batch.offsets[i][batch.label_mask[i]].tolist()
    values = torch.arange(other.input_ids.numel(), dtype=torch.float).view_as(other.input_ids) * other.label_mask
    moved = relocate(values, other, batch)
    assert moved[batch.label_mask].tolist() == values[other.label_mask].tolist()
    assert (moved[~batch.label_mask] == 0).all()


def test_tif_words_map_to_tokens_by_offsets():
    # answer "Ann, Bo." tokens: "Ann" [0,3), "," [3,4), " B" [4,6), "o" [6,7), "." [7,8), EOS
    offsets = torch.tensor([[[-1, -1], [0, 3], [3, 4], [4, 6], [6, 7], [7, 8], [-1, -1]]])
    batch = Batch(torch.zeros(1, 7, dtype=torch.long), torch.ones(1, 7, dtype=torch.long),
                  torch.tensor([[False] + [True] * 6]), torch.tensor([[False] * 6 + [True]]), offsets, ["Ann, Bo."], [1])
    words = word_ids(batch)
    assert words.tolist() == [[-1, 0, -1, 1, 1, -1, -1]]
    miss = torch.tensor([[False, False, False, False, True, False, False]])  # "o" of "Bo" missed
    assert words_missed(miss, words).tolist() == [[False, False, False, True, True, False, False]]


def test_tif_marks_whole_words_the_model_cannot_predict(tiny_model, builtin_tokenizer):
    samples = [Sample("Who wrote it?", "Mira Kovac wrote it in 1999.")]
    out = select("tif", tiny_model, builtin_tokenizer, samples)
    batch = encode_samples(builtin_tokenizer, samples)
    words = word_ids(batch)
    for w in words[0].unique().tolist():
        if w >= 0:  # every word is all-in or all-out
            assert len(set(out.mask[0][words[0] == w].tolist())) == 1
    assert set(out.scores.unique().tolist()) <= {0.0, 1.0}


def test_every_selector_keeps_the_contract(tiny_model, builtin_tokenizer, tmp_path, monkeypatch):
    """(B, T) shapes, mask inside the answer tokens: never prompt, padding or the closing EOS."""
    monkeypatch.setenv("WORKBENCH_HOME", str(tmp_path))
    from engine.weights.atwu import AtwuScorer, model_key, save_scorer

    samples = [Sample("Where was Ana Lopes born?", "Ana Lopes was born in Lisbon.", spans=(Span(0, 9, "name"),), uid="a"),
               Sample("When?", "In 1970.", spans=(Span(3, 7, "date"),), uid="b")]
    scorer = AtwuScorer(tiny_model.config.n_embd)
    torch.nn.init.normal_(scorer.linear.weight, std=1.0)
    save_scorer(scorer, model_key(tiny_model), samples)
    batch = encode_samples(builtin_tokenizer, samples)
    for name in SELECTORS:
        out = select(name, tiny_model, builtin_tokenizer, samples, batch=batch)
        assert out.scores.shape == out.mask.shape == batch.input_ids.shape, name
        assert not (out.mask & ~batch.answer_mask).any(), name
        assert not out.mask[batch.eos_mask].any(), name
        assert out.mask.any(), name
        assert torch.isfinite(out.scores).all(), name


def test_oracle_equals_the_spans(builtin_tokenizer, tiny_model):
    s = Sample("Q?", "Born in Oslo in 1970.", spans=(Span(8, 12, "place"), Span(16, 20, "date")))
    out = select("oracle", tiny_model, builtin_tokenizer, [s])
    batch = encode_samples(builtin_tokenizer, [s])
    picked = "".join(s.answer[a:b] for (a, b), m in zip(batch.offsets[0].tolist(), out.mask[0].tolist()) if m)
    assert picked.replace(" ", "") == "Oslo1970"
    with pytest.raises(NoSpansError):
        select("oracle", tiny_model, builtin_tokenizer, [Sample("Q?", "No spans here.")])


@pytest.mark.parametrize("mode", ["vmap", "loop"])
def test_dto_leaves_weights_bit_identical(tiny_model, builtin_tokenizer, mode):
    samples = [Sample("Where was Ana Lopes born?", "Ana Lopes was born in Lisbon."),
               Sample("When?", "In 1970, during a storm.")]
    before = {k: v.clone() for k, v in tiny_model.state_dict().items()}
    out = select("dto", tiny_model, builtin_tokenizer, samples, mode=mode)
    assert out.params["mode"] == mode
    assert all(torch.equal(before[k], v) for k, v in tiny_model.state_dict().items())
    assert out.scores.abs().sum() > 0


def test_dto_vmap_and_loop_agree_and_match_a_manual_probe(tiny_model, builtin_tokenizer):
    import copy

    samples = [Sample("Where was Ana Lopes born?", "Ana Lopes was born in Lisbon."),
               Sample("When?", "In 1970.")]
    a = select("dto", tiny_model, builtin_tokenizer, samples, mode="vmap", probe_lr=0.05)
    b = select("dto", tiny_model, builtin_tokenizer, samples, mode="loop", probe_lr=0.05)
    assert torch.allclose(a.scores, b.scores, atol=1e-5)
    # manual: one SGD ascent step on sample 1 alone, on a copy
    batch = encode_samples(builtin_tokenizer, samples[1:])
    probe = copy.deepcopy(tiny_model)
    nll = per_token_nll(probe(input_ids=batch.input_ids).logits, batch)
    (nll[batch.answer_mask].mean()).backward()
    with torch.no_grad():
        before = -nll.detach()
        for p in probe.parameters():
            p.add_(p.grad, alpha=0.05)
        after = -per_token_nll(probe(input_ids=batch.input_ids).logits, batch)
    want = ((before - after) * batch.answer_mask)[0][batch.label_mask[0]]
    full = encode_samples(builtin_tokenizer, samples)
    got = a.scores[1][full.label_mask[1]]
    assert got.tolist() == pytest.approx(want.tolist(), abs=1e-5)


def test_auroc_and_precision_recall_by_hand():
    # positives 0.35, 0.8 vs negatives 0.1, 0.4: pairs won 3 of 4
    assert auroc(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1])) == pytest.approx(0.75)
    assert auroc(np.array([1.0, 1.0, 1.0]), np.array([0, 1, 1])) == pytest.approx(0.5)  # ties count ½
    assert auroc(np.array([1.0, 2.0]), np.array([1, 1])) is None
    p, r, f1 = precision_recall_f1(np.array([1, 1, 0, 0, 1]), np.array([1, 0, 1, 0, 1]))
    assert (p, r) == pytest.approx((2 / 3, 2 / 3)) and f1 == pytest.approx(2 / 3)


def test_selector_report_on_the_builtin_model(builtin, tmp_path, monkeypatch):
    from engine.models import load_model
    from engine.resolve import load_data
    from engine.selectors import atwu_scorer as atwu

    monkeypatch.setattr(atwu, "scorer_dir", lambda: tmp_path)  # a workbench where no scorer was fitted yet

    model, tok = load_model(builtin.target, "cpu")
    samples = load_data("demo").forget[:40]
    rows = selector_report(model, tok, samples, ["all", "oracle", "entropy", "tif", "atwu"])
    main = {r.selector: r for r in rows if r.span_type == "all"}
    assert rank_by_f1(rows)[0] == "oracle"
    assert main["oracle"].f1 == 1.0 and main["oracle"].auroc == 1.0
    assert main["all"].precision == pytest.approx(main["all"].base_rate) and main["all"].recall == 1.0
    assert main["all"].auroc == pytest.approx(0.5)
    assert 0 < main["all"].base_rate < 0.5
    assert "fit-scorer" in main["atwu"].note or "scorer" in main["atwu"].note
    types = {r.span_type for r in rows if r.selector == "oracle"} - {"all"}
    assert {"name", "place", "date"} <= types


def test_selector_report_refuses_data_without_spans(tiny_model, builtin_tokenizer):
    with pytest.raises(NoSpansError, match="unavailable"):
        selector_report(tiny_model, builtin_tokenizer, [Sample("Q?", "An answer.")])


def test_score_and_report_cli_write_json_and_csv(builtin, tmp_path, capsys):
    import csv
    import json

    from engine.cli import main

    out = tmp_path / "s.json"
    assert main(["score", "--selector", "entropy", "--data", "demo/forget01", "--json", str(out), "--limit", "1"]) == 0
    payload = json.loads(out.read_text())
    first = payload["samples"][0]
    assert len(first["tokens"]) == len(first["scores"]) == len(first["mask"]) and any(first["mask"])
    assert "".join(first["tokens"]).strip() == first["answer"].strip()
    rep = tmp_path / "r.csv"
    assert main(["selector-report", "--data", "demo/forget01", "--selectors", "all,oracle", "--csv", str(rep)]) == 0
    rows = list(csv.DictReader(rep.open()))
    assert {r["selector"] for r in rows} == {"all", "oracle"}
    assert main(["score", "--selector", "nope"]) == 2
    assert "unknown selector" in capsys.readouterr().err


def test_tif_predictor_model_replaces_the_target_as_predictor(builtin):
    from engine.models import load_model
    from engine.resolve import load_data

    target, tok = load_model(builtin.target, "cpu")
    retain, _ = load_model(builtin.retain, "cpu")
    samples = load_data("demo").forget[:8]
    via_param = select("tif", target, tok, samples, predictor="demo-retain", with_question=True)
    direct = select("tif", retain, tok, samples, with_question=True)
    assert torch.equal(via_param.mask, direct.mask)
    assert not torch.equal(via_param.mask, select("tif", target, tok, samples, with_question=True).mask)
