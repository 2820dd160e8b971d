"""Mask sets as JSON files: the export payload, its hash, the validation of an import, and its
fit to the model and data it names (`check_fit`), all before anything is written.

Limits: a file over MAX_IMPORT_BYTES (20 MB) or a payload over MAX_IMPORT_SAMPLES (20,000
samples) is refused with the number; the masks must fit the named tokenizer (fingerprint and
label positions per sample), name samples that exist in the data, and mark at least one token.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

from ..fingerprint import content_hash, tokenizer_fingerprint
from .db import SCHEMA_VERSION, clean_mask
from .records import MaskSet, SampleMask

EXPORT_FORMAT = "unlearning-workbench/mask-set"
MAX_IMPORT_BYTES = 20 * 1024 * 1024
MAX_IMPORT_SAMPLES = 20_000


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
    if len(raw) > MAX_IMPORT_SAMPLES:
        raise ValueError(f"mask-set import: {len(raw):,} samples is over the limit of {MAX_IMPORT_SAMPLES:,} "
                         f"per mask set; split it into smaller sets")
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


def read_import_file(path: str | Path, max_bytes: int = MAX_IMPORT_BYTES) -> Any:
    """The decoded JSON of a mask-set file; ValueError naming the file for one over `max_bytes`
    (with both sizes) or one that is not JSON."""
    path = Path(path)
    size = path.stat().st_size
    if size > max_bytes:
        raise ValueError(f"{path.name}: {size / 1e6:.1f} MB is over the mask-set import limit of "
                         f"{max_bytes / 1e6:.0f} MB")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:
        raise ValueError(f"{path.name} is not a mask-set JSON file: {err}") from None


def check_fit(meta: dict, masks: dict[str, SampleMask], tokenizer, samples: Sequence) -> None:
    """ValueError naming the first problem unless the masks fit `tokenizer` and `samples` (the
    model and data the payload names): the same tokenizer fingerprint, every sample id present,
    each sample's text and number of label positions as the set records, a token marked."""
    found = tokenizer_fingerprint(tokenizer)
    if meta["tokenizer_fingerprint"] != found:
        raise ValueError(f"mask-set import: made for tokenizer {meta['tokenizer_fingerprint']}, but the tokenizer "
                         f"of {meta['model']} is {found}: import it for the model it was made with")
    by_uid = {s.uid: s for s in samples}
    missing = [uid for uid in masks if uid not in by_uid]
    if missing:
        raise ValueError(f"mask-set import: {len(missing)} of {len(masks)} sample ids are not in {meta['data']} "
                         f"(first: {missing[0]!r}): it was made for other data")
    if not any(any(m.mask) for m in masks.values()):
        raise ValueError("mask-set import: the set marks no tokens: nothing to forget")
    probe = MaskSet(0, "import", meta["model"], meta["data"], meta["tokenizer_fingerprint"], None, "", "", masks)
    probe.masks_for([by_uid[uid] for uid in masks], tokenizer)  # text and label positions, naming the sample
