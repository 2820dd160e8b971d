"""Phrase rules of a mask set (`engine.masks.rules`), stored beside its masks as one JSON list.

Table `mask_set_rules(mask_set_id, rules TEXT)`: one row per set that has rules, deleted with the
set. The store keeps the list as given (JSON objects); parsing and checking rules is
`engine.masks.rules.rules_from_json`'s job (the store knows nothing of phrases or tokens).
"""
from __future__ import annotations

import json

from .db import Database, now
from .mask_sets import MaskSets

_TABLE = ("CREATE TABLE IF NOT EXISTS mask_set_rules ("
          "mask_set_id INTEGER PRIMARY KEY REFERENCES mask_sets(id) ON DELETE CASCADE, rules TEXT NOT NULL)")


class MaskSetRules(Database):
    """The rules half of `Store`: `set_rules` / `get_rules` by mask-set name."""

    def _init_schema(self) -> None:
        super()._init_schema()
        with self._write() as conn:
            conn.execute(_TABLE)

    def set_rules(self, name: str, rules_json: list[dict]) -> None:
        """Replace the set's rules with `rules_json` (a list of JSON objects); NotFound for an
        unknown set, ValueError when it is not a JSON-serialisable list (nothing written)."""
        if not isinstance(rules_json, list):
            raise ValueError(f"rules must be a list of JSON objects, got {type(rules_json).__name__}")
        blob = json.dumps(rules_json)
        with self._write() as conn:
            set_id = MaskSets._mask_set_id(conn, name)
            conn.execute("INSERT INTO mask_set_rules (mask_set_id, rules) VALUES (?, ?) "
                         "ON CONFLICT (mask_set_id) DO UPDATE SET rules = excluded.rules", (set_id, blob))
            conn.execute("UPDATE mask_sets SET updated = ? WHERE id = ?", (now(), set_id))

    def get_rules(self, name: str) -> list[dict]:
        """The set's rules as stored ([] when it has none); NotFound for an unknown set."""
        with self._read() as conn:
            set_id = MaskSets._mask_set_id(conn, name)
            row = conn.execute("SELECT rules FROM mask_set_rules WHERE mask_set_id = ?", (set_id,)).fetchone()
        return [] if row is None else json.loads(row["rules"])
