"""What makes a per-epoch (subsampled) evaluation cheap (issue 23 item 2), each checked against
the full protocol: greedy answers only for the seeded rows, packed into as few decode batches as
the batch size allows and cut at the data's answer length; ROUGE on memoised tokens equal to
rouge-score's; tokenisation kept between a run's evaluations; the record and the CLI say which
epochs are subsampled."""
from __future__ import annotations

import math

import pytest

from engine.data import Sample


class WordTokenizer:
    """Whitespace tokens, ids = word lengths (only the counts matter to `answer_token_cap`)."""

    def __call__(self, texts, add_special_tokens=True):
        return {"input_ids": [[len(w) for w in t.split()] for t in texts]}


def test_answer_token_cap_is_the_longest_answer_plus_eos():
    from engine.eval.full import answer_token_cap

    rows = [Sample(question="q1", answer="a b c"), Sample(question="q2", answer="one"),
            Sample(question="q3", answer="w x y z v")]
    assert answer_token_cap(WordTokenizer(), rows) == 6  # 5 words + EOS
    assert answer_token_cap(WordTokenizer(), rows[:2]) == 4
    assert answer_token_cap(WordTokenizer(), []) == 1


def test_memoised_rouge_equals_rouge_score():
    from engine.eval import metrics

    preds = ["The writer was born in Porto, Portugal!", "", "running runners ran", "x y z", "Porto"]
    refs = ["That author is Voavplis Vouthpev, born in Porto.", "abc", "he runs and running", "", "porto"]
    scorer = metrics._rouge_scorer()
    want = [scorer.score(r, p)["rougeL"].recall for p, r in zip(preds, refs)]
    for _ in range(2):  # the second call reads the memoised tokens
        assert metrics.rouge_l_recall(preds, refs).tolist() == pytest.approx(want, abs=0)
    assert want[0] == pytest.approx(3 / 8) and want[4] == 1.0  # "born in porto" of the reference's 8 words


def _spy_decode(monkeypatch):
    from engine.eval import passes

    calls = []
    real = passes.greedy_decode

    def spy(model, prompts, rows, max_new_tokens, eos_id):
        out = real(model, prompts, rows, max_new_tokens, eos_id)
        calls.append((len(rows), max_new_tokens, max(len(r) for r in out)))
        return out
    monkeypatch.setattr(passes, "greedy_decode", spy)
    return calls


def test_subsampled_pass_generates_the_seeded_rows_packed_and_capped(target, monkeypatch):
    from engine.eval.full import answer_token_cap, eval_splits, evaluate_and_score, rouge_subsample

    model, tok, bench, ref = target
    calls = _spy_decode(monkeypatch)
    rows, batch = 3, 8
    sub, _ = evaluate_and_score(model, tok, bench, ref, retain_size=20, max_new_tokens=64, batch_size=batch,
                                rouge_rows=rows, rouge_seed=7)
    splits = eval_splits(bench, 20)
    seeded = {s.question for _, _, v in splits for s in rouge_subsample(v, rows, 7)}
    cap = answer_token_cap(tok, [s for _, _, v in splits for s in v])
    assert cap < 64 and sub.new_tokens == cap
    assert sum(n for n, _, _ in calls) == len(seeded)  # the seeded rows only, each once
    assert len(calls) == math.ceil(len(seeded) / batch)  # packed: ceil(12 / 8) = 2 decode loops
    assert all(limit == cap and longest <= cap for _, limit, longest in calls)
    assert set(sub.forget_generations) == seeded & {s.question for s in bench.eval_split("forget")}

    calls.clear()
    full, _ = evaluate_and_score(model, tok, bench, ref, retain_size=20, max_new_tokens=64, batch_size=batch)
    every = {s.question for _, _, v in splits for s in v}
    assert sum(n for n, _, _ in calls) == len(every) and full.new_tokens == 64
    assert all(limit == 64 for _, limit, _ in calls)
    assert set(full.forget_generations) == {s.question for s in bench.eval_split("forget")}


def test_tokenisation_is_kept_between_evaluations(target, monkeypatch):
    from engine.eval import passes

    model, tok, bench, _ = target
    pairs = [(s.question, s.answer) for s in bench.eval_split("forget")[:6]]
    first = passes.run(model, tok, [q for q, _ in pairs[:2]], pairs, max_new_tokens=4, batch_size=4)
    encoded = []
    real = passes.encode
    monkeypatch.setattr(passes, "encode", lambda *a, **k: encoded.append(1) or real(*a, **k))
    again = passes.run(model, tok, [q for q, _ in pairs[:2]], pairs, max_new_tokens=4, batch_size=4)
    assert encoded == []  # the same tokenizer, format and inputs: nothing tokenised again
    assert again.generations == first.generations
    assert all(again.nll[p].tolist() == first.nll[p].tolist() for p in pairs)
    passes.run(model, tok, [], pairs[:3], batch_size=4)  # other inputs: tokenised
    assert encoded


def test_cli_marks_subsampled_epochs():
    from engine.cli.unlearn import format_epoch

    line = format_epoch({"epoch": 3, "model_utility": 0.5, "subsampled": True, "rouge_rows": 40,
                         "eval_new_tokens": 21})
    assert line.endswith("[subsampled: generations on 40 rows/split, answers ≤ 21 tokens]")
    assert "subsampled" not in format_epoch({"epoch": 4, "model_utility": 0.5, "subsampled": False})
