"""Fixed token weights for a run: from a selector (run once on the initial model) or from a
saved mask set. Stored per sample over its label positions, so any batch can gather them."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .. import selectors  # the module, not its names: engine.selectors may still be loading here
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


def weights_from_selector(model, tokenizer, samples, name: str, params: dict, weighting: str,
                          batch_size: int = 32) -> FixedWeights:
    """Run selector `name` once on the (initial) model over all forget samples, in batches.

    weighting: 'mask' → the selector's hard mask; 'scores' → its scores through
    `normalise_scores`; 'auto' → scores for `atwu`, the mask otherwise.
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
    return FixedWeights(weights, targets, f"selector:{name}")


def weights_from_mask_set(store, name: str, tokenizer, samples) -> FixedWeights:
    """Per-sample masks of a saved mask set, checked against these samples and this tokenizer.

    A sample missing from the set gets no targets; a sample whose text changed, or whose label
    positions differ in number (another tokenizer), is refused with the sample named. The
    closing EOS is never a target, whatever the set says.
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
    weights = [t.float() for t in targets]
    if not any(t.any() for t in targets):
        raise ValueError(f"mask set {name!r} marks no tokens: nothing to forget")
    return FixedWeights(weights, targets, f"mask_set:{name}")
