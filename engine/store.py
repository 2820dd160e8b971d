"""The SQLite store shared by the app, the CLI and training threads: mask sets, runs, per-epoch metrics.

Stdlib only (no torch). One short-lived connection per operation, so Gradio worker threads, a
background training thread and other processes (CLI, `accelerate launch`) can share one file:
WAL journal, `foreign_keys=ON`, a busy timeout, and every write inside one committed transaction
(`BEGIN IMMEDIATE` … commit, rolled back on any error). Timestamps are ISO-8601 UTC strings.

Masks are lists of 0/1 over one sample's LABEL positions for the tokenizer the set records
(`tokenizer_fingerprint`); `text_hash(question, answer)` lets a mask refuse changed text.
Unknown names and run ids raise `NotFound` (a KeyError, and a ValueError for callers that
catch config errors); a duplicate name raises ValueError.
"""
from __future__ import annotations

import contextlib
import json
import os
import socket
import sqlite3
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from .fingerprint import content_hash

SCHEMA_VERSION = 1
EXPORT_FORMAT = "unlearning-workbench/mask-set"
RUN_STATUSES = ("running", "finished", "cancelled", "failed", "interrupted")
FINAL_STATUSES = ("finished", "cancelled", "failed")
CHECKPOINT_KINDS = ("best", "final")

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

def _now() -> str:
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


def _dumps(obj: Any) -> str:
    return json.dumps(obj, default=_json_default, sort_keys=True)


def _check_name(name: Any, what: str = "mask set name") -> str:
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"{what} must be a non-empty string, got {name!r}")
    return name.strip()


def _clean_mask(mask: Any, where: str) -> list[int]:
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


def _process_start(pid: int) -> str | None:
    """The kernel start time of `pid` (Linux /proc), to tell a live process from a reused pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[-1].split()
    return fields[19] if len(fields) > 19 else None  # field 22 of stat; [0] here is field 3


def _pid_alive(pid: int, start: str | None) -> bool:
    """Whether `pid` runs on this host and is the process that recorded `start` (when known)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    except OSError:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
        if state in ("Z", "X"):  # zombie: dead, not yet reaped by its parent
            return False
    except (OSError, IndexError):
        pass
    now = _process_start(pid)
    return start is None or now is None or now == start


def _mask_hash(tokenizer_fingerprint: str, masks: dict[str, dict]) -> str:
    """sha256 over the tokenizer fingerprint and the sorted (uid, text_hash, mask) triples."""
    rows = [[uid, m["text_hash"], [int(x) for x in m["mask"]]] for uid, m in sorted(masks.items())]
    blob = json.dumps({"tokenizer": tokenizer_fingerprint, "masks": rows}, separators=(",", ":"), sort_keys=True)
    return content_hash(blob, length=64)


def _flatten(metrics: dict, prefix: str = "") -> dict:
    """Nested dicts become dotted keys; lists become JSON strings (one CSV cell each)."""
    out = {}
    for k, v in metrics.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        elif isinstance(v, (list, tuple)):
            out[key] = _dumps(list(v))
        else:
            out[key] = v
    return out


# ---------------------------------------------------------------- the store

