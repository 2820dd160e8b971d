"""Extra rows of a sample's view (Δ log-prob, agreement, p(token)), two models' rows aligned token by
token, word grouping of any rows, and the view exported as SVG and CSV. Pure string work.

A row is a dict: {"label", "values" (one float per token), "kind", optional "mask" (targets),
"title" (hover on the label), "vmax" (for kind "count")}. kind:
    "score"  a selector score: colour by rank in the row (scale "rank") or raw on `auto_range`
    "prob"   a probability on [0, 1] (Blues)
    "count"  a count on [0, vmax] (Blues), e.g. how many selectors mark a token
    "delta"  a signed difference on the diverging PuOr map, symmetric about 0 (Δ log-prob)
"""
from __future__ import annotations

import csv
import html
import io
import math
from typing import Sequence

from .chips import auto_range
from .colors import (NAN_COLOR, dense_ranks, diverging_color, diverging_legend_html, legend_html, score_to_color,
                     symmetric_range, text_color)
from .words import aggregate, any_per_word, join_words, word_ids

KINDS = ("score", "prob", "count", "delta")
ESC = html.escape


def _fmt(x) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.4g}"


def row_colors(row: dict, scale: str = "rank") -> list[str]:
    """One background colour per token of a row (see the module docstring for each kind)."""
    values, kind = row["values"], row.get("kind", "score")
    if kind not in KINDS:
        raise ValueError(f"unknown row kind {kind!r}: use one of {', '.join(KINDS)}")
    if kind == "delta":
        m = symmetric_range(values)
        return [diverging_color(v, m) for v in values]
    if kind == "prob":
        return [score_to_color(v, 0.0, 1.0) for v in values]
    if kind == "count":
        return [score_to_color(v, 0.0, float(row.get("vmax") or max([1.0] + [float(x) for x in values])))
                for v in values]
    ranks = dense_ranks(values) if scale == "rank" else None
    if ranks is not None:
        return [score_to_color(r, 0.0, 1.0) for r in ranks]
    lo, hi = auto_range(values)
    return [score_to_color(v, lo, hi) for v in values]


def row_legend(row: dict, scale: str = "rank") -> str:
    """The legend of a row as `row_colors` coloured it."""
    values, kind = row["values"], row.get("kind", "score")
    label = row.get("legend_label", row["label"])
    if kind == "delta":
        return diverging_legend_html(symmetric_range(values), label, row.get("low", ""), row.get("high", ""))
    if kind == "prob":
        return legend_html(0.0, 1.0, label)
    if kind == "count":
        return legend_html(0.0, float(row.get("vmax") or max([1.0] + [float(x) for x in values])), label)
    finite = [float(v) for v in values if v is not None and math.isfinite(v)]
    if scale == "rank" and dense_ranks(values) is not None:
        return legend_html(min(finite), max(finite), label, "rank")
    return legend_html(*auto_range(values), label)


def _chip(i: int, tok: str, value, colour: str, target: bool, label: str) -> str:
    cls = "tv-chip" + (" tv-target" if target else "")
    title = f"{tok!r}\n{label}: {_fmt(value)}" + ("\ntarget" if target else "")
    return (f'<span class="{cls}" data-idx="{i}" data-target="{int(target)}" data-value="{_fmt(value)}" '
            f'style="background:{colour};color:{text_color(colour)}" title="{ESC(title)}">{ESC(tok)}</span>')


def render_value_row(tokens: Sequence[str], row: dict, scale: str = "rank", row_key: str = "") -> str:
    """One labelled row of chips (flowing like the selector rows) with its legend."""
    if len(row["values"]) != len(tokens):
        raise ValueError(f"row {row['label']!r} has {len(row['values'])} values but there are {len(tokens)} tokens")
    colours = row_colors(row, scale)
    mask = row.get("mask") or [False] * len(tokens)
    chips = "".join(_chip(i, t, v, c, bool(m), row["label"])
                    for i, (t, v, c, m) in enumerate(zip(tokens, row["values"], colours, mask)))
    title = f' title="{ESC(row["title"])}"' if row.get("title") else ""
    return (f'<div class="tv-row" data-row="{ESC(row_key or row["label"])}" data-kind="{ESC(row.get("kind", "score"))}">'
            f'<div class="tv-row-label"{title}>{ESC(row["label"])}</div><div class="tv-row-body">'
            f'<div class="tv-chips">{chips}</div>{row_legend(row, scale)}</div></div>')


