"""Token weights of a run, one interface (`WeightSource`): fixed weights from a selector or a
mask set (`fixed`), or a learned-weight method registered by name in LEARNED_WEIGHTS, whose
weights change as the run goes (`atwu`; `wga` and `satimp`, recomputed every step, `dynamic`). A new learned-weight method is one new file (a
WeightSource subclass with a `create(config, model, tokenizer, samples, device, accelerator)`
classmethod) plus one line in LEARNED_WEIGHTS; a run uses it with `selector=<its name>`.
"""
from __future__ import annotations

from .atwu import AtwuWeights
from .base import WeightSource
from .dynamic import DynamicWeights, SatImpWeights, WgaWeights
from .fixed import FixedWeights, normalise_scores, weights_from_mask_set, weights_from_selector

LEARNED_WEIGHTS: dict[str, type[WeightSource]] = {
    "atwu": AtwuWeights,
    "wga": WgaWeights,  # recomputed from the current model every step (engine/weights/dynamic.py)
    "satimp": SatImpWeights,
}

__all__ = ["LEARNED_WEIGHTS", "AtwuWeights", "DynamicWeights", "SatImpWeights", "WgaWeights", "FixedWeights", "WeightSource", "normalise_scores",
           "weights_from_mask_set", "weights_from_selector"]
