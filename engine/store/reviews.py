"""Which samples of a mask set a person has reviewed (the Edit tab's review queue).

Table `mask_set_reviewed(mask_set_id, sample_uid)` (schema version 3, engine/store/db.py): one row per
reviewed sample, deleted with the set.
"""
from __future__ import annotations

from .db import Database
from .mask_sets import MaskSets


class MaskSetReviews(Database):
    """The review half of `Store`: mark a sample reviewed, list the reviewed samples."""

    def set_reviewed(self, name: str, uid: str, reviewed: bool = True) -> None:
        """Mark (or unmark) one sample of the set as reviewed; NotFound for an unknown set."""
        with self._write() as conn:
            set_id = MaskSets._mask_set_id(conn, name)
            if reviewed:
                conn.execute("INSERT OR IGNORE INTO mask_set_reviewed (mask_set_id, sample_uid) VALUES (?, ?)",
                             (set_id, str(uid)))
            else:
                conn.execute("DELETE FROM mask_set_reviewed WHERE mask_set_id = ? AND sample_uid = ?",
                             (set_id, str(uid)))

    def reviewed(self, name: str) -> set[str]:
        """The uids of the set's reviewed samples; NotFound for an unknown set."""
        with self._read() as conn:
            set_id = MaskSets._mask_set_id(conn, name)
            rows = conn.execute("SELECT sample_uid FROM mask_set_reviewed WHERE mask_set_id = ?", (set_id,)).fetchall()
        return {r["sample_uid"] for r in rows}
