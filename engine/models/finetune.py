"""Fine-tune a causal LM on question/answer samples (answer tokens only): TOFU's first step,
shared by `python -m engine finetune` and the built-in bootstrap.

Loop: AdamW, linear warm-up then cosine (`cosine_lr`) or linear (`linear_lr`) decay, gradient clipping at 1.0, the
mean NLL over label tokens (`tokens.per_token_nll`) averaged over `grad_accum` micro-batches.
Batches: 'shuffle' (a seeded shuffle per epoch, the built-in recipe) or 'length' (TOFU-style
length grouping: sort a shuffled epoch by token count inside windows of 50 batches, then
shuffle the batches, so padding is small). Resumable: after every epoch the weights
(safetensors), the optimiser state and the step are written to `state_dir`; a re-run with
the same `state_dir` continues after the last finished epoch. Under accelerate launch /
torchrun the ranks share each step's micro-batches (`train_causal_lm`'s accelerator).
"""
from __future__ import annotations

import json
import math
import random
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch

from ..processes import eval_copy, full_state_dict, shard_model
from ..prompts import format_of, save_format
from ..tokens import encode_samples, forward_logits, per_token_nll
from .device import adamw, precision_for
from .loading import model_context

Progress = Callable[[float, str], None]
EpochHook = Callable[[int, object], bool]  # (epoch, model) -> True to stop after this epoch


@dataclass(frozen=True)
class TrainSettings:
    """Hyper-parameters of one fine-tuning run. Defaults: TOFU's for real models (5 epochs,
    lr 1e-5, weight decay 0.01, effective batch 32 = batch_size × grad_accum)."""

    epochs: int = 5
    lr: float = 1e-5
    weight_decay: float = 0.01
    batch_size: int = 4
    grad_accum: int = 8
    warmup_steps: int = 0
    warmup_epochs: float = 0.0  # used when warmup_steps is 0: round(warmup_epochs × steps per epoch)
    schedule: str = "cosine"  # after warm-up: "cosine" or "linear" decay to 0 (TOFU: 1 warm-up epoch, linear)
    betas: tuple[float, float] = (0.9, 0.999)
    max_grad_norm: float = 1.0
    batching: str = "length"
    seed: int = 0
    precision: str = "auto"  # engine.models.device.precision_for('train'): fp32 weights, bf16 autocast on a GPU


def cosine_lr(step: int, total: int, peak: float, warmup: int) -> float:
    """Linear warm-up to `peak`, then cosine decay to 0 (a pure function of the step)."""
    if step < warmup:
        return peak * (step + 1) / warmup
    return 0.5 * peak * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


def linear_lr(step: int, total: int, peak: float, warmup: int) -> float:
    """Linear warm-up to `peak`, then linear decay to 0 at `total` (HF's get_linear_schedule_with_warmup,
    TOFU's finetune.py: warm-up of one epoch)."""
    if step < warmup:
        return peak * (step + 1) / warmup
    return peak * max(0.0, (total - step) / max(1, total - warmup))


def context_length(tokenizer, samples) -> int:
    """Tokens of the longest prompt + answer + EOS in `samples` (nothing is cut)."""
    from ..tokens import iter_batches  # deferred: torch

    longest = 0
    for chunk in iter_batches(list(samples), 256):
        batch = encode_samples(tokenizer, chunk, max_length=10**9)
        longest = max(longest, int(batch.attention_mask.sum(1).max()))
    return longest


def epoch_batches(order: list[int], lengths: list[int], batch_size: int, rng: random.Random,
                  batching: str) -> list[list[int]]:
    """Index batches for one epoch; `order` (all indices) is shuffled in place, carried across epochs.
    'shuffle': rng.shuffle(order) then consecutive chunks. 'length': the same shuffle, then
    sorted by length inside windows of 50 batches, and the batches shuffled (each batch holds
    samples of similar length)."""
    rng.shuffle(order)
    if batching == "length":
        window = 50 * batch_size
        order = [i for w in range(0, len(order), window)
                 for i in sorted(order[w:w + window], key=lambda j: lengths[j])]
    elif batching != "shuffle":
        raise ValueError(f"batching {batching!r}: use 'shuffle' or 'length'")
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    if batching == "length":
        rng.shuffle(batches)
    return batches


def _save_state(state_dir: Path, model, opt, epoch: int, step: int) -> None:
    from safetensors.torch import save_file  # deferred: safetensors

    tmp = state_dir / "resume.tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    trainable = {k: v.detach().contiguous() for k, v in model.named_parameters() if v.requires_grad}
    save_file(trainable, str(tmp / "weights.safetensors"))
    torch.save(opt.state_dict(), tmp / "optimizer.pt")
    (tmp / "progress.json").write_text(json.dumps({"epoch": epoch, "step": step}))
    final = state_dir / "resume"
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)


