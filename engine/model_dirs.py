"""What a model directory holds, from its files alone (no torch, no transformers): a whole model or
a peft adapter (adapter_config.json + adapter_model.safetensors) and the base model it was trained
on. Below engine.prompts and engine.models, which both ask."""
from __future__ import annotations

import json
from pathlib import Path

ADAPTER_CONFIG = "adapter_config.json"
MODEL_NAMES = {"demo": "target", "demo-retain": "retain"}  # the built-in tiny models: name -> role (models.builtin)


class ModelLoadError(ValueError):
    """A model directory that is missing, unsafe or not a causal LM, with the reason."""


def is_adapter_dir(path: str | Path) -> bool:
    """True when `path` holds a peft adapter (adapter_config.json) rather than a whole model."""
    return (Path(path) / ADAPTER_CONFIG).is_file()


def adapter_base(path: str | Path) -> Path:
    """The base model directory an adapter was trained on (its `base_model_name_or_path`)."""
    cfg = json.loads((Path(path) / ADAPTER_CONFIG).read_text(encoding="utf-8"))
    base = cfg.get("base_model_name_or_path")
    if not base or not Path(base).is_dir():
        raise ModelLoadError(f"{path}/{ADAPTER_CONFIG}: base_model_name_or_path {base!r} is not a model directory "
                             f"here; the adapter needs the model it was trained on")
    return Path(base)
