"""Background unlearning runs for the app: one at a time per process, a thread, a progress snapshot.

    jobs = JobManager(store)
    jobs.start(RunConfig(epochs=1))      # RunBusy when a run is already going
    jobs.snapshot()                      # {"state": "running", "epoch": 1, "step": 3, ...}
    jobs.cancel()                        # the run stops before its next step, recorded 'cancelled'

The run itself is `engine.train.unlearn(config, store, progress=…, cancel=threading.Event())`;
the thread outlives any page, so a reloaded page polls `snapshot()` and picks the run up again.
No Gradio here.
"""
from __future__ import annotations

import copy
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

from .models.device import release_memory
from .train import check_run, unlearn
from .train.progress import ProgressEvent


PHASE_OF_REPORT = {"train": "training", "eval": "training"}  # after an evaluation's metrics, training resumes


def phase_message(s: "JobSnapshot") -> str:
    """What the run is doing now, in words (the Run tab's line)."""
    if s.phase == "loading":
        return "loading the model, the data and the token weights"
    if s.phase == "evaluating":
        which = "the starting model (epoch 0)" if not s.epoch else f"epoch {s.epoch}"
        done = f": {s.eval_done} of {s.eval_total} questions scored" if s.eval_total else ""
        return f"evaluating {which}{done}"
    if s.phase == "saving":
        return "saving a checkpoint"
    return "training"


class RunBusy(RuntimeError):
    """A run is already going in this server; the message says which."""


@dataclass
class JobSnapshot:
    """What the app shows about the current (or latest) run.

    state: idle | starting | running | cancelling | finished | cancelled | failed.
    """

    state: str = "idle"
    job: int = 0  # increases with every started job
    run_id: int | None = None
    phase: str | None = None  # loading | evaluating | training | saving (then None once it ended)
    eval_done: int | None = None  # questions scored so far in the current evaluation
    eval_total: int | None = None
    phase_seconds: dict | None = None  # seconds per phase, once the run ended (from its record)
    epoch: int | None = None
    epochs: int | None = None
    step: int = 0
    total_steps: int | None = None
    loss: float | None = None
    last_metrics: dict | None = None
    message: str = "no run started yet"
    error: str | None = None
    started: float | None = None
    finished: float | None = None
    config: dict = field(default_factory=dict)

    @property
    def active(self) -> bool:
        return self.state in ("starting", "running", "cancelling")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["active"] = self.active
        return d


def preflight(config, store) -> None:
    """Raise ValueError naming the problem for a run that cannot start, before any thread
    (`engine.train.check_run`: the same checks the CLI and the run itself make)."""
    check_run(config, store)


class JobManager:
    """Runs at most one unlearning job at a time in a daemon thread and keeps its progress.

    runner: the function that does the work, `unlearn(config, store, progress, cancel)` by default
    (tests may pass a stand-in). store: an engine.store.Store shared with the app. before_run: a
    hook run first in the job's thread (the app frees Explore's cached models there, so a run's
    own model copy does not sit beside them on the device).
    """

    def __init__(self, store, runner: Callable | None = None, before_run: Callable[[], None] | None = None):
        self.store = store
        self._runner = runner
        self.before_run = before_run  # called in the run's thread before it loads (e.g. free Explore's models)
        self._lock = threading.Lock()
        self._snap = JobSnapshot()
        self._thread: threading.Thread | None = None
        self._cancel: threading.Event | None = None

    @property
    def runner(self) -> Callable:
        if self._runner is None:
            self._runner = unlearn
        return self._runner

    def snapshot(self) -> JobSnapshot:
        with self._lock:
            return copy.deepcopy(self._snap)

    def busy(self) -> bool:
        with self._lock:
            return self._thread is not None and self._thread.is_alive()

    def start(self, config, check: bool = True) -> JobSnapshot:
        """Start `config` in a thread; RunBusy when one is going, ValueError when it cannot run."""
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                s = self._snap
                which = f"run {s.run_id}" if s.run_id is not None else "a run"
                raise RunBusy(f"{which} is already going ({s.state}, step {s.step}/{s.total_steps or '?'}): "
                              f"one run at a time per server; stop it or wait for it to finish")
        if check:
            preflight(config, self.store)
        with self._lock:
            if self._thread is not None and self._thread.is_alive():  # lost a race with another start
                raise RunBusy("a run is already going: one run at a time per server")
            cancel = threading.Event()
            self._snap = JobSnapshot(state="starting", job=self._snap.job + 1, phase="loading",
                                     epochs=config.epochs, message="loading the model and computing token weights",
                                     started=time.time(), config=config.to_dict())
            self._cancel = cancel
            self._thread = threading.Thread(target=self._run, args=(config, cancel), name="unlearning-run",
                                            daemon=True)
            self._thread.start()
            return copy.deepcopy(self._snap)

    def cancel(self) -> bool:
        """Ask the running job to stop before its next step; False when nothing runs."""
        with self._lock:
            if self._thread is None or not self._thread.is_alive() or self._cancel is None:
                return False
            self._cancel.set()
            self._snap.state = "cancelling"
            self._snap.message = "stopping after the current step"
            return True

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the current job ends; True when none is running afterwards."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return not self.busy()

    # -- the thread

    def _progress(self, info: ProgressEvent | dict) -> None:
        """One report of engine.train.unlearn (a ProgressEvent; a stand-in runner's dict is read as
        one): 'train' (a step), 'eval' (an evaluation's metrics) or the start of a phase ('loading',
        'evaluating' with questions scored, 'saving')."""
        event = ProgressEvent.of(info)
        with self._lock:
            s = self._snap
            s.run_id = event.run_id if event.run_id is not None else s.run_id
            s.phase = PHASE_OF_REPORT.get(event.phase, event.phase)
            s.epoch = event.epoch
            s.step = event.step or 0
            s.total_steps = event.total_steps
            if event.loss is not None:
                s.loss = float(event.loss)
            if event.metrics is not None and event.metrics.to_dict():
                s.last_metrics = {k: v for k, v in event.metrics.to_dict().items()
                                  if isinstance(v, (int, float)) or v is None}
            if s.phase == "evaluating":
                s.eval_done = event.eval_done or 0
                s.eval_total = event.eval_total if event.eval_total is not None else s.eval_total
            if s.state != "cancelling":
                s.state = "starting" if s.phase == "loading" else "running"
                s.message = phase_message(s)

    def _phase_seconds(self, run_id: int | None) -> dict | None:
        try:
            return self.store.get_run(run_id).phase_seconds if run_id is not None else None
        except Exception:  # a stand-in runner's run that was never recorded
            return None

    def _run(self, config, cancel: threading.Event) -> None:
        try:
            if self.before_run is not None:
                self.before_run()
            result = self.runner(config, self.store, progress=self._progress, cancel=cancel)
            state, error = result.status, result.error
            run_id = result.run_id
        except Exception as err:  # a config error raised before the run was recorded
            state, error, run_id = "failed", f"{type(err).__name__}: {err}", None
        release_memory()  # the run's model, reference and optimiser states are garbage now
        with self._lock:
            s = self._snap
            s.state = state
            s.error = error
            s.run_id = run_id if run_id is not None else s.run_id
            s.finished = time.time()
            s.phase = None
            s.phase_seconds = self._phase_seconds(s.run_id)
            s.message = {"finished": "finished", "cancelled": "stopped by request"}.get(state, f"failed: {error}")
