"""Load a local Hugging Face causal LM directory, safely: safetensors only, no remote code.

Thread safety: transformers' `from_pretrained` is not safe to run in two threads at once. It
patches process-wide globals while it builds a model (`no_tie_weights` swaps
`PreTrainedModel.tie_weights` for a no-op, `no_init_weights` the `torch.nn.init` functions,
`local_torch_dtype` the default dtype) and restores what it found on entry: two overlapping loads
leave the no-op in place for good, so every later load of a tied-embedding model reports
"lm_head.weight missing" (issue 25: a run started while Explore loaded the same model). Its lazy
imports race too ("cannot import name AutoModelForCausalLM"). So every load, tokenizer and
config reading, and every model construction that initialises weights (peft's `get_peft_model`)
runs under `model_loading()`: one process-wide re-entrant lock that also puts back any of those
globals a load outside it left patched.
"""
from __future__ import annotations

import contextlib
import sys
import threading
import warnings
from pathlib import Path
from typing import Iterator

import torch

from ..model_dirs import ModelLoadError, adapter_base, is_adapter_dir
from ..prompts import prompt_format_for
from .device import dtype_for, pick_device


class LoaderFault(RuntimeError):
    """transformers reported weights missing that the checkpoint holds (or ties): a fault of the
    loading in this process, not of the checkpoint (exit 1, not bad input)."""


_LOAD_LOCK = threading.RLock()
_ORIGINALS: dict | None = None  # (owner, attribute) -> the value before any load patched it


def _patched_globals() -> dict:
    """{(owner, name): value} of every global transformers' loading contexts swap."""
    from transformers import initialization as init  # deferred: transformers
    from transformers.modeling_utils import PreTrainedModel  # deferred: transformers

    out = {(PreTrainedModel, "tie_weights"): PreTrainedModel.__dict__["tie_weights"],
           (PreTrainedModel, "init_weights"): PreTrainedModel.__dict__["init_weights"]}
    for module_name in init.TORCH_MODULES_TO_PATCH:
        module = sys.modules.get(module_name)
        for name in init.TORCH_INIT_FUNCTIONS:
            if module is not None and hasattr(module, name):
                out[(module, name)] = getattr(module, name)
    return out


def _restore_globals() -> int:
    """Put back any global a load left patched (one run outside the lock); returns how many."""
    global _ORIGINALS
    import torch.nn.init as nn_init  # deferred: torch
    from transformers import initialization as init  # deferred: transformers

    if _ORIGINALS is None:
        current = _patched_globals()
        # a no-op left by an earlier overlapping load is never taken for the original
        for (owner, name), value in current.items():
            if getattr(value, "__name__", "") == "empty_func":
                real = init.TORCH_INIT_FUNCTIONS.get(name) or getattr(nn_init, name, None)
                current[(owner, name)] = real
        _ORIGINALS = current
    fixed = 0
    for (owner, name), value in _ORIGINALS.items():
        if value is not None and getattr(owner, name, None) is not value:
            setattr(owner, name, value)
            fixed += 1
    return fixed


@contextlib.contextmanager
def model_loading() -> Iterator[None]:
    """The one process-wide lock around every model/tokenizer/config load and every model
    construction that initialises weights; re-entrant. Restores transformers' patched globals
    on entry and exit."""
    with _LOAD_LOCK:
        _restore_globals()
        try:
            yield
        finally:
            _restore_globals()


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


def _causal_names() -> tuple[set[str], set[str]]:
    """(transformers' causal-LM class names, model types whose causal class is an encoder used as a
    decoder only when the config says `is_decoder`: the families that also have a masked-LM head)."""
    from transformers.models.auto.modeling_auto import (MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
                                                        MODEL_FOR_MASKED_LM_MAPPING_NAMES)  # deferred: transformers

    return (set(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.values()),
            set(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES) & set(MODEL_FOR_MASKED_LM_MAPPING_NAMES))


