"""LoRA checkpoints saved as adapters (peft's adapter_config.json + adapter_model.safetensors):
loaded as base model + adapter, or merged into a plain model directory on export."""
from __future__ import annotations

import shutil
from pathlib import Path

from ..model_dirs import ADAPTER_CONFIG, adapter_base, is_adapter_dir  # noqa: F401  (re-exported)
from ..prompts import format_of, save_format
from .loading import load_adapter_model  # noqa: F401  (re-exported)


def merge_adapter_dir(path: str | Path, out: str | Path) -> Path:
    """Write base + adapter merged (W + (α/r)·B·A) as a plain safetensors model directory at `out`
    (with the tokenizer and `prompt_format.json`), via a temporary sibling renamed into place."""
    model, tok = load_adapter_model(path, "cpu")
    merged = model.merge_and_unload()
    out = Path(out)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    merged.save_pretrained(tmp, safe_serialization=True)
    tok.save_pretrained(tmp)
    save_format(tmp, format_of(tok))  # the adapter's prompt format travels with the merged model
    tmp.rename(out)
    return out
