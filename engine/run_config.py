"""`RunConfig`: everything that decides an unlearning run, as recorded with the run (engine.store's
`RunRecord.config`). Light on purpose: the store reads records with it and imports no torch; the
checks that need the loss, selector and weight registries import them when called."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from .data.sample import PROTOCOLS
from .data.tofu_layout import PROTOCOL_SETTINGS, default_protocol, is_tofu_layout
from .eval.registry import DEFAULT_BEST, rankable
from .model_dirs import MODEL_NAMES
from .param_check import check_device, check_finite_positive, check_positive_int
from .prompts import generation_length

# Per-model defaults (issue 20): the built-in tiny model keeps what its results table chose; any other
# model gets open-unlearning's (configs/trainer/finetune.yaml + GradDiff etc.: lr 1e-5, weight decay 0.01,
# warm-up 1 epoch, linear decay to 0; TOFU's own unlearning recipe uses the same).
TINY_DEFAULTS = {"lr": 3e-4, "weight_decay": 0.0, "warmup_epochs": 0.0, "lr_schedule": "constant"}
REAL_DEFAULTS = {"lr": 1e-5, "weight_decay": 0.01, "warmup_epochs": 1.0, "lr_schedule": "linear"}
SCHEDULES = ("constant", "linear")


def is_builtin_model(spec: str) -> bool:
    """The built-in tiny models (`demo`, `demo-retain`), by name."""
    return str(spec) in MODEL_NAMES


def model_defaults(spec: str) -> dict:
    """TINY_DEFAULTS for a built-in model, REAL_DEFAULTS for any other."""
    return dict(TINY_DEFAULTS if is_builtin_model(spec) else REAL_DEFAULTS)


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
    lr, weight_decay, warmup_epochs, lr_schedule: None means the model's default, resolved when the
    config is made and recorded with the run: on the built-in model lr 3e-4 (the best of {3e-5, 1e-4,
    3e-4, 1e-3} for most methods, benchmarks/results/results_table.md), no weight decay, no warm-up,
    constant; on any other model open-unlearning's lr 1e-5, weight decay 0.01, one warm-up epoch,
    linear decay to 0 (`model_defaults`).
    loss_params: the loss's keyword hyper-parameters (see `LOSSES[name].defaults`); `beta`,
    when set, overrides the loss's β. atwu_every: model steps per ATWU scorer step (n = 5).
    lr schedule (`lr_at`): linear warm-up over `warmup_steps` (when > 0) or `warmup_epochs` epochs of
    steps, then constant or linear decay to 0 at the last step (`lr_schedule`).
    max_steps: a cap on optimiser steps; the epoch it cuts short is still evaluated and counted.
    protocol: the evaluation protocol, None: the data's default (`tofu_layout.default_protocol`:
    'open-unlearning' on TOFU's files, else 'all'); recorded with the run. Under 'tofu' /
    'open-unlearning' the protocol fixes the rows, the evaluation batch (30 / 32, unless
    eval_batch_size is given) and the generation length (200, unless given); retain_eval_size
    then must stay None (refused, never ignored). Under 'all': retain_eval_size (None: 200) retain
    rows, generation length None: the data's (`prompts.generation_length`: 64 built-in, else 200).
    eval_every: evaluate after every N-th epoch (the final epoch always; step 0 comes from the
    target model's cached evaluation). Default 1, so every epoch is a point on the trade-off
    curve; larger N trades curve points for time (benchmarks/eval_share.py). eval_batch_size: rows per
    evaluation forward / generation batch; None lets `memory_plan.plan_evaluation` choose.
    eval_rouge_rows: between step 0 and the last epoch, the greedy generations (ROUGE-L) run on a
    fixed, seeded subsample of this many rows per split (`eval.full.rouge_subsample`; FQ and
    every forward-only number stay on every row); step 0, the best epoch (re-evaluated at the
    end) and the last epoch get the full protocol. None: the full protocol every epoch.
    eval_gradnorm: the gradient-norm MIA AUC (one backward pass per forget and holdout answer: on
    SmolLM2-135M on one CPU core about 5 minutes, the largest part of a final evaluation) at step 0
    and the last evaluation; False records None for it (the other MIA AUCs stay).
    gradient_checkpointing: 'auto' (`memory_plan.plan_training` decides against free memory),
    'on' or 'off'. The plan also decides whether the retain batch is backpropagated on its own.
    rules: phrase rules (`engine.masks.rules_to_json` objects) applied on top of the selector's
    or mask set's masks, after the mask set's own rules (`engine.weights.fixed.with_rules`).
    extra: keys of a recorded config this code does not know (`from_record`), written back by
    `to_dict` beside the fields; empty for a config made here.
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
    lr: float | None = None
    batch_size: int = 8
    grad_accum: int = 1
    warmup_steps: int = 0
    weight_decay: float | None = None
    warmup_epochs: float | None = None
    lr_schedule: str | None = None
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
    retain_eval_size: int | None = None
    eval_max_new_tokens: int | None = None
    protocol: str | None = None
    orthogonalize: bool = False
    beta: float | None = None
    atwu_every: int = 5
    max_steps: int | None = None
    save_checkpoints: bool = True
    retain_model: str | None = None  # FQ's gold standard; None: resolve.retain_model_for (demo → demo-retain)
    rules: list = field(default_factory=list)
    best_metric: str = DEFAULT_BEST  # the 'best' checkpoint's metric (engine.eval.registry; its direction)
    eval_gradnorm: bool = True  # the gradient-norm MIA AUC at step 0 and the last evaluation (False: None)
    eval_rouge_rows: int | None = 40  # per-epoch ROUGE on this many seeded rows per split; None: every row
    sharding: str = "ddp"  # under a multi-process launch: 'ddp' (whole model per rank) or 'fsdp' (sharded)
    extra: dict[str, Any] = field(default_factory=dict, repr=False)  # a record's keys this code does not know

    def __post_init__(self) -> None:
        for k, v in model_defaults(self.model).items():
            if getattr(self, k) is None:
                setattr(self, k, v)
        if self.protocol is None:
            self.protocol = default_protocol(self.data)
        fixed = PROTOCOL_SETTINGS.get(self.protocol)
        if fixed is not None:
            if self.eval_batch_size is None:
                self.eval_batch_size = fixed["eval_batch_size"]
            if self.eval_max_new_tokens is None:
                self.eval_max_new_tokens = fixed["max_new_tokens"]
        else:
            if self.retain_eval_size is None:
                self.retain_eval_size = 200
            if self.eval_max_new_tokens is None:
                self.eval_max_new_tokens = generation_length(self.data)

    def to_dict(self) -> dict:
        """The fields by name, with `extra`'s keys beside them (not under 'extra'), as recorded."""
        d = asdict(self)
        extra = d.pop("extra")
        return {**extra, **d}

    @classmethod
    def from_dict(cls, d: dict) -> "RunConfig":
        """A config from a record (`from_record`) without the keys this code does not know."""
        cfg = cls.from_record(d)
        cfg.extra = {}
        return cfg

    @classmethod
    def from_record(cls, d: dict) -> "RunConfig":
        """A config from a recorded dict: unknown keys are kept in `extra`, missing ones take their
        defaults (resolved as for a new config). A record older than per-model defaults (it has an
        lr but no lr_schedule) ran with no warm-up epoch and a constant rate, and keeps them; one
        older than named protocols on TOFU's layout ran the 'tofu' protocol."""
        names = {f.name for f in fields(cls)} - {"extra"}
        extra = {**dict(d.get("extra") or {}), **{k: v for k, v in d.items() if k not in names and k != "extra"}}
        d = {k: v for k, v in d.items() if k in names}
        if "lr" in d and "lr_schedule" not in d:
            d = {"warmup_epochs": 0.0, "lr_schedule": "constant", "weight_decay": 0.0, **d}
        if "protocol" not in d and "data" in d:  # before named protocols: TOFU's on its layout, sizes ignored
            if is_tofu_layout(d["data"]):
                d = {**d, "protocol": "tofu", "retain_eval_size": None}
        return cls(**d, extra=extra)

    def steps_per_epoch(self, n_forget: int, world: int = 1) -> int:
        return math.ceil(math.ceil(n_forget / self.batch_size) / (self.grad_accum * world))

    def lr_at(self, step: int, n_forget: int, world: int = 1) -> float:
        """The learning rate of 0-based optimiser step `step`: linear warm-up to `lr` over W steps
        (W = warmup_steps when > 0, else round(warmup_epochs × steps per epoch)), then `lr`
        ('constant') or linear decay to 0 at the last step ('linear', as transformers'
        get_linear_schedule_with_warmup: lr · (total − step) / (total − W))."""
        per_epoch = self.steps_per_epoch(n_forget, world)
        total = per_epoch * self.epochs
        if self.max_steps:
            total = min(total, self.max_steps)
        warm = self.warmup_steps if self.warmup_steps > 0 else round((self.warmup_epochs or 0.0) * per_epoch)
        if step < warm:
            return self.lr * (step + 1) / warm
        if self.lr_schedule == "linear":
            return self.lr * max(0.0, (total - step) / max(1, total - warm))
        return self.lr

    def loss_kwargs(self) -> dict:
        """The loss's hyper-parameters: its defaults, then loss_params, then `beta`."""
        # torch-heavy registries (losses, weights): deferred so the store reads records without torch
        from .losses import get_loss  # deferred: torch
        from .weights import LEARNED_WEIGHTS  # deferred: torch

        spec = get_loss(self.loss)
        over = dict(self.loss_params)
        learned = LEARNED_WEIGHTS.get(self.selector) if self.mask_set is None else None
        if getattr(learned, "token_mean", False) and "token_mean" in spec.defaults and "token_mean" not in over:
            over["token_mean"] = True  # WGA / SatImp: the papers' token mean (engine.weights.dynamic)
        if self.beta is not None:
            if "beta" not in spec.defaults:
                raise ValueError(f"loss {self.loss!r} has no beta")
            over["beta"] = self.beta
        return spec.params(over)

    def check(self) -> None:
        """Raise ValueError (KeyError for unknown names) for a config that cannot run, before
        anything is loaded."""
        # torch-heavy registries (losses, selectors, weights): deferred so the store reads records without torch
        from .losses import get_loss  # deferred: torch
        from .selectors import SELECTORS, check_selector_params, get_selector  # deferred: torch
        from .weights import LEARNED_WEIGHTS  # deferred: torch

        spec = get_loss(self.loss)
        if not self.selector and not self.mask_set:
            raise ValueError("name a selector (e.g. --selector all) or a mask set (--mask-set NAME)")
        if self.mask_set is None and self.selector not in LEARNED_WEIGHTS:
            get_selector(self.selector)
        if self.rules:
            from .masks.rules import rules_from_json  # deferred: torch (engine.masks imports it)

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
        check_finite_positive(self.lr, "lr")
        if self.lr_schedule not in SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {', '.join(SCHEDULES)}, got {self.lr_schedule!r}")
        if not (self.weight_decay >= 0 and math.isfinite(self.weight_decay)):
            raise ValueError(f"weight_decay must be a finite number ≥ 0, got {self.weight_decay}")
        if not (self.warmup_epochs >= 0 and math.isfinite(self.warmup_epochs)):
            raise ValueError(f"warmup_epochs must be a finite number ≥ 0, got {self.warmup_epochs}")
        learned = LEARNED_WEIGHTS.get(self.selector) if self.mask_set is None else None
        if learned is not None and hasattr(learned, "check_config"):
            learned.check_config(self)
        check_finite_positive(self.beta, "beta")
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {', '.join(PROTOCOLS)}, got {self.protocol!r}")
        if self.protocol != "all" and self.retain_eval_size is not None:
            raise ValueError(f"retain_eval_size ({self.retain_eval_size}) applies to protocol 'all' only; protocol "
                             f"{self.protocol!r} fixes the retain rows (tofu: the first 300 of retain_perturbed, "
                             f"open-unlearning: all of them); use --protocol all to subsample")
        if self.retain_eval_size is not None:
            check_positive_int(self.retain_eval_size, "retain_eval_size")
        check_positive_int(self.eval_max_new_tokens, "eval_max_new_tokens")
        if self.eval_rouge_rows is not None:
            check_positive_int(self.eval_rouge_rows, "eval_rouge_rows")
        check_positive_int(self.warmup_steps, "warmup_steps", minimum=0)
        check_device(self.device, "device")
        if self.mask_set is None and self.selector in SELECTORS and not hasattr(learned, "check_config"):
            # a learned-weight method checks its own
            check_selector_params(self.selector, dict(self.selector_params), in_run=True)
        self.loss_kwargs()  # unknown loss parameters and bad values fail here
        rankable(self.best_metric)  # a registered metric with a better direction
        if self.orthogonalize and not spec.preserve_params:
            raise ValueError(f"orthogonalize needs a loss with a preservation term; {self.loss!r} has none")


