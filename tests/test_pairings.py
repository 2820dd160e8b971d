"""Retain-model pairings remembered per (target model, data) in the store, and `runs --retain-model`."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from engine.store import Store
from engine.resolve import retain_model_for


def test_pairing_is_remembered_per_model_and_data(tmp_path):
    store = Store(tmp_path / "s.db")
    assert store.retain_model_of("/m/target", "/d/tofu") is None
    store.set_retain_model("/m/target", "/d/tofu", " /m/retain ")
    store.set_retain_model("/m/target", "/d/other", "/m/retain2")
    again = Store(tmp_path / "s.db")  # another process: the same file
    assert again.retain_model_of("/m/target", "/d/tofu") == "/m/retain"
    assert again.retain_model_of("/m/target", "/d/other") == "/m/retain2"
    assert again.retain_pairings() == {("/m/target", "/d/tofu"): "/m/retain", ("/m/target", "/d/other"): "/m/retain2"}
    store.set_retain_model("/m/target", "/d/tofu", "")  # blank forgets
    assert store.retain_model_of("/m/target", "/d/tofu") is None
    with pytest.raises(ValueError, match="model must be a non-empty string"):
        store.set_retain_model("", "/d/tofu", "x")


def test_demo_pairs_with_demo_retain_unless_told_otherwise(tmp_path):
    store = Store(tmp_path / "s.db")
    assert retain_model_for("demo", "demo", store) == "demo-retain"
    assert retain_model_for("/m/target", "/d/tofu", store) is None
    store.set_retain_model("demo", "demo/forget10", "/m/other-retain")  # 'demo' is demo/forget10
    assert retain_model_for("demo", "demo", store) == "/m/other-retain"


def _run(store, model, data, retain):
    cfg = {"model": model, "data": data, "loss": "ga", "selector": "all", "epochs": 1, "retain_model": retain}
    rid = store.create_run(cfg)
    store.finish_run(rid, "finished")
    return rid


def test_runs_lists_the_retain_model_and_filters_by_it(tmp_path, capsys):
    from engine.cli import main

    db = tmp_path / "s.db"
    store = Store(db)
    a = _run(store, "/m/t", "/d/tofu", "/m/r1")
    b = _run(store, "/m/t", "/d/tofu", None)
    c = _run(store, "demo", "demo", None)  # built-in: demo-retain
    assert main(["runs", "--store", str(db)]) == 0
    out = capsys.readouterr().out
    assert "| retain model |" in out and "| /m/r1 |" in out and "| demo-retain |" in out
    assert main(["runs", "--store", str(db), "--retain-model", "/m/r1"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith(("| 1", "| 2", "| 3"))]
    assert [int(r.split("|")[1]) for r in rows] == [a]
    assert main(["runs", "--store", str(db), "--retain-model", "none"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith(("| 1", "| 2", "| 3"))]
    assert [int(r.split("|")[1]) for r in rows] == [b]
    assert main(["runs", "--store", str(db), "--retain-model", "demo-retain"]) == 0
    assert f"| {c} |" in capsys.readouterr().out


def test_model_bar_box_reads_and_writes_the_pairing(tmp_path):
    from ui.context import remember_retain, retain_box

    ctx = SimpleNamespace(store=Store(tmp_path / "s.db"))
    assert retain_box(ctx, "/m/t", "/d/tofu") == ""
    remember_retain(ctx, "/m/t", "/d/tofu", "/m/r")
    assert retain_box(ctx, "/m/t", "/d/tofu") == "/m/r" and retain_box(ctx, "/m/t", "/d/x") == ""


def test_reference_points_use_the_remembered_retain_model():
    from engine.eval.reference_points import _specs

    assert _specs("/m/t", "/d/tofu") == [("target", "/m/t")]
    assert _specs("/m/t", "/d/tofu", "/m/r") == [("target", "/m/t"), ("retain", "/m/r")]


def test_selector_report_says_it_computes_no_forget_quality(capsys):
    from engine.cli import main

    with pytest.raises(SystemExit):
        main(["--help"])
    assert "selector-report" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["selector-report", "--help"])
    assert "no forget quality" in " ".join(capsys.readouterr().out.split())


def test_compare_labels_name_each_runs_retain_model():
    from engine.store import RunRecord
    from ui.compare_tab import run_label

    def run(**cfg):
        return RunRecord(7, {"loss": "npo", "selector": "dto", **cfg}, None, "finished", "now", None, None, None, None)

    assert run_label(run(model="models/target", data="tofu/", retain_model="models/retain")) == \
        "run 7: npo · dto · tofu/ · FQ vs models/retain"
    assert run_label(run(model="demo", data="demo")).endswith("· FQ vs demo-retain")  # the built-in pairing
    assert run_label(run(model="models/target", data="tofu/")).endswith("· no retain model: FQ unavailable")
