"""Import/export of masks as character spans and as TIF/TPO word lists; bad files name line and field."""
from __future__ import annotations

import json

import pytest

from engine.data import Sample
from engine.masks import (
    CharSpan,
    MaskFileError,
    export_spans,
    export_words,
    label_offsets,
    mask_accuracy,
    masks_from_records,
    read_span_file,
    read_word_file,
    spans_to_label_mask,
    to_jsonl,
    truth_from_records,
)
from engine.masks.interop import word_list_spans

SAMPLES = [Sample("Where was Elvin Mammadov born?", "Elvin Mammadov was born in Baku, Azerbaijan."),
           Sample("What does his father do?", "His father worked as a paramedic in Baku.")]


def _span_text(rows):
    return to_jsonl(rows)


def test_span_round_trip_through_token_masks(builtin_tokenizer):
    offsets = label_offsets(builtin_tokenizer, SAMPLES)
    a0, a1 = SAMPLES[0].answer, SAMPLES[1].answer
    rows = [{"question": SAMPLES[0].question, "answer": a0,
             "spans": [{"start": 0, "end": 14}, {"start": a0.index("Baku"), "end": a0.index("Baku") + 4}]},
            {"question": SAMPLES[1].question, "answer": a1,
             "spans": [{"start": a1.index("paramedic"), "end": a1.index("paramedic") + 9}]}]
    records = read_span_file(_span_text(rows), source="spans.jsonl")
    masks = masks_from_records(SAMPLES, offsets, records)
    assert all(m is not None and any(m) and not m[-1] for m in masks)
    assert masks[0] == spans_to_label_mask(offsets[0], [(0, 14), (a0.index("Baku"), a0.index("Baku") + 4)])
    assert export_spans(SAMPLES, offsets, masks) == rows


def test_imported_spans_serve_as_ground_truth(builtin_tokenizer):
    offsets = label_offsets(builtin_tokenizer, SAMPLES)
    row = {"question": SAMPLES[1].question, "answer": SAMPLES[1].answer,
           "spans": [{"start": 23, "end": 32, "type": "occupation"}]}
    records = read_span_file(_span_text([row]), source="truth.jsonl")
    truth = truth_from_records(SAMPLES, records)
    assert truth == [[], [CharSpan(23, 32, "occupation")]]
    masks = [spans_to_label_mask(o, t) for o, t in zip(offsets, truth)]
    acc = mask_accuracy([s.answer for s in SAMPLES], offsets, masks, truth)
    assert acc.token.f1 == 1.0 and acc.token_by_type["occupation"].recall == 1.0


def test_word_lists_mark_every_whole_word_occurrence(builtin_tokenizer):
    answer = "Baku and baku, not Bakuvian."
    assert word_list_spans(answer, ["Baku"]) == [CharSpan(0, 4), CharSpan(9, 13)]
    offsets = label_offsets(builtin_tokenizer, SAMPLES)
    text = to_jsonl([{"question": s.question, "answer": s.answer, "target_words": ["Baku", "paramedic"]}
                     for s in SAMPLES])
    masks = masks_from_records(SAMPLES, offsets, read_word_file(text, source="words.jsonl"))
    exported = export_words(SAMPLES, offsets, masks)
    assert [r["target_words"] for r in exported] == [["Baku"], ["paramedic", "Baku"]]
    again = masks_from_records(SAMPLES, offsets, read_word_file(to_jsonl(exported), source="again.jsonl"))
    assert again == masks


def test_samples_without_a_record_get_none(builtin_tokenizer):
    offsets = label_offsets(builtin_tokenizer, SAMPLES)
    text = to_jsonl([{"question": SAMPLES[1].question, "answer": SAMPLES[1].answer, "spans": []}])
    masks = masks_from_records(SAMPLES, offsets, read_span_file(text, source="s"))
    assert masks[0] is None and masks[1] == [False] * len(offsets[1])


