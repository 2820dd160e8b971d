"""Runs over several processes (one per GPU, or CPU processes over gloo), on accelerate and
PyTorch FSDP, never a home-made engine.

    accelerate launch --multi_gpu --num_processes 2 -m engine unlearn --loss npo --sharding fsdp …
    torchrun --nproc-per-node 2 -m engine unlearn --loss npo …                  (CPU: gloo)

- Processes: accelerate's `Accelerator` (process group, device per rank, `backward`, `reduce`).
- sharding='ddp': accelerate wraps the model in DistributedDataParallel (every rank holds the
  whole model; gradients are averaged).
- sharding='fsdp': torch's FSDP2 (`torch.distributed.fsdp.fully_shard`) per decoder layer
  (the model's `_no_split_modules`) and at the root; parameters, gradients and AdamW states are
  sharded over the ranks (each rank holds 1/N); gradients are reduce-scattered as their mean.
  accelerate 1.15's FSDP plugin only switches on for multi-GPU states (a CPU launch stays
  MULTI_CPU and ignores it), so the sharding is applied here with torch's `fully_shard`, the same
  engine accelerate's FSDP2 path calls, on CPU and GPU alike: the CPU test checks the GPU path.
- Data: each rank takes whole micro-batches by global index (`step.plan_epoch`: every world-th
  micro-batch of the step's grad_accum · world), with their own token weights, reference rows and
  ATWU scorer inputs, all indexed by the global sample index; the global batch is
  batch_size · grad_accum · world, so a 2-process run with grad_accum g equals a 1-process run
  with grad_accum 2g.
- Evaluation, checkpoints and the store: rank 0 only. Under FSDP the full weights are gathered
  once per epoch (`refresh_full_weights`, a collective every rank joins) into an unsharded copy on
  rank 0 that the evaluation and `save_checkpoint` read.
- A rank that dies: rank 0 records the run 'failed' naming the rank(s) whose process is gone
  (`dead_ranks`), whether it learns of it from a collective's error or from the launcher's
  SIGTERM (torchrun stops the other workers when one exits).
"""
from __future__ import annotations

import contextlib
import os
import subprocess
import sys

import torch

from .. import paths
from ..processes import (SHARDINGS, TIMEOUT, RankDied, dead_ranks, death_note, eval_copy,  # noqa: F401 (re-exported)
                         full_state_dict, launched, layer_classes, make_accelerator, on_sigterm, peers, shard_model)


def refresh_full_weights(state) -> None:
    """Under FSDP: gather the current weights (every rank calls this) into rank 0's unsharded copy,
    on the run's device for evaluation. Otherwise nothing."""
    if not is_sharded(state):
        return
    full = full_state_dict(state.model)
    if state.is_main:
        missing, unexpected = state.full_model.load_state_dict(full, strict=False)
        if unexpected:
            raise RuntimeError(f"the gathered weights do not fit rank 0's copy: {unexpected[:3]}")


@contextlib.contextmanager
def on_device(state):
    """Under FSDP on rank 0: the unsharded copy on the run's device for the block (evaluation,
    checkpoints), back on CPU after (moving fp32 weights is exact). Otherwise nothing."""
    twin = getattr(state, "full_model", None)
    if twin is None or state.device == "cpu":
        yield
        return
    twin.to(state.device)
    try:
        yield
    finally:
        twin.to("cpu")
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def is_sharded(state) -> bool:
    return state.accelerator is not None and state.config.sharding == "fsdp"


def reduce_stats(state, stats: dict) -> dict:
    """The step's stats averaged over the ranks (each rank's are the mean over its micro-batches,
    so the mean over ranks is the mean over the global batch); unchanged in one process."""
    if state.accelerator is None or not stats:
        return stats
    keys = sorted(stats)
    t = torch.tensor([float(stats[k]) for k in keys], dtype=torch.float64, device=state.accelerator.device)
    t = state.accelerator.reduce(t, reduction="mean")
    return {k: float(v) for k, v in zip(keys, t.tolist())}


# -- the launch command ----------------------------------------------------------------------


def launch_command(engine_args: list[str], num_processes: int, cpu: bool = False) -> list[str]:
    """The `accelerate launch` command that runs `python -m engine <engine_args>` on
    `num_processes` GPUs (or CPU processes when cpu=True), for the app to start as a subprocess.

        launch_command(["unlearn", "--loss", "npo", "--sharding", "fsdp"], 2)
    """
    if num_processes < 2:
        raise ValueError(f"a multi-process launch needs at least 2 processes, got {num_processes}")
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", str(num_processes),
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    cmd += ["--cpu"] if cpu else ["--multi_gpu"]
    return cmd + ["-m", "engine", *engine_args]


def cli_args(config) -> list[str]:
    """`python -m engine unlearn` arguments that rebuild `config` (a RunConfig) in the launched
    processes; ValueError for what the command line cannot carry (phrase rules: save them to a
    file and use --rules)."""
    if config.rules:
        raise ValueError("a multi-GPU launch takes phrase rules from a file (--rules FILE), not from the form")
    args = ["unlearn", "--model", config.model, "--data", config.data, "--loss", config.loss,
            "--weighting", config.weighting, "--epochs", str(config.epochs), "--lr", repr(config.lr),
            "--batch-size", str(config.batch_size), "--grad-accum", str(config.grad_accum),
            "--warmup-steps", str(config.warmup_steps), "--seed", str(config.seed),
            "--retain-eval-size", str(config.retain_eval_size), "--eval-max-new-tokens", str(config.eval_max_new_tokens),
            "--eval-every", str(config.eval_every), "--sharding", config.sharding, "--device", config.device]
    args += ["--mask-set", config.mask_set] if config.mask_set else ["--selector", config.selector or "all"]
    for flag, params in (("--param", config.selector_params), ("--loss-param", config.loss_params)):
        for k, v in params.items():
            args += [flag, f"{k}={v}"]
    optional = {"--beta": config.beta, "--max-steps": config.max_steps, "--retain-model": config.retain_model}
    for flag, value in optional.items():
        if value is not None:
            args += [flag, str(value)]
    if config.lora:
        args += ["--lora", "--lora-r", str(config.lora_r), "--lora-alpha", str(config.lora_alpha),
                 "--lora-targets", config.lora_targets]
    args += [flag for flag, on in (("--orthogonalize", config.orthogonalize), ("--no-eval", not config.eval_every_epoch),
                                   ("--no-checkpoints", not config.save_checkpoints)) if on]
    return args


def start_launch(config, num_processes: int):
    """Start `config` as an `accelerate launch` subprocess over `num_processes` GPUs (the app's
    Run tab, when more than one GPU is visible); returns the Popen. Its output goes to
    `<workbench>/runs/launch-<pid>.log`; the run appears in the store like any other."""
    log = paths.runs_dir() / f"launch-{os.getpid()}-{config.seed}.log"
    out = open(log, "ab")
    return subprocess.Popen(launch_command(cli_args(config), num_processes), stdout=out, stderr=subprocess.STDOUT,
                            cwd=str(paths.REPO_ROOT), start_new_session=True)


def visible_gpus() -> int:
    """torch.cuda.device_count() (0 without CUDA): the app offers a multi-GPU launch when > 1."""
    return torch.cuda.device_count() if torch.cuda.is_available() else 0