NOT_CAUSAL = "is not a causal language model; use a decoder-only model (e.g. GPT2LMHeadModel, LlamaForCausalLM)"


def check_causal_lm_config(path: Path) -> None:
    """Refuse a config that does not describe a causal LM: an encoder-decoder, saved architectures
    none of which is a causal-LM class, or an encoder family (BERT, RoBERTa, …) whose config does
    not set `is_decoder` (its attention would see the future) — with or without `architectures`."""
    try:
        with model_loading():
            from transformers import AutoConfig  # deferred: transformers

            cfg = AutoConfig.from_pretrained(str(path), trust_remote_code=False, local_files_only=True)
            causal, encoder_families = _causal_names()
    except Exception as err:
        raise ModelLoadError(f"{path}/config.json will not load: {type(err).__name__}: {err}") from None
    archs = list(getattr(cfg, "architectures", None) or [])
    name = ", ".join(archs) or f"model type {cfg.model_type!r}"
    if getattr(cfg, "is_encoder_decoder", False) or (archs and not causal.intersection(archs)):
        raise ModelLoadError(f"{path}: architecture {name} {NOT_CAUSAL}")
    if cfg.model_type in encoder_families and not (getattr(cfg, "is_decoder", False) or getattr(cfg, "causal", False)):
        raise ModelLoadError(f"{path}: {name} is an encoder (config.json has is_decoder false: its attention is "
                             f"bidirectional) and {NOT_CAUSAL}")


def check_causal_class(path: Path, model) -> None:
    """Refuse a loaded model whose class is not one of transformers' causal-LM classes."""
    causal, _ = _causal_names()
    if type(model).__name__ not in causal:
        raise ModelLoadError(f"{path}: loaded as {type(model).__name__}, which {NOT_CAUSAL}")


def check_causal_attention(path: Path, model, length: int = 8) -> None:
    """Refuse a model whose outputs at positions < t depend on the token at t, by behaviour: two
    sequences that differ only in their last token must give the same logits everywhere before it
    (up to rounding: 1e-3 of the logits' scale in 16-bit, 1e-4 in 32-bit)."""
    vocab = model.get_input_embeddings().weight.shape[0]
    context = model_context(model) or length
    length = max(2, min(length, context))
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(0, vocab, (1, length), generator=gen).repeat(2, 1)
    ids[1, -1] = (ids[0, -1] + 1) % vocab
    device = next(model.parameters()).device
    with torch.no_grad():
        logits = model(input_ids=ids.to(device), attention_mask=torch.ones_like(ids, device=device)).logits.float()
    before = logits[:, :-1]
    scale = float(before.abs().max()) or 1.0
    tol = (1e-4 if logits.dtype == torch.float32 and next(model.parameters()).dtype == torch.float32 else 1e-3) * scale
    diff = float((before[0] - before[1]).abs().max())
    if diff > tol:
        raise ModelLoadError(f"{path}: {type(model).__name__} is not causal: changing token {length} changed the "
                             f"outputs at earlier positions by up to {diff:.3g} (its attention sees the future); "
                             f"{NOT_CAUSAL}")


def _checkpoint_keys(path: Path) -> set[str]:
    """The tensor names every *.safetensors file in `path` holds (headers only)."""
    from safetensors import safe_open  # deferred: safetensors

    keys: set[str] = set()
    for f in sorted(path.glob("*.safetensors")):
        try:
            with safe_open(str(f), "pt") as fh:
                keys.update(fh.keys())
        except Exception:  # an unreadable file is reported by the load itself
            continue
    return keys


