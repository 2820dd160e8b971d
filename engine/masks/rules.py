"""Phrase rules: "this phrase is a target everywhere" / "never a target everywhere".

A `Rule` marks every occurrence of its phrase in every answer of the forget set (case-insensitive
and whitespace-normalised unless asked otherwise; optionally whole words only, see `phrases`),
mapped to label positions by character offsets: a token is covered when it overlaps an occurrence.

Precedence, from weakest to strongest, for each label position:
  1. the base mask (a selector's default mask, or whatever the set started from);
  2. the rules, in list order: a later rule beats an earlier one on the tokens both cover;
  3. hand edits on that token (a person's toggle/brush/word edit) beat every rule.
The closing EOS is never a target: no rule covers it, and a base mask or hand edit that sets it
is ignored. Removing a rule and calling `apply_rules` again removes its effect (nothing is baked in).

Rules serialise to JSON objects `{"phrase", "target", "whole_words", "case_sensitive"}`; a rules
file is JSON lines, one rule per line (`load_rules`, errors name the line and field).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .jsonl import (
    MaskFileError,
    bool_field,
    fail,
    parse_jsonl,
    read_jsonl,
    text_field,
    to_jsonl,
)
from .phrases import find_phrase, phrase_pattern
from .spans import (
    Offsets,
    check_mask_lengths,
    is_answer_token,
    label_offsets,
    spans_to_label_mask,
)

HandEdits = Mapping[int, bool]  # label position -> the value a person set by hand


@dataclass(frozen=True)
class Rule:
    """Every occurrence of `phrase` becomes a target (`target=True`) or never a target (False)."""

    phrase: str
    target: bool
    whole_words: bool = False
    case_sensitive: bool = False

    def __post_init__(self):
        if not isinstance(self.phrase, str):
            raise TypeError(f"rule phrase must be a string, got {type(self.phrase).__name__}")
        phrase_pattern(self.phrase)  # ValueError for an empty phrase

    def occurrences(self, text: str) -> list[tuple[int, int]]:
        return find_phrase(text, self.phrase, self.whole_words, self.case_sensitive)

    def to_json(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class RuleEffect:
    """How much of the forget set one rule touches.

    matched: label positions its phrase covers (all samples); samples: samples with a match;
    decided: covered positions whose final value comes from this rule (no later rule covers
    them, no hand edit on them); changed: decided positions where that value differs from the
    base mask.
    """

    rule: Rule
    samples: int
    matched: int
    decided: int
    changed: int


def _offsets_of(samples, offsets_or_tokenizer) -> list[Offsets]:
    if isinstance(offsets_or_tokenizer, (list, tuple)):
        return list(offsets_or_tokenizer)
    return label_offsets(offsets_or_tokenizer, samples)


def rule_coverage(samples, offsets: Sequence[Offsets], rules: Sequence[Rule]) -> list[list[list[bool]]]:
    """[rule][sample][label position]: does the rule's phrase cover that token."""
    return [[spans_to_label_mask(o, rule.occurrences(s.answer)) for s, o in zip(samples, offsets)]
            for rule in rules]


def _check_edits(hand_edits, offsets: Sequence[Offsets]) -> list[HandEdits]:
    if hand_edits is None:
        return [{} for _ in offsets]
    if len(hand_edits) != len(offsets):
        raise ValueError(f"hand edits: {len(hand_edits)} entries for {len(offsets)} samples")
    for i, (edits, o) in enumerate(zip(hand_edits, offsets)):
        for pos in edits or {}:
            if isinstance(pos, bool) or not isinstance(pos, int) or not 0 <= pos < len(o):
                raise ValueError(f"hand edits: sample {i}: position {pos!r} is not a label position (0..{len(o) - 1})")
    return [edits or {} for edits in hand_edits]


def _resolve(samples, offsets_or_tokenizer, base_masks, rules, hand_edits):
    offsets = _offsets_of(samples, offsets_or_tokenizer)
    if len(offsets) != len(samples):
        raise ValueError(f"{len(offsets)} offset rows for {len(samples)} samples")
    check_mask_lengths(base_masks, offsets, "base masks")
    edits = _check_edits(hand_edits, offsets)
    return offsets, rule_coverage(samples, offsets, rules), edits


def apply_rules(samples, offsets_or_tokenizer, base_masks: Sequence[Sequence[Any]], rules: Sequence[Rule],
                hand_edits: Sequence[HandEdits] | None = None) -> list[list[bool]]:
    """Per-sample masks over label positions: base mask, then rules in order, then hand edits
    (see the module docstring for the precedence); the closing EOS is always False.

    offsets_or_tokenizer: per-sample label offsets (`spans.label_offsets`) or a tokenizer to
    compute them with. base_masks: per sample, one 0/1 or bool per label position.
    hand_edits: per sample, {label position: value set by hand} (None: no hand edits).
    """
    offsets, coverage, edits = _resolve(samples, offsets_or_tokenizer, base_masks, rules, hand_edits)
    out = []
    for i, (o, base) in enumerate(zip(offsets, base_masks)):
        mask = [bool(v) for v in base]
        for rule, cov in zip(rules, coverage):
            mask = [rule.target if c else m for m, c in zip(mask, cov[i])]
        for pos, value in edits[i].items():
            mask[pos] = bool(value)
        out.append([m and is_answer_token(t) for m, t in zip(mask, o)])
    return out