def _load_state(state_dir: Path, model, opt) -> tuple[int, int]:
    """(finished epochs, step) from `state_dir/resume`, restoring weights and optimiser; (0, 0) if none."""
    from safetensors.torch import load_file  # deferred: safetensors

    resume = state_dir / "resume"
    if not (resume / "progress.json").is_file():
        return 0, 0
    weights = load_file(str(resume / "weights.safetensors"))
    params = dict(model.named_parameters())
    with torch.no_grad():
        for k, v in weights.items():
            params[k].copy_(v)
    opt.load_state_dict(torch.load(resume / "optimizer.pt", weights_only=True))
    done = json.loads((resume / "progress.json").read_text())
    return done["epoch"], done["step"]


def train_causal_lm(model, tokenizer, samples, settings: TrainSettings, progress: Progress | None = None,
                    label: str = "model", share: tuple[float, float] = (0.0, 1.0), state_dir: Path | None = None,
                    after_epoch: EpochHook | None = None, max_epochs: int | None = None,
                    accelerator=None, sharding: str = "ddp"):
    """Train `model` on the answer tokens of `samples`; return it in eval mode.

    Epochs: `settings.epochs`, or up to `max_epochs` when `after_epoch` may stop earlier (the
    schedule spans `max_epochs` then). Loss per optimiser step: mean over its micro-batches of
    Σ_t ℓ_t / #label tokens (label tokens: answer + EOS).

    accelerator (engine.processes.make_accelerator: under accelerate launch / torchrun): every
    step takes grad_accum × world micro-batches, rank r every world-th of them (`rank_share`),
    so the global batch is batch_size × grad_accum × world and 2 ranks with grad_accum g train
    as 1 process with 2g. sharding 'ddp' (whole model per rank, gradients averaged) or 'fsdp'
    (engine.processes.shard_model: parameters, gradients and AdamW states split over the ranks).
    Rank 0 gets the trained model (under FSDP its gathered, unsharded copy), the others None;
    `after_epoch` runs on rank 0 and its answer is broadcast. Resume state (`state_dir`): written
    by rank 0 under DDP; not kept under FSDP (its optimiser state is sharded).
    """
    from ..context import overflows  # deferred: torch

    room = model_context(model)
    need = context_length(tokenizer, samples)
    if room is not None and need > room:
        bad = overflows(tokenizer, samples, room)
        raise ValueError(f"the longest prompt + answer has {need} tokens, more than the context "
                         f"of {room} ({label}); answers are not cut: use a model with a longer context"
                         + "".join(f"\n  {line}" for line in bad[:5]) + (f"\n  and {len(bad) - 5} more" if len(bad) > 5 else ""))
    torch.manual_seed(settings.seed)
    epochs = max_epochs or settings.epochs
    world = accelerator.num_processes if accelerator is not None else 1
    rank = accelerator.process_index if accelerator is not None else 0
    main = rank == 0
    sharded = accelerator is not None and sharding == "fsdp"
    twin = None
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    if sharded:
        twin = eval_copy(model) if main else None  # what rank 0 evaluates and returns
        model = shard_model(model, accelerator)
        state_dir = None  # [choice] no resume under FSDP: its optimiser state lives in shards
    params = [p for p in model.parameters() if p.requires_grad]
    opt = adamw(params, lr=settings.lr, betas=settings.betas, weight_decay=settings.weight_decay)
    device = accelerator.device if accelerator is not None else next(model.parameters()).device
    precision = precision_for("train", str(device), settings.precision)
    if any(p.dtype != precision.master for p in params):
        raise ValueError(f"{label}: trainable weights must be {precision.master} master weights (load the model "
                         f"with dtype={precision.master}); got {sorted({str(p.dtype) for p in params})}")
    lengths = [len(s.question) + len(s.answer) for s in samples]  # characters: a cheap length proxy
    micro = settings.batch_size
    per_step = settings.grad_accum * world
    steps_per_epoch = math.ceil(math.ceil(len(samples) / micro) / per_step)
    total = steps_per_epoch * epochs
    warmup = settings.warmup_steps or round(settings.warmup_epochs * steps_per_epoch)
    schedule = linear_lr if settings.schedule == "linear" else cosine_lr
    rng = random.Random(settings.seed)
    order = list(range(len(samples)))
    first_epoch, step = _load_state(state_dir, model, opt) if state_dir else (0, 0)
    trained = accelerator.prepare_model(model) if accelerator is not None and not sharded else model  # DDP
    trained.train()
    for epoch in range(epochs):
        batches = epoch_batches(order, lengths, micro, rng, settings.batching)  # replayed for skipped epochs
        if epoch < first_epoch:
            continue
        for b0 in range(0, len(batches), per_step):
            group = batches[b0:b0 + per_step]
            for g in opt.param_groups:
                g["lr"] = schedule(step, total, settings.lr, warmup)
            opt.zero_grad(set_to_none=True)
            for idx, weight in rank_share(group, rank, world):  # weight: world, or 0 for a pad
                batch = encode_samples(tokenizer, [samples[j] for j in idx], max_length=10**9).to(device)
                with precision.context():  # bf16 compute on fp32 weights when low precision applies
                    logits = forward_logits(trained, batch)
                nll = per_token_nll(logits, batch)  # float32
                loss = nll.sum() / batch.label_mask.sum()
                (loss * weight / len(group)).backward()  # DDP / FSDP average the ranks' gradients
            torch.nn.utils.clip_grad_norm_(params, settings.max_grad_norm)
            opt.step()
            step += 1
            if progress and main:
                progress(share[0] + share[1] * step / total,
                         f"training {label} model: epoch {epoch + 1}/{epochs}, loss {loss.item():.3f}")
        if sharded:
            _gather_into(model, twin)  # every rank joins; rank 0's copy now holds this epoch's weights
        if state_dir and main:
            _save_state(state_dir, model, opt, epoch + 1, step)
        stop = bool(after_epoch(epoch + 1, twin if sharded else model)) if after_epoch and main else False
        if accelerator is not None:
            stop = _broadcast(stop)
        if stop:
            break
        trained.train()
    if not main:
        return None
    if sharded:  # the copy was made frozen (engine.processes.eval_copy): it trains on as the model did
        for name, p in twin.named_parameters():
            p.requires_grad_(name in trainable)
    return (twin if sharded else model).eval()


