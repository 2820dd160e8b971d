"""Issue 24 in a real browser (playwright, system chromium): a cut answer marked, Edit's fill = mask,
a chip on the first screen at 1366×768 with the key visible, the Δ row and side-by-side table against
the retain model, word grouping, export downloads, a failed import keeping the open set, and Compare
at 800 px in the dark theme. Screenshots (delta-row.png, side-by-side.png) go to $WORKBENCH_SCREENSHOTS
when set (benchmarks/screenshots.py), else to a temporary folder."""
from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import pytest

from test_browser import CHROMIUM, WAIT, browser, fill, open_tab  # noqa: F401  (browser: the shared fixture)

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists() and not shutil.which("chromium"),
                                reason="the system chromium is not installed")
SHOTS = Path(os.environ.get("WORKBENCH_SCREENSHOTS") or tempfile.mkdtemp(prefix="wb-shots-"))
LONG_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "tofu_sample" / "forget_spans_dev"
CONTEXT: list = []  # the served app's AppContext (the server runs in this process)
WHITE, TARGET = "rgb(255, 255, 255)", "rgb(8, 81, 156)"  # tokenviz.chips KEPT_FILL, MASK_FILL


@pytest.fixture(scope="module")
def url(tmp_path_factory):
    import app
    from benchmarks.harness import isolated_home, serve

    with isolated_home(tmp_path_factory.mktemp("home")) as home:
        demo = app.build_demo(home / "store.sqlite")
        CONTEXT.append(demo.wb_context)
        with serve(demo) as u:
            yield u


def new_page(browser, url, width=1400, height=1000, query=""):
    pg = browser.new_page(viewport={"width": width, "height": height}, accept_downloads=True)
    pg.set_default_timeout(WAIT)
    pg.goto(url + query)
    return pg


def test_first_screen_at_1366x768_has_a_chip_and_the_key(browser, url):
    pg = new_page(browser, url, 1366, 768)
    try:
        pg.wait_for_selector("#explore-chips .tv-chip")
        top = pg.eval_on_selector("#explore-chips .tv-chip", "e => e.getBoundingClientRect().top")
        assert top < 768, top
        key = pg.locator("#explore-key")
        assert key.is_visible() and "outline" in key.inner_text() and "underline" in key.inner_text()
    finally:
        pg.close()


def test_a_cut_answer_is_marked_in_the_page(browser, url):
    if not LONG_DATA.with_suffix(".json").exists():
        pytest.skip("the shared TOFU sample is not here")
    pg = new_page(browser, url)
    try:
        pg.wait_for_selector("#explore-chips .tv-chip")
        fill(pg, "top-data", str(LONG_DATA.resolve()))
        pg.wait_for_selector("#explore-question:has-text('of 120')")
        fill(pg, "explore-index", "7")  # TOFU answer 7 is longer than the built-in model's 128-token context
        pg.wait_for_selector("#explore-question .wb-cut-note")
        note = pg.locator("#explore-question .wb-cut-note")
        assert note.is_visible() and "context of 128" in note.inner_text()
        assert int(note.get_attribute("data-kept")) < int(note.get_attribute("data-total"))
        last = pg.locator("#explore-chips .wb-selector[data-selector='wga'] .tv-chip").last
        assert last.inner_text() == "✂ cut here"
        assert "do not fit" in pg.inner_text("#explore-status")
    finally:
        pg.close()


def test_delta_row_side_by_side_words_and_export(browser, url):
    pg = new_page(browser, url)
    try:
        pg.wait_for_selector("#explore-chips .tv-chip")
        fill(pg, "explore-other", "demo-retain")
        pg.wait_for_selector("#explore-chips .wb-extra[data-extra='delta'] .tv-chip")
        pg.wait_for_selector("#explore-chips .wb-side-by-side table.tv-aligned")
        colours = set(pg.eval_on_selector_all("#explore-chips .wb-extra[data-extra='delta'] .tv-chip",
                                              "els => els.map(e => getComputedStyle(e).backgroundColor)"))
        assert len(colours) > 2
        # aligned: token i of the two p rows sits in the same column
        xs = pg.eval_on_selector_all("#explore-chips .tv-aligned tbody tr", "rows => rows.map(r => "
                                     "r.querySelectorAll('td')[3].getBoundingClientRect().left)")
        assert len(xs) >= 3 and max(xs) - min(xs) < 1
        pg.locator("#explore-chips .wb-extra[data-extra='delta']").screenshot(path=str(_shot("delta-row.png")))
        pg.locator("#explore-chips .wb-side-by-side").screenshot(path=str(_shot("side-by-side.png")))
        n_tokens = pg.locator("#explore-chips .wb-selector[data-selector='wga'] .tv-chip").count()
        pg.get_by_label("words (max)").check()
        pg.wait_for_selector("#explore-chips .wb-explore[data-group='max']")
        assert 0 < pg.locator("#explore-chips .wb-selector[data-selector='wga'] .tv-chip").count() < n_tokens
        pg.click("#explore-export")
        pg.wait_for_selector("#explore-export-view svg")
        pg.locator("#explore-export-files a").first.wait_for()
        names = " ".join(pg.inner_text("#explore-export-files").split())
        assert ".svg" in names and ".csv" in names, names
        with pg.expect_download() as png:
            pg.click("#wb-export-png")
        assert png.value.suggested_filename.endswith(".png")
    finally:
        pg.close()


