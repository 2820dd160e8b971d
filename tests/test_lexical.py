"""The `lexical` baseline selector: content words of the answer absent from the question."""
from __future__ import annotations

from engine.data import Sample
from engine.selectors import select
from engine.selectors.lexical import content_word_spans, normal_form
from engine.tokens import encode_samples


def test_normal_form_drops_case_and_possessive():
    assert normal_form("Mammadov's") == "mammadov"
    assert normal_form("Baku’s") == "baku"
    assert normal_form("The") == "the"


def test_content_words_skip_stop_words_and_question_words():
    q = "Where was Elvin Mammadov born?"
    a = "Elvin Mammadov was born in Baku, Azerbaijan in 1970."
    # words: Elvin(q) Mammadov(q) was(stop) born(q) in(stop) Baku Azerbaijan in(stop) 1970(number)
    spans = content_word_spans(q, a)
    assert [a[s:e] for s, e in spans] == ["Baku", "Azerbaijan", "1970"]


def test_possessive_of_a_question_word_is_not_a_target():
    spans = content_word_spans("Who is Hsiao?", "Hsiao's father is a civil engineer.")
    assert [("Hsiao's father is a civil engineer."[s:e]) for s, e in spans] == ["father", "civil", "engineer"]


def test_selector_maps_words_to_tokens_by_offsets(tiny_model, builtin_tokenizer):
    q, a = "Where was Elvin born?", "Elvin was born in Baku."
    out = select("lexical", tiny_model, builtin_tokenizer, [Sample(q, a)])
    batch = encode_samples(builtin_tokenizer, [Sample(q, a)])
    offs = batch.offsets[0]
    expected = [bool(batch.answer_mask[0, t]) and int(offs[t, 0]) < a.index("Baku") + 4 and int(offs[t, 1]) > a.index("Baku")
                for t in range(offs.shape[0])]
    assert out.mask[0].tolist() == expected
    assert any(expected)
    assert out.scores[0].tolist() == [float(x) for x in expected]
    assert not out.mask[0][batch.eos_mask[0]].any()
