"""Import and export masks as character spans or as word lists. Returns data; never touches the store.

(a) Span files, JSON lines: `{"question", "answer", "spans": [{"start", "end", "type"?}]}`, the
    built-in benchmark's ground-truth shape. Spans ↔ label masks by token offsets: a token is a
    target when it overlaps a span; a mask exports as one span per run of consecutive targets
    (`spans.label_mask_to_spans`).
(b) Word-list files, JSON lines: `{"question", "answer", "target_words": [...]}`, this
    workbench's own per-answer list of unwanted words (not the TPO authors' format: that is (c)).
    A listed word marks all its occurrences in that answer as whole words (case-insensitive,
    whitespace-normalised, like a whole-word phrase rule); a mask exports as the distinct words
    (`spans.WORD`) that hold a target token, in order of first appearance.
(c) Common-word files, JSON lines: `{"question", "answer", "common_words": [...]}`, the TPO / TIF
    authors' form (Zhou et al. 2025; github.com/RookieZxy/Unlearning-TPO, TOFU/data/
    forget10_with_common_words_{gpt,bert}: `common_words` is a list of JSON strings
    '{"word": w, "start": s, "end": e}', character spans of the GENERAL words, and TOFU/
    data_module.py sets the label of every token overlapping one to -100: the targets are the
    complement). Read: each entry may be such a JSON string, an object {"start", "end", "word"?} or
    a [start, end] pair; every word of the answer (`spans.WORD`) that no common span overlaps is a
    target (whitespace and punctuation between words are neither). Write: their form, one JSON
    string per answer word holding no target token, plus `target_words` as they store it (one JSON
    string: the list of the target words' {"word", "start", "end"}). [choice] word-level both ways:
    a word with any target token is not a general word.

Records are matched to forget samples by their exact question and answer; a record that matches
no sample is an error naming its line. Samples without a record get None (keep what they have).
Every problem raises `MaskFileError` naming the file, line and field before anything is returned,
so a bad file changes nothing.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .jsonl import MAX_FILE_BYTES, MaskFileError, fail, parse_jsonl, read_jsonl, text_field
from .phrases import find_phrase
from .spans import (
    CharSpan,
    Offsets,
    check_mask_lengths,
    label_mask_to_spans,
    overlaps,
    spans_to_label_mask,
    word_spans,
)


@dataclass(frozen=True)
class SpanRecord:
    """One line of a span file."""

    line: int
    question: str
    answer: str
    spans: tuple[CharSpan, ...]


@dataclass(frozen=True)
class WordRecord:
    """One line of a word-list file."""

    line: int
    question: str
    answer: str
    target_words: tuple[str, ...]


@dataclass(frozen=True)
class CommonWordsRecord:
    """One line of a common-word file: the general (kept) words' character spans."""

    line: int
    question: str
    answer: str
    common_words: tuple[CharSpan, ...]


def _rows(path_or_text: str | Path, source: str | None) -> tuple[list[tuple[int, dict]], str]:
    """A Path (or a str without `source`) is a file: read with the 20 MB cap, bad bytes named by
    line (`read_jsonl`), named `source` when given; a str with `source` is the text itself."""
    if isinstance(path_or_text, Path) or source is None:
        return read_jsonl(path_or_text, name=source), source or str(path_or_text)
    if len(path_or_text.encode("utf-8", "surrogatepass")) > MAX_FILE_BYTES:
        raise fail(source, None, None, f"over the limit of {MAX_FILE_BYTES // 2**20} MB for a span or word-list file")
    return parse_jsonl(path_or_text, source), source


def _span_record(row: dict, source: str, line: int) -> SpanRecord:
    question = text_field(row, "question", source, line)
    answer = text_field(row, "answer", source, line)
    raw = row.get("spans")
    if not isinstance(raw, list):
        raise fail(source, line, "spans", "missing or not a list of {start, end}" if raw is None else
                   f"expected a list of {{start, end}}, got {type(raw).__name__}")
    spans = []
    for i, s in enumerate(raw):
        if not isinstance(s, dict):
            raise fail(source, line, f"spans[{i}]", f"expected an object {{start, end}}, got {type(s).__name__}")
        for key in ("start", "end"):
            if isinstance(s.get(key), bool) or not isinstance(s.get(key), int):
                raise fail(source, line, f"spans[{i}].{key}", f"expected an integer, got {s.get(key)!r}")
        if not 0 <= s["start"] < s["end"] <= len(answer):
            raise fail(source, line, f"spans[{i}]", f"[{s['start']}, {s['end']}) is outside the answer "
                                                    f"(length {len(answer)}) or empty")
        kind = s.get("type")
        if kind is not None and not isinstance(kind, str):
            raise fail(source, line, f"spans[{i}].type", f"expected a string, got {kind!r}")
        spans.append(CharSpan(s["start"], s["end"], kind))
    return SpanRecord(line, question, answer, tuple(spans))


