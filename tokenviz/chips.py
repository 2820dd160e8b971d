"""Tokens as coloured chips: background = score (or its rank in the row), target = thick outline plus a
corner triangle, ground-truth span = dotted underline.

Marks never rely on colour alone: the target's outline is `--wb-mark` (near-black on a light page,
yellow on a dark one: ≥ 3:1 against the page either way, WCAG 1.4.11) and its corner triangle and
the span's dotted underline are drawn in the chip's own text colour (black or white, whichever
contrasts more with the chip's background: ≥ 4.5:1 on every colour of the ramp).

Pure string work (no torch, no Gradio): `render_chips` for one selector row, `render_rows` for
several rows one under another. `display_token` turns a raw tokenizer piece (byte-level BPE or
SentencePiece) into the text a person should see; `display_tokens` does a row, EOS included.
"""
from __future__ import annotations

import html
import math
import re
from functools import lru_cache

from .colors import MARK_DARK, MARK_LIGHT, dense_ranks, legend_html, normalise, score_to_color, text_color

EOS_DISPLAY = "⟨eos⟩"
CUT_DISPLAY = "✂ cut here"  # the last chip of an answer cut to fit the model's context (in place of ⟨eos⟩)
SPACE_MARK = "␣"  # a token that is only spaces (else an empty-looking chip)
NEWLINE_MARK = "⏎"
TAB_MARK = "⇥"
_SP_BYTE = re.compile(r"<0x([0-9A-Fa-f]{2})>")

CHIPS_CSS = f"""
:root {{ --wb-mark: {MARK_LIGHT}; }}
.dark {{ --wb-mark: {MARK_DARK}; }}
.tv-rows {{ display: flex; flex-direction: column; gap: 6px; }}
.tv-row {{ display: flex; align-items: flex-start; gap: 8px; }}
.tv-row-label {{ flex: 0 0 9em; font-weight: 600; font-size: 12px; padding-top: 4px; overflow-wrap: anywhere; }}
.tv-row-label[title] {{ cursor: help; text-decoration: underline dotted; }}
.tv-row-body {{ flex: 1 1 auto; min-width: 0; }}
.tv-chips {{ line-height: 2.1; font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 13px; }}
.tv-chip {{ display: inline-block; position: relative; white-space: pre; margin: 2px 4px; padding: 0 2px;
           border-radius: 3px; border: 1px solid #ccc; }}
.tv-chip.tv-target {{ outline: 3px solid var(--wb-mark); outline-offset: 1px; }}
.tv-chip.tv-target::before {{ content: ""; position: absolute; top: 0; left: 0; width: 0; height: 0;
           border-top: 7px solid currentColor; border-right: 7px solid transparent; }}
.tv-chip.tv-span {{ text-decoration: underline dotted currentColor 2px; text-underline-offset: 3px; }}
.tv-editable .tv-chip {{ cursor: pointer; user-select: none; }}
.tv-editable .tv-chip:hover {{ filter: brightness(0.92); }}
.tv-legend {{ margin-top: 2px; }}
.tv-chip.tv-cut {{ border: 2px dashed #d62728; font-style: italic; }}
"""


