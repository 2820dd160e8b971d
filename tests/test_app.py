"""The app's API endpoints through gradio_client, on the built-in model, plus the Compare tab's
pure helpers (tokenviz/plots.py). The app runs in-process on a free port with a temporary
workbench home (runs, checkpoints, scorers, store) that links to the cached built-in models."""
from __future__ import annotations

import json
import re
import time

import pytest

from engine.selectors import SELECTORS

FORM = dict(model="demo", data="demo/forget01", loss="ga", source="selector", selector="oracle", mask_set=None,
            epochs=1, lr=3e-4, batch_size=8, max_steps=0, weighting="auto", lora=False, retain_eval_size=20,
            eval_tokens=16, eval_every=True, save_ckpt=True, seed=0, selector_params="", loss_params="",
            orthogonalize=False)


def call(client, api, *args):
    return client.predict(*args, api_name=f"/{api}")


def start_run(client, **over):
    form = {**FORM, **over}
    return call(client, "run_start", *form.values())


def wait_run(client, until, timeout=240):
    """Poll /run_status until `until(snapshot)`; returns the snapshot (the last one on timeout)."""
    end = time.monotonic() + timeout
    snap = call(client, "run_status")
    while not until(snap) and time.monotonic() < end:
        time.sleep(0.3)
        snap = call(client, "run_status")
    return snap


def rows_of(html: str) -> dict[str, str]:
    """selector name -> the HTML of its row in the Explore view."""
    parts = re.split(r'(?=<div class="wb-selector[^"]*" data-selector=")', html)
    out = {}
    for p in parts:
        m = re.match(r'<div class="wb-selector[^"]*" data-selector="([^"]+)"', p)
        if m:
            out[m.group(1)] = p
    return out


# ---------------------------------------------------------------- Explore

def test_explore_renders_every_registered_selector_with_legends(client):
    question, chips, status = call(client, "explore_render", "demo", "demo", "forget", 0, "default", 5, 0.5)
    assert "Sample 0 of 100" in question and "**OK:**" in status
    rows = rows_of(chips)
    assert set(SELECTORS) | {"ground truth"} == set(rows)
    assert "no ATWU scorer" in rows["atwu"] and "tv-chip" not in rows["atwu"]
    for name, row in rows.items():
        if name != "atwu":
            assert row.count("tv-legend-bar") == 1, name
            assert 'title="' in row and "score: " in row and "p: " in row, name
    assert 'data-target="1"' in rows["oracle"] and "tv-span" in rows["oracle"]


def test_top_k_rule_changes_masks_from_cached_scores(client):
    _, chips, _ = call(client, "explore_render", "demo", "demo", "forget", 0, "top-k", 2, 0.5)
    for name, row in rows_of(chips).items():
        if name not in ("atwu", "ground truth"):
            assert row.count('data-target="1"') == 2, name


def test_explore_search_and_next(client):
    matches, index, status = call(client, "explore_search", "demo", "forget", "Porto")
    assert matches["choices"] and index == matches["choices"][0][1] and "match" in status
    nxt, status = call(client, "explore_next", "demo", "forget", "Porto", index)
    assert nxt in [c[1] for c in matches["choices"]] and nxt != index


def test_fitting_the_atwu_scorer_makes_its_row_available(client):
    _, chips, _ = call(client, "explore_render", "demo", "demo/forget01", "forget", 0, "default", 5, 0.5)
    assert "tv-chip" not in rows_of(chips)["atwu"]
    status = call(client, "fit_atwu", "demo", "demo/forget01", 5)
    assert "ATWU scorer fitted" in status
    _, chips, status = call(client, "explore_render", "demo", "demo/forget01", "forget", 0, "default", 5, 0.5)
    assert "tv-chip" in rows_of(chips)["atwu"] and "unavailable" not in status


