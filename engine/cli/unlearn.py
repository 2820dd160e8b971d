"""`unlearn`: run one unlearning job (loss + selector or mask set), evaluate every epoch, record it.

Ctrl-C once cancels before the next step and says so (the run is recorded as cancelled with the
epochs it finished); a second Ctrl-C stops at once (also recorded as cancelled, exit 130). Several GPUs
(docs/multi-gpu.md; engine.train.distributed):
    accelerate launch --multi_gpu --num_processes 4 -m engine unlearn --model M --data D --loss npo --sharding fsdp
(or `torchrun --nproc_per_node N -m engine unlearn …`); the main process evaluates and records.
"""
from __future__ import annotations

import signal
import sys
import threading

from ..eval.registry import label, shown
from . import check_output, parse_params, write_json
from .checks import check_lora, check_model_arg, check_scorer_params, check_seed

NAME = "unlearn"
HELP = "unlearn: train with a loss on selected tokens, evaluate every epoch, keep checkpoints"


def add_arguments(p) -> None:
    from ..losses import LOSSES  # deferred: torch
    from ..train import RunConfig  # deferred: torch

    d = RunConfig()
    p.add_argument("--model", default=d.model, help="model name or local HF directory (default: demo)")
    p.add_argument("--data", default=d.data, help="data name or TOFU directory (default: demo)")
    p.add_argument("--loss", required=True, choices=sorted(LOSSES), help="unlearning loss")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--selector", default=None, help="token selector (default: all), e.g. all, oracle, tif, dto, atwu")
    src.add_argument("--mask-set", default=None, help="a saved (hand-edited) mask set instead of a selector")
    p.add_argument("--param", action="append", metavar="KEY=VALUE", help="selector parameter (repeatable)")
    p.add_argument("--rules", default=None, metavar="FILE",
                   help="phrase rules (JSON lines {phrase, target, whole_words?, case_sensitive?}) applied on "
                        "top of the selector's or mask set's masks, after the set's own rules; recorded in the "
                        "run's config")
    p.add_argument("--loss-param", action="append", metavar="KEY=VALUE",
                   help="loss parameter (repeatable), e.g. alpha=0.5 or forget=npo")
    p.add_argument("--weighting", default=d.weighting, choices=["auto", "mask", "scores"],
                   help="hard selector mask, soft scores, or auto (scores for atwu; default)")
    p.add_argument("--epochs", type=int, default=d.epochs)
    p.add_argument("--lr", type=float, default=None, help="default: 3e-4 on the built-in model, else 1e-5")
    p.add_argument("--weight-decay", type=float, default=None, help="default: 0 on the built-in model, else 0.01")
    p.add_argument("--warmup-epochs", type=float, default=None,
                   help="linear warm-up length in epochs (default: 0 on the built-in model, else 1)")
    p.add_argument("--lr-schedule", default=None, choices=["constant", "linear"],
                   help="after warm-up (default: constant on the built-in model, else linear decay to 0)")
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--grad-accum", type=int, default=d.grad_accum)
    p.add_argument("--warmup-steps", type=int, default=d.warmup_steps)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--beta", type=float, default=None, help="the loss's β (NPO, TPO, ATWU)")
    p.add_argument("--orthogonalize", action="store_true",
                   help="project the forget gradient off the preservation gradient (e.g. for dto)")
    p.add_argument("--lora", action="store_true", help="train LoRA adapters (merged into saved checkpoints)")
    p.add_argument("--lora-r", type=int, default=d.lora_r)
    p.add_argument("--lora-alpha", type=int, default=d.lora_alpha)
    p.add_argument("--lora-targets", default=d.lora_targets, help="all-linear or comma-separated module names")
    p.add_argument("--device", default=d.device, help="auto, cpu or cuda")
    p.add_argument("--protocol", default=None, choices=["tofu", "open-unlearning", "all"],
                   help="evaluation protocol: tofu (first 300 forget10_perturbed / retain_perturbed rows, batch "
                        "30, 200 tokens), open-unlearning (all 400, batch 32, 200 tokens; the default on TOFU's "
                        "files) or all (every forget row, --retain-eval-size retain rows; the default elsewhere)")
    p.add_argument("--retain-eval-size", type=int, default=None,
                   help="retain questions used for model utility under --protocol all (default: 200); "
                        "refused under tofu / open-unlearning, which fix the rows")
    p.add_argument("--eval-max-new-tokens", type=int, default=None,
                   help="greedy answer length for ROUGE in the evaluation (default: 64 on built-in data, "
                        "TOFU's 200 otherwise)")
    p.add_argument("--retain-model", default=None, help="retain model for forget quality (model name or HF "
                   "directory; default: the pairing remembered in the store (the app's retain-model box), else "
                   "demo-retain on built-in data, else none and FQ is unavailable)")
    p.add_argument("--best-metric", default=d.best_metric, metavar="NAME",
                   help="the metric whose best epoch the 'best' checkpoint keeps, in its registered direction "
                        "(default: forget_quality; e.g. privleak: closest to 0, model_utility: highest)")
    p.add_argument("--max-steps", type=int, default=None, help="stop after this many optimiser steps")
    p.add_argument("--no-eval", action="store_true", help="skip the per-epoch evaluation")
    p.add_argument("--eval-every", type=int, default=1, metavar="N",
                   help="evaluate after every N-th epoch (the final one always; default 1)")
    p.add_argument("--no-checkpoints", action="store_true", help="keep no best/final checkpoints")
    p.add_argument("--sharding", default=d.sharding, choices=["ddp", "fsdp"],
                   help="under accelerate launch / torchrun: ddp (whole model per process) or fsdp (parameters, "
                        "gradients and AdamW states sharded over the processes); ignored in one process")
    p.add_argument("--json", default=None, help="also write the run's result (per-epoch metrics) to this JSON file")


