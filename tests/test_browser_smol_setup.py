"""The model bar's "set up SmolLM2" button in a real browser: a local (tiny, test-written) GGUF path
typed in, the button clicked, the status line reports the setup done, and the model list offers
`smollm2` (tests/test_smollm2_app.py covers the same through gradio_client, and the refusals)."""
from __future__ import annotations

import hashlib
import sys

import pytest

from test_browser import browser, shot  # noqa: F401  (fixtures, screenshots)
from test_browser import WAIT, pytestmark  # noqa: F401  (skipped without chromium)

pytest.importorskip("gguf")

from test_smollm2_app import CHILD  # noqa: E402
from test_smollm2_setup import write_tiny_gguf  # noqa: E402


@pytest.fixture(scope="module")
def url_and_gguf(tmp_path_factory):
    import app
    from benchmarks.harness import isolated_home, serve

    gguf = tmp_path_factory.mktemp("gguf") / "tiny.gguf"
    write_tiny_gguf(gguf)
    sha = hashlib.sha256(gguf.read_bytes()).hexdigest()
    with isolated_home(tmp_path_factory.mktemp("home")) as home:
        demo = app.build_demo(home / "store.sqlite")
        demo.wb_smol_setup.command = (sys.executable, "-c", CHILD, sha, "setup", "--model", "smollm2",
                                      "--progress-lines")
        with serve(demo) as u:
            yield u, gguf


def test_set_up_smollm2_from_the_model_bar(browser, url_and_gguf):  # noqa: F811
    from playwright.sync_api import expect

    url, gguf = url_and_gguf
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(WAIT)
    try:
        page.goto(url)
        page.locator("#top-model input").click()
        expect(page.get_by_role("option", name="demo-retain", exact=True)).to_be_visible()
        assert page.get_by_role("option", name="smollm2", exact=True).count() == 0
        page.keyboard.press("Escape")
        page.get_by_text("Set up SmolLM2-135M-Instruct").click()  # the panel starts closed
        box = page.locator("#smol-gguf textarea, #smol-gguf input").first
        box.fill(str(gguf))
        page.locator("#smol-setup").click()
        expect(page.locator("#smol-status")).to_contain_text("is set up", timeout=WAIT)
        shot(page, "smollm2-setup.png")
        page.locator("#top-model input").click()
        expect(page.get_by_role("option", name="smollm2", exact=True)).to_be_visible()
    finally:
        page.close()