def test_explore_errors_are_shown_not_raised(client, tmp_path):
    *_, status = call(client, "explore_render", str(tmp_path / "nowhere"), "demo", "forget", 0, "default", 5, 0.5)
    assert "Problem" in status and "no such model directory" in status
    *_, status = call(client, "explore_render", "demo", "demo", "forget", 10_000, "default", 5, 0.5)
    assert "out of range" in status
    *_, status = call(client, "explore_render", "demo", str(tmp_path / "no" / "data"), "forget", 0, "default", 5, 0.5)
    assert "no such data directory" in status


# ---------------------------------------------------------------- Edit

def test_mask_set_edits_are_saved_at_once(client, ctx):
    dd, status = call(client, "mask_set_create", "hand", "oracle", "demo", "demo/forget01")
    assert dd["value"] == "hand" and "created" in status
    before = ctx.store.get_mask_set("hand").masks["forget01:1"].mask
    r = call(client, "edit_apply", "hand", 0, "toggle", 0, 0, None)
    assert r["mask"][0] == 1 - before[0] and "saved" in r["status"]
    stored = ctx.store.get_mask_set("hand").masks["forget01:1"]
    assert stored.mask == r["mask"] and stored.edited is True
    eos = len(before) - 1
    r2 = call(client, "edit_apply", "hand", 0, "toggle", eos, eos, None)
    assert r2["mask"] == r["mask"] and "EOS" in r2["status"]
    r3 = call(client, "edit_apply", "hand", 0, "brush", 1, 3, None)
    assert r3["mask"][1:4] == [1 - before[1]] * 3
    assert call(client, "edit_apply", "hand", 0, "undo", None, None, None)["mask"] == r["mask"]
    assert call(client, "edit_apply", "hand", 0, "redo", None, None, None)["mask"] == r3["mask"]
    r4 = call(client, "edit_apply", "hand", 0, "reset", None, None, "oracle")
    assert r4["mask"] == before
    r5 = call(client, "edit_apply", "hand", 0, "brush", 0, eos, None)  # a brush over the EOS skips it
    assert r5["mask"][eos] == 0 and all(r5["mask"][:eos])


def test_shift_click_and_word_selection(client, ctx):
    from tokenviz import select_word, word_ids_from_tokens

    call(client, "mask_set_create", "words", "all", "demo", "demo/forget01")
    base = call(client, "edit_apply", "words", 0, "brush", 0, 9, None)["mask"]  # all answer tokens off
    assert not any(base)
    call(client, "edit_apply", "words", 0, "toggle", 2, 2, None)
    r = call(client, "edit_apply", "words", 0, "shift", 5, 5, None)  # brush from the anchor (2) to 5
    assert r["mask"][2:6] == [1, 1, 1, 1] and not any(r["mask"][6:])
    tokens = ctx.explore.info("demo", "demo/forget01", "forget", 0).tokens[:-1]  # without the EOS
    words = word_ids_from_tokens(tokens)
    i = max(range(len(tokens)), key=lambda j: words.count(words[j]))  # a token of the longest word
    after = call(client, "edit_apply", "words", 0, "word", i, i, None)["mask"]
    assert after == select_word(r["mask"][:-1], tokens, i) + [0]
    assert [after[j] for j in range(len(tokens)) if words[j] == words[i]] == [1 - r["mask"][i]] * words.count(words[i])


def test_edits_survive_a_server_restart(client, app_env):
    from gradio_client import Client

    import app
    from benchmarks.harness import serve

    call(client, "mask_set_create", "restart", "oracle", "demo", "demo/forget01")
    r = call(client, "edit_apply", "restart", 1, "toggle", 0, 0, None)
    home = app_env[2]
    with serve(app.build_demo(home / "store.sqlite")) as url:  # a second server on the same store
        view = Client(url, verbose=False).predict("restart", 1, False, api_name="/edit_view")
    chips = view[1]
    assert f'data-idx="0" data-target="{r["mask"][0]}"' in chips


