"""The training commands end to end, in process: `unlearn` prints per-epoch metrics and writes
JSON, `runs` lists the recorded run and exports its metrics as CSV and JSON, bad input is one
line on stderr with exit code 2. A tiny GPT-2 saved to a temporary directory is the model."""
from __future__ import annotations

import csv
import json

import pytest

from engine.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def test_unlearn_then_runs_then_export(tiny_env, capsys):
    model_dir, tmp = tiny_env
    out_json = tmp / "run.json"
    rc = main(["unlearn", "--model", str(model_dir), "--data", "demo/forget01", "--loss", "ga", "--epochs", "2",
               "--batch-size", "5", "--lr", "1e-3", "--retain-eval-size", "8", "--eval-max-new-tokens", "4",
               "--json", str(out_json)])
    printed = capsys.readouterr().out
    assert rc == 0, printed
    assert [line.split()[:2] for line in printed.splitlines() if line.startswith("epoch")] == \
        [["epoch", "0"], ["epoch", "1"], ["epoch", "2"]]
    assert "forget_quality" in printed and "target_prob_drop" in printed
    result = json.loads(out_json.read_text())
    assert result["status"] == "finished" and result["config"]["loss"] == "ga"
    assert [m["epoch"] for m in result["history"]] == [0, 1, 2]
    run_id = result["run_id"]
    assert set(result["checkpoints"]) == {"best", "final"}

    assert main(["runs"]) == 0
    listing = capsys.readouterr().out
    assert f"| {run_id} | finished |" in listing and "| ga | all | 2/2 |" in listing

    csv_path, json_path = tmp / "m.csv", tmp / "m.json"
    assert main(["runs", "--export", str(run_id), "--csv", str(csv_path), "--json", str(json_path)]) == 0
    rows = list(csv.DictReader(csv_path.open()))
    assert [r["epoch"] for r in rows] == ["0", "1", "2"]
    assert [float(r["forget_quality"]) for r in rows] == pytest.approx(
        [m["forget_quality"] for m in result["history"]])
    exported = json.loads(json_path.read_text())
    assert exported["id"] == run_id and len(exported["metrics"]) == 3

    assert main(["runs", "--show", str(run_id)]) == 0
    assert "final checkpoint (epoch 2)" in capsys.readouterr().out


def test_bad_input_is_one_line_exit_2(tiny_env, capsys):
    model_dir, _ = tiny_env
    assert main(["unlearn", "--model", str(model_dir), "--data", "demo/forget01", "--loss", "ga",
                 "--mask-set", "nope"]) == 2
    assert capsys.readouterr().err.strip() == "error: no mask set named 'nope'"
    assert main(["unlearn", "--model", str(model_dir), "--data", "demo/forget01", "--loss", "ga",
                 "--loss-param", "alpha=1"]) == 2
    assert "has no parameter 'alpha'" in capsys.readouterr().err
    assert main(["runs", "--export", "99", "--csv", "x.csv"]) == 2
    assert "no run with id 99" in capsys.readouterr().err
    assert main(["runs", "--csv", "x.csv"]) == 2
