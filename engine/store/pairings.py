"""Retain-model pairings in the store: which retain model gives forget quality for a (target
model, data) pair, remembered across sessions (the app's retain-model box, `runs`); the CLI and
the app read it through `engine.resolve.retain_model_for(model, data, store)`.

Table `retain_pairings` (schema version 3, engine/store/db.py). The data name is
canonical (`demo` and `demo/forget10` are one pairing); a blank retain model removes the pairing.
"""
from __future__ import annotations

from .db import Database, now



def _key(model: str, data: str) -> tuple[str, str]:
    from ..resolve import canonical_data  # deferred: torch

    for what, value in (("model", model), ("data", data)):
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"pairing: {what} must be a non-empty string, got {value!r}")
    return model.strip(), canonical_data(data.strip())


class Pairings(Database):
    """`set_retain_model`, `retain_model_of`, `retain_pairings` on the store."""

    def set_retain_model(self, model: str, data: str, retain_model: str | None) -> None:
        """Remember `retain_model` for (model, data); None or blank forgets the pairing."""
        model, data = _key(model, data)
        retain = (retain_model or "").strip()
        with self._write() as conn:
            if retain:
                conn.execute("INSERT INTO retain_pairings (model, data, retain_model, updated) VALUES (?, ?, ?, ?) "
                             "ON CONFLICT (model, data) DO UPDATE SET retain_model = excluded.retain_model, "
                             "updated = excluded.updated", (model, data, retain, now()))
            else:
                conn.execute("DELETE FROM retain_pairings WHERE model = ? AND data = ?", (model, data))

    def retain_model_of(self, model: str, data: str) -> str | None:
        """The remembered retain model for (model, data), or None."""
        model, data = _key(model, data)
        with self._write() as conn:  # a write: the table may not exist yet
            row = conn.execute("SELECT retain_model FROM retain_pairings WHERE model = ? AND data = ?",
                               (model, data)).fetchone()
        return row["retain_model"] if row else None

    def retain_pairings(self) -> dict[tuple[str, str], str]:
        """{(model, data): retain model} for every remembered pairing."""
        with self._write() as conn:
            rows = conn.execute("SELECT model, data, retain_model FROM retain_pairings").fetchall()
        return {(r["model"], r["data"]): r["retain_model"] for r in rows}
