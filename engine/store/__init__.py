"""The SQLite store shared by the app, the CLI and training threads: mask sets, runs, per-epoch metrics.

Stdlib only (no torch). `db` holds the schema and the transactions (one short-lived connection
per operation, WAL, every write one committed transaction), `mask_sets` and `runs` the two halves
of `Store`, `transfer` the JSON export format and its validation, `records` the dataclasses the
store returns (`MaskSet`, `RunRecord` with its typed `RunConfig`, `EpochMetrics`, …). `rules`
keeps the phrase rules of a mask set (`set_rules`, `get_rules`), copied, exported and imported with it.

Masks are lists of 0/1 over one sample's LABEL positions for the tokenizer the set records
(`tokenizer_fingerprint`); `text_hash(question, answer)` lets a mask refuse changed text
(`MaskSet.masks_for`). Unknown names and run ids raise `NotFound` (a KeyError, and a ValueError
for callers that catch config errors); a duplicate name raises ValueError.
"""
from __future__ import annotations

from .db import SCHEMA_VERSION, NoStore, NotFound, StoreError
from .mask_sets import MaskSets
from .pairings import Pairings
from .prompt_formats import PromptFormats
from .reviews import MaskSetReviews
from .records import Checkpoint, EpochMetrics, EpochRecord, MaskSet, MaskSetSummary, RunRecord, SampleMask
from .runs import CHECKPOINT_KINDS, FINAL_STATUSES, Runs
from .transfer import EXPORT_FORMAT


class Store(MaskSets, Runs, Pairings, MaskSetReviews, PromptFormats):
    """One SQLite file of mask sets (with their phrase rules and reviewed samples), runs, retain-model
    pairings and prompt-format choices; safe to share across threads and processes."""


__all__ = ["CHECKPOINT_KINDS", "EXPORT_FORMAT", "FINAL_STATUSES", "SCHEMA_VERSION", "Checkpoint", "EpochMetrics",
           "EpochRecord",
           "MaskSet", "MaskSetSummary", "NoStore", "NotFound", "RunRecord", "SampleMask", "Store", "StoreError"]
