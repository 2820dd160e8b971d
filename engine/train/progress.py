"""What the training loop reports while a run goes on (`ProgressEvent`), read by the app's job
snapshot (engine.jobs), the CLI's progress bar (engine.cli.unlearn) and the ATWU fit in Explore."""
from __future__ import annotations

from dataclasses import dataclass, fields

from ..store.records import EpochMetrics

PHASES = ("loading", "evaluating", "saving", "train", "eval")


@dataclass(frozen=True)
class ProgressEvent:
    """One report of `engine.train.unlearn` (or `short_run`).

    phase: 'train' after an optimiser step (with its `loss`), 'eval' after an evaluation (with its
    `metrics`), or the start of a phase: 'loading', 'evaluating' (then `eval_done` of `eval_total`
    questions scored, as they go), 'saving'. run_id: None until the run is recorded. step: optimiser
    steps so far; total_steps: the run's (None while loading); epoch: None while loading.
    """

    phase: str
    run_id: int | None = None
    step: int = 0
    total_steps: int | None = None
    epoch: int | None = None
    loss: float | None = None
    metrics: EpochMetrics | None = None
    eval_done: int | None = None
    eval_total: int | None = None

    def __post_init__(self) -> None:
        if self.phase not in PHASES:
            raise ValueError(f"progress phase must be one of {PHASES}, got {self.phase!r}")

    @property
    def fraction(self) -> float | None:
        """Steps done over the run's steps (None while the total is unknown)."""
        return None if not self.total_steps else min(1.0, (self.step or 0) / self.total_steps)

    @classmethod
    def of(cls, info: "ProgressEvent | dict") -> "ProgressEvent":
        """`info` itself, or the event a dict report describes (a stand-in runner's; unknown keys dropped,
        a metrics dict becomes EpochMetrics)."""
        if isinstance(info, cls):
            return info
        names = {f.name for f in fields(cls)}
        d = {k: v for k, v in dict(info).items() if k in names}
        if isinstance(d.get("metrics"), dict):
            d["metrics"] = EpochMetrics.from_dict(d["metrics"])
        return cls(**d)
