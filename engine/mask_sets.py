"""Mask sets, one service: create from a selector, read, edit one sample, bulk apply, phrase rules
(with the one recomputation of rule precedence), review, import and export. The Edit tab and the
`masks` CLI command both call it; nothing else writes mask sets to the store.

It needs a store (engine.store.Store) and a provider of models, data and selector masks by name
(engine.explore.ExploreService: `samples`, `model`, `info`, `selector_row`, `default_masks`,
`fingerprint`), passed in, so this module imports neither.

Rule precedence (engine.masks.rules): base mask < rules in list order (later beats earlier) < hand
edits. The base of a set is the default mask of the selector it was made from; a set made by an
import has no selector, so its base is empty and its imported targets count as hand edits.
The store keeps the final masks and the rule list; hand edits are recovered from them as the
tokens whose stored value differs from base + rules (`hand_edits_between`), so a rule change or a
run's extra rules (`rewrite_with_rules`) keep exactly the hand edits.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .fingerprint import text_hash
from .masks.rules import (Rule, apply_rules, hand_edits_between, rewrite_with_rules, rule_effects, rules_from_json,
                          rules_to_json)
from .masks.spans import label_offsets
from .store import MaskSet
from .store.transfer import read_import_file, validate_payload

SPLIT = "forget"
Progress = Callable[[float], None]


@dataclass
class SetData:
    """One mask set read in one go (lists in forget-split order)."""

    ms: MaskSet
    samples: list
    offsets: list[list[tuple[int, int]]]
    masks: list[list[int]]


def default_base(selector_masks: dict[str, tuple[str, list[int]]] | None, samples, offsets) -> list[list[int]]:
    """A set's base masks from its selector's default masks ({uid: (text hash, mask)}); all zeros
    for a set without a selector (`selector_masks` None) or a sample the selector did not score."""
    if selector_masks is None:
        return [[0] * len(o) for o in offsets]
    return [list(selector_masks[s.uid][1]) if s.uid in selector_masks else [0] * len(o)
            for s, o in zip(samples, offsets)]


def bulk_plan(defaults: dict, edited: set[str], keep_edited: bool) -> dict:
    """The part of `defaults` ({uid: anything}) a bulk apply writes: all of it, or without the
    hand-edited uids when `keep_edited`."""
    return {uid: v for uid, v in defaults.items() if not (keep_edited and uid in edited)}


class MaskSets:
    """Everything done to mask sets, for the Edit tab and the CLI (see the module docstring).

    Methods that write return what they changed (uids), so a caller holding per-sample state
    (the Edit tab's undo histories) can drop it; they raise ValueError/KeyError with a message.
    """

    def __init__(self, store, explore):
        self.store, self.explore = store, explore
        self._offsets: dict[tuple[str, str], list] = {}

    # -- reading

    def names(self) -> list[str]:
        return [m.name for m in self.store.list_mask_sets()]

    def latest(self) -> str | None:
        """The most recently updated set that has samples (else any set; None when there is none)."""
        sets = [m for m in self.store.list_mask_sets() if m.n_samples > 0] or self.store.list_mask_sets()
        return max(sets, key=lambda m: m.updated).name if sets else None

    def get(self, name: str) -> MaskSet:
        if not name:
            raise ValueError("choose a mask set, or create one from a selector")
        return self.store.get_mask_set(name)

    def offsets(self, model: str, data: str) -> list[list[tuple[int, int]]]:
        """Label offsets of every forget sample of `data` under `model`'s tokenizer (cached)."""
        from .resolve import canonical_data  # deferred: torch

        key = (model, canonical_data(data))
        if key not in self._offsets:
            self._offsets[key] = label_offsets(self.explore.model(model)[1], self.explore.samples(data, SPLIT))
        return self._offsets[key]

    def read(self, name: str) -> SetData:
        """The set with its samples, offsets and current masks."""
        ms = self.get(name)
        samples = self.explore.samples(ms.data, SPLIT)
        offsets = self.offsets(ms.model, ms.data)
        return SetData(ms, samples, offsets, [ms.mask_for(s, len(o)) for s, o in zip(samples, offsets)])

    def base(self, sd: SetData) -> list[list[int]]:
        """The masks the set's rules apply over: its selector's default masks (see the docstring)."""
        from .selectors import SELECTORS  # deferred: torch

        selector = sd.ms.source_selector
        masks = self.explore.default_masks(sd.ms.model, sd.ms.data, selector) if selector in SELECTORS else None
        return default_base(masks, sd.samples, sd.offsets)

    def rules(self, name: str) -> list[Rule]:
        return rules_from_json(json.loads(self.store.get_rules(name) or "[]"), f"mask set {name!r} rules")

    def rule_effects(self, name: str):
        """Per rule of the set: samples, tokens matched / decided / changed (engine.masks.rules)."""
        sd = self.read(name)
        rules = self.rules(name)
        if not rules:
            return []
        base = self.base(sd)
        edits = [hand_edits_between(c, m) for c, m in zip(apply_rules(sd.samples, sd.offsets, base, rules), sd.masks)]
        return rule_effects(sd.samples, sd.offsets, base, rules, edits)

    def sample(self, name: str, index: int):
        """(mask set, SampleInfo, current mask) of one sample; the set's tokenizer is checked again."""
        ms = self.get(name)
        ms.check_tokenizer(self.explore.model(ms.model)[1])
        info = self.explore.info(ms.model, ms.data, SPLIT, int(index or 0))
        return ms, info, ms.mask_for(info, len(info.tokens))

    def selector_mask(self, ms: MaskSet, index: int, selector: str) -> list[int]:
        """A selector's default mask for one sample of the set (ValueError when it cannot run)."""
        from .selectors import SELECTORS  # deferred: torch

        if selector not in SELECTORS:
            raise ValueError("choose a selector to reset to")
        row = self.explore.selector_row(ms.model, ms.data, SPLIT, index, selector)
        if not row.ok:
            raise ValueError(row.error)
        return row.mask

    # -- writing

    def create(self, name: str, selector: str, model: str, data: str, progress: Progress | None = None) -> int:
        """A new set from `selector`'s default masks over every forget sample; the sample count."""
        name = (name or "").strip()
        if not name:
            raise ValueError("give the new mask set a name")
        if name in self.names():
            raise ValueError(f"a mask set named {name!r} already exists")
        masks = self.explore.default_masks(model, data, selector, progress=progress)
        self.store.create_mask_set(name, model, data, self.explore.fingerprint(model), source_selector=selector,
                                   masks=masks)
        return len(masks)

    def save(self, name: str, uid: str, text_hash_: str, mask: Sequence[int], edited: bool = True) -> None:
        """One sample's new mask (a hand edit unless `edited` is False)."""
        self.store.save_sample_mask(name, uid, text_hash_, [int(v) for v in mask], edited=edited)

    def bulk_apply(self, name: str, selector: str, keep_edited: bool,
                   progress: Progress | None = None) -> tuple[list[str], int]:
        """`selector`'s default mask on every sample (hand-edited ones kept when asked):
        (uids written, samples scored)."""
        ms = self.get(name)
        masks = self.explore.default_masks(ms.model, ms.data, selector, progress=progress)
        edited = {uid for uid, m in ms.masks.items() if m.edited}
        written = []
        for uid, (h, mask) in bulk_plan(masks, edited, keep_edited).items():
            self.save(name, uid, h, mask, edited=False)
            written.append(uid)
        return written, len(masks)

    def change_rules(self, name: str, new_rules_of: Callable[[list[Rule]], list[Rule]]) -> list[str]:
        """Replace the set's rules by `new_rules_of(old rules)` and rewrite its masks (hand edits
        kept, `rewrite_with_rules`); the uids whose mask changed (their edited flag kept)."""
        sd = self.read(name)
        old = self.rules(name)
        new = new_rules_of(old)
        masks = rewrite_with_rules(sd.samples, sd.offsets, self.base(sd), sd.masks, old, new)
        self.store.set_rules(name, json.dumps(rules_to_json(new)))
        written = []
        for s, before, after in zip(sd.samples, sd.masks, masks):
            after = [int(v) for v in after]
            if after != list(before):
                entry = sd.ms.masks.get(s.uid)
                self.save(name, s.uid, entry.text_hash if entry else text_hash(s.question, s.answer), after,
                          edited=bool(entry and entry.edited))
                written.append(s.uid)
        return written

    def add_rule(self, name: str, rule: Rule) -> list[str]:
        """`rule` last (so it beats the earlier ones); the uids changed."""
        return self.change_rules(name, lambda old: [*old, rule])

    def remove_rule(self, name: str, index: int) -> tuple[Rule, list[str]]:
        """Remove rule number `index` (0-based) and its effect: (the rule, the uids changed)."""
        removed: list[Rule] = []

        def without(old):
            if not 0 <= index < len(old):
                raise ValueError(f"no rule #{index + 1}: the set has {len(old)} rule(s)")
            removed.append(old[index])
            return old[:index] + old[index + 1:]

        written = self.change_rules(name, without)
        return removed[0], written

    def review(self, name: str, uid: str) -> set[str]:
        """Mark one sample reviewed; the set's reviewed uids."""
        self.store.set_reviewed(name, uid)
        return self.store.reviewed(name)

    def duplicate(self, name: str, new: str) -> str:
        new = (new or "").strip()
        self.store.duplicate_mask_set(name, new)
        return new

    def rename(self, name: str, new: str) -> str:
        new = (new or "").strip()
        self.store.rename_mask_set(name, new)
        return new

    def delete(self, name: str) -> None:
        self.store.delete_mask_set(name)

    def export(self, name: str) -> dict[str, Any]:
        """The set as the JSON payload `import_payload` takes back."""
        return self.store.export_mask_set(name)

    def import_file(self, path, new_name: str | None = None) -> str:
        """Import an exported JSON file (size limit, JSON, then the model's tokenizer and the data's
        samples are checked before anything is written); the new set's name."""
        payload = read_import_file(path)
        meta, _ = validate_payload(payload)
        return self.store.import_mask_set(payload, (new_name or "").strip() or None,
                                          tokenizer=self.explore.model(meta["model"])[1],
                                          samples=self.explore.samples(meta["data"], SPLIT))

    def create_from_masks(self, name: str, model: str, data: str,
                          masks: dict[str, tuple[str, list[int]]]) -> None:
        """A new set without a selector from per-sample masks ({uid: (text hash, mask)}): an import
        of spans or word lists, whose targets are hand edits."""
        name = (name or "").strip()
        if not name:
            raise ValueError("give the new mask set a name")
        self.store.create_mask_set(name, model, data, self.explore.fingerprint(model), source_selector=None,
                                   masks=masks)