def render_aligned(tokens: Sequence[str], rows: Sequence[dict], scale: str = "rank") -> str:
    """Rows one under another in a table with one column per token, so token i of every row lines up
    (two models side by side); scrolls sideways when wide. Legends follow the table."""
    head = "".join(f'<th class="tv-al-tok" data-idx="{i}">{ESC(t)}</th>' for i, t in enumerate(tokens))
    body = []
    for k, row in enumerate(rows):
        if len(row["values"]) != len(tokens):
            raise ValueError(f"row {row['label']!r} has {len(row['values'])} values but there are {len(tokens)} tokens")
        colours = row_colors(row, scale)
        mask = row.get("mask") or [False] * len(tokens)
        cells = "".join(f'<td>{_chip(i, t, v, c, bool(m), row["label"])}</td>'
                        for i, (t, v, c, m) in enumerate(zip(tokens, row["values"], colours, mask)))
        body.append(f'<tr data-row="{k}" data-label="{ESC(row["label"])}"><th class="tv-al-label">{ESC(row["label"])}'
                    f'</th>{cells}</tr>')
    legends = "".join(f'<div>{ESC(r["label"])}: {row_legend(r, scale)}</div>' for r in rows)
    return (f'<div class="tv-aligned-wrap" style="overflow-x:auto"><table class="tv-aligned">'
            f'<thead><tr><th></th>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'
            f'<div class="tv-aligned-legends">{legends}</div>')


def group_words(tokens: Sequence[str], eos: Sequence[bool] | None, rows: Sequence[dict],
                how: str = "max") -> tuple[list[str], list[dict]]:
    """(one display string per word, the rows with one value per word): values aggregated by `how`
    (max or mean of the word's tokens), masks by any. The EOS / cut marker stays a word of its own."""
    ids = word_ids(tokens, eos)
    out = []
    for row in rows:
        new = dict(row, values=aggregate(ids, row["values"], how))
        if row.get("mask") is not None:
            new["mask"] = any_per_word(ids, row["mask"])
        if row.get("spans_mask") is not None:
            new["spans_mask"] = any_per_word(ids, row["spans_mask"])
        out.append(new)
    return join_words(ids, tokens), out


def view_csv(tokens: Sequence[str], rows: Sequence[dict]) -> str:
    """Per-token table as CSV: index, token, then one column per row (its values), and a
    '<label> target' column (0/1) for each row with a mask."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    header = ["index", "token"]
    for r in rows:
        header.append(r["label"])
        if r.get("mask") is not None:
            header.append(f"{r['label']} target")
    w.writerow(header)
    for i, t in enumerate(tokens):
        line = [i, t]
        for r in rows:
            v = r["values"][i]
            line.append("" if v is None or (isinstance(v, float) and math.isnan(v)) else repr(float(v)))
            if r.get("mask") is not None:
                line.append(int(bool(r["mask"][i])))
        w.writerow(line)
    return buf.getvalue()


def view_svg(tokens: Sequence[str], rows: Sequence[dict], title: str = "", scale: str = "rank",
             width: int = 1100, char_px: float = 7.8) -> str:
    """The view as a standalone SVG figure: the rows aligned token by token (as `render_aligned`),
    wrapped into blocks of `width` pixels; targets get a thick outline. Monospace text, so a token's
    cell is len(token) × char_px + 8 pixels wide."""
    label_w, cell_h, gap = 150, 22, 4
    widths = [max(18.0, len(t) * char_px + 8) for t in tokens]
    blocks, cur, x = [], [], 0.0
    for i, w in enumerate(widths):
        if cur and x + w > width - label_w:
            blocks.append(cur)
            cur, x = [], 0.0
        cur.append(i)
        x += w + 2
    if cur:
        blocks.append(cur)
    colours = [row_colors(r, scale) for r in rows]
    parts, y = [], 30 if title else 8
    if title:
        parts.append(f'<text x="8" y="20" font-size="14" font-weight="bold">{ESC(title)}</text>')
    for block in blocks:
        for r, row in enumerate(rows):
            parts.append(f'<text x="8" y="{y + 15}" font-size="12" font-weight="bold">{ESC(row["label"][:22])}</text>')
            x = float(label_w)
            mask = row.get("mask") or [False] * len(tokens)
            for i in block:
                c = colours[r][i]
                stroke = ' stroke="#111111" stroke-width="2.5"' if mask[i] else ' stroke="#bbbbbb" stroke-width="0.8"'
                parts.append(f'<rect x="{x:.1f}" y="{y}" width="{widths[i]:.1f}" height="{cell_h - 4}" rx="3" '
                             f'fill="{c}"{stroke}><title>{ESC(repr(tokens[i]))}: {_fmt(row["values"][i])}</title></rect>')
                parts.append(f'<text x="{x + 4:.1f}" y="{y + 13}" font-size="12" fill="{text_color(c) if c != NAN_COLOR else "#000000"}" '
                             f'xml:space="preserve">{ESC(tokens[i])}</text>')
                x += widths[i] + 2
            y += cell_h
        y += 10
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{y + 4}" '
            f'font-family="DejaVu Sans Mono, Menlo, monospace" style="background:#ffffff">'
            f'<rect width="100%" height="100%" fill="#ffffff"/>{"".join(parts)}</svg>')