def read_span_file(path_or_text: str | Path, source: str | None = None) -> list[SpanRecord]:
    """Records of a span file (a path; or the file's text when `source` names it)."""
    rows, source = _rows(path_or_text, source)
    return [_span_record(row, source, line) for line, row in rows]


def _word_record(row: dict, source: str, line: int) -> WordRecord:
    question = text_field(row, "question", source, line)
    answer = text_field(row, "answer", source, line)
    raw = row.get("target_words")
    if not isinstance(raw, list):
        raise fail(source, line, "target_words", "missing or not a list of words" if raw is None else
                   f"expected a list of words, got {type(raw).__name__}")
    for i, w in enumerate(raw):
        if not isinstance(w, str) or not w.strip():
            raise fail(source, line, f"target_words[{i}]", f"expected a non-empty string, got {w!r}")
    return WordRecord(line, question, answer, tuple(raw))


def read_word_file(path_or_text: str | Path, source: str | None = None) -> list[WordRecord]:
    """Records of a word-list file (a path; or the file's text when `source` names it)."""
    rows, source = _rows(path_or_text, source)
    return [_word_record(row, source, line) for line, row in rows]


def _common_record(row: dict, source: str, line: int) -> CommonWordsRecord:
    question = text_field(row, "question", source, line)
    answer = text_field(row, "answer", source, line)
    raw = row.get("common_words")
    if not isinstance(raw, list):
        raise fail(source, line, "common_words", "missing or not a list of [start, end]" if raw is None else
                   f"expected a list of [start, end], got {type(raw).__name__}")
    spans = []
    for i, s in enumerate(raw):
        entry = s
        if isinstance(s, str):  # the authors' dataset: each entry a JSON string {"word", "start", "end"}
            try:
                entry = json.loads(s)
            except ValueError:
                raise fail(source, line, f"common_words[{i}]", f"not JSON {{\"start\", \"end\"}}: {s[:60]!r}") from None
        pair = ((entry.get("start"), entry.get("end")) if isinstance(entry, dict)
                else tuple(entry) if isinstance(entry, list) else None)
        if pair is None or len(pair) != 2 or any(isinstance(v, bool) or not isinstance(v, int) for v in pair):
            raise fail(source, line, f"common_words[{i}]", f"expected {{\"start\", \"end\"}} or [start, end] "
                                                           f"(integers), got {s!r}")
        if not 0 <= pair[0] < pair[1] <= len(answer):
            raise fail(source, line, f"common_words[{i}]", f"[{pair[0]}, {pair[1]}) is outside the answer "
                                                           f"(length {len(answer)}) or empty")
        spans.append(CharSpan(pair[0], pair[1]))
    return CommonWordsRecord(line, question, answer, tuple(spans))


def read_common_words_file(path_or_text: str | Path, source: str | None = None) -> list[CommonWordsRecord]:
    """Records of a common-word file, the TPO authors' form (a path; or the text when `source` names it)."""
    rows, source = _rows(path_or_text, source)
    return [_common_record(row, source, line) for line, row in rows]


def complement_spans(answer: str, common: Sequence[CharSpan]) -> list[CharSpan]:
    """The target spans of a common-word record: every answer word no common span overlaps."""
    return [CharSpan(ws, we) for ws, we in word_spans(answer)
            if not any(c.start < we and c.end > ws for c in common)]


def common_words_of(answer: str, offsets: Offsets, mask: Sequence[Any]) -> tuple[list[dict], list[dict]]:
    """({"word", "start", "end"} of every answer word holding no target token (the general words),
    the same for the words holding one (the targets)), in order."""
    general, targets = [], []
    for ws, we in word_spans(answer):
        hit = any(bool(m) and overlaps(o, ws, we) for o, m in zip(offsets, mask))
        (targets if hit else general).append({"word": answer[ws:we], "start": ws, "end": we})
    return general, targets


