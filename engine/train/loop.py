"""The run: evaluate at step 0, epochs of `step`, evaluate after each, keep the best and final
checkpoints (best by `RunConfig.best_metric`, forget quality by default, in its registered
direction), record everything in the store; plus `short_run` (steps only, no records)."""
from __future__ import annotations

import math
import signal
import threading
import time
import traceback
from pathlib import Path

import torch

from .. import paths
from ..store import Store
from . import distributed
from .checkpoint import claim_run_folder, save_checkpoint, save_run_scorer
from ..prompts import format_of
from .config import Progress, RunConfig, RunResult
from .progress import ProgressEvent
from ..store.records import EpochMetrics
from ..eval.registry import rankable
from .evaluation import eval_context, evaluate_state
from .phases import PhaseClock
from .state import State, prepare
from .step import plan_epoch, step


def default_store():
    return Store(paths.store_path())


def total_steps(state: State) -> int:
    """Optimiser steps the run will take (epochs × steps per epoch, capped by max_steps)."""
    cfg = state.config
    per_epoch = math.ceil(math.ceil(len(state.forget) / cfg.batch_size) / (cfg.grad_accum * state.world))
    total = per_epoch * cfg.epochs
    return min(total, cfg.max_steps) if cfg.max_steps else total


def unlearn(config: RunConfig, store=None, progress: Progress | None = None,
            cancel: threading.Event | None = None) -> RunResult:
    """Run one unlearning job and record it; returns a RunResult (status finished|cancelled|failed).

    store: an engine.store.Store (default: the workbench's). progress(ProgressEvent) gets, after
    every step, phase 'train' with the step's loss and, after every evaluation, phase 'eval' with its
    `metrics` (EpochMetrics); when a phase starts, 'loading' | 'evaluating' | 'saving' and, while
    evaluating, 'evaluating' with eval_done of eval_total questions scored (engine.train.progress).
    The seconds spent per phase (engine.train.phases) are stored with the run
    (`Store.finish_run(phase_seconds=…)`, read back as RunRecord.phase_seconds). cancel: a
    threading.Event checked before every step; a cancelled run is recorded as 'cancelled' with the epochs it finished (their
    metrics and best checkpoint). A ValueError for a config that cannot run (unknown names, no
    retain data for the loss, an empty or mismatched mask set) is raised before a run is
    recorded; anything that goes wrong later is recorded as 'failed' with the message and
    returned. A process killed mid-run leaves the run 'running' until `Store.mark_stale_runs`.
    A KeyboardInterrupt (a second Ctrl-C) records the run as 'cancelled' and propagates. The run
    writes only into its own folder `runs_dir/<its uuid>` (claimed at its first write).
    """
    started = time.perf_counter()
    clock = PhaseClock()
    clock.enter("loading")
    if progress is not None:
        progress(ProgressEvent("loading"))
    store = store if store is not None else default_store()
    state = prepare(config, store)
    main = state.is_main
    run_id = store.create_run(config, store.mask_set_hash(config.mask_set) if config.mask_set else None,
                              prompt_format=format_of(state.tokenizer).to_dict(),  # engine.prompts
                              world_size=state.world) if main else None
    owner = store.run_folder(run_id) if main else None
    run_dir = paths.runs_dir(getattr(store, "path", None)) / str(owner)

    def own_dir() -> Path:
        return claim_run_folder(run_dir, owner)  # refuses a folder another run owns
    history: list[dict] = []
    checkpoints: dict[str, str] = {}
    best: tuple[float, int] | None = None  # (best metric's value, epoch)
    best_metric = rankable(config.best_metric)
    epochs_done = 0
    total = total_steps(state)
    notify = progress if progress is not None and main else (lambda info: None)

    def report(epoch: int, loss: float | None, metrics: dict | None) -> None:
        notify(ProgressEvent("train" if metrics is None else "eval", run_id, state.step, total, epoch, loss,
                             None if metrics is None else EpochMetrics.from_dict(metrics)))

    def enter(phase: str, epoch: int | None, **extra) -> None:
        """Start timing `phase` and say so (the app shows it instead of a stale 'training')."""
        clock.enter(phase)
        notify(ProgressEvent(phase, run_id, state.step, total, epoch, **extra))

    top: list = []  # [best-metric value, epoch, weights or None]: the best evaluated epoch ≥ 1, with its
    # weights (CPU) while its metrics are subsampled, for the full evaluation at the end

    def record(epoch: int, train_loss: float | None, evaluate: bool = True, final: bool = False) -> None:
        """Evaluate (when asked; ROUGE on the seeded subsample unless `final`, the run's last
        evaluation, or step 0), store the epoch's metrics, keep the best checkpoint by `best_metric`
        (main process only)."""
        nonlocal best
        if evaluate:
            enter("evaluating", epoch)

        def questions(done: int, n: int) -> None:
            notify(ProgressEvent("evaluating", run_id, state.step, total, epoch, eval_done=done, eval_total=n))
        m = {"epoch": epoch, "step": state.step, "train_loss": train_loss,
             **(evaluate_state(state, ctx, step0=epoch == 0, progress=questions, final=final,
                               rouge_rows=None if final else config.eval_rouge_rows)
                if ctx is not None and evaluate else {})}
        history.append(m)
        store.add_epoch_metrics(run_id, epoch, state.step, m)
        value = m.get(best_metric.name)
        if epoch >= 1 and value is not None and (not top or best_metric.better(value, top[0])):
            top[:] = [value, epoch, _weights(state) if m.get("subsampled") else None]
        if epoch >= 1 and config.save_checkpoints and value is not None and \
                (best is None or best_metric.better(value, best[0])):
            best = (value, epoch)
            enter("saving", epoch)
            checkpoints["best"] = str(save_checkpoint(state, own_dir() / "best", owner))
            store.set_checkpoint(run_id, "best", checkpoints["best"], epoch)
        report(epoch, train_loss, m)

    def out_of_steps() -> bool:
        return config.max_steps is not None and state.step >= config.max_steps

    previous_sigterm = distributed.on_sigterm() if state.accelerator is not None else None
    try:
        if config.eval_every_epoch and main:
            enter("evaluating", 0)
        with distributed.on_device(state):
            ctx = eval_context(state) if config.eval_every_epoch and main else None
        if ctx is not None and not (cancel is not None and cancel.is_set()):  # Ctrl-C during its setup: skip it
            with distributed.on_device(state):
                record(0, None)
        status = "finished"
        for epoch in range(1, config.epochs + 1):
            clock.enter("training")
            losses = []
            for micro in plan_epoch(state, epoch):
                if cancel is not None and cancel.is_set():
                    status = "cancelled"
                    break
                if out_of_steps():
                    break
                stats = distributed.reduce_stats(state, step(state, micro))  # the global batch's mean
                if not math.isfinite(stats["loss"]):
                    raise FloatingPointError(f"the loss became {stats['loss']} at step {state.step}; lower the lr")
                losses.append(stats["loss"])
                report(epoch, stats["loss"], None)
            if status == "cancelled":
                break
            epochs_done = epoch
            if state.accelerator is not None:
                state.accelerator.wait_for_everyone()
                distributed.refresh_full_weights(state)  # FSDP: every rank gathers, rank 0 keeps them
            if main:  # every eval_every-th epoch, and always the last one (also when max_steps ends it)
                last = epoch == config.epochs or out_of_steps()
                with distributed.on_device(state):  # FSDP: rank 0's unsharded copy, on the GPU meanwhile
                    record(epoch, sum(losses) / max(1, len(losses)), epoch % config.eval_every == 0 or last,
                           final=last)
            if out_of_steps():
                break
        scorer_path = None
        if main and status == "finished":
            enter("saving", epochs_done)
            if config.save_checkpoints:
                checkpoints["final"] = str(save_checkpoint(state, own_dir() / "final", owner))
                store.set_checkpoint(run_id, "final", checkpoints["final"], epochs_done)
            scorer_path = save_run_scorer(state, run_id)
        if main and status == "finished" and top and top[2] is not None:  # the best epoch, on every row
            enter("evaluating", top[1])
            with distributed.on_device(state):
                _full_best(state, ctx, store, run_id, history, top[1], top[2])
        clock.stop()
        if main:
            store.finish_run(run_id, status, None, phase_seconds=clock.seconds())
        return RunResult(run_id, status, epochs_done, history, best[1] if best else None, checkpoints,
                         None, time.perf_counter() - started, scorer_path)
    except KeyboardInterrupt:  # a second Ctrl-C: stop at once, recorded as cancelled
        if main:
            _record_end(store, run_id, "cancelled", "stopped at once (Ctrl-C twice)", clock.seconds())
        raise
    except Exception as err:  # recorded, then returned: the app and the CLI show the message
        message = f"{type(err).__name__}: {err}"
        if state.accelerator is not None:
            message += distributed.death_note(state.peers)
        clock.stop()
        if main:
            message += _record_end(store, run_id, "failed", message, phase_seconds=clock.seconds())
            try:
                (own_dir() / "error.txt").write_text(traceback.format_exc())
            except Exception:  # a full disk or a folder not ours: the store has the message
                pass
        return RunResult(run_id, "failed", epochs_done, history, best[1] if best else None, checkpoints,
                         message, time.perf_counter() - started)
    finally:
        if previous_sigterm is not None:
            signal.signal(signal.SIGTERM, previous_sigterm)


