"""Explore: one sample's answer as token chips, one row per registered selector."""
from __future__ import annotations

import threading
import time
from functools import partial
from html import escape as ESC

import gradio as gr

from engine.explore import MASK_RULES, SPLITS
from engine.selectors import SELECTORS
from engine.train import fit_atwu_scorer

from . import explore_views as views
from . import render
from .context import AppContext, fail, md_text, message_of, ok

FIT_BUTTON_JS = r"""
element.addEventListener('click', (e) => {
  if (e.target.closest && e.target.closest('.wb-fit-atwu')) trigger('click', {action: 'fit-atwu'});
});
"""  # the ATWU row's in-place "fit" button (its HTML comes from ui/render.error_row)


class ExploreHandlers:
    """Event handlers: adapt widget values, call the explore service, render with tokenviz."""

    def __init__(self, ctx: AppContext):
        self.ctx = ctx

    def render(self, model: str, data: str, split: str, index, rule: str, k, threshold, scale: str = "rank",
               other: str | None = None, group: str = "tokens", side_selector: str | None = "wga", progress=None):
        """(question HTML, chips HTML, status) for one sample; a failure becomes the status.
        progress: called with each phase of uncached work (ExploreService.view).
        scale: "rank" (colour = rank within the row) or "raw" (tokenviz.SCALES). other: a second model
        (name, directory or "run N:kind") for the Δ log-prob row and the side-by-side table; group:
        "tokens", "words (max)" or "words (mean)"; side_selector: the selector shown for both models."""
        try:
            index = int(index or 0)
            total = len(self.ctx.explore.samples(data, split))
            view = self.ctx.explore.view(model, data, split, index, progress=progress)
        except Exception as err:  # unknown model dir, bad data, index out of range: said in the page
            return gr.update(), gr.update(), fail(message_of(err))
        unavailable = [n for n, r in view.rows.items() if not r.ok]
        note = f"; unavailable here: {', '.join(unavailable)} (see their rows)" if unavailable else ""
        if view.info.fit is not None and view.info.fit.cut:
            note += f"; ✂ this answer is cut: {view.info.fit.note()}"
        try:
            summary = render.cut_summary(self.ctx.explore.fits(model, data, split))
        except Exception:  # the count is a note; the view above is what was asked for
            summary = ""
        note += f"\n\n{summary}" if summary else ""
        masks = self.ctx.explore.masks(view, rule, int(k), float(threshold))
        word_group = views.GROUPS.get(group or "tokens")
        extra, side, label, other_note = views.sample_rows(self.ctx, view, masks, model, data, split, index, other,
                                                          side_selector)
        if other_note:
            note += f"; {other_note}"
        return (render.question_html(view.info, total, split),
                views.extras_html(view, extra, side, label, scale or "rank", word_group)  # summary rows first
                + render.explore_html(view, masks, scale or "rank", word_group),
                ok(f"{len(view.rows)} selectors on {model} / {data}{note}"))

    def render_live(self, model: str, data: str, split: str, index, rule: str, k, threshold, scale: str = "rank",
                    other: str | None = None, group: str = "tokens", side_selector: str | None = "wga",
                    shown: str | None = None):
        """`render` for the page: while a chunk is being scored (a real model: a minute per chunk on a
        CPU) it yields the phase every half second into the working line (loading which model,
        p(token), selector k of n, which samples), says that the chips still show the previous view,
        and names the model being loaded in the status; other tabs and widgets stay usable.
        Yields (question, chips, status, working line, what the chips now show)."""
        phase: dict = {}
        result: list = []
        args = (model, data, split, index, rule, k, threshold, scale, other, group, side_selector)
        worker = threading.Thread(target=lambda: result.append(self.render(*args, progress=phase.update)),
                                  daemon=True)
        worker.start()
        worker.join(0.3)
        last = None
        started = time.monotonic()
        while worker.is_alive():
            line = working_html(phase, shown, time.monotonic() - started)
            if line != last:
                last = line
                yield (gr.update(), gr.update(), working_status(phase, model), line, gr.update())
            worker.join(0.5)
        question, chips, status = result[0] if result else (gr.update(), gr.update(), fail("the view failed"))
        now = f"{model} · {data} · {split} sample {index}" if isinstance(chips, str) else gr.update()
        yield question, chips, status, "", now

    def export(self, model: str, data: str, split: str, index, rule: str, k, threshold, scale: str = "rank",
               other: str | None = None, group: str = "tokens", side_selector: str | None = "wga"):
        """([SVG, CSV] files of the sample's view as shown, the SVG with a PNG button, status)."""
        try:
            index = int(index or 0)
            view = self.ctx.explore.view(model, data, split, index)
            masks = self.ctx.explore.masks(view, rule, int(k), float(threshold))
            extra, *_ = views.sample_rows(self.ctx, view, masks, model, data, split, index, other, side_selector)
            svg_path, csv_path, svg = views.write_exports(view, masks, extra, views.GROUPS.get(group or "tokens"),
                                                          scale or "rank")
        except Exception as err:
            return None, "", fail(f"not exported: {message_of(err)}")
        png = f"{svg_path.stem}.png"
        preview = (f'<div class="wb-export"><button class="wb-export-png" type="button" id="wb-export-png" '
                   f'data-name="{render.ESC(png)}">download PNG</button><div class="wb-export-svg" '
                   f'style="overflow-x:auto">{svg}</div></div>')
        return [str(svg_path), str(csv_path)], preview, ok(f"exported sample {index}: {svg_path.name}, {csv_path.name}")

    def other_choices(self, retain: str | None):
        """The second-model dropdown's choices: the retain model and every run checkpoint."""
        return gr.update(choices=views.other_choices(self.ctx, retain))

    def goto(self, data: str, split: str, text: str, index, delta: int = 1):
        """Next/previous sample: through the search matches when a search is active, else all."""
        try:
            matches = self.ctx.explore.search(data, split, text)
        except Exception as err:
            return gr.update(), fail(message_of(err))
        if not matches:
            return gr.update(), fail(f"no sample matches {text!r}")
        index = int(index or 0)
        after = [i for i in matches if (i > index if delta > 0 else i < index)]
        target = (after[0] if delta > 0 else after[-1]) if after else (matches[0] if delta > 0 else matches[-1])
        return target, search_state(target, matches, text)

    def _cut(self, model: str | None, data: str, split: str) -> set[int]:
        """Indices of the samples cut to fit the model's context (empty when unknown)."""
        try:
            return {i for i, f in enumerate(self.ctx.explore.fits(model, data, split)) if f.cut} if model else set()
        except Exception:
            return set()

    def search(self, data: str, split: str, text: str, model: str | None = None):
        """Matches as dropdown choices ("index: question"); jumps to the first one."""
        try:
            samples = self.ctx.explore.samples(data, split)
            matches = self.ctx.explore.search(data, split, text)
        except Exception as err:
            return gr.update(), gr.update(), fail(message_of(err))
        if not matches:
            return gr.update(choices=[], value=None), gr.update(), fail(f"no sample matches {text!r}")
        cut = self._cut(model, data, split)
        choices = [(f"{'✂ ' if i in cut else ''}{i}: {samples[i].question[:80]}", i) for i in matches[:500]]
        return gr.update(choices=choices, value=matches[0]), matches[0], search_state(matches[0], matches, text)

    def on_chips(self, model: str, data: str, steps, evt: gr.EventData, progress=gr.Progress()):
        """A click inside the chips: the ATWU row's in-place fit button (ui/render.error_row)."""
        if (getattr(evt, "_data", None) or {}).get("action") != "fit-atwu":
            return gr.update()
        return self.fit_atwu(model, data, steps, progress)

    def fit_atwu(self, model: str, data: str, steps, progress=gr.Progress()):
        """Fit the ATWU scorer (engine.train.fit_atwu_scorer), then drop cached atwu scores."""
        steps = int(steps or 40)

        def report(info) -> None:  # an engine.train.ProgressEvent
            progress((info.step or 0) / steps, desc=f"fitting the ATWU scorer, step {info.step}")

        try:
            path = fit_atwu_scorer(model, data, steps=steps, progress=report)
        except Exception as err:
            return fail(f"fitting the ATWU scorer failed: {message_of(err)}")
        self.ctx.explore.forget("atwu")
        return ok(f"ATWU scorer fitted ({steps} steps) and saved: {path.name}")


