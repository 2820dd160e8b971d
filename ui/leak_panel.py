"""Compare tab, leak check: greedy answers of a run's checkpoint and of the target model (the
baseline) to the forget questions, and whether each target span's text still appears in them
(engine.masks.leak_check): a per-sample table and one leak rate per checked model.

Targets: the data's ground-truth spans, or a stored mask set's targets (its token masks as
character spans). Reports are kept for the life of the server, so the summary lists every
checkpoint checked against the same targets.
"""
from __future__ import annotations

import gradio as gr
import pandas as pd

from engine.eval.leak_check import leak_check
from engine.masks import label_mask_to_spans
from engine.prompts import generation_length
from engine.resolve import canonical_data

from .context import AppContext, fail, message_of, ok
from .mask_set_data import MaskSetData

TRUTH = "ground-truth spans"
SUMMARY_COLUMNS = ["model", "targets", "questions", "target spans", "leak rate", "exact leak rate",
                   "sample leak rate"]
ROW_COLUMNS = ["model", "index", "question", "generation", "targets", "leaked (exact)", "leaked (normalised)"]


def _rate(x: float | None) -> float | None:
    return None if x is None else round(x, 4)


class LeakHandlers:
    def __init__(self, ctx: AppContext):
        self.ctx = ctx
        self.data = MaskSetData(ctx)
        self.reports: dict[tuple, object] = {}  # (model label, targets key) -> LeakReport

    def targets(self, source: str, model: str, data: str, limit: int) -> tuple[list, list, str]:
        """(samples, per-sample target spans, description) for `source` (TRUTH or a mask-set name)."""
        samples = self.ctx.explore.samples(data, "forget")[:limit]
        if source in (None, "", TRUTH):
            if not any(s.spans for s in samples):
                raise ValueError(f"{data} carries no ground-truth spans: choose a mask set as the targets")
            return samples, [list(s.spans) for s in samples], TRUTH
        sd = self.data.read(source)
        if canonical_data(sd.ms.data) != canonical_data(data):
            raise ValueError(f"mask set {source!r} is for {sd.ms.data}, the run was on {data}")
        spans = [label_mask_to_spans(o, m, s.answer) for s, o, m in zip(sd.samples, sd.offsets, sd.masks)]
        return sd.samples[:limit], spans[:limit], f"mask set {source}"

    def check(self, checkpoint: str | None, source: str, limit, max_new_tokens, progress=gr.Progress()):
        """(summary table, per-sample table, status) for the target model and the chosen checkpoint."""
        try:
            if not checkpoint:
                raise ValueError("choose a run checkpoint above (finished runs keep 'best' and 'final')")
            run_id, kind = str(checkpoint).split(":")
            run = self.ctx.store.get_run(int(run_id))
            ck = run.checkpoints.get(kind)
            if ck is None:
                raise ValueError(f"run {run_id} has no {kind} checkpoint")
            model, data = run.config.model, run.config.data

            limit = max(1, int(limit or 1))
            tokens = int(max_new_tokens) if max_new_tokens and int(max_new_tokens) > 0 else generation_length(data)
            samples, spans, what = self.targets(source, model, data, limit)
            key = (data, what, len(samples), tokens)
            shown = []
            for i, (label, spec) in enumerate(((f"target model ({model})", model),
                                               (f"run {run_id} · {kind} (epoch {ck.epoch})", ck.path))):
                progress(i / 2, desc=f"greedy answers of {label}")
                if (label, key) not in self.reports:
                    with self.ctx.explore.session.lock:
                        net, tok = self.ctx.explore.model(spec)
                        self.reports[(label, key)] = leak_check(net, tok, samples, spans, max_new_tokens=tokens)
                shown.append(label)
        except Exception as err:
            return gr.update(), gr.update(), fail(f"leak check: {message_of(err)}")
        summary = [[label, what, len(samples), sum(len(r.targets) for r in rep.rows), _rate(rep.leak_rate),
                    _rate(rep.exact_leak_rate), _rate(rep.sample_leak_rate)]
                   for (label, k), rep in self.reports.items() if k == key]
        rows = [[label, r.index, r.question, r.generation, " | ".join(r.targets), sum(r.exact), r.leaked]
                for label in shown for r in self.reports[(label, key)].rows]
        return (pd.DataFrame(summary, columns=SUMMARY_COLUMNS), pd.DataFrame(rows, columns=ROW_COLUMNS),
                ok(f"leak check of {len(shown)} models on {len(samples)} forget questions against {what}"))

    def target_choices(self):
        return gr.update(choices=[TRUTH] + [m.name for m in self.ctx.store.list_mask_sets()])


def build(ctx: AppContext, checkpoint) -> dict:
    """The leak-check panel; `checkpoint` is the Compare tab's run-checkpoint dropdown ("ID:kind")."""
    h = LeakHandlers(ctx)
    gr.Markdown("### Leak check: does the model still say the targets?")
    with gr.Row():
        source = gr.Dropdown([TRUTH], value=TRUTH, label="targets", elem_id="leak-targets", allow_custom_value=True)
        limit = gr.Number(value=100, precision=0, minimum=1, label="forget questions", elem_id="leak-limit")
        tokens = gr.Number(value=0, precision=0, minimum=0, label="max new tokens (0: the data's, 64 built-in, 200 TOFU)",
                           elem_id="leak-tokens")
        run = gr.Button("leak check (target model + checkpoint)", elem_id="leak-run")
    summary = gr.Dataframe(headers=SUMMARY_COLUMNS, interactive=False, label="leak rate per model",
                           elem_id="leak-summary")
    rows = gr.Dataframe(headers=ROW_COLUMNS, interactive=False, label="per sample", elem_id="leak-rows",
                        max_height=320)
    status = gr.Markdown(elem_id="leak-status")
    run.click(h.check, [checkpoint, source, limit, tokens], [summary, rows, status], api_name="leak_check")
    source.focus(h.target_choices, None, source, api_visibility="undocumented")
    return {"handlers": h}
