"""What a run carries (`State`) and `prepare`, which loads it: model (+ LoRA), frozen reference
when the loss needs one, data, token weights (a WeightSource), optimiser, accelerate."""
from __future__ import annotations

import copy
import logging
import os
import random
from dataclasses import dataclass, field

import torch

from ..context import check_fits
from ..losses import PREFERRED_INPUTS, LossSpec, get_loss
from ..masks.rules import rules_from_json
from ..memory_plan import ModelShape, Plan, budget_of, plan_sharded, plan_training, weights_bytes
from ..models import load_model
from ..models.device import Precision, adamw, precision_for
from ..resolve import model_path
from ..tokens import encode_samples
from ..weights import LEARNED_WEIGHTS, WeightSource, weights_from_mask_set, weights_from_selector
from ..weights.fixed import mask_set_base
from . import distributed
from .check import check_run
from .config import RunConfig
from .preferred import draw_preferred
from .reference import can_cache, reference_inputs, reference_rows

log = logging.getLogger(__name__)


@dataclass
class State:
    """What the loop carries: models, data, token weights, optimiser, step counter."""

    config: RunConfig
    spec: LossSpec
    loss_kwargs: dict
    model: torch.nn.Module
    tokenizer: object
    device: str
    bench: object
    forget: list
    retain: list
    weights: WeightSource  # fixed (selector, mask set) or learned during the run (LEARNED_WEIGHTS)
    optimizer: torch.optim.Optimizer
    reference: torch.nn.Module | None = None  # a frozen copy, only for a loss that needs `kl` (without LoRA)
    reference_rows: dict | None = None  # cached per-sample ref_nll / ref_logit rows (NPO, TPO)
    accelerator: object = None
    step: int = 0
    memory: dict = field(default_factory=dict)  # the training plan's settings (gradient_checkpointing,
    # separate_retain_backward) and its breakdown (`memory_plan.Plan.explain`)
    precision: Precision | None = None  # fp32 master weights, bf16 autocast on a bf16 GPU (`precision_for`)
    preferred: list | None = None  # DPO's preferred samples, one per forget sample (`preferred.draw_preferred`)
    full_model: torch.nn.Module | None = None  # FSDP: rank 0's unsharded copy for evaluation and checkpoints
    peers: list | None = None  # (hostname, pid) per rank of a multi-process launch (`distributed.peers`)

    @property
    def trainable(self) -> list[torch.nn.Parameter]:
        return [p for p in self.model.parameters() if p.requires_grad]

    @property
    def is_main(self) -> bool:
        """True in a single-process run and in the main process of a multi-process launch."""
        return self.accelerator is None or self.accelerator.is_main_process

    @property
    def world(self) -> int:
        return self.accelerator.num_processes if self.accelerator else 1

    def base_model(self):
        """The model without its DDP wrapper (a peft model stays a peft model), for eval and saving;
        under FSDP, rank 0's unsharded copy (`distributed.refresh_full_weights` keeps it current)."""
        if self.full_model is not None:
            return self.full_model
        return self.accelerator.unwrap_model(self.model) if self.accelerator else self.model


def _accelerator(device: str):
    """An accelerate Accelerator when launched with several processes (accelerate launch,
    torchrun), else None (`distributed.make_accelerator`)."""
    return distributed.make_accelerator(device)


def _apply_lora(model, config: RunConfig):
    from peft import LoraConfig, get_peft_model  # deferred: peft

    targets = config.lora_targets
    targets = targets if targets == "all-linear" else [t.strip() for t in targets.split(",") if t.strip()]
    conv1d = any(type(m).__name__ == "Conv1D" for m in model.modules())  # GPT-2 stores weights transposed
    lcfg = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=0.0, target_modules=targets,
                      task_type="CAUSAL_LM", fan_in_fan_out=conv1d)
    from ..models import model_loading  # deferred: torch

    with model_loading():  # LoRA's init uses torch.nn.init, which a concurrent load patches (engine.models.loading)
        return get_peft_model(model, lcfg)


