"""Server-side render time of the Explore view: one sample × every registered selector.

    python benchmarks/ui_render.py [--samples 32] [--data demo]

Cold = the first view of a chunk (selectors run on the model); warm = scores cached, i.e. what
the app does on every slider move or revisit: cache lookups, mask rule, chips HTML (target
≤ 100 ms on the built-in model). Prints timings; not a test.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

# the repo root instead of benchmarks/ (whose selectors.py would shadow the stdlib module)
sys.path[0] = str(Path(__file__).resolve().parent.parent)
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from engine.selectors import SELECTORS  # noqa: E402  (after the sys.path fix above)
from ui.context import AppContext  # noqa: E402
from ui.explore_tab import ExploreHandlers  # noqa: E402
from benchmarks.harness import isolated_home  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="demo")
    ap.add_argument("--data", default="demo")
    ap.add_argument("--samples", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()

    with isolated_home(tempfile.mkdtemp(prefix="ui-render-")) as home:
        ctx = AppContext.create(home / "store.sqlite", device="cpu")
        h = ExploreHandlers(ctx)
        n = min(args.samples, len(ctx.explore.samples(args.data, "forget")))
        cold = []
        for i in range(n):
            t = time.perf_counter()
            out = h.render(args.model, args.data, "forget", i, "default", 5, 0.5)
            cold.append(time.perf_counter() - t)
            assert "Problem" not in out[2], out[2]
        warm = {rule: [] for rule in ("default", "top-k", "threshold")}
        for _ in range(args.repeats):
            for rule in warm:
                for i in range(n):
                    t = time.perf_counter()
                    h.render(args.model, args.data, "forget", i, rule, 5, 0.5)
                    warm[rule].append(time.perf_counter() - t)
        ms = lambda xs: 1000 * xs  # noqa: E731
        print(f"model {args.model}, data {args.data}: {n} samples x {len(SELECTORS)} selectors "
              f"({', '.join(SELECTORS)}), chunk {ctx.explore.chunk_size}")
        chunk_firsts = cold[::ctx.explore.chunk_size]
        print(f"cold (first sample of each chunk, selectors run): mean {ms(statistics.mean(chunk_firsts)):.0f} ms, "
              f"max {ms(max(chunk_firsts)):.0f} ms")
        for rule, xs in warm.items():
            xs = sorted(xs)
            p95 = xs[int(0.95 * (len(xs) - 1))]
            print(f"warm, mask rule {rule:9s}: median {ms(statistics.median(xs)):.1f} ms, p95 {ms(p95):.1f} ms, "
                  f"max {ms(xs[-1]):.1f} ms  ({len(xs)} renders)")


if __name__ == "__main__":
    main()
