"""Typed run records (issue 22, item 2): RunRecord.config is a RunConfig (unknown keys kept in
`extra`, missing ones defaulted), each epoch's metrics an EpochMetrics, the loop's reports
ProgressEvents, and a run's outputs (prompt format, world size, seconds per phase) in columns of
their own; a v4 store's old rows are migrated (outputs moved out of the config JSON)."""
from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys

import pytest

from engine.eval.registry import METRICS, Metric, MetricInput, register
from engine.run_config import RunConfig
from engine.store import EpochMetrics, Store
from engine.store.db import _SCHEMA, SCHEMA_VERSION
from engine.train.progress import ProgressEvent


# ---------------------------------------------------------------- the dataclasses

def test_epoch_metrics_round_trip_and_flags():
    flat = {"forget_quality": 0.25, "train_loss": None, "epoch": 2, "step": 8, "subsampled": True,
            "rouge_rows": 40, "notes": ["no holdout split"]}
    m = EpochMetrics.from_dict(flat)
    assert m.values == {"forget_quality": 0.25, "train_loss": None}  # the flags are not metric values
    assert (m.epoch, m.step, m.subsampled, m.rouge_rows, m.notes) == (2, 8, True, 40, ["no holdout split"])
    assert m.to_dict() == flat and m.value("forget_quality") == 0.25 and m.value("nope") is None
    assert EpochMetrics.from_dict({"x": 1}).to_dict() == {"x": 1}  # flags not given stay out


def test_run_config_from_record_keeps_unknown_keys_and_defaults_missing_ones():
    cfg = RunConfig.from_record({"loss": "npo", "seed": 3, "legacy_knob": [1, 2]})
    assert cfg.loss == "npo" and cfg.seed == 3 and cfg.extra == {"legacy_knob": [1, 2]}
    assert cfg.epochs == 10 and cfg.lr == 3e-4 and cfg.protocol == "all"  # defaults, resolved for demo
    d = cfg.to_dict()
    assert d["legacy_knob"] == [1, 2] and "extra" not in d  # recorded as it was read
    assert RunConfig.from_record(d) == cfg
    assert RunConfig.from_dict(d).extra == {}  # a config to run drops what it does not know
    # a record older than per-model defaults (an lr, no lr_schedule) keeps its constant rate
    old = RunConfig.from_record({"model": "/some/real/model", "lr": 1e-5})
    assert (old.lr_schedule, old.warmup_epochs, old.weight_decay) == ("constant", 0.0, 0.0)


