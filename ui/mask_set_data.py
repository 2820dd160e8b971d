"""What the Edit tab's set-wide tools read about one mask set, through the mask-set service
(engine.mask_sets: samples, label offsets, stored masks, base masks), plus the ground truth
live accuracy compares against: spans a person imported for the set's data (kept for the life of
the server), else the data's own ground-truth spans (the built-in benchmark), else none.
"""
from __future__ import annotations

from engine.mask_sets import SPLIT, SetData  # noqa: F401  (the panels import them from here)
from engine.resolve import canonical_data

from .context import AppContext


class MaskSetData:
    """The panels' reading of mask sets (delegated to `ctx.masks`) and the imported ground truth."""

    def __init__(self, ctx: AppContext):
        self.ctx = ctx
        self.imported_truth: dict[str, list] = {}  # canonical data -> per-sample spans

    def offsets(self, model: str, data: str) -> list[list[tuple[int, int]]]:
        return self.ctx.masks.offsets(model, data)

    def read(self, name: str) -> SetData:
        """The set with its samples, offsets and current masks; ValueError/NotFound with a message."""
        return self.ctx.masks.read(name)

    def base(self, sd: SetData) -> list[list[int]]:
        return self.ctx.masks.base(sd)

    def truth(self, data: str, samples) -> tuple[list | None, str]:
        """(per-sample ground-truth spans or None, where they come from)."""
        imported = self.imported_truth.get(canonical_data(data))
        if imported is not None and len(imported) == len(samples):
            return imported, "imported spans"
        if any(s.spans for s in samples):
            return [list(s.spans) for s in samples], "the data's ground-truth spans"
        return None, "no ground truth"
