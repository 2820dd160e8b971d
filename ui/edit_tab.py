"""Edit: named mask sets over all forget samples, edited token by token, saved at once to SQLite."""
from __future__ import annotations

import json
import tempfile
from functools import partial
from pathlib import Path

import gradio as gr
import pandas as pd

from engine.selectors import SELECTORS
from tokenviz import count_targets
from tokenviz.mask_editor import MaskEditor, Refused, check_action

from . import edit_tools, render
from .chips_js import CHIPS_JS
from .context import AppContext, fail, md_text, message_of, ok

SPLIT = "forget"
TABLE_COLUMNS = ["index", "uid", "targets", "answer tokens", "edited", "cut", "question"]


class EditHandlers:
    def __init__(self, ctx: AppContext):
        self.ctx = ctx

    # -- reading

    def _sample(self, name: str, index: int):
        """(mask set meta, SampleInfo, current mask) for one sample; ValueError/IndexError with a message."""
        return self.ctx.masks.sample(name, index)  # the set's tokenizer, compared again at view

    def table(self, name: str, only_edited: bool = False) -> pd.DataFrame:
        """Targets per sample of the set (all samples, or the hand-edited ones)."""
        if not name:
            return pd.DataFrame(columns=TABLE_COLUMNS)
        ms = self.ctx.masks.get(name)
        try:  # answers cut to the model's context: "✂ kept/total" (the sample list marks them)
            fits = self.ctx.explore.fits(ms.model, ms.data, SPLIT)
        except Exception:
            fits = []
        rows = []
        for i, s in enumerate(self.ctx.explore.samples(ms.data, SPLIT)):
            entry = ms.masks.get(s.uid)
            if only_edited and not (entry and entry.edited):
                continue
            cut = f"✂ {fits[i].kept}/{fits[i].total}" if i < len(fits) and fits[i].cut else ""
            rows.append([i, s.uid, count_targets(entry.mask) if entry else 0,
                         len(entry.mask) - 1 if entry else None, bool(entry and entry.edited), cut, s.question])
        return pd.DataFrame(rows, columns=TABLE_COLUMNS)

    def view(self, name: str, index, only_edited: bool = False, note: str | None = None, scale: str = "rank"):
        """(question, chips, count, status, table) of one sample of a mask set; scale: the colour scale."""
        if not name:
            return "", "", "", "No mask set yet: create one from a selector above, or import one.", self.table(None)
        try:
            ms, info, mask = self._sample(name, index)
            total = len(self.ctx.explore.samples(ms.data, SPLIT))
        except Exception as err:
            return gr.update(), "", "", fail(message_of(err)), gr.update()
        source = ms.source_selector
        scores, label = None, "p(token)"
        if source in SELECTORS:
            row = self.ctx.explore.selector_row(ms.model, ms.data, SPLIT, info.index, source)
            if row.ok:
                scores, label = row.scores, f"{source} score"
        n_answer = sum(info.answer_mask)
        entry = ms.masks.get(info.uid)
        count = (f'<span id="edit-count" data-targets="{count_targets(mask)}">targets: <b>{count_targets(mask)}'
                 f'</b> of {n_answer} answer tokens{" · edited by hand" if entry and entry.edited else ""}</span>')
        status = note or ok(f"mask set {name!r}: {ms.model} / {ms.data}, made from {source or 'an import'}; "
                            f"{ms.n_edited} samples edited by hand")
        return (render.question_html(info, total, SPLIT), render.edit_html(info, mask, scores, label, scale or "rank"),
                count, status,
                self.table(name, only_edited))

    # -- editing

    def _editor(self, name: str, uid: str, mask: list[int]) -> MaskEditor:
        """The sample's editor, restarted at `mask` when that was changed elsewhere (bulk, another tab)."""
        ed = self.ctx.histories.get((name, uid))
        ed = MaskEditor.start(mask) if ed is None else ed.sync(mask)
        self.ctx.histories[(name, uid)] = ed
        return ed

    def apply(self, name: str, index, action: str, start=None, end=None, reset_selector: str | None = None,
              only_edited: bool = False, scale: str = "rank"):
        """One edit of one sample, saved at once; returns the refreshed view (see `view`)."""
        with self.ctx.edit_lock:
            try:
                note = self._apply(name, int(index or 0), action, start, end, reset_selector)
            except Exception as err:
                note = fail(message_of(err))
        return self.view(name, index, only_edited, note, scale)

    def _apply(self, name: str, index: int, action: str, start, end, reset_selector: str | None) -> str:
        check_action(action)
        ms, info, mask = self._sample(name, index)
        editor = self._editor(name, info.uid, mask)
        default, edited = None, True
        if action == "reset":  # to a selector's default mask; the set's own selector clears "edited"
            selector = reset_selector or ms.source_selector
            default = self.ctx.masks.selector_mask(ms, index, selector)
            edited = selector != ms.source_selector
        try:
            new = editor.apply(action, mask, info.answer_mask, render.shown_tokens(info), start, end, default)
        except Refused as err:
            return fail(str(err), toast=False)
        if new is None:
            return ok(f"nothing to {action}")
        self.ctx.masks.save(name, info.uid, info.text_hash, new, edited=edited)
        return ok(f"{action}: saved ({count_targets(new)} targets)")

    def api_apply(self, name: str, index: int, action: str, start: int | None = None, end: int | None = None,
                  selector: str | None = None) -> dict:
        """The same edit as a chip gesture, for API clients: returns {status, mask, targets}."""
        with self.ctx.edit_lock:
            try:
                status = self._apply(name, int(index or 0), action, start, end, selector)
            except Exception as err:
                status = fail(message_of(err), toast=False)
        try:
            _, _, mask = self._sample(name, index)
        except Exception:
            mask = None
        return {"status": status, "mask": mask, "targets": None if mask is None else count_targets(mask)}

    def button(self, name: str, index, reset_selector: str | None, only_edited: bool, scale: str = "rank",
               action: str = "undo"):
        """The undo / redo / reset buttons."""
        return self.apply(name, index, action, reset_selector=reset_selector, only_edited=only_edited, scale=scale)

    def on_chip(self, name: str, index, only_edited: bool, evt: gr.EventData, scale: str = "rank"):
        """A chip gesture from the browser (see ui/chips_js.py)."""
        data = getattr(evt, "_data", None) or {}
        return self.apply(name, index, data.get("action", "toggle"), data.get("start"), data.get("end"),
                          only_edited=only_edited, scale=scale)

    def word_of_anchor(self, name: str, index, only_edited: bool, scale: str = "rank"):
        """The 'select whole word' button: the word of the last clicked token."""
        try:
            ms, info, _ = self._sample(name, index)
        except Exception as err:
            return self.view(name, index, only_edited, fail(message_of(err)), scale)
        ed = self.ctx.histories.get((name, info.uid))
        if ed is None or ed.anchor is None:
            return self.view(name, index, only_edited, fail("click a token first, then select its word"), scale)
        return self.apply(name, index, "word", ed.anchor, ed.anchor, only_edited=only_edited, scale=scale)

    # -- mask sets

    def choices(self, value: str | None = None):
        names = self.ctx.masks.names()
        if value not in names:
            value = self.latest() if names else None
        return gr.update(choices=names, value=value)

    def latest(self) -> str | None:
        """The mask set a reloaded page opens: the running run's, else the most recently updated one
        that has samples."""
        snap = self.ctx.jobs.snapshot()
        running = (snap.config or {}).get("mask_set") if snap.active else None
        if running and running in self.ctx.masks.names():
            return running
        return self.ctx.masks.latest()

    def create(self, name: str, selector: str, model: str, data: str, progress=gr.Progress()):
        """A new mask set from a selector's default masks over all forget samples of model/data."""
        name = (name or "").strip()
        try:
            n = self.ctx.masks.create(name, selector, model, data, progress=lambda f: progress(
                f, desc=f"scoring forget samples with {selector}"))
        except Exception as err:
            return self.choices(), fail(f"mask set not created: {message_of(err)}")
        return self.choices(name), ok(f"mask set {name!r} created from {selector} ({n} samples)")

    def duplicate(self, name: str, new: str):
        try:
            self.ctx.masks.duplicate(name, new)
        except Exception as err:
            return self.choices(name), fail(f"not duplicated: {message_of(err)}")
        return self.choices(new.strip()), ok(f"{name!r} duplicated as {new.strip()!r}")

    def rename(self, name: str, new: str):
        try:
            self.ctx.masks.rename(name, new)
        except Exception as err:
            return self.choices(name), fail(f"not renamed: {message_of(err)}")
        with self.ctx.edit_lock:
            for key in [k for k in self.ctx.histories if k[0] == name]:
                self.ctx.histories[(new.strip(), key[1])] = self.ctx.histories.pop(key)
        return self.choices(new.strip()), ok(f"{name!r} renamed to {new.strip()!r}")

    def delete(self, name: str):
        try:
            self.ctx.masks.delete(name)
        except Exception as err:
            return self.choices(name), fail(f"not deleted: {message_of(err)}"), gr.update(visible=False)
        return self.choices(), ok(f"mask set {name!r} deleted"), gr.update(visible=False)

    def ask_delete(self, name: str):
        if not name:
            return gr.update(visible=False), fail("choose a mask set to delete")
        return gr.update(visible=True), f"Delete mask set **{md_text(name)}** and all its edits? This cannot be undone."

    def export(self, name: str):
        try:
            payload = self.ctx.masks.export(name)
        except Exception as err:
            return None, fail(f"not exported: {message_of(err)}")
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
        path = Path(tempfile.mkdtemp(prefix="maskset-")) / f"{safe}.json"
        path.write_text(json.dumps(payload, indent=1))
        return str(path), ok(f"exported {name!r} ({len(payload['masks'])} samples)")

    def import_file(self, file, new_name: str, current: str | None = None):
        """Import an exported JSON file; a bad file is refused with the reason, nothing written, and
        the open mask set (`current`) stays open (the next edit goes where it went before)."""
        if file is None:
            return self.choices(current), fail("choose a mask-set JSON file to import")
        path = Path(file if isinstance(file, str) else getattr(file, "name", file))
        try:
            name = self.ctx.masks.import_file(path, new_name)  # size, JSON, tokenizer and samples checked first
        except Exception as err:
            return self.choices(current), fail(f"{path.name} was not imported: {message_of(err)}")
        return self.choices(name), ok(f"imported {path.name} as {name!r}")

    def bulk(self, name: str, selector: str, keep_edited: bool, progress=gr.Progress()):
        """Apply a selector's default mask to every sample (hand-edited ones kept when asked)."""
        try:
            if not name:
                raise ValueError("choose a mask set")
            with self.ctx.edit_lock:
                written, total = self.ctx.masks.bulk_apply(name, selector, keep_edited, progress=lambda f: progress(
                    f, desc=f"scoring forget samples with {selector}"))
                for uid in written:
                    self.ctx.histories.pop((name, uid), None)
        except Exception as err:
            return fail(f"not applied: {message_of(err)}")
        return ok(f"{selector} applied to {len(written)} of {total} samples"
                  + (" (hand-edited samples kept)" if keep_edited else ""))


