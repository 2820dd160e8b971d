"""Checkpoints (safetensors, LoRA merged, written atomically) and the run's saved ATWU scorer."""
from __future__ import annotations

import shutil
from pathlib import Path

from .state import State


def save_checkpoint(state: State, directory: Path) -> Path:
    """Write the model (LoRA merged into the weights) + tokenizer (+ the live ATWU scorer) as
    safetensors under `directory`, via a temporary sibling renamed into place."""
    model = state.base_model()
    tmp = directory.with_name(directory.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    if state.config.lora:
        model.merge_adapter()
        try:
            base = model.get_base_model()
            sd = {k.replace(".base_layer.", "."): v for k, v in base.state_dict().items() if "lora_" not in k}
            base.save_pretrained(tmp, state_dict=sd, safe_serialization=True)
        finally:
            model.unmerge_adapter()
    else:
        model.save_pretrained(tmp, safe_serialization=True)
    state.tokenizer.save_pretrained(tmp)
    if state.scorer is not None:
        from safetensors.torch import save_file

        tensors = {k: v.detach().cpu().contiguous() for k, v in state.scorer.linear.state_dict().items()}
        save_file(tensors, str(tmp / "atwu_scorer.safetensors"))  # weight (1, H), bias (1,)
    shutil.rmtree(directory, ignore_errors=True)
    tmp.rename(directory)
    return directory


def save_run_scorer(state: State, run_id: int | None) -> str | None:
    """Save the run's ATWU scorer for the `atwu` selector (keyed to the initial model and these
    forget samples); None when the run had no scorer."""
    if state.scorer is None:
        return None
    from ..selectors.atwu import save_scorer

    return str(save_scorer(state.scorer, state.scorer_key, state.forget,
                           {"model": state.config.model, "data": state.config.data, "run_id": run_id,
                            "steps": state.step}))
