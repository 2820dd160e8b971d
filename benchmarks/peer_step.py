"""The engine's GA and NPO training step against a minimal open-unlearning-style peer, side by side.

The peer: `GradAscent` and `NPO` as `transformers.Trainer` subclasses that override only
`compute_loss`, as in locuslab/open-unlearning (`src/trainer/unlearn/grad_ascent.py`, `npo.py`:
NPO extends GradDiff, so it adds the retain NLL with α = γ = 1, and its reference is a second
model run on every forget batch). One peer step is what Trainer's inner loop does:
`training_step` (forward, `compute_loss`, backward), gradient clipping at 1.0, AdamW step,
zero_grad. The engine's step is `engine.train.step` on a `prepare`d state (its NPO reference NLL
is cached before training, no second model).

Same weights (the built-in target model, or `--model`, e.g. `smollm2` once set up), same forget (and retain) batch, same lr, batch size and
clipping. The two are timed alternately, one step each per round, so both medians come from the
same stretch of machine load; the first `--warmup` rounds are dropped. Peak memory: cuda,
max_memory_allocated above the memory allocated before the step; CPU, the torch profiler's peak
of tensor allocations (benchmarks/memory_plan.py `peak_bytes`).

    python benchmarks/peer_step.py [--rounds 20] [--warmup 3] [--batch-size 8] [--threads 2]
                                   [--model demo] [--data demo]
"""
from __future__ import annotations

import argparse
import copy
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path[0] = str(Path(__file__).resolve().parent.parent)

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from transformers import Trainer, TrainingArguments  # noqa: E402

from benchmarks.memory_plan import peak_bytes  # noqa: E402
from engine.train import RunConfig, plan_epoch, prepare, step  # noqa: E402


def _sequence_nll(model, inputs) -> torch.Tensor:
    """Σ_t NLL over the label positions of each row (labels −100 elsewhere), (B,)."""
    logits = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]).logits
    shifted, labels = logits[:, :-1], inputs["labels"][:, 1:]
    nll = F.cross_entropy(shifted.transpose(1, 2), labels, ignore_index=-100, reduction="none")
    return nll.sum(-1)


class GradAscent(Trainer):
    """open-unlearning's GradAscent: the negated model loss on the forget batch."""

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        forget = inputs["forget"]
        outputs = model(**forget)
        loss = -outputs.loss
        return (loss, outputs) if return_outputs else loss


class NPO(Trainer):
    """open-unlearning's NPO (GradDiff subclass): −(2/β)·log σ(−β·(Σℓ_θ − Σℓ_ref)) on the forget
    batch, the reference a second model, plus α · the retain NLL (α = γ = 1, β = 0.1)."""

    def __init__(self, *args, ref_model=None, beta: float = 0.1, alpha: float = 1.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.ref_model, self.beta, self.alpha = ref_model, beta, alpha

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        forget = inputs["forget"]
        with torch.no_grad():
            ref = _sequence_nll(self.ref_model, forget)
        lose_log_ratio = -(_sequence_nll(model, forget) - ref)
        forget_loss = -2 / self.beta * F.logsigmoid(self.beta * lose_log_ratio).mean()
        retain_loss = model(**inputs["retain"]).loss
        return forget_loss + self.alpha * retain_loss


def _hf_inputs(batch) -> dict:
    labels = batch.input_ids.masked_fill(~batch.label_mask, -100)
    return {"input_ids": batch.input_ids, "attention_mask": batch.attention_mask, "labels": labels}


def peer_trainer(cls, model, cfg: RunConfig, out: str, **extra):
    args = TrainingArguments(output_dir=out, per_device_train_batch_size=cfg.batch_size, learning_rate=cfg.lr,
                             max_grad_norm=cfg.max_grad_norm, weight_decay=cfg.weight_decay, report_to=[],
                             use_cpu=not torch.cuda.is_available(), lr_scheduler_type="constant",
                             save_strategy="no", logging_strategy="no", disable_tqdm=True)
    trainer = cls(model=model, args=args, **extra)
    trainer.create_optimizer_and_scheduler(num_training_steps=10**6)
    trainer.current_gradient_accumulation_steps = 1  # set by Trainer.train()'s loop, which is not run here
    return trainer


def peer_step(trainer, inputs: dict) -> None:
    """Trainer's inner loop for one step: training_step, clip, optimiser and scheduler, zero_grad."""
    trainer.model.train()
    trainer.training_step(trainer.model, inputs)
    torch.nn.utils.clip_grad_norm_(trainer.model.parameters(), trainer.args.max_grad_norm)
    trainer.optimizer.step()
    trainer.lr_scheduler.step()
    trainer.model.zero_grad(set_to_none=True)


def compare(loss: str, cls, a, out: str) -> dict:
    cfg = RunConfig(model=a.model, data=a.data, loss=loss, selector="all", batch_size=a.batch_size, epochs=1,
                    save_checkpoints=False, device=a.device)
    state = prepare(cfg)
    micro = plan_epoch(state, 0)[0]
    _, forget, retain = micro[0]
    peer_model = copy.deepcopy(state.model)  # same weights as the engine's model
    extra = {"ref_model": copy.deepcopy(state.model).eval()} if cls is NPO else {}
    inputs = {"forget": _hf_inputs(forget.to(state.device))}
    if retain is not None:
        inputs["retain"] = _hf_inputs(retain.to(state.device))
    trainer = peer_trainer(cls, peer_model, cfg, out, **extra)
    engine_t, peer_t = [], []
    sync = torch.cuda.synchronize if state.device.startswith("cuda") else (lambda: None)
    for r in range(a.warmup + a.rounds):
        for fn, times in ((lambda: step(state, micro), engine_t), (lambda: peer_step(trainer, inputs), peer_t)):
            sync()
            t = time.perf_counter()
            fn()
            sync()
            if r >= a.warmup:
                times.append(time.perf_counter() - t)
    mem_engine = peak_bytes(lambda: step(state, micro), state.device)
    mem_peer = peak_bytes(lambda: peer_step(trainer, inputs), state.device)
    e, p = statistics.median(engine_t), statistics.median(peer_t)
    return {"loss": loss, "engine_ms": e * 1e3, "peer_ms": p * 1e3, "time_ratio": e / p,
            "engine_peak_mib": mem_engine / 2**20, "peer_peak_mib": mem_peer / 2**20,
            "memory_ratio": mem_engine / mem_peer}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--model", default="demo", help="built-in name or HF directory (e.g. smollm2)")
    ap.add_argument("--data", default="demo", help="built-in data name (e.g. tofu/forget01)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    print("| loss | engine ms | peer ms | engine/peer time | engine peak MiB | peer peak MiB | engine/peer memory |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as out:
        for loss, cls in (("ga", GradAscent), ("npo", NPO)):
            r = compare(loss, cls, a, out)
            print(f"| {r['loss']} | {r['engine_ms']:.1f} | {r['peer_ms']:.1f} | {r['time_ratio']:.2f} | "
                  f"{r['engine_peak_mib']:.1f} | {r['peer_peak_mib']:.1f} | {r['memory_ratio']:.2f} |", flush=True)


if __name__ == "__main__":
    main()
