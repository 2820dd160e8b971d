"""One home for identity: the content hash of a text, the fingerprint of a tokenizer and of a
model's weights. Cache keys, mask sets and saved ATWU scorers all use these three."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path


def content_hash(*parts: str, length: int = 16) -> str:
    """First `length` hex digits of sha256 over the parts joined by newlines."""
    return hashlib.sha256("\n".join(parts).encode("utf-8")).hexdigest()[:length]


def text_hash(question: str, answer: str) -> str:
    """The per-sample text hash a mask records: content_hash(question, answer)."""
    return content_hash(question, answer)


def tokenizer_fingerprint(tokenizer) -> str:
    """First 16 hex digits of sha256 over the tokenizer's vocabulary and special tokens."""
    h = hashlib.sha256()
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        h.update(backend.to_str().encode("utf-8"))
    else:
        h.update(json.dumps(sorted(tokenizer.get_vocab().items())).encode("utf-8"))
    h.update(json.dumps([tokenizer.eos_token, tokenizer.pad_token]).encode("utf-8"))
    return h.hexdigest()[:16]


def weights_fingerprint(model_dir: str | Path) -> str | None:
    """sha256 (16 hex) of a model directory's path and its safetensors files' names, sizes and
    modification times; None when the directory holds no safetensors file."""
    src = Path(model_dir)
    files = sorted(src.glob("*.safetensors")) if src.is_dir() else []
    if not files:
        return None
    h = hashlib.sha256(str(src.resolve()).encode())
    for f in files:
        st = f.stat()
        h.update(f"{f.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def model_fingerprint(model) -> str:
    """A short id of a loaded model's weights: `weights_fingerprint` of the directory it was
    loaded from, else a hash of its config (a model built in memory)."""
    cfg = getattr(model, "config", None)
    src = str(getattr(cfg, "_name_or_path", "") or "")
    found = weights_fingerprint(src) if src else None
    if found is not None:
        return found
    return content_hash(cfg.to_json_string(use_diff=False) if cfg is not None else repr(model))