def test_duplicate_rename_delete_export_import(client, ctx, tmp_path):
    from gradio_client import handle_file

    call(client, "mask_set_create", "base", "oracle", "demo", "demo/forget01")
    assert call(client, "mask_set_duplicate", "base", "copy")[0]["value"] == "copy"
    assert call(client, "mask_set_rename", "copy", "renamed")[0]["value"] == "renamed"
    names = {m.name for m in ctx.store.list_mask_sets()}
    assert {"base", "renamed"} <= names and "copy" not in names
    _, status = call(client, "mask_set_rename", "renamed", "base")
    assert "already exists" in status
    path, status = call(client, "mask_set_export", "renamed")
    payload = json.loads(open(path).read())
    assert payload["name"] == "renamed" and len(payload["masks"]) == 10
    dd, status = call(client, "mask_set_import", handle_file(path), "imported")
    assert dd["value"] == "imported" and ctx.store.mask_set_hash("imported") == ctx.store.mask_set_hash("renamed")
    dd, status = call(client, "mask_set_delete", "renamed")
    assert "deleted" in status and "renamed" not in {m.name for m in ctx.store.list_mask_sets()}
    # bad uploads: refused with the reason, nothing written
    before = len(ctx.store.list_mask_sets())
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert "not a mask-set JSON file" in call(client, "mask_set_import", handle_file(str(bad)), "x")[1]
    payload["masks"]["forget01:1"]["mask"] = [0, 2]
    bad.write_text(json.dumps(payload))
    assert "was not imported" in call(client, "mask_set_import", handle_file(str(bad)), "y")[1]
    assert len(ctx.store.list_mask_sets()) == before


def test_bulk_apply_keeps_hand_edits(client, ctx):
    call(client, "mask_set_create", "bulk", "oracle", "demo", "demo/forget01")
    edited = call(client, "edit_apply", "bulk", 0, "toggle", 0, 0, None)["mask"]
    status = call(client, "mask_set_bulk", "bulk", "all", True)
    assert "applied to 9 of 10" in status
    ms = ctx.store.get_mask_set("bulk").masks
    assert ms["forget01:1"].mask == edited
    assert all(all(m.mask[:-1]) and m.mask[-1] == 0 for uid, m in ms.items() if uid != "forget01:1")


# ---------------------------------------------------------------- Run

def test_run_errors_a_person_can_cause(client, ctx, home_data):
    status, _ = start_run(client, model=str(home_data / "no-model"))
    assert "not started" in status and "no such model directory" in status
    status, _ = start_run(client, data=str(home_data), loss="graddiff")
    assert "needs retain data" in status
    ctx.store.create_mask_set("empty", "demo", "demo/forget01", "fp", masks={"forget01:1": ("h", [0] * 11)})
    status, _ = start_run(client, source="mask set", mask_set="empty")
    assert "is empty" in status
    status, _ = start_run(client, source="mask set", mask_set=None)
    assert "choose a mask set" in status
    status, _ = start_run(client, loss_params="beta")
    assert "not started" in status and "expects KEY=VALUE" in status
    status, _ = start_run(client, loss="npo", loss_params="beta=0.2, nope=1")
    assert "not started" in status and "nope" in status
    status, _ = start_run(client, loss="ga", orthogonalize=True)
    assert "not started" in status and "preservation term" in status
    assert call(client, "run_status")["state"] == "idle"


@pytest.fixture()
def home_data(app_env, tmp_path):
    """A TOFU directory with a forget split and no retain split."""
    import shutil

    shutil.copy(app_env[2] / "builtin" / "data" / "forget01.json", tmp_path / "forget01.json")
    return tmp_path


