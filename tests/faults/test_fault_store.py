"""Cases 1, 4 and 11: the store refuses what it cannot use at open (a folder, a non-database
file, a damaged page by `PRAGMA quick_check`, pointing at its `.bak`), opens a read-only store
without writing, says "no store at …" for a mistyped --store, turns a full disk into one line,
and a run's checkpoint folder is its own (a uuid, never the row id)."""
from __future__ import annotations

import errno
import json
import os
import sqlite3

import pytest

from faultkit import assert_one_line_error, cli, snapshot


def _store_with_a_run(path):
    from engine.store import Store

    s = Store(path)
    run = s.create_run({"model": "demo", "data": "demo", "loss": "ga", "epochs": 1}, None)
    s.add_epoch_metrics(run, 1, 3, {"forget_quality": 0.5})
    s.finish_run(run, "finished")
    return s, run


def _checkpoint(path):
    """Fold every WAL page into the main file so the bytes on disk are the whole store."""
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def _corrupt_a_table_page(path):
    """Overwrite the middle of the last page (a table's b-tree page) with garbage, header intact."""
    _checkpoint(path)
    data = bytearray(path.read_bytes())
    page = int.from_bytes(data[16:18], "big")
    start = len(data) - page
    data[start:start + 64] = b"\xff" * 64
    path.write_bytes(bytes(data))


def test_corrupt_page_is_refused_at_open_and_names_the_backup(tmp_path, home, capsys):
    path = tmp_path / "s.sqlite"
    s, run = _store_with_a_run(path)
    s.create_run({"model": "demo"}, None)  # its start writes s.sqlite.bak (the store with one run)
    _corrupt_a_table_page(path)
    before = snapshot(tmp_path)
    code, _, err = cli(["runs", "--store", path], capsys)
    assert_one_line_error(code, err, 1, f"store {path} is damaged (quick_check", f"{path}.bak")
    assert snapshot(tmp_path) == before  # nothing written: not the store, not the backup
    from engine.store import Store

    with pytest.raises(sqlite3.DatabaseError, match="damaged"):  # a new run cannot start on it either
        Store(path)
    os.replace(f"{path}.bak", path)  # the advice works: the backup opens and holds the first run
    assert Store(path).get_run(run).status == "finished"


def test_corrupt_store_without_a_backup_says_so(tmp_path, home, capsys):
    path = tmp_path / "s.sqlite"
    from engine.store import Store

    s = Store(path)
    for i in range(3):
        s.create_mask_set(f"set{i}", "m", "d", "fp", masks={"a": ("h", [1] * 50)})
    (tmp_path / "s.sqlite.bak").unlink(missing_ok=True)
    _corrupt_a_table_page(path)
    code, _, err = cli(["runs", "--store", path], capsys)
    assert_one_line_error(code, err, 1, "damaged", "there is no backup")


def test_backup_is_written_at_run_start_with_the_backup_api(tmp_path):
    from engine.store import Store

    path = tmp_path / "s.sqlite"
    s, run = _store_with_a_run(path)
    bak = Store(tmp_path / "s.sqlite.bak", create=False)  # a whole store of its own
    assert [r.id for r in bak.list_runs()] == []  # backed up before run 1 was recorded
    s.create_run({"model": "demo"}, None)
    assert [r.status for r in Store(tmp_path / "s.sqlite.bak", create=False).list_runs()] == ["finished"]


def test_full_disk_while_backing_up_refuses_the_run_and_keeps_the_old_backup(tmp_path, monkeypatch):
    from engine.store import Store
    from engine.store import db

    path = tmp_path / "s.sqlite"
    s, run = _store_with_a_run(path)
    old_bak = (tmp_path / "s.sqlite.bak").read_bytes()

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "s.sqlite.bak"))

    monkeypatch.setattr(db.os, "replace", full)
    with pytest.raises(OSError):
        s.create_run({"model": "demo"}, None)
    monkeypatch.undo()
    assert [r.id for r in Store(path).list_runs()] == [run]  # no run recorded
    assert (tmp_path / "s.sqlite.bak").read_bytes() == old_bak
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")) == []


def test_disk_full_mid_run_is_one_line_and_keeps_what_was_recorded(tmp_path, home, capsys, monkeypatch,
                                                                    model_dir, data_dir):
    """The store fills while the run records epoch 1: one line, exit 1, the run marked interrupted
    later, the earlier run untouched."""
    from engine.store import Store, runs

    path = home / "store.sqlite"
    _store_with_a_run(path)
    before = Store(path).get_run(1)

    def full(self, *a, **k):
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(runs.Runs, "add_epoch_metrics", full)
    monkeypatch.setattr(runs.Runs, "finish_run", full)
    code, out, err = cli(["unlearn", "--model", model_dir, "--data", data_dir, "--loss", "ga", "--epochs", "1",
                          "--no-eval", "--no-checkpoints", "--device", "cpu"], capsys)
    monkeypatch.undo()
    assert code == 1 and "Traceback" not in err + out
    assert "database or disk is full" in out and "interrupted" in out
    s = Store(path)
    assert s.get_run(1) == before
    assert s.mark_stale_runs() == []  # this process still lives: the run is its own
    assert s.get_run(2).status == "running"


