"""The unlearning loop: a config in, a recorded run (metrics per epoch, checkpoints) out.

    from engine.train import RunConfig, unlearn
    result = unlearn(RunConfig(model="demo", data="demo", loss="tpo", selector="tif"))

Flow (one small module each): `config` (RunConfig, RunResult) → `state.prepare` loads model +
data, the frozen reference when the loss needs one, and the per-sample token `weights`
(`engine.weights`: a selector on the initial model, a saved mask set, or learned weights such
as ATWU's scorer, which learn during the run) → `loop.unlearn` evaluates at step 0
(`engine.train.evaluation`), runs epochs of `step.step` (one optimiser step over `grad_accum` micro-batches of forget [+ retain] data), evaluates after
every epoch and keeps the final and best-forget-quality `checkpoint`s (safetensors, LoRA
merged) under `runs_dir(store)/<run id>/` (beside the store), recording everything in the store.

Device: cuda + bf16 when present, CPU + fp32 otherwise (`engine.models.device`).
Several GPUs: the same code runs data-parallel under accelerate (or torchrun), e.g.
    accelerate launch --multi_gpu --num_processes 4 -m engine unlearn --model M --data D --loss npo
    torchrun --nproc_per_node 2 -m engine unlearn …      (CPU processes: gloo; checked on 2 CPUs)
(each process takes its share of every step's micro-batches, DDP averages the gradients,
learned token weights average their own, the main process evaluates and records;
`orthogonalize` is single-process only).
"""
from __future__ import annotations

from ..losses import LOSSES
from .evaluation import evaluate_state, forget_token_probs
from ..weights import FixedWeights, normalise_scores, weights_from_mask_set, weights_from_selector
from .fit_scorer import fit_atwu_scorer
from .check import check_run
from .checkpoint import save_checkpoint, save_run_scorer
from .config import Progress, ProgressEvent, RunConfig, RunResult
from .loop import short_run, total_steps, unlearn
from .state import State, prepare
from .step import loss_inputs, lr_at, orthogonal_backward, plan_epoch, step

__all__ = ["LOSSES", "FixedWeights", "check_run", "Progress", "ProgressEvent", "RunConfig", "RunResult", "State",
           "evaluate_state",
           "fit_atwu_scorer", "forget_token_probs", "loss_inputs", "lr_at", "normalise_scores",
           "orthogonal_backward", "plan_epoch", "prepare", "save_checkpoint", "save_run_scorer", "short_run", "step",
           "total_steps", "unlearn", "weights_from_mask_set", "weights_from_selector"]
