"""Edit tab, phrase rules: "apply everywhere (target)" / "never a target everywhere" for a phrase
picked in the chips (a brush over tokens, a click or alt-click for a word) or typed, a list of the
set's rules with how many tokens each touches, and removal (its effect goes with it).

Precedence is engine.masks.rules's: base mask < rules in list order (later beats earlier) < hand
edits. The store keeps the final masks and the rule list; a rule change recomputes every sample
as base + rules + the hand edits recovered from the stored masks (`hand_edits_between` against
base + the old rules), so removing a rule removes exactly what it decided.
"""
from __future__ import annotations

import json

from collections.abc import Sequence

import gradio as gr
import pandas as pd

from engine.masks import Rule, apply_rules, hand_edits_between, rule_effects, rules_from_json, rules_to_json
from engine.masks.spans import is_answer_token, word_spans

from .context import AppContext, fail, message_of, ok
from .mask_set_data import MaskSetData, SetData

RULE_COLUMNS = ["#", "phrase", "effect", "whole words", "samples", "tokens matched", "tokens decided",
                "tokens changed"]


def rewrite_with_rules(samples, offsets, base, current, old_rules: Sequence[Rule],
                       new_rules: Sequence[Rule]) -> list[list[bool]]:
    """Every sample's mask under `new_rules`, keeping the hand edits made over `old_rules`."""
    edits = [hand_edits_between(c, m) for c, m in zip(apply_rules(samples, offsets, base, old_rules), current)]
    return apply_rules(samples, offsets, base, new_rules, edits)


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

    def _rules(self, name: str) -> list[Rule]:
        return rules_from_json(json.loads(self.ctx.store.get_rules(name) or "[]"), f"mask set {name!r} rules")

    def table(self, name: str | None):
        """(rules table, removal choices) of a set."""
        if not name:
            return pd.DataFrame(columns=RULE_COLUMNS), gr.update(choices=[], value=None)
        sd = self.data.read(name)
        rules = self._rules(name)
        if not rules:
            return pd.DataFrame(columns=RULE_COLUMNS), gr.update(choices=[], value=None)
        base = self.data.base(sd)
        edits = [hand_edits_between(c, m) for c, m in zip(apply_rules(sd.samples, sd.offsets, base, rules), sd.masks)]
        effects = rule_effects(sd.samples, sd.offsets, base, rules, edits)
        rows = [[i + 1, e.rule.phrase, "target" if e.rule.target else "never a target", e.rule.whole_words,
                 e.samples, e.matched, e.decided, e.changed] for i, e in enumerate(effects)]
        choices = [(f"#{i + 1} {r.phrase} ({'target' if r.target else 'never'})", i) for i, r in enumerate(rules)]
        return pd.DataFrame(rows, columns=RULE_COLUMNS), gr.update(choices=choices, value=None)

    def _write(self, sd: SetData, masks: list[list[bool]]) -> int:
        """Save the samples whose mask changed (their edited flag kept); the count written."""
        written = 0
        for s, old, new in zip(sd.samples, sd.masks, masks):
            new = [int(v) for v in new]
            if new != list(old):
                entry = sd.ms.masks.get(s.uid)
                text_hash = entry.text_hash if entry else self.ctx.explore.info(sd.ms.model, sd.ms.data, "forget",
                                                                               sd.samples.index(s)).text_hash
                self.ctx.store.save_sample_mask(sd.ms.name, s.uid, text_hash, new, edited=bool(entry and entry.edited))
                self.ctx.histories.pop((sd.ms.name, s.uid), None)
                written += 1
        return written

    def change(self, name: str, new_rules_of) -> str:
        """Replace the set's rules by `new_rules_of(old_rules)` and rewrite its masks; a status line."""
        with self.ctx.edit_lock:
            sd = self.data.read(name)
            old = self._rules(name)
            new = new_rules_of(old)
            masks = rewrite_with_rules(sd.samples, sd.offsets, self.data.base(sd), sd.masks, old, new)
            self.ctx.store.set_rules(name, json.dumps(rules_to_json(new)))
            return self._write(sd, masks)

    def add(self, name: str, phrase: str, whole_words: bool, target: bool = True):
        """A new rule, last (so it beats the earlier ones); returns (table, choices, status)."""
        try:
            rule = Rule((phrase or "").strip(), bool(target), bool(whole_words))
            written = self.change(name, lambda old: [*old, rule])
            note = ok(f"rule {rule.phrase!r} ({'target' if target else 'never a target'}) added: "
                      f"{written} sample(s) changed")
        except Exception as err:
            note = fail(f"rule not added: {message_of(err)}")
        return (*self._table_or_keep(name), note)

    def remove(self, name: str, which):
        """Remove rule number `which` (0-based) and its effect; returns (table, choices, status)."""
        try:
            if which is None or which == "":
                raise ValueError("choose a rule to remove")
            i = int(which)
            removed: list[Rule] = []

            def without(old):
                if not 0 <= i < len(old):
                    raise ValueError(f"no rule #{i + 1}: the set has {len(old)} rule(s)")
                removed.append(old[i])
                return old[:i] + old[i + 1:]

            written = self.change(name, without)
            note = ok(f"rule {removed[0].phrase!r} removed: {written} sample(s) changed")
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
        return {"rules": json.loads(self.ctx.store.get_rules(name) or "[]") if name else [], "table": table.to_dict(orient="records")}

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
