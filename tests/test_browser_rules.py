"""The Edit tab's set-wide tools in a real browser (playwright, system chromium): a phrase picked
in the chips and applied everywhere, live F1 moving after edits, and "accept and next" on the a key."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from test_browser import CHROMIUM, WAIT, fill, open_tab

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
def page(url):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium"),
                              args=["--headless", "--no-sandbox", "--disable-gpu"])
        pg = b.new_page(viewport={"width": 1400, "height": 1000})
        pg.set_default_timeout(WAIT)
        pg.goto(url)
        try:
            yield pg
        finally:
            b.close()


def chip_with(page, text: str) -> int:
    """data-idx of the first Edit chip whose text contains `text`."""
    return page.eval_on_selector_all("#edit-chips .tv-chip", f"els => Number(els.find(e => e.textContent"
                                                             f".includes({text!r})).dataset.idx)")


def f1(page) -> str:
    return page.get_attribute("#edit-acc", "data-token-f1")


def test_phrase_rule_from_the_page_and_live_f1(page):
    page.wait_for_selector("#explore-chips .tv-chip")
    fill(page, "top-data", "demo/forget01")
    page.wait_for_selector("#explore-question:has-text('of 10')")
    open_tab(page, "Edit")
    fill(page, "edit-new-name", "phrases")
    page.click("#edit-create")
    page.wait_for_function("() => document.querySelector('#edit-set input').value === 'phrases'")
    page.wait_for_selector("#edit-acc[data-token-f1='1.000']")  # the oracle's mask is the ground truth
    # alt-click " born" in sample 0 ("…, born in Riga."): it becomes a target and the phrase box says "born"
    i = chip_with(page, "born")
    page.click(f"#edit-chips .tv-chip[data-idx='{i}']", modifiers=["Alt"])
    page.wait_for_selector(f"#edit-chips .tv-chip[data-idx='{i}'][data-target='1']")
    page.wait_for_function("() => document.querySelector('#edit-acc').dataset.tokenF1 !== '1.000'")
    after_edit = f1(page)
    assert float(after_edit) < 1.0
    page.wait_for_function("() => document.querySelector('#edit-rule-phrase textarea, #edit-rule-phrase input')"
                           ".value === 'born'")
    page.click("#edit-rule-target")
    page.wait_for_selector("#edit-rules:has-text('born')")
    page.wait_for_selector("#edit-rule-status:has-text('added')")
    # sample 2 ("… was born on 12 January 1968.") now has " born" as a target, and F1 fell again
    page.wait_for_function(f"() => document.querySelector('#edit-acc').dataset.tokenF1 !== '{after_edit}'")
    assert float(f1(page)) < float(after_edit)
    fill(page, "edit-index", "2")
    page.wait_for_selector("#edit-chips .wb-edit")
    page.wait_for_function("() => [...document.querySelectorAll('#edit-chips .tv-chip')]"
                           ".some(e => e.textContent.includes('January'))")
    j = chip_with(page, "born")
    assert page.get_attribute(f"#edit-chips .tv-chip[data-idx='{j}']", "data-target") == "1"


def test_accept_and_next_on_the_a_key(page):
    page.wait_for_selector("#edit-review-count")
    page.click("#edit-review-next")
    page.wait_for_selector("#edit-review-count[data-reviewed='0'][data-total='10']:has-text('next: sample')",
                           timeout=240_000)
    page.locator("body").click(position={"x": 5, "y": 5})  # focus outside any text box
    page.keyboard.press("a")
    page.wait_for_selector("#edit-review-count[data-reviewed='1']")