def test_second_run_is_refused_and_stop_cancels(client):
    status, _ = start_run(client, epochs=50, batch_size=1, eval_every=False, save_ckpt=False)
    assert "started" in status
    snap = wait_run(client, lambda s: s["step"] >= 1 or not s["active"])
    assert snap["active"], snap
    status, _ = start_run(client)
    assert "already going" in status and "one run at a time" in status
    assert "stopping" in call(client, "run_stop")
    snap = wait_run(client, lambda s: not s["active"])
    assert snap["state"] == "cancelled", snap


def test_a_short_run_reaches_compare_and_before_after(client, ctx):
    status, progress = start_run(client)
    assert "started" in status and "wb-progress" in progress
    snap = wait_run(client, lambda s: not s["active"])
    assert snap["state"] == "finished", snap
    run_id = snap["run_id"]
    fig, table, checkpoints, status = call(client, "compare_refresh", "demo", "demo/forget01", 20, 16, True)
    traces = json.loads(fig["plot"])["data"]
    mine = [t for t in traces if t["name"].startswith(f"run {run_id}:")]
    assert mine and len(mine[0]["x"]) == 2  # epoch 0 (the target model) and epoch 1
    assert "epoch 1" in mine[0]["hovertext"][1] and "model_utility" in mine[0]["hovertext"][1]
    fig_other, *_ = call(client, "compare_refresh", "demo", "demo", 20, 16, True)  # forget10: not this run
    assert not [t for t in json.loads(fig_other["plot"])["data"] if t["name"].startswith(f"run {run_id}:")]
    kinds = [r[table["headers"].index("row")] for r in table["data"] if r[0] == run_id]
    assert kinds == ["best", "final"]
    assert f"{run_id}:final" in [c[1] for c in checkpoints["choices"]]
    html, status = call(client, "before_after", "demo", "demo/forget01", "forget", 0, f"{run_id}:final")
    assert 'data-side="before"' in html and 'data-side="after"' in html and html.count("tv-legend-bar") == 2
    path, _ = call(client, "compare_csv")
    assert f"run {run_id}:" in open(path).read()


# ---------------------------------------------------------------- tokenviz/plots.py

def _rows(run_id, points):
    return [{"run_id": run_id, "epoch": e, "step": e, "forget_quality": fq, "model_utility": mu, "x": 1}
            for e, (fq, mu) in enumerate(points)]


def test_tradeoff_figure_has_one_curve_per_run_on_a_log_axis():
    from tokenviz.plots import FQ_FLOOR, tradeoff_figure

    runs = [{"run_id": 1, "label": "run 1", "rows": _rows(1, [(1e-5, 0.6), (0.0, 0.5), (None, 0.4)])},
            {"run_id": 2, "label": "run 2", "rows": _rows(2, [(1e-5, 0.6), (0.3, 0.55)])}]
    refs = [{"label": "retain model", "metrics": {"forget_quality": 1.0, "model_utility": 0.59}}]
    fig = tradeoff_figure(runs, refs)
    assert fig.layout.yaxis.type == "log"
    assert [t.name for t in fig.data] == ["run 1", "run 2", "retain model"]
    assert list(fig.data[0].y) == [1e-5, FQ_FLOOR]  # FQ 0 drawn at the floor, None left out
    assert "left out" in fig.layout.title.text
    assert "epoch 1" in fig.data[1].hovertext[1] and "forget_quality: 0.3" in fig.data[1].hovertext[1]
    assert fig.data[1].hovertext[1].count("<br>") <= 4  # a short tooltip, not every metric


def test_runs_table_best_is_the_highest_trained_forget_quality():
    from tokenviz.plots import runs_table

    df = runs_table([{"run_id": 3, "label": "r", "status": "finished",
                      "rows": _rows(3, [(0.9, 0.6), (0.2, 0.5), (0.4, 0.45), (0.1, 0.3)])}])
    assert list(df["row"]) == ["best", "final"]
    assert list(df["epoch"]) == [2, 3]  # epoch 0 (before unlearning) is never 'best'
    assert runs_table([]).empty
