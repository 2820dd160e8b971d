"""Issue 25, point 1: diagnose before advising. An I/O error (a full disk, a read-only folder or
file, no permission) is named as one, with what to do (free space, a writable --store), and is
never called damage; moving a store aside is advised only when quick_check fails on a readable,
writable file. A store the workbench cannot write opens read-only for `runs` / `runs --show`.

Full disks and read-only folders are simulated: SQLite's own error is injected into the store's
connections (as it raises it on a full disk), and `os.access` answers 'not writable' (the suite
runs as root, for whom every path is writable)."""
from __future__ import annotations

import os
import sqlite3
from collections import namedtuple

import pytest

from faultkit import (assert_one_line_error, checkpoint_wal, cli, inject_sqlite_error, snapshot,
                      store_with_a_run)

Usage = namedtuple("Usage", "total used free")

# (SQLite's message, free bytes on the disk, the words the diagnosis must use)
IO_ERRORS = {
    "full-disk-io-error": ("disk I/O error", 0, "disk is full"),
    "database-or-disk-full": ("database or disk is full", 10 << 30, "disk is full"),
    "read-only-database": ("attempt to write a readonly database", 10 << 30, "read-only"),
    "cannot-open": ("unable to open database file", 10 << 30, "I/O error"),
}


def _not_damage(err: str) -> None:
    assert "damaged" not in err and "move the" not in err and "move it aside" not in err, err


def _writable_only_in_snapshots(uri: str, sql: str) -> bool:
    """True for every connection that may write (the read-only snapshot `immutable=1` still reads)."""
    return "immutable=1" not in uri


@pytest.fixture()
def store(home):
    path = home / "store.sqlite"  # the store `unlearn` records into (tests/faults/conftest.py)
    store_with_a_run(path)
    checkpoint_wal(path)
    return path


@pytest.mark.parametrize("case", list(IO_ERRORS))
@pytest.mark.parametrize("command", ["runs", "show"])
def test_io_error_at_open_reads_the_store_and_is_not_called_damage(store, home, capsys, monkeypatch, case, command):
    message, free, _ = IO_ERRORS[case]
    before = snapshot(store.parent)
    monkeypatch.setattr("shutil.disk_usage", lambda p: Usage(100 << 30, (100 << 30) - free, free))
    inject_sqlite_error(monkeypatch, message, _writable_only_in_snapshots)
    argv = ["runs", "--store", store] + (["--show", 1] if command == "show" else [])
    code, out, err = cli(argv, capsys)
    assert code == 0, err
    assert ("| 1 | finished |" in out) if command == "runs" else out.startswith("run 1: finished")
    monkeypatch.undo()
    assert snapshot(store.parent) == before


@pytest.mark.parametrize("case", list(IO_ERRORS))
def test_io_error_at_open_refuses_a_run_naming_the_cause(store, home, capsys, monkeypatch, case, model_dir, data_dir):
    message, free, words = IO_ERRORS[case]
    before = snapshot(store.parent)
    monkeypatch.setattr("shutil.disk_usage", lambda p: Usage(100 << 30, (100 << 30) - free, free))
    inject_sqlite_error(monkeypatch, message, _writable_only_in_snapshots)
    code, _, err = cli(["unlearn", "--model", model_dir, "--data", data_dir, "--loss", "ga", "--epochs", "1",
                        "--no-eval", "--device", "cpu"], capsys)
    assert_one_line_error(code, err, 1, f"store {store}", words)
    _not_damage(err)
    monkeypatch.undo()
    assert snapshot(store.parent) == before
    from engine.store import Store

    assert [r.id for r in Store(store).list_runs()] == [1]  # nothing recorded


@pytest.mark.parametrize("case", list(IO_ERRORS))
def test_io_error_even_for_a_snapshot_is_one_line_and_not_damage(store, home, capsys, monkeypatch, case):
    """Even the read-only snapshot fails (the disk cannot be read): one line, exit 1, the cause."""
    message, free, words = IO_ERRORS[case]
    before = snapshot(store.parent)
    monkeypatch.setattr("shutil.disk_usage", lambda p: Usage(100 << 30, (100 << 30) - free, free))
    inject_sqlite_error(monkeypatch, message)
    code, _, err = cli(["runs", "--store", store], capsys)
    assert_one_line_error(code, err, 1, f"store {store}", words, "not damage")
    _not_damage(err)
    monkeypatch.undo()
    assert snapshot(store.parent) == before


def _files(folder) -> dict:
    """snapshot() without SQLite's -wal/-shm companions (they may appear where os.access is faked
    'not writable' but the folder is in fact writable)."""
    return {k: v for k, v in snapshot(folder).items() if not k.endswith(("-wal", "-shm"))}


def _read_only_folder(monkeypatch, folder):
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **k: False if (mode & os.W_OK and str(p).startswith(
        str(folder))) else real(p, mode, **k))


@pytest.mark.parametrize("command", ["runs", "show"])
def test_read_only_folder_whose_wal_cannot_open_reads_a_snapshot(store, home, capsys, monkeypatch, command):
    """A WAL store in a folder SQLite cannot write: opening `mode=ro` fails (no -shm can be made),
    the store is read as a snapshot and listed; a write says read-only, not damaged."""
    before = _files(store.parent)
    _read_only_folder(monkeypatch, store.parent)
    inject_sqlite_error(monkeypatch, "unable to open database file", _writable_only_in_snapshots)
    argv = ["runs", "--store", store] + (["--show", 1] if command == "show" else [])
    code, out, err = cli(argv, capsys)
    assert code == 0 and "1" in out, err
    from engine.store import Store

    with pytest.raises(sqlite3.DatabaseError, match="read-only") as info:
        Store(store).create_run({"model": "demo"}, None)
    _not_damage(str(info.value))
    monkeypatch.undo()
    assert _files(store.parent) == before


