"""Edit tab, phrase rules: "apply everywhere (target)" / "never a target everywhere" for a phrase
picked in the chips (a brush over tokens, a click or alt-click for a word) or typed, a list of the
set's rules with how many tokens each touches, and removal (its effect goes with it).

Precedence and the recomputation on a rule change are the mask-set service's
(engine.mask_sets.MaskSets.change_rules): base mask < rules in list order (later beats
earlier) < hand edits; removing a rule removes exactly what it decided.
"""
from __future__ import annotations

import json
from collections.abc import Sequence

import gradio as gr
import pandas as pd

from engine.masks import Rule
from engine.masks.spans import is_answer_token, word_spans

from .context import AppContext, fail, message_of, ok
from .mask_set_data import MaskSetData

RULE_COLUMNS = ["#", "phrase", "effect", "whole words", "samples", "tokens matched", "tokens decided",
                "tokens changed"]


def phrase_of_gesture(answer: str, offsets: Sequence[tuple[int, int]], action: str, start: int, end: int) -> str:
    """The phrase a chip gesture picked: a brush's characters from its first to its last token;
    for a click, shift-click or alt-click the whole word(s) under the token. '' for the EOS alone."""
    lo, hi = sorted((int(start), int(end)))
    picked = [o for o in offsets[lo:hi + 1] if is_answer_token(o)]
    if not picked:
        return ""
    a, b = picked[0][0], picked[-1][1]
    if action != "brush":
        words = [(s, e) for s, e in word_spans(answer) if s < b and e > a]
        if words:
            a, b = min(a, words[0][0]), max(b, words[-1][1])
    return " ".join(answer[a:b].split())


class RuleHandlers:
    def __init__(self, ctx: AppContext, data: MaskSetData):
        self.ctx, self.data = ctx, data

    def table(self, name: str | None):
        """(rules table, removal choices) of a set."""
        effects = self.ctx.masks.rule_effects(name) if name else []
        if not effects:
            return pd.DataFrame(columns=RULE_COLUMNS), gr.update(choices=[], value=None)
        rows = [[i + 1, e.rule.phrase, "target" if e.rule.target else "never a target", e.rule.whole_words,
                 e.samples, e.matched, e.decided, e.changed] for i, e in enumerate(effects)]
        choices = [(f"#{i + 1} {e.rule.phrase} ({'target' if e.rule.target else 'never'})", i)
                   for i, e in enumerate(effects)]
        return pd.DataFrame(rows, columns=RULE_COLUMNS), gr.update(choices=choices, value=None)

    def _forget_histories(self, name: str, uids) -> None:
        for uid in uids:
            self.ctx.histories.pop((name, uid), None)

    def add(self, name: str, phrase: str, whole_words: bool, target: bool = True):
        """A new rule, last (so it beats the earlier ones); returns (table, choices, status)."""
        try:
            rule = Rule((phrase or "").strip(), bool(target), bool(whole_words))
            with self.ctx.edit_lock:
                written = self.ctx.masks.add_rule(name, rule)
                self._forget_histories(name, written)
            note = ok(f"rule {rule.phrase!r} ({'target' if target else 'never a target'}) added: "
                      f"{len(written)} sample(s) changed")
        except Exception as err:
            note = fail(f"rule not added: {message_of(err)}")
        return (*self._table_or_keep(name), note)

    def remove(self, name: str, which):
        """Remove rule number `which` (0-based) and its effect; returns (table, choices, status)."""
        try:
            if which is None or which == "":
                raise ValueError("choose a rule to remove")
            with self.ctx.edit_lock:
                removed, written = self.ctx.masks.remove_rule(name, int(which))
                self._forget_histories(name, written)
            note = ok(f"rule {removed.phrase!r} removed: {len(written)} sample(s) changed")
        except Exception as err:
            note = fail(f"rule not removed: {message_of(err)}")
        return (*self._table_or_keep(name), note)

    def _table_or_keep(self, name):
        try:
            return self.table(name)
        except Exception:
            return gr.update(), gr.update()

    def api_rules(self, name: str) -> dict:
        """For API clients: {rules: [...], effects: [{matched, decided, changed, samples}]}."""
        table, _ = self.table(name)
        rules = json.loads(self.ctx.store.get_rules(name) or "[]") if name else []
        return {"rules": rules, "table": table.to_dict(orient="records")}

    def gesture(self, name: str, index, evt: gr.EventData):
        """A chip gesture (see ui/chips_js.py) also picks the phrase for a rule."""
        d = getattr(evt, "_data", None) or {}
        try:
            sd = self.data.read(name)
            i = int(index or 0)
            start = int(d.get("start"))
            return phrase_of_gesture(sd.samples[i].answer, sd.offsets[i], d.get("action", "toggle"), start,
                                     int(d.get("end", start)))
        except Exception:
            return gr.update()


def build(ctx: AppContext, data: MaskSetData, edit: dict) -> dict:
    """The phrase-rules panel, wired to the Edit tab's components (`edit`: mask_set, index, chips, view)."""
    h = RuleHandlers(ctx, data)
    with gr.Accordion("phrase rules: a phrase everywhere in the forget set", open=True):
        gr.Markdown("Brush or click a phrase in the chips (or type it), then apply it to every answer. "
                    "Case and spacing are ignored. Precedence: hand edits on a token beat rules; a later rule "
                    "beats an earlier one. Removing a rule removes its effect.")
        with gr.Row():
            phrase = gr.Textbox(label="phrase", elem_id="edit-rule-phrase", scale=3)
            whole = gr.Checkbox(value=False, label="whole words only", elem_id="edit-rule-whole")
            target = gr.Button("apply everywhere (target)", elem_id="edit-rule-target", variant="primary")
            never = gr.Button("never a target everywhere", elem_id="edit-rule-never")
        rules = gr.Dataframe(headers=RULE_COLUMNS, interactive=False, label="rules (later beats earlier)",
                             elem_id="edit-rules", max_height=220)
        with gr.Row():
            which = gr.Dropdown([], label="rule", elem_id="edit-rule-which", scale=3, allow_custom_value=True)
            remove = gr.Button("remove rule and its effect", elem_id="edit-rule-remove")
        status = gr.Markdown(elem_id="edit-rule-status")

    mask_set, view = edit["mask_set"], edit["view"]
    lock = dict(concurrency_limit=1, concurrency_id="edit")
    outs = [rules, which, status]
    edit["chips"].click(h.gesture, [mask_set, edit["index"]], phrase, api_visibility="undocumented",
                        show_progress="hidden")
    added = []
    for btn, is_target, api in ((target, True, "rules_add_target"), (never, False, "rules_add_never")):
        ev = btn.click(lambda n, p, w, t=is_target: h.add(n, p, w, t), [mask_set, phrase, whole], outs,
                       api_name=api, **lock)
        added.append(ev.then(**view, api_visibility="undocumented"))
    removed = remove.click(h.remove, [mask_set, which], outs, api_name="rules_remove", **lock).then(
        **view, api_visibility="undocumented")
    mask_set.change(lambda n: h._table_or_keep(n), mask_set, [rules, which], api_visibility="undocumented")
    gr.api(h.api_rules, api_name="rules_list")
    return {"changed": [*added, removed], "handlers": h}