def export_common_words(samples, offsets: Sequence[Offsets], masks: Sequence[Sequence[Any]]) -> list[dict]:
    """Rows in the TPO authors' form, one per sample: `{"question", "answer", "target_words": "[{...}]",
    "common_words": ["{\"word\": ..., \"start\": s, \"end\": e}", ...]}` (JSON strings, as they store them)."""
    check_mask_lengths(masks, offsets, "export")
    rows = []
    for s, o, m in zip(samples, offsets, masks):
        general, targets = common_words_of(s.answer, o, m)
        rows.append({"question": s.question, "answer": s.answer, "target_words": json.dumps(targets),
                     "common_words": [json.dumps(w) for w in general]})
    return rows


def match_records(samples, records: Sequence[SpanRecord | WordRecord], source: str = "import") -> list:
    """Per sample, its record (by exact question and answer) or None; a record that matches no
    sample, or a second record for the same sample, is a MaskFileError naming its line."""
    index = {}
    for i, s in enumerate(samples):
        index.setdefault((s.question, s.answer), []).append(i)
    out: list = [None] * len(samples)
    for rec in records:
        free = [i for i in index.get((rec.question, rec.answer), []) if out[i] is None]
        if not free:
            what = ("a second record for the same sample" if (rec.question, rec.answer) in index
                    else "no forget sample has this question and answer")
            raise fail(source, rec.line, "question", what)
        out[free[0]] = rec
    return out


def word_list_spans(answer: str, words: Sequence[str]) -> list[CharSpan]:
    """Every whole-word, case-insensitive occurrence of each listed word in the answer."""
    return [CharSpan(s, e) for w in words for s, e in find_phrase(answer, w, whole_words=True)]


def record_spans(record: SpanRecord | WordRecord) -> list[CharSpan]:
    """A record's character spans (word lists: every occurrence of each word)."""
    if isinstance(record, SpanRecord):
        return list(record.spans)
    if isinstance(record, CommonWordsRecord):
        return complement_spans(record.answer, record.common_words)
    return word_list_spans(record.answer, record.target_words)


def masks_from_records(samples, offsets: Sequence[Offsets], records: Sequence[SpanRecord | WordRecord],
                       source: str = "import") -> list[list[bool] | None]:
    """Per sample, the label mask of its record's spans (None: no record for it)."""
    matched = match_records(samples, records, source)
    return [None if rec is None else spans_to_label_mask(o, record_spans(rec)) for rec, o in zip(matched, offsets)]


def truth_from_records(samples, records: Sequence[SpanRecord | WordRecord],
                       source: str = "import") -> list[list[CharSpan]]:
    """Per sample, the imported spans as ground truth for `accuracy.mask_accuracy` ([] without a record)."""
    return [[] if rec is None else record_spans(rec) for rec in match_records(samples, records, source)]


def export_spans(samples, offsets: Sequence[Offsets], masks: Sequence[Sequence[Any]]) -> list[dict]:
    """Span-file rows, one per sample: `{"question", "answer", "spans": [{"start", "end"}]}`."""
    check_mask_lengths(masks, offsets, "export")
    return [{"question": s.question, "answer": s.answer,
             "spans": [sp.to_json() for sp in label_mask_to_spans(o, m, s.answer)]}
            for s, o, m in zip(samples, offsets, masks)]


def mask_words(answer: str, offsets: Offsets, mask: Sequence[Any]) -> list[str]:
    """The distinct words of the answer holding at least one target token, first appearance first."""
    words: list[str] = []
    for ws, we in word_spans(answer):
        if any(bool(m) and overlaps(o, ws, we) for o, m in zip(offsets, mask)) and answer[ws:we] not in words:
            words.append(answer[ws:we])
    return words


def export_words(samples, offsets: Sequence[Offsets], masks: Sequence[Sequence[Any]]) -> list[dict]:
    """Word-list rows, one per sample: `{"question", "answer", "target_words": [...]}`."""
    check_mask_lengths(masks, offsets, "export")
    return [{"question": s.question, "answer": s.answer, "target_words": mask_words(s.answer, o, m)}
            for s, o, m in zip(samples, offsets, masks)]


__all__ = [
    "CommonWordsRecord",
    "MaskFileError",
    "complement_spans",
    "common_words_of",
    "export_common_words",
    "read_common_words_file",
    "SpanRecord",
    "WordRecord",
    "export_spans",
    "export_words",
    "mask_words",
    "masks_from_records",
    "match_records",
    "read_span_file",
    "read_word_file",
    "record_spans",
    "truth_from_records",
    "word_list_spans",
]
