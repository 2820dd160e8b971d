"""tokenviz: colour map, chips HTML, mask edits and undo/redo (pure Python, no torch)."""
import copy
import re
import subprocess
import sys
import time

import pytest

from tokenviz import (CHIPS_CSS, EditHistory, brush, count_targets, decode_token, display_token, legend_html,
                      render_chips, render_rows, reset, score_to_color, select_word, text_color, toggle,
                      word_ids_from_tokens)
from tokenviz.colors import BLUES, relative_luminance

CHIP = re.compile(r'<span class="(tv-chip[^"]*)" data-idx="(\d+)" data-target="([01])" style="([^"]*)" '
                  r'title="([^"]*)">([^<]*)</span>')


def chips(html):
    """(classes, idx, style, title, text) of every chip, in order."""
    return [dict(cls=m[0].split(), idx=int(m[1]), style=m[3], title=m[4], text=m[5]) for m in CHIP.findall(html)]


# ---------------------------------------------------------------- colours

def test_colour_map_ends_and_middle():
    assert score_to_color(0.0, 0.0, 1.0) == "#ffffff"
    assert score_to_color(1.0, 0.0, 1.0) == "#08306b"
    assert score_to_color(0.5, 0.0, 1.0) == "#6baed6"  # the 5th of 9 stops
    assert score_to_color(0.25, 0.0, 1.0) == "#c6dbef"
    # halfway between stops 0 (#ffffff) and 1 (#deebf7): per channel (a + b) / 2, rounded
    assert score_to_color(0.0625, 0.0, 1.0) == "#eff5fb"
    assert score_to_color(7.0, 2.0, 12.0) == "#6baed6"  # rescaled range


def test_colour_map_clips_and_handles_degenerate_input():
    assert score_to_color(-3.0, 0.0, 1.0) == "#ffffff"
    assert score_to_color(9.0, 0.0, 1.0) == "#08306b"
    assert score_to_color(float("inf"), 0.0, 1.0) == "#08306b"
    assert score_to_color(0.4, 0.4, 0.4) == "#6baed6"  # empty range: the middle, no ZeroDivisionError
    assert score_to_color(float("nan"), 0.0, 1.0) == "#d9d9d9"


def test_ramp_is_monotone_in_lightness():
    lum = [relative_luminance(score_to_color(k / 20, 0, 1)) for k in range(21)]
    assert all(a > b for a, b in zip(lum, lum[1:]))
    assert len(BLUES) == 9


def test_text_colour_by_luminance():
    assert text_color("#ffffff") == "#000000"
    assert text_color("#08306b") == "#ffffff"
    assert text_color("#000000") == "#ffffff"
    assert text_color("#ffff00") == "#000000"


def test_legend_has_gradient_and_labels():
    html = legend_html(0.0, 2.5, "entropy <nats>")
    assert "linear-gradient(to right, #ffffff" in html and "#08306b)" in html
    assert ">0<" in html and ">2.5<" in html
    assert "entropy &lt;nats&gt;" in html and "<nats>" not in html


# ---------------------------------------------------------------- display strings

@pytest.mark.parametrize("raw, shown", [
    ("Ġthe", " the"), ("Ċ", "⏎"), ("ĊĊ", "⏎⏎"), ("ĉ", "⇥"), ("Paris", "Paris"),
    ("ĠcafÃ©", " café"), ("▁Hello", " Hello"), ("<0x0A>", "⏎"), ("Ġ<script>", " <script>"),
])
def test_display_token(raw, shown):
    assert display_token(raw) == shown


def test_decode_token_keeps_real_newline():
    assert decode_token("Ċ") == "\n" and decode_token("Ġ") == " "
    assert decode_token("Ġâ") == " �"  # an incomplete UTF-8 character
    assert decode_token("Ã", byte_level=True) == "�" and decode_token("Ã") == "Ã"  # alone it is ambiguous
    assert decode_token("ĠcafÃ©", byte_level=False) == "ĠcafÃ©"
    assert display_token("café\n") == "café⏎"  # plain text (an offset slice) passes through


# ---------------------------------------------------------------- chips

TOKENS = [" The", " capital", " is", " Paris", "."]
SCORES = [0.0, 0.25, 0.5, 1.0, 0.123456]
MASK = [False, True, False, True, False]


def test_one_chip_per_token_with_score_colour():
    out = chips(render_chips(TOKENS, SCORES, MASK))
    assert [c["idx"] for c in out] == [0, 1, 2, 3, 4]
    assert [c["text"] for c in out] == TOKENS
    backgrounds = [re.search(r"background:(#[0-9a-f]{6})", c["style"])[1] for c in out]
    assert backgrounds[:4] == ["#ffffff", "#c6dbef", "#6baed6", "#08306b"]
    assert "color:#ffffff" in out[3]["style"] and "color:#000000" in out[0]["style"]


