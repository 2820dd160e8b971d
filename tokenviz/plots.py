"""Trade-off figures and run tables: pure functions of metric rows (no torch, no Gradio).

A *run* is a dict `{"run_id": int, "label": str, "status": str, "rows": [...]}` whose rows are
the store's flat per-epoch rows (`Store.run_metrics_rows`: run_id, epoch, step, then every
metric), optionally with "best_metric" (its config's; default forget quality). A *reference* is
`{"label": str, "metrics": {...}}` (target / retain model).

Which metrics, their labels, axes and directions come from the metric registry
(engine.eval.registry). The default figure: x = model utility, y = forget quality on a log axis;
any two registered metrics can be chosen (e.g. privleak vs model utility). A value ≤ 0 cannot sit
on a log axis (forget quality 0): it is drawn at `FQ_FLOOR` and the hover text says so; a point
without either value is left out.
"""
from __future__ import annotations

import html
import math

import pandas as pd
import plotly.graph_objects as go

from engine.eval.registry import DEFAULT_BEST, METRICS, get_metric, label, shown

FQ_FLOOR = 1e-300
DEFAULT_X, DEFAULT_Y = "model_utility", "forget_quality"
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


def main_columns() -> tuple[str, ...]:
    """The headline metrics: first in the table after run/label/status/row/epoch/step, and the
    tooltip's lines (read from the registry when called: a metric registered later shows too)."""
    return tuple(m.name for m in shown("headline"))


def table_keys(also: tuple[str, ...] = ()) -> tuple[str, ...]:
    """The on-screen table's metrics: the headline ones, then `also` (the plotted axes); the CSV
    keeps every metric."""
    return tuple(dict.fromkeys((*main_columns(), *also)))


def axis_choices() -> list[tuple[str, str]]:
    """(label, name) of every registered metric a curve can be drawn over (training loss aside)."""
    return [(f"{m.label} ({m.name})", m.name) for m in METRICS.values() if m.group != "training"]


def hover_text(title: str, metrics: dict, keys: tuple[str, ...] | None = None) -> str:
    """`title` (escaped: run labels carry mask-set names) then `name: value` for the few `keys`
    present (default: `main_columns()`); the full set of metrics is in the table and the CSV, not in
    a plot-covering tooltip."""
    keys = main_columns() if keys is None else keys
    lines = [f"<b>{html.escape(title)}</b>"] + [f"{k}: {_fmt(metrics[k])}" for k in keys if k in metrics]
    return "<br>".join(lines)


def _point(metrics: dict, x: str = DEFAULT_X, y: str = DEFAULT_Y) -> tuple[float, float, bool] | None:
    """(x, y, at_floor) or None when either value is missing; on a log y axis a value below
    FQ_FLOOR is drawn at it (at_floor)."""
    vx, vy = _num(metrics.get(x)), _num(metrics.get(y))
    if vx is None or vy is None:
        return None
    if _log(y):
        return vx, max(vy, FQ_FLOOR), vy < FQ_FLOOR
    return vx, vy, False


def _log(name: str) -> bool:
    return name in METRICS and METRICS[name].log_scale


def _axis_title(name: str) -> str:
    """`label`, with the direction that is better and '(log)' where it applies."""
    if name not in METRICS:
        return name
    m = METRICS[name]
    text = {"forget_quality": "forget quality", "model_utility": "model utility"}.get(name, m.label)
    if m.ideal is not None:
        text += f" (best at {m.ideal:g})"
    return text + (" (log)" if m.log_scale else "")


