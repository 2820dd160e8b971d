"""The metric registry is the one list the run record, the CLI tables, Compare's table and curves
and the best-epoch choice read: a toy metric registered here (one Metric with a compute hook)
shows up in a run's per-epoch record and in `runs --show`; `--best-metric` picks the best epoch
in the metric's registered direction; the CLI honours the retain-model pairing the app stored."""
from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from engine.cli import main
from engine.eval import registry
from engine.eval.registry import METRICS, Metric, MetricInput, compute_hooks, get_metric, rankable, register

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture()
def toy_metric():
    """`toy_forget_size_plus_step`: the number of forget samples plus the run's optimiser step (0
    outside a run), computed by a hook in every evaluation; removed from the registry afterwards."""
    calls = []

    def compute(inp: MetricInput) -> float:
        calls.append(inp)
        return float(len(inp.bench.forget) + (inp.state.step if inp.state is not None else 0))

    metric = register(Metric("toy_forget_size_plus_step", "toy", True, show="table", compute=compute))
    yield metric, calls
    del METRICS[metric.name]


# ---------------------------------------------------------------- the registry itself

def test_register_lookup_and_directions():
    assert get_metric("forget_quality").higher_is_better is True
    with pytest.raises(KeyError, match="unknown metric 'nope'"):
        get_metric("nope")
    with pytest.raises(ValueError, match="already registered"):
        register(Metric("forget_quality", "FQ", False))
    with pytest.raises(ValueError, match="unknown needs"):
        Metric("x", "x", True, ("telepathy",))
    with pytest.raises(ValueError, match="not both"):
        Metric("x", "x", True, ideal=0.0)
    privleak = get_metric("privleak")
    assert privleak.better(-5.0, 20.0) and not privleak.better(-30.0, 20.0)  # closest to 0 wins
    assert get_metric("extraction_strength").better(0.1, 0.2)  # lower is better
    with pytest.raises(ValueError, match="no better direction"):
        rankable("mia_loss")  # an AUC's ideal is the retain model's, not a direction
    with pytest.raises(ValueError, match="unknown metric"):
        rankable("nope")


def test_every_new_metric_is_registered_with_its_needs():
    for name in ("extraction_strength", "exact_memorization", "mia_loss", "mia_zlib", "mia_min_k",
                 "mia_min_k_plus_plus", "mia_gradnorm", "mia_reference", "privleak"):
        assert name in METRICS
    assert "holdout" in get_metric("mia_min_k").needs
    assert set(get_metric("privleak").needs) == {"holdout", "retain_model"}


def test_compute_hooks_skip_values_already_there(toy_metric):
    metric, calls = toy_metric
    inp = MetricInput(None, None, SimpleNamespace(forget=[1, 2, 3]), {})
    assert compute_hooks(inp) == {metric.name: 3.0}
    assert compute_hooks(MetricInput(None, None, None, {metric.name: 1.0})) == {}


# ---------------------------------------------------------------- a run records it, the CLI shows it

def test_toy_metric_in_the_run_record_and_the_runs_table(tiny_env, toy_metric, capsys):
    model_dir, tmp = tiny_env
    metric, calls = toy_metric
    out_json = tmp / "run.json"
    rc = main(["unlearn", "--model", str(model_dir), "--data", "demo/forget01", "--loss", "ga", "--epochs", "2",
               "--batch-size", "5", "--lr", "1e-3", "--retain-eval-size", "8", "--eval-max-new-tokens", "4",
               "--best-metric", metric.name, "--json", str(out_json)])
    printed = capsys.readouterr().out
    assert rc == 0, printed
    result = json.loads(out_json.read_text())
    history = result["history"]
    # forget01 has 10 samples; 2 steps per epoch (batch 5)
    assert [m[metric.name] for m in history] == [10.0, 12.0, 14.0]
    assert all(c.state is not None for c in calls)  # the run's State reached the hook
    assert result["config"]["best_metric"] == metric.name
    assert result["best_epoch"] == 2  # higher is better: the last epoch
    assert "best toy (toy_forget_size_plus_step) at epoch 2" in printed
    # the new metrics are in every epoch's record
    for m in history:
        for name in ("extraction_strength", "exact_memorization", "mia_loss", "mia_min_k", "privleak"):
            assert m[name] is not None, (m["epoch"], name)
    assert history[0]["mia_gradnorm"] is not None and history[-1]["mia_gradnorm"] is not None
    assert history[1]["mia_gradnorm"] is None  # [choice] backward passes at step 0 and the last epoch only

    run_id = result["run_id"]
    assert main(["runs", "--show", str(run_id)]) == 0
    shown = capsys.readouterr().out
    header = next(line for line in shown.splitlines() if line.startswith("| epoch | step |"))
    assert metric.name in header and "privleak" in header and "extraction_strength" in header
    rows = [line for line in shown.splitlines() if line.startswith("| 2 |")]
    assert rows and "| 14 |" in rows[0]
    assert main(["runs"]) == 0
    assert "toy 14" in capsys.readouterr().out  # the list's best column reads the run's best metric


