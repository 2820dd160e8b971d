"""A sequential, colour-blind-safe colour map for per-token scores, text contrast, and a legend.

The map is ColorBrewer's single-hue "Blues" ramp (9 classes) with its lightest stop replaced by
pure white: low scores are white, high scores saturated dark blue. A single-hue ramp varies
monotonically in lightness, so it reads the same under every colour-vision deficiency and in
greyscale. Colours are interpolated linearly in sRGB between the 9 evenly spaced stops.
"""
from __future__ import annotations

import html
import math
from functools import lru_cache

BLUES = ("#ffffff", "#deebf7", "#c6dbef", "#9ecae1", "#6baed6", "#4292c6", "#2171b5", "#08519c", "#08306b")
NAN_COLOR = "#d9d9d9"  # scores that are not a number: neutral grey, never on the ramp
DARK_TEXT = "#000000"
LIGHT_TEXT = "#ffffff"


@lru_cache(maxsize=None)
def hex_to_rgb(color: str) -> tuple[int, int, int]:
    """'#rrggbb' -> (r, g, b) in 0..255."""
    c = color.lstrip("#")
    if len(c) != 6:
        raise ValueError(f"expected a colour '#rrggbb', got {color!r}")
    return int(c[0:2], 16), int(c[2:4], 16), int(c[4:6], 16)


def rgb_to_hex(rgb: tuple[float, float, float]) -> str:
    return "#" + "".join(f"{max(0, min(255, int(v + 0.5))):02x}" for v in rgb)  # half up


def normalise(value: float, vmin: float, vmax: float) -> float:
    """Position of `value` on [vmin, vmax] clipped to [0, 1]; 0.5 when the range is empty (vmax <= vmin)."""
    if vmax <= vmin:
        return 0.5
    return min(1.0, max(0.0, (value - vmin) / (vmax - vmin)))


@lru_cache(maxsize=4096)
def ramp_color(t: float) -> str:
    """Colour at position t in [0, 1] of the white -> dark blue ramp."""
    t = min(1.0, max(0.0, t))
    x = t * (len(BLUES) - 1)
    i = min(int(x), len(BLUES) - 2)
    f = x - i
    lo, hi = hex_to_rgb(BLUES[i]), hex_to_rgb(BLUES[i + 1])
    return rgb_to_hex(tuple(a + (b - a) * f for a, b in zip(lo, hi)))