@pytest.mark.parametrize("row, message", [
    ({"answer": "x", "spans": []}, "field 'question': missing"),
    ({"question": "q", "answer": "abc", "spans": [{"start": 0, "end": 9}]}, r"field 'spans\[0\]': \[0, 9\) is outside"),
    ({"question": "q", "answer": "abc", "spans": [{"start": "0", "end": 2}]}, r"field 'spans\[0\].start': expected an integer"),
    ({"question": "q", "answer": "abc", "spans": {"start": 0}}, "field 'spans': expected a list"),
    ({"question": "q", "answer": "abc"}, "field 'spans': missing"),
])
def test_bad_span_files_name_line_and_field(tmp_path, row, message):
    path = tmp_path / "spans.jsonl"
    good = {"question": SAMPLES[0].question, "answer": SAMPLES[0].answer, "spans": []}
    path.write_text(json.dumps(good) + "\n" + json.dumps(row) + "\n")
    with pytest.raises(MaskFileError, match=f"spans.jsonl:2: {message}"):
        read_span_file(str(path))


def test_bad_word_files_and_unknown_samples():
    bad = to_jsonl([{"question": "q", "answer": "a", "target_words": ["ok", ""]}])
    with pytest.raises(MaskFileError, match=r"words.jsonl:1: field 'target_words\[1\]'"):
        read_word_file(bad, source="words.jsonl")
    stranger = to_jsonl([{"question": SAMPLES[0].question, "answer": SAMPLES[0].answer, "target_words": []},
                         {"question": "Who?", "answer": "Nobody.", "target_words": ["Nobody"]}])
    with pytest.raises(MaskFileError, match="w.jsonl:2: field 'question': no forget sample"):
        masks_from_records(SAMPLES, [[(0, 1)], [(0, 1)]], read_word_file(stranger, source="w.jsonl"), "w.jsonl")
    twice = to_jsonl([{"question": SAMPLES[0].question, "answer": SAMPLES[0].answer, "spans": []}] * 2)
    with pytest.raises(MaskFileError, match="t.jsonl:2: .*second record"):
        truth_from_records(SAMPLES, read_span_file(twice, source="t.jsonl"), "t.jsonl")


def test_common_words_are_the_general_words_and_targets_their_complement(builtin_tokenizer):
    from engine.masks import export_common_words, read_common_words_file
    from engine.masks.interop import complement_spans

    answer = SAMPLES[0].answer  # "Elvin Mammadov was born in Baku, Azerbaijan."
    # general words: "was born in" (16..27) -> targets: Elvin, Mammadov, Baku, Azerbaijan (not the punctuation)
    assert complement_spans(answer, [CharSpan(15, 18), CharSpan(19, 23), CharSpan(24, 26)]) == \
        [CharSpan(0, 5), CharSpan(6, 14), CharSpan(27, 31), CharSpan(33, 43)]
    offsets = label_offsets(builtin_tokenizer, SAMPLES)
    # the authors' rows store each general word as a JSON string (Unlearning-TPO, TOFU/data/*_with_common_words_*)
    authors = ['{"word": "was", "start": 15, "end": 18}', '{"word": "born", "start": 19, "end": 23}', [24, 26]]
    text = to_jsonl([{"question": SAMPLES[0].question, "answer": answer, "common_words": authors},
                     {"question": SAMPLES[1].question, "answer": SAMPLES[1].answer,
                      "common_words": [{"start": 0, "end": 3}, {"start": 4, "end": 10}]}])
    masks = masks_from_records(SAMPLES, offsets, read_common_words_file(text, source="tpo.jsonl"))
    exported = export_common_words(SAMPLES, offsets, masks)
    assert [json.loads(w) for w in exported[0]["common_words"]] == [
        {"word": "was", "start": 15, "end": 18}, {"word": "born", "start": 19, "end": 23}, {"word": "in", "start": 24, "end": 26}]
    assert [(w["start"], w["end"]) for w in map(json.loads, exported[1]["common_words"])] == [(0, 3), (4, 10)]
    assert [w["word"] for w in json.loads(exported[0]["target_words"])] == ["Elvin", "Mammadov", "Baku", "Azerbaijan"]
    again = masks_from_records(SAMPLES, offsets, read_common_words_file(to_jsonl(exported), source="again.jsonl"))
    assert again == masks
    bad = to_jsonl([{"question": "q", "answer": "abc", "common_words": [[0, 9]]}])
    with pytest.raises(MaskFileError, match=r"common_words\[0\]"):
        read_common_words_file(bad, source="bad.jsonl")
