"""README screenshots of Explore's Δ log-prob row and side-by-side table (headless system chromium).

    python benchmarks/screenshots.py [--out assets] [--other demo-retain] [--index 0]

Launches the app in an isolated workbench home on a free port, opens Explore on the built-in model,
chooses the second model (`--other`: the retain model by default, or e.g. "run 1:final"), waits for
the Δ row and the aligned table, and writes delta-row.png and side-by-side.png.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

sys.path[0] = str(Path(__file__).resolve().parent.parent)  # the repo root

CHROMIUM = "/usr/bin/chromium"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="assets")
    ap.add_argument("--other", default="demo-retain")
    ap.add_argument("--index", type=int, default=0)
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    import app
    from benchmarks.harness import isolated_home, serve
    from playwright.sync_api import sync_playwright

    with isolated_home(tempfile.mkdtemp(prefix="shots-")) as home, serve(app.build_demo(home / "store.sqlite")) as url, \
            sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium"),
                              args=["--headless", "--no-sandbox", "--disable-gpu"])
        pg = b.new_page(viewport={"width": 1400, "height": 1000})
        pg.set_default_timeout(120_000)
        pg.goto(url)
        pg.wait_for_selector("#explore-chips .tv-chip")
        if args.index:
            box = pg.locator("#explore-index input").first
            box.fill(str(args.index))
            box.press("Enter")
            pg.wait_for_selector(f"#explore-question:has-text('Sample {args.index} of')")
        box = pg.locator("#explore-other input").first
        box.fill(args.other)
        box.press("Enter")
        box.blur()
        pg.wait_for_selector("#explore-chips .wb-extra[data-extra='delta'] .tv-chip")
        pg.wait_for_selector("#explore-chips .wb-side-by-side table.tv-aligned")
        pg.locator("#explore-chips .wb-extra-rows").screenshot(path=str(out / "delta-row.png"))
        pg.locator("#explore-chips .wb-side-by-side").screenshot(path=str(out / "side-by-side.png"))
        b.close()
    print(f"wrote {out / 'delta-row.png'} and {out / 'side-by-side.png'}")


if __name__ == "__main__":
    main()