def test_outline_only_on_masked_chips():
    out = chips(render_chips(TOKENS, SCORES, MASK))
    for c, m in zip(out, MASK):
        assert ("tv-target" in c["cls"]) == m
        assert ("outline:3px solid" in c["style"]) == m
    # the mask is not a hue: same score, masked or not, same background
    a, b = chips(render_chips(["x", "y"], [0.5, 0.5], [True, False]))
    assert a["style"].split(";")[0] == b["style"].split(";")[0] == "background:#6baed6"


def test_title_has_repr_exact_score_and_probability():
    out = chips(render_chips(TOKENS, SCORES, MASK, probs=[0.9, 0.8, 0.7, 0.654321, 0.5]))
    assert out[4]["title"].split("\n")[:3] == ["&#x27;.&#x27;", "score: 0.1235", "p: 0.5"]
    assert "score: 1\n" in out[3]["title"] and "p: 0.6543" in out[3]["title"]
    nl = chips(render_chips(["a\nb"], [0.5], [False]))[0]
    assert nl["title"].startswith("&#x27;a\\nb&#x27;")  # repr makes the newline visible
    no_p = chips(render_chips(["a"], [0.5], [False]))[0]
    assert "p:" not in no_p["title"]


def test_html_is_escaped():
    html = render_chips(["<script>alert(1)</script>", '"&'], [0.1, 0.2], [True, False],
                        row_label="<b>x</b>", sample_id='"><script>')
    assert "<script>" not in html and "<b>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&quot;&amp;" in html
    assert len(chips(html)) == 2


def test_binary_and_constant_rows():
    binary = chips(render_chips(["a", "b", "c"], [1, 0, 1], [True, False, True]))
    assert [re.search(r"background:(#\w+)", c["style"])[1] for c in binary] == ["#08306b", "#ffffff", "#08306b"]
    const = chips(render_chips(["a", "b"], [3.0, 3.0], [False, False]))  # outside [0, 1] and constant
    assert all("background:#6baed6" in c["style"] for c in const)
    ones = chips(render_chips(["a", "b"], [1.0, 1.0], [True, True]))  # the `all` selector
    assert all("background:#08306b" in c["style"] for c in ones)
    cont = chips(render_chips(["a", "b", "c"], [2.0, 4.0, 6.0], [False] * 3))  # entropy-like: row min-max
    assert [re.search(r"background:(#\w+)", c["style"])[1] for c in cont] == ["#ffffff", "#6baed6", "#08306b"]
    assert render_chips([], [], []) == '<div class="tv-chips" data-sample=""></div>'


def test_spans_editable_and_sample_id():
    html = render_chips(["a", "b"], [0.1, 0.2], [False, False], spans_mask=[False, True], editable=True,
                        sample_id="forget-7", row_label="wga")
    out = chips(html)
    assert "tv-span" not in out[0]["cls"] and "tv-span" in out[1]["cls"]
    assert "in fact span" in out[1]["title"] and "outside fact spans" in out[0]["title"]
    assert html.startswith('<div class="tv-chips tv-editable" data-sample="forget-7" aria-label="wga">')
    assert "tv-editable" not in render_chips(["a"], [0.1], [False])


def test_length_mismatch_is_an_error():
    with pytest.raises(ValueError, match="mask has 1 entries but there are 2 tokens"):
        render_chips(["a", "b"], [0.1, 0.2], [True])
    with pytest.raises(ValueError, match="probs"):
        render_chips(["a"], [0.1], [True], probs=[0.1, 0.2])


def test_render_rows_labels_legends_and_rows():
    rows = [{"label": "all", "tokens": TOKENS, "scores": [1.0] * 5, "mask": [True] * 5},
            {"label": "entropy", "tokens": TOKENS, "scores": [0.0, 2.0, 4.0, 1.0, 3.0], "mask": MASK,
             "legend_label": "H (nats)"},
            {"label": "oracle", "tokens": TOKENS, "scores": [0, 0, 0, 1, 0], "mask": MASK, "vmin": 0, "vmax": 2}]
    html = render_rows(rows)
    assert html.count('class="tv-row"') == 3 and html.count('class="tv-legend"') == 3
    labels = re.findall(r'<div class="tv-row-label">([^<]*)</div>', html)
    assert labels == ["all", "entropy", "oracle"]
    assert "H (nats)" in html and ">4<" in html  # entropy row's own max
    assert len(chips(html)) == 15
    oracle = chips(html)[10:]
    assert "background:#6baed6" in oracle[3]["style"]  # 1 on the explicit [0, 2] range
    with pytest.raises(ValueError, match="row 0 is missing mask"):
        render_rows([{"tokens": ["a"], "scores": [1.0]}])


def test_rendering_is_fast():
    tokens = [f" tok{i}" for i in range(60)]
    rows = [{"label": f"sel{r}", "tokens": tokens, "scores": [((i * 7 + r) % 13) / 3.0 for i in range(60)],
             "mask": [i % 3 == 0 for i in range(60)], "probs": [i / 60 for i in range(60)]} for r in range(9)]
    render_rows(rows)
    start = time.perf_counter()
    html = render_rows(rows)
    assert time.perf_counter() - start < 0.1
    assert len(chips(html)) == 540


