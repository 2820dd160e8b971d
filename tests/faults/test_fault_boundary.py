"""Cases 4, 8 and 11: one error boundary in the CLI (store and OS errors, Ctrl-C, unexpected
errors: one line, exit 1/2/130, no traceback unless --debug), output paths checked before any
work, a mistyped --data path named."""
from __future__ import annotations

import errno
import subprocess
import sys
from pathlib import Path

import pytest

from faultkit import assert_one_line_error, cli, snapshot

REPO = Path(__file__).resolve().parents[2]


def test_garbage_store_is_one_line_in_a_real_process(tmp_path):
    store = tmp_path / "store.sqlite"
    store.write_bytes(b"this is not a database\x00" * 200)
    before = snapshot(tmp_path)
    r = subprocess.run([sys.executable, "-m", "engine", "runs", "--store", str(store)], cwd=REPO,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr  # --store names the wrong file: bad input
    assert r.stderr.startswith(f"error: store {store}: ") and "not a workbench store" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert snapshot(tmp_path) == before  # the damaged file is left as it was


def test_truncated_store_names_the_file(tmp_path, home, capsys):
    from engine.store import Store

    store = tmp_path / "s.sqlite"
    Store(store).create_run({"model": "demo"}, None)
    store.write_bytes(store.read_bytes()[:1000])
    code, _, err = cli(["runs", "--store", store], capsys)
    assert_one_line_error(code, err, 1, f"store {store}")


def test_store_pointing_at_a_folder(tmp_path, home, capsys):
    code, _, err = cli(["runs", "--store", tmp_path], capsys)
    assert_one_line_error(code, err, 2, str(tmp_path), "is a folder")


def test_full_disk_while_exporting_is_one_line_and_keeps_the_run(tmp_path, home, capsys, monkeypatch):
    from engine import atomic
    from engine.store import Store

    store = tmp_path / "store.sqlite"
    run = Store(store).create_run({"model": "demo", "epochs": 1}, None)
    before = store.read_bytes()

    def full(path, text):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(atomic, "write_text_atomic", full)
    code, _, err = cli(["runs", "--store", store, "--export", run, "--json", tmp_path / "r.json"], capsys)
    assert_one_line_error(code, err, 1, str(tmp_path / "r.json"), "no space left")
    assert store.read_bytes() == before and not (tmp_path / "r.json").exists()


def test_atomic_write_keeps_the_old_file_when_the_disk_fills(tmp_path):
    from engine.atomic import replace_atomic, write_text_atomic

    target = write_text_atomic(tmp_path / "cache.json", '{"old": 1}')

    def half_then_full(tmp):
        tmp.write_text('{"new": ')
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp))

    with pytest.raises(OSError):
        replace_atomic(target, half_then_full)
    assert target.read_text() == '{"old": 1}' and [p.name for p in tmp_path.iterdir()] == ["cache.json"]


@pytest.mark.parametrize("argv", [
    ["unlearn", "--loss", "ga", "--json"],
    ["score", "--selector", "all", "--json"],
    ["eval", "--model", "demo", "--json"],
    ["selector-report", "--csv"],
])
def test_output_path_in_a_missing_folder_fails_at_once(argv, tmp_path, home, capsys, monkeypatch):
    from engine import resolve

    monkeypatch.setattr(resolve, "load_data", lambda *a, **k: pytest.fail("work started before the path check"))
    target = tmp_path / "missing" / "dir" / "r.json"
    code, out, err = cli([*argv, target], capsys)
    assert_one_line_error(code, err, 2, "no such directory", str(target.parent))
    assert not (home / "store.sqlite").exists() or "run" not in out


def test_runs_export_to_a_missing_folder_keeps_the_store(tmp_path, home, capsys):
    from engine.store import Store

    store = tmp_path / "store.sqlite"
    run = Store(store).create_run({"model": "demo"}, None)
    before = store.read_bytes()
    code, _, err = cli(["runs", "--store", store, "--export", run, "--csv", tmp_path / "nope" / "m.csv"], capsys)
    assert_one_line_error(code, err, 2, "--csv", "no such directory")
    assert store.read_bytes() == before


def test_output_path_that_is_a_folder(tmp_path, home, capsys):
    code, _, err = cli(["score", "--selector", "all", "--json", tmp_path], capsys)
    assert_one_line_error(code, err, 2, "is a directory")


def test_ctrl_c_during_score_says_cancelled(home, capsys, monkeypatch, model_dir, data_dir):
    from engine.cli import score

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(score, "sample_rows", interrupted)
    code, out, err = cli(["score", "--selector", "all", "--model", model_dir, "--data", data_dir], capsys)
    assert code == 130 and err.strip().splitlines()[-1] == "cancelled" and "Traceback" not in err


def test_unexpected_error_is_one_line_pointing_at_debug(home, capsys, monkeypatch):
    from engine.cli import score

    monkeypatch.setattr(score, "run", lambda args: (_ for _ in ()).throw(RuntimeError("boom")))
    code, _, err = cli(["score", "--selector", "all"], capsys)
    assert_one_line_error(code, err, 1, "RuntimeError: boom", "--debug")


def test_debug_flag_and_env_let_the_traceback_through(home, capsys, monkeypatch):
    from engine.cli import main

    with pytest.raises(ValueError, match="'k' must be a whole number"):
        main(["--debug", "score", "--selector", "wga", "--param", "k=abc"])
    monkeypatch.setenv("WORKBENCH_DEBUG", "1")
    with pytest.raises(ValueError):
        main(["score", "--selector", "wga", "--param", "k=abc"])


def test_mistyped_data_path_says_no_such_directory(tmp_path, data_dir, home, capsys):
    typo = data_dir.parent / "dta"
    code, _, err = cli(["score", "--selector", "all", "--data", typo], capsys)
    assert_one_line_error(code, err, 2, f"no such directory: {typo}")


def test_data_dir_slash_split_still_loads(data_dir):
    from engine.resolve import load_data

    assert load_data(str(data_dir / "forget10")).name.endswith("forget10")
