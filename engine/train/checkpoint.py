"""Checkpoints (safetensors, LoRA as adapters, written atomically) and what the run's token weights learned."""
from __future__ import annotations

import shutil
from pathlib import Path

from .state import State


def save_checkpoint(state: State, directory: Path) -> Path:
    """Write the model (with LoRA: the adapter, `python -m engine export --merge` merges it) + tokenizer (+ what learned token weights
    learned, e.g. atwu_scorer.safetensors) as safetensors under `directory`, via a temporary
    sibling renamed into place."""
    model = state.base_model()
    tmp = directory.with_name(directory.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    if state.config.lora:  # the adapter only (adapter_config.json names the base model); merge on export
        model.save_pretrained(tmp, safe_serialization=True)
    else:
        model.save_pretrained(tmp, safe_serialization=True)
    state.tokenizer.save_pretrained(tmp)
    state.weights.save(tmp)
    shutil.rmtree(directory, ignore_errors=True)
    tmp.rename(directory)
    return directory


def save_run_scorer(state: State, run_id: int | None) -> str | None:
    """Save what the run's learned token weights learned for later selection (ATWU: its scorer,
    for the `atwu` selector); None when the weights were fixed."""
    return state.weights.keep({"model": state.config.model, "data": state.config.data, "run_id": run_id,
                               "steps": state.step})
