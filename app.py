"""The workbench's Gradio app: explore token scores, hand-edit masks, run unlearning, compare runs.

    python app.py        # http://127.0.0.1:7860 (GRADIO_SERVER_PORT to change), built-in `demo` model/data

Demo on a network (issue 25): WORKBENCH_AUTH=guest:secret python app.py --host 0.0.0.0 --viewer
serves a read-only workbench behind a login (ui/access.py). A non-loopback --host needs logins
(--auth-file FILE with user:password lines, or WORKBENCH_AUTH); a password is never an argument.

Layout and event wiring only: each tab lives in `ui/<tab>_tab.py` (layout, then events, with
handlers that call `engine/` and render with `tokenviz/`). The store is `WORKBENCH_STORE` when set,
else `<workbench>/store.sqlite`; `build_demo(store_path=...)` overrides both (tests).
"""
from __future__ import annotations

import argparse
import os
import sys
from functools import partial

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import gradio as gr  # noqa: E402

from engine.resolve import data_choices, model_choices  # noqa: E402
from tokenviz import CHIPS_CSS, SCALES  # noqa: E402
from ui import compare_tab, edit_tab, explore_tab, model_setup, run_tab  # noqa: E402
from ui.access import check_exposure, checker, guard_viewer, read_auth  # noqa: E402
from ui.chips_js import APP_CSS, SHORTCUTS_JS  # noqa: E402
from ui.context import (DEFAULT_DATA, DEFAULT_MODEL, AppContext, choose_prompt_format,  # noqa: E402
                        prompt_format_choice, prompt_format_line, prompt_format_options, remember_retain, retain_box)

CSS = CHIPS_CSS + APP_CSS


def build_demo(store_path: str | os.PathLike | None = None, ctx: AppContext | None = None,
               viewer: bool = False) -> gr.Blocks:
    """The app, unlaunched. Starts the built-in models' bootstrap thread (a no-op when cached).
    viewer: a read-only workbench, enforced in the server's handlers (ui/access.guard_viewer)."""
    ctx = ctx or AppContext.create(store_path)
    ctx.bootstrap.start()
    with gr.Blocks(title="Token-level unlearning workbench", analytics_enabled=False) as demo:
        gr.Markdown("## Token-level unlearning workbench" + (" (read-only viewer)" if viewer else ""))
        banner = gr.HTML(ctx.bootstrap.banner(), elem_id="bootstrap-banner", js_on_load=None)
        with gr.Row():
            model = gr.Dropdown(model_choices(), value=DEFAULT_MODEL, allow_custom_value=True, elem_id="top-model",
                                label="model (built-in name or local HF directory)")
            data = gr.Dropdown(data_choices(), value=DEFAULT_DATA, allow_custom_value=True, elem_id="top-data",
                               label="data (built-in split or TOFU directory)")
            retain = gr.Textbox(retain_box(ctx, DEFAULT_MODEL, DEFAULT_DATA), elem_id="top-retain",
                                label="retain model for forget quality (remembered per model + data)")
            prompt_pick = gr.Dropdown(prompt_format_options(), value=prompt_format_options()[0], scale=0,
                                      min_width=150, elem_id="top-prompt-choice",
                                      label="prompt format")
            scale = gr.Radio(list(SCALES), value="rank", label="colour scale", elem_id="top-scale", scale=0,
                             min_width=160, info="rank: within the row (default) · raw: the score itself")
        prompt_line = gr.Markdown(elem_id="top-prompt-format")
        smol = model_setup.SmolSetup()
        model_setup.build(smol, model, viewer)
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
        demo.load(model_setup.refresh_models, None, model, api_visibility="undocumented")
        for event in (model.change, demo.load):
            event(partial(prompt_format_choice, ctx), model, prompt_pick, api_visibility="undocumented")
        prompt_pick.input(partial(choose_prompt_format, ctx), [model, prompt_pick], prompt_line,
                          api_name="prompt_format_set").then(**explore["render"], api_visibility="undocumented")
        demo.load(edit["choices"], None, edit["mask_set"], api_visibility="undocumented").then(
            **edit["view"], api_visibility="undocumented")
        demo.load(**compare["refresh"], api_visibility="undocumented")
        demo.load(**run["restore"], api_visibility="undocumented")
        demo.load(partial(_running_top, ctx), None, [model, data], api_visibility="undocumented")
        run["marker"].change(**compare["refresh"], api_visibility="undocumented")
        compare_tab_block.select(**compare["refresh"], api_visibility="undocumented")
        edit["mask_set"].change(edit["choices"], edit["mask_set"], run["mask_set"], api_visibility="undocumented")
    demo.wb_context = ctx  # for tests and benchmarks
    demo.wb_smol_setup = smol  # the model bar's SmolLM2 setup (tests set its command)
    if viewer:
        guard_viewer(demo, ctx)
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


def launch(demo: gr.Blocks, port: int | None = None, host: str = "127.0.0.1", logins: list | None = None, **kwargs):
    """Launch with the app's CSS, never shared: on 127.0.0.1 by default; on another address only
    with logins (ui/access.check_exposure), which every page and API route then requires."""
    check_exposure(host, logins or [])
    port = port or int(os.environ.get("GRADIO_SERVER_PORT", "7860"))
    if logins:
        kwargs["auth"] = checker(logins)
    return demo.queue(default_concurrency_limit=4).launch(server_name=host, server_port=port, share=False,
                                                          css=CSS, js=SHORTCUTS_JS, **kwargs)


def parse_args(argv: list[str] | None = None):
    p = argparse.ArgumentParser(prog="python app.py", description="The workbench's web app.")
    p.add_argument("--host", default="127.0.0.1", help="address to serve on (default 127.0.0.1; another address "
                   "needs logins: --auth-file or $WORKBENCH_AUTH)")
    p.add_argument("--port", type=int, default=None, help="port (default $GRADIO_SERVER_PORT or 7860)")
    p.add_argument("--auth-file", default=None, metavar="FILE", help="logins, one user:password per line "
                   "(else $WORKBENCH_AUTH=user:password[,user:password]); a password is never an argument")
    p.add_argument("--viewer", action="store_true", help="a read-only workbench: Explore, Compare, mask sets and "
                   "runs visible; no run start, edit, delete or import (refused in the server)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        logins = read_auth(args.auth_file)
        check_exposure(args.host, logins)
    except (ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    launch(build_demo(viewer=args.viewer), port=args.port, host=args.host, logins=logins)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