def test_edit_fill_is_the_mask_and_a_failed_import_keeps_the_open_set(browser, url, tmp_path):
    pg = new_page(browser, url)
    try:
        open_tab(pg, "Edit")
        for name in ("fill-a", "fill-b"):
            fill(pg, "edit-new-name", name)
            pg.click("#edit-create")
            pg.wait_for_function(f"() => document.querySelector('#edit-set input').value === '{name}'")
        chip = "#edit-chips .tv-chip[data-idx='0']"
        pg.wait_for_selector(chip)
        before = pg.get_attribute(chip, "data-target")
        pg.click(chip)
        after = "0" if before == "1" else "1"
        pg.wait_for_selector(f"{chip}[data-target='{after}']")
        bg = pg.eval_on_selector(chip, "e => getComputedStyle(e).backgroundColor")
        assert bg == (TARGET if after == "1" else WHITE)
        for c in pg.locator("#edit-chips .tv-chip[data-idx]").all()[:12]:
            assert c.evaluate("e => getComputedStyle(e).backgroundColor") == (
                TARGET if c.get_attribute("data-target") == "1" else WHITE)
        # open fill-a, then a bad import: fill-a stays open
        pg.locator("#edit-set input").fill("fill-a")
        pg.locator("#edit-set input").press("Enter")
        pg.wait_for_selector("#edit-status:has-text('fill-a')")
        bad = tmp_path / "bad.json"
        bad.write_text("{not json")
        pg.get_by_text("duplicate · rename · delete · export · import").click()
        pg.locator("#edit-set-status").wait_for(state="attached")
        pg.locator("input[type=file]").first.set_input_files(str(bad))
        pg.wait_for_selector("#edit-set-status:has-text('was not imported')")
        assert pg.input_value("#edit-set input") == "fill-a"
    finally:
        pg.close()


def test_compare_at_800px_dark(browser, url):
    pg = new_page(browser, url, 800, 900, "?__theme=dark")
    try:
        pg.wait_for_selector("#explore-chips .tv-chip")
        open_tab(pg, "Compare")
        pg.wait_for_selector("#compare-plot .main-svg")
        bg = pg.eval_on_selector("#compare-plot .main-svg", "e => getComputedStyle(e).backgroundColor")
        assert bg not in ("rgb(255, 255, 255)", "rgba(0, 0, 0, 0)"), bg
        heads = pg.locator("#compare-table th").all_inner_texts()
        heads = [h.strip() for h in heads if h.strip()]
        assert heads[:3] == ["run", "FQ", "MU"], heads
        fq = pg.locator("#compare-table th", has_text="FQ").first.bounding_box()
        assert fq["x"] + fq["width"] <= 800
    finally:
        pg.close()


def test_a_slow_chunk_shows_its_phase_and_the_previous_view(browser, url):
    views = CONTEXT[0].explore.views
    real = views._score_chunk

    def slow(model_spec, chunk, selector, params):  # a real model's minute, shortened: dto takes 3 s
        if selector == "dto":
            time.sleep(3)
        return real(model_spec, chunk, selector, params)

    pg = new_page(browser, url)
    views._score_chunk = slow
    try:
        pg.wait_for_selector("#explore-chips .tv-chip")
        fill(pg, "explore-index", "50")  # a chunk not scored yet
        line = pg.locator("#explore-working .wb-working[data-phase='selector']")
        line.wait_for()
        text = line.inner_text()
        assert "selector" in text and " of " in text and "samples 48–55" in text
        assert "previous view" in text and "sample 0" in text  # the chips are labelled as the old view
        assert "scoring with" in pg.inner_text("#explore-status") and "demo" in pg.inner_text("#explore-status")
        pg.wait_for_selector("#explore-question:has-text('Sample 50 of')")
        assert pg.locator("#explore-working .wb-working").count() == 0
    finally:
        views._score_chunk = real
        pg.close()


def _shot(name: str) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    return SHOTS / name


def test_delta_row_against_a_runs_checkpoint(browser, url):
    """Issue 24's Δ row for a run's checkpoint: a one-step run recorded in the app's store, then
    'run N:final' as the second model; the row's legend names that checkpoint."""
    from engine.train import RunConfig, unlearn

    store = CONTEXT[0].store
    result = unlearn(RunConfig(model="demo", data="demo/forget01", loss="ga", selector="all", epochs=1, max_steps=1,
                               lr=1e-2, eval_every_epoch=False, device="cpu"), store)
    assert result.status == "finished" and "final" in result.checkpoints, result.error
    pg = new_page(browser, url)
    try:
        pg.wait_for_selector("#explore-chips .tv-chip")
        fill(pg, "explore-other", f"run {result.run_id}:final")
        row = "#explore-chips .wb-extra[data-extra='delta']"
        pg.wait_for_selector(f"{row} .tv-chip")
        assert f"run {result.run_id}" in pg.inner_text(row)  # the legend names the checkpoint
        values = pg.eval_on_selector_all(f"{row} .tv-chip", "els => els.map(e => e.getAttribute('title') || '')")
        assert any(v for v in values)  # hover values on every chip of the row
    finally:
        pg.close()