def rank_share(group: list[list[int]], rank: int, world: int) -> list[tuple[list[int], int]]:
    """Rank `rank`'s micro-batches of one optimiser step's `group`, each with its loss weight w: every
    world-th micro-batch with w = world, so that the ranks' averaged gradient of Σ w·loss / len(group)
    is the mean over the whole group (world = 1: the plain mean). Every rank gets ⌈len(group) / world⌉
    of them (the same number of backward passes, hence of collectives): one short of that is padded
    with the group's first micro-batch at w = 0.

        rank_share([[0], [1], [2]], 1, 2) == [([1], 2), ([0], 0)]
    """
    mine = [(idx, world) for idx in group[rank::world]]
    return mine + [(group[0], 0)] * (math.ceil(len(group) / world) - len(mine))


def _gather_into(sharded, twin) -> None:
    """FSDP: the full weights (a collective) into rank 0's unsharded copy `twin` (None elsewhere)."""
    full = full_state_dict(sharded)
    if twin is not None:
        twin.load_state_dict(full, strict=False)


def _broadcast(flag: bool) -> bool:
    """Rank 0's `flag` on every rank."""
    import torch.distributed as dist  # deferred: torch

    box = [flag]
    dist.broadcast_object_list(box, src=0)
    return bool(box[0])


def tiny_gpt2(tokenizer, n_positions: int, n_layer: int = 4, n_embd: int = 128, n_head: int = 4, seed: int = 0):
    """A fresh tiny GPT-2 (no dropout) sized for `tokenizer`, seeded."""
    from transformers import GPT2Config, GPT2LMHeadModel  # deferred: transformers

    torch.manual_seed(seed)
    config = GPT2Config(vocab_size=len(tokenizer), n_positions=n_positions, n_embd=n_embd, n_layer=n_layer,
                        n_head=n_head, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                        bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id,
                        pad_token_id=tokenizer.pad_token_id)
    return GPT2LMHeadModel(config)


def save_hf(model, tokenizer, out: Path, info: dict | None = None) -> Path:
    """Save as an HF directory (safetensors + tokenizer), atomically (`out.tmp` then rename).
    A LoRA model is merged first so the directory loads with `load_model` as is."""
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)

    save_format(tmp, format_of(tokenizer))  # the format it was trained under is the one it is scored under
    if info is not None:
        (tmp / "finetune.json").write_text(json.dumps(info, indent=1, default=str))
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return out


def settings_dict(settings: TrainSettings) -> dict:
    return asdict(settings)
