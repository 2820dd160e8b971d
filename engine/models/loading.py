"""Load a local Hugging Face causal LM directory, safely: safetensors only, no remote code."""
from __future__ import annotations

from pathlib import Path

import torch

from .device import dtype_for, pick_device


class ModelLoadError(ValueError):
    """A model directory that is missing, unsafe or not a causal LM, with the reason."""


def check_model_dir(path: Path) -> None:
    """Raise ModelLoadError unless `path` looks like a loadable, safetensors HF model."""
    if not path.exists():
        raise ModelLoadError(f"{path}: no such model directory")
    if not path.is_dir():
        raise ModelLoadError(f"{path}: is a file, not a model directory (expected config.json + *.safetensors)")
    if not (path / "config.json").is_file():
        raise ModelLoadError(f"{path}: no config.json; this is not a Hugging Face model directory")
    if not any(path.glob("*.safetensors")):
        unsafe = [p.name for p in path.glob("*.bin")] + [p.name for p in path.glob("*.pt")]
        extra = f" (found {', '.join(unsafe)}: pickled weights are refused; convert them to safetensors)" if unsafe else ""
        raise ModelLoadError(f"{path}: no *.safetensors weights{extra}")


def load_tokenizer(path: str | Path):
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(str(path), trust_remote_code=False, local_files_only=True)
    except Exception as err:  # transformers raises many kinds; name the directory and the cause
        raise ModelLoadError(f"{path}: the tokenizer will not load: {type(err).__name__}: {err}") from None
    if tok.eos_token_id is None:
        raise ModelLoadError(f"{path}: the tokenizer has no EOS token; answers need one to end")
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return tok


def load_model(path: str | Path, device: str = "auto", dtype: torch.dtype | None = None):
    """(model, tokenizer) from a local directory, in eval mode, on `device`.

    Refuses pickled weights (`use_safetensors=True`) and remote code (`trust_remote_code=False`).
    """
    from transformers import AutoModelForCausalLM

    path = Path(path)
    check_model_dir(path)
    device = pick_device(device)
    tok = load_tokenizer(path)
    try:
        model = AutoModelForCausalLM.from_pretrained(
            str(path), use_safetensors=True, trust_remote_code=False, local_files_only=True,
            dtype=dtype or dtype_for(device))
    except Exception as err:
        raise ModelLoadError(f"{path}: the model will not load: {type(err).__name__}: {err}") from None
    model.to(device).eval()
    return model, tok
