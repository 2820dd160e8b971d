"""Explore's extra views: agreement row, Δ log-prob row against another model, two models side by side,
word grouping, and the view's export (SVG + CSV files; PNG drawn from the SVG in the browser).

Wiring only: the numbers come from engine/explore/compare.py, the HTML/SVG/CSV from tokenviz/views.py.
`other` names the second model: a model name or directory, or a run's checkpoint as "run 3:final".
"""
from __future__ import annotations

import tempfile
from pathlib import Path

from engine.explore.compare import AGREEMENT_EXCLUDE, agreement, delta_logprob, other_info
from tokenviz.views import group_words, render_aligned, render_value_row, view_csv, view_svg

from . import render
from .context import message_of

GROUPS = {"tokens": None, "words (max)": "max", "words (mean)": "mean"}

EXPORT_PNG_JS = r"""
element.addEventListener('click', (e) => {
  const btn = e.target.closest ? e.target.closest('.wb-export-png') : null;
  if (!btn) return;
  const svg = element.querySelector('svg');
  if (!svg) return;
  const data = new XMLSerializer().serializeToString(svg);
  const img = new Image();
  img.onload = () => {
    const c = document.createElement('canvas');
    c.width = svg.width.baseVal.value * 2; c.height = svg.height.baseVal.value * 2;
    const g = c.getContext('2d'); g.scale(2, 2); g.drawImage(img, 0, 0);
    const a = document.createElement('a');
    a.download = btn.dataset.name || 'view.png'; a.href = c.toDataURL('image/png');
    document.body.appendChild(a); a.click(); a.remove();
  };
  img.src = 'data:image/svg+xml;charset=utf-8,' + encodeURIComponent(data);
});
"""  # the export panel's "download PNG" button: the SVG drawn on a canvas at 2x


def resolve_other(ctx, other: str | None) -> tuple[str, str] | None:
    """(model spec to load, label) for the second model; "run N:kind" names a run's checkpoint."""
    other = (other or "").strip()
    if not other:
        return None
    if other.startswith("run ") and ":" in other:
        run_id, kind = other[4:].split(":", 1)
        run = ctx.store.get_run(int(run_id))
        ck = run.checkpoints.get(kind.strip())
        if ck is None:
            raise ValueError(f"run {run_id} has no {kind.strip()!r} checkpoint (it has: {', '.join(run.checkpoints) or 'none'})")
        return str(ck.path), f"run {run_id} · {kind.strip()} (epoch {ck.epoch})"
    return other, other


def other_choices(ctx, retain: str | None) -> list[str]:
    """The retain model (when set) and every run checkpoint, as "run N:kind"."""
    out = [retain] if retain else []
    try:
        for run in ctx.store.list_runs():
            out += [f"run {run.id}:{kind}" for kind in sorted(run.checkpoints)]
    except Exception:
        pass
    return out


def agreement_row(masks: dict) -> dict | None:
    """The agreement row (engine.explore.compare.agreement) as a tokenviz row; None when no selector counts."""
    votes, counted = agreement(masks)
    if not counted:
        return None
    return {"label": f"agreement (of {len(counted)})", "values": [float(v) for v in votes], "kind": "count",
            "vmax": float(len(counted)), "legend_label": "selectors marking the token",
            "title": f"how many of {', '.join(counted)} mark each token ({' and '.join(AGREEMENT_EXCLUDE)} not counted)"}


def delta_row(p_target: list[float], p_other: list[float], other_label: str) -> dict:
    """The Δ log p row (engine.explore.compare.delta_logprob) as a tokenviz row on the diverging map."""
    return {"label": "Δ log p", "values": delta_logprob(p_target, p_other), "kind": "delta",
            "legend_label": f"log p(target) − log p({other_label})", "low": f"{other_label} likelier",
            "high": "target likelier",
            "title": f"per token: log p under the target model minus under {other_label} (nats)"}


