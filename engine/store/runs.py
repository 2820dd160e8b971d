"""Runs in the store: create, per-epoch metrics, checkpoints, finish, list, delete, and marking
the runs of a dead process 'interrupted'.

Each run owns a checkpoint folder named by a uuid recorded with it (`runs.folder`), never by its
row id: ids restart at 1 in a new store, uuids do not, so a new run cannot write into an old
run's folder (see engine.train.checkpoint.claim_run_folder)."""
from __future__ import annotations

import json
import os
import socket
import sqlite3
import uuid
from pathlib import Path

from ..run_config import RunConfig
from .db import RUN_OUTPUTS, Database, NotFound, dumps, now
from .records import Checkpoint, EpochMetrics, EpochRecord, RunRecord

FINAL_STATUSES = ("finished", "cancelled", "failed")
CHECKPOINT_KINDS = ("best", "final")


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
    current = _process_start(pid)
    return start is None or current is None or current == start


def _flatten(metrics: dict, prefix: str = "") -> dict:
    """Nested dicts become dotted keys; lists become JSON strings (one CSV cell each)."""
    out = {}
    for k, v in metrics.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        elif isinstance(v, (list, tuple)):
            out[key] = dumps(list(v))
        else:
            out[key] = v
    return out


def _json_column(text: str | None):
    """A JSON column's value (None for NULL; the text itself when it is not JSON)."""
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


def _run_record(r: sqlite3.Row) -> RunRecord:
    """The record of one `runs` row. A read-only store older than v5 (not migrated) still holds the
    run's outputs in its config JSON: they are taken from there."""
    d = dict(r)
    config = json.loads(d.pop("config"))
    d.pop("pid_start", None)
    for name, kind in RUN_OUTPUTS.items():
        value = d.pop(name, None)
        if value is not None:
            d[name] = value if kind == "INTEGER" else _json_column(value)
        elif isinstance(config, dict) and name in config:
            d[name] = config.pop(name)
    return RunRecord(config=RunConfig.from_record(config if isinstance(config, dict) else {}), **d)


