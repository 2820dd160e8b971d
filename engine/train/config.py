"""What decides a run (`RunConfig`) and what a run returns (`RunResult`)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Callable

from ..losses import get_loss
from ..selectors import SELECTORS, get_selector
from ..weights import LEARNED_WEIGHTS

Progress = Callable[[dict], None]


@dataclass
class RunConfig:
    """Everything that decides an unlearning run. Defaults work on the built-in model (CPU).

    selector | mask_set: where the token weights come from (exactly one; mask_set wins when both).
    weighting: 'mask' (the selector's hard mask), 'scores' (its scores as soft weights, scaled
    into [0, 1] per row when larger) or 'auto' (scores for `atwu`, the mask otherwise).
    selector='atwu' in a run means ATWU's joint training: a fresh zero-initialised scorer (or
    the saved one with selector_params init='saved') steps every `atwu_every` model steps and
    is saved at the end for the `atwu` selector; every other selector runs once, on the
    initial model, before the first step.
    lr default 3e-4: the best of {3e-5, 1e-4, 3e-4, 1e-3} for most methods on the built-in model
    (benchmarks/results/results_table.md, 5 epochs); real models want ~1e-5 (SPEC §3).
    loss_params: the loss's keyword hyper-parameters (see `LOSSES[name].defaults`); `beta`,
    when set, overrides the loss's β. atwu_every: model steps per ATWU scorer step (n = 5).
    lr schedule: linear warm-up over `warmup_steps`, then constant.
    max_steps: a cap on optimiser steps; the epoch it cuts short is still evaluated and counted.
    retain_eval_size / eval_max_new_tokens: the evaluation's retain subset and generation length.
    eval_every: evaluate after every N-th epoch (the final epoch always; step 0 comes from the
    target model's cached evaluation). Default 1, so every epoch is a point on the trade-off
    curve; larger N trades curve points for time (benchmarks/eval_share.py). eval_batch_size: rows per
    evaluation forward / generation batch; None lets `memory_plan.plan_evaluation` choose.
    eval_rouge_rows: between step 0 and the last epoch, the greedy generations (ROUGE-L) run on a
    fixed, seeded subsample of this many rows per split (`eval.full.rouge_subsample`; FQ and
    every forward-only number stay on every row); step 0, the best epoch (re-evaluated at the
    end) and the last epoch get the full protocol. None: the full protocol every epoch.
    gradient_checkpointing: 'auto' (`memory_plan.plan_training` decides against free memory),
    'on' or 'off'. The plan also decides whether the retain batch is backpropagated on its own.
    rules: phrase rules (`engine.masks.rules_to_json` objects) applied on top of the selector's
    or mask set's masks, after the mask set's own rules (`engine.weights.fixed.with_rules`).
    """

    model: str = "demo"
    data: str = "demo"
    loss: str = "ga"
    selector: str | None = "all"
    mask_set: str | None = None
    selector_params: dict = field(default_factory=dict)
    loss_params: dict = field(default_factory=dict)
    weighting: str = "auto"
    epochs: int = 10
    lr: float = 3e-4
    batch_size: int = 8
    grad_accum: int = 1
    warmup_steps: int = 0
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    seed: int = 0
    lora: bool = False
    lora_r: int = 8
    lora_alpha: int = 16
    lora_targets: str = "all-linear"
    device: str = "auto"
    eval_every_epoch: bool = True  # False: no evaluation at all
    eval_every: int = 1
    eval_batch_size: int | None = None
    gradient_checkpointing: str = "auto"
    retain_eval_size: int = 200
    eval_max_new_tokens: int = 64
    orthogonalize: bool = False
    beta: float | None = None
    atwu_every: int = 5
    max_steps: int | None = None
    save_checkpoints: bool = True
    retain_model: str | None = None  # FQ's gold standard; None: resolve.retain_model_for (demo → demo-retain)
    rules: list = field(default_factory=list)
    eval_rouge_rows: int | None = 40  # per-epoch ROUGE on this many seeded rows per split; None: every row
    sharding: str = "ddp"  # under a multi-process launch: 'ddp' (whole model per rank) or 'fsdp' (sharded)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "RunConfig":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    def loss_kwargs(self) -> dict:
        """The loss's hyper-parameters: its defaults, then loss_params, then `beta`."""
        spec = get_loss(self.loss)
        over = dict(self.loss_params)
        if self.beta is not None:
            if "beta" not in spec.defaults:
                raise ValueError(f"loss {self.loss!r} has no beta")
            over["beta"] = self.beta
        return spec.params(over)

    def check(self) -> None:
        """Raise ValueError (KeyError for unknown names) for a config that cannot run, before
        anything is loaded."""
        spec = get_loss(self.loss)
        if not self.selector and not self.mask_set:
            raise ValueError("name a selector (e.g. --selector all) or a mask set (--mask-set NAME)")
        if self.mask_set is None and self.selector not in LEARNED_WEIGHTS:
            get_selector(self.selector)
        if self.rules:
            from ..masks.rules import rules_from_json

            rules_from_json(self.rules, "rules")  # MaskFileError (a ValueError) naming rules[i] and the field
            if self.mask_set is None and self.selector in LEARNED_WEIGHTS:
                raise ValueError(f"rules apply to fixed masks (a selector or a mask set), not to "
                                 f"{self.selector}'s learned weights")
        if self.weighting not in ("auto", "mask", "scores"):
            raise ValueError(f"weighting must be auto, mask or scores, got {self.weighting!r}")
        if self.sharding not in ("ddp", "fsdp"):
            raise ValueError(f"sharding must be ddp or fsdp, got {self.sharding!r}")
        if self.gradient_checkpointing not in ("auto", "on", "off"):
            raise ValueError(f"gradient_checkpointing must be auto, on or off, got {self.gradient_checkpointing!r}")
        if self.eval_batch_size is not None and self.eval_batch_size < 1:
            raise ValueError(f"eval_batch_size must be at least 1, got {self.eval_batch_size}")
        for name in ("epochs", "batch_size", "grad_accum", "atwu_every", "eval_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"max_steps must be at least 1, got {self.max_steps}")
        from ..param_check import check_device, check_finite_positive, check_positive_int, check_selector_params

        check_finite_positive(self.lr, "lr")
        check_finite_positive(self.beta, "beta")
        check_positive_int(self.retain_eval_size, "retain_eval_size")
        check_positive_int(self.eval_max_new_tokens, "eval_max_new_tokens")
        if self.eval_rouge_rows is not None:
            check_positive_int(self.eval_rouge_rows, "eval_rouge_rows")
        check_positive_int(self.warmup_steps, "warmup_steps", minimum=0)
        check_device(self.device, "device")
        if self.mask_set is None and self.selector in SELECTORS:  # a learned-weight method checks its own
            check_selector_params(self.selector, dict(self.selector_params), in_run=True)
        self.loss_kwargs()  # unknown loss parameters and bad values fail here
        if self.orthogonalize and not spec.preserve_params:
            raise ValueError(f"orthogonalize needs a loss with a preservation term; {self.loss!r} has none")


@dataclass
class RunResult:
    """What `unlearn` returns; `history[0]` is the step-0 evaluation when one was made."""

    run_id: int | None
    status: str  # finished | cancelled | failed
    epochs_completed: int
    history: list[dict]
    best_epoch: int | None
    checkpoints: dict[str, str]
    error: str | None = None
    seconds: float = 0.0
    scorer_path: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)
