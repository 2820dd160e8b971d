"""The SQLite file itself: schema, connection settings, transactions, and small value checks.

One short-lived connection per operation, so Gradio worker threads, a background training thread
and other processes (CLI, `accelerate launch`) can share one file: WAL journal, `foreign_keys=ON`,
a busy timeout, and every write inside one committed transaction (`BEGIN IMMEDIATE` … commit,
rolled back on any error). Timestamps are ISO-8601 UTC strings.

Opening checks before it uses the file and writes nothing unless the schema must be created or
migrated: a folder, a non-SQLite file or a store that fails `PRAGMA quick_check` is refused
(`StoreError`, naming the backup when there is one); a missing file is created only with
`create=True` (else `NoStore`: "no store at …"); a file or folder that is not writable opens
read-only (listing and showing work, writes raise `StoreError`). `backup()` copies the store to
`<store>.bak` with SQLite's backup API (`create_run` calls it at every run start, so the backup
is the store as it was before the newest run).
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import sqlite3
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

SCHEMA_VERSION = 5  # 2: runs.folder, the run's own checkpoint folder name (a uuid); 3: rules, reviews, pairings;
# 4: prompt_formats, the prompt format chosen per model (engine/store/prompt_formats.py);
# 5: a run's outputs in columns of their own (runs.prompt_format, world_size, phase_seconds), out of its config

SQLITE_HEADER = b"SQLite format 3\x00"

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
    prompt_format TEXT,
    world_size INTEGER,
    phase_seconds TEXT,
    hostname TEXT,
    folder TEXT UNIQUE
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
CREATE TABLE IF NOT EXISTS mask_set_rules (
    mask_set_id INTEGER PRIMARY KEY REFERENCES mask_sets(id) ON DELETE CASCADE,
    rules TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS mask_set_reviewed (
    mask_set_id INTEGER NOT NULL REFERENCES mask_sets(id) ON DELETE CASCADE,
    sample_uid TEXT NOT NULL,
    PRIMARY KEY (mask_set_id, sample_uid)
);
CREATE TABLE IF NOT EXISTS retain_pairings (
    model TEXT NOT NULL,
    data TEXT NOT NULL,
    retain_model TEXT NOT NULL,
    updated TEXT NOT NULL,
    PRIMARY KEY (model, data)
);
CREATE TABLE IF NOT EXISTS prompt_formats (
    model TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    updated TEXT NOT NULL
)
"""


RUN_OUTPUTS = {"prompt_format": "TEXT", "world_size": "INTEGER", "phase_seconds": "TEXT"}  # v5: out of runs.config


def _run_outputs_to_columns(conn: sqlite3.Connection) -> None:
    """v5: add the run-output columns (those a store lacks) and move each old row's outputs, which
    earlier versions wrote into its config JSON, out of the config into them."""
    have = {r[1] for r in conn.execute("PRAGMA table_info(runs)")}
    for name, kind in RUN_OUTPUTS.items():
        if name not in have:
            conn.execute(f"ALTER TABLE runs ADD COLUMN {name} {kind}")
    conn.execute("UPDATE runs SET prompt_format = json_extract(config, '$.prompt_format'), "
                 "world_size = json_extract(config, '$.world_size'), "
                 "phase_seconds = json_extract(config, '$.phase_seconds'), "
                 "config = json_remove(config, '$.prompt_format', '$.world_size', '$.phase_seconds') "
                 "WHERE json_valid(config) AND json_type(config) = 'object'")


# version -> steps (SQL statements, or functions of the connection) that bring a store of version - 1
# to it (old rows stay readable)
_MIGRATIONS = {
    2: ["ALTER TABLE runs ADD COLUMN folder TEXT",
        "CREATE UNIQUE INDEX IF NOT EXISTS runs_folder ON runs(folder)"],
    3: [t.strip() for t in _SCHEMA.split(";") if "mask_set_rules (" in t or "mask_set_reviewed (" in t
        or "retain_pairings (" in t],
    4: [t.strip() for t in _SCHEMA.split(";") if "prompt_formats (" in t],
    5: [_run_outputs_to_columns],
}


class StoreError(sqlite3.DatabaseError):
    """The store file cannot be used as it is (a folder, not a store, damaged, read-only for a
    write); str() is one line naming the file and what to do. exit_code: what the CLI returns."""

    exit_code = 1


class NoStore(StoreError):
    """A store path that does not exist, opened without `create=True` (a mistyped --store)."""

    exit_code = 2


class BadStorePath(StoreError):
    """--store names something that is not a store file (a folder, a file of another kind): bad input."""

    exit_code = 2


LOW_SPACE = 1 << 20  # below 1 MiB free, an I/O error is called a full disk


