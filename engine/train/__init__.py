"""The unlearning loop: a config in, a recorded run (metrics per epoch, checkpoints) out.

    from engine.train import RunConfig, unlearn
    result = unlearn(RunConfig(model="demo", data="demo", loss="tpo", selector="tif"))

Flow (one small module each): `config` (RunConfig, RunResult) → `state.prepare` loads model +
data, the frozen reference when the loss needs one, and the per-sample token `weights`
(selector on the initial model, or a saved mask set; the ATWU scorer instead learns during
the run) → `loop.unlearn` evaluates at step 0 (`evaluation`), runs epochs of `step.step` (one
optimiser step over `grad_accum` micro-batches of forget [+ retain] data), evaluates after
every epoch and keeps the final and best-forget-quality `checkpoint`s (safetensors, LoRA
merged) under `runs_dir(store)/<run id>/` (beside the store), recording everything in the store.

Device: cuda + bf16 when present, CPU + fp32 otherwise (`engine.models.device`).
Several GPUs: the same code runs data-parallel under accelerate (or torchrun), e.g.
    accelerate launch --multi_gpu --num_processes 4 -m engine unlearn --model M --data D --loss npo
    torchrun --nproc_per_node 2 -m engine unlearn …      (CPU processes: gloo; checked on 2 CPUs)
(each process takes its share of every step's micro-batches, DDP averages the gradients, the
ATWU scorer's gradients are averaged by hand, the main process evaluates and records;
`orthogonalize` is single-process only).
"""
from __future__ import annotations

from ..losses import LOSSES
from .checkpoint import save_checkpoint
from .config import Progress, RunConfig, RunResult
from ..eval.run import evaluate_state, forget_token_probs
from .loop import fit_atwu_scorer, total_steps, unlearn
from .state import State, prepare
from .step import loss_inputs, lr_at, orthogonal_backward, plan_epoch, step
from .weights import SampleWeights, normalise_scores, weights_from_mask_set, weights_from_selector

__all__ = ["LOSSES", "Progress", "RunConfig", "RunResult", "SampleWeights", "State", "evaluate_state",
           "fit_atwu_scorer", "forget_token_probs", "loss_inputs", "lr_at", "normalise_scores",
           "orthogonal_backward", "plan_epoch", "prepare", "save_checkpoint", "step", "total_steps", "unlearn",
           "weights_from_mask_set", "weights_from_selector"]
