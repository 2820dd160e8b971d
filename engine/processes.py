"""The process group of a multi-process launch (accelerate launch / torchrun; gloo on CPU), shared by
`unlearn` (engine.train.distributed) and `finetune` (engine.models.finetune): whether this process
is one of several, its accelerate `Accelerator`, FSDP2 sharding over the ranks and the gathered full
weights, and which rank died. Nothing here knows a run; accelerate and torch do the work."""
from __future__ import annotations

import copy
import datetime
import os
import signal
import socket
import time

import torch

SHARDINGS = ("ddp", "fsdp")
TIMEOUT = datetime.timedelta(hours=2)  # rank 0 evaluates while the others wait at the next collective


class RankDied(RuntimeError):
    """Another rank of the launch stopped (the launcher's SIGTERM, or a collective that failed)."""


def launched() -> bool:
    """True inside a multi-process launch (accelerate launch, torchrun: WORLD_SIZE > 1)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def make_accelerator(device: str):
    """An accelerate Accelerator when launched with several processes, else None (the
    single-process path stays as it was). CPU processes (device='cpu' or no CUDA) use gloo."""
    if not launched():
        return None
    from accelerate import Accelerator  # deferred: accelerate
    from accelerate.utils import InitProcessGroupKwargs  # deferred: accelerate

    return Accelerator(cpu=device == "cpu" or not torch.cuda.is_available(),
                       kwargs_handlers=[InitProcessGroupKwargs(timeout=TIMEOUT)])


def layer_classes(model: torch.nn.Module) -> set[str]:
    """The class names FSDP shards one unit each: the model's `_no_split_modules` (its decoder
    layers), looked up through a peft wrapper."""
    for m in model.modules():
        names = getattr(m, "_no_split_modules", None)
        if names:
            return set(names)
    return set()


def shard_model(model: torch.nn.Module, accelerator) -> torch.nn.Module:
    """FSDP2 over the launch's ranks: one `fully_shard` unit per decoder layer, then the root
    (embeddings, final norm, the head: tied weights stay in one unit). Parameters become DTensors
    sharded on dim 0; build the optimiser after this. Returns the same module, now sharded."""
    from torch.distributed.device_mesh import init_device_mesh  # deferred: torch
    from torch.distributed.fsdp import fully_shard  # deferred: torch

    kind = accelerator.device.type
    mesh = init_device_mesh(kind, (accelerator.num_processes,))
    names = layer_classes(model)
    for m in list(model.modules()):
        if type(m).__name__ in names:
            fully_shard(m, mesh=mesh)
    fully_shard(model, mesh=mesh)
    return model


def eval_copy(model: torch.nn.Module) -> torch.nn.Module:
    """Rank 0's unsharded copy of the (not yet sharded) model, kept on CPU, that evaluation and
    checkpoints read; `refresh_full_weights` loads the gathered weights into it and `on_device`
    moves it to the GPU only while rank 0 evaluates (4 bytes a parameter there then, beside the
    shards; `memory_plan.plan_sharded`)."""
    twin = copy.deepcopy(model).to("cpu")
    twin.requires_grad_(False)
    return twin


def full_state_dict(model: torch.nn.Module) -> dict:
    """The sharded model's full state dict on rank 0 (CPU), {} on the others. A collective: every
    rank must call it."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict  # deferred: torch

    return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


# -- which rank died -------------------------------------------------------------------------


def _alive(pid: int) -> bool:
    """True while process `pid` runs (a zombie counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/status", encoding="utf-8") as f:
            return not any(line.startswith("State:") and "Z" in line.split()[1] for line in f)
    except OSError:
        return True


def peers(accelerator) -> list[tuple[str, int]]:
    """(hostname, pid) of every rank, gathered once at the start (a collective)."""
    import torch.distributed as dist  # deferred: torch

    me = (socket.gethostname(), os.getpid())
    out: list = [None] * accelerator.num_processes
    dist.all_gather_object(out, me)
    return [tuple(p) for p in out]


def dead_ranks(known: list[tuple[str, int]] | None) -> list[int]:
    """Ranks whose process on this host is gone (ranks on other hosts cannot be checked here)."""
    host = socket.gethostname()
    return [r for r, (h, pid) in enumerate(known or []) if h == host and pid != os.getpid() and not _alive(pid)]


def death_note(known: list[tuple[str, int]] | None) -> str:
    """' (rank 1 died)'-style suffix for the run's error, or '' when every known rank lives."""
    for _ in range(20):  # the launcher's SIGTERM can come a moment before the dead rank is reaped
        dead = dead_ranks(known)
        if dead:
            return f" (rank{'s' if len(dead) > 1 else ''} {', '.join(map(str, dead))} of {len(known)} died)"
        time.sleep(0.1)
    return ""


def on_sigterm() -> object:
    """Turn the launcher's SIGTERM (torchrun stops the remaining workers when one exits) into
    RankDied in the main thread, so rank 0 records the run before it goes; returns the previous
    handler (None when not in the main thread)."""
    def handle(signum, frame):
        raise RankDied("the launcher stopped this process (another rank exited)")
    try:
        return signal.signal(signal.SIGTERM, handle)
    except ValueError:  # not the main thread: nothing to install
        return None
