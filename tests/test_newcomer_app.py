"""Issue 12 through gradio_client and the app's handlers: colour by rank, honest run phases with
their seconds stored, messages that say where a search stands, untrusted text kept as text, the
ATWU row's in-place fit button, the Compare table and checkpoints as the filter says, the Run
form restored from a running run. (Fixtures from tests/test_app.py and benchmarks/harness.py.)"""
from __future__ import annotations

import re
import time

import pytest

from tests.test_app import call, rows_of, start_run, wait_run
from tokenviz.colors import BLUES

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")


def backgrounds(row_html: str) -> list[str]:
    return re.findall(r'class="tv-chip[^"]*" data-idx="\d+" data-target="\d" style="background:(#[0-9a-f]{6})',
                      row_html)


def test_rank_scale_gives_every_row_its_full_range_and_the_legend_its_raw_min_max(client):
    """satimp's scores on sample 0 are all < 0.04: on the fixed 0–1 scale every chip was near white;
    ranked, its highest token is the ramp's darkest colour and its lowest pure white."""
    _, chips, _ = call(client, "explore_render", "demo", "demo", "forget", 0, "default", 5, 0.5, "rank")
    rows = rows_of(chips)
    for name in ("satimp", "dto", "wga", "entropy"):
        colours = backgrounds(rows[name])
        assert BLUES[-1] in colours and BLUES[0] in colours, name
        assert "rank in this row; raw" in rows[name], name
    raw_max = float(re.search(r"raw (\S+) – (\S+)\)", rows["satimp"])[2])
    assert raw_max < 0.2  # the raw score is still what the legend (and each chip's title) says
    _, chips, _ = call(client, "explore_render", "demo", "demo", "forget", 0, "default", 5, 0.5, "raw")
    assert BLUES[-1] not in backgrounds(rows_of(chips)["satimp"])  # raw: the old, fixed scale


def test_selector_rows_explain_themselves_and_atwu_offers_the_fit_button(client):
    _, chips, _ = call(client, "explore_render", "demo", "demo", "forget", 1, "default", 5, 0.5, "rank")
    rows = rows_of(chips)
    for name, row in rows.items():
        assert re.search(r'class="tv-row-label" title="[^"]{20,}"', row), name
    assert 'class="wb-fit-atwu' in rows["atwu"] and "python -m engine" not in rows["atwu"]


def test_next_says_which_match_it_is_on(client):
    matches, index, status = call(client, "explore_search", "demo", "forget", "Porto")
    n = len(matches["choices"])
    assert f"match 1 of {n} for" in status
    nxt, status = call(client, "explore_next", "demo", "forget", "Porto", index)
    assert f"match 2 of {n} for" in status and "clear the search box" in status
    _, status = call(client, "explore_next", "demo", "forget", "", 99)
    assert "sample 0 (1 of 100 samples)" in status  # no search: every sample, wrapping round


def test_untrusted_names_stay_text_in_status_lines(client, ctx):
    name = '<img src="http://evil.example/x.png">![m](http://evil.example/m.png)**b**'
    dd, status = call(client, "mask_set_create", name, "oracle", "demo", "demo/forget01")
    assert dd["value"] == name
    for bad in ("<img", "![m](http", "**b**", "://"):
        assert bad not in status.replace("**OK:**", "")
    assert "&lt;img" in status and r"\!\[m\]" in status
    _, _, _, view_status, _ = call(client, "edit_view", name, 0, False, "rank")
    assert "<img" not in view_status and "&lt;img" in view_status
    ctx.store.delete_mask_set(name)


def test_question_text_is_escaped_html_not_markdown(client):
    question, _, _ = call(client, "explore_render", "demo", "demo", "forget", 0, "default", 5, 0.5, "rank")
    assert question.startswith('<div class="wb-question">') and "**" not in question


def test_a_run_reports_its_phases_and_records_their_seconds(client, ctx):
    status, _ = start_run(client, epochs=1)
    assert "started" in status
    phases, eval_progress = set(), set()
    end = time.monotonic() + 300
    snap = call(client, "run_status")
    while snap["active"] and time.monotonic() < end:
        phases.add(snap["phase"])
        if snap["phase"] == "evaluating" and snap["eval_total"]:
            eval_progress.add((snap["epoch"], snap["eval_total"]))
            assert "questions scored" in snap["message"] and "evaluating" in snap["message"]
        time.sleep(0.2)
        snap = call(client, "run_status")
    assert snap["state"] == "finished", snap
    assert {"evaluating"} <= phases and phases <= {"loading", "evaluating", "training", "saving", None}
    assert eval_progress and all(total > 0 for _, total in eval_progress)
    record = ctx.store.get_run(snap["run_id"]).phase_seconds
    assert set(record) == {"loading", "evaluating", "training", "saving"}
    assert record["evaluating"] > 0 and snap["phase_seconds"] == record
    from ui import render
    from engine.jobs import JobSnapshot
    assert "time per phase" in render.progress_html(JobSnapshot(**{k: v for k, v in snap.items() if k != "active"}))


def test_run_form_round_trips_through_a_run_config():
    """What a reloaded page puts back in the Run form is what started the run."""
    from ui.run_tab import RunHandlers, config_from_form, form_value_of

    values = dict(model="demo", data="demo/forget01", loss="npo", source="selector", selector="entropy",
                  mask_set=None, epochs=3, lr=1e-4, batch_size=4, max_steps=0, weighting="mask", lora=True,
                  retain_eval_size=20, eval_max_new_tokens=16, eval_every_epoch=True, save_checkpoints=False,
                  seed=5, selector_params="ratio=0.2", loss_params="beta=0.25", orthogonalize=False)
    cfg = config_from_form(**values).to_dict()
    for name, value in values.items():
        assert form_value_of(cfg, name) == value, name
    assert callable(RunHandlers.restore)


def test_compare_table_is_short_and_checkpoints_follow_the_filter(client, ctx):
    if not ctx.store.list_runs():
        start_run(client, epochs=1)
        wait_run(client, lambda s: not s["active"])
    fig, table, checkpoints, _ = call(client, "compare_refresh", "demo", "demo/forget01", 20, 16, True)
    assert len(table["headers"]) <= 12 and "FQ" in table["headers"]
    for row in table["data"]:
        for cell in row[5:]:
            assert cell in (None, "") or len(str(cell)) <= 9, cell
    _, _, none_here, _ = call(client, "compare_refresh", "demo", "demo/forget05", 20, 16, True)
    assert checkpoints["choices"] and not none_here["choices"]