def check_arguments(args) -> None:
    """The checks that need no model or data, before anything is recorded (engine.cli.checks)."""
    check_seed(args.seed)
    check_lora(args.lora_r, args.lora_alpha)
    check_scorer_params(parse_params(args.param, "--param"))
    check_model_arg(args.retain_model, "--retain-model")


def config_from_args(args, store=None):
    """The RunConfig of the parsed arguments; the retain model: --retain-model, else `store`'s
    remembered pairing for (model, data), else the built-in default (`resolve.retain_model_for`)."""
    from ..masks import load_rules, rules_to_json  # deferred: numpy
    from ..resolve import retain_model_for  # deferred: torch
    from ..train import RunConfig  # deferred: torch

    rules = rules_to_json(load_rules(args.rules)) if getattr(args, "rules", None) else []
    return RunConfig(model=args.model, data=args.data, loss=args.loss,
                     selector=None if args.mask_set else (args.selector or "all"), mask_set=args.mask_set,
                     selector_params=parse_params(args.param, "--param"),
                     loss_params=parse_params(args.loss_param, "--loss-param"), weighting=args.weighting,
                     epochs=args.epochs, lr=args.lr, batch_size=args.batch_size, grad_accum=args.grad_accum,
                     weight_decay=getattr(args, "weight_decay", None), warmup_epochs=getattr(args, "warmup_epochs", None),
                     lr_schedule=getattr(args, "lr_schedule", None), warmup_steps=args.warmup_steps, seed=args.seed, beta=args.beta, orthogonalize=args.orthogonalize,
                     lora=args.lora, lora_r=args.lora_r, lora_alpha=args.lora_alpha, lora_targets=args.lora_targets,
                     device=args.device, retain_eval_size=args.retain_eval_size,
                     protocol=getattr(args, "protocol", None),
                     eval_max_new_tokens=args.eval_max_new_tokens, max_steps=args.max_steps,
                     eval_every_epoch=not args.no_eval, eval_every=args.eval_every, save_checkpoints=not args.no_checkpoints,
                     retain_model=args.retain_model or retain_model_for(args.model, args.data, store), rules=rules,
                     best_metric=getattr(args, "best_metric", None) or RunConfig.best_metric,
                     sharding=getattr(args, "sharding", "ddp"))


def _fmt(x) -> str:
    if x is None:
        return "n/a"
    return f"{x:.3g}" if isinstance(x, float) else str(x)


NO_RETAIN = "unavailable: no retain model given (--retain-model)"


def format_epoch(m: dict, protocol: str | None = None) -> str:
    """`epoch N` then `name value` for every registered headline metric the epoch has (train loss
    aside: the bar shows it; names as in records and CSV, `_probability` shortened to `_prob`);
    FQ with the protocol and the n its KS test used."""
    beside = {"forget_quality": f" ({protocol}, n = {m.get('forget_rows')})"} if protocol else {}
    return f"epoch {m['epoch']:>2}  " + "  ".join(
        f"{metric.name.replace('_probability', '_prob')} {_fmt(m.get(metric.name))}{beside.get(metric.name, '')}"
        for metric in shown("headline") if metric.name in m and metric.name != "train_loss") + subsample_note(m)