def working_status(phase: dict, model: str) -> str:
    """The status line while a view is being computed: it names the model being loaded or scored."""
    what = "loading model" if phase.get("phase") == "loading model" else "scoring with"
    return f"⏳ {what} **{md_text(model)}** …"


def working_html(phase: dict, shown: str | None, seconds: float) -> str:
    """The working line above the chips: the phase (loading the model, p(token), selector k of n),
    the samples being scored, and that the chips below are still the previous view."""
    p = phase.get("phase") or "starting"
    what = {"loading model": f"loading the model <b>{ESC(str(phase.get('model', '')))}</b>",
            "p(token)": "computing p(token) under the model",
            "selector": f"selector {phase.get('k')} of {phase.get('n')}: <b>{ESC(str(phase.get('selector')))}</b>",
            }.get(p, ESC(p))
    first, last, total = phase.get("samples") or (None, None, None)
    samples = f" · samples {first}–{last} of {total} (one chunk, scored once, then cached)" if first is not None else ""
    stale = (f'<div class="wb-stale-note">the chips below still show the previous view: <b>{ESC(shown)}</b></div>'
             if shown else "")
    return (f'<div class="wb-working" data-phase="{ESC(p)}" data-k="{phase.get("k") or ""}" '
            f'data-n="{phase.get("n") or ""}">⏳ {what}{samples} · {seconds:.0f} s{stale}</div>')