def build(ctx: AppContext, top: dict) -> dict:
    h = EditHandlers(ctx)
    names = list(SELECTORS)
    with gr.Row():
        mask_set = gr.Dropdown(label="mask set", choices=[], elem_id="edit-set", scale=3, allow_custom_value=True)
        refresh = gr.Button("↻", size="sm", scale=0, min_width=40)
    with gr.Row():
        new_name = gr.Textbox(label="new mask set name", elem_id="edit-new-name", scale=2)
        new_selector = gr.Dropdown(names, value="oracle" if "oracle" in names else names[0],
                                   label="start from selector", elem_id="edit-new-selector", scale=1)
        create = gr.Button("create from selector (model/data above)", variant="primary", elem_id="edit-create")
    with gr.Accordion("duplicate · rename · delete · export · import", open=False):
        with gr.Row():
            other_name = gr.Textbox(label="name for duplicate / rename / import", scale=2)
            dup = gr.Button("duplicate")
            ren = gr.Button("rename")
            ask = gr.Button("delete…", variant="stop", elem_id="edit-delete")
        with gr.Row(visible=False) as confirm_row:
            confirm_md = gr.Markdown()
            confirm = gr.Button("yes, delete", variant="stop", elem_id="edit-delete-confirm")
            cancel = gr.Button("cancel")
        with gr.Row():
            export = gr.Button("export JSON")
            export_file = gr.File(label="exported file", interactive=False)
            upload = gr.File(label="import JSON", file_types=[".json"], type="filepath")
    with gr.Row():
        prev_btn = gr.Button("◀ previous", size="sm", elem_id="edit-prev")
        index = gr.Number(value=0, precision=0, minimum=0, label="sample index", elem_id="edit-index")
        next_btn = gr.Button("next ▶", size="sm", elem_id="edit-next")
    question = gr.HTML(elem_id="edit-question")
    gr.Markdown("Click a token to toggle it · shift-click or drag to brush a span · alt-click selects a whole "
                "word · the closing EOS is never a target.")
    chips = gr.HTML(elem_id="edit-chips", js_on_load=CHIPS_JS, min_height=60)
    count = gr.HTML(elem_id="edit-count-box")
    with gr.Row():
        undo = gr.Button("↶ undo", elem_id="edit-undo")
        redo = gr.Button("↷ redo", elem_id="edit-redo")
        word = gr.Button("select whole word (last clicked)", elem_id="edit-word")
        reset_selector = gr.Dropdown(names, value=None, label="reset / bulk selector", scale=1)
        reset = gr.Button("reset sample to selector", elem_id="edit-reset")
    with gr.Row():
        keep = gr.Checkbox(value=True, label="bulk: keep hand-edited samples")
        bulk = gr.Button("apply selector to all samples")
    status = gr.Markdown(elem_id="edit-status")  # the sample view and its edits
    set_status = gr.Markdown(elem_id="edit-set-status")  # create, duplicate, rename, delete, import, bulk
    tools_slot = gr.Column()  # filled by ui/edit_tools.py once the view is wired
    only_edited = gr.Checkbox(value=False, label="list only samples edited by hand")
    table = gr.Dataframe(headers=TABLE_COLUMNS, interactive=False, label="targets per sample (click a row to open)",
                         max_height=300)

    # ---- wiring
    view_out = [question, chips, count, status, table]
    scale = top.get("scale")
    scale_in = [scale] if scale else []
    view = dict(fn=_with_scale(h.view), inputs=[mask_set, index, only_edited] + scale_in, outputs=view_out)
    mask_set.change(**view, api_name="edit_view")
    index.submit(**view, api_visibility="undocumented")
    only_edited.change(**view, api_visibility="undocumented")
    refresh.click(h.choices, mask_set, mask_set, api_name="mask_sets")
    lock = dict(concurrency_limit=1, concurrency_id="edit")
    chips.click(h.on_chip, [mask_set, index, only_edited] + scale_in, view_out, api_visibility="undocumented",
                show_progress="hidden", **lock)
    for btn, action in ((undo, "undo"), (redo, "redo"), (reset, "reset")):
        btn.click(partial(h.button, action=action), [mask_set, index, reset_selector, only_edited] + scale_in, view_out,
                  api_visibility="undocumented", **lock)
    word.click(h.word_of_anchor, [mask_set, index, only_edited] + scale_in, view_out, api_visibility="undocumented", **lock)
    gr.api(h.api_apply, api_name="edit_apply", concurrency_limit=1, concurrency_id="edit")
    if scale:
        scale.change(**view, api_visibility="undocumented")
    prev_btn.click(partial(_step, ctx, delta=-1), [mask_set, index], index, api_visibility="undocumented").then(
        **view, api_visibility="undocumented")
    next_btn.click(partial(_step, ctx, delta=+1), [mask_set, index], index, api_visibility="undocumented").then(
        **view, api_visibility="undocumented")
    table.select(_row_index, table, index, api_visibility="undocumented").then(**view, api_visibility="undocumented")

    create.click(h.create, [new_name, new_selector, top["model"], top["data"]], [mask_set, set_status],
                 api_name="mask_set_create")
    dup.click(h.duplicate, [mask_set, other_name], [mask_set, set_status], api_name="mask_set_duplicate")
    ren.click(h.rename, [mask_set, other_name], [mask_set, set_status], api_name="mask_set_rename")
    ask.click(h.ask_delete, mask_set, [confirm_row, confirm_md], api_visibility="undocumented")
    confirm.click(h.delete, mask_set, [mask_set, set_status, confirm_row], api_name="mask_set_delete")
    cancel.click(_hide, None, confirm_row, api_visibility="undocumented")
    export.click(h.export, mask_set, [export_file, set_status], api_name="mask_set_export")
    upload.upload(h.import_file, [upload, other_name, mask_set], [mask_set, set_status], api_name="mask_set_import")
    bulk.click(h.bulk, [mask_set, reset_selector, keep], set_status, api_name="mask_set_bulk", **lock).then(
        **view, api_visibility="undocumented")
    mask_set.change(partial(_source, ctx), mask_set, reset_selector, api_visibility="undocumented")
    with tools_slot:
        edit_tools.build(ctx, dict(mask_set=mask_set, index=index, chips=chips, status=status, view=view,
                                   choices=h.choices), top)
    return {"mask_set": mask_set, "choices": h.choices, "view": view, "handlers": h}


def _source(ctx: AppContext, name: str | None):
    """The selector a mask set was made from (the default for reset and bulk)."""
    try:
        return ctx.masks.get(name).source_selector if name else None
    except Exception:
        return gr.update()


def _step(ctx: AppContext, name: str | None, index, delta: int = 1) -> int:
    """The next/previous sample, wrapping around at both ends (as Explore does)."""
    try:
        ms = ctx.masks.get(name)
        total = len(ctx.explore.samples(ms.data, SPLIT))
    except Exception:  # no set chosen: the view says so
        return max(0, int(index or 0) + delta)
    return (int(index or 0) + delta) % max(1, total)


def _with_scale(view):
    """`view` with the shared colour scale as its 4th input (the status note stays keyword-only)."""
    def fn(name, index, only_edited=False, scale="rank"):
        return view(name, index, only_edited, scale=scale)
    fn.__doc__ = view.__doc__
    return fn


def _hide():
    return gr.update(visible=False)


def _row_index(table, evt: gr.SelectData):
    """The sample index of the clicked table row."""
    try:
        return int(table.iloc[evt.index[0]]["index"])
    except Exception:
        return gr.update()