def check_loading_info(path: Path, info: dict, model=None) -> None:
    """Refuse weights that transformers reports as missing (newly initialised) or mismatched.

    A checkpoint is blamed only when it is in fact incomplete: a 'missing' weight that the
    safetensors files hold, or that the config ties to another weight (`_tied_weights_keys` with
    `tie_word_embeddings`), is a loading fault in this process (`LoaderFault`), not the file's."""
    missing = list(info.get("missing_keys") or [])
    mismatched = [k if isinstance(k, str) else k[0] for k in info.get("mismatched_keys") or []]
    if missing and not mismatched:
        held = _checkpoint_keys(path)
        tied = set()
        if model is not None and getattr(model.config, "tie_word_embeddings", False):
            tied = set(getattr(model, "_tied_weights_keys", None) or {})
        if all(k in held or k in tied for k in missing):
            raise LoaderFault(f"{path}: transformers reported {', '.join(missing[:5])} missing although the "
                              f"checkpoint holds or ties it: a loading fault in this process, not the checkpoint; "
                              f"rerun")
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
    try:
        with model_loading():
            from transformers import AutoTokenizer  # deferred: transformers

            tok = AutoTokenizer.from_pretrained(str(path), trust_remote_code=False, local_files_only=True)
    except Exception as err:  # transformers raises many kinds; name the directory and the cause
        raise ModelLoadError(f"{path}: the tokenizer will not load: {type(err).__name__}: {err}") from None
    if tok.eos_token_id is None:
        raise ModelLoadError(f"{path}: the tokenizer has no EOS token; answers need one to end")
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    tok.prompt_format = prompt_format_for(path, tok)  # chosen once per model (engine.prompts)
    return tok


def load_model(path: str | Path, device: str = "auto", dtype: torch.dtype | None = None):
    """(model, tokenizer) from a local directory, in eval mode, on `device`.

    Refuses pickled weights (`use_safetensors=True`), remote code (`trust_remote_code=False`), a
    folder without tokenizer files, a model that is not a causal LM (its config, its loaded class
    and its behaviour: `check_causal_attention`), weights reported missing or mismatched, and a
    tokenizer with more ids than the embedding (fewer: a warning). The tokenizer's
    model_max_length is set to the model's context (`model_context`). Loads under
    `model_loading()` (one at a time per process; see the module docstring).
    """
    path = Path(path)
    if is_adapter_dir(path):  # a LoRA checkpoint: base model + adapter
        return load_adapter_model(path, device, dtype)
    check_model_dir(path)
    check_tokenizer_files(path)
    check_causal_lm_config(path)
    device = pick_device(device)
    tok = load_tokenizer(path)
    with model_loading():
        model, info = _from_pretrained(path, dtype or dtype_for(device))
        if _loader_fault(path, info, model):  # a global left patched by a load outside the lock
            _restore_globals()
            model, info = _from_pretrained(path, dtype or dtype_for(device))  # once more, globals put back
    check_loading_info(path, info, model)
    check_causal_class(path, model)
    check_vocab(path, tok, model)
    context = model_context(model)
    if context is not None:  # the model's context, not the tokenizer's model_max_length (engine.tokens.encode)
        tok.model_max_length = context
    model.to(device).eval()
    check_causal_attention(path, model)
    return model, tok


def _from_pretrained(path: Path, dtype: torch.dtype):
    """transformers' load with the safe options (the caller holds `model_loading()`)."""
    try:
        from transformers import AutoModelForCausalLM  # deferred: transformers

        return AutoModelForCausalLM.from_pretrained(
            str(path), use_safetensors=True, trust_remote_code=False, local_files_only=True,
            dtype=dtype, output_loading_info=True)
    except Exception as err:
        raise ModelLoadError(f"{path}: the model will not load: {type(err).__name__}: {err}") from None


def _loader_fault(path: Path, info: dict, model) -> bool:
    try:
        check_loading_info(path, info, model)
    except LoaderFault:
        return True
    except ModelLoadError:
        return False
    return False


def load_adapter_model(path: str | Path, device: str = "auto", dtype=None):
    """(model, tokenizer): the base model (`loading.load_model`, every safety check) with the adapter
    applied (safetensors only), in eval mode; the tokenizer saved beside the adapter."""
    from peft import PeftModel  # deferred: peft (only for an adapter)

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
