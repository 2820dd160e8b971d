"""The SQLite file itself: schema, connection settings, transactions, and small value checks.

One short-lived connection per operation, so Gradio worker threads, a background training thread
and other processes (CLI, `accelerate launch`) can share one file: WAL journal, `foreign_keys=ON`,
a busy timeout, and every write inside one committed transaction (`BEGIN IMMEDIATE` … commit,
rolled back on any error). Timestamps are ISO-8601 UTC strings.
"""
from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS mask_sets (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    model TEXT NOT NULL,
    data TEXT NOT NULL,
    tokenizer_fingerprint TEXT NOT NULL,
    source_selector TEXT,
    created TEXT NOT NULL,
    updated TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS sample_masks (
    mask_set_id INTEGER NOT NULL REFERENCES mask_sets(id) ON DELETE CASCADE,
    sample_uid TEXT NOT NULL,
    text_hash TEXT NOT NULL,
    mask TEXT NOT NULL,
    edited INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (mask_set_id, sample_uid)
);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    config TEXT NOT NULL,
    mask_set_hash TEXT,
    status TEXT NOT NULL CHECK (status IN ('running','finished','cancelled','failed','interrupted')),
    started TEXT NOT NULL,
    finished TEXT,
    error TEXT,
    pid INTEGER,
    pid_start TEXT,
    hostname TEXT
);
CREATE TABLE IF NOT EXISTS epoch_metrics (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    epoch INTEGER NOT NULL,
    step INTEGER NOT NULL,
    metrics TEXT NOT NULL,
    recorded TEXT NOT NULL,
    PRIMARY KEY (run_id, epoch)
);
CREATE TABLE IF NOT EXISTS checkpoints (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    kind TEXT NOT NULL CHECK (kind IN ('best','final')),
    path TEXT NOT NULL,
    epoch INTEGER NOT NULL,
    recorded TEXT NOT NULL,
    PRIMARY KEY (run_id, kind)
);
"""


class NotFound(KeyError, ValueError):
    """An unknown mask-set name or run id (str() is the plain message, not KeyError's repr)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "not found"


# ---------------------------------------------------------------- small helpers

def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _json_default(obj: Any) -> Any:
    """Numpy/torch scalars become Python numbers (`.item()`); anything else its str()."""
    item = getattr(obj, "item", None)
    if callable(item):
        try:
            return item()
        except (TypeError, ValueError, RuntimeError):
            pass
    return str(obj)


def dumps(obj: Any) -> str:
    return json.dumps(obj, default=_json_default, sort_keys=True)


def check_name(name: Any, what: str = "mask set name") -> str:
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"{what} must be a non-empty string, got {name!r}")
    return name.strip()


def clean_mask(mask: Any, where: str) -> list[int]:
    """A list of 0/1 ints from a list of 0/1 ints or bools; ValueError naming `where` otherwise."""
    if not isinstance(mask, (list, tuple)):
        raise ValueError(f"{where}: mask must be a list of 0/1, got {type(mask).__name__}")
    out = []
    for j, v in enumerate(mask):
        if isinstance(v, bool) or (isinstance(v, int) and v in (0, 1)):
            out.append(int(v))
        else:
            raise ValueError(f"{where}: mask[{j}] must be 0 or 1, got {v!r}")
    return out


# ---------------------------------------------------------------- the file

class Database:
    """One SQLite file; safe to share across threads and processes (a connection per operation)."""

    def __init__(self, path: str | os.PathLike, timeout: float = 30.0):
        self.path = Path(path)
        self.timeout = timeout
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._init_schema()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(str(self.path), timeout=self.timeout, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute(f"PRAGMA busy_timeout={int(self.timeout * 1000)}")
        return conn

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction: committed on success, rolled back on any exception."""
        conn = self._connect()
        try:
            with conn:
                conn.execute("BEGIN IMMEDIATE")
                yield conn
        finally:
            conn.close()

    @contextlib.contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """A read transaction: one consistent snapshot for several SELECTs."""
        conn = self._connect()
        try:
            conn.execute("BEGIN")
            yield conn
        finally:
            conn.rollback()
            conn.close()

    def _init_schema(self) -> None:
        conn = self._connect()
        try:
            conn.execute("PRAGMA journal_mode=WAL")
        finally:
            conn.close()
        with self._write() as conn:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            row = conn.execute("SELECT MAX(version) AS v FROM schema_version").fetchone()
            if row["v"] is None:
                conn.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
            elif row["v"] > SCHEMA_VERSION:
                raise RuntimeError(f"{self.path} has store schema version {row['v']}; this code knows "
                                   f"up to {SCHEMA_VERSION}: update the workbench")

    def schema_version(self) -> int:
        with self._read() as conn:
            return int(conn.execute("SELECT MAX(version) FROM schema_version").fetchone()[0])
