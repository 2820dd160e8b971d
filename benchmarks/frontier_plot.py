"""Frontier plots of the claim test (benchmarks/claim_test.py): every evaluated (run, epoch) as a
point, fact leak rate (x, lower is better) against kept-words recall and against model utility (y,
higher is better), one colour per method, and each method's Pareto frontier (the points no other
point of the method beats on both axes) as a line. Pure SVG, no plotting package.

    python benchmarks/frontier_plot.py RUNS.jsonl OUT.svg [--title TEXT] [--mu-floor-fraction 0.9]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f"]
W, H, PAD = 360, 300, 48


def frontier(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Points not dominated (lower x and higher y both at least as good, one strictly), by x."""
    keep = [p for p in points if not any(q[0] <= p[0] and q[1] >= p[1] and q != p for q in points)]
    return sorted(set(keep))


def panel(x0: int, series: dict[str, list[tuple[float, float]]], ylabel: str, colours: dict[str, str],
          ref: tuple[float, float] | None, floor: float | None) -> list[str]:
    ys = [y for pts in series.values() for _, y in pts] + ([ref[1]] if ref else [])
    lo, hi = min(ys + [floor or 1.0]), max(ys)
    lo, hi = max(0.0, lo - 0.05), min(1.05, hi + 0.05) if hi <= 1.0 else hi + 0.05
    sx = lambda x: x0 + PAD + x * (W - PAD - 10)  # noqa: E731  leak rate in [0, 1]
    sy = lambda y: 20 + (hi - y) / (hi - lo or 1) * (H - PAD - 20)  # noqa: E731
    out = [f'<rect x="{x0 + PAD}" y="20" width="{W - PAD - 10}" height="{H - PAD - 20}" fill="none" stroke="#999"/>']
    for t in (0, 0.25, 0.5, 0.75, 1.0):
        out.append(f'<text x="{sx(t):.1f}" y="{H - PAD + 14}" font-size="10" text-anchor="middle">{t:g}</text>')
    for k in range(5):
        v = lo + (hi - lo) * k / 4
        out.append(f'<text x="{x0 + PAD - 4}" y="{sy(v) + 3:.1f}" font-size="10" text-anchor="end">{v:.2f}</text>')
    out.append(f'<text x="{x0 + PAD + (W - PAD) / 2:.0f}" y="{H - 8}" font-size="11" text-anchor="middle">'
               f'fact leak rate (lower is better)</text>')
    out.append(f'<text x="{x0 + 12}" y="{(H - PAD) / 2 + 20:.0f}" font-size="11" text-anchor="middle" '
               f'transform="rotate(-90 {x0 + 12} {(H - PAD) / 2 + 20:.0f})">{ylabel}</text>')
    if floor is not None:
        out.append(f'<line x1="{sx(0):.1f}" x2="{sx(1):.1f}" y1="{sy(floor):.1f}" y2="{sy(floor):.1f}" '
                   f'stroke="#bbb" stroke-dasharray="4 3"><title>MU floor {floor:.3f}</title></line>')
    for name, pts in series.items():
        c = colours[name]
        for x, y in pts:
            out.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="2.5" fill="{c}" fill-opacity="0.45">'
                       f'<title>{name}: leak {x:.3f}, {ylabel} {y:.3f}</title></circle>')
        f = frontier(pts)
        if len(f) > 1:
            d = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in f)
            out.append(f'<polyline points="{d}" fill="none" stroke="{c}" stroke-width="1.8"/>')
    if ref:
        out.append(f'<path d="M{sx(ref[0]) - 5:.1f},{sy(ref[1]):.1f} l5,-5 l5,5 l-5,5 z" fill="black">'
                   f'<title>target model: leak {ref[0]:.3f}, {ylabel} {ref[1]:.3f}</title></path>')
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs")
    ap.add_argument("out")
    ap.add_argument("--title", default="")
    ap.add_argument("--mu-floor-fraction", type=float, default=0.9)
    ap.add_argument("--match", default=None, help="only runs whose cache key contains this text (e.g. the model)")
    args = ap.parse_args(argv)
    rows = [json.loads(line) for line in Path(args.runs).read_text().splitlines() if line.strip()]
    if args.match:
        rows = [r for r in rows if args.match in r["key"]]
    if not rows:
        raise SystemExit(f"no runs in {args.runs}" + (f" matching {args.match!r}" if args.match else ""))
    kept, mu = {}, {}
    target = rows[0]["history"][0]
    for r in rows:
        label = json.loads(r["key"])[0]
        for m in r["history"][1:]:
            if m.get("fact_leak_rate") is None:
                continue
            if m.get("kept_words_recall") is not None:
                kept.setdefault(label, []).append((m["fact_leak_rate"], m["kept_words_recall"]))
            if m.get("model_utility") is not None:
                mu.setdefault(label, []).append((m["fact_leak_rate"], m["model_utility"]))
    names = list(dict.fromkeys(list(kept) + list(mu)))
    colours = {n: COLOURS[i % len(COLOURS)] for i, n in enumerate(names)}
    floor = args.mu_floor_fraction * target["model_utility"] if target.get("model_utility") else None
    legend_h = 18 * len(names) + 10
    svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{2 * W}" height="{H + legend_h + 24}" '
           f'font-family="sans-serif"><rect width="100%" height="100%" fill="white"/>',
           f'<text x="{W}" y="14" font-size="13" text-anchor="middle">{args.title}</text>']
    svg += panel(0, kept, "kept-words recall", colours,
                 (target.get("fact_leak_rate") or 0, target.get("kept_words_recall") or 0), None)
    svg += panel(W, mu, "model utility", colours,
                 (target.get("fact_leak_rate") or 0, target.get("model_utility") or 0), floor)
    for i, n in enumerate(names):
        y = H + 14 + 18 * i
        svg.append(f'<circle cx="{PAD + 6}" cy="{y}" r="5" fill="{colours[n]}"/>'
                   f'<text x="{PAD + 16}" y="{y + 4}" font-size="11">{n}</text>')
    svg.append(f'<text x="{W + PAD}" y="{H + 54}" font-size="11">dots: every evaluated epoch of every run</text>'
               f'<text x="{W + PAD}" y="{H + 72}" font-size="11">lines: each method\'s frontier</text>')
    svg.append(f'<path d="M{W + PAD},{H + 9} l5,-5 l5,5 l-5,5 z" fill="black"/><text x="{W + PAD + 16}" '
               f'y="{H + 18}" font-size="11">target model (step 0)</text>')
    if floor is not None:
        svg.append(f'<line x1="{W + PAD}" x2="{W + PAD + 12}" y1="{H + 32}" y2="{H + 32}" stroke="#bbb" '
                   f'stroke-dasharray="4 3"/><text x="{W + PAD + 16}" y="{H + 36}" font-size="11">MU floor '
                   f'({args.mu_floor_fraction:g} × target)</text>')
    svg.append("</svg>")
    Path(args.out).write_text("\n".join(svg) + "\n")
    print(f"{args.out}: {len(rows)} runs, {sum(len(v) for v in kept.values())} points")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
