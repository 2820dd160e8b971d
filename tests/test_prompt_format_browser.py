"""The model bar's prompt format in a real browser: shown, changed, refused when the model cannot
render it, and remembered across a page reload (engine.store.prompt_formats)."""
from __future__ import annotations

from test_browser import browser, page, shot, url  # noqa: F401  (fixtures, screenshots)
from test_browser import WAIT, pytestmark  # noqa: F401  (skipped without chromium)


def pick(page, value: str) -> None:  # noqa: F811
    """Open the model bar's prompt-format picker and click the option named exactly `value`."""
    page.locator("#top-prompt-choice input").click()
    page.get_by_role("option", name=value, exact=True).click()


def test_prompt_format_is_shown_changed_and_remembered(page):  # noqa: F811
    from playwright.sync_api import expect

    line = page.locator("#top-prompt-format")
    expect(line).to_contain_text("prompt format: plain:", timeout=WAIT)  # the built-in model's own format
    pick(page, "base")
    expect(line).to_contain_text("prompt format: base:", timeout=WAIT)
    shot(page, "prompt-format.png")
    pick(page, "qwen2.5")  # a chat format for a model without a chat template
    expect(line).to_contain_text("not changed", timeout=WAIT)
    page.reload()
    expect(page.locator("#top-prompt-format")).to_contain_text("prompt format: base:", timeout=WAIT)
    expect(page.locator("#top-prompt-choice input")).to_have_value("base", timeout=WAIT)
    pick(page, "model's own")
    expect(page.locator("#top-prompt-format")).to_contain_text("prompt format: plain:", timeout=WAIT)
