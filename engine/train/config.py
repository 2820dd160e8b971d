"""What decides a run (`RunConfig`, defined in the light engine.run_config so the store can read it
without torch), what the loop reports while it runs (`ProgressEvent`) and what a run returns
(`RunResult`)."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable

from .progress import ProgressEvent
from ..run_config import REAL_DEFAULTS, SCHEDULES, TINY_DEFAULTS, RunConfig, is_builtin_model, model_defaults

Progress = Callable[[ProgressEvent], None]

__all__ = ["REAL_DEFAULTS", "SCHEDULES", "TINY_DEFAULTS", "Progress", "ProgressEvent", "RunConfig", "RunResult",
           "is_builtin_model", "model_defaults"]


@dataclass
class RunResult:
    """What `unlearn` returns; `history[0]` is the step-0 evaluation when one was made."""

    run_id: int | None
    status: str  # finished | cancelled | failed
    epochs_completed: int
    history: list[dict]
    best_epoch: int | None
    checkpoints: dict[str, str]
    error: str | None = None
    seconds: float = 0.0
    scorer_path: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)