@lru_cache(maxsize=1)
def _byte_decoder() -> dict[str, int]:
    """The inverse of GPT-2's bytes_to_unicode: printable stand-in character -> byte."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    chars, n = {}, 0
    for b in range(256):
        if b in keep:
            chars[chr(b)] = b
        else:
            chars[chr(256 + n)] = b
            n += 1
    return chars


def decode_token(raw: str, byte_level: bool | None = None) -> str:
    """The real text of a raw token piece: GPT-2 byte-level BPE ('Ġ' space, 'Ċ' newline, UTF-8 bytes),
    SentencePiece ('▁' space, '<0x0A>' bytes), or already plain text (returned unchanged).

    byte_level: True for a byte-level BPE tokenizer (a piece of a multi-byte character shows as
    '�'), False for SentencePiece or plain text (no byte decoding), None to guess per token (a
    lone piece such as 'Ã' is then ambiguous and shown as is).
    """
    if _SP_BYTE.search(raw):
        return _SP_BYTE.sub(lambda m: chr(int(m.group(1), 16)), raw.replace("▁", " "))
    table = _byte_decoder()
    if byte_level is not False and all(ch in table for ch in raw):
        data = bytes(table[ch] for ch in raw)
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            if byte_level or any(ord(ch) >= 256 for ch in raw):  # surely byte-level: part of a character
                return data.decode("utf-8", errors="replace")
    return raw.replace("▁", " ")


def display_token(raw: str, byte_level: bool | None = None) -> str:
    """What a chip shows for a raw token: spaces kept, newline as '⏎', tab as '⇥', a token of spaces
    only as '␣' per space (see decode_token).

    For exact text per token, slice the original string with the tokenizer's offsets and pass
    the slice here: plain text only gets its newlines and tabs made visible.

    >>> display_token("Ġthe"), display_token("Ċ")
    (' the', '⏎')
    """
    text = decode_token(raw, byte_level)
    if text and not text.strip(" "):  # a token of spaces only: one visible mark per space
        return SPACE_MARK * len(text)
    return text.replace("\r\n", NEWLINE_MARK).replace("\n", NEWLINE_MARK).replace("\t", TAB_MARK)


def display_tokens(tokens: list[str], eos: list[bool] | None = None, byte_level: bool | None = None,
                   cut: bool = False) -> list[str]:
    """Display strings for a row of raw tokens: each through `display_token`, the closing EOS
    (eos[i] True) as ⟨eos⟩, or as CUT_DISPLAY when `cut` (the answer was cut to fit the context:
    the model sees an EOS there, the data goes on)."""
    eos = eos if eos is not None else [False] * len(tokens)
    end = CUT_DISPLAY if cut else EOS_DISPLAY
    return [end if e else display_token(t, byte_level) for t, e in zip(tokens, eos)]


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.4g}"


def auto_range(scores: list[float]) -> tuple[float, float]:
    """Colour range of a row: [0, 1] when every finite score lies in it (binary masks, probabilities,
    weights: comparable across rows), else the row's own min and max."""
    finite = [float(s) for s in scores if s is not None and math.isfinite(s)]
    if not finite:
        return 0.0, 1.0
    lo, hi = min(finite), max(finite)
    if lo >= 0.0 and hi <= 1.0:
        return 0.0, 1.0
    return lo, hi


def _check_lengths(n: int, **seqs) -> None:
    for name, seq in seqs.items():
        if seq is not None and len(seq) != n:
            raise ValueError(f"{name} has {len(seq)} entries but there are {n} tokens")


def _title(token: str, score: float, prob: float | None, target: bool, in_span: bool | None) -> str:
    lines = [repr(token), f"score: {_fmt(score)}"]
    if prob is not None:
        lines.append(f"p: {_fmt(prob)}")
    lines.append("target" if target else "kept")
    if in_span is not None:
        lines.append("in fact span" if in_span else "outside fact spans")
    return "\n".join(lines)


def raw_range(scores: list[float]) -> tuple[float, float]:
    """The row's own finite min and max (what the legend shows in rank mode); (0, 0) when none."""
    finite = [float(s) for s in scores if s is not None and math.isfinite(s)]
    return (min(finite), max(finite)) if finite else (0.0, 0.0)


