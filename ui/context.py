"""What every tab shares: the store, the explore service, the run manager, the bootstrap state,
plus small formatting helpers for status lines. No maths here."""
from __future__ import annotations

import html
import os
import re
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

import gradio as gr
from tqdm.auto import tqdm

from engine import paths
from engine.cli.setup import PROGRESS_PREFIX
from engine.explore import ExploreService
from engine.jobs import JobManager
from engine.mask_sets import MaskSets
from engine.models.builtin import builtin_is_current, ensure_builtin
from engine.prompts import check_format, choose_format, family_format, family_names, format_of, model_key
from engine.store import Store

DEFAULT_MODEL = "demo"
DEFAULT_DATA = "demo"


def store_location() -> Path:
    """`WORKBENCH_STORE` when set (tests use a temporary file), else the workbench's store."""
    env = os.environ.get("WORKBENCH_STORE")
    return Path(env).expanduser() if env else paths.store_path()


def run_with_progress(command, update, env: dict | None = None) -> None:
    """Run `command` (an `engine setup … --progress-lines` child, in the repository root) and pass
    each `progress <fraction> <message>` line of its stdout to update(fraction, message).
    RuntimeError with the last non-empty line of its stderr (the CLI's `error: …`) when it fails.
    env: the child's environment (default: this process's, so the same WORKBENCH_HOME)."""
    cmd = list(command)
    proc = subprocess.Popen(cmd, cwd=paths.REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**(os.environ if env is None else env), "PYTHONUNBUFFERED": "1"})
    err: list[str] = []
    drain = threading.Thread(target=lambda: err.extend(proc.stderr), daemon=True)  # a full stderr pipe
    drain.start()  # (transformers' progress bars) would otherwise block the child
    for line in proc.stdout:
        if line.startswith(PROGRESS_PREFIX):
            fraction, _, message = line[len(PROGRESS_PREFIX):].rstrip("\n").partition(" ")
            update(float(fraction), message)
    drain.join()
    if proc.wait() != 0:
        lines = [x.strip() for x in "".join(err).replace("\r", "\n").splitlines() if x.strip()]
        raise RuntimeError(lines[-1] if lines else f"`{' '.join(cmd[1:])}` exited with {proc.returncode}")


