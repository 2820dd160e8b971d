"""Run: pick a loss and a selector or mask set, start one unlearning run, watch it, stop it."""
from __future__ import annotations

from dataclasses import fields

import gradio as gr

from engine.jobs import RunBusy
from engine.losses import LOSSES
from engine.params import parse_params
from engine.selectors import SELECTORS
from engine.resolve import retain_model_for
from engine.train import RunConfig
from engine.train.distributed import start_launch, visible_gpus

from . import render
from .context import AppContext, fail, message_of, ok

SOURCES = ("selector", "mask set")
FIELD_TYPES = {f.name: f.type for f in fields(RunConfig)}  # annotations as strings (postponed evaluation)


POSITIVE_FIELDS = ("lr", "beta")  # RunConfig refuses 0 for these: an empty box (sent as 0) means the default


def _form_value(name: str, value):
    """One form value as RunConfig field `name` wants it (ValueError when it cannot be one)."""
    kind = FIELD_TYPES[name]
    if kind == "int":
        return int(value)
    if kind == "float":
        return float(value)
    if kind == "bool":
        return bool(value)
    if kind == "float | None":  # empty: the model's default (RunConfig.__post_init__)
        if value is None or value == "" or (name in POSITIVE_FIELDS and float(value) == 0):
            return None  # a cleared number box arrives as 0; these fields must be > 0, so 0 is "empty"
        return float(value)
    if kind == "int | None":  # a number box where 0 means "no limit" / "the default"
        return int(value) if value and int(value) > 0 else None
    if kind == "dict":  # KEY=VALUE text
        return parse_params(value or "", name.replace("_params", " parameters").replace("_", " "))
    return value


def config_from_form(source: str, **values) -> RunConfig:
    """A RunConfig from the form: `values` by RunConfig field name; `source` says whether the
    token weights come from the selector or the mask set (the other one is dropped)."""
    if source == "mask set" and not values.get("mask_set"):
        raise ValueError("choose a mask set (make one in the Edit tab), or run with a selector")
    if source != "mask set" and not values.get("selector"):
        raise ValueError("choose a selector")
    kwargs = {name: _form_value(name, v) for name, v in values.items()}
    kwargs["selector"] = None if source == "mask set" else kwargs.get("selector")
    kwargs["mask_set"] = kwargs.get("mask_set") if source == "mask set" else None
    return RunConfig(**kwargs)


def form_value_of(config: dict, name: str):
    """The form's value for input `name` from a run's config dict (the inverse of config_from_form)."""
    if name == "source":
        return "mask set" if config.get("mask_set") else "selector"
    value = config.get(name)
    if name == "max_steps":
        return value or 0
    if name.endswith("_params"):
        return ", ".join(f"{k}={v}" for k, v in (value or {}).items())
    return value


class RunHandlers:
    def __init__(self, ctx: AppContext):
        self.ctx = ctx

    form_names: tuple[str, ...] = ()  # set by `build`: the name of each form input, in order

    def start(self, *values):
        """Start a run in the background; refused (with the reason) when one is going or it cannot run."""
        try:
            cfg = config_from_form(**dict(zip(self.form_names, values)))
            cfg.retain_model = cfg.retain_model or retain_model_for(cfg.model, cfg.data, self.ctx.store)  # model bar
            gpus = visible_gpus()
            if gpus > 1:  # several GPUs: the run goes to `accelerate launch` as a subprocess (docs/multi-gpu.md)
                proc = start_launch(cfg, gpus)
                return (ok(f"started on {gpus} GPUs as process {proc.pid} (accelerate launch); "
                           f"it appears in Compare when its first epoch is recorded"),
                        render.progress_html(self.ctx.jobs.snapshot()))
            snap = self.ctx.jobs.start(cfg)
        except RunBusy as err:
            return fail(str(err)), render.progress_html(self.ctx.jobs.snapshot())
        except Exception as err:
            return fail(f"run not started: {message_of(err)}"), render.progress_html(self.ctx.jobs.snapshot())
        source = f"mask set {cfg.mask_set!r}" if cfg.mask_set else f"selector {cfg.selector}"
        return (ok(f"started: {cfg.loss} with {source} on {cfg.model} / {cfg.data}, {cfg.epochs} epoch(s)"),
                render.progress_html(snap))

    def stop(self):
        if self.ctx.jobs.cancel():
            return ok("stopping: the run ends after its current step and is recorded as cancelled")
        return fail("no run is going")

    def poll(self, seen: str = ""):
        """(progress HTML, status, marker): the marker changes when a run starts or ends (Compare
        refreshes then); the status line is only rewritten on such a change."""
        snap = self.ctx.jobs.snapshot()
        marker = f"{snap.job}:{snap.state}" if not snap.active else f"{snap.job}:active"
        if marker == seen or snap.state == "idle":
            status = gr.update()
        elif snap.state == "failed":
            status = fail(f"run {snap.run_id if snap.run_id is not None else ''} failed: {snap.error}")
        elif snap.state in ("finished", "cancelled"):
            status = ok(f"run {snap.run_id} {snap.state}: see the Compare tab")
        else:
            status = gr.update()
        return render.progress_html(snap), status, marker

    def restore(self):
        """On page load: the form as the running run was started (a reloaded page shows its
        settings, not the defaults); unchanged when no run is going. Model and data stay as chosen
        above (they drive every tab); the progress line names the run's own."""
        snap = self.ctx.jobs.snapshot()
        keep = [n for n in self.form_names if n not in ("model", "data")]
        if not snap.active or not snap.config:
            return [gr.update() for _ in keep]
        return [gr.update(value=form_value_of(snap.config, n)) for n in keep]

    def status_json(self) -> dict:
        """The current job's snapshot as a dict (API)."""
        return self.ctx.jobs.snapshot().to_dict()


