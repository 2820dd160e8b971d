"""Named mask sets in the store: create, list, read, edit one sample, rename, copy, delete,
hash, export and import."""
from __future__ import annotations

import json
import sqlite3

from .db import Database, NotFound, check_name, clean_mask, now
from .records import MaskSet, MaskSetSummary, SampleMask
from .rules import MaskSetRules, check_rules_json
from .transfer import check_fit, export_payload, mask_hash, validate_payload


class MaskSets(MaskSetRules, Database):
    """The mask-set half of `Store`."""

    @staticmethod
    def _mask_set_id(conn: sqlite3.Connection, name: str) -> int:
        row = conn.execute("SELECT id FROM mask_sets WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise NotFound(f"no mask set named {name!r}")
        return int(row["id"])

    @staticmethod
    def _require_free(conn: sqlite3.Connection, name: str) -> None:
        if conn.execute("SELECT 1 FROM mask_sets WHERE name = ?", (name,)).fetchone():
            raise ValueError(f"a mask set named {name!r} already exists")

    @staticmethod
    def _insert_masks(conn: sqlite3.Connection, set_id: int, masks: dict[str, SampleMask]) -> None:
        conn.executemany(
            "INSERT INTO sample_masks (mask_set_id, sample_uid, text_hash, mask, edited) VALUES (?, ?, ?, ?, ?)",
            [(set_id, uid, m.text_hash, json.dumps(m.mask), int(m.edited)) for uid, m in masks.items()])

    @staticmethod
    def _insert_set(conn: sqlite3.Connection, name: str, meta: dict) -> int:
        stamp = now()
        cur = conn.execute(
            "INSERT INTO mask_sets (name, model, data, tokenizer_fingerprint, source_selector, created, updated) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (name, meta["model"], meta["data"], meta["tokenizer_fingerprint"], meta.get("source_selector"),
             meta.get("created") or stamp, stamp))
        return int(cur.lastrowid)

    def create_mask_set(self, name: str, model: str, data: str, tokenizer_fingerprint: str,
                        source_selector: str | None = None,
                        masks: dict[str, tuple[str, list[int]]] | None = None) -> int:
        """Create a named mask set; `masks` maps uid -> (text_hash, 0/1 list), stored as not edited.

        Returns the new set's id. ValueError for a taken name or a malformed mask (nothing written).
        """
        name = check_name(name)
        meta = {"model": str(model), "data": str(data), "tokenizer_fingerprint": str(tokenizer_fingerprint),
                "source_selector": source_selector}
        clean = {}
        for uid, entry in (masks or {}).items():
            if not isinstance(entry, (tuple, list)) or len(entry) != 2 or not isinstance(entry[0], str):
                raise ValueError(f"mask for sample {uid!r} must be (text_hash, [0/1, …]), got {entry!r}")
            clean[str(uid)] = SampleMask(entry[0], clean_mask(entry[1], f"sample {uid!r}"), False)
        with self._write() as conn:
            self._require_free(conn, name)
            set_id = self._insert_set(conn, name, meta)
            self._insert_masks(conn, set_id, clean)
        return set_id

    def list_mask_sets(self) -> list[MaskSetSummary]:
        """Every mask set's metadata plus n_samples and n_edited, by name."""
        with self._read() as conn:
            rows = conn.execute(
                "SELECT s.*, COUNT(m.sample_uid) AS n_samples, COALESCE(SUM(m.edited), 0) AS n_edited "
                "FROM mask_sets s LEFT JOIN sample_masks m ON m.mask_set_id = s.id "
                "GROUP BY s.id ORDER BY s.name").fetchall()
        return [MaskSetSummary(**dict(r)) for r in rows]

    def get_mask_set(self, name: str) -> MaskSet:
        """The set with its masks by uid; NotFound for an unknown name."""
        with self._read() as conn:
            set_id = self._mask_set_id(conn, name)
            meta = dict(conn.execute("SELECT * FROM mask_sets WHERE id = ?", (set_id,)).fetchone())
            rows = conn.execute("SELECT sample_uid, text_hash, mask, edited FROM sample_masks "
                                "WHERE mask_set_id = ? ORDER BY sample_uid", (set_id,)).fetchall()
        masks = {r["sample_uid"]: SampleMask(r["text_hash"], json.loads(r["mask"]), bool(r["edited"])) for r in rows}
        return MaskSet(**meta, masks=masks)

    def save_sample_mask(self, name: str, uid: str, text_hash: str, mask: list[int], edited: bool = True) -> None:
        """Insert or replace one sample's mask, committed at once (every UI edit calls this)."""
        clean = clean_mask(mask, f"sample {uid!r}")
        if not isinstance(text_hash, str) or not text_hash:
            raise ValueError(f"sample {uid!r}: text_hash must be a non-empty string, got {text_hash!r}")
        with self._write() as conn:
            set_id = self._mask_set_id(conn, name)
            conn.execute(
                "INSERT INTO sample_masks (mask_set_id, sample_uid, text_hash, mask, edited) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (mask_set_id, sample_uid) DO UPDATE SET text_hash = excluded.text_hash, "
                "mask = excluded.mask, edited = excluded.edited",
                (set_id, str(uid), text_hash, json.dumps(clean), int(bool(edited))))
            conn.execute("UPDATE mask_sets SET updated = ? WHERE id = ?", (now(), set_id))

    def rename_mask_set(self, old: str, new: str) -> None:
        new = check_name(new, "new mask set name")
        with self._write() as conn:
            set_id = self._mask_set_id(conn, old)
            if new == old:
                return
            self._require_free(conn, new)
            conn.execute("UPDATE mask_sets SET name = ?, updated = ? WHERE id = ?", (new, now(), set_id))

    def duplicate_mask_set(self, src: str, dst: str) -> int:
        """Copy a set (metadata, masks and edited flags) under a new name; returns the new id."""
        dst = check_name(dst, "new mask set name")
        with self._write() as conn:
            src_id = self._mask_set_id(conn, src)
            self._require_free(conn, dst)
            meta = dict(conn.execute("SELECT * FROM mask_sets WHERE id = ?", (src_id,)).fetchone())
            meta["created"] = None
            dst_id = self._insert_set(conn, dst, meta)
            conn.execute("INSERT INTO sample_masks (mask_set_id, sample_uid, text_hash, mask, edited) "
                         "SELECT ?, sample_uid, text_hash, mask, edited FROM sample_masks WHERE mask_set_id = ?",
                         (dst_id, src_id))
            self._write_rules(conn, dst_id, self._read_rules(conn, src_id))
        return dst_id

    def delete_mask_set(self, name: str) -> None:
        with self._write() as conn:
            set_id = self._mask_set_id(conn, name)
            conn.execute("DELETE FROM mask_sets WHERE id = ?", (set_id,))

    def mask_set_hash(self, name: str) -> str:
        """Stable sha256 of the set's tokenizer fingerprint and masks (not its name or edited flags)."""
        ms = self.get_mask_set(name)
        return mask_hash(ms.tokenizer_fingerprint, ms.masks)

    def export_mask_set(self, name: str) -> dict:
        """A JSON-serialisable payload that `import_mask_set` accepts (it carries its own hash);
        field "rules": the set's phrase rules, when it has any."""
        payload = export_payload(self.get_mask_set(name))
        rules = self.get_rules(name)
        if rules is not None:
            payload["rules"] = json.loads(rules)
        return payload

    def import_mask_set(self, payload: dict, name: str | None = None, tokenizer=None, samples=None) -> str:
        """Validate an exported payload and store it (under `name` if given); returns the name used.

        tokenizer, samples: those of the model and data the payload names; given, the masks are
        checked against them (`transfer.check_fit`: fingerprint, sample ids, texts, label
        positions, a marked token) so a set that cannot be opened is never stored. The app passes
        both; without them only the file itself is checked (and the fit at view and run time).
        ValueError naming the first problem; nothing is written unless the whole payload is valid.
        """
        meta, masks = validate_payload(payload)
        rules = payload.get("rules")
        rules = None if rules is None else check_rules_json(json.dumps(rules), "mask-set import: field 'rules'")
        name = check_name(name if name is not None else payload.get("name"))
        if tokenizer is not None or samples is not None:
            if tokenizer is None or samples is None:
                raise ValueError("mask-set import: checking the fit needs both the tokenizer and the samples")
            check_fit(meta, masks, tokenizer, samples)
        with self._write() as conn:
            self._require_free(conn, name)
            set_id = self._insert_set(conn, name, meta)
            self._insert_masks(conn, set_id, masks)
            self._write_rules(conn, set_id, rules)
        return name
