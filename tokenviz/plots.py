"""Trade-off figures and run tables: pure functions of metric rows (no torch, no Gradio).

A *run* is a dict `{"run_id": int, "label": str, "status": str, "rows": [...]}` whose rows are
the store's flat per-epoch rows (`Store.run_metrics_rows`: run_id, epoch, step, then every
metric). A *reference* is `{"label": str, "metrics": {...}}` (target / retain model).

x = model utility, y = forget quality on a log axis. Forget quality 0 cannot sit on a log axis:
it is drawn at `FQ_FLOOR` and the hover text says so; a point without either value is left out.
"""
from __future__ import annotations

import html
import math

import pandas as pd
import plotly.graph_objects as go

FQ_FLOOR = 1e-300
MAIN_COLUMNS = ("forget_quality", "model_utility")
# Okabe–Ito: a qualitative palette that stays distinguishable under colour-vision deficiencies.
RUN_COLORS = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
REFERENCE_SYMBOLS = ("star", "diamond", "square", "cross")


def _num(v) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    v = float(v)
    return v if math.isfinite(v) else None


def _fmt(v) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


HOVER_KEYS = ("forget_quality", "model_utility", "forget_probability", "train_loss")
TABLE_KEYS = ("forget_quality", "model_utility", "forget_probability", "retain_probability", "target_prob_drop",
              "nontarget_prob_drop", "train_loss")  # the on-screen table; the CSV keeps every metric


def hover_text(title: str, metrics: dict, keys: tuple[str, ...] = HOVER_KEYS) -> str:
    """`title` (escaped: run labels carry mask-set names) then `name: value` for the few `keys`
    present; the full set of metrics is in the table and the CSV, not in a plot-covering tooltip."""
    lines = [f"<b>{html.escape(title)}</b>"] + [f"{k}: {_fmt(metrics[k])}" for k in keys if k in metrics]
    return "<br>".join(lines)


def _point(metrics: dict) -> tuple[float, float, bool] | None:
    """(x, y, at_floor) or None when utility or forget quality is missing."""
    mu, fq = _num(metrics.get("model_utility")), _num(metrics.get("forget_quality"))
    if mu is None or fq is None:
        return None
    return mu, max(fq, FQ_FLOOR), fq < FQ_FLOOR


def tradeoff_figure(runs: list[dict], references: list[dict] | None = None,
                    title: str = "Forget quality vs model utility") -> go.Figure:
    """One line per run through its epochs (epoch number at each marker), references as big markers."""
    fig = go.Figure()
    missing = 0
    for k, run in enumerate(runs):
        xs, ys, texts, hovers = [], [], [], []
        for row in sorted(run.get("rows", []), key=lambda r: r.get("epoch", 0)):
            p = _point(row)
            if p is None:
                missing += 1
                continue
            xs.append(p[0])
            ys.append(p[1])
            texts.append(str(row.get("epoch", "")))
            note = " (forget quality 0: drawn at the axis floor)" if p[2] else ""
            hovers.append(hover_text(f"{run.get('label', run.get('run_id'))}, epoch {row.get('epoch')}{note}", row))
        color = RUN_COLORS[k % len(RUN_COLORS)]
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines+markers+text",
                                 name=html.escape(str(run.get("label", run.get("run_id")))),
                                 text=texts, textposition="top center", hovertext=hovers, hoverinfo="text",
                                 line={"color": color}, marker={"size": 8, "color": color},
                                 meta={"run_id": run.get("run_id")}))
    for k, ref in enumerate(references or []):
        p = _point(ref.get("metrics", {}))
        if p is None:
            missing += 1
            continue
        fig.add_trace(go.Scatter(x=[p[0]], y=[p[1]], mode="markers", name=html.escape(str(ref.get("label"))),
                                 hovertext=[hover_text(str(ref.get("label")), ref.get("metrics", {}))],
                                 hoverinfo="text",
                                 marker={"size": 16, "symbol": REFERENCE_SYMBOLS[k % len(REFERENCE_SYMBOLS)],
                                         "color": "#555555", "line": {"width": 1, "color": "#000000"}}))
    subtitle = f" ({missing} point(s) without forget quality or utility left out)" if missing else ""
    fig.update_yaxes(exponentformat="e")
    fig.update_layout(title={"text": title + subtitle}, xaxis_title="model utility",
                      yaxis_title="forget quality (log)", yaxis_type="log", hovermode="closest", showlegend=True,
                      legend={"title": {"text": "runs and references"}}, template="plotly_white",
                      margin={"l": 60, "r": 20, "t": 60, "b": 50})
    if not runs and not references:
        fig.add_annotation(text="no runs yet: start one in the Run tab", showarrow=False, x=0.5, y=0.5,
                           xref="paper", yref="paper")
    return fig


def best_and_final(rows: list[dict]) -> tuple[dict | None, dict | None]:
    """The best-forget-quality row among trained epochs (epoch ≥ 1; all rows when none) and the last row."""
    if not rows:
        return None, None
    ordered = sorted(rows, key=lambda r: r.get("epoch", 0))
    trained = [r for r in ordered if r.get("epoch", 0) >= 1] or ordered
    scored = [r for r in trained if _num(r.get("forget_quality")) is not None]
    best = max(scored, key=lambda r: (_num(r["forget_quality"]), -r.get("epoch", 0))) if scored else None
    return best, ordered[-1]


def runs_table(runs: list[dict]) -> pd.DataFrame:
    """One 'best' and one 'final' row per run: run, label, status, row, epoch, FQ, MU, other metrics."""
    records = []
    for run in runs:
        best, final = best_and_final(run.get("rows", []))
        for kind, row in (("best", best), ("final", final)):
            base = {"run": run.get("run_id"), "label": run.get("label"), "status": run.get("status"), "row": kind}
            if row is None:
                records.append({**base, "epoch": None})
                continue
            metrics = {k: v for k, v in row.items() if k not in ("run_id",) and not isinstance(v, (list, dict))}
            records.append({**base, **metrics})
    df = pd.DataFrame.from_records(records)
    if df.empty:
        return pd.DataFrame(columns=["run", "label", "status", "row", "epoch", *MAIN_COLUMNS])
    first = [c for c in ("run", "label", "status", "row", "epoch", "step", *MAIN_COLUMNS) if c in df.columns]
    return df[first + [c for c in df.columns if c not in first]]


def _short(v) -> str | None:
    """A number to 3 significant digits for the screen (None stays empty)."""
    v = _num(v)
    return None if v is None else f"{v:.3g}"


def display_table(df: pd.DataFrame) -> pd.DataFrame:
    """`runs_table` for the screen: run, label, status, row, epoch and TABLE_KEYS only, numbers to
    3 significant digits (the CSV export keeps every metric at full precision)."""
    keep = [c for c in ("run", "label", "status", "row", "epoch", *TABLE_KEYS) if c in df.columns]
    out = df[keep].copy()
    for c in TABLE_KEYS:
        if c in out.columns:
            out[c] = [_short(v) for v in out[c]]
    return out.rename(columns={"forget_quality": "FQ", "model_utility": "MU", "forget_probability": "forget p",
                               "retain_probability": "retain p", "target_prob_drop": "target p drop",
                               "nontarget_prob_drop": "non-target p drop", "train_loss": "train loss"})