def test_css_and_no_heavy_imports():
    assert ".tv-chip.tv-target" in CHIPS_CSS and "outline: 3px solid" in CHIPS_CSS
    code = "import sys, tokenviz; bad = {'torch', 'gradio'} & set(sys.modules); print(sorted(bad))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "[]", out.stderr


# ---------------------------------------------------------------- mask edits

def test_toggle_returns_new_list():
    m = [False, True, False]
    before = copy.deepcopy(m)
    assert toggle(m, 0) == [True, True, False]
    assert toggle(m, 1) == [False, False, False]
    assert m == before
    assert toggle([0, 1, 0], 2) == [0, 1, 1] and all(type(v) is int for v in toggle([0, 1, 0], 2))
    assert all(type(v) is bool for v in toggle(m, 0))


@pytest.mark.parametrize("start, end", [(1, 3), (3, 1)])
def test_brush_inclusive_either_direction(start, end):
    m = [0, 0, 0, 0, 0]
    assert brush(m, start, end, True) == [0, 1, 1, 1, 0]
    assert brush([1, 1, 1, 1, 1], start, end, False) == [1, 0, 0, 0, 1]
    assert brush(m, 2, 2, 1) == [0, 0, 1, 0, 0]
    assert m == [0, 0, 0, 0, 0]


def test_index_validation():
    with pytest.raises(IndexError, match="index 3 is out of range for a mask of 3 tokens"):
        toggle([0, 0, 0], 3)
    with pytest.raises(IndexError, match="index -1"):
        toggle([0, 0, 0], -1)
    with pytest.raises(IndexError, match="end 9"):
        brush([0, 0], 0, 9, True)
    with pytest.raises(TypeError, match="index must be an int"):
        toggle([0, 0], "1")
    with pytest.raises(TypeError, match="a mask must be a list"):
        toggle("010", 1)
    with pytest.raises(ValueError, match="words has 2 entries but the mask has 3"):
        select_word([0, 0, 0], [0, 1], 0, True)


def test_word_ids_from_display_strings():
    assert word_ids_from_tokens([" The", " capit", "al", " is", " Par", "is", ".", "⏎", "Next"]) == \
        [0, 1, 1, 2, 3, 3, 3, 4, 5]
    assert word_ids_from_tokens(["Hel", "lo", " world"]) == [0, 0, 1]


def test_select_word():
    tokens = [" The", " capit", "al", " is", " Par", "is", "."]
    m = [False] * 7
    assert select_word(m, tokens, 2, True) == [False, True, True, False, False, False, False]
    assert select_word(m, tokens, 4, True) == [False, False, False, False, True, True, True]
    assert select_word([1, 1, 1, 0, 0, 0, 0], tokens, 1, None) == [1, 0, 0, 0, 0, 0, 0]  # toggle the word
    assert select_word([0, 0, 0, 0], [0, 0, 1, 1], 3, True) == [0, 0, 1, 1]  # explicit word ids
    assert m == [False] * 7


def test_reset_and_count():
    default = [0, 1, 1, 0]
    r = reset(default)
    assert r == default and r is not default
    assert count_targets([True, False, True]) == 2 and count_targets([0, 1, 1, 1]) == 3 and count_targets([]) == 0


def test_history_undo_redo_sequence():
    h = EditHistory([0, 0, 0])
    assert not h.can_undo and h.undo() == [0, 0, 0]
    assert h.push(toggle(h.current, 0)) == [1, 0, 0]
    h.push(brush(h.current, 1, 2, 1))
    assert h.current == [1, 1, 1] and h.past == [[0, 0, 0], [1, 0, 0]]
    assert h.undo() == [1, 0, 0]
    assert h.undo() == [0, 0, 0]
    assert h.undo() == [0, 0, 0]  # nothing left: unchanged
    assert h.redo() == [1, 0, 0]
    assert h.can_redo
    h.push([0, 1, 0])  # a new edit clears redo
    assert not h.can_redo and h.redo() == [0, 1, 0]
    assert h.past == [[0, 0, 0], [1, 0, 0]]
    h.push([0, 1, 0])  # same as current: no new entry
    assert len(h.past) == 2


def test_history_copies_and_limit():
    start = [0, 0]
    h = EditHistory(start, limit=2)
    edit = [1, 0]
    h.push(edit)
    edit[1] = 1  # the caller's list changes later: the history does not
    start[0] = 9
    assert h.current == [1, 0] and h.past == [[0, 0]]
    out = h.undo()
    out.append(5)  # returned lists are copies too
    assert h.current == [0, 0]
    for m in ([1, 1], [0, 1], [1, 0]):
        h.push(m)
    assert h.past == [[1, 1], [0, 1]]  # only the last `limit` past masks
    with pytest.raises(ValueError, match="limit"):
        EditHistory([0], limit=0)
