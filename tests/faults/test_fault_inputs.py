"""Issue 25, point 4: every bad input is exit 2 with the parameter or file (and line) named, checked
before anything is recorded or written: a folder or a foreign file as --store, an output that is
a folder, a file, the root or a symbolic link, a lone surrogate in data, an ATWU scorer= that is
not a scorer, a missing --retain-model, LoRA's alpha/r ≤ 0, a seed out of range, non-UTF-8 or
over-size span / word-list files; and a killed run's `<kind>.tmp` is cleaned at the next start."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from faultkit import FORGET, RETAIN, assert_one_line_error, cli, row, snapshot, store_with_a_run, write_split

UNLEARN = ["unlearn", "--loss", "ga", "--epochs", "1", "--no-eval", "--device", "cpu", "--max-steps", "1",
           "--no-checkpoints"]


def recorded_runs(home) -> list:
    from engine.store import Store

    path = home / "store.sqlite"
    return [r.id for r in Store(path).list_runs()] if path.exists() else []


def _spans_file(path: Path, rows=FORGET) -> Path:
    path.write_text("".join(json.dumps({"question": r["question"], "answer": r["answer"],
                                        "spans": [{"start": 0, "end": 4}]}) + "\n" for r in rows))
    return path


# ---------------------------------------------------------------- --store that is not a store file

@pytest.mark.parametrize("what", ["folder", "text-file", "etc-hostname"])
@pytest.mark.parametrize("command", ["runs", "runs-show", "leak-check"])
def test_store_that_is_a_folder_or_a_foreign_file_is_exit_2(tmp_path, home, capsys, what, command, model_dir,
                                                            data_dir):
    if what == "folder":
        store, needle = tmp_path / "some-folder", "is a folder"
        store.mkdir()
    elif what == "text-file":
        store, needle = tmp_path / "notes.txt", "not a workbench store"
        store.write_text("hello\n")
    else:
        store, needle = Path("/etc/hostname"), "not a workbench store"
        if not store.is_file():
            pytest.skip("no /etc/hostname here")
    before = snapshot(store) if store.is_dir() else store.read_bytes()
    argv = {"runs": ["runs"], "runs-show": ["runs", "--show", 1],
            "leak-check": ["leak-check", "--model", model_dir, "--data", data_dir,
                           "--spans", _spans_file(tmp_path / "s.jsonl")]}[command] + ["--store", store]
    code, _, err = cli(argv, capsys)
    assert_one_line_error(code, err, 2, f"store {store}", needle)
    assert (snapshot(store) if store.is_dir() else store.read_bytes()) == before


# ---------------------------------------------------------------- outputs: folder, root, symlink

@pytest.mark.parametrize("flag", ["--csv", "--json"])
@pytest.mark.parametrize("target", ["/", "tmp-folder"])
def test_leak_check_output_that_is_a_folder_is_refused_first(tmp_path, home, capsys, model_dir, data_dir, flag,
                                                            target):
    out = "/" if target == "/" else str(tmp_path)
    code, outp, err = cli(["leak-check", "--model", model_dir, "--data", data_dir, "--spans",
                           _spans_file(tmp_path / "s.jsonl"), flag, out], capsys)
    assert_one_line_error(code, err, 2, f"{flag} {out}", "is a directory")
    assert "leak rate" not in outp  # refused before the model was loaded


@pytest.mark.parametrize("out,needle", [("file", "is a file"), ("/", "file-system root"),
                                        ("foreign", "not an earlier output"), ("home", "home folder")])
def test_finetune_out_that_is_a_file_the_root_or_a_foreign_folder_is_refused(tmp_path, home, capsys, data_dir, out,
                                                                            needle):
    if out == "file":
        path = tmp_path / "a-file"
        path.write_text("keep me")
    elif out == "foreign":
        path = tmp_path / "photos"
        path.mkdir()
        (path / "cat.jpg").write_bytes(b"\xff\xd8")
    elif out == "home":
        path = Path.home()
    else:
        path = Path("/")
    before = sorted(os.listdir(path)) if path.is_dir() else path.read_bytes()
    code, _, err = cli(["finetune", "--data", data_dir, "--out", path, "--epochs", "1"], capsys)
    assert_one_line_error(code, err, 2, f"--out {path}", needle)
    assert (sorted(os.listdir(path)) if path.is_dir() else path.read_bytes()) == before
    assert not Path("/target").exists() and not Path("/retain").exists()


def test_finetune_out_in_an_earlier_output_is_still_resumable(tmp_path):
    from engine.cli.checks import check_out_folder

    (tmp_path / "out" / ".state").mkdir(parents=True)
    assert check_out_folder(str(tmp_path / "out")) == tmp_path / "out"
    assert check_out_folder(str(tmp_path / "new" / "deep")) == tmp_path / "new" / "deep"


def _link(tmp_path) -> tuple[Path, Path]:
    target = tmp_path / "real.json"
    target.write_text('{"keep": true}')
    link = tmp_path / "link.json"
    link.symlink_to(target)
    return link, target


SYMLINK_COMMANDS = {
    "score": lambda m, d, t: ["score", "--selector", "all", "--model", m, "--data", d],
    "eval": lambda m, d, t: ["eval", "--model", m, "--data", d, "--device", "cpu"],
    "selector-report": lambda m, d, t: ["selector-report", "--model", m, "--data", d, "--device", "cpu"],
    "leak-check": lambda m, d, t: ["leak-check", "--model", m, "--data", d, "--spans", _spans_file(t / "s.jsonl")],
    "unlearn": lambda m, d, t: UNLEARN + ["--model", m, "--data", d],
    "runs-export": lambda m, d, t: ["runs", "--store", store_with_a_run(t / "s.sqlite")[0].path, "--export", 1],
}


@pytest.mark.parametrize("command", list(SYMLINK_COMMANDS))
def test_json_onto_a_symlink_is_refused_and_the_link_left_alone(tmp_path, home, capsys, model_dir, data_dir, command):
    link, target = _link(tmp_path)
    argv = SYMLINK_COMMANDS[command](model_dir, data_dir, tmp_path) + ["--json", link]
    code, _, err = cli(argv, capsys)
    assert_one_line_error(code, err, 2, f"--json {link}", "symbolic link", "left alone")
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert target.read_text() == '{"keep": true}'
    assert recorded_runs(home) == []


@pytest.mark.parametrize("flag", ["--csv", "--per-sample"])
def test_csv_onto_a_symlink_is_refused_too(tmp_path, home, capsys, model_dir, data_dir, flag):
    link, target = _link(tmp_path)
    code, _, err = cli(["selector-report", "--model", model_dir, "--data", data_dir, flag, link], capsys)
    assert_one_line_error(code, err, 2, f"{flag} {link}", "symbolic link")
    assert link.is_symlink() and target.read_text() == '{"keep": true}'


# ---------------------------------------------------------------- a lone surrogate in the data

def _surrogate_data(folder: Path, as_array: bool) -> Path:
    rows = FORGET[:2] + [row("Who?", "Ana \ud800 Lima")] + FORGET[2:]
    write_split(folder, "retain90", RETAIN)
    path = folder / "forget10.json"
    if as_array:
        path.write_text(json.dumps(rows))  # json.dumps escapes the surrogate as \ud800
    else:
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.mark.parametrize("layout", ["json-lines", "json-array"])
@pytest.mark.parametrize("command", ["score", "eval", "unlearn", "selector-report", "leak-check"])
def test_lone_surrogate_in_data_names_file_and_line(tmp_path, home, capsys, model_dir, layout, command):
    path = _surrogate_data(tmp_path / "bad", layout == "json-array")
    d = tmp_path / "bad"
    argv = {"score": ["score", "--selector", "all", "--model", model_dir, "--data", d],
            "eval": ["eval", "--model", model_dir, "--data", d, "--device", "cpu"],
            "unlearn": UNLEARN + ["--model", model_dir, "--data", d],
            "selector-report": ["selector-report", "--model", model_dir, "--data", d, "--device", "cpu"],
            "leak-check": ["leak-check", "--model", model_dir, "--data", d,
                           "--spans", _spans_file(tmp_path / "s.jsonl")]}[command]
    before = snapshot(d)
    code, _, err = cli(argv, capsys)
    where = f"{path}:3" if layout == "json-lines" else f"{path}: row 3"
    assert_one_line_error(code, err, 2, where, "lone surrogate \\ud800")
    assert snapshot(d) == before and recorded_runs(home) == []


def test_lone_surrogate_in_data_names_file_and_line_in_explore(tmp_path):
    """Explore loads data through the same session the app uses: a DataError naming file:line."""
    from engine.data import DataError
    from engine.explore.session import Session

    path = _surrogate_data(tmp_path / "bad", False)
    with pytest.raises(DataError, match=rf"{path}:3: a lone surrogate \\ud800"):
        Session(device="cpu").samples(str(tmp_path / "bad"))


def test_lone_surrogate_in_a_span_file_names_file_and_line(tmp_path):
    from engine.masks import read_span_file
    from engine.masks.jsonl import MaskFileError

    path = tmp_path / "spans.jsonl"
    path.write_text('{"question": "q", "answer": "a", "spans": []}\n{"question": "q\\ud800", "answer": "a"}\n')
    with pytest.raises(MaskFileError, match=rf"{path}:2: a lone surrogate"):
        read_span_file(path)


# ---------------------------------------------------------------- parameters named in the message

SCORERS = {
    "etc-passwd": (lambda t: "/etc/passwd", "not a saved ATWU scorer"),
    "missing": (lambda t: str(t / "nope.safetensors"), "no such file"),
    "folder": (lambda t: str(t), "is a directory"),
    "garbage-safetensors": (lambda t: _garbage(t / "x.safetensors"), "not a readable safetensors file"),
}


def _garbage(path: Path) -> str:
    path.write_bytes(b"\xff" * 64)
    return str(path)


@pytest.mark.parametrize("case", list(SCORERS))
@pytest.mark.parametrize("command", ["score", "unlearn", "selector-report"])
def test_atwu_scorer_param_that_is_not_a_scorer_is_exit_2_naming_it(tmp_path, home, capsys, model_dir, data_dir, case,
                                                                   command):
    value = SCORERS[case][0](tmp_path)
    if command == "selector-report":
        argv = ["selector-report", "--model", model_dir, "--data", data_dir, "--selectors", "atwu",
                "--param", f"atwu.scorer={value}"]
        named = f"--param atwu.scorer={value}"
    else:
        argv = (["score", "--selector", "atwu", "--model", model_dir, "--data", data_dir] if command == "score"
                else UNLEARN + ["--selector", "atwu", "--model", model_dir, "--data", data_dir]) + [
            "--param", f"scorer={value}"]
        named = f"--param scorer={value}"
    code, _, err = cli(argv, capsys)
    assert_one_line_error(code, err, 2, named, SCORERS[case][1])
    assert recorded_runs(home) == []


@pytest.mark.parametrize("seed", [2**70, -1, 2**32])
def test_seed_out_of_range_names_the_flag_before_a_run_is_recorded(home, capsys, model_dir, data_dir, seed):
    code, _, err = cli(UNLEARN + ["--model", model_dir, "--data", data_dir, "--seed", seed], capsys)
    assert_one_line_error(code, err, 2, f"--seed {seed}", "between 0 and 4294967295")
    assert recorded_runs(home) == []


@pytest.mark.parametrize("flag,value", [("--lora-alpha", -1), ("--lora-alpha", 0), ("--lora-r", 0), ("--lora-r", -4)])
@pytest.mark.parametrize("command", ["unlearn", "finetune"])
def test_lora_rank_and_alpha_must_be_positive(tmp_path, home, capsys, model_dir, data_dir, flag, value, command):
    argv = (UNLEARN + ["--model", model_dir, "--data", data_dir, "--lora"] if command == "unlearn"
            else ["finetune", "--data", data_dir, "--out", tmp_path / "ft", "--lora", "--epochs", "1"])
    code, _, err = cli(argv + [flag, value], capsys)
    assert_one_line_error(code, err, 2, f"{flag} {value}", "must be positive")
    assert recorded_runs(home) == [] and not (tmp_path / "ft").exists()


@pytest.mark.parametrize("retain", ["/nope", "missing-folder", "a-file"])
def test_missing_retain_model_is_refused_before_the_run_is_recorded(tmp_path, home, capsys, model_dir, data_dir,
                                                                    retain):
    if retain == "missing-folder":
        retain = str(tmp_path / "no-such-model")
    elif retain == "a-file":
        (tmp_path / "f.txt").write_text("x")
        retain = str(tmp_path / "f.txt")
    before = snapshot(home / "runs")
    code, _, err = cli(UNLEARN + ["--model", model_dir, "--data", data_dir, "--retain-model", retain], capsys)
    assert_one_line_error(code, err, 2, f"--retain-model {retain}")
    assert recorded_runs(home) == [] and snapshot(home / "runs") == before


# ---------------------------------------------------------------- span / word-list imports

@pytest.mark.parametrize("kind", ["spans", "words"])
def test_non_utf8_import_names_file_and_line(tmp_path, kind):
    from engine.masks import read_span_file, read_word_file
    from engine.masks.jsonl import MaskFileError

    path = tmp_path / f"{kind}.jsonl"
    path.write_bytes(b'{"question": "q", "answer": "a"}\n{"question": "caf\xe9", "answer": "a"}\n')
    reader = read_span_file if kind == "spans" else read_word_file
    with pytest.raises(MaskFileError, match=rf"{path}:2: not UTF-8 text .*column 18"):
        reader(path)


@pytest.mark.parametrize("kind", ["spans", "words"])
def test_import_over_20_mb_is_refused_before_reading(tmp_path, kind):
    from engine.masks import read_span_file, read_word_file
    from engine.masks.jsonl import MaskFileError

    path = tmp_path / f"{kind}.jsonl"
    with open(path, "wb") as fh:
        fh.truncate(25 * 2**20)  # sparse: 25 MB on paper, nothing written
    reader = read_span_file if kind == "spans" else read_word_file
    with pytest.raises(MaskFileError, match=rf"{path}: 25.0 MB is over the limit of 20 MB"):
        reader(path)


def test_leak_check_spans_file_with_bad_bytes_is_exit_2_naming_file_and_line(tmp_path, home, capsys, model_dir,
                                                                             data_dir):
    path = tmp_path / "spans.jsonl"
    path.write_bytes(b'{"question": "q",\n"answer": "\xff"}\n')
    code, _, err = cli(["leak-check", "--model", model_dir, "--data", data_dir, "--spans", path], capsys)
    assert_one_line_error(code, err, 2, f"{path}:2", "not UTF-8")


def test_app_import_names_the_uploaded_file_and_line(tmp_path):
    """The app's import (ui/mask_interop) reads the upload through the same capped reader, named by
    its own file name."""
    from engine.masks import read_span_file
    from engine.masks.jsonl import MaskFileError

    path = tmp_path / "upload-1234" / "mine.jsonl"
    path.parent.mkdir()
    path.write_bytes(b'\n\n{"answer": "\xfe"}\n')
    with pytest.raises(MaskFileError, match=r"^mine.jsonl:3: not UTF-8"):
        read_span_file(path, "mine.jsonl")


# ---------------------------------------------------------------- leftovers of a killed run

def _run_folder(home, name: str) -> Path:
    folder = home / "runs" / name
    folder.mkdir(parents=True)
    return folder


@pytest.mark.parametrize("kind", ["best", "final"])
def test_a_killed_runs_tmp_folder_is_cleaned_at_the_next_start(home, capsys, model_dir, data_dir, kind):
    from engine.store import Store

    store = Store(home / "store.sqlite")
    dead = store.create_run({"model": "demo"}, None)
    with store._write() as conn:  # its process is gone
        conn.execute("UPDATE runs SET pid = ?, pid_start = NULL WHERE id = ?", (2 ** 22 + 1, dead))
    folder = _run_folder(home, store.run_folder(dead))
    (folder / f"{kind}.tmp").mkdir()
    (folder / f"{kind}.tmp" / "model.safetensors").write_bytes(b"partial")
    (folder / "best").mkdir()
    (folder / "best" / "model.safetensors").write_bytes(b"whole")
    code, out, err = cli(UNLEARN + ["--model", model_dir, "--data", data_dir], capsys)
    assert code == 0, err
    assert f"cleaned up {folder / (kind + '.tmp')}" in out
    assert not (folder / f"{kind}.tmp").exists()
    assert (folder / "best" / "model.safetensors").read_bytes() == b"whole"  # the whole checkpoint kept


def test_a_swap_killed_midway_gets_its_old_checkpoint_back_and_a_running_run_is_untouched(home):
    from engine.store import Store
    from engine.train.leftovers import clean_leftovers

    store = Store(home / "store.sqlite")
    dead, alive = store.create_run({"model": "demo"}, None), store.create_run({"model": "demo"}, None)
    with store._write() as conn:
        conn.execute("UPDATE runs SET pid = ?, pid_start = NULL WHERE id = ?", (2 ** 22 + 1, dead))
    d = _run_folder(home, store.run_folder(dead))
    (d / "final.old").mkdir()
    (d / "final.old" / "w").write_text("previous")
    (d / "best.old").mkdir()
    (d / "best").mkdir()
    a = _run_folder(home, store.run_folder(alive))  # this process is alive: its run is running
    (a / "best.tmp").mkdir()
    done = clean_leftovers(store)
    assert (d / "final" / "w").read_text() == "previous" and not (d / "final.old").exists()
    assert not (d / "best.old").exists() and (d / "best").is_dir()
    assert (a / "best.tmp").is_dir()
    assert sorted(p.name for p in done) == ["best.old", "final.old"]
