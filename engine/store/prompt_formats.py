"""Prompt-format choices in the store: which prompt format (engine.prompts family name) a person chose
for a model, remembered across sessions (the app's model bar, every CLI command that loads models).

Table `prompt_formats` (schema version 4, engine/store/db.py), keyed by the model directory's
resolved path (`engine.prompts.model_key`); a blank name removes the choice (the model's own
format applies again). Names are checked by the caller against engine.prompts' table (this
module stays free of torch and transformers).
"""
from __future__ import annotations

from .db import Database, check_name, now


class PromptFormats(Database):
    """`set_prompt_format`, `prompt_format_of`, `prompt_format_choices` on the store."""

    def set_prompt_format(self, model: str, name: str | None) -> None:
        """Remember format `name` for `model` (a model key); None or blank forgets the choice."""
        model = check_name(model, "model")
        name = (name or "").strip()
        with self._write() as conn:
            if name:
                conn.execute("INSERT INTO prompt_formats (model, name, updated) VALUES (?, ?, ?) "
                             "ON CONFLICT (model) DO UPDATE SET name = excluded.name, updated = excluded.updated",
                             (model, name, now()))
            else:
                conn.execute("DELETE FROM prompt_formats WHERE model = ?", (model,))

    def prompt_format_of(self, model: str) -> str | None:
        """The format name chosen for `model`, or None."""
        return self.prompt_format_choices().get(check_name(model, "model"))

    def prompt_format_choices(self) -> dict[str, str]:
        """{model key: format name} for every remembered choice ({} on an old read-only store)."""
        with self._read() as conn:
            if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'prompt_formats'").fetchone() is None:
                return {}
            rows = conn.execute("SELECT model, name FROM prompt_formats").fetchall()
        return {r["model"]: r["name"] for r in rows}
