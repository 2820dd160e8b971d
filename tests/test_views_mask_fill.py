"""Issue 24, item 4: in Edit the chip's fill is the mask state, the selector's score only a bar and the hover."""
from __future__ import annotations

import re
from types import SimpleNamespace

from tokenviz import render_mask_chips
from tokenviz.chips import KEPT_FILL, MASK_FILL

CHIP = re.compile(r'<span class="(tv-chip[^"]*)" data-idx="(\d+)" data-target="([01])" data-fill="(\w+)" '
                  r'style="background:(#[0-9a-f]{6})[^"]*" title="([^"]*)">[^<]*(?:<span class="tv-scorebar" '
                  r'style="width:(\d+)%"></span>)?</span>')


def chips(html: str) -> list[dict]:
    return [dict(cls=m[0], idx=int(m[1]), target=m[2] == "1", fill=m[3], bg=m[4], title=m[5],
                 bar=None if m[6] == "" else int(m[6])) for m in CHIP.findall(html)]


def test_fill_follows_the_mask_not_the_score():
    # token 0: the selector's top score but taken out of the mask by hand; token 1: score 0 but a rule target
    scores, mask = [0.9, 0.0, 0.5], [False, True, False]
    out = chips(render_mask_chips(["Ana", " Lima", "."], mask, scores))
    assert [c["fill"] for c in out] == ["kept", "target", "kept"]
    assert [c["bg"] for c in out] == [KEPT_FILL, MASK_FILL, KEPT_FILL]
    assert [c["bar"] for c in out] == [100, 0, 50]  # rank of 0.9, 0.0, 0.5 among three distinct values
    assert "score: 0.9" in out[0]["title"] and "kept" in out[0]["title"]


def test_raw_scale_bar_is_the_position_on_the_range_and_no_scores_means_no_bar():
    out = chips(render_mask_chips(["a", "b", "c"], [1, 0, 1], [0.0, 0.25, 1.0], scale="raw"))
    assert [c["bar"] for c in out] == [0, 25, 100]
    out = chips(render_mask_chips(["a", "b"], [1, 0], None))
    assert [c["bar"] for c in out] == [None, None] and [c["fill"] for c in out] == ["target", "kept"]


def test_edit_view_renders_a_toggled_off_and_a_rule_added_token_as_what_they_are():
    from ui.render import edit_html

    info = SimpleNamespace(uid="u1", tokens=["ĠAna", "ĠLima", "</s>"], eos=[False, False, True],
                           probs=[0.5, 0.5, 0.9], spans=None, fit=None)
    selector_scores = [1.0, 0.0, 0.0]  # the selector targets "Ana" only
    mask = [0, 1, 0]  # a person took "Ana" out, a phrase rule added "Lima"
    html = edit_html(info, mask, selector_scores, "wga score")
    out = chips(html)
    assert out[0]["fill"] == "kept" and out[0]["bg"] == KEPT_FILL and out[0]["bar"] == 100
    assert out[1]["fill"] == "target" and out[1]["bg"] == MASK_FILL and out[1]["bar"] == 0
    assert "bar = wga score" in html and "not a target" in html
