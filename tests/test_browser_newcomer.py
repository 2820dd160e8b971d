"""Issue 12 in a real browser (system chromium, 1400×900, light and dark OS theme): marks that
read in both themes (WCAG ≥ 3:1), messages that stay, untrusted data and names shown as text with
no request leaving the page, the how-to-read panel, keyboard shortcuts. Screenshots of Explore in
both themes go to explore-light.png and explore-dark.png in $WORKBENCH_SCREENSHOTS (see test_browser.py; the
README shows assets/ ones)."""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from urllib.parse import urlparse

import pytest

from tests.test_browser import ASSETS, CHROMIUM, WAIT, browser, fill, open_tab  # noqa: F401 (fixture)
from tokenviz.colors import contrast_ratio

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists() and not shutil.which("chromium"),
                                reason="the system chromium is not installed")

EVIL = ('![img](http://evil.example/md.png) <img src="http://evil.example/tag.png"> '
        '<script>window.__pwned = 1</script> **bold**')


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """(url, context, home) of one launched app, plus a data directory whose first forget sample
    carries Markdown, HTML and a script."""
    import app
    from benchmarks.harness import isolated_home, serve

    with isolated_home(tmp_path_factory.mktemp("home")) as home:
        data = home / "evil-data"
        shutil.copytree(home / "builtin" / "data", data)
        lines = (data / "forget01.json").read_text().splitlines()
        first = json.loads(lines[0])
        first.update(question=f"Who wrote {EVIL}?", answer=f"The author {EVIL}.", spans=[])
        (data / "forget01.json").write_text("\n".join([json.dumps(first)] + lines[1:]) + "\n")
        demo = app.build_demo(home / "store.sqlite")
        with serve(demo) as url:
            yield url, demo.wb_context, home


def new_page(browser, url, scheme="light"):  # noqa: F811
    pg = browser.new_page(viewport={"width": 1400, "height": 900}, color_scheme=scheme)
    pg.set_default_timeout(WAIT)
    outside = []
    pg.on("request", lambda r: outside.append(r.url) if urlparse(r.url).hostname not in
          ("127.0.0.1", "localhost", None) and not r.url.startswith(("data:", "blob:")) else None)
    pg.outside = outside
    pg.goto(url)
    return pg


def rgb(css: str) -> str:
    """'rgb(r, g, b)' / 'rgba(r, g, b, a)' -> '#rrggbb'."""
    r, g, b = (int(float(v)) for v in re.findall(r"[\d.]+", css)[:3])
    return f"#{r:02x}{g:02x}{b:02x}"


