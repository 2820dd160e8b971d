"""Issue 24, items 2 and 5: Explore's extra views (Δ log-prob, agreement, word grouping, side by side,
export) and the phases a slow view reports; maths checked against values computed by hand."""
from __future__ import annotations

import csv
import io
import math
import re

import pytest

from engine.explore.compare import agreement, delta_logprob
from tokenviz.colors import PUOR, diverging_color
from tokenviz.views import group_words, render_aligned, view_csv, view_svg
from tokenviz.words import aggregate, any_per_word, join_words, word_ids


def test_delta_logprob_by_hand():
    d = delta_logprob([0.5, 0.01, 0.2], [0.25, 0.01, 0.8])
    assert d[0] == pytest.approx(math.log(2)) and d[1] == 0.0 and d[2] == pytest.approx(math.log(0.25))
    assert delta_logprob([0.0], [1.0])[0] == pytest.approx(math.log(1e-12))  # floored, not -inf
    with pytest.raises(ValueError, match="not the same tokens"):
        delta_logprob([0.5], [0.5, 0.5])


def test_agreement_counts_selectors_and_leaves_out_oracle_all_and_unavailable():
    votes, counted = agreement({"wga": [1, 0, 0], "dto": [1, 1, 0], "oracle": [0, 1, 1], "all": [1, 1, 1],
                                "atwu": None})
    assert votes == [2, 1, 0] and counted == ["wga", "dto"]
    assert agreement({"all": [1]}) == ([], [])


def test_word_grouping_max_mean_and_eos_alone():
    tokens = ["Ana", " Li", "ma", " wrote", "⟨eos⟩"]
    ids = word_ids(tokens, [0, 0, 0, 0, 1])
    assert ids == [0, 1, 1, 2, 3] and join_words(ids, tokens) == ["Ana", " Lima", " wrote", "⟨eos⟩"]
    scores = [0.2, 0.5, 0.9, 0.1, 0.0]
    assert aggregate(ids, scores, "max") == [0.2, 0.9, 0.1, 0.0]
    assert aggregate(ids, scores, "mean") == pytest.approx([0.2, 0.7, 0.1, 0.0])
    assert any_per_word(ids, [0, 0, 1, 0, 0]) == [False, True, False, False]
    words, rows = group_words(tokens, [0, 0, 0, 0, 1], [{"label": "wga", "values": scores, "mask": [0, 0, 1, 0, 0]}],
                              "mean")
    assert words[1] == " Lima" and rows[0]["values"][1] == pytest.approx(0.7) and rows[0]["mask"][1] is True
    with pytest.raises(ValueError):
        aggregate(ids, scores, "median")


def test_diverging_map_is_symmetric_about_zero():
    assert diverging_color(0.0, 2.0) == PUOR[4]
    assert diverging_color(2.0, 2.0) == PUOR[-1] and diverging_color(-2.0, 2.0) == PUOR[0]
    assert diverging_color(5.0, 2.0) == PUOR[-1]  # clipped


def test_aligned_table_has_one_column_per_token_in_every_row():
    html = render_aligned(["a", " b"], [{"label": "p · x", "values": [0.1, 0.9], "kind": "prob"},
                                        {"label": "Δ", "values": [1.0, -1.0], "kind": "delta"}])
    rows = re.findall(r'<tr data-row="\d+".*?</tr>', html, re.S)
    assert len(rows) == 2 and all(r.count("<td>") == 2 for r in rows)
    assert 'data-idx="1"' in rows[0] and 'data-idx="1"' in rows[1]


def test_csv_and_svg_exports_carry_every_row():
    rows = [{"label": "wga", "values": [0.1, 0.9], "mask": [False, True]},
            {"label": "Δ log p", "values": [0.5, float("nan")], "kind": "delta"}]
    table = list(csv.reader(io.StringIO(view_csv(["a", " b"], rows))))
    assert table[0] == ["index", "token", "wga", "wga target", "Δ log p"]
    assert table[2] == ["1", " b", "0.9", "1", ""]
    svg = view_svg(["a", " b"], rows, "sample 0")
    assert svg.startswith("<svg") and svg.count("<rect x=") == 4 and "sample 0" in svg
    assert svg.count('stroke="#111111"') == 1  # the one target


@pytest.fixture(scope="module")
def handlers(tmp_path_factory):
    from benchmarks.harness import isolated_home
    from ui.context import AppContext
    from ui.explore_tab import ExploreHandlers

    with isolated_home(tmp_path_factory.mktemp("home")) as home:
        yield ExploreHandlers(AppContext.create(home / "store.sqlite", device="cpu"))


def test_delta_row_and_side_by_side_against_the_retain_model(handlers):
    ex = handlers.ctx.explore
    _, chips, status = handlers.render("demo", "demo", "forget", 0, "default", 5, 0.5, "rank", "demo-retain",
                                       "tokens", "wga")
    a, b = ex.info("demo", "demo", "forget", 0), ex.info("demo-retain", "demo", "forget", 0)
    expected = [math.log(p) - math.log(q) for p, q in zip(a.probs, b.probs)]
    values = [float(v) for v in re.findall(r'data-value="([^"]+)"', chips.split('data-extra="delta"')[1].split(
        "</div></div></div>")[0])]
    assert values == pytest.approx(expected, rel=1e-3, abs=1e-3)
    assert "wb-side-by-side" in chips and 'data-other="demo-retain"' in chips
    assert "agreement (of" in chips and "**OK:**" in status


