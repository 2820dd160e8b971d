"""Compare: trade-off curves of all runs, a best/final table, CSV, and before/after generations."""
from __future__ import annotations

import tempfile
from pathlib import Path

import gradio as gr
import pandas as pd

from engine.resolve import canonical_data
from engine.store import RunRecord
from tokenviz.plots import DEFAULT_X, DEFAULT_Y, axis_choices, display_table, runs_table, tradeoff_figure

from . import leak_panel, render
from .context import AppContext, fail, message_of, ok


def run_label(run: RunRecord) -> str:
    cfg = run.config
    source = f"mask set {cfg.mask_set}" if cfg.mask_set else cfg.selector
    state = "" if run.status == "finished" else f" [{run.status}]"
    retain = f"FQ vs {run.retain_model}" if run.retain_model else "no retain model: FQ unavailable"
    return f"run {run.id}: {cfg.loss} · {source} · {cfg.data} · {retain}{state}"


CURVES = {"FQ vs MU": (DEFAULT_Y, DEFAULT_X), "privleak vs MU": ("privleak", DEFAULT_X)}  # (y, x) presets


class CompareHandlers:
    def __init__(self, ctx: AppContext):
        self.ctx = ctx

    def _runs(self, model: str | None = None, data: str | None = None) -> list[dict]:
        """Runs as tokenviz.plots wants them; only those on `model`/`data` when given."""
        out = []
        for run in self.ctx.store.list_runs():
            cfg = run.config
            if model is not None and (cfg.model != model or canonical_data(cfg.data or "") != canonical_data(data)):
                continue
            out.append({"run_id": run.id, "label": run_label(run), "status": run.status,
                        "rows": self.ctx.store.run_metrics_rows(run.id), "best_metric": cfg.best_metric})
        return out

    def _references(self, model: str, data: str, retain_eval_size: int, max_new_tokens: int) -> list[dict]:
        return self.ctx.explore.cached_reference_points(model, data, int(retain_eval_size), int(max_new_tokens),
                                                        self.ctx.store.retain_model_of(model, data)) or []

    def refresh(self, model: str, data: str, retain_eval_size=200, max_new_tokens=0, only_here: bool = True,
                y_metric: str = DEFAULT_Y, x_metric: str = DEFAULT_X):
        """(figure, table, checkpoint choices, status) from the store (and cached reference points).

        only_here: only runs on the model and data chosen above (the references are theirs).
        y_metric, x_metric: the curves' axes, two registered metrics (forget quality vs model
        utility by default; e.g. privleak vs model utility); the table shows them beside the
        headline metrics.
        """
        try:
            y_metric, x_metric = y_metric or DEFAULT_Y, x_metric or DEFAULT_X
            runs = self._runs(model, data) if only_here else self._runs()
            refs = self._references(model, data, retain_eval_size, max_new_tokens)
            fig = tradeoff_figure(runs, refs, x=x_metric, y=y_metric)
            fig.update_layout(legend={"orientation": "h", "yanchor": "top", "y": -0.18, "x": 0})  # under the plot
            table = display_table(runs_table(runs), also=(y_metric, x_metric))
            table = table[[c for c in ("run", "FQ", "MU") if c in table.columns]
                          + [c for c in table.columns if c not in ("run", "FQ", "MU")]]  # FQ/MU visible at 800 px
        except Exception as err:
            return gr.update(), gr.update(), gr.update(), fail(f"cannot draw the runs: {message_of(err)}")
        note = "" if refs else " · reference points not computed yet (button above)"
        where = f" on {model} / {data}" if only_here else ""
        ids = {r["run_id"] for r in runs}
        return fig, table, self.checkpoint_choices(ids), ok(f"{len(runs)} run(s){where}{note}")

    def references(self, model: str, data: str, retain_eval_size, max_new_tokens, only_here: bool = True,
                   y_metric: str = DEFAULT_Y, x_metric: str = DEFAULT_X, progress=gr.Progress()):
        """Evaluate the target (and retain) model once; cached on disk afterwards."""
        progress(0.05, desc="evaluating the target and retain models (cached afterwards)")
        try:
            self.ctx.explore.reference_points(model, data, int(retain_eval_size), int(max_new_tokens),
                                              self.ctx.store.retain_model_of(model, data))  # the remembered pairing
        except Exception as err:
            return (gr.update(), gr.update(), gr.update(),
                    fail(f"reference points unavailable: {message_of(err)}"))
        return self.refresh(model, data, retain_eval_size, max_new_tokens, only_here, y_metric, x_metric)

    def csv(self):
        """The table (best and final rows of every run) plus every epoch row, as a CSV file."""
        runs = self._runs()
        summary = runs_table(runs)
        epochs = pd.DataFrame([{"label": r["label"], "row": "epoch", **row} for r in runs for row in r["rows"]])
        path = Path(tempfile.mkdtemp(prefix="runs-")) / "runs.csv"
        pd.concat([summary, epochs], ignore_index=True).to_csv(path, index=False)
        return str(path), ok(f"CSV of {len(runs)} run(s) written")

    def checkpoint_choices(self, run_ids: set[int] | None = None):
        """Checkpoints of the runs in `run_ids` (those the table shows), or of every run when None."""
        choices = []
        for run in self.ctx.store.list_runs():
            if run_ids is not None and run.id not in run_ids:
                continue
            for kind, ck in sorted(run.checkpoints.items()):
                choices.append((f"run {run.id} · {kind} (epoch {ck.epoch}) · {run.config.loss}",
                                f"{run.id}:{kind}"))
        return gr.update(choices=choices, value=choices[-1][1] if choices else None)

    def before_after(self, model: str, data: str, split: str, index, checkpoint: str | None):
        if not checkpoint:
            return "", fail("choose a run checkpoint (finished runs keep 'best' and 'final')")
        try:
            run_id, kind = checkpoint.split(":")
            run = self.ctx.store.get_run(int(run_id))
            ck = run.checkpoints.get(kind)
            if ck is None:
                raise ValueError(f"run {run_id} has no {kind} checkpoint")
            cfg = run.config
            result = self.ctx.explore.before_after(cfg.model or model, cfg.data or data, split,
                                                   int(index or 0), ck.path)
        except Exception as err:
            return "", fail(message_of(err))
        return render.before_after_html(result, f"run {run_id} ({kind}, epoch {ck.epoch})"), ok("generated")