def test_disk_full_at_start_is_one_line_and_records_nothing(tmp_path, home, capsys, monkeypatch, model_dir, data_dir):
    from engine.store import Store, runs

    path = home / "store.sqlite"
    _store_with_a_run(path)
    _checkpoint(path)

    def full(self, *a, **k):
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(runs.Runs, "create_run", full)
    code, _, err = cli(["unlearn", "--model", model_dir, "--data", data_dir, "--loss", "ga", "--epochs", "1",
                        "--no-eval", "--device", "cpu"], capsys)
    assert_one_line_error(code, err, 1, f"store {path}", "disk is full")
    monkeypatch.undo()
    assert [r.id for r in Store(path).list_runs()] == [1]


def test_read_only_store_lists_and_shows_without_writing(tmp_path, home, capsys, monkeypatch):
    """A store whose file and folder are not writable (as root every file is writable, so the
    check os.access makes is answered 'no'): runs and runs --show work, nothing changes (SQLite's
    empty -wal/-shm companions may appear where the folder is in fact writable)."""
    path = tmp_path / "ro" / "s.sqlite"
    path.parent.mkdir()
    s, run = _store_with_a_run(path)
    running = s.create_run({"model": "demo"}, None)
    _checkpoint(path)
    before = snapshot(path.parent)
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **k: False if mode & os.W_OK else real(p, mode, **k))
    code, out, err = cli(["runs", "--store", path], capsys)
    assert code == 0 and f"| {run} | finished |" in out, err
    code, out, err = cli(["runs", "--store", path, "--show", run], capsys)
    assert code == 0 and out.startswith(f"run {run}: finished"), err
    from engine.store import Store

    with pytest.raises(sqlite3.DatabaseError, match="read-only"):
        Store(path).create_run({"model": "demo"}, None)
    monkeypatch.undo()
    after = {k: v for k, v in snapshot(path.parent).items() if not k.endswith(("-wal", "-shm"))}
    assert after == before
    assert Store(path).get_run(running).status == "running"


def test_opening_a_current_store_writes_nothing(tmp_path, home, capsys):
    path = tmp_path / "s.sqlite"
    _store_with_a_run(path)
    _checkpoint(path)
    before = snapshot(tmp_path)
    mtime = path.stat().st_mtime_ns
    code, _, _ = cli(["runs", "--store", path, "--show", 1], capsys)
    assert code == 0 and snapshot(tmp_path) == before and path.stat().st_mtime_ns == mtime


def test_mistyped_store_says_no_store_and_creates_nothing(tmp_path, home, capsys):
    code, _, err = cli(["runs", "--store", tmp_path / "stor.sqlite"], capsys)
    assert_one_line_error(code, err, 2, f"no store at {tmp_path / 'stor.sqlite'}")
    assert not (tmp_path / "stor.sqlite").exists()


@pytest.mark.parametrize("content", [b"", b"SQLite format 3\x00" + b"\x00" * 84, b"{\"runs\": []}\n" * 50],
                         ids=["empty-file", "header-only", "json-file"])
def test_store_that_is_not_a_store(tmp_path, home, capsys, content):
    path = tmp_path / "s.sqlite"
    path.write_bytes(content)
    if not content:  # an emptied file is a new store (what deleting the store gives too)
        code, out, _ = cli(["runs", "--store", path], capsys)
        assert code == 0 and "no runs recorded yet" in out
        return
    code, _, err = cli(["runs", "--store", path], capsys)
    assert_one_line_error(code, err, 2 if content[:16] != b"SQLite format 3\x00" else 1, f"store {path}")
    assert path.read_bytes() == content


def test_killed_run_shows_as_interrupted_in_show(tmp_path, home, capsys):
    from engine.store import Store

    path = tmp_path / "s.sqlite"
    s = Store(path)
    run = s.create_run({"model": "demo"}, None)
    with s._write() as conn:  # its process is gone (pid 2**22 + 1 is beyond pid_max's default)
        conn.execute("UPDATE runs SET pid = ?, pid_start = NULL WHERE id = ?", (2 ** 22 + 1, run))
    code, out, _ = cli(["runs", "--store", path, "--show", run], capsys)
    assert code == 0 and out.startswith(f"run {run}: interrupted")


def test_version_1_store_is_migrated_and_keeps_its_rows(tmp_path):
    """A store written before runs had folders: the column is added, old rows read as before
    and keep their id-named folder."""
    from engine.store import Store
    from engine.store.db import _SCHEMA

    path = tmp_path / "old.sqlite"
    conn = sqlite3.connect(path)
    conn.executescript(_SCHEMA.replace("    hostname TEXT,\n    folder TEXT UNIQUE\n", "    hostname TEXT\n"))
    conn.execute("INSERT INTO schema_version VALUES (1)")
    conn.execute("INSERT INTO runs (config, status, started, pid, hostname) VALUES (?, 'finished', 'x', 1, 'h')",
                 (json.dumps({"model": "demo"}),))
    conn.commit()
    conn.close()
    s = Store(path)
    assert s.schema_version() == 5
    r = s.get_run(1)
    assert r.status == "finished" and r.config.model == "demo" and r.folder is None
    assert s.run_folder(1) == "1"
    new = s.create_run({"model": "demo"}, None)
    assert len(s.run_folder(new)) == 32 and s.run_folder(new) != s.run_folder(1)