def test_word_view_has_fewer_chips_and_export_writes_files(handlers):
    _, tokens_view, _ = handlers.render("demo", "demo", "forget", 1, "default", 5, 0.5, "rank", None, "tokens")
    _, words_view, _ = handlers.render("demo", "demo", "forget", 1, "default", 5, 0.5, "rank", None, "words (max)")
    row = lambda html: html.split('data-selector="wga"')[1].split('data-selector=')[0]  # noqa: E731
    assert 0 < row(words_view).count('class="tv-chip') < row(tokens_view).count('class="tv-chip')
    files, preview, status = handlers.export("demo", "demo", "forget", 1, "default", 5, 0.5, "rank", None, "tokens")
    svg, table = files
    assert svg.endswith(".svg") and table.endswith(".csv") and "download PNG" in preview
    header = open(table, encoding="utf-8").readline()
    assert header.startswith("index,token,p(token)") and "wga target" in header


def test_a_view_reports_its_phases_once_then_is_cached(handlers):
    phases = []
    handlers.ctx.explore.view("demo", "demo", "retain", 9, progress=phases.append)
    kinds = [p["phase"] for p in phases]
    assert "p(token)" in kinds and kinds.count("selector") >= 5
    k = [p["k"] for p in phases if p["phase"] == "selector"]
    assert k == sorted(k) and phases[-1]["n"] == len(handlers.ctx.explore.view("demo", "demo", "retain", 9).rows)
    assert phases[0]["samples"] == (8, 15, len(handlers.ctx.explore.samples("demo", "retain")))
    again = []
    handlers.ctx.explore.view("demo", "demo", "retain", 10, progress=again.append)  # same chunk: cached
    assert again == []


def test_live_render_yields_the_phase_and_names_the_previous_view(handlers):
    outs = list(handlers.render_live("demo", "demo", "retain", 30, "default", 5, 0.5, "rank", None, "tokens", "wga",
                                     "demo · demo · forget sample 3"))
    *working, final = outs
    assert final[3] == "" and final[4] == "demo · demo · retain sample 30" and "tv-chip" in final[1]
    if working:  # scoring a fresh chunk of the built-in model can beat the first half second
        assert "previous view" in working[-1][3] and "demo · demo · forget sample 3" in working[-1][3]
        assert "demo" in working[-1][2]


def test_selectors_share_one_forward_inside_shared_forward_with_the_same_scores(handlers):
    import torch

    from engine.selectors import select
    from engine.selectors.base import shared_forward
    from engine.tokens import encode_samples

    model, tok = handlers.ctx.explore.model("demo")
    chunk = handlers.ctx.explore.samples("demo", "forget")[:4]
    calls = []
    hook = model.register_forward_hook(lambda *a: calls.append(1))
    try:
        alone = {n: select(n, model, tok, chunk, batch=encode_samples(tok, chunk)).scores for n in ("wga", "entropy")}
        n_alone = len(calls)
        calls.clear()
        with shared_forward():
            shared = {n: select(n, model, tok, chunk, batch=encode_samples(tok, chunk)).scores
                      for n in ("wga", "entropy", "satimp")}
    finally:
        hook.remove()
    assert n_alone == 2 and len(calls) == 1  # three selectors, one forward
    for n in ("wga", "entropy"):
        assert torch.equal(alone[n], shared[n]), n


def test_second_model_names_a_run_checkpoint_and_refuses_other_tokens(tmp_path):
    from types import SimpleNamespace

    from engine.explore.compare import other_info
    from ui.explore_views import other_choices, resolve_other

    run = SimpleNamespace(id=3, checkpoints={"final": SimpleNamespace(path=tmp_path / "ck", epoch=2)})
    ctx = SimpleNamespace(store=SimpleNamespace(get_run=lambda i: run, list_runs=lambda: [run]))
    assert resolve_other(ctx, "run 3:final") == (str(tmp_path / "ck"), "run 3 · final (epoch 2)")
    assert resolve_other(ctx, "demo-retain") == ("demo-retain", "demo-retain") and resolve_other(ctx, " ") is None
    with pytest.raises(ValueError, match="no 'best' checkpoint"):
        resolve_other(ctx, "run 3:best")
    assert other_choices(ctx, "demo-retain") == ["demo-retain", "run 3:final"]
    infos = {"a": SimpleNamespace(tokens=["x", "y"]), "b": SimpleNamespace(tokens=["x", "y", "z"])}
    svc = SimpleNamespace(info=lambda spec, *rest: infos[spec])
    with pytest.raises(ValueError, match="same tokenizer"):
        other_info(svc, "a", "b", "d", "forget", 0)