def _weights(state: State) -> dict:
    """A CPU copy of the weights an evaluation reads (the trainable ones; all of rank 0's unsharded
    copy under FSDP), to evaluate this epoch again later."""
    model = state.base_model()
    every = state.full_model is not None
    return {n: p.detach().to("cpu", copy=True) for n, p in model.named_parameters() if every or p.requires_grad}


def _full_best(state: State, ctx, store, run_id: int, history: list[dict], epoch: int, weights: dict) -> None:
    """Evaluate the best epoch's `weights` with the full protocol (every row's ROUGE) and replace
    its subsampled metrics in the store and in `history`; the final weights are put back after.
    Learned token weights (ATWU) are read as they are at the end of the run."""
    model = state.base_model()
    params = dict(model.named_parameters())
    final = {n: params[n].detach().to("cpu", copy=True) for n in weights}
    with torch.no_grad():
        try:
            for n, w in weights.items():
                params[n].copy_(w)
            full = evaluate_state(state, ctx)
        finally:
            for n, w in final.items():
                params[n].copy_(w)
    i = next(i for i, m in enumerate(history) if m["epoch"] == epoch)
    history[i] = {**history[i], **full, "subsampled": False}
    for key in ("rouge_rows", "eval_new_tokens"):  # the subsampled point's own keys
        history[i].pop(key, None)
    store.replace_epoch_metrics(run_id, epoch, history[i])


def _record_end(store, run_id: int, status: str, message: str, phase_seconds: dict | None = None) -> str:
    """finish_run, or when the store itself fails (full disk, read-only): '' or a note saying the
    run stays 'running' until `mark_stale_runs` marks it interrupted."""
    try:
        store.finish_run(run_id, status, message, phase_seconds=phase_seconds)
        return ""
    except Exception as err:
        return f" (and the store could not record it: {err}; `runs` will show it as interrupted)"


def short_run(config: RunConfig, steps: int, progress: Progress | None = None) -> State:
    """`steps` model steps of `config` without evaluation, checkpoints or records (e.g. to fit
    learned token weights on a copy of the model in memory); returns the trained state."""
    state = prepare(config)
    epoch = 0
    while state.step < steps:
        epoch += 1
        for micro in plan_epoch(state, epoch):
            if state.step >= steps:
                break
            stats = step(state, micro)
            if progress:
                progress(ProgressEvent("train", None, state.step, steps, epoch, stats["loss"]))
    return state
