"""Phrase rules stored with a mask set: one JSON text per set (the rules as
`engine.masks.rules_to_json` writes them), in table `mask_set_rules` (schema version 3, db.py).

`set_rules(name, rules_json)` replaces the set's rules in one committed transaction;
`get_rules(name)` returns that text, or None when the set has none. Deleting a set deletes its
rules (ON DELETE CASCADE); `duplicate_mask_set` copies them and `export_mask_set` /
`import_mask_set` carry them (field "rules" of the export payload, see `transfer`).
The store keeps the text as given once it parses as a JSON list of objects; what a rule means
(`engine.masks.rules`) is checked by whoever applies the rules, since the store has no torch.
"""
from __future__ import annotations

import json
import sqlite3

from .db import Database, now



def check_rules_json(rules_json: str, where: str = "rules") -> str:
    """The text unchanged when it is a JSON list of objects; ValueError naming `where` otherwise."""
    if not isinstance(rules_json, str):
        raise ValueError(f"{where}: expected JSON text, got {type(rules_json).__name__}")
    try:
        rows = json.loads(rules_json)
    except json.JSONDecodeError as err:
        raise ValueError(f"{where}: not JSON ({err.msg} at line {err.lineno}, column {err.colno})") from None
    if not isinstance(rows, list):
        raise ValueError(f"{where}: expected a JSON list of rules, got {type(rows).__name__}")
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise ValueError(f"{where}[{i}]: expected a JSON object, got {type(row).__name__}")
    return rules_json


class MaskSetRules(Database):
    """The rules half of a mask set (a mixin of `Store`)."""

    @staticmethod
    def _write_rules(conn: sqlite3.Connection, set_id: int, rules_json: str | None) -> None:
        """Replace (or, for None / an empty list, remove) the rules of set `set_id` inside `conn`."""
        if rules_json is None or json.loads(rules_json) == []:
            conn.execute("DELETE FROM mask_set_rules WHERE mask_set_id = ?", (set_id,))
            return
        conn.execute("INSERT INTO mask_set_rules (mask_set_id, rules) VALUES (?, ?) "
                     "ON CONFLICT (mask_set_id) DO UPDATE SET rules = excluded.rules", (set_id, rules_json))

    @staticmethod
    def _read_rules(conn: sqlite3.Connection, set_id: int) -> str | None:
        row = conn.execute("SELECT rules FROM mask_set_rules WHERE mask_set_id = ?", (set_id,)).fetchone()
        return None if row is None else row["rules"]

    def set_rules(self, name: str, rules_json: str) -> None:
        """Replace the rules of mask set `name` (JSON list of rule objects), committed at once.
        An empty list removes them. NotFound for an unknown set, ValueError for text that is not
        a JSON list of objects (nothing written)."""
        check_rules_json(rules_json, f"rules of mask set {name!r}")
        with self._write() as conn:
            set_id = self._mask_set_id(conn, name)
            self._write_rules(conn, set_id, rules_json)
            conn.execute("UPDATE mask_sets SET updated = ? WHERE id = ?", (now(), set_id))

    def get_rules(self, name: str) -> str | None:
        """The rules of mask set `name` as JSON text, or None when it has none (NotFound: no such set)."""
        with self._read() as conn:
            return self._read_rules(conn, self._mask_set_id(conn, name))

