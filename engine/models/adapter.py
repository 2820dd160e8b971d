"""LoRA checkpoints saved as adapters (peft's adapter_config.json + adapter_model.safetensors):
loaded as base model + adapter, or merged into a plain model directory on export."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

ADAPTER_CONFIG = "adapter_config.json"


def is_adapter_dir(path: str | Path) -> bool:
    """True when `path` holds a peft adapter (adapter_config.json) rather than a whole model."""
    return (Path(path) / ADAPTER_CONFIG).is_file()


def adapter_base(path: str | Path) -> Path:
    """The base model directory an adapter was trained on (its `base_model_name_or_path`)."""
    from .loading import ModelLoadError

    cfg = json.loads((Path(path) / ADAPTER_CONFIG).read_text(encoding="utf-8"))
    base = cfg.get("base_model_name_or_path")
    if not base or not Path(base).is_dir():
        raise ModelLoadError(f"{path}/{ADAPTER_CONFIG}: base_model_name_or_path {base!r} is not a model directory "
                             f"here; the adapter needs the model it was trained on")
    return Path(base)


def load_adapter_model(path: str | Path, device: str = "auto", dtype=None):
    """(model, tokenizer): the base model (`loading.load_model`, every safety check) with the adapter
    applied (safetensors only), in eval mode; the tokenizer saved beside the adapter."""
    from peft import PeftModel

    from .loading import ModelLoadError, load_model, load_tokenizer, model_context, model_loading

    path = Path(path)
    if not (path / "adapter_model.safetensors").is_file():
        raise ModelLoadError(f"{path}: no adapter_model.safetensors (pickled adapters are refused)")
    base, _ = load_model(adapter_base(path), device, dtype)
    with model_loading():  # peft's load patches the same globals (engine.models.loading)
        model = PeftModel.from_pretrained(base, str(path), is_trainable=False, use_safetensors=True)
    tok = load_tokenizer(path)
    context = model_context(base)
    if context is not None:
        tok.model_max_length = context
    return model.eval(), tok


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
    from ..prompts import format_of, save_format

    save_format(tmp, format_of(tok))  # the adapter's prompt format travels with the merged model
    tmp.rename(out)
    return out
