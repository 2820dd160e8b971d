"""Load a local Hugging Face causal LM directory, safely: safetensors only, no remote code."""
from __future__ import annotations

import warnings
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


TOKENIZER_FILES = ("tokenizer.json", "vocab.json", "tokenizer.model", "spiece.model", "vocab.txt")


def check_tokenizer_files(path: Path) -> None:
    """Refuse a folder without tokenizer files: transformers would build an empty tokenizer and
    every answer would become 0 tokens."""
    if path.is_dir() and not any((path / name).is_file() for name in TOKENIZER_FILES):
        raise ModelLoadError(f"{path}: no tokenizer files (expected one of {', '.join(TOKENIZER_FILES)}); "
                             f"save the tokenizer into the model folder (tokenizer.save_pretrained)")


def check_causal_lm_config(path: Path) -> None:
    """Refuse a config whose saved architectures are none of transformers' causal-LM classes
    (an encoder such as BERT would load with a random LM head)."""
    from transformers import AutoConfig
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    try:
        cfg = AutoConfig.from_pretrained(str(path), trust_remote_code=False, local_files_only=True)
    except Exception as err:
        raise ModelLoadError(f"{path}/config.json will not load: {type(err).__name__}: {err}") from None
    causal = set(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.values())
    archs = list(getattr(cfg, "architectures", None) or [])
    if getattr(cfg, "is_encoder_decoder", False) or (archs and not causal.intersection(archs)):
        raise ModelLoadError(f"{path}: architecture {', '.join(archs) or cfg.model_type} is not a causal "
                             f"language model; use a decoder-only model (e.g. GPT2LMHeadModel, LlamaForCausalLM)")


def check_loading_info(path: Path, info: dict) -> None:
    """Refuse weights that transformers reports as missing (newly initialised) or mismatched."""
    missing = list(info.get("missing_keys") or [])
    mismatched = [k if isinstance(k, str) else k[0] for k in info.get("mismatched_keys") or []]
    if missing or mismatched:
        names = missing + mismatched
        listed = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        what = "missing (they would be random)" if missing else "of the wrong shape"
        raise ModelLoadError(f"{path}: {len(names)} weight(s) {what}: {listed}; the checkpoint does not "
                             f"match its config.json")


def check_vocab(path: Path, tok, model) -> None:
    """Refuse a tokenizer with more ids than the model's embedding rows (an IndexError later);
    warn when it has fewer (the model's extra rows are never used)."""
    rows = model.get_input_embeddings().weight.shape[0]
    ids = len(tok)
    if ids > rows:
        raise ModelLoadError(f"{path}: the tokenizer has {ids} ids but the model's embedding only {rows} rows; "
                             f"this tokenizer does not belong to this model")
    if ids < rows:
        warnings.warn(f"{path}: the tokenizer has {ids} ids, fewer than the model's {rows} embedding rows; "
                      f"check that it is the tokenizer the model was trained with", stacklevel=3)


def model_context(model) -> int | None:
    """The model's context length from its config (n_positions / max_position_embeddings), or None."""
    cfg = model.config
    for name in ("n_positions", "max_position_embeddings", "n_ctx", "seq_length"):
        value = getattr(cfg, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


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
    from ..prompts import prompt_format_for

    tok.prompt_format = prompt_format_for(path, tok)  # chosen once per model (engine.prompts)
    return tok


def load_model(path: str | Path, device: str = "auto", dtype: torch.dtype | None = None):
    """(model, tokenizer) from a local directory, in eval mode, on `device`.

    Refuses pickled weights (`use_safetensors=True`), remote code (`trust_remote_code=False`), a
    folder without tokenizer files, an architecture that is not a causal LM, weights reported
    missing or mismatched, and a tokenizer with more ids than the embedding (fewer: a warning).
    The tokenizer's model_max_length is set to the model's context (`model_context`).
    """
    from transformers import AutoModelForCausalLM

    path = Path(path)
    from .adapter import is_adapter_dir, load_adapter_model

    if is_adapter_dir(path):  # a LoRA checkpoint: base model + adapter
        return load_adapter_model(path, device, dtype)
    check_model_dir(path)
    check_tokenizer_files(path)
    check_causal_lm_config(path)
    device = pick_device(device)
    tok = load_tokenizer(path)
    try:
        model, info = AutoModelForCausalLM.from_pretrained(
            str(path), use_safetensors=True, trust_remote_code=False, local_files_only=True,
            dtype=dtype or dtype_for(device), output_loading_info=True)
    except Exception as err:
        raise ModelLoadError(f"{path}: the model will not load: {type(err).__name__}: {err}") from None
    check_loading_info(path, info)
    check_vocab(path, tok, model)
    context = model_context(model)
    if context is not None:  # the model's context, not the tokenizer's model_max_length (engine.tokens.encode)
        tok.model_max_length = context
    model.to(device).eval()
    return model, tok