def sample_rows(ctx, view, masks, model: str, data: str, split: str, index: int, other: str | None,
                side_selector: str | None) -> tuple[list[dict], list[dict], str | None, str | None]:
    """(extra rows under the selectors, side-by-side rows, the other model's label, a note)."""
    extra, side, label, note = [], [], None, None
    agree = agreement_row(masks)
    if agree is not None:
        extra.append(agree)
    try:
        resolved = resolve_other(ctx, other)
        if resolved is not None:
            spec, label = resolved
            a, b = other_info(ctx.explore, model, spec, data, split, index)
            d = delta_row(a.probs, b.probs, label)
            extra.append(d)
            side += [{"label": f"p · {model}", "values": a.probs, "kind": "prob"},
                     {"label": f"p · {label}", "values": b.probs, "kind": "prob"}, d]
            if side_selector:
                for spec_, lab in ((model, model), (spec, label)):
                    row = ctx.explore.selector_row(spec_, data, split, index, side_selector)
                    if row.ok:
                        side.append({"label": f"{side_selector} · {lab}", "values": row.scores, "mask": row.mask,
                                     "kind": "score"})
    except Exception as err:  # the second model is an extra: its failure is a note, the view stays
        note = f"second model: {message_of(err)}"
    return extra, side, label, note


def extras_html(view, extra: list[dict], side: list[dict], label: str | None, scale: str,
                group: str | None) -> str:
    """The extra rows (agreement, Δ) under the selectors, then the side-by-side table."""
    tokens = render.shown_tokens(view.info)
    eos = view.info.eos
    parts = []
    if extra:
        toks, rows = (group_words(tokens, eos, extra, group) if group else (tokens, extra))
        parts.append('<div class="wb-extra-rows">' + "".join(
            f'<div class="wb-extra" data-extra="{render.ESC(r["kind"])}">'
            f'{render_value_row(toks, r, scale)}</div>' for r in rows) + "</div>")
    if side:
        toks, rows = (group_words(tokens, eos, side, group) if group else (tokens, side))
        parts.append(f'<div class="wb-side-by-side" data-other="{render.ESC(label or "")}"><h4>side by side: target '
                     f'vs {render.ESC(label or "")}</h4>{render_aligned(toks, rows, scale)}</div>')
    return "".join(parts)


def export_rows(view, masks, extra: list[dict], group: str | None) -> tuple[list[str], list[dict]]:
    """Every row of the view as tokenviz rows (p(token), ground truth, each selector, the extras), grouped."""
    info = view.info
    tokens = render.shown_tokens(info)
    rows = [{"label": "p(token)", "values": info.probs, "kind": "prob"}]
    if info.spans is not None:
        rows.append({"label": "ground truth", "values": [float(s) for s in info.spans], "mask": info.spans,
                     "kind": "prob"})
    for name, row in view.rows.items():
        if row.ok:
            rows.append({"label": name, "values": row.scores, "mask": masks[name], "kind": "score"})
    rows += extra
    return group_words(tokens, info.eos, rows, group) if group else (tokens, rows)


def write_exports(view, masks, extra: list[dict], group: str | None, scale: str) -> tuple[Path, Path, str]:
    """(SVG path, CSV path, the SVG text) of one sample's view, in a fresh temporary folder."""
    tokens, rows = export_rows(view, masks, extra, group)
    uid = "".join(c if c.isalnum() or c in "-_." else "_" for c in view.info.uid) or "sample"
    folder = Path(tempfile.mkdtemp(prefix="wb-view-"))
    svg = view_svg(tokens, rows, f"sample {view.info.index} ({view.info.uid})", scale)
    (folder / f"{uid}.svg").write_text(svg, encoding="utf-8")
    (folder / f"{uid}.csv").write_text(view_csv(tokens, rows), encoding="utf-8")
    return folder / f"{uid}.svg", folder / f"{uid}.csv", svg