def search_state(index: int, matches: list[int], text: str) -> str:
    """Where next/previous stand: 'match 2 of 7 for …' while a search is active, else 'sample i of n'."""
    if text:
        return ok(f"match {matches.index(index) + 1} of {len(matches)} for {text!r} (sample {index}); "
                  f"next/previous step through the matches: clear the search box to step through all samples")
    return ok(f"sample {index} ({matches.index(index) + 1} of {len(matches)} samples)")


def build(ctx: AppContext, top: dict) -> dict:
    """Lay out the Explore tab, then wire its events. `top`: the shared model and data widgets."""
    h = ExploreHandlers(ctx)
    with gr.Row():  # one row: a chip is on the first screen at 1366×768
        split = gr.Radio(list(SPLITS), value="forget", label="split", scale=3)
        prev_btn = gr.Button("◀ previous", size="sm", elem_id="explore-prev", scale=0, min_width=90)
        index = gr.Number(value=0, precision=0, minimum=0, label="sample index", elem_id="explore-index", scale=1,
                          min_width=90)
        next_btn = gr.Button("next ▶", size="sm", elem_id="explore-next", scale=0, min_width=80)
        search = gr.Textbox(label="search question/answer text", placeholder="e.g. Porto", scale=2,
                            elem_id="explore-search")
        matches = gr.Dropdown(label="matches", choices=[], scale=2, allow_custom_value=True)
    search_status = gr.Markdown(elem_id="explore-search-status")
    question = gr.HTML(elem_id="explore-question")
    gr.HTML(render.KEY_LINE, elem_id="explore-key", padding=False)
    working = gr.HTML(elem_id="explore-working")
    shown = gr.State(None)  # what the chips show ("model · data · split sample i"): the stale view's label
    chips = gr.HTML(elem_id="explore-chips", js_on_load=FIT_BUTTON_JS, min_height=120)
    status = gr.Markdown(elem_id="explore-status")
    with gr.Row():
        rule = gr.Radio(list(MASK_RULES), value="default", label="mask rule",
                        info="default: each selector's own mask; top-k / threshold: from its cached scores")
        k = gr.Slider(1, 40, value=5, step=1, label="top-k", elem_id="explore-k")
        threshold = gr.Slider(0.0, 1.0, value=0.5, step=0.05, label="threshold (row-normalised score)")
    with gr.Row():
        group = gr.Radio(list(views.GROUPS), value="tokens", label="chips", elem_id="explore-group",
                         info="words: one chip per word, score = max or mean of its tokens'")
        other = gr.Dropdown([], value=None, label="second model: Δ log-prob row and side by side",
                            allow_custom_value=True, elem_id="explore-other",
                            info="the retain model, a run checkpoint (run N:best/final) or any model directory")
        side_selector = gr.Dropdown(list(SELECTORS), value="wga", label="selector shown for both models",
                                    elem_id="explore-side-selector")
    with gr.Row():
        export_btn = gr.Button("export this sample's view (SVG, CSV, PNG)", elem_id="explore-export", scale=0)
        export_files = gr.File(label="exported files", file_count="multiple", elem_id="explore-export-files",
                               interactive=False)
    export_view = gr.HTML(elem_id="explore-export-view", js_on_load=views.EXPORT_PNG_JS)
    with gr.Accordion("how to read this", open=False, elem_id="explore-how"):
        gr.HTML(render.HOW_TO_READ)
    with gr.Row():
        atwu_steps = gr.Number(value=40, precision=0, minimum=1, label="ATWU fit steps", scale=1)
        fit_btn = gr.Button("fit ATWU scorer", elem_id="fit-atwu", scale=1)
    fit_status = gr.Markdown(elem_id="explore-fit-status")

    model, data = top["model"], top["data"]
    view_inputs = [model, data, split, index, rule, k, threshold, top["scale"], other, group, side_selector]
    view_outputs = [question, chips, status]
    api_only = gr.Button(visible=False)  # the API's one-shot render (the page uses render_live)
    api_only.click(fn=h.render, inputs=view_inputs, outputs=view_outputs, api_name="explore_render")
    api = dict(fn=h.render_live, inputs=view_inputs + [shown], outputs=view_outputs + [working, shown],
               show_progress="hidden")
    index.submit(**api, api_visibility="undocumented")
    export_btn.click(h.export, view_inputs, [export_files, export_view, status], api_name="explore_export")
    for widget in (group, other, side_selector):
        widget.change(**api, api_visibility="undocumented", trigger_mode="always_last")
    other.focus(h.other_choices, top["retain"], other, api_visibility="undocumented")
    for widget in (rule, k, threshold, top["scale"]):
        widget.change(**api, api_visibility="undocumented", trigger_mode="always_last")
    for widget in (model, data, split):
        widget.change(lambda: 0, outputs=index, api_visibility="undocumented").then(
            **api, api_visibility="undocumented")
    prev_btn.click(partial(h.goto, delta=-1), [data, split, search, index], [index, search_status],
                   api_visibility="undocumented").then(**api, api_visibility="undocumented")
    next_btn.click(partial(h.goto, delta=+1), [data, split, search, index], [index, search_status],
                   api_name="explore_next").then(**api, api_visibility="undocumented")
    search.submit(h.search, [data, split, search, model],
                  [matches, index, search_status],
                  api_name="explore_search").then(**api, api_visibility="undocumented")
    matches.input(_match_index, matches, index,
                  api_visibility="undocumented").then(**api, api_visibility="undocumented")
    fit_btn.click(h.fit_atwu, [model, data, atwu_steps], fit_status, api_name="fit_atwu").then(
        **api, api_visibility="undocumented")
    chips.click(h.on_chips, [model, data, atwu_steps], fit_status, api_visibility="undocumented").then(
        **api, api_visibility="undocumented")
    return {"render": api, "index": index, "chips": chips, "status": status, "prev": prev_btn, "next": next_btn}


def _match_index(match):
    """The sample index of a chosen search match (unchanged when none)."""
    return match if match is not None else gr.update()