def render_chips(tokens: list[str], scores: list[float], mask: list[bool], probs: list[float] | None = None,
                 row_label: str = "", sample_id: str = "", editable: bool = False,
                 spans_mask: list[bool] | None = None, *, vmin: float | None = None,
                 vmax: float | None = None, scale: str = "raw") -> str:
    """HTML for one row of token chips (one `<span class="tv-chip" data-idx="i">` per token).

    tokens: display strings (see `display_token`); scores: one float per token, coloured on
    [vmin, vmax] (default `auto_range(scores)`); mask: targets, drawn as a dark outline (class
    `tv-target`); probs: optional, shown in the hover title; spans_mask: optional ground-truth
    span membership, drawn as an orange underline (class `tv-span`). The title shows the token's
    repr, its score to 4 significant digits and its probability. With `editable` the container
    gets class `tv-editable` (pointer cursor; the app wires the clicks by `data-idx`).
    scale "rank": colour = the score's rank among the row's distinct values (`dense_ranks`; a
    row with a single value falls back to the raw scale); the title still shows the raw score.
    """
    n = len(tokens)
    _check_lengths(n, scores=scores, mask=mask, probs=probs, spans_mask=spans_mask)
    lo, hi = auto_range(scores) if vmin is None or vmax is None else (vmin, vmax)
    ranks = dense_ranks(scores) if scale == "rank" else None
    colour_of = (lambda i: score_to_color(ranks[i], 0.0, 1.0)) if ranks is not None else \
        (lambda i: score_to_color(scores[i], lo, hi))
    esc = html.escape
    parts = []
    for i, tok in enumerate(tokens):
        score = scores[i]
        target = bool(mask[i])
        in_span = None if spans_mask is None else bool(spans_mask[i])
        bg = colour_of(i)
        cls = "tv-chip" + (" tv-target" if target else "") + (" tv-span" if in_span else "") + \
            (" tv-cut" if tok == CUT_DISPLAY else "")
        style = f"background:{bg};color:{text_color(bg)}"
        if target:  # also inline, so a page without CHIPS_CSS still shows the mask
            style += f";outline:3px solid var(--wb-mark, {MARK_LIGHT});outline-offset:1px"
        title = _title(tok, score, None if probs is None else probs[i], target, in_span)
        parts.append(f'<span class="{cls}" data-idx="{i}" data-target="{int(target)}" style="{style}" '
                     f'title="{esc(title)}">{esc(tok)}</span>')
    cls = "tv-chips tv-editable" if editable else "tv-chips"
    label = f' aria-label="{esc(row_label)}"' if row_label else ""
    return f'<div class="{cls}" data-sample="{esc(str(sample_id))}"{label}>{"".join(parts)}</div>'


def legend_for(scores: list[float], lo: float, hi: float, label: str, scale: str = "raw") -> str:
    """The legend of a row as `render_chips` coloured it: rank (with the raw min–max) or raw [lo, hi]."""
    if scale == "rank" and dense_ranks(scores) is not None:
        return legend_html(*raw_range(scores), label, "rank")
    return legend_html(lo, hi, label)


def render_rows(rows: list[dict]) -> str:
    """Several selector rows one under another: label on the left, chips, and one legend per row.

    Each row is a dict with the keyword arguments of `render_chips` (tokens, scores, mask and
    optionally probs, sample_id, editable, spans_mask, vmin, vmax, scale), a `label` (or
    `row_label`), an optional `legend_label` (default "score") and `label_title` (the row name's
    hover text).
    """
    out = []
    for k, row in enumerate(rows):
        missing = [key for key in ("tokens", "scores", "mask") if key not in row]
        if missing:
            raise ValueError(f"row {k} is missing {', '.join(missing)}")
        label = row.get("label", row.get("row_label", ""))
        lo, hi = (row["vmin"], row["vmax"]) if row.get("vmin") is not None and row.get("vmax") is not None \
            else auto_range(row["scores"])
        chips = render_chips(row["tokens"], row["scores"], row["mask"], probs=row.get("probs"), row_label=label,
                             sample_id=row.get("sample_id", ""), editable=row.get("editable", False),
                             spans_mask=row.get("spans_mask"), vmin=lo, vmax=hi, scale=row.get("scale", "raw"))
        legend = legend_for(row["scores"], lo, hi, row.get("legend_label", "score"), row.get("scale", "raw"))
        title = f' title="{html.escape(row["label_title"])}"' if row.get("label_title") else ""
        out.append(f'<div class="tv-row" data-row="{k}"><div class="tv-row-label"{title}>{html.escape(label)}</div>'
                   f'<div class="tv-row-body">{chips}{legend}</div></div>')
    return f'<div class="tv-rows">{"".join(out)}</div>'


# ---------------------------------------------------------------- Edit: fill = mask, score = a bar