def build(ctx: AppContext, top: dict) -> dict:
    h = CompareHandlers(ctx)
    with gr.Row():
        refresh = gr.Button("refresh", elem_id="compare-refresh")
        refs = gr.Button("compute reference points (target / retain model)", elem_id="compare-refs")
        ref_size = gr.Number(value=200, precision=0, minimum=1, label="retain questions (reference; protocol 'all' only, TOFU files fix theirs)",
                             elem_id="compare-ref-size")
        ref_tokens = gr.Number(value=0, precision=0, minimum=0, label="max new tokens (reference; 0: the data's, 64 "
                               "built-in, 200 TOFU)",
                               elem_id="compare-ref-tokens")
        only_here = gr.Checkbox(value=True, label="only runs on the model / data above")
    with gr.Row():
        curve = gr.Radio(list(CURVES), value="FQ vs MU", label="curves", elem_id="compare-curve")
        y_axis = gr.Dropdown(axis_choices(), value=DEFAULT_Y, label="y axis (any metric)", elem_id="compare-y")
        x_axis = gr.Dropdown(axis_choices(), value=DEFAULT_X, label="x axis (any metric)", elem_id="compare-x")
    plot = gr.Plot(label="trade-off (use the camera icon in the plot's toolbar for a PNG)", elem_id="compare-plot")
    status = gr.Markdown(elem_id="compare-status")
    table = gr.Dataframe(interactive=False, label="runs: best and final epochs", elem_id="compare-table",
                         max_height=320)
    with gr.Row():
        csv_btn = gr.Button("export CSV")
        csv_file = gr.File(label="CSV", interactive=False)
    gr.Markdown("### Before / after")
    with gr.Row():
        split = gr.Radio(["forget", "retain"], value="forget", label="question from")
        index = gr.Number(value=0, precision=0, minimum=0, label="sample index")
        checkpoint = gr.Dropdown([], label="run checkpoint", elem_id="compare-checkpoint", allow_custom_value=True)
        generate = gr.Button("generate", elem_id="compare-generate")
    ba = gr.HTML(elem_id="compare-before-after", js_on_load=None)
    leak_panel.build(ctx, checkpoint)

    model, data = top["model"], top["data"]
    outs = [plot, table, checkpoint, status]
    inputs = [model, data, ref_size, ref_tokens, only_here, y_axis, x_axis]
    refresh.click(h.refresh, inputs, outs, api_name="compare_refresh")
    only_here.change(h.refresh, inputs, outs, api_visibility="undocumented")
    curve.change(lambda name: CURVES.get(name, (gr.update(), gr.update())), curve, [y_axis, x_axis],
                 api_visibility="undocumented")
    for axis in (y_axis, x_axis):
        axis.change(h.refresh, inputs, outs, api_visibility="undocumented")
    refs.click(h.references, inputs, outs, api_name="compare_references")
    csv_btn.click(h.csv, None, [csv_file, status], api_name="compare_csv")
    generate.click(h.before_after, [model, data, split, index, checkpoint], [ba, status], api_name="before_after")
    return {"refresh": dict(fn=h.refresh, inputs=inputs, outputs=outs)}
