"""A memory plan: the peak bytes of scoring, evaluating or training a model, estimated before the
work starts, and the settings that keep it inside the device (or a refusal that shows the numbers).

    shape = ModelShape.from_model(model)
    plan = plan_dto(shape, seq_len=64, budget=free_bytes("cuda"), dtype_bytes=2)
    plan.settings["probe_batch"], plan.fits, print(plan.explain())

One module per thing planned, each on the ones above it:
`shape` (ModelShape) → `plan` (Plan, the budget) → `terms` (one function per formula, with the
notation) → `evaluation` (a no-grad forward) → `scoring` (selectors, DTO's probe) → `training`
(one step on one device) → `sharded` (FSDP over several GPUs, the fit table). This package
re-exports every public name, so `from engine.memory_plan import …` is the one import path.

Every term is a list of the tensors that are alive at the peak, counted from what the code keeps
(`terms` says how they were listed); `benchmarks/memory_plan.py` checks the totals against
measured peaks on CPU, `benchmarks/gpu_check.py` on a GPU.
"""
from __future__ import annotations

from .evaluation import MAX_EVAL_BATCH, estimate_forward, plan_evaluation
from .plan import SAFETY, Plan, budget_of, free_bytes
from .scoring import MAX_PROBE_BATCH, SELECTOR_COST, estimate_dto, plan_dto, plan_selector, planned_probe_batch
from .shape import ModelShape, llama_shape
from .sharded import GPU_80GB, REFERENCE_SHAPES, fit_table, plan_sharded, shard_terms
from .terms import (ACTIVATION_SAVED, NLL_CHUNK_ELEMENTS, adamw_bytes, attention_bytes, autocast_weight_bytes,
                    block_activation_bytes, kl_bytes, layer_bytes, log_softmax_bytes, logits_bytes, mlp_bytes,
                    nll_chunk, norm_bytes, output_gradient_bytes, recomputed_block_bytes, tied_gradient_bytes,
                    weights_bytes)
from .training import estimate_training, plan_training, training_phases

__all__ = ["ACTIVATION_SAVED", "GPU_80GB", "MAX_EVAL_BATCH", "MAX_PROBE_BATCH", "NLL_CHUNK_ELEMENTS",
           "REFERENCE_SHAPES", "SAFETY", "SELECTOR_COST", "ModelShape", "Plan", "adamw_bytes", "attention_bytes",
           "autocast_weight_bytes", "block_activation_bytes", "budget_of", "estimate_dto", "estimate_forward",
           "estimate_training", "fit_table", "free_bytes", "kl_bytes", "layer_bytes", "llama_shape",
           "log_softmax_bytes", "logits_bytes", "mlp_bytes", "nll_chunk", "norm_bytes", "output_gradient_bytes",
           "plan_dto", "plan_evaluation", "plan_selector", "plan_sharded", "plan_training", "planned_probe_batch",
           "recomputed_block_bytes", "shard_terms", "tied_gradient_bytes", "training_phases", "weights_bytes"]