PAGE_BG = """(el) => { for (let e = el.parentElement; e; e = e.parentElement) {
  const c = getComputedStyle(e).backgroundColor; if (c && c !== 'rgba(0, 0, 0, 0)' && c !== 'transparent') return c; }
  return getComputedStyle(document.body).backgroundColor; }"""


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_target_marks_contrast_in_both_themes(browser, env, scheme):  # noqa: F811
    pg = new_page(browser, env[0], scheme)
    try:
        pg.wait_for_selector("#explore-chips .wb-selector[data-selector='oracle'] .tv-chip.tv-target")
        if scheme == "dark":
            assert pg.evaluate("() => !!document.querySelector('.dark')")
        targets = pg.locator("#explore-chips .tv-chip.tv-target")
        n = targets.count()
        assert n > 5
        for i in range(0, n, max(1, n // 12)):
            chip = targets.nth(i)
            style = chip.evaluate("e => { const s = getComputedStyle(e), m = getComputedStyle(e, '::before'); "
                                  "return [s.outlineColor, s.outlineWidth, s.backgroundColor, m.borderTopColor, "
                                  "m.borderTopWidth, m.content]; }")
            outline, width, chip_bg, marker, marker_w, content = style
            page_bg = rgb(chip.evaluate(PAGE_BG))
            assert float(width.rstrip("px")) >= 3
            assert contrast_ratio(rgb(outline), page_bg) >= 3, (scheme, outline, page_bg)
            assert content != "none" and float(marker_w.rstrip("px")) >= 5  # a corner triangle, not colour alone
            assert contrast_ratio(rgb(marker), rgb(chip_bg)) >= 3, (scheme, marker, chip_bg)
        span = pg.locator("#explore-chips .tv-chip.tv-span").first
        assert "dotted" in span.evaluate("e => getComputedStyle(e).textDecorationStyle")
        pg.get_by_text("how to read this").click()
        pg.wait_for_selector("#wb-how-to-read:has-text('corner triangle')")
        pg.get_by_text("how to read this").click()
        ASSETS.mkdir(parents=True, exist_ok=True)
        pg.screenshot(path=str(ASSETS / f"explore-{scheme}.png"), full_page=True)
        assert pg.outside == []
    finally:
        pg.close()


def test_untrusted_text_stays_text_and_nothing_leaves_the_page(browser, env):  # noqa: F811
    url, ctx, home = env
    from gradio_client import Client

    name = '<img src="http://evil.example/name.png"><b>bold</b>![n](http://evil.example/n.png)'
    Client(url, verbose=False).predict(name, "all", "demo", "demo/forget01", api_name="/mask_set_create")
    pg = new_page(browser, url)
    try:
        fill(pg, "top-data", str(home / "evil-data" / "forget01"))
        pg.wait_for_selector("#explore-question:has-text('evil.example')")
        assert "<script>" in pg.inner_text("#explore-question") and "![img]" in pg.inner_text("#explore-question")
        open_tab(pg, "Edit")
        pg.wait_for_selector("#edit-status:has-text('evil.example')")
        assert "<b>bold</b>" in pg.inner_text("#edit-status")
        fill(pg, "edit-new-name", name)  # the same name again: refused, the name in the status and a toast
        pg.click("#edit-create")
        pg.wait_for_selector("#edit-set-status:has-text('already exists')")
        assert "<img" in pg.inner_text("#edit-set-status")
        assert pg.locator("img[src*='evil'], #edit-status b, #edit-set-status b:has-text('bold')").count() == 0
        assert pg.evaluate("() => window.__pwned === undefined")
        assert pg.outside == [], pg.outside
    finally:
        pg.close()
        ctx.store.delete_mask_set(name)


def test_messages_stay_and_shortcuts_work(browser, env):  # noqa: F811
    url, ctx, _ = env
    pg = new_page(browser, url)
    try:
        pg.wait_for_selector("#explore-chips .tv-chip")
        fill(pg, "explore-search", "Porto")
        pg.wait_for_selector("#explore-search-status:has-text('match 1 of')")
        pg.wait_for_selector("#explore-status:has-text('selectors on')")  # the view re-rendered ...
        assert "match 1 of" in pg.inner_text("#explore-search-status")  # ... and the search message stayed
        pg.click("#explore-next")
        pg.wait_for_selector("#explore-search-status:has-text('match 2 of')")
        pg.locator("#explore-search textarea, #explore-search input").first.fill("")
        pg.locator("body").click(position={"x": 5, "y": 5})
        before = pg.input_value("#explore-index input")
        pg.keyboard.press("ArrowRight")
        pg.wait_for_function(f"() => document.querySelector('#explore-index input').value !== '{before}'")
        # Edit: Ctrl+Z undoes a click; next from the last sample wraps to the first
        open_tab(pg, "Edit")
        fill(pg, "edit-new-name", "keys")
        pg.click("#edit-create")
        pg.wait_for_selector("#edit-set-status:has-text('created')")
        chip = "#edit-chips .tv-chip[data-idx='0']"
        pg.wait_for_selector(chip)
        was = pg.get_attribute(chip, "data-target")
        pg.click(chip)
        pg.wait_for_selector(f"{chip}[data-target='{'0' if was == '1' else '1'}']")
        pg.locator("#edit-count-box").click()
        pg.keyboard.press("Control+z")
        pg.wait_for_selector(f"{chip}[data-target='{was}']")
        assert "created" in pg.inner_text("#edit-set-status")  # the edit did not overwrite it
        fill(pg, "edit-index", "99")
        pg.wait_for_selector("#edit-question:has-text('Sample 99 of 100')")
        pg.click("#edit-next")
        pg.wait_for_selector("#edit-question:has-text('Sample 0 of 100')")
    finally:
        pg.close()
