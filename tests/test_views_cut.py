"""Issue 24, item 1: an answer longer than the model's context is never cut silently (engine/explore/fit.py,
the Explore page's note and "✂ cut here" chip, `score --allow-cut`)."""
from __future__ import annotations

import json
import warnings

import pytest

from engine.data import Sample
from engine.explore import ExploreService, fit_of, sample_fits
from engine.tokens import encode_samples
from tokenviz import CUT_DISPLAY, EOS_DISPLAY, SPACE_MARK, display_token, display_tokens, render_chips

LONG = "word " * 300


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    from benchmarks.harness import isolated_home

    with isolated_home(tmp_path_factory.mktemp("home")) as h:
        yield h


def test_fit_of_counts_by_hand():
    f = fit_of(prompt=30, total=140, context=128)  # room for 128 - 30 - 1 = 97 answer tokens
    assert (f.kept, f.cut) == (97, True) and "97 of 140" in f.note() and "context 128" in f.note()
    assert fit_of(30, 97, 128).cut is False and fit_of(30, 97, 128).note() == ""
    assert fit_of(30, 98, 128).kept == 97
    assert fit_of(30, 500, None).cut is False  # an unknown context cuts nothing


def test_sample_fits_agree_with_what_encode_keeps(builtin_tokenizer):
    samples = [Sample("Who?", "Ana."), Sample("Who wrote it?", LONG)]
    fits = sample_fits(builtin_tokenizer, samples)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        batch = encode_samples(builtin_tokenizer, samples)
    kept = (batch.label_mask.sum(1) - 1).tolist()  # label positions minus the closing EOS
    assert [f.kept for f in fits] == kept
    assert fits[0].cut is False and fits[1].cut is True and fits[1].total > fits[1].kept
    assert fits[1].prompt + fits[1].kept + 1 == builtin_tokenizer.model_max_length


def test_a_cut_answer_ends_with_a_cut_marker_not_eos():
    assert display_tokens(["a", "b", "</s>"], [False, False, True]) == ["a", "b", EOS_DISPLAY]
    shown = display_tokens(["a", "b", "</s>"], [False, False, True], cut=True)
    assert shown == ["a", "b", CUT_DISPLAY]
    html = render_chips(shown, [0.1, 0.2, 0.0], [False, False, False])
    assert 'class="tv-chip tv-cut"' in html and EOS_DISPLAY not in html


def test_space_only_tokens_are_visible():
    assert display_token("Ġ") == SPACE_MARK and display_token("ĠĠ") == SPACE_MARK * 2
    assert display_token("▁") == SPACE_MARK and display_token("Ġthe") == " the"


def test_explore_marks_a_cut_sample(home, tmp_path):
    from ui.render import cut_summary, question_html, shown_tokens

    folder = tmp_path / "long"
    folder.mkdir()
    rows = [{"question": "Who?", "answer": "Ana."}, {"question": "Who wrote it?", "answer": LONG}]
    (folder / "forget10.json").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    svc = ExploreService(device="cpu", chunk_size=8)
    fits = svc.fits("demo", str(folder), "forget")
    assert [f.cut for f in fits] == [False, True]
    fine, cut = (svc.info("demo", str(folder), "forget", i) for i in (0, 1))
    assert shown_tokens(fine)[-1] == EOS_DISPLAY and "wb-cut-note" not in question_html(fine, 2, "forget")
    assert shown_tokens(cut)[-1] == CUT_DISPLAY
    page = question_html(cut, 2, "forget")
    assert f'data-kept="{cut.fit.kept}"' in page and f'data-total="{cut.fit.total}"' in page
    assert "context of 128" in page and len(cut.tokens) == cut.fit.kept + 1
    assert "1 of 2 samples" in cut_summary(fits) and cut_summary(fits[:1]) == ""


def test_score_cli_notes_each_cut_answer(home, tmp_path, capsys):
    from engine.cli import main

    folder = tmp_path / "long"
    folder.mkdir()
    rows = [{"question": "Who?", "answer": "Ana."}, {"question": "Who wrote it?", "answer": LONG}]
    (folder / "forget10.json").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    assert main(["score", "--selector", "all", "--data", str(folder), "--device", "cpu"]) == 2
    assert "--allow-cut" in capsys.readouterr().err  # refused by default, the way out named
    out_json = tmp_path / "s.json"
    assert main(["score", "--selector", "all", "--data", str(folder), "--device", "cpu", "--allow-cut",
                 "--json", str(out_json)]) == 0
    out = capsys.readouterr().out
    assert "1 of 2 answers do not fit" in out and "✂ cut here" in out and "answer cut:" in out
    rows = json.loads(out_json.read_text())["samples"]
    assert rows[0]["cut"] is None
    assert rows[1]["cut"]["kept"] == len(rows[1]["tokens"]) < rows[1]["cut"]["total"]
    assert rows[1]["cut"]["context"] == 128


def test_edit_sample_list_marks_a_cut_sample(home, tmp_path):
    from ui.context import AppContext
    from ui.edit_tab import EditHandlers

    folder = tmp_path / "long"
    folder.mkdir()
    rows = [{"question": "Who?", "answer": "Ana."}, {"question": "Who wrote it?", "answer": LONG}]
    (folder / "forget10.json").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    ctx = AppContext.create(home / "store.sqlite", device="cpu")
    h = EditHandlers(ctx)
    h.create("cut-set", "all", "demo", str(folder), progress=lambda *a, **k: None)
    table = h.table("cut-set")
    fit = ctx.explore.fits("demo", str(folder), "forget")[1]
    assert list(table["cut"]) == ["", f"✂ {fit.kept}/{fit.total}"]