def score_to_color(value: float, vmin: float, vmax: float) -> str:
    """Background hex colour for a score; NaN gives NAN_COLOR, ±inf clips to the ramp's ends."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return NAN_COLOR
    return ramp_color(round(normalise(float(value), vmin, vmax), 4))


def relative_luminance(color: str) -> float:
    """WCAG 2 relative luminance of '#rrggbb', in [0, 1]."""
    def lin(c: int) -> float:
        s = c / 255
        return s / 12.92 if s <= 0.04045 else ((s + 0.055) / 1.055) ** 2.4
    r, g, b = hex_to_rgb(color)
    return 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b)


@lru_cache(maxsize=4096)
def text_color(background: str) -> str:
    """Black or white, whichever has the higher WCAG contrast ratio against `background`."""
    lum = relative_luminance(background)
    contrast_black = (lum + 0.05) / 0.05
    contrast_white = 1.05 / (lum + 0.05)
    return DARK_TEXT if contrast_black >= contrast_white else LIGHT_TEXT


MARK_LIGHT = "#111111"  # target outline on a light page (18:1 against white)
MARK_DARK = "#ffd23f"  # target outline on a dark page (13:1 against Gradio's dark background)
SCALES = ("rank", "raw")  # colour by rank within the row (default in the app) or by raw score


def contrast_ratio(a: str, b: str) -> float:
    """WCAG 2 contrast ratio (L1 + 0.05) / (L2 + 0.05) of two '#rrggbb' colours, L1 the lighter."""
    la, lb = relative_luminance(a), relative_luminance(b)
    return (max(la, lb) + 0.05) / (min(la, lb) + 0.05)


def dense_ranks(scores: list[float]) -> list[float] | None:
    """Each score's rank among the row's distinct finite values, scaled to [0, 1]
    (lowest 0, highest 1, equal scores equal ranks); NaN stays NaN. None when the row has fewer
    than two distinct finite values (nothing to rank: draw it on the raw scale)."""
    finite = sorted({float(s) for s in scores if s is not None and math.isfinite(s)})
    if len(finite) < 2:
        return None
    pos = {v: i / (len(finite) - 1) for i, v in enumerate(finite)}
    out = []
    for s in scores:
        if s is None or (isinstance(s, float) and math.isnan(s)):
            out.append(float("nan"))
        elif math.isinf(s):
            out.append(1.0 if s > 0 else 0.0)
        else:
            out.append(pos[float(s)])
    return out


def _fmt(x: float) -> str:
    return f"{x:.3g}"


def legend_html(vmin: float, vmax: float, label: str = "", scale: str = "raw") -> str:
    """A small horizontal gradient bar with the min and max values at its ends and an optional label.

    scale "rank": the bar's ends read "lowest" and "highest" (colour = rank within the row) and
    the raw min–max follows in brackets; "raw": the ends are the raw min and max."""
    gradient = ", ".join(BLUES)
    esc = html.escape
    name = f'<span class="tv-legend-label">{esc(label)}</span>' if label else ""
    bar = (f'<span class="tv-legend-bar" style="display:inline-block;width:96px;height:10px;'
           f'border:1px solid #999;background:linear-gradient(to right, {gradient})"></span>')
    if scale == "rank":
        body = (f'{name}<span class="tv-legend-min">lowest</span>{bar}<span class="tv-legend-max">highest</span>'
                f'<span class="tv-legend-raw">(rank in this row; raw {esc(_fmt(vmin))} – {esc(_fmt(vmax))})</span>')
    else:
        body = (f'{name}<span class="tv-legend-min">{esc(_fmt(vmin))}</span>{bar}'
                f'<span class="tv-legend-max">{esc(_fmt(vmax))}</span>')
    return (f'<div class="tv-legend" data-scale="{esc(scale)}" '
            f'style="display:inline-flex;align-items:center;gap:4px;font-size:11px">{body}</div>')


# ---------------------------------------------------------------- diverging map (Δ log-prob)

# ColorBrewer's PuOr (9 classes), colour-blind safe: orange = negative, white = 0, purple = positive
PUOR = ("#b35806", "#e08214", "#fdb863", "#fee0b6", "#f7f7f7", "#d8daeb", "#b2abd2", "#8073ac", "#542788")


def diverging_color(value: float, vmax: float) -> str:
    """Colour of `value` on the symmetric range [−vmax, vmax] of PuOr (0 is the middle, near white);
    NaN gives NAN_COLOR; vmax <= 0 gives the middle."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return NAN_COLOR
    t = 0.5 if vmax <= 0 else 0.5 + 0.5 * max(-1.0, min(1.0, float(value) / vmax))
    x = t * (len(PUOR) - 1)
    i = min(int(x), len(PUOR) - 2)
    f = x - i
    lo, hi = hex_to_rgb(PUOR[i]), hex_to_rgb(PUOR[i + 1])
    return rgb_to_hex(tuple(a + (b - a) * f for a, b in zip(lo, hi)))


def symmetric_range(values: list[float]) -> float:
    """max |value| over the finite values (the diverging map's vmax); 1.0 when there are none or all are 0."""
    finite = [abs(float(v)) for v in values if v is not None and math.isfinite(v)]
    m = max(finite) if finite else 0.0
    return m if m > 0 else 1.0


def diverging_legend_html(vmax: float, label: str = "", low: str = "", high: str = "") -> str:
    """A PuOr bar from −vmax to +vmax with a label and what each end means."""
    esc = html.escape
    name = f'<span class="tv-legend-label">{esc(label)}</span>' if label else ""
    bar = (f'<span class="tv-legend-bar" style="display:inline-block;width:96px;height:10px;'
           f'border:1px solid #999;background:linear-gradient(to right, {", ".join(PUOR)})"></span>')
    lo = f"−{_fmt(vmax)}" + (f" ({esc(low)})" if low else "")
    hi = f"+{_fmt(vmax)}" + (f" ({esc(high)})" if high else "")
    return (f'<div class="tv-legend" data-scale="diverging" style="display:inline-flex;align-items:center;gap:4px;'
            f'font-size:11px">{name}<span class="tv-legend-min">{lo}</span>{bar}<span class="tv-legend-max">{hi}</span></div>')
