"""Fitting ATWU's token scorer on its own (`python -m engine fit-scorer`, the Explore tab's button):
a short alternating run whose scorer the `atwu` selector then uses (engine/weights/atwu.py)."""
from __future__ import annotations

from pathlib import Path

from .config import RunConfig
from .checkpoint import save_run_scorer
from .loop import short_run


def fit_atwu_scorer(model_spec: str, data_spec: str, steps: int = 40, device: str = "auto", seed: int = 0,
                    progress=None, **overrides) -> Path:
    """Fit an ATWU scorer by a short alternating run (loss atwu, selector atwu) on a copy of the
    model in memory, without evaluation or checkpoints; save it for the `atwu` selector.

    The model on disk is untouched. `steps` counts model steps; the scorer steps every
    `atwu_every` (5) of them. overrides: other RunConfig fields (lr, batch_size, …).
    Returns the saved scorer's path.
    """
    cfg = RunConfig(model=model_spec, data=data_spec, loss="atwu", selector="atwu", device=device, seed=seed,
                    max_steps=steps, eval_every_epoch=False, save_checkpoints=False)
    for k, v in overrides.items():
        if not hasattr(cfg, k):
            raise ValueError(f"RunConfig has no field {k!r}")
        setattr(cfg, k, v)
    state = short_run(cfg, steps, progress)
    return Path(save_run_scorer(state, None))
