"""Edit tab, live accuracy: the mask set's precision / recall / F1 against ground-truth spans
(the data's own, or spans imported for it), token and word level, overall and per span type,
recomputed after every edit (engine.masks.accuracy.mask_accuracy; pure Python over the set)."""
from __future__ import annotations

import html

import gradio as gr
import pandas as pd

from engine.masks import Counts, mask_accuracy

from .context import AppContext, message_of
from .mask_set_data import MaskSetData

ACC_COLUMNS = ["span type", "level", "precision", "recall", "F1", "TP", "FP", "FN"]


def _num(x: float | None) -> str:
    return "–" if x is None else f"{x:.3f}"


def accuracy_rows(acc) -> list[list]:
    """One row per (scope, level): overall first, then each span type."""
    def row(scope: str, level: str, c: Counts) -> list:
        return [scope, level, _num(c.precision), _num(c.recall), _num(c.f1), c.tp, c.fp, c.fn]

    rows = [row("all", "token", acc.token), row("all", "word", acc.word)]
    for t in sorted(acc.token_by_type):
        rows += [row(t, "token", acc.token_by_type[t]), row(t, "word", acc.word_by_type[t])]
    return rows


def headline_html(acc, source: str) -> str:
    """The overall figures, with data-* attributes that tests and scripts read."""
    t, w = acc.token, acc.word
    return (f'<div id="edit-acc" data-token-f1="{_num(t.f1)}" data-word-f1="{_num(w.f1)}">live accuracy vs '
            f'{html.escape(source)} — token P {_num(t.precision)} · R {_num(t.recall)} · <b>F1 {_num(t.f1)}</b>'
            f' &nbsp;|&nbsp; word P {_num(w.precision)} · R {_num(w.recall)} · <b>F1 {_num(w.f1)}</b></div>')


class AccuracyHandlers:
    def __init__(self, ctx: AppContext, data: MaskSetData):
        self.ctx, self.data = ctx, data

    def compute(self, name: str):
        """(MaskAccuracy, source) or (None, why not)."""
        sd = self.data.read(name)
        truth, source = self.data.truth(sd.ms.data, sd.samples)
        if truth is None:
            return None, "no ground-truth spans for this data: import a span file as ground truth below"
        return mask_accuracy([s.answer for s in sd.samples], sd.offsets, sd.masks, truth), source

    def panel(self, name: str | None):
        """(headline HTML, per-type table)."""
        empty = pd.DataFrame(columns=ACC_COLUMNS)
        if not name:
            return '<div id="edit-acc">live accuracy: choose a mask set</div>', empty
        try:
            acc, source = self.compute(name)
        except Exception as err:
            return f'<div id="edit-acc">live accuracy unavailable: {html.escape(message_of(err))}</div>', empty
        if acc is None:
            return f'<div id="edit-acc">{html.escape(source)}</div>', empty
        return headline_html(acc, source), pd.DataFrame(accuracy_rows(acc), columns=ACC_COLUMNS)

    def api(self, name: str) -> dict:
        """For API clients: MaskAccuracy.to_dict() plus the truth's source (None when there is none)."""
        acc, source = self.compute(name)
        return {"source": source, "accuracy": None if acc is None else acc.to_dict()}


def build(ctx: AppContext, data: MaskSetData) -> dict:
    h = AccuracyHandlers(ctx, data)
    headline = gr.HTML(elem_id="edit-accuracy")
    with gr.Accordion("accuracy per span type", open=False):
        table = gr.Dataframe(headers=ACC_COLUMNS, interactive=False, elem_id="edit-accuracy-table")
    gr.api(h.api, api_name="edit_accuracy")
    return {"fn": h.panel, "outputs": [headline, table], "handlers": h}
