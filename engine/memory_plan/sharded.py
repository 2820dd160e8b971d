"""Planning a run sharded over several GPUs (FSDP / ZeRO-3): the per-GPU peak (`plan_sharded`) and
docs/memory-fit.md's table for published Llama sizes (`fit_table`)."""
from __future__ import annotations

from .plan import SAFETY, Plan
from .shape import ModelShape, llama_shape
from .terms import logits_bytes, weights_bytes
from .training import training_phases

GPU_80GB = 80 * 10**9  # an "80 GB" card (H100/A100 80GB: 79.6-85 GB usable; the table assumes 80e9)


def shard_terms(terms: dict[str, int], gpus: int) -> dict[str, int]:
    """Per-GPU bytes of `estimate_training`'s terms under FSDP / ZeRO-3 over `gpus` ranks: the
    weights, gradients, AdamW states (and a reference copy's weights) are divided by N (ceil);
    activations, logits and every other per-batch term are each rank's own batch, not divided."""
    sharded = ("weights", "gradients", "adamw_states", "adamw_temporaries", "reference_copy")
    return {k: -(-v // gpus) if k in sharded else v for k, v in terms.items()}


def plan_sharded(s: ModelShape, gpus: int, batch: int, seq: int, budget: int | None = int(SAFETY * GPU_80GB),
                 loss: str = "npo", lora: bool = False, lora_r: int = 8, retain: bool = True,
                 autocast: bool = True, checkpointing: bool | None = None) -> Plan:
    """Per-GPU peak of a run sharded over `gpus` GPUs (`engine.train.distributed`, FSDP2): fp32
    master weights (b = 4) under bf16 autocast; `batch` rows per GPU.

    training: from the second step on, weights, AdamW states and the accumulating gradients
    (each / N, `shard_terms`) beside the backward's activations and logits (`training_phases`;
    `estimate_training` plans the first step, before the states exist), plus (N > 1) the all-gathered
    units: FSDP2 holds the current decoder layer's and the prefetched next one's full weights
    (2 · layer params · 4 bytes) and, at the root, the embedding and head (V·H·4, twice untied).
    rank 0's evaluation: the shards' weights and AdamW states stay resident while the unsharded
    fp32 copy (P·4) is on the GPU, plus an evaluation batch's logits (`logits_bytes`, 8 rows).
    The peak is the larger; checkpointing None tries off, then on. LoRA: the frozen base
    weights are sharded too; the adapters' gradients and states are tiny."""
    b = 4
    for ckpt in ([False, True] if checkpointing is None else [checkpointing]):
        shape = s.with_lora(lora_r) if lora and s.lora_r == 0 else s
        weights, backward, step = training_phases(shape, batch, seq, b, loss, ckpt, retain, False, False, False,
                                                  autocast, "cuda")
        # from the second step on, AdamW's states stay resident through the backward, while the
        # gradients accumulate: weights + states + gradients + the backward's activations at once
        terms = shard_terms({"weights": weights, **backward, "gradients": step["gradients"],
                             "adamw_states": step["adamw_states"]}, gpus)
        if gpus > 1:
            layer = shape.layer_linear_params + 2 * shape.hidden
            root = shape.vocab * shape.hidden * (1 if shape.tied else 2)
            terms["gathered_units"] = 2 * layer * b + root * b
        resident = terms.get("weights", 0) + terms.get("adamw_states", 0) + terms.get("adamw_temporaries", 0)
        full_copy = weights_bytes(shape, b) if gpus > 1 else 0
        evaluation = resident + full_copy + logits_bytes(shape, 8, seq, 2, backward=False)
        settings = {"gpus": gpus, "gradient_checkpointing": ckpt, "lora": lora, "batch_per_gpu": batch,
                    "separate_retain_backward": False, "lora_suggested": False,
                    "train_peak": sum(terms.values()), "rank0_eval_peak": evaluation}
        if evaluation > sum(terms.values()):
            terms["rank0_eval_excess"] = evaluation - sum(terms.values())
        plan = Plan(f"training {loss} on {gpus} GPU(s)" + (" (LoRA)" if lora else ""), terms, budget, settings,
                    ["gradient checkpointing on to fit"] if ckpt and checkpointing is None else [])
        if plan.fits:
            return plan
    return plan


REFERENCE_SHAPES = {  # published configs: Llama-3.2-1B/3B, Llama-2-7B/13B, Llama-3.1-8B/70B
    "1B": llama_shape(2048, 16, 8192, 128256, 512, True),
    "3B": llama_shape(3072, 28, 8192, 128256, 1024, True),
    "7B": llama_shape(4096, 32, 11008, 32000, 4096, False),
    "8B": llama_shape(4096, 32, 14336, 128256, 1024, False),
    "13B": llama_shape(5120, 40, 13824, 32000, 5120, False),
    "70B": llama_shape(8192, 80, 28672, 128256, 1024, False),
}


def fit_table(gpus: tuple[int, ...] = (1, 2, 4, 8), batch: int = 4, seq: int = 512) -> str:
    """docs/memory-fit.md's table: per model size and GPU count, the per-GPU peak of full
    fine-tuning and of LoRA (r = 8) under `plan_sharded` against 0.9 × 80 GB; ✓ fits, ✗ does not."""
    head = "| model | params | " + " | ".join(f"full, {n}×80 GB" for n in gpus) + " | " + \
        " | ".join(f"LoRA, {n}×80 GB" for n in gpus) + " |"
    rows = [head, "|" + "---|" * (2 + 2 * len(gpus))]
    for name, shape in REFERENCE_SHAPES.items():
        cells = []
        for lora in (False, True):
            for n in gpus:
                p = plan_sharded(shape, n, batch, seq, lora=lora)
                ck = " ckpt" if p.settings["gradient_checkpointing"] else ""
                cells.append(f"{'✓' if p.fits else '✗'} {p.total / 10**9:.0f} GB{ck}")
        rows.append(f"| {name} | {shape.params / 10**9:.2f} B | " + " | ".join(cells) + " |")
    return "\n".join(rows)