class Bootstrap:
    """Progress of building the built-in models: `python -m engine setup --progress-lines` in a
    child process, read by a thread. The child has its own interpreter, so the build (tiny models:
    Python-bound small ops) does not share the GIL with the server's event loop and the page's
    banner polls, which slowed the in-process build several-fold (issue 12, benchmarks/bootstrap.py)."""

    def __init__(self):
        self.fraction = 0.0
        self.message = "checking the built-in models"
        self.done = False
        self.error: str | None = None
        self._thread: threading.Thread | None = None
        self._bar = None

    def update(self, fraction: float, message: str) -> None:
        self.fraction, self.message = float(fraction), message
        if self._bar is None:
            self._bar = tqdm(total=1000, desc="built-in models", unit="‰")
        self._bar.set_description(message[:60], refresh=False)
        self._bar.update(int(fraction * 1000) - self._bar.n)

    def _build(self) -> None:
        try:
            if builtin_is_current():
                ensure_builtin(self.update)  # nothing to build: no child process needed
            else:
                self._build_in_child()
            self.fraction, self.message = 1.0, "built-in models ready"
        except Exception as err:  # shown in the page banner
            self.error = f"building the built-in models failed: {type(err).__name__}: {err}"
        finally:
            self.done = True
            if self._bar is not None:
                self._bar.close()

    command = (sys.executable, "-m", "engine", "setup", "--progress-lines")

    def _build_in_child(self) -> None:
        """Run the CLI's setup in a child process (same WORKBENCH_HOME) and relay its progress lines."""
        run_with_progress(self.command, self.update)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the build is over (or `timeout` seconds); True when it is."""
        if self._thread is not None:
            self._thread.join(timeout)
        return self.done or self._thread is None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._build, name="builtin-bootstrap", daemon=True)
            self._thread.start()

    def banner(self) -> str:
        if self.error:
            return f'<div class="wb-banner wb-error">{html.escape(self.error)}</div>'
        if self.done:
            return ""
        pct = int(self.fraction * 100)
        return (f'<div class="wb-banner" id="wb-bootstrap">First start: building the built-in benchmark and '
                f'models (about 3 minutes on 2 CPU cores). <progress max="100" value="{pct}"></progress> '
                f'{pct}% — {html.escape(self.message)}</div>')


@dataclass
class AppContext:
    """The store, the explore service, the run manager and the bootstrap, shared by every tab.

    `explore` waits for the built-in models' bootstrap first, so a handler never starts a second
    build of its own while the first start's build (with the page banner) is going.
    """

    store: Store
    explore_service: ExploreService
    jobs: JobManager
    bootstrap: Bootstrap
    histories: dict = field(default_factory=dict)  # (mask set, uid) -> tokenviz MaskEditor (Edit tab)
    edit_lock: threading.RLock = field(default_factory=threading.RLock)

    _masks: MaskSets | None = None

    @property
    def explore(self) -> ExploreService:
        self.bootstrap.wait()
        return self.explore_service

    @property
    def masks(self) -> MaskSets:
        """The mask-set service (engine.mask_sets) over this store and explore service."""
        if self._masks is None:
            self._masks = MaskSets(self.store, self.explore)
        return self._masks

    @classmethod
    def create(cls, store_path: str | Path | None = None, device: str = "auto", runner=None) -> "AppContext":
        store = Store(store_path or store_location())
        remember_prompt_formats(store)  # the prompt formats chosen per model in the model bar
        store.mark_stale_runs()  # runs of a server that died are 'interrupted', not 'running' forever
        if not store.read_only:
            from engine.train.leftovers import clean_leftovers  # deferred: torch

            clean_leftovers(store)  # a killed run's <kind>.tmp folders (issue 25)
        explore = ExploreService(device=device)
        return cls(store, explore, JobManager(store, runner, before_run=explore.release_models), Bootstrap())


# ---------------------------------------------------------------- status helpers

_MD_SPECIAL = re.compile(r"([\\`*_\[\]!#|~$])")  # no [ ], so no link or image can form
_AUTOLINK = re.compile(r"(?i)(://|www\.)")


def md_text(text: str) -> str:
    """`text` as literal text inside gr.Markdown: HTML-escaped (no tags), the Markdown and LaTeX
    punctuation backslash-escaped (no images, links, emphasis or maths from data) and URLs broken
    up so no autolink forms; line breaks become spaces (a status is one line)."""
    escaped = _MD_SPECIAL.sub(r"\\\1", html.escape(" ".join(str(text).splitlines()), quote=False))
    return _AUTOLINK.sub(lambda m: "\\:\\/\\/" if m.group(1) == "://" else m.group(1)[:3] + "\\.", escaped)


def ok(text: str) -> str:
    """A status line for an action that worked; `text` is shown literally (names come from files and users)."""
    return f"**OK:** {md_text(text)}"


def fail(text: str, toast: bool = True) -> str:
    """A status line for a failure a person caused; also a gr.Warning toast (inside an event).
    `text` is shown literally in both (the toast renders HTML, so it gets the escaped text)."""
    if toast:
        try:
            gr.Warning(html.escape(text))
        except Exception:  # outside an event (direct calls in tests): the status line is enough
            pass
    return f"**Problem:** {md_text(text)}"


def message_of(err: BaseException) -> str:
    """The readable message of an exception (KeyError's repr quotes stripped)."""
    if isinstance(err, KeyError) and err.args:
        return str(err.args[0])
    return str(err) or type(err).__name__


# ---- the model bar's retain-model box and prompt-format line (engine.store.pairings, engine.prompts)

def retain_box(ctx: "AppContext", model: str, data: str) -> str:
    """The retain model remembered for (model, data), else the built-in pairing, else blank."""
    from engine.resolve import retain_model_for  # deferred: torch

    try:
        return retain_model_for(model, data, ctx.store) or ""
    except ValueError:
        return ""


def remember_retain(ctx: "AppContext", model: str, data: str, retain: str) -> None:
    """Store the box's value for (model, data) (blank forgets it)."""
    if model and data:
        ctx.store.set_retain_model(model, data, retain)


MODEL_OWN = "model's own"  # the prompt-format picker's entry for "no choice: the model's own format"


def prompt_format_options() -> list[str]:
    """The prompt-format picker's entries: the model's own format, then every family (engine.prompts)."""
    return [MODEL_OWN, *family_names()]


def remember_prompt_formats(store: Store) -> None:
    """Apply every prompt format the store remembers (engine.prompts.choose_format), at app start."""
    for model, name in store.prompt_format_choices().items():
        try:
            choose_format(model, name)
        except ValueError:  # a name this version does not know: the model's own format
            pass


def prompt_format_choice(ctx: "AppContext", model: str) -> str:
    """The picker's value for `model`: the stored choice, else the model's own."""
    from engine.resolve import MODEL_NAMES, model_path  # deferred: torch

    if model in MODEL_NAMES and not ctx.bootstrap.done:
        return MODEL_OWN
    try:
        return ctx.store.prompt_format_of(model_key(model_path(model))) or MODEL_OWN
    except ValueError:
        return MODEL_OWN


def choose_prompt_format(ctx: "AppContext", model: str, name: str) -> str:
    """Store `name` as `model`'s prompt format (MODEL_OWN forgets the choice), apply it to every
    later load, drop the loaded models so Explore re-scores under it; the new line (or the problem)."""
    from engine.models.loading import load_tokenizer  # deferred: torch
    from engine.resolve import model_path  # deferred: torch

    name = "" if not name or name == MODEL_OWN else name
    try:
        path = model_path(model)
        if name:
            tok = load_tokenizer(path)
            check_format(family_format(name), tok)  # e.g. a chat format for a model without a chat template
        ctx.store.set_prompt_format(model_key(path), name)
        choose_format(path, name)
    except Exception as err:
        return f"prompt format: not changed ({message_of(err)})"
    ctx.explore_service.release_models()  # the loaded tokenizers hold the old format
    return prompt_format_line(ctx, model)


def prompt_format_line(ctx: "AppContext", model: str) -> str:
    """One read-only line: the model's prompt format (engine.prompts), or why it is not known yet."""
    from engine.models.loading import load_tokenizer  # deferred: torch
    from engine.resolve import MODEL_NAMES, model_path  # deferred: torch

    if model in MODEL_NAMES and not ctx.bootstrap.done:
        return "prompt format: plain (built-in; models still building)"
    try:
        tok = load_tokenizer(model_path(model))
        fmt = format_of(tok)
        example = fmt.render(tok, "…")
        example = example if len(example) <= 160 else example[:80] + " … " + example[-60:]
        return f"prompt format: {fmt.describe()} — {md_text('renders as ' + repr(example))}"
    except Exception as err:  # a model that will not load says so in its own tab; here one line
        return f"prompt format: unknown ({message_of(err)})"
