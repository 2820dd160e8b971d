"""The token-weight contract of a run: per forget batch, weights (B, T); after each model step,
the source's own update; per sample, the target masks the evaluation compares.

Two kinds: fixed weights (a selector run once on the initial model, or a saved mask set;
`fixed.FixedWeights`) and learned weights, which change during the run (ATWU's scorer;
`atwu.AtwuWeights`). The training loop only talks to this interface.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path

import torch

from ..tokens import Batch


class WeightSource(ABC):
    """Where a run's token weights come from. Call order per forget micro-batch: the model's
    forward (with `forward_kwargs`), `observe`, `for_batch`; after each optimiser step,
    `after_step`."""

    name: str = ""
    forward_kwargs: dict = {}  # extra arguments of the model's forward that `observe` reads

    def observe(self, batch: Batch, outputs, nll: torch.Tensor) -> None:
        """See the model's forward on a forget batch: `outputs` of model(**batch, **forward_kwargs),
        nll (B, T). Fixed weights ignore it."""

    @abstractmethod
    def for_batch(self, indices: list[int], batch: Batch) -> torch.Tensor:
        """(B, T) float weights of forget samples `indices`, zero off the answer tokens."""

    @abstractmethod
    def targets(self) -> list[torch.Tensor]:
        """Per forget sample, the current target mask over its label positions (1-D bool, CPU)."""

    def after_step(self, step: int) -> dict:
        """The source's own update after model step `step` (1-based); returns its stats. Fixed: none."""
        return {}

    def save(self, directory: Path) -> None:
        """Write what the source learned beside a checkpoint in `directory`. Fixed: nothing."""

    def load(self, directory: Path) -> None:
        """Read back what `save` wrote in `directory`. Fixed: nothing."""

    def keep(self, info: dict) -> str | None:
        """At the end of a finished run: save what a later selector can reuse; its path, or None."""
        return None
