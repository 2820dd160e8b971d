"""What the Edit tab's set-wide tools read about one mask set: its forget samples, their label
offsets, the stored masks, the base masks its rules apply over, and the ground truth.

Base masks (what a set holds before its rules and hand edits): the default masks of the selector
the set was made from; a set made by an import has no selector, so its base is empty and its
imported targets count as hand edits (they beat rules). Ground truth for live accuracy: spans a
person imported for the set's data (kept for the life of the server), else the data's own
ground-truth spans (the built-in benchmark), else none.
"""
from __future__ import annotations

from dataclasses import dataclass

from engine.masks import label_offsets
from engine.resolve import canonical_data
from engine.selectors import SELECTORS
from engine.store import MaskSet

from .context import AppContext

SPLIT = "forget"


@dataclass
class SetData:
    """One mask set read in one go (lists in forget-split order)."""

    ms: MaskSet
    samples: list
    offsets: list[list[tuple[int, int]]]
    masks: list[list[int]]


class MaskSetData:
    """Reads mask sets for the rules, review, accuracy and interop panels; caches label offsets."""

    def __init__(self, ctx: AppContext):
        self.ctx = ctx
        self._offsets: dict[tuple[str, str], list] = {}
        self.imported_truth: dict[str, list] = {}  # canonical data -> per-sample spans

    def offsets(self, model: str, data: str) -> list[list[tuple[int, int]]]:
        key = (model, canonical_data(data))
        if key not in self._offsets:
            samples = self.ctx.explore.samples(data, SPLIT)
            self._offsets[key] = label_offsets(self.ctx.explore.model(model)[1], samples)
        return self._offsets[key]

    def read(self, name: str) -> SetData:
        """The set with its samples, offsets and current masks; ValueError/NotFound with a message."""
        if not name:
            raise ValueError("choose a mask set, or create one from a selector")
        ms = self.ctx.store.get_mask_set(name)
        samples = self.ctx.explore.samples(ms.data, SPLIT)
        offsets = self.offsets(ms.model, ms.data)
        return SetData(ms, samples, offsets, [ms.mask_for(s, len(o)) for s, o in zip(samples, offsets)])

    def base(self, sd: SetData) -> list[list[int]]:
        """The masks the set's rules apply over (see the module docstring)."""
        selector = sd.ms.source_selector
        if selector not in SELECTORS:
            return [[0] * len(o) for o in sd.offsets]
        defaults = self.ctx.explore.default_masks(sd.ms.model, sd.ms.data, selector)
        return [defaults[s.uid][1] for s in sd.samples]

    def truth(self, data: str, samples) -> tuple[list | None, str]:
        """(per-sample ground-truth spans or None, where they come from)."""
        imported = self.imported_truth.get(canonical_data(data))
        if imported is not None and len(imported) == len(samples):
            return imported, "imported spans"
        if any(s.spans for s in samples):
            return [list(s.spans) for s in samples], "the data's ground-truth spans"
        return None, "no ground truth"
