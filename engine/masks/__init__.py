"""Mask-set tools at a forget set's scale, as pure functions the Edit tab and the CLI call:
phrase rules (`rules`), the review queue (`review`), live accuracy against ground-truth spans
(`accuracy`), span / word-list import and export (`interop`) and the leak check (`leak_check`).

Masks here are per-sample lists over LABEL positions (answer tokens + the closing EOS, which is
never a target), the store's layout; `spans.label_offsets(tokenizer, samples)` gives the
character offsets that map spans and phrases onto them.
"""
from .accuracy import Counts, MaskAccuracy, mask_accuracy
from .interop import (
                      CommonWordsRecord,
                      SpanRecord,
                      WordRecord,
                      export_common_words,
                      export_spans,
                      export_words,
                      masks_from_records,
                      read_common_words_file,
                      read_span_file,
                      read_word_file,
                      truth_from_records,
)
from .jsonl import MaskFileError, to_jsonl
from .leak_check import (
                      LeakReport,
                      LeakRow,
                      leak_rows,
                      summarise,
                      target_texts,
)
from .review import (
                      ReviewItem,
                      next_to_review,
                      review_queue,
                      sample_disagreement,
                      vote_entropy,
)
from .rules import (
                      Rule,
                      RuleEffect,
                      apply_rules,
                      dump_rules,
                      hand_edits_between,
                      load_rules,
                      parse_rules,
                      rewrite_with_rules,
                      rule_effects,
                      rules_from_json,
                      rules_to_json,
)
from .spans import CharSpan, label_mask_to_spans, label_offsets, spans_to_label_mask

__all__ = ["CharSpan", "Counts", "LeakReport", "LeakRow", "MaskAccuracy", "MaskFileError", "ReviewItem", "Rule",
           "RuleEffect", "SpanRecord", "WordRecord", "apply_rules", "dump_rules", "export_spans", "export_words", "CommonWordsRecord", "export_common_words", "read_common_words_file",
           "hand_edits_between", "label_mask_to_spans", "label_offsets", "leak_rows", "load_rules",
           "mask_accuracy", "masks_from_records", "next_to_review", "parse_rules", "read_span_file",
           "read_word_file", "review_queue", "rewrite_with_rules", "rule_effects", "rules_from_json", "rules_to_json",
           "sample_disagreement", "spans_to_label_mask", "summarise", "target_texts", "to_jsonl",
           "truth_from_records", "vote_entropy"]