def classify_sqlite_error(err: sqlite3.Error) -> str:
    """'corrupt', 'full', 'readonly', 'permission', 'busy', 'io' or 'other' for an SQLite error,
    by its result code (`sqlite_errorname`, Python 3.11) or else its message."""
    name = getattr(err, "sqlite_errorname", None) or ""
    text = str(err).lower()
    if name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")) or any(
            w in text for w in ("malformed", "not a database", "corrupt")):
        return "corrupt"
    if name.startswith("SQLITE_FULL") or "disk is full" in text or "no space" in text:
        return "full"
    if name.startswith("SQLITE_READONLY") or "readonly" in text or "read-only" in text:
        return "readonly"
    if name.startswith(("SQLITE_PERM", "SQLITE_AUTH")) or "permission" in text or "access" in text:
        return "permission"
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "locked" in text or "busy" in text:
        return "busy"
    if name.startswith(("SQLITE_IOERR", "SQLITE_CANTOPEN")) or "i/o" in text or "unable to open" in text:
        return "io"
    return "other"


def _free_bytes(folder: Path) -> int | None:
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def _human(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


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
    """One SQLite file; safe to share across threads and processes (a connection per operation).

    create: make the file (and its folder) when it does not exist; False raises `NoStore`.
    """

    def __init__(self, path: str | os.PathLike, timeout: float = 30.0, create: bool = True):
        self.path = Path(path)
        self.timeout = timeout
        self.read_only = False
        self.read_only_reason = "the file or its folder is not writable"
        self._uri: str | None = None  # the read-only URI, when the store opens read-only
        if self.path.is_dir():
            raise BadStorePath(f"store {self.path}: is a folder, not a store file; pass --store a file "
                               f"(e.g. {self.path / 'store.sqlite'})")
        if not self.path.exists():
            if not create:
                raise NoStore(f"no store at {self.path}: check the path (a store is created by the first "
                              f"command that records something)")
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if not os.access(self.path.parent, os.W_OK):
                raise StoreError(f"store {self.path}: cannot be created, the folder {self.path.parent} is not "
                                 f"writable (permission or a read-only file system); pass --store a path in a "
                                 f"writable folder")
        elif self.path.stat().st_size > 0:
            self._check_file()
        try:
            self._init_schema()
        except StoreError:
            raise
        except sqlite3.DatabaseError as err:
            if classify_sqlite_error(err) == "corrupt":
                raise
            raise StoreError(self._io_message(err)) from None

    # -- opening

    @property
    def backup_path(self) -> Path:
        return self.path.with_name(self.path.name + ".bak")

    def _backup_hint(self) -> str:
        bak = self.backup_path
        if not bak.is_file():
            return "there is no backup (<store>.bak); move the file aside to start a new store"
        stamp = datetime.fromtimestamp(bak.stat().st_mtime, timezone.utc).isoformat(timespec="seconds")
        return f"the backup {bak} (from {stamp}) can replace it: move the damaged file aside and copy the backup over it"

    def _check_file(self) -> None:
        """Refuse a file that is not an SQLite store or fails `PRAGMA quick_check`; open
        read-only when the file or its folder is not writable, or when an I/O error (a full
        disk, a read-only folder) keeps SQLite from opening it for writing. Writes nothing.

        Diagnosis before advice: an I/O error (no space, read-only, permission) is said to be one
        and never called damage; moving the file aside is advised only when quick_check fails on
        a file that is readable and writable."""
        with open(self.path, "rb") as fh:
            head = fh.read(len(SQLITE_HEADER))
        if head != SQLITE_HEADER:
            raise BadStorePath(f"store {self.path}: not a workbench store (not an SQLite file); pass --store "
                               f"another file")
        writable = os.access(self.path, os.W_OK) and os.access(self.path.parent, os.W_OK)
        if not writable:
            self.read_only = True
            self._uri = f"{self.path.resolve().as_uri()}?mode=ro"
        try:
            problems = self._quick_check()
        except sqlite3.DatabaseError as err:
            if classify_sqlite_error(err) == "corrupt":
                problems = [str(err)]
            elif classify_sqlite_error(err) == "busy":  # another process, not this file's state: no read-only fallback
                raise StoreError(self._io_message(err)) from None
            else:
                # an I/O error, not damage: read a snapshot (a WAL store in a folder we cannot write
                # has no -shm to share); the read commands work, writes say why they cannot
                first = err
                if not self.read_only:
                    self.read_only = True
                    self.read_only_reason = self._io_reason(first)
                self._uri = f"{self.path.resolve().as_uri()}?immutable=1"
                try:
                    problems = self._quick_check()
                except sqlite3.DatabaseError as err2:
                    if classify_sqlite_error(err2) != "corrupt":
                        raise StoreError(self._io_message(first)) from None
                    problems = [str(err2)]
        if problems != ["ok"]:
            problems = [" ".join(str(p).split()) for p in problems]  # quick_check's lines, on one line
            if self.read_only:
                raise StoreError(f"store {self.path}: quick_check reports a problem ({problems[0]}), but the file "
                                 f"could only be opened read-only ({self.read_only_reason}), so nothing is "
                                 f"concluded or changed; copy it to a writable folder and rerun with --store "
                                 f"the copy to check it")
            raise StoreError(f"store {self.path} is damaged (quick_check: {problems[0]}); {self._backup_hint()}")

    def _quick_check(self) -> list[str]:
        conn = self._connect()
        try:
            return [r[0] for r in conn.execute("PRAGMA quick_check(3)").fetchall()]
        finally:
            conn.close()

    def _io_reason(self, err: sqlite3.Error) -> str:
        """What kind of I/O problem `err` is, with the free space of the store's folder."""
        kind = classify_sqlite_error(err)
        free = _free_bytes(self.path.parent)
        space = f"{_human(free)} free on its disk" if free is not None else "free space unknown"
        if kind == "full" or (free is not None and free < LOW_SPACE):
            return f"the disk is full ({space}): free some space"
        if kind == "readonly":
            return f"the file, its folder or the file system is read-only ({space}): make it writable"
        if kind == "permission":
            return f"permission denied ({space}): check the permissions of the file and its folder"
        if kind == "busy":
            return "another process holds it: wait for it to finish and rerun"
        return (f"an I/O error ({err}; {space}): check free space and that the folder {self.path.parent} "
                f"is writable")

    def _io_message(self, err: sqlite3.Error) -> str:
        return (f"store {self.path}: cannot be opened: {self._io_reason(err)}, or pass --store a writable "
                f"path; this is not damage: the file was not changed and needs no repair")

    def _connect(self) -> sqlite3.Connection:
        if self._uri is not None:
            conn = sqlite3.connect(self._uri, uri=True, timeout=self.timeout, check_same_thread=False)
        else:
            conn = sqlite3.connect(str(self.path), timeout=self.timeout, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute(f"PRAGMA busy_timeout={int(self.timeout * 1000)}")
        return conn

    def _require_writable(self) -> None:
        if self.read_only:
            raise StoreError(f"store {self.path} is read-only ({self.read_only_reason}): it can be listed and "
                             f"shown, not changed; fix that or pass --store a writable path")

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction: committed on success, rolled back on any exception."""
        self._require_writable()
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

    def _stored_version(self) -> int | None:
        """The schema version the file records; None for a new (empty) file."""
        conn = self._connect()
        try:
            return self._stored_version_in(conn)
        finally:
            conn.close()

    def _init_schema(self) -> None:
        """Create or migrate the schema; a store already at this version is not written to."""
        version = self._stored_version()
        if version is not None and version > SCHEMA_VERSION:
            raise StoreError(f"store {self.path} has schema version {version}; this code knows up to "
                             f"{SCHEMA_VERSION}: update the workbench")
        if version == SCHEMA_VERSION:
            return
        if self.read_only:
            if version is None:
                raise StoreError(f"store {self.path} is empty and read-only: nothing to list")
            return  # an older read-only store is read as it is (new columns read as absent)
        conn = self._connect()
        try:
            conn.execute("PRAGMA journal_mode=WAL")
        finally:
            conn.close()
        with self._write() as conn:
            version = self._stored_version_in(conn)
            if version is None:
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
                return
            for target in range(version + 1, SCHEMA_VERSION + 1):
                for statement in _MIGRATIONS[target]:
                    statement(conn) if callable(statement) else conn.execute(statement)
                conn.execute("INSERT INTO schema_version (version) VALUES (?)", (target,))

    @staticmethod
    def _stored_version_in(conn: sqlite3.Connection) -> int | None:
        if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'schema_version'").fetchone() is None:
            return None
        v = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()[0]
        return None if v is None else int(v)

    def schema_version(self) -> int:
        with self._read() as conn:
            return int(conn.execute("SELECT MAX(version) FROM schema_version").fetchone()[0])

    def backup(self) -> Path:
        """Copy the store to `<store>.bak` with SQLite's backup API (a consistent snapshot even
        while others write), via a temporary file renamed into place: the old backup stays whole
        when this fails (e.g. a full disk)."""
        self._require_writable()
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".bak.tmp")
        os.close(fd)
        try:
            src = self._connect()
            try:
                dst = sqlite3.connect(tmp)
                try:
                    src.backup(dst)
                finally:
                    dst.close()
            finally:
                src.close()
            os.replace(tmp, self.backup_path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return self.backup_path