def training_plan(config: RunConfig, model, tokenizer, spec: LossSpec, kwargs: dict, forget, device: str,
                  autocast: bool = False, shards: int = 1) -> Plan:
    """`memory_plan.plan_training` (`plan_sharded` under FSDP over `shards` ranks) for this run against the device's free memory (the weights are
    already loaded, so they are added back; autocast: the forward runs in bf16 over fp32 weights).
    gradient_checkpointing 'on'/'off' is kept, 'auto' lets the plan decide; the plan also decides
    whether the retain batch is backpropagated on its own.
    Every choice and fallback is logged; MemoryError with the numbers when nothing fits, or when
    only LoRA would (the method is the user's to change)."""
    shape = ModelShape.from_model(model)
    b = next(model.parameters()).element_size()
    seq = encode_samples(tokenizer, list(forget)[:256]).input_ids.shape[1]  # the longest forget row
    ckpt = {"on": True, "off": False}.get(config.gradient_checkpointing)
    if shards > 1:  # FSDP: weights, gradients and AdamW states divided over the ranks
        plan = plan_sharded(shape, shards, config.batch_size, seq, budget_of(device) + weights_bytes(shape, b),
                            config.loss, lora=config.lora, lora_r=config.lora_r, retain=spec.needs_retain(kwargs),
                            autocast=autocast, checkpointing=ckpt)
        log.info("%s", plan.explain())
        if not plan.fits:
            raise MemoryError(plan.explain())
        return plan
    plan = plan_training(shape, config.batch_size, seq, budget_of(device) + weights_bytes(shape, b), b, config.loss,
                         lora=config.lora, lora_r=config.lora_r, retain=spec.needs_retain(kwargs),
                         reference_copy=spec.needs_reference and not can_cache(spec.inputs) and not config.lora,
                         orthogonalize=config.orthogonalize, checkpointing=ckpt, autocast=autocast, device=device)
    log.info("%s", plan.explain())
    for note in plan.notes:
        log.warning("memory plan: %s", note)
    if not plan.fits:
        raise MemoryError(plan.explain())
    if plan.settings["lora_suggested"]:
        raise MemoryError(plan.explain() + "\nfull fine-tuning does not fit this device: set lora=True")
    if config.orthogonalize and plan.settings["separate_retain_backward"]:
        log.warning("memory plan: orthogonalize needs both gradients at once: the retain batch stays in the graph")
        plan.settings["separate_retain_backward"] = False
    return plan


