"""The workbench's Gradio app: explore token scores, hand-edit masks, run unlearning, compare runs.

    python app.py        # http://127.0.0.1:7860 (GRADIO_SERVER_PORT to change), built-in `demo` model/data

Layout and event wiring only: each tab lives in `ui/<tab>_tab.py` (layout, then events, with
handlers that call `engine/` and render with `tokenviz/`). The store is `WORKBENCH_STORE` when set,
else `<workbench>/store.sqlite`; `build_demo(store_path=...)` overrides both (tests).
"""
from __future__ import annotations

import os
from functools import partial

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import gradio as gr  # noqa: E402

from engine.resolve import data_choices, model_choices  # noqa: E402
from tokenviz import CHIPS_CSS, SCALES  # noqa: E402
from ui import compare_tab, edit_tab, explore_tab, run_tab  # noqa: E402
from ui.chips_js import APP_CSS, SHORTCUTS_JS  # noqa: E402
from ui.context import (DEFAULT_DATA, DEFAULT_MODEL, AppContext, prompt_format_line, remember_retain,  # noqa: E402
                        retain_box)

CSS = CHIPS_CSS + APP_CSS


def build_demo(store_path: str | os.PathLike | None = None, ctx: AppContext | None = None) -> gr.Blocks:
    """The app, unlaunched. Starts the built-in models' bootstrap thread (a no-op when cached)."""
    ctx = ctx or AppContext.create(store_path)
    ctx.bootstrap.start()
    with gr.Blocks(title="Token-level unlearning workbench", analytics_enabled=False) as demo:
        gr.Markdown("## Token-level unlearning workbench")
        banner = gr.HTML(ctx.bootstrap.banner(), elem_id="bootstrap-banner", js_on_load=None)
        with gr.Row():
            model = gr.Dropdown(model_choices(), value=DEFAULT_MODEL, allow_custom_value=True, elem_id="top-model",
                                label="model (built-in name or local HF directory)")
            data = gr.Dropdown(data_choices(), value=DEFAULT_DATA, allow_custom_value=True, elem_id="top-data",
                               label="data (built-in split or TOFU directory)")
            retain = gr.Textbox(retain_box(ctx, DEFAULT_MODEL, DEFAULT_DATA), elem_id="top-retain",
                                label="retain model for forget quality (remembered per model + data)")
            scale = gr.Radio(list(SCALES), value="rank", label="colour scale", elem_id="top-scale", scale=0,
                             min_width=160, info="rank: within the row (default) · raw: the score itself")
        prompt_line = gr.Markdown(elem_id="top-prompt-format")
        top = {"model": model, "data": data, "retain": retain, "scale": scale}
        with gr.Tabs():
            with gr.Tab("Explore", id="explore"):
                explore = explore_tab.build(ctx, top)
            with gr.Tab("Edit", id="edit"):
                edit = edit_tab.build(ctx, top)
            with gr.Tab("Run", id="run"):
                run = run_tab.build(ctx, top)
            with gr.Tab("Compare", id="compare") as compare_tab_block:
                compare = compare_tab.build(ctx, top)

        # ---- page load: the bootstrap banner, the first sample, mask sets, the plot
        boot_timer = gr.Timer(1.0, active=not ctx.bootstrap.done)
        boot_timer.tick(partial(_bootstrap_status, ctx), None, [banner, boot_timer], show_progress="hidden",
                        api_visibility="undocumented")
        demo.load(**explore["render"], api_visibility="undocumented")
        for source in (model, data):
            source.change(partial(retain_box, ctx), [model, data], retain, api_visibility="undocumented")
        retain.blur(partial(remember_retain, ctx), [model, data, retain], None, api_name="retain_model_set")
        retain.submit(partial(remember_retain, ctx), [model, data, retain], None, api_visibility="undocumented")
        model.change(partial(prompt_format_line, ctx), model, prompt_line, api_visibility="undocumented")
        demo.load(partial(prompt_format_line, ctx), model, prompt_line, api_visibility="undocumented")
        demo.load(edit["choices"], None, edit["mask_set"], api_visibility="undocumented").then(
            **edit["view"], api_visibility="undocumented")
        demo.load(**compare["refresh"], api_visibility="undocumented")
        demo.load(**run["restore"], api_visibility="undocumented")
        demo.load(partial(_running_top, ctx), None, [model, data], api_visibility="undocumented")
        run["marker"].change(**compare["refresh"], api_visibility="undocumented")
        compare_tab_block.select(**compare["refresh"], api_visibility="undocumented")
        edit["mask_set"].change(edit["choices"], edit["mask_set"], run["mask_set"], api_visibility="undocumented")
    demo.wb_context = ctx  # for tests and benchmarks
    return demo


def _running_top(ctx: AppContext):
    """On page load while a run is going: the model bar shows the run's model and data, so a
    reloaded page's form matches the run (and Start refuses for the right reason)."""
    snap = ctx.jobs.snapshot()
    cfg = snap.config or {}
    if not snap.active or not cfg.get("model"):
        return gr.update(), gr.update()
    return gr.update(value=cfg["model"]), gr.update(value=cfg.get("data"))


def _bootstrap_status(ctx: AppContext):
    """The banner while the built-in models build; the timer stops once they are ready."""
    return ctx.bootstrap.banner(), gr.Timer(active=not ctx.bootstrap.done)


def launch(demo: gr.Blocks, port: int | None = None, **kwargs):
    """Launch on 127.0.0.1 (never shared) with the app's CSS."""
    port = port or int(os.environ.get("GRADIO_SERVER_PORT", "7860"))
    return demo.queue(default_concurrency_limit=4).launch(server_name="127.0.0.1", server_port=port, share=False,
                                                          css=CSS, js=SHORTCUTS_JS, **kwargs)


def main() -> None:
    launch(build_demo())


if __name__ == "__main__":
    main()
