"""The app in a real browser (playwright, system chromium): chips, clicks, reload, a run, the plot.

Screenshots of each tab (explore.png, edit.png, run.png, compare.png) go to $WORKBENCH_SCREENSHOTS
(`WORKBENCH_SCREENSHOTS=assets python -m pytest tests/test_browser*.py` refreshes the README's) or,
unset, to a temporary folder, so a test run never rewrites tracked files.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from engine.selectors import SELECTORS

ASSETS = Path(os.environ.get("WORKBENCH_SCREENSHOTS") or tempfile.mkdtemp(prefix="wb-shots-"))
CHROMIUM = "/usr/bin/chromium"
WAIT = 90_000  # ms: generous for 2 shared CPU cores; every wait is on a condition, never a sleep

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists() and not shutil.which("chromium"),
                                reason="the system chromium is not installed")


@pytest.fixture(scope="module")
def url(tmp_path_factory):
    import app
    from benchmarks.harness import isolated_home, serve

    with isolated_home(tmp_path_factory.mktemp("home")) as home:
        with serve(app.build_demo(home / "store.sqlite")) as u:
            yield u


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium"),
                              args=["--headless", "--no-sandbox", "--disable-gpu"])
        try:
            yield b
        finally:
            b.close()


@pytest.fixture()
def page(browser, url):
    pg = browser.new_page(viewport={"width": 1400, "height": 1000})
    pg.set_default_timeout(WAIT)
    pg.goto(url)
    try:
        yield pg
    finally:
        pg.close()


def open_tab(page, name: str) -> None:
    page.get_by_role("tab", name=name).click()


def fill(page, elem_id: str, value: str) -> None:
    box = page.locator(f"#{elem_id} input, #{elem_id} textarea").first
    box.fill(value)
    box.press("Enter")
    box.blur()


def shot(page, name: str) -> None:
    ASSETS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ASSETS / name), full_page=True)


def test_page_loads_with_four_tabs(page):
    from playwright.sync_api import expect

    page.wait_for_selector("text=Token-level unlearning workbench")
    for name in ("Explore", "Edit", "Run", "Compare"):
        expect(page.get_by_role("tab", name=name)).to_be_visible()
    expect(page.locator("#bootstrap-banner")).not_to_contain_text("failed")


def test_every_selector_row_shows_coloured_chips(page):
    rows = page.locator("#explore-chips .wb-selector")
    page.wait_for_selector("#explore-chips .wb-selector[data-selector='all'] .tv-chip")
    names = rows.evaluate_all("els => els.map(e => e.dataset.selector)")
    assert set(names) == set(SELECTORS) | {"ground truth"}
    for name in SELECTORS:
        row = page.locator(f"#explore-chips .wb-selector[data-selector='{name}']")
        assert row.is_visible()
        if name == "atwu":  # no scorer fitted in this fresh home: its message, not chips
            assert "no ATWU scorer" in row.inner_text() and row.locator(".tv-chip").count() == 0
            continue
        chips = row.locator(".tv-chip")
        assert chips.count() > 3 and chips.first.is_visible()
        colours = set(chips.evaluate_all("els => els.map(e => getComputedStyle(e).backgroundColor)"))
        assert colours and colours != {"rgba(0, 0, 0, 0)"}, name
        assert row.locator(".tv-legend-bar").count() == 1
    wga = page.locator("#explore-chips .wb-selector[data-selector='wga'] .tv-chip")
    assert len(set(wga.evaluate_all("els => els.map(e => getComputedStyle(e).backgroundColor)"))) > 1
    assert "score:" in wga.first.get_attribute("title") and "p:" in wga.first.get_attribute("title")
    shot(page, "explore.png")
    page.get_by_label("top-k", exact=True).first.check()  # the mask rule: masks change without a model call
    page.wait_for_selector("#explore-chips .wb-selector[data-selector='all'] .tv-row-label:has-text('all (5)')")
    assert page.locator("#explore-chips .wb-selector[data-selector='all'] .tv-chip[data-target='1']").count() == 5


def test_clicking_a_chip_toggles_it_and_survives_a_reload(page):
    open_tab(page, "Edit")
    fill(page, "edit-new-name", "browser-set")
    page.click("#edit-create")
    page.wait_for_function("() => document.querySelector('#edit-set input').value === 'browser-set'")
    page.wait_for_selector("#edit-status:has-text('browser-set')")
    chip = "#edit-chips .tv-chip[data-idx='0']"
    page.wait_for_selector(chip)
    before = page.get_attribute(chip, "data-target")
    flipped = "0" if before == "1" else "1"
    page.click(chip)
    page.wait_for_selector(f"{chip}[data-target='{flipped}']")
    page.wait_for_selector("#edit-count:has-text('edited by hand')")
    # drag from chip 1 to chip 3 brushes the span
    b1 = page.locator("#edit-chips .tv-chip[data-idx='1']").bounding_box()
    b3 = page.locator("#edit-chips .tv-chip[data-idx='3']").bounding_box()
    value = "0" if page.get_attribute("#edit-chips .tv-chip[data-idx='1']", "data-target") == "1" else "1"
    page.mouse.move(b1["x"] + b1["width"] / 2, b1["y"] + b1["height"] / 2)
    page.mouse.down()
    page.mouse.move(b3["x"] + b3["width"] / 2, b3["y"] + b3["height"] / 2, steps=5)
    page.mouse.up()
    for i in (1, 2, 3):
        page.wait_for_selector(f"#edit-chips .tv-chip[data-idx='{i}'][data-target='{value}']")
    shot(page, "edit.png")
    page.reload()
    open_tab(page, "Edit")
    page.wait_for_selector("#edit-set input")
    page.wait_for_function("() => document.querySelector('#edit-set input').value === 'browser-set'")
    page.wait_for_selector(f"{chip}[data-target='{flipped}']")
    page.wait_for_selector(f"#edit-chips .tv-chip[data-idx='2'][data-target='{value}']")


def test_delete_asks_for_confirmation(page):
    open_tab(page, "Edit")
    fill(page, "edit-new-name", "to-delete")
    page.click("#edit-create")
    page.wait_for_function("() => document.querySelector('#edit-set input').value === 'to-delete'")
    page.get_by_text("duplicate · rename · delete · export · import").click()
    page.click("#edit-delete")
    page.wait_for_selector("#edit-delete-confirm")
    page.wait_for_selector("text=Delete mask set")
    page.click("#edit-delete-confirm")
    page.wait_for_selector("#edit-set-status:has-text('deleted')")
    page.wait_for_function("() => document.querySelector('#edit-set input').value !== 'to-delete'")


def test_a_short_run_shows_progress_and_adds_a_curve(page):
    page.wait_for_selector("#explore-chips .tv-chip")
    fill(page, "top-data", "demo/forget01")
    page.wait_for_selector("#explore-question:has-text('of 10')")  # the data change reached the server
    open_tab(page, "Run")
    page.wait_for_selector("#run-start", state="visible")  # the tab is rendered before its inputs are filled
    page.get_by_text("evaluation and checkpoints").click()
    for elem_id, value in (("run-epochs", "1"), ("run-retain-eval", "20"), ("run-eval-tokens", "16")):
        fill(page, elem_id, value)
        page.wait_for_function(f"() => document.querySelector('#{elem_id} input').value === '{value}'")
    page.click("#run-start")
    page.wait_for_selector("#run-status:has-text('started')")
    assert "1 epoch(s)" in page.inner_text("#run-status")  # the server got the form as filled
    page.wait_for_selector("#run-progress .wb-progress[data-state='running'], "
                           "#run-progress .wb-progress[data-state='finished']")
    page.reload()  # the run goes on in its thread; the reloaded page picks it up by polling
    fill(page, "top-data", "demo/forget01")  # the Compare tab shows runs on the chosen model / data
    open_tab(page, "Run")
    page.wait_for_selector("#run-progress .wb-progress[data-state='finished']", timeout=240_000)
    text = page.inner_text("#run-progress")
    assert "epoch 1/1" in text and "step 2/2" in text and "loss" in text
    assert page.get_attribute("#run-progress progress", "value") == "100"
    run_id = page.get_attribute("#run-progress .wb-progress", "data-run")
    shot(page, "run.png")
    open_tab(page, "Compare")
    page.wait_for_selector(f"#compare-plot .legendtext:has-text('run {run_id}:')")
    page.wait_for_selector("#compare-table:has-text('final')")
    assert page.locator("#compare-plot .scatterlayer .trace").count() >= 1
    page.hover("#compare-plot .nsewdrag")
    page.wait_for_selector("#compare-plot .modebar-btn[data-title*='PNG' i]")  # plotly's PNG download
    # reference points (target and retain model, evaluated once) and a before/after generation
    fill(page, "compare-ref-size", "20")
    fill(page, "compare-ref-tokens", "16")
    page.click("#compare-refs")
    page.wait_for_selector("#compare-plot .legendtext:has-text('retain model')", timeout=240_000)
    page.wait_for_function("() => document.querySelector('#compare-checkpoint input').value.includes('run')")
    page.click("#compare-generate")
    page.wait_for_selector("#compare-before-after .wb-ba-col[data-side='after'] .tv-chip")
    shot(page, "compare.png")
