"""Mask sets as JSON files: the export payload, its hash, and the validation of an import."""
from __future__ import annotations

import json
from typing import Any

from ..fingerprint import content_hash
from .db import SCHEMA_VERSION, clean_mask
from .records import MaskSet, SampleMask

EXPORT_FORMAT = "unlearning-workbench/mask-set"


def mask_hash(tokenizer_fingerprint: str, masks: dict[str, SampleMask]) -> str:
    """sha256 over the tokenizer fingerprint and the sorted (uid, text_hash, mask) triples."""
    rows = [[uid, m.text_hash, [int(x) for x in m.mask]] for uid, m in sorted(masks.items())]
    blob = json.dumps({"tokenizer": tokenizer_fingerprint, "masks": rows}, separators=(",", ":"), sort_keys=True)
    return content_hash(blob, length=64)


def export_payload(ms: MaskSet) -> dict:
    """A JSON-serialisable payload that `validate_payload` accepts (it carries its own hash)."""
    return {"format": EXPORT_FORMAT, "version": SCHEMA_VERSION, "name": ms.name, "model": ms.model,
            "data": ms.data, "tokenizer_fingerprint": ms.tokenizer_fingerprint,
            "source_selector": ms.source_selector, "created": ms.created,
            "masks": {uid: {"text_hash": m.text_hash, "mask": m.mask, "edited": m.edited}
                      for uid, m in ms.masks.items()},
            "hash": mask_hash(ms.tokenizer_fingerprint, ms.masks)}


def validate_payload(payload: Any) -> tuple[dict, dict[str, SampleMask]]:
    """(metadata, masks) of an exported mask set, or ValueError naming the first problem."""
    if not isinstance(payload, dict):
        raise ValueError(f"mask-set import: expected a JSON object, got {type(payload).__name__}")
    if payload.get("format", EXPORT_FORMAT) != EXPORT_FORMAT:
        raise ValueError(f"mask-set import: format {payload.get('format')!r} is not {EXPORT_FORMAT!r}")
    version = payload.get("version", SCHEMA_VERSION)
    if not isinstance(version, int) or isinstance(version, bool) or version > SCHEMA_VERSION:
        raise ValueError(f"mask-set import: version {version!r} is not supported (up to {SCHEMA_VERSION})")
    meta = {}
    for key in ("model", "data", "tokenizer_fingerprint"):
        if not isinstance(payload.get(key), str) or not payload[key]:
            raise ValueError(f"mask-set import: field {key!r} must be a non-empty string, got {payload.get(key)!r}")
        meta[key] = payload[key]
    source = payload.get("source_selector")
    if source is not None and not isinstance(source, str):
        raise ValueError(f"mask-set import: field 'source_selector' must be a string or null, got {source!r}")
    meta["source_selector"] = source
    raw = payload.get("masks")
    if not isinstance(raw, dict):
        raise ValueError(f"mask-set import: field 'masks' must be an object {{uid: {{text_hash, mask, edited}}}}, "
                         f"got {type(raw).__name__}")
    masks = {}
    for uid, entry in raw.items():
        where = f"mask-set import: masks[{uid!r}]"
        if not isinstance(entry, dict):
            raise ValueError(f"{where} must be an object, got {type(entry).__name__}")
        if not isinstance(entry.get("text_hash"), str) or not entry["text_hash"]:
            raise ValueError(f"{where}: 'text_hash' must be a non-empty string")
        edited = entry.get("edited", False)
        if not isinstance(edited, bool):
            raise ValueError(f"{where}: 'edited' must be true or false, got {edited!r}")
        masks[uid] = SampleMask(entry["text_hash"], clean_mask(entry.get("mask"), where), edited)
    expected = payload.get("hash")
    if expected is not None and expected != mask_hash(meta["tokenizer_fingerprint"], masks):
        raise ValueError("mask-set import: the masks do not match the payload's 'hash' (edited or corrupted file)")
    return meta, masks