def tradeoff_figure(runs: list[dict], references: list[dict] | None = None, title: str | None = None,
                    x: str = DEFAULT_X, y: str = DEFAULT_Y) -> go.Figure:
    """One line per run through its epochs (epoch number at each marker), references as big
    markers; `y` against `x`, two registered metric names (KeyError for an unknown one)."""
    get_metric(x), get_metric(y)
    title = title or ("Forget quality vs model utility" if (x, y) == (DEFAULT_X, DEFAULT_Y)
                      else f"{label(y)} vs {label(x)}")
    hover = tuple(dict.fromkeys((y, x, *main_columns())))
    fig = go.Figure()
    missing = 0
    for k, run in enumerate(runs):
        xs, ys, texts, hovers = [], [], [], []
        for row in sorted(run.get("rows", []), key=lambda r: r.get("epoch", 0)):
            p = _point(row, x, y)
            if p is None:
                missing += 1
                continue
            xs.append(p[0])
            ys.append(p[1])
            texts.append(str(row.get("epoch", "")))
            note = f" ({label(y)} {_fmt(row.get(y))}: drawn at the axis floor)" if p[2] else ""
            hovers.append(hover_text(f"{run.get('label', run.get('run_id'))}, epoch {row.get('epoch')}{note}", row,
                                     hover))
        color = RUN_COLORS[k % len(RUN_COLORS)]
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines+markers+text",
                                 name=html.escape(str(run.get("label", run.get("run_id")))),
                                 text=texts, textposition="top center", hovertext=hovers, hoverinfo="text",
                                 line={"color": color}, marker={"size": 8, "color": color},
                                 meta={"run_id": run.get("run_id")}))
    for k, ref in enumerate(references or []):
        p = _point(ref.get("metrics", {}), x, y)
        if p is None:
            missing += 1
            continue
        fig.add_trace(go.Scatter(x=[p[0]], y=[p[1]], mode="markers", name=html.escape(str(ref.get("label"))),
                                 hovertext=[hover_text(str(ref.get("label")), ref.get("metrics", {}), hover)],
                                 hoverinfo="text",
                                 marker={"size": 16, "symbol": REFERENCE_SYMBOLS[k % len(REFERENCE_SYMBOLS)],
                                         "color": "#555555", "line": {"width": 1, "color": "#000000"}}))
    subtitle = f" ({missing} point(s) without {label(y)} or {label(x)} left out)" if missing else ""
    if _log(y):
        fig.update_yaxes(exponentformat="e")
    fig.update_layout(title={"text": title + subtitle}, xaxis_title=_axis_title(x), yaxis_title=_axis_title(y),
                      yaxis_type="log" if _log(y) else "linear", xaxis_type="log" if _log(x) else "linear",
                      hovermode="closest", showlegend=True,
                      legend={"title": {"text": "runs and references"}}, template="plotly_white",
                      margin={"l": 60, "r": 20, "t": 60, "b": 50})
    if not runs and not references:
        fig.add_annotation(text="no runs yet: start one in the Run tab", showarrow=False, x=0.5, y=0.5,
                           xref="paper", yref="paper")
    return fig


def best_and_final(rows: list[dict], metric: str = DEFAULT_BEST) -> tuple[dict | None, dict | None]:
    """The row with the best `metric` (a registered one with a direction; forget quality by
    default) among trained epochs (epoch ≥ 1; all rows when none), the earliest on ties, and the
    last row."""
    if not rows:
        return None, None
    m = get_metric(metric)
    ordered = sorted(rows, key=lambda r: r.get("epoch", 0))
    trained = [r for r in ordered if r.get("epoch", 0) >= 1] or ordered
    best = None
    for r in trained:
        v = _num(r.get(metric))
        if v is not None and (best is None or m.better(v, _num(best[metric]))):
            best = r
    return best, ordered[-1]


def runs_table(runs: list[dict]) -> pd.DataFrame:
    """One 'best' (by the run's "best_metric", default forget quality) and one 'final' row per
    run: run, label, status, row, epoch, the headline metrics, other metrics."""
    records = []
    for run in runs:
        best, final = best_and_final(run.get("rows", []), run.get("best_metric") or DEFAULT_BEST)
        for kind, row in (("best", best), ("final", final)):
            base = {"run": run.get("run_id"), "label": run.get("label"), "status": run.get("status"), "row": kind}
            if row is None:
                records.append({**base, "epoch": None})
                continue
            metrics = {k: v for k, v in row.items() if k not in ("run_id",) and not isinstance(v, (list, dict))}
            records.append({**base, **metrics})
    df = pd.DataFrame.from_records(records)
    if df.empty:
        return pd.DataFrame(columns=["run", "label", "status", "row", "epoch", *main_columns()])
    first = [c for c in ("run", "label", "status", "row", "epoch", "step", *main_columns()) if c in df.columns]
    return df[first + [c for c in df.columns if c not in first]]


def _short(v) -> str | None:
    """A number to 3 significant digits for the screen (None stays empty)."""
    v = _num(v)
    return None if v is None else f"{v:.3g}"


def display_table(df: pd.DataFrame, also: tuple[str, ...] = ()) -> pd.DataFrame:
    """`runs_table` for the screen: run, label, status, row, epoch and `table_keys(also)` only,
    numbers to 3 significant digits (the CSV export keeps every metric at full precision), metric
    columns under their registered labels."""
    keys = table_keys(also)
    keep = [c for c in ("run", "label", "status", "row", "epoch", *keys) if c in df.columns]
    out = df[keep].copy()
    for c in keys:
        if c in out.columns:
            out[c] = [_short(v) for v in out[c]]
    return out.rename(columns={k: label(k) for k in keys})