def rule_effects(samples, offsets_or_tokenizer, base_masks: Sequence[Sequence[Any]], rules: Sequence[Rule],
                 hand_edits: Sequence[HandEdits] | None = None) -> list[RuleEffect]:
    """One `RuleEffect` per rule, in rule order (what the Edit tab lists beside each rule)."""
    offsets, coverage, edits = _resolve(samples, offsets_or_tokenizer, base_masks, rules, hand_edits)
    effects = []
    for r, rule in enumerate(rules):
        n_samples = matched = decided = changed = 0
        for i, (o, base) in enumerate(zip(offsets, base_masks)):
            cov = coverage[r][i]
            n_samples += any(cov)
            for pos, c in enumerate(cov):
                if not c:
                    continue
                matched += 1
                later = any(coverage[k][i][pos] for k in range(r + 1, len(rules)))
                if later or pos in edits[i]:
                    continue
                decided += 1
                changed += rule.target != bool(base[pos])
        effects.append(RuleEffect(rule, n_samples, matched, decided, changed))
    return effects


def hand_edits_between(computed: Sequence[Any], current: Sequence[Any]) -> dict[int, bool]:
    """{position: current value} where a stored mask differs from base + rules: the edits a
    person made by hand, recovered so that re-applying rules keeps them."""
    if len(computed) != len(current):
        raise ValueError(f"masks of different lengths: {len(computed)} and {len(current)}")
    return {j: bool(b) for j, (a, b) in enumerate(zip(computed, current)) if bool(a) != bool(b)}


def rewrite_with_rules(samples, offsets, base, current, old_rules: Sequence[Rule],
                       new_rules: Sequence[Rule]) -> list[list[bool]]:
    """Every sample's mask under `new_rules`, keeping the hand edits made over `old_rules`:
    edits = tokens where `current` differs from base + old rules; result = base + new rules + edits.
    The one place rule precedence is recomputed (Edit tab rule changes, a run's rules).
    A sample whose `current` mask is None (a mask set that lacks it) has no hand edits.
    """
    edits = [{} if m is None else hand_edits_between(c, m)
             for c, m in zip(apply_rules(samples, offsets, base, old_rules), current)]
    return apply_rules(samples, offsets, base, new_rules, edits)


# ---------------------------------------------------------------- JSON


def rule_from_json(row: Any, source: str = "rules", line: int | None = None) -> Rule:
    """A Rule from `{"phrase", "target", "whole_words"?, "case_sensitive"?}`; MaskFileError naming
    `source`, `line` and the field otherwise."""
    if not isinstance(row, dict):
        raise fail(source, line, None, f"expected a JSON object, got {type(row).__name__}")
    unknown = sorted(set(row) - {"phrase", "target", "whole_words", "case_sensitive"})
    if unknown:
        raise fail(source, line, unknown[0], "unknown field (use phrase, target, whole_words, case_sensitive)")
    phrase = text_field(row, "phrase", source, line)
    if "target" not in row:
        raise fail(source, line, "target", "missing (true: a target everywhere; false: never a target)")
    return Rule(phrase, bool_field(row, "target", True, source, line),
                bool_field(row, "whole_words", False, source, line),
                bool_field(row, "case_sensitive", False, source, line))


def rules_to_json(rules: Sequence[Rule]) -> list[dict]:
    """The rules as a JSON-serialisable list (e.g. a mask-set field)."""
    return [r.to_json() for r in rules]


def rules_from_json(rows: Any, source: str = "rules") -> list[Rule]:
    """Rules from a list of JSON objects; errors name `source[i]` and the field."""
    if not isinstance(rows, list):
        raise MaskFileError(f"{source}: expected a list of rules, got {type(rows).__name__}")
    return [rule_from_json(row, f"{source}[{i}]") for i, row in enumerate(rows)]


def dump_rules(rules: Sequence[Rule]) -> str:
    """A rules file's text: JSON lines, one rule per line."""
    return to_jsonl(rules_to_json(rules))


def parse_rules(text: str, source: str = "<rules>") -> list[Rule]:
    """Rules from a rules file's text (JSON lines)."""
    return [rule_from_json(row, source, line) for line, row in parse_jsonl(text, source)]


def load_rules(path: str | Path) -> list[Rule]:
    """Rules from a JSON-lines rules file (`--rules FILE`); an empty file is an error."""
    rules = [rule_from_json(row, str(path), line) for line, row in read_jsonl(path)]
    if not rules:
        raise MaskFileError(f"{path}: no rules (one JSON object per line)")
    return rules