class Store:
    """One SQLite file; safe to share across threads and processes (a connection per operation)."""

    def __init__(self, path: str | os.PathLike, timeout: float = 30.0):
        self.path = Path(path)
        self.timeout = timeout
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._init_schema()

    # -- connections

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

    # -- mask sets

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
    def _insert_masks(conn: sqlite3.Connection, set_id: int, masks: dict[str, dict]) -> None:
        conn.executemany(
            "INSERT INTO sample_masks (mask_set_id, sample_uid, text_hash, mask, edited) VALUES (?, ?, ?, ?, ?)",
            [(set_id, uid, m["text_hash"], json.dumps(m["mask"]), int(m["edited"])) for uid, m in masks.items()])

    @staticmethod
    def _insert_set(conn: sqlite3.Connection, name: str, meta: dict) -> int:
        now = _now()
        cur = conn.execute(
            "INSERT INTO mask_sets (name, model, data, tokenizer_fingerprint, source_selector, created, updated) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (name, meta["model"], meta["data"], meta["tokenizer_fingerprint"], meta.get("source_selector"),
             meta.get("created") or now, now))
        return int(cur.lastrowid)

    def create_mask_set(self, name: str, model: str, data: str, tokenizer_fingerprint: str,
                        source_selector: str | None = None,
                        masks: dict[str, tuple[str, list[int]]] | None = None) -> int:
        """Create a named mask set; `masks` maps uid -> (text_hash, 0/1 list), stored as not edited.

        Returns the new set's id. ValueError for a taken name or a malformed mask (nothing written).
        """
        name = _check_name(name)
        meta = {"model": str(model), "data": str(data), "tokenizer_fingerprint": str(tokenizer_fingerprint),
                "source_selector": source_selector}
        clean = {}
        for uid, entry in (masks or {}).items():
            if not isinstance(entry, (tuple, list)) or len(entry) != 2 or not isinstance(entry[0], str):
                raise ValueError(f"mask for sample {uid!r} must be (text_hash, [0/1, …]), got {entry!r}")
            clean[str(uid)] = {"text_hash": entry[0], "mask": _clean_mask(entry[1], f"sample {uid!r}"),
                               "edited": False}
        with self._write() as conn:
            self._require_free(conn, name)
            set_id = self._insert_set(conn, name, meta)
            self._insert_masks(conn, set_id, clean)
        return set_id

    def list_mask_sets(self) -> list[dict]:
        """Every mask set's metadata plus n_samples and n_edited, by name."""
        with self._read() as conn:
            rows = conn.execute(
                "SELECT s.*, COUNT(m.sample_uid) AS n_samples, COALESCE(SUM(m.edited), 0) AS n_edited "
                "FROM mask_sets s LEFT JOIN sample_masks m ON m.mask_set_id = s.id "
                "GROUP BY s.id ORDER BY s.name").fetchall()
        return [dict(r) for r in rows]

    def get_mask_set(self, name: str) -> dict:
        """Metadata plus `masks: {uid: {"text_hash", "mask", "edited"}}`; NotFound for an unknown name."""
        with self._read() as conn:
            set_id = self._mask_set_id(conn, name)
            meta = dict(conn.execute("SELECT * FROM mask_sets WHERE id = ?", (set_id,)).fetchone())
            rows = conn.execute("SELECT sample_uid, text_hash, mask, edited FROM sample_masks "
                                "WHERE mask_set_id = ? ORDER BY sample_uid", (set_id,)).fetchall()
        meta["masks"] = {r["sample_uid"]: {"text_hash": r["text_hash"], "mask": json.loads(r["mask"]),
                                           "edited": bool(r["edited"])} for r in rows}
        return meta

    def save_sample_mask(self, name: str, uid: str, text_hash: str, mask: list[int], edited: bool = True) -> None:
        """Insert or replace one sample's mask, committed at once (every UI edit calls this)."""
        clean = _clean_mask(mask, f"sample {uid!r}")
        if not isinstance(text_hash, str) or not text_hash:
            raise ValueError(f"sample {uid!r}: text_hash must be a non-empty string, got {text_hash!r}")
        with self._write() as conn:
            set_id = self._mask_set_id(conn, name)
            conn.execute(
                "INSERT INTO sample_masks (mask_set_id, sample_uid, text_hash, mask, edited) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (mask_set_id, sample_uid) DO UPDATE SET text_hash = excluded.text_hash, "
                "mask = excluded.mask, edited = excluded.edited",
                (set_id, str(uid), text_hash, json.dumps(clean), int(bool(edited))))
            conn.execute("UPDATE mask_sets SET updated = ? WHERE id = ?", (_now(), set_id))

    def rename_mask_set(self, old: str, new: str) -> None:
        new = _check_name(new, "new mask set name")
        with self._write() as conn:
            set_id = self._mask_set_id(conn, old)
            if new == old:
                return
            self._require_free(conn, new)
            conn.execute("UPDATE mask_sets SET name = ?, updated = ? WHERE id = ?", (new, _now(), set_id))

    def duplicate_mask_set(self, src: str, dst: str) -> int:
        """Copy a set (metadata, masks and edited flags) under a new name; returns the new id."""
        dst = _check_name(dst, "new mask set name")
        with self._write() as conn:
            src_id = self._mask_set_id(conn, src)
            self._require_free(conn, dst)
            meta = dict(conn.execute("SELECT * FROM mask_sets WHERE id = ?", (src_id,)).fetchone())
            meta["created"] = None
            dst_id = self._insert_set(conn, dst, meta)
            conn.execute("INSERT INTO sample_masks (mask_set_id, sample_uid, text_hash, mask, edited) "
                         "SELECT ?, sample_uid, text_hash, mask, edited FROM sample_masks WHERE mask_set_id = ?",
                         (dst_id, src_id))
        return dst_id

    def delete_mask_set(self, name: str) -> None:
        with self._write() as conn:
            set_id = self._mask_set_id(conn, name)
            conn.execute("DELETE FROM mask_sets WHERE id = ?", (set_id,))

    def mask_set_hash(self, name: str) -> str:
        """Stable sha256 of the set's tokenizer fingerprint and masks (not its name or edited flags)."""
        ms = self.get_mask_set(name)
        return _mask_hash(ms["tokenizer_fingerprint"], ms["masks"])

    def export_mask_set(self, name: str) -> dict:
        """A JSON-serialisable payload that `import_mask_set` accepts (it carries its own hash)."""
        ms = self.get_mask_set(name)
        return {"format": EXPORT_FORMAT, "version": SCHEMA_VERSION, "name": ms["name"], "model": ms["model"],
                "data": ms["data"], "tokenizer_fingerprint": ms["tokenizer_fingerprint"],
                "source_selector": ms["source_selector"], "created": ms["created"],
                "masks": ms["masks"], "hash": _mask_hash(ms["tokenizer_fingerprint"], ms["masks"])}

    def import_mask_set(self, payload: dict, name: str | None = None) -> str:
        """Validate an exported payload and store it (under `name` if given); returns the name used.

        ValueError naming the first problem; nothing is written unless the whole payload is valid.
        """
        meta, masks = _validate_payload(payload)
        name = _check_name(name if name is not None else payload.get("name"))
        with self._write() as conn:
            self._require_free(conn, name)
            set_id = self._insert_set(conn, name, meta)
            self._insert_masks(conn, set_id, masks)
        return name

    # -- runs

    @staticmethod
    def _require_run(conn: sqlite3.Connection, run_id: int) -> None:
        if conn.execute("SELECT 1 FROM runs WHERE id = ?", (int(run_id),)).fetchone() is None:
            raise NotFound(f"no run with id {run_id}")

    def create_run(self, config: dict, mask_set_hash: str | None = None) -> int:
        """Record a new run as 'running', owned by this process (pid + hostname); returns its id."""
        pid = os.getpid()
        with self._write() as conn:
            cur = conn.execute(
                "INSERT INTO runs (config, mask_set_hash, status, started, pid, pid_start, hostname) "
                "VALUES (?, ?, 'running', ?, ?, ?, ?)",
                (_dumps(config), mask_set_hash, _now(), pid, _process_start(pid), socket.gethostname()))
        return int(cur.lastrowid)

    def add_epoch_metrics(self, run_id: int, epoch: int, step: int, metrics: dict) -> None:
        """Record one epoch's metrics (JSON); ValueError when this epoch is already recorded."""
        with self._write() as conn:
            self._require_run(conn, run_id)
            try:
                conn.execute("INSERT INTO epoch_metrics (run_id, epoch, step, metrics, recorded) VALUES (?, ?, ?, ?, ?)",
                             (int(run_id), int(epoch), int(step), _dumps(metrics), _now()))
            except sqlite3.IntegrityError as err:
                raise ValueError(f"run {run_id} already has metrics for epoch {epoch}") from err

    def set_checkpoint(self, run_id: int, kind: str, path: str, epoch: int) -> None:
        """Record (or replace) the run's 'best' or 'final' checkpoint path."""
        if kind not in CHECKPOINT_KINDS:
            raise ValueError(f"checkpoint kind must be one of {CHECKPOINT_KINDS}, got {kind!r}")
        with self._write() as conn:
            self._require_run(conn, run_id)
            conn.execute("INSERT INTO checkpoints (run_id, kind, path, epoch, recorded) VALUES (?, ?, ?, ?, ?) "
                         "ON CONFLICT (run_id, kind) DO UPDATE SET path = excluded.path, epoch = excluded.epoch, "
                         "recorded = excluded.recorded", (int(run_id), kind, str(path), int(epoch), _now()))

    def finish_run(self, run_id: int, status: str, error: str | None = None) -> None:
        if status not in FINAL_STATUSES:
            raise ValueError(f"a run finishes as one of {FINAL_STATUSES}, got {status!r}")
        with self._write() as conn:
            self._require_run(conn, run_id)
            conn.execute("UPDATE runs SET status = ?, error = ?, finished = ? WHERE id = ?",
                         (status, error, _now(), int(run_id)))

    @staticmethod
    def _run_dicts(conn: sqlite3.Connection, where: str = "", args: tuple = ()) -> list[dict]:
        runs = {r["id"]: _run_row(r) for r in conn.execute(f"SELECT * FROM runs {where} ORDER BY id", args)}
        if not runs:
            return []
        ids = tuple(runs)
        marks = ",".join("?" * len(ids))
        for r in conn.execute(f"SELECT * FROM epoch_metrics WHERE run_id IN ({marks}) ORDER BY run_id, epoch", ids):
            runs[r["run_id"]]["metrics"].append({"epoch": r["epoch"], "step": r["step"],
                                                 "metrics": json.loads(r["metrics"]), "recorded": r["recorded"]})
        for r in conn.execute(f"SELECT * FROM checkpoints WHERE run_id IN ({marks})", ids):
            runs[r["run_id"]]["checkpoints"][r["kind"]] = {"path": r["path"], "epoch": r["epoch"]}
        return list(runs.values())

    def get_run(self, run_id: int) -> dict:
        """id, config, mask_set_hash, status, started, finished, error, pid, hostname,
        metrics [{epoch, step, metrics, recorded}] by epoch, checkpoints {kind: {path, epoch}}."""
        with self._read() as conn:
            found = self._run_dicts(conn, "WHERE id = ?", (int(run_id),))
        if not found:
            raise NotFound(f"no run with id {run_id}")
        return found[0]

    def list_runs(self) -> list[dict]:
        """Every run as `get_run` shapes it, oldest first."""
        with self._read() as conn:
            return self._run_dicts(conn)

    def delete_run(self, run_id: int) -> None:
        """Delete a run with its metrics and checkpoint records (checkpoint files stay on disk)."""
        with self._write() as conn:
            self._require_run(conn, run_id)
            conn.execute("DELETE FROM runs WHERE id = ?", (int(run_id),))

    def mark_stale_runs(self) -> list[int]:
        """Mark 'interrupted' every 'running' run whose owning process on this host is gone; returns their ids.

        Runs owned by another host are left alone (their process cannot be checked from here).
        """
        host = socket.gethostname()
        with self._write() as conn:
            rows = conn.execute("SELECT id, pid, pid_start FROM runs WHERE status = 'running' AND hostname = ?",
                                (host,)).fetchall()
            stale = [r["id"] for r in rows if r["pid"] is None or not _pid_alive(r["pid"], r["pid_start"])]
            conn.executemany("UPDATE runs SET status = 'interrupted', finished = ?, "
                             "error = COALESCE(error, 'the process running it stopped') WHERE id = ?",
                             [(_now(), i) for i in stale])
        return stale

    def run_metrics_rows(self, run_id: int) -> list[dict]:
        """Flat rows for CSV/pandas: run_id, epoch, step, then each metric (nested keys dotted)."""
        run = self.get_run(run_id)
        rows = []
        for m in run["metrics"]:
            flat = _flatten({k: v for k, v in m["metrics"].items() if k not in ("run_id", "epoch", "step")})
            rows.append({"run_id": run["id"], "epoch": m["epoch"], "step": m["step"], **flat})
        return rows


def _run_row(r: sqlite3.Row) -> dict:
    d = dict(r)
    d["config"] = json.loads(d["config"])
    d.pop("pid_start", None)
    d["metrics"], d["checkpoints"] = [], {}
    return d


def _validate_payload(payload: Any) -> tuple[dict, dict[str, dict]]:
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
        masks[uid] = {"text_hash": entry["text_hash"], "mask": _clean_mask(entry.get("mask"), where),
                      "edited": edited}
    expected = payload.get("hash")
    if expected is not None and expected != _mask_hash(meta["tokenizer_fingerprint"], masks):
        raise ValueError("mask-set import: the masks do not match the payload's 'hash' (edited or corrupted file)")
    return meta, masks
