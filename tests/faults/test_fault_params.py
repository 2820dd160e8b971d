"""Cases 5 and 9: selector and loss parameters checked against their signatures (type, range,
choices) and the numeric options checked, all before a model is loaded or a run recorded."""
from __future__ import annotations

import pytest

from faultkit import assert_one_line_error, cli

BAD_SELECTOR_PARAMS = [
    ("k=abc", "'k' must be a whole number"),
    ("foo=1", "has no parameter 'foo'; known: beta, k, ratio"),
    ("ratio=[1,2]", "'ratio' must be a number"),
    ('ratio="0.2"', "'ratio' must be a number (drop the quotes)"),
    ("k=2.5", "'k' must be a whole number"),
    ("ratio=0", "'ratio' must be in (0, 1]"),
    ("ratio=1.5", "'ratio' must be in (0, 1]"),
    ("k=0", "'k' must be ≥ 1"),
]


@pytest.mark.parametrize("param, message", BAD_SELECTOR_PARAMS)
def test_score_refuses_a_bad_selector_parameter(param, message, home, capsys):
    code, out, err = cli(["score", "--selector", "wga", "--model", home / "never-loaded", "--param", param], capsys)
    assert_one_line_error(code, err, 2, "selector 'wga'", message)
    assert out == ""


def test_dto_mode_lists_its_choices(home, capsys):
    code, _, err = cli(["score", "--selector", "dto", "--param", "mode=fast"], capsys)
    assert_one_line_error(code, err, 2, "'mode' must be one of auto, vmap, loop")


def store_runs(home) -> list:
    from engine.store import Store

    path = home / "store.sqlite"
    return Store(path).list_runs() if path.exists() else []


BAD_RUNS = [
    (["--loss", "npo", "--loss-param", "alpha=abc"], "loss 'npo': parameter 'alpha' must be a number"),
    (["--loss", "npo", "--loss-param", "alpha=-1"], "'alpha' must be ≥ 0"),
    (["--loss", "ga", "--selector", "entropy", "--param", "k=2.5"], "'k' must be a whole number"),
    (["--loss", "ga", "--selector", "wga", "--param", "k=2"], "has no parameter(s) ['k']"),  # per-step weights
    (["--loss", "ga", "--retain-eval-size", "-5"], "retain_eval_size must be at least 1, got -5"),
    (["--loss", "ga", "--retain-eval-size", "0"], "retain_eval_size must be at least 1, got 0"),
    (["--loss", "npo", "--beta", "nan"], "beta must be a finite number > 0, got nan"),
    (["--loss", "ga", "--lr", "inf"], "lr must be a finite number > 0, got inf"),
    (["--loss", "ga", "--lr=-1e-3"], "lr must be a finite number > 0"),
    (["--loss", "ga", "--device", "banana"], "device must be auto, cpu, cuda"),
    (["--loss", "ga", "--eval-max-new-tokens", "0"], "eval_max_new_tokens must be at least 1"),
]


@pytest.mark.parametrize("argv, message", BAD_RUNS)
def test_unlearn_refuses_before_a_run_is_recorded(argv, message, home, capsys):
    code, out, err = cli(["unlearn", "--model", home / "never-loaded", *argv], capsys)
    assert_one_line_error(code, err, 2, message)
    assert store_runs(home) == [] and list((home / "runs").iterdir()) == []


@pytest.mark.parametrize("argv, message", [
    (["score", "--selector", "all", "--batch-size", "0"], "--batch-size must be at least 1, got 0"),
    (["score", "--selector", "all", "--batch-size", "-4"], "--batch-size must be at least 1, got -4"),
    (["score", "--selector", "all", "--device", "banana"], "--device must be auto, cpu, cuda"),
    (["eval", "--model", "demo", "--max-new-tokens", "-3"], "--max-new-tokens must be at least 1, got -3"),
    (["selector-report", "--param", "wga.k=abc"], "selector 'wga': parameter 'k' must be a whole number"),
])
def test_numeric_options_are_checked_first(argv, message, home, capsys):
    code, out, err = cli(argv, capsys)
    assert_one_line_error(code, err, 2, message)


def test_deeply_nested_parameter_is_one_line(home, capsys):
    deep = "[" * 100_000 + "]" * 100_000
    code, _, err = cli(["score", "--selector", "wga", "--param", f"ratio={deep}"], capsys)
    assert_one_line_error(code, err, 2, "--param ratio", "nested too deeply")


def test_deeply_nested_data_file_names_the_file(tmp_path, home, capsys):
    folder = tmp_path / "deep"
    folder.mkdir()
    (folder / "forget10.json").write_text('{"question": ' + "[" * 100_000 + "]" * 100_000 + "}\n")
    code, _, err = cli(["score", "--selector", "all", "--data", folder], capsys)
    assert_one_line_error(code, err, 2, "forget10.json:1", "nested too deeply")


def test_loss_spec_converts_and_checks_like_the_cli():
    from engine.losses import get_loss

    assert get_loss("graddiff").params({"alpha": 0}) == {"gamma": 1.0, "alpha": 0.0, "token_mean": False}
    with pytest.raises(ValueError, match="loss 'tpo': parameter 'pl_weight' must be a number, got 'x'"):
        get_loss("tpo").params({"pl_weight": "x"})