def test_run_in_a_read_only_folder_is_refused_naming_it(store, home, capsys, monkeypatch, model_dir, data_dir):
    before = _files(store.parent)
    _read_only_folder(monkeypatch, store.parent)
    code, _, err = cli(["unlearn", "--model", model_dir, "--data", data_dir, "--loss", "ga", "--epochs", "1",
                        "--no-eval", "--device", "cpu"], capsys)
    assert_one_line_error(code, err, 1, f"store {store}", "read-only", "writable")
    _not_damage(err)
    monkeypatch.undo()
    assert _files(store.parent) == before


def test_new_store_in_a_read_only_folder_says_so_and_creates_nothing(tmp_path, home, capsys, monkeypatch,
                                                                     model_dir, data_dir):
    folder = tmp_path / "ro"
    folder.mkdir()
    _read_only_folder(monkeypatch, folder)
    from engine import paths

    monkeypatch.setattr(paths, "store_path", lambda: folder / "s.sqlite")
    code, _, err = cli(["unlearn", "--model", model_dir, "--data", data_dir, "--loss", "ga", "--epochs", "1",
                        "--no-eval", "--device", "cpu"], capsys)
    assert_one_line_error(code, err, 1, f"store {folder / 's.sqlite'}", "not writable", "writable folder")
    assert list(folder.iterdir()) == []


def _corrupt(path):
    checkpoint_wal(path)
    data = bytearray(path.read_bytes())
    page = int.from_bytes(data[16:18], "big")
    data[len(data) - page:len(data) - page + 64] = b"\xff" * 64
    path.write_bytes(bytes(data))


def test_damage_in_a_read_only_file_is_reported_without_moving_advice(store, home, capsys, monkeypatch):
    """quick_check fails but the file is not writable here: the problem is named, no 'move aside'."""
    _corrupt(store)
    before = _files(store.parent)
    _read_only_folder(monkeypatch, store.parent)
    code, _, err = cli(["runs", "--store", store], capsys)
    assert_one_line_error(code, err, 1, f"store {store}", "quick_check", "read-only", "copy it")
    _not_damage(err)
    monkeypatch.undo()
    assert _files(store.parent) == before


def test_a_store_held_by_another_process_at_open_says_wait_not_damage(store, home, capsys, monkeypatch):
    before = snapshot(store.parent)
    inject_sqlite_error(monkeypatch, "database is locked")
    code, _, err = cli(["runs", "--store", store], capsys)
    assert_one_line_error(code, err, 1, f"store {store}", "another process holds it", "not damage")
    _not_damage(err)
    monkeypatch.undo()
    assert snapshot(store.parent) == before


def test_damage_in_a_writable_file_advises_the_backup(store, home, capsys):
    _corrupt(store)
    before = snapshot(store.parent)
    code, _, err = cli(["runs", "--store", store], capsys)
    assert_one_line_error(code, err, 1, f"store {store} is damaged (quick_check", "damaged file aside")
    assert len(err.strip().splitlines()) == 1, err  # quick_check's multi-line report on one line
    assert snapshot(store.parent) == before


@pytest.mark.parametrize("message,words", [
    ("database or disk is full", "disk is full (not damage)"),
    ("disk I/O error", "I/O error (not damage)"),
    ("attempt to write a readonly database", "read-only (not damage)"),
    ("database is locked", "another process holds it"),
    ("database disk image is malformed", "quick_check at open says whether"),
], ids=["full", "io", "readonly", "locked", "malformed"])
def test_runtime_store_errors_name_the_cause_and_never_advise_moving(tmp_path, message, words):
    from engine.cli.errors import describe

    text, code = describe(sqlite3.OperationalError(message), tmp_path / "s.sqlite")
    assert code == 1 and words in text and f"store {tmp_path / 's.sqlite'}" in text
    assert "move it aside" not in text


@pytest.mark.parametrize("name,kind", [("SQLITE_FULL", "full"), ("SQLITE_IOERR_WRITE", "io"),
                                       ("SQLITE_READONLY_DIRECTORY", "readonly"), ("SQLITE_CANTOPEN", "io"),
                                       ("SQLITE_CORRUPT", "corrupt"), ("SQLITE_NOTADB", "corrupt"),
                                       ("SQLITE_PERM", "permission"), ("SQLITE_BUSY", "busy")])
def test_classification_reads_sqlite_result_codes(name, kind):
    from engine.store.db import classify_sqlite_error

    err = sqlite3.OperationalError("some message")
    err.sqlite_errorname = name
    assert classify_sqlite_error(err) == kind


def test_a_real_sqlite_corruption_code_is_classified_as_damage(tmp_path):
    """A real error from SQLite (not a hand-made one) carries its code: SQLITE_NOTADB."""
    from engine.store.db import classify_sqlite_error

    path = tmp_path / "x.sqlite"
    path.write_bytes(b"SQLite format 3\x00" + b"\xff" * 4000)
    with pytest.raises(sqlite3.DatabaseError) as info:
        sqlite3.connect(path).execute("SELECT * FROM sqlite_master").fetchall()
    assert classify_sqlite_error(info.value) == "corrupt"
