"""Fixed token weights for a run: from a selector (run once on the initial model) or from a
saved mask set, with phrase rules on top (`with_rules`, `engine.masks.rules` precedence).
Stored per sample over its label positions, so any batch can gather them."""
from __future__ import annotations

import json
from dataclasses import dataclass

import torch

from .. import selectors  # the module, not its names: engine.selectors may still be loading here
from ..masks.rules import Rule, apply_rules, rewrite_with_rules, rule_coverage, rules_from_json
from ..masks.spans import label_offsets
from ..tokens import Batch, encode_samples, gather_rows, iter_batches, label_rows
from .base import WeightSource


def normalise_scores(scores: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
    """Soft weights in [0, 1]: scores clamped at 0; a row whose max exceeds 1 is divided by it.

    [choice] Selectors such as `entropy` or `dto` score on unbounded scales; dividing those rows
    by their max keeps the weights' ordering and makes 1 − w a valid non-target weight.
    scores, allowed: (B, T). Returns (B, T).
    """
    s = scores.float().clamp(min=0) * allowed
    peak = s.max(dim=1, keepdim=True).values  # (B, 1)
    return torch.where(peak > 1, s / peak.clamp(min=1e-8), s)


@dataclass
class FixedWeights(WeightSource):
    """Per forget sample: weights and target mask over its label positions (1-D, CPU), fixed
    for the whole run."""

    weights: list[torch.Tensor]
    target_rows: list[torch.Tensor]
    name: str

    def for_batch(self, indices: list[int], batch: Batch) -> torch.Tensor:
        """(B, T) float weights of samples `indices`, zero off the answer tokens."""
        return gather_rows(self.weights, indices, batch) * batch.answer_mask

    def targets(self) -> list[torch.Tensor]:
        return self.target_rows


def with_rules(fixed: FixedWeights, tokenizer, samples, rules: list[Rule],
               hand_edits: list[dict[int, bool]] | None = None) -> FixedWeights:
    """`fixed` with phrase rules applied: target = `apply_rules(fixed targets, rules, hand_edits)`
    (base < rules in order < hand edits; the EOS never a target). Weight per token: 1 or 0 (its
    final target value) where a rule covers it or a hand edit sets it, the base weight elsewhere
    (so "never a target" also zeroes a soft score weight)."""
    if not rules and not hand_edits:
        return fixed
    base = [t.tolist() for t in fixed.target_rows]
    offsets = label_offsets(tokenizer, samples)
    final = apply_rules(samples, offsets, base, rules, hand_edits)
    coverage = rule_coverage(samples, offsets, rules)  # [rule][sample][position]
    targets, weights = [], []
    for i, (w, new) in enumerate(zip(fixed.weights, final)):
        decided = torch.tensor([any(cov[i][j] for cov in coverage) for j in range(len(new))], dtype=torch.bool)
        for j in (hand_edits[i] if hand_edits else {}):
            decided[j] = True
        new_t = torch.tensor(new, dtype=torch.bool)
        targets.append(new_t)
        weights.append(torch.where(decided, new_t.float(), w.float()))
    return FixedWeights(weights, targets, f"{fixed.name}+rules({len(rules)})")


def weights_from_selector(model, tokenizer, samples, name: str, params: dict, weighting: str,
                          batch_size: int = 32, rules: list[Rule] = ()) -> FixedWeights:
    """Run selector `name` once on the (initial) model over all forget samples, in batches.

    weighting: 'mask' → the selector's hard mask; 'scores' → its scores through
    `normalise_scores`; 'auto' → scores for `atwu`, the mask otherwise. rules: phrase rules
    applied on top of the selector's mask (`with_rules`).
    """
    soft = weighting == "scores" or (weighting == "auto" and name == "atwu")
    weights, targets = [], []
    for chunk in iter_batches(list(samples), batch_size):
        batch = encode_samples(tokenizer, chunk)
        out = selectors.select(name, model, tokenizer, chunk, batch=batch, **params)
        batch = batch.to(out.mask.device)
        w = normalise_scores(out.scores, batch.answer_mask) if soft else out.mask.float()
        weights += label_rows(w, batch)
        targets += label_rows(out.mask, batch)
    return with_rules(FixedWeights(weights, targets, f"selector:{name}"), tokenizer, samples, list(rules))


def stored_rules(store, name: str) -> list[Rule]:
    """The phrase rules saved with mask set `name` ([] when none)."""
    text = store.get_rules(name)
    return [] if text is None else rules_from_json(json.loads(text), f"rules of mask set {name!r}")


def mask_set_base(store, name: str, model, tokenizer, samples, same_model: bool,
                  batch_size: int = 32) -> list[list[int]] | None:
    """The base masks of mask set `name` for a run (see `weights_from_mask_set`): its selector's
    default masks on `model`, when the set has rules to apply, was made from a registered selector
    and `same_model` (the run's model is the set's); None otherwise."""
    ms = store.get_mask_set(name)
    if not stored_rules(store, name) or ms.source_selector not in selectors.SELECTORS or not same_model:
        return None
    made = weights_from_selector(model, tokenizer, samples, ms.source_selector, {}, "mask", batch_size)
    return [t.int().tolist() for t in made.target_rows]


def weights_from_mask_set(store, name: str, tokenizer, samples, rules: list[Rule] = (),
                          base: list[list[int]] | None = None) -> FixedWeights:
    """Per-sample masks of a saved mask set, checked against these samples and this tokenizer.

    A sample missing from the set gets no targets; a sample whose text changed, or whose label
    positions differ in number (another tokenizer), is refused with the sample named. The
    closing EOS is never a target, whatever the set says.

    Rules: the set's own rules, then `rules` (e.g. `--rules FILE`), by the one precedence
    (`engine.masks.rules.rewrite_with_rules`, the Edit tab's): hand edits = stored tokens that
    differ from base + the set's rules; result = base + all rules + hand edits. `base`: the set's
    base masks (its selector's default masks, `MaskSets.base`); None: the stored masks themselves
    (then a hand edit on a token no rule of the set covers is not told apart from the base).
    """
    ms = store.get_mask_set(name)  # NotFound (a KeyError and a ValueError) names an unknown set
    if not ms.masks:
        raise ValueError(f"mask set {name!r} is empty: it marks no tokens of any sample")
    masks = ms.masks_for(samples, tokenizer)  # the one text + tokenizer check; names the sample
    if ms.covered(samples) == 0:
        raise ValueError(f"mask set {name!r} covers none of these {len(samples)} forget samples "
                         f"(was it made for another data split?)")
    targets = []
    for m in masks:
        vec = torch.tensor(m, dtype=torch.bool)
        vec[-1] = False  # the last label position is the closing EOS: never a target
        targets.append(vec)
    own = stored_rules(store, name)
    all_rules = own + list(rules)
    if all_rules:
        stored = [t.tolist() for t in targets]
        current = [m if s.uid in ms.masks else None for s, m in zip(samples, stored)]
        final = rewrite_with_rules(samples, label_offsets(tokenizer, samples), stored if base is None else base,
                                   current, own, all_rules)
        targets = [torch.tensor(m, dtype=torch.bool) for m in final]
    weights = [t.float() for t in targets]
    if not any(t.any() for t in targets):
        raise ValueError(f"mask set {name!r} marks no tokens: nothing to forget")
    return FixedWeights(weights, targets, f"mask_set:{name}" + (f"+rules({len(all_rules)})" if all_rules else ""))