class Runs(Database):
    """The run half of `Store`."""

    @staticmethod
    def _require_run(conn: sqlite3.Connection, run_id: int) -> None:
        if conn.execute("SELECT 1 FROM runs WHERE id = ?", (int(run_id),)).fetchone() is None:
            raise NotFound(f"no run with id {run_id}")

    def create_run(self, config: RunConfig | dict, mask_set_hash: str | None = None,
                   prompt_format: dict | None = None, world_size: int | None = None) -> int:
        """Record a new run as 'running', owned by this process (pid + hostname) and by a new
        checkpoint folder name (a uuid4); returns its id. config: the RunConfig (or its dict) as
        decided; prompt_format, world_size: what the run found (the tokenizer's prompt format, the
        number of processes), in their own columns. Backs the store up first (`backup`)."""
        self.backup()
        pid = os.getpid()
        record = config.to_dict() if isinstance(config, RunConfig) else dict(config)
        with self._write() as conn:
            cur = conn.execute(
                "INSERT INTO runs (config, mask_set_hash, status, started, pid, pid_start, hostname, folder, "
                "prompt_format, world_size) VALUES (?, ?, 'running', ?, ?, ?, ?, ?, ?, ?)",
                (dumps(record), mask_set_hash, now(), pid, _process_start(pid), socket.gethostname(),
                 uuid.uuid4().hex, None if prompt_format is None else dumps(prompt_format),
                 None if world_size is None else int(world_size)))
        return int(cur.lastrowid)

    def run_folder(self, run_id: int) -> str:
        """The name of the run's own checkpoint folder (its uuid; the id for a run from before v2)."""
        with self._read() as conn:
            self._require_run(conn, run_id)
            row = conn.execute("SELECT * FROM runs WHERE id = ?", (int(run_id),)).fetchone()
        return row["folder"] if "folder" in row.keys() and row["folder"] else str(int(run_id))

    def add_epoch_metrics(self, run_id: int, epoch: int, step: int, metrics: EpochMetrics | dict) -> None:
        """Record one epoch's metrics (one flat JSON object, `EpochMetrics.to_dict`); ValueError when
        this epoch is already recorded."""
        metrics = metrics.to_dict() if isinstance(metrics, EpochMetrics) else metrics
        with self._write() as conn:
            self._require_run(conn, run_id)
            try:
                conn.execute("INSERT INTO epoch_metrics (run_id, epoch, step, metrics, recorded) VALUES (?, ?, ?, ?, ?)",
                             (int(run_id), int(epoch), int(step), dumps(metrics), now()))
            except sqlite3.IntegrityError as err:
                raise ValueError(f"run {run_id} already has metrics for epoch {epoch}") from err

    def replace_epoch_metrics(self, run_id: int, epoch: int, metrics: EpochMetrics | dict) -> None:
        """Replace a recorded epoch's metrics (a run's best epoch, first evaluated on a subsample,
        then on every row); ValueError when the epoch was never recorded."""
        metrics = metrics.to_dict() if isinstance(metrics, EpochMetrics) else metrics
        with self._write() as conn:
            self._require_run(conn, run_id)
            cur = conn.execute("UPDATE epoch_metrics SET metrics = ? WHERE run_id = ? AND epoch = ?",
                               (dumps(metrics), int(run_id), int(epoch)))
            if cur.rowcount == 0:
                raise ValueError(f"run {run_id} has no metrics for epoch {epoch}")

    def set_checkpoint(self, run_id: int, kind: str, path: str, epoch: int) -> None:
        """Record (or replace) the run's 'best' or 'final' checkpoint path."""
        if kind not in CHECKPOINT_KINDS:
            raise ValueError(f"checkpoint kind must be one of {CHECKPOINT_KINDS}, got {kind!r}")
        with self._write() as conn:
            self._require_run(conn, run_id)
            conn.execute("INSERT INTO checkpoints (run_id, kind, path, epoch, recorded) VALUES (?, ?, ?, ?, ?) "
                         "ON CONFLICT (run_id, kind) DO UPDATE SET path = excluded.path, epoch = excluded.epoch, "
                         "recorded = excluded.recorded", (int(run_id), kind, str(path), int(epoch), now()))

    def finish_run(self, run_id: int, status: str, error: str | None = None,
                   phase_seconds: dict[str, float] | None = None) -> None:
        """Record the end of a run; phase_seconds (seconds per phase: loading, evaluating, training,
        saving) go into their own column (RunRecord.phase_seconds), not into the config."""
        if status not in FINAL_STATUSES:
            raise ValueError(f"a run finishes as one of {FINAL_STATUSES}, got {status!r}")
        with self._write() as conn:
            self._require_run(conn, run_id)
            conn.execute("UPDATE runs SET status = ?, error = ?, finished = ? WHERE id = ?",
                         (status, error, now(), int(run_id)))
            if phase_seconds is not None:
                conn.execute("UPDATE runs SET phase_seconds = ? WHERE id = ?",
                             (dumps(dict(phase_seconds)), int(run_id)))

    @staticmethod
    def _run_records(conn: sqlite3.Connection, where: str = "", args: tuple = ()) -> list[RunRecord]:
        runs = {r["id"]: _run_record(r) for r in conn.execute(f"SELECT * FROM runs {where} ORDER BY id", args)}
        if not runs:
            return []
        ids = tuple(runs)
        marks = ",".join("?" * len(ids))
        for r in conn.execute(f"SELECT * FROM epoch_metrics WHERE run_id IN ({marks}) ORDER BY run_id, epoch", ids):
            metrics = EpochMetrics.from_dict(json.loads(r["metrics"]))
            runs[r["run_id"]].metrics.append(EpochRecord(r["epoch"], r["step"], metrics, r["recorded"]))
        for r in conn.execute(f"SELECT * FROM checkpoints WHERE run_id IN ({marks})", ids):
            runs[r["run_id"]].checkpoints[r["kind"]] = Checkpoint(r["path"], r["epoch"])
        return list(runs.values())

    def get_run(self, run_id: int) -> RunRecord:
        """One run with its per-epoch metrics (by epoch) and checkpoints (by kind); NotFound for an unknown id."""
        with self._read() as conn:
            found = self._run_records(conn, "WHERE id = ?", (int(run_id),))
        if not found:
            raise NotFound(f"no run with id {run_id}")
        return found[0]

    def list_runs(self) -> list[RunRecord]:
        """Every run as `get_run` gives it, oldest first."""
        with self._read() as conn:
            return self._run_records(conn)

    def delete_run(self, run_id: int) -> None:
        """Delete a run with its metrics and checkpoint records (checkpoint files stay on disk)."""
        with self._write() as conn:
            self._require_run(conn, run_id)
            conn.execute("DELETE FROM runs WHERE id = ?", (int(run_id),))

    def mark_stale_runs(self) -> list[int]:
        """Mark 'interrupted' every 'running' run whose owning process on this host is gone; returns their ids.

        Runs owned by another host are left alone (their process cannot be checked from here); a
        read-only store is not changed (nothing is marked; `get_run` still shows 'running').
        """
        if self.read_only:
            return []
        host = socket.gethostname()
        with self._write() as conn:
            rows = conn.execute("SELECT id, pid, pid_start FROM runs WHERE status = 'running' AND hostname = ?",
                                (host,)).fetchall()
            stale = [r["id"] for r in rows if r["pid"] is None or not _pid_alive(r["pid"], r["pid_start"])]
            conn.executemany("UPDATE runs SET status = 'interrupted', finished = ?, "
                             "error = COALESCE(error, 'the process running it stopped') WHERE id = ?",
                             [(now(), i) for i in stale])
        return stale

    def run_metrics_rows(self, run_id: int) -> list[dict]:
        """Flat rows for CSV/pandas: run_id, epoch, step, then each metric (nested keys dotted)."""
        run = self.get_run(run_id)
        rows = []
        for m in run.metrics:
            flat = _flatten({k: v for k, v in m.metrics.to_dict().items() if k not in ("run_id", "epoch", "step")})
            rows.append({"run_id": run.id, "epoch": m.epoch, "step": m.step, **flat})
        return rows