def build(ctx: AppContext, top: dict) -> dict:
    h = RunHandlers(ctx)
    d = RunConfig()
    with gr.Row():
        loss = gr.Dropdown(list(LOSSES), value=d.loss if d.loss in LOSSES else list(LOSSES)[0], label="loss",
                           elem_id="run-loss")
        source = gr.Radio(list(SOURCES), value="selector", label="token weights from")
        selector = gr.Dropdown(list(SELECTORS), value=d.selector, label="selector", elem_id="run-selector")
        mask_set = gr.Dropdown([], label="mask set", elem_id="run-mask-set", allow_custom_value=True)
    with gr.Row():
        epochs = gr.Number(value=d.epochs, precision=0, minimum=1, label="epochs", elem_id="run-epochs")
        lr = gr.Number(value=None, label="learning rate (empty: the model's default, 3e-4 built-in, else 1e-5)")
        batch_size = gr.Number(value=d.batch_size, precision=0, minimum=1, label="batch size")
        max_steps = gr.Number(value=0, precision=0, minimum=0, label="max steps (0 = no limit)",
                              elem_id="run-max-steps")
        weighting = gr.Radio(["auto", "mask", "scores"], value=d.weighting, label="weighting")
        lora = gr.Checkbox(value=d.lora, label="LoRA")
    with gr.Accordion("selector and loss parameters", open=False):
        with gr.Row():
            selector_params = gr.Textbox(label="selector parameters (KEY=VALUE, comma-separated)",
                                         placeholder="e.g. ratio=0.2, probe_lr=0.05", elem_id="run-selector-params")
            loss_params = gr.Textbox(label="loss parameters (KEY=VALUE, comma-separated)",
                                     placeholder="e.g. beta=0.25, alpha=1.0", elem_id="run-loss-params")
            orthogonalize = gr.Checkbox(value=d.orthogonalize,
                                        label="orthogonalise the forget gradient (losses with a preservation term)")
    with gr.Accordion("evaluation and checkpoints", open=False):
        with gr.Row():
            retain_eval_size = gr.Number(value=0, precision=0, minimum=0, elem_id="run-retain-eval",
                                         label="retain questions for utility (0: the protocol's; 200 on built-in data)")
            eval_tokens = gr.Number(value=0, precision=0, minimum=0, elem_id="run-eval-tokens",
                                    label="max new tokens in evaluation (0: the data's, 64 built-in, 200 TOFU)")
            eval_every = gr.Checkbox(value=d.eval_every_epoch, label="evaluate every epoch")
            save_ckpt = gr.Checkbox(value=d.save_checkpoints, label="keep best and final checkpoints")
            seed = gr.Number(value=d.seed, precision=0, label="seed")
    with gr.Row():
        start = gr.Button("start", variant="primary", elem_id="run-start")
        stop = gr.Button("stop", variant="stop", elem_id="run-stop")
    progress = gr.HTML(render.progress_html(ctx.jobs.snapshot()), elem_id="run-progress")
    status = gr.Markdown(elem_id="run-status")
    marker = gr.State("")
    timer = gr.Timer(1.0)

    # every input by the RunConfig field it fills ("source" picks selector or mask set); this order
    # is the run_start API's parameter order
    form = {"model": top["model"], "data": top["data"], "loss": loss, "source": source, "selector": selector,
            "mask_set": mask_set, "epochs": epochs, "lr": lr, "batch_size": batch_size, "max_steps": max_steps,
            "weighting": weighting, "lora": lora, "retain_eval_size": retain_eval_size,
            "eval_max_new_tokens": eval_tokens, "eval_every_epoch": eval_every, "save_checkpoints": save_ckpt,
            "seed": seed, "selector_params": selector_params, "loss_params": loss_params,
            "orthogonalize": orthogonalize}
    h.form_names = tuple(form)
    start.click(h.start, list(form.values()), [status, progress], api_name="run_start")
    stop.click(h.stop, None, status, api_name="run_stop")
    timer.tick(h.poll, marker, [progress, status, marker], show_progress="hidden", api_visibility="undocumented")
    gr.api(h.status_json, api_name="run_status")
    restore = dict(fn=h.restore, inputs=None, outputs=[w for n, w in form.items() if n not in ("model", "data")])
    return {"mask_set": mask_set, "marker": marker, "restore": restore}