def subsample_note(m: dict) -> str:
    """'  [subsampled: …]' for an epoch whose generation-based numbers (ROUGE, leak / answered /
    kept-words rates) come from the seeded subsample (`RunConfig.eval_rouge_rows`), else ''."""
    if not m.get("subsampled"):
        return ""
    cap = f", answers ≤ {m['eval_new_tokens']} tokens" if m.get("eval_new_tokens") else ""
    return f"  [subsampled: generations on {m.get('rouge_rows')} rows/split{cap}]"


CANCEL_NOTICE = "cancelling: the run stops before its next step (press Ctrl-C again to stop at once)"


def ctrl_c_handler(cancel: threading.Event):
    """SIGINT handler: the first press sets `cancel` and says so on stderr; a later press raises
    KeyboardInterrupt at once (the loop records the run as cancelled, the CLI exits 130)."""

    def handle(signum, frame) -> None:
        if cancel.is_set():
            raise KeyboardInterrupt
        cancel.set()
        print(CANCEL_NOTICE, file=sys.stderr, flush=True)

    return handle


def run(args) -> int:
    from tqdm.auto import tqdm  # deferred: tqdm
    from transformers.utils import logging as hf_logging  # deferred: transformers

    from ..train import ProgressEvent, check_run, unlearn  # deferred: torch
    from ..train.loop import default_store  # deferred: torch

    hf_logging.disable_progress_bar()  # no per-file loading / saving bars between ours
    check_output(args.json, "--json")
    check_arguments(args)
    store = default_store()
    config = config_from_args(args, store)
    check_run(config, store)  # a config that cannot run fails here, before the progress bar
    from ..train.leftovers import clean_leftovers  # deferred: torch

    for path in clean_leftovers(store):  # a killed run's best.tmp / final.tmp, at the next start
        print(f"cleaned up {path} (left by a run that was killed)")
    if config.retain_model is None:
        print(f"forget quality: {NO_RETAIN}")
    print(f"evaluation protocol: {config.protocol} (batch {config.eval_batch_size or 'planned'}, "
          f"{config.eval_max_new_tokens} new tokens"
          + (f", {config.retain_eval_size} retain rows)" if config.protocol == "all" else ")"))
    cancel = threading.Event()
    bar = None

    def progress(event: ProgressEvent) -> None:
        """A step ('train'), an evaluation's metrics ('eval'), or the start of a phase (loading,
        evaluating with questions scored, saving): the bar's label names the phase."""
        nonlocal bar
        if event.run_id is None:  # 'loading': the run is not recorded yet
            return
        if bar is None:
            bar = tqdm(total=event.total_steps, desc=f"run {event.run_id}", unit="step")
        bar.n = event.step or 0
        if event.phase in ("evaluating", "saving"):
            done = f" {event.eval_done}/{event.eval_total} questions" if event.eval_total else ""
            bar.set_description(f"run {event.run_id} {event.phase}{done}", refresh=False)
        else:
            bar.set_description(f"run {event.run_id}", refresh=False)
        if event.loss is not None:
            bar.set_postfix(epoch=event.epoch, loss=f"{event.loss:.3f}", refresh=False)
        bar.refresh()
        if event.metrics is not None:
            tqdm.write(format_epoch(event.metrics.to_dict(), config.protocol))

    previous = signal.signal(signal.SIGINT, ctrl_c_handler(cancel))
    try:
        result = unlearn(config, store, progress=progress, cancel=cancel)
    finally:
        signal.signal(signal.SIGINT, previous)
        if bar is not None:
            bar.close()
    if result.run_id is None:  # a non-main process of a multi-process launch: the main one reports
        return {"finished": 0, "cancelled": 130}.get(result.status, 1)
    print(f"run {result.run_id}: {result.status} after {result.epochs_completed} epoch(s) in {result.seconds:.0f} s")
    if result.best_epoch is not None:
        print(f"best {label(config.best_metric)} ({config.best_metric}) at epoch {result.best_epoch}")
    for kind, path in result.checkpoints.items():
        print(f"{kind} checkpoint: {path}")
    if result.scorer_path:
        print(f"ATWU scorer saved: {result.scorer_path}")
    if result.error:
        print(f"error: {result.error}")
    write_json(args.json, {"config": config.to_dict(), **result.to_dict()})
    return {"finished": 0, "cancelled": 130}.get(result.status, 1)