def test_best_metric_follows_the_registered_direction(tiny_env, capsys):
    """Lower-is-better: the 'best' checkpoint keeps the epoch with the lowest value."""
    model_dir, tmp = tiny_env
    out_json = tmp / "run.json"
    rc = main(["unlearn", "--model", str(model_dir), "--data", "demo/forget01", "--loss", "ga", "--epochs", "2",
               "--batch-size", "5", "--lr", "1e-3", "--retain-eval-size", "8", "--eval-max-new-tokens", "4",
               "--best-metric", "forget_probability", "--json", str(out_json)])
    assert rc == 0, capsys.readouterr().out
    result = json.loads(out_json.read_text())
    values = {m["epoch"]: m["forget_probability"] for m in result["history"] if m["epoch"] >= 1}
    assert result["best_epoch"] == min(values, key=values.get)


def test_a_best_metric_without_direction_is_exit_2(tiny_env, capsys):
    model_dir, _ = tiny_env
    for name, why in (("mia_loss", "no better direction"), ("nope", "unknown metric 'nope'")):
        assert main(["unlearn", "--model", str(model_dir), "--data", "demo/forget01", "--loss", "ga",
                     "--best-metric", name]) == 2
        assert why in capsys.readouterr().err


# ---------------------------------------------------------------- one retain_model_for, the stored pairing honoured

def test_the_cli_honours_the_pairing_the_app_stored(tmp_path, monkeypatch):
    from engine import paths
    from engine.cli.eval import paired_store
    from engine.cli.unlearn import add_arguments, config_from_args
    from engine.store import Store

    monkeypatch.setattr(paths, "store_path", lambda: tmp_path / "store.sqlite")
    assert paired_store() is None  # `eval` creates no store
    store = Store(tmp_path / "store.sqlite")
    store.set_retain_model("demo", "demo/forget10", "/m/my-retain")  # what the app's retain box stores

    import argparse

    p = argparse.ArgumentParser()
    add_arguments(p)
    args = p.parse_args(["--loss", "ga"])
    assert config_from_args(args, store).retain_model == "/m/my-retain"
    assert config_from_args(p.parse_args(["--loss", "ga", "--retain-model", "x"]), store).retain_model == "x"
    assert config_from_args(args).retain_model == "demo-retain"  # no store: the built-in default
    from engine.resolve import retain_model_for

    assert retain_model_for("demo", "demo", paired_store()) == "/m/my-retain"


# ---------------------------------------------------------------- Compare reads the registry

def _rows(points):
    return [{"run_id": 1, "epoch": e, "step": e, "forget_quality": fq, "model_utility": mu, "privleak": pl}
            for e, (fq, mu, pl) in enumerate(points)]


def test_compare_curves_any_two_metrics_and_the_best_row_by_direction(toy_metric):
    from tokenviz.plots import axis_choices, best_and_final, display_table, runs_table, tradeoff_figure

    metric, _ = toy_metric
    assert ("privleak (privleak)", "privleak") in axis_choices()
    assert metric.name in [name for _, name in axis_choices()]  # registered later, offered too
    rows = _rows([(1e-9, 0.8, -90.0), (1e-3, 0.7, 30.0), (0.2, 0.6, -10.0), (0.1, 0.5, 40.0)])
    runs = [{"run_id": 1, "label": "run 1", "rows": rows}]
    fig = tradeoff_figure(runs, x="model_utility", y="privleak")
    assert fig.layout.yaxis.type == "linear" and list(fig.data[0].y) == [-90.0, 30.0, -10.0, 40.0]
    assert "privleak" in fig.layout.yaxis.title.text and "best at 0" in fig.layout.yaxis.title.text
    assert tradeoff_figure(runs).layout.yaxis.type == "log"  # FQ vs MU, as before
    with pytest.raises(KeyError):
        tradeoff_figure(runs, y="nope")
    assert best_and_final(rows)[0]["epoch"] == 2  # highest FQ
    assert best_and_final(rows, "privleak")[0]["epoch"] == 2  # |−10| closest to 0
    df = runs_table([{**runs[0], "status": "finished", "best_metric": "privleak"}])
    assert list(df["epoch"]) == [2, 3]
    shown = display_table(df, also=("privleak", "model_utility"))
    assert "privleak" in shown.columns and "FQ" in shown.columns and "MU" in shown.columns
    assert registry.label("model_utility") == "MU"