def test_the_store_reads_records_without_torch():
    code = ("import sys, engine.store, engine.run_config; "
            "print(sorted({'torch', 'transformers'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "[]", out.stderr


def test_progress_event():
    e = ProgressEvent("train", 3, step=5, total_steps=20, epoch=1, loss=0.5)
    assert e.fraction == 0.25 and ProgressEvent("loading").fraction is None
    with pytest.raises(ValueError, match="progress phase"):
        ProgressEvent("thinking")
    d = ProgressEvent.of({"run_id": 7, "phase": "eval", "step": 2, "metrics": {"forget_quality": 0.5, "epoch": 1},
                          "unknown": 1})
    assert d.run_id == 7 and d.metrics.values == {"forget_quality": 0.5} and d.metrics.epoch == 1


# ---------------------------------------------------------------- outputs in their own columns

def test_outputs_go_to_columns_not_into_the_config(tmp_path):
    store = Store(tmp_path / "s.sqlite")
    rid = store.create_run(RunConfig(loss="npo", epochs=2), prompt_format={"name": "plain"}, world_size=2)
    store.finish_run(rid, "finished", phase_seconds={"loading": 1.5, "training": 2.0})
    r = store.get_run(rid)
    assert r.config == RunConfig(loss="npo", epochs=2) and r.config.extra == {}
    assert r.prompt_format == {"name": "plain"} and r.world_size == 2
    assert r.phase_seconds == {"loading": 1.5, "training": 2.0}
    conn = sqlite3.connect(tmp_path / "s.sqlite")
    (config,) = conn.execute("SELECT config FROM runs").fetchone()
    conn.close()
    assert not {"phase_seconds", "prompt_format", "world_size"} & set(json.loads(config))


def _v4_store(path):
    """A store file as schema v4 wrote it: no output columns, the outputs inside runs.config."""
    old = _SCHEMA.replace("    prompt_format TEXT,\n    world_size INTEGER,\n    phase_seconds TEXT,\n", "")
    assert old != _SCHEMA and "phase_seconds" not in old
    conn = sqlite3.connect(path)
    conn.executescript(old)
    conn.execute("INSERT INTO schema_version VALUES (4)")
    config = {"model": "demo", "data": "demo", "loss": "ga", "epochs": 3, "lr": 0.001, "lr_schedule": "constant",
              "prompt_format": {"name": "plain", "eos": True}, "world_size": 1,
              "phase_seconds": {"loading": 0.5, "evaluating": 2.25}, "knob_of_the_future": "x"}
    conn.execute("INSERT INTO runs (config, status, started, pid, hostname, folder) "
                 "VALUES (?, 'finished', 't', 1, 'h', 'abc')", (json.dumps(config),))
    conn.execute("INSERT INTO runs (config, status, started, pid, hostname, folder) "
                 "VALUES (?, 'running', 't', 1, 'h', 'def')", (json.dumps({"loss": "npo"}),))
    conn.execute("INSERT INTO epoch_metrics VALUES (1, 1, 4, ?, 't')", (json.dumps({"forget_quality": 0.5,
                                                                                    "epoch": 1, "step": 4}),))
    conn.commit()
    conn.close()


def test_a_v4_store_is_migrated_outputs_move_to_their_columns(tmp_path):
    path = tmp_path / "old.sqlite"
    _v4_store(path)
    store = Store(path)
    assert SCHEMA_VERSION == 5 and store.schema_version() == 5
    r = store.get_run(1)
    assert r.phase_seconds == {"loading": 0.5, "evaluating": 2.25}
    assert r.prompt_format == {"name": "plain", "eos": True} and r.world_size == 1
    assert (r.config.loss, r.config.epochs, r.config.lr) == ("ga", 3, 0.001)
    assert r.config.extra == {"knob_of_the_future": "x"}  # unknown keys kept, no crash
    assert r.metrics[0].metrics.values == {"forget_quality": 0.5} and r.metrics[0].metrics.epoch == 1
    other = store.get_run(2)  # missing keys defaulted; no outputs recorded
    assert other.config.loss == "npo" and other.config.epochs == 10 and other.phase_seconds is None
    conn = sqlite3.connect(path)
    configs = [json.loads(c) for (c,) in conn.execute("SELECT config FROM runs ORDER BY id")]
    conn.close()
    assert "phase_seconds" not in configs[0] and "prompt_format" not in configs[0] and "world_size" not in configs[0]
    assert configs[0]["knob_of_the_future"] == "x" and configs[1] == {"loss": "npo"}


def test_a_read_only_v4_store_reads_outputs_from_the_config(tmp_path, monkeypatch):
    """Not migrated (it cannot be written): the outputs are read from the config JSON."""
    path = tmp_path / "old.sqlite"
    _v4_store(path)
    real = os.access  # 'not writable' for this folder (the suite may run as root, where chmod does not bite)
    monkeypatch.setattr(os, "access", lambda p, mode, **k: False if (mode & os.W_OK and str(p).startswith(
        str(tmp_path))) else real(p, mode, **k))
    store = Store(path, create=False)
    assert store.read_only
    r = store.get_run(1)
    assert r.phase_seconds == {"loading": 0.5, "evaluating": 2.25} and r.world_size == 1
    assert r.config.extra == {"knob_of_the_future": "x"}  # the outputs are not taken for unknown config keys
    monkeypatch.undo()
    assert Store(path).schema_version() == 5  # writable again: migrated on opening


# ---------------------------------------------------------------- a metric registered at runtime

@pytest.fixture()
def one_minus_forget_p():
    """`toy_one_minus_forget_p` = 1 − forget_probability of the same evaluation (a compute hook);
    removed from the registry afterwards."""
    metric = register(Metric("toy_one_minus_forget_p", "toy 1-p", True, show="table",
                             compute=lambda inp: 1.0 - inp.values["forget_probability"]))
    yield metric
    del METRICS[metric.name]


def test_a_runtime_metric_is_in_the_store_record_and_the_show_table(tiny_env, one_minus_forget_p, capsys):
    from engine.cli import main
    from engine.cli.runs import show
    from engine.train import unlearn

    model_dir, tmp = tiny_env
    store = Store(tmp / "store.sqlite")
    cfg = RunConfig(model=str(model_dir), data="demo/forget01", loss="ga", epochs=1, batch_size=5, lr=1e-3,
                    device="cpu", retain_eval_size=8, eval_max_new_tokens=4, save_checkpoints=False)
    result = unlearn(cfg, store)
    assert result.status == "finished", result.error
    run = store.get_run(result.run_id)
    assert [m.epoch for m in run.metrics] == [0, 1]
    for m in run.metrics:
        assert isinstance(m.metrics, EpochMetrics)
        p = m.metrics.value("forget_probability")
        assert m.metrics.value("toy_one_minus_forget_p") == pytest.approx(1.0 - p)
    table = show(run)
    header = next(line for line in table.splitlines() if line.startswith("| epoch | step |"))
    cols = [c.strip() for c in header.strip("|").split("|")]
    assert "toy_one_minus_forget_p" in cols
    row = next(line for line in table.splitlines() if line.startswith("| 1 |"))
    cell = [c.strip() for c in row.strip("|").split("|")][cols.index("toy_one_minus_forget_p")]
    assert cell == f"{1.0 - run.metrics[1].metrics.value('forget_probability'):.3g}"
    assert main(["runs", "--show", str(result.run_id)]) == 0
    assert "toy_one_minus_forget_p" in capsys.readouterr().out