def prepare(config: RunConfig, store=None) -> State:
    """Load everything a run needs and check it fits together (`check_run` first); raises
    ValueError when not.

    Order matters: the reference quantities are taken (cached, or a frozen copy when the loss
    needs `kl`; see `reference`) before any selector touches the model, and any gradient a
    selector left behind is cleared before the first step.
    """
    bench = check_run(config, store)
    spec = get_loss(config.loss)
    kwargs = config.loss_kwargs()
    accelerator = _accelerator(config.device)
    if accelerator is not None and config.orthogonalize:
        raise ValueError("orthogonalize is single-process only (it needs both gradients unreduced)")
    torch.manual_seed(config.seed)
    random.seed(config.seed)
    precision = precision_for("train", str(accelerator.device) if accelerator else config.device)
    model, tok = load_model(model_path(config.model), precision.device, dtype=precision.master)
    device = str(next(model.parameters()).device)
    check_fits(tok, list(bench.forget) + list(bench.retain), "forget/retain samples")  # named, never cut silently
    preferred = None
    if set(PREFERRED_INPUTS) & set(spec.inputs):  # DPO: each forget question with an IDK answer
        preferred = draw_preferred(list(bench.forget), config.seed)
        check_fits(tok, preferred, "preferred (I don't know) samples")
    reference, ref_rows = None, None
    if can_cache(spec.inputs):
        with precision.context():  # under the policy's autocast, so ref − policy compares like with like
            ref_rows = reference_rows(model, tok, bench.forget, reference_inputs(spec.inputs), config.batch_size * 4,
                                      preferred)
    elif spec.needs_reference and not config.lora:  # with LoRA the adapter switched off is the reference
        reference = copy.deepcopy(model).eval()
        reference.requires_grad_(False)
    learned = LEARNED_WEIGHTS.get(config.selector) if config.mask_set is None else None
    rules = rules_from_json(config.rules, "rules")
    if config.mask_set is not None:
        same = model_path(store.get_mask_set(config.mask_set).model) == model_path(config.model)
        base = mask_set_base(store, config.mask_set, model, tok, bench.forget, same, config.batch_size * 4)
        weights = weights_from_mask_set(store, config.mask_set, tok, bench.forget, rules, base)
    elif learned is None:
        weights = weights_from_selector(model, tok, bench.forget, config.selector, dict(config.selector_params),
                                        config.weighting, config.batch_size * 4, rules)
    model.zero_grad(set_to_none=True)
    shards = accelerator.num_processes if accelerator is not None and config.sharding == "fsdp" else 1
    plan = training_plan(config, model, tok, spec, kwargs, bench.forget, device, precision.autocast, shards)
    if plan.settings["gradient_checkpointing"]:  # recomputes each block in backward; active in train mode only
        if hasattr(model, "activation_checkpointing_enable"):  # transformers ≥ 5.2x's name
            model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if config.lora:
        model = _apply_lora(model, config)
    model.train()
    if accelerator is not None and config.sharding == "fsdp":
        return _prepare_sharded(config, spec, kwargs, model, tok, device, bench, weights, reference, ref_rows,
                                learned, accelerator, precision, plan)
    opt = adamw([p for p in model.parameters() if p.requires_grad], lr=config.lr, weight_decay=config.weight_decay)
    if learned is not None:  # built on the model as trained (LoRA included), before accelerate wraps it
        weights = learned.create(config, model, tok, list(bench.forget), device, accelerator)
    state = State(config, spec, kwargs, model, tok, device, bench, list(bench.forget), list(bench.retain),
                  weights, opt, reference, ref_rows, accelerator=accelerator, precision=precision,
                  memory={**plan.settings, "plan": plan.explain()}, preferred=preferred)
    if accelerator is not None:
        state.model, state.optimizer = accelerator.prepare(state.model, state.optimizer)
        state.peers = distributed.peers(accelerator)
    return state


def _prepare_sharded(config, spec, kwargs, model, tok, device, bench, weights, reference, ref_rows, learned,
                     accelerator, precision, plan) -> State:
    """The FSDP end of `prepare`: rank 0 keeps an unsharded copy for evaluation and checkpoints,
    learned token weights are built on the unsharded model (rank 0's read the copy), then the
    model is sharded (`distributed.shard_model`) and the optimiser built over the shards."""
    if spec.needs_reference and reference is None and ref_rows is None:  # LoRA's adapter-off reference
        raise ValueError(f"{config.loss} with LoRA needs the adapter-off reference forward, which runs on the "
                         "unsharded model: use --sharding ddp for it")
    full = distributed.eval_copy(model) if accelerator.is_main_process else None
    if learned is not None:
        weights = learned.create(config, model, tok, list(bench.forget), device, accelerator)
        if full is not None and hasattr(weights, "model"):
            weights.model = full  # its targets() runs on rank 0 alone: the unsharded copy
    model = distributed.shard_model(model, accelerator)
    opt = adamw([p for p in model.parameters() if p.requires_grad], lr=config.lr, weight_decay=config.weight_decay)
    state = State(config, spec, kwargs, model, tok, device, bench, list(bench.forget), list(bench.retain),
                  weights, opt, reference, ref_rows, accelerator=accelerator, precision=precision,
                  memory={**plan.settings, "plan": plan.explain(), "sharding": "fsdp"}, full_model=full)
    state.peers = distributed.peers(accelerator)
    return state