MASK_FILL = "#08519c"  # a target's fill (white text, 7.6:1); the same on a light and a dark page
KEPT_FILL = "#ffffff"  # not a target (black text); its grey border keeps it visible on a dark page
SCORE_BAR = "#f28e2b"  # the selector score's bar: ≥ 3:1 against neither fill is needed, it is never the only cue

MASK_CHIPS_CSS = """
.tv-mask-chips .tv-chip { padding-bottom: 3px; }
.tv-mask-chips .tv-chip.tv-target { outline: none; }
.tv-scorebar { position: absolute; left: 0; bottom: 0; height: 3px; background: %s; border-radius: 0 0 0 3px;
               pointer-events: none; }
""" % SCORE_BAR


def render_mask_chips(tokens: list[str], mask: list[bool], scores: list[float] | None = None,
                      probs: list[float] | None = None, row_label: str = "", sample_id: str = "",
                      editable: bool = False, spans_mask: list[bool] | None = None, scale: str = "rank") -> str:
    """HTML for one row of chips whose FILL is the mask state (the Edit tab): a target is filled
    MASK_FILL with white text, a non-target KEPT_FILL with black text, in either theme. The
    selector's score is secondary: a bar along the chip's bottom edge whose width is the score's
    rank in the row (scale "rank") or its position on `auto_range` (scale "raw"), and the hover
    title. `data-fill` says "target" or "kept"; spans_mask draws the dotted underline as in
    `render_chips`. The corner triangle stays on targets (a cue that is not colour)."""
    n = len(tokens)
    _check_lengths(n, mask=mask, scores=scores, probs=probs, spans_mask=spans_mask)
    width = None
    if scores is not None:
        ranks = dense_ranks(scores) if scale == "rank" else None
        if ranks is None:
            lo, hi = auto_range(scores)
            ranks = [normalise(float(s), lo, hi) if s is not None and math.isfinite(s) else float("nan")
                     for s in scores]
        width = ranks
    esc = html.escape
    parts = []
    for i, tok in enumerate(tokens):
        target = bool(mask[i])
        in_span = None if spans_mask is None else bool(spans_mask[i])
        fill = MASK_FILL if target else KEPT_FILL
        cls = "tv-chip" + (" tv-target" if target else "") + (" tv-span" if in_span else "") + \
            (" tv-cut" if tok == CUT_DISPLAY else "")
        style = f"background:{fill};color:{text_color(fill)};border-color:#888"
        bar = ""
        if width is not None and not math.isnan(width[i]):
            bar = f'<span class="tv-scorebar" style="width:{100 * width[i]:.0f}%"></span>'
        title = _title(tok, scores[i] if scores is not None else float("nan"),
                       None if probs is None else probs[i], target, in_span)
        parts.append(f'<span class="{cls}" data-idx="{i}" data-target="{int(target)}" '
                     f'data-fill="{"target" if target else "kept"}" style="{style}" '
                     f'title="{esc(title)}">{esc(tok)}{bar}</span>')
    cls = "tv-chips tv-mask-chips tv-editable" if editable else "tv-chips tv-mask-chips"
    label = f' aria-label="{esc(row_label)}"' if row_label else ""
    return f'<div class="{cls}" data-sample="{esc(str(sample_id))}"{label}>{"".join(parts)}</div>'


def mask_legend_html(score_label: str | None) -> str:
    """The key of `render_mask_chips`: the two fills, and what the bar is."""
    chip = ('<span class="tv-chip" style="background:{};color:{};border-color:#888">{}</span>')
    bar = (f' · <span style="display:inline-block;width:24px;height:3px;background:{SCORE_BAR};vertical-align:middle">'
           f'</span> bar = {html.escape(score_label)} (its rank in the row; exact value on hover)' if score_label else "")
    return (f'<div class="tv-legend tv-mask-legend" style="font-size:11px">fill: '
            f'{chip.format(MASK_FILL, text_color(MASK_FILL), "target")} '
            f'{chip.format(KEPT_FILL, text_color(KEPT_FILL), "not a target")}{bar}</div>')

CHIPS_CSS += MASK_CHIPS_CSS  # one stylesheet for every chip row
